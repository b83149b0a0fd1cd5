//! The compiled berth-bootstrap against moto (EC2, Route53) and an IMDSv2 fake:
//! AMI builds, the hostname, the DNS record and the one-shot contract.

mod node;

use node::{files_under, Node};

const MODULES_NO_CERTS: &str = "modules: [hostname, dns]\n";

#[tokio::test]
async fn an_ami_build_exits_3_and_writes_nothing() {
    let node = Node::start(&[("Role", "master"), ("is_ami_build", "true")]).await;
    let config = node.config("", MODULES_NO_CERTS);
    let run = node.run(&["-c", config.to_str().unwrap()]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.summary["outcome"], "ami_build");
    assert!(files_under(&node.root()).is_empty());
    assert_eq!(node.proxy.count("ChangeResourceRecordSets"), 0);
    assert_eq!(node.proxy.count("ListHostedZonesByName"), 0);
}

// NodeReg named such a node `none` and carried on.
#[tokio::test]
async fn a_missing_hostname_tag_exits_2_naming_it_and_writes_nothing() {
    let node = Node::start(&[("Name", "x")]).await;
    let config = node.config("", MODULES_NO_CERTS);
    let run = node.run(&["-c", config.to_str().unwrap()]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.summary["outcome"], "bad_configuration");
    let error = run.summary["error"].as_str().unwrap();
    assert!(error.contains("`Role`"), "{error}");
    assert!(files_under(&node.root()).is_empty());
    assert_eq!(node.proxy.count("ChangeResourceRecordSets"), 0);
}

// NodeReg listed the whole hosted zone and added its record with a non-upsert change.
#[tokio::test]
async fn hostname_and_dns_with_no_zone_listing_then_nothing_on_a_second_run() {
    let node = Node::start(&[("Role", "master")]).await;
    let config = node.config("", MODULES_NO_CERTS);
    let run = node.run(&["-c", config.to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.summary, run.stderr);
    assert_eq!(run.summary["outcome"], "done");
    let hostname = std::fs::read_to_string(node.root().join("etc/hostname")).unwrap();
    assert_eq!(hostname, format!("{}\n", node.hostname()));

    let counts = node.proxy.counts();
    assert_eq!(node.proxy.count("ListHostedZones"), 0, "{counts:?}");
    assert_eq!(node.proxy.count("ListHostedZonesByName"), 1, "{counts:?}");
    assert_eq!(node.proxy.count("ListResourceRecordSets"), 1, "{counts:?}");
    assert_eq!(
        node.proxy.count("ChangeResourceRecordSets"),
        1,
        "{counts:?}"
    );
    let records = node.records().await;
    let fqdn = format!("{}.", node.fqdn());
    assert!(records
        .iter()
        .any(|(n, t, v)| *n == fqdn && t == "A" && *v == vec![node.private_ip.clone()]));
    assert!(records
        .iter()
        .any(|(n, t, v)| *n == format!("_berth.{fqdn}")
            && t == "TXT"
            && v[0].contains("berth-bootstrap")));

    // Again, with the zone named by id: no lookup, no change, nothing rewritten.
    node.proxy.reset_counts();
    let modified = std::fs::metadata(node.root().join("etc/hostname"))
        .unwrap()
        .modified()
        .unwrap();
    let config = node.config("", MODULES_NO_CERTS);
    let with_id = std::fs::read_to_string(&config).unwrap().replace(
        "hosted_zone:\n",
        &format!("hosted_zone:\n  id: {}\n", node.zone_id),
    );
    std::fs::write(&config, with_id).unwrap();
    let again = node.run(&["-c", config.to_str().unwrap()]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        again.summary["summary"]["modules"]["hostname"]["status"],
        "unchanged"
    );
    assert_eq!(
        again.summary["summary"]["modules"]["dns"]["status"],
        "unchanged"
    );
    assert_eq!(node.proxy.count("ListHostedZonesByName"), 0);
    assert_eq!(node.proxy.count("ChangeResourceRecordSets"), 0);
    assert_eq!(
        std::fs::metadata(node.root().join("etc/hostname"))
            .unwrap()
            .modified()
            .unwrap(),
        modified
    );
}

#[tokio::test]
async fn a_name_owned_by_someone_else_is_refused() {
    use aws_sdk_route53::types::{
        Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
    };
    let node = Node::start(&[("Role", "master")]).await;
    let theirs = ResourceRecordSet::builder()
        .name(node.fqdn())
        .r#type(RrType::A)
        .ttl(60)
        .resource_records(
            ResourceRecord::builder()
                .value("192.0.2.7")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    node.route53
        .change_resource_record_sets()
        .hosted_zone_id(&node.zone_id)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Create)
                        .resource_record_set(theirs)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let config = node.config("", "modules: [dns]\n");
    let run = node.run(&["-c", config.to_str().unwrap()]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let error = run.summary["error"].as_str().unwrap();
    assert!(error.contains("no berth ownership marker"), "{error}");
    assert_eq!(node.proxy.count("ChangeResourceRecordSets"), 0);
    let records = node.records().await;
    assert!(records
        .iter()
        .any(|(_, t, v)| t == "A" && v[0] == "192.0.2.7"));
}

#[tokio::test]
async fn plan_prints_every_change_and_changes_nothing() {
    let node = Node::start(&[("Role", "master")]).await;
    let (ca, key) = node.local_ca();
    let certs = format!(
        "  ca_cert_file: {}\n  ca_key_file: {}\n",
        ca.display(),
        key.display()
    );
    let config = node.config(&certs, "modules: [hostname, dns, certificates]\n");
    for args in [vec!["plan"], vec!["--dry-run"]] {
        let mut all = args.clone();
        all.extend(["-c", config.to_str().unwrap()]);
        let run = node.run(&all).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.summary["summary"]["dry_run"], true);
        for module in ["hostname", "dns", "certificates"] {
            assert_eq!(
                run.summary["summary"]["modules"][module]["status"], "planned",
                "{module}"
            );
            assert!(!run.summary["summary"]["modules"][module]["changes"]
                .as_array()
                .unwrap()
                .is_empty());
        }
    }
    assert!(files_under(&node.root()).is_empty());
    assert_eq!(node.proxy.count("ChangeResourceRecordSets"), 0);
    assert!(node
        .records()
        .await
        .iter()
        .all(|(_, t, _)| t == "NS" || t == "SOA"));
}

#[tokio::test]
async fn bad_configuration_exits_2_with_a_clear_message() {
    let node = Node::start(&[("Role", "master")]).await;
    let path = node.dir.path().join("bad.yaml");
    let cases = [
        (
            "tinycert:\n  email: a\n  ca_id: 100\n",
            "TinyCert no longer exists",
        ),
        (
            "hostname:\n  tagname: Role\n",
            "did you mean `hostname.tag_name`",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&path, text).unwrap();
        let run = node.run(&["-c", path.to_str().unwrap()]).await;
        assert_eq!(run.code, 2, "{text}");
        let error = run.summary["error"].as_str().unwrap();
        assert!(error.contains(expected), "{error}");
    }
    assert_eq!(node.proxy.total(), 0);
}

// The kernel path, in a UTS namespace of its own: the machine's hostname is untouched.
#[tokio::test]
async fn the_kernel_hostname_is_set_in_the_binary_s_own_uts_namespace() {
    let node = Node::start(&[("Role", "master")]).await;
    let config = node.config("", "modules: [hostname]\n");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("set_kernel: false", "set_kernel: true");
    std::fs::write(&config, text).unwrap();
    let before = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let run = node
        .run_under(&["unshare", "--uts"], &["-c", config.to_str().unwrap()])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.summary, run.stderr);
    let changes = &run.summary["summary"]["modules"]["hostname"]["changes"];
    let wanted = format!(
        "set the kernel hostname: {:?} -> {:?}",
        before.trim(),
        node.hostname()
    );
    assert!(
        changes
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == wanted.as_str()),
        "{changes}"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        before
    );
}

