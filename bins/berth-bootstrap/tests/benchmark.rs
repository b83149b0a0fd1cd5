//! The full-boot figure of docs/benchmarks.md as one measured run: the compiled binary
//! once, with every module — hostname, DNS, certificates (a local CA), etcd joining a
//! running three-member cluster — against moto and real etcd 3.4 members, recording
//! the AWS calls by operation (the binary's own SDK call counter), the etcd calls (the
//! engine's tally in the etcd summary) and the wall time.
//!
//! Wall-clock figures: ignored in the default run. Run on purpose with
//! `cargo test -p berth-bootstrap --test benchmark -- --ignored --nocapture`.

mod etcd_world;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ec2::types::Tag;
use berth_pki::LocalCa;
use etcd_world::{counts, World};

const ZONE: &str = "k8s.example.com";

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: wall-clock figures for docs/benchmarks.md"]
async fn a_full_boot_with_every_module_and_an_etcd_join() {
    let (mut world, nodes) = World::formed().await;
    let new = world.grow(&nodes).await;
    // The hostname's tag and the zone its record goes in.
    aws_sdk_ec2::Client::new(&world.sdk)
        .create_tags()
        .resources(&new.id)
        .tags(Tag::builder().key("Role").value("master").build())
        .send()
        .await
        .expect("CreateTags");
    aws_sdk_route53::Client::new(&world.sdk)
        .create_hosted_zone()
        .name(ZONE)
        .caller_reference("benchmark")
        .send()
        .await
        .expect("CreateHostedZone");
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_key) = LocalCa::generate("berth bench CA", Duration::from_secs(86_400)).unwrap();
    let (ca_file, ca_key_file) = (dir.path().join("ca.pem"), dir.path().join("ca-key.pem"));
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    std::fs::write(&ca_key_file, ca_key).unwrap();
    let root = dir.path().join("root");
    let yaml = format!(
        "base:\n  chroot_path: {root}\nhostname:\n  set_kernel: false\n\
         hosted_zone:\n  name: {ZONE}.\n\
         certificates:\n  ca_cert_file: {ca}\n  ca_key_file: {key}\n  \
         ca_path: {root}/etc/ssl/certs\n  certificates_path: {root}/etc/ssl/node_certs\n{etcd}",
        root = root.display(),
        ca = ca_file.display(),
        key = ca_key_file.display(),
        etcd = world.etcd_section(&new),
    );
    // A node joining a running cluster finds its members connected for a while: etcd
    // 3.4 answers MemberAdd with "unhealthy cluster" for 5 s after they connect.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let run = world.run_config(&new, &yaml, &[]).await;
    run.assert_done();
    for module in ["hostname", "dns", "certificates", "etcd"] {
        assert_eq!(
            run.summary["modules"][module]["status"], "changed",
            "{module}: {}",
            run.summary
        );
    }
    assert_eq!(run.membership()["action"], "joined");
    let aws = run.aws_calls();
    let workflow: BTreeMap<String, u64> =
        serde_json::from_value(run.membership()["calls"]["calls"].clone()).unwrap();
    let total: u64 = aws.values().sum();
    eprintln!(
        "full boot: wall {} ms (process), elapsed_seconds {} (report); AWS calls {total}: \
         {aws:?}; etcd workflow calls through the Caller {workflow:?}; attempts {}; waits {}",
        run.elapsed.as_millis(),
        run.summary["elapsed_seconds"],
        run.membership()["calls"]["attempts"],
        run.membership()["waits"],
    );
    let expected = counts(&[
        ("DescribeInstances", 2),
        ("ListHostedZonesByName", 1),
        ("ListResourceRecordSets", 1),
        ("ChangeResourceRecordSets", 1),
        ("DescribeAutoScalingGroups", 1),
        ("GetItem", 1),
        ("PutItem", 1),
    ]);
    assert_eq!(aws, expected);

    // The join was real: its etcd starts from the drop-in and the cluster has four.
    assert_eq!(world.start_joined(&nodes, &new).await.len(), 4);
}