// NodeReg added its record with a change that fails when the name exists. berth's own
// name with a stale address (the node came back with a new IP) is UPSERTed in place.
#[tokio::test]
async fn berth_s_own_name_with_a_stale_address_is_upserted() {
    use aws_sdk_route53::types::{
        Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
    };
    let node = Node::start(&[("Role", "master")]).await;
    let set = |name: String, rr: RrType, value: &str| {
        let record = ResourceRecordSet::builder()
            .name(name)
            .r#type(rr)
            .ttl(300)
            .resource_records(ResourceRecord::builder().value(value).build().unwrap())
            .build()
            .unwrap();
        Change::builder()
            .action(ChangeAction::Create)
            .resource_record_set(record)
            .build()
            .unwrap()
    };
    let batch = ChangeBatch::builder()
        .changes(set(node.fqdn(), RrType::A, "10.9.9.9"))
        .changes(set(
            format!("_berth.{}", node.fqdn()),
            RrType::Txt,
            "\"berth-owner=berth-bootstrap\"",
        ))
        .build()
        .unwrap();
    node.route53
        .change_resource_record_sets()
        .hosted_zone_id(&node.zone_id)
        .change_batch(batch)
        .send()
        .await
        .unwrap();
    let config = node.config("", "modules: [dns]\n");
    let run = node.run(&["-c", config.to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.summary, run.stderr);
    assert_eq!(node.proxy.count("ChangeResourceRecordSets"), 1);
    let fqdn = format!("{}.", node.fqdn());
    let records = node.records().await;
    let a: Vec<_> = records
        .iter()
        .filter(|(n, t, _)| *n == fqdn && t == "A")
        .collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].2, vec![node.private_ip.clone()]);
}
