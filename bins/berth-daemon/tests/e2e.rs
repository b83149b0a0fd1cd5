//! The compiled daemon against the fake Kubernetes API server, FakeCastAi and moto.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use berth_testing::{Fault, Rule};
use common::*;

const WAIT: Duration = Duration::from_secs(40);
const EXCLUDE: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Five groups; label `role` a|b|c picks two each; group 3 on an explicit port.
async fn five_groups(w: &World) -> Vec<String> {
    let mut arns = Vec::new();
    for i in 0..5 {
        arns.push(w.group(&format!("tg-{i}"), 30000 + i).await);
    }
    arns
}

fn role_groups(role: usize) -> [usize; 2] {
    [[0, 1], [2, 3], [4, 0]][role]
}

fn port_of(group: usize) -> u16 {
    if group == 3 {
        8080
    } else {
        30000 + group as u16
    }
}

fn static_config(arns: &[String]) -> String {
    let mut text = String::from("rules:\n");
    for role in 0..3 {
        text.push_str(&format!(
            "  - name: role-{role}\n    nodeSelector:\n      matchLabels:\n        role: r{role}\n    targetGroups:\n"
        ));
        for g in role_groups(role) {
            if g == 3 {
                text.push_str(&format!("      - arn: {}\n        port: 8080\n", arns[g]));
            } else if g == 4 {
                text.push_str("      - name: tg-4\n");
            } else {
                text.push_str(&format!("      - arn: {}\n", arns[g]));
            }
        }
    }
    text
}

/// What each group should hold when nodes `0..n` except `gone` serve, node i having
/// role i % 3.
fn expected(n: usize, gone: &[usize]) -> BTreeMap<usize, std::collections::BTreeSet<String>> {
    let mut out: BTreeMap<usize, std::collections::BTreeSet<String>> =
        (0..5).map(|g| (g, Default::default())).collect();
    for i in (0..n).filter(|i| !gone.contains(i)) {
        for g in role_groups(i % 3) {
            out.get_mut(&g)
                .unwrap()
                .insert(format!("{}:{}", instance(i), port_of(g)));
        }
    }
    out
}

async fn converged(
    w: &World,
    arns: &[String],
    want: BTreeMap<usize, std::collections::BTreeSet<String>>,
    extra: &[(usize, String)],
) -> bool {
    for (g, targets) in &want {
        let mut targets = targets.clone();
        for (eg, t) in extra {
            if eg == g {
                targets.insert(t.clone());
            }
        }
        if w.members(&arns[*g]).await != targets {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_config_50_nodes_converge_then_cordon_exclusion_delete_and_restart() {
    let w = World::new().await;
    let arns = five_groups(&w).await;
    // Someone else's target: berth must never remove it.
    w.register_foreign(&arns[0], "i-0f0f0f0f0f0f0f0f0", 30000)
        .await;
    let foreign = [(0usize, "i-0f0f0f0f0f0f0f0f0:30000".to_owned())];
    for i in 0..50 {
        w.add_node(
            &format!("node-{i}"),
            &instance(i),
            &[("role", &format!("r{}", i % 3))],
        );
    }
    let config = w.write("config.yaml", &static_config(&arns));
    let args = [
        "--mode",
        "cluster",
        "--config",
        config.to_str().unwrap(),
        "--sleep-interval",
        "3",
    ];
    let mut d = w.daemon(&args, &[]);
    eventually(WAIT, "50 nodes in their groups", &d, || {
        converged(&w, &arns, expected(50, &[]), &foreign)
    })
    .await;
    assert_eq!(d.get("/readyz").map(|r| r.0), Some(200));

    // One DescribeTargetHealth per group per resync, RegisterTargets in batches.
    assert!(
        w.proxy.count("RegisterTargets") <= 10,
        "{:?}",
        w.proxy.counts()
    );
    w.proxy.reset_counts();
    d.wait_passes(1, WAIT).await;
    let counts = w.proxy.counts();
    assert!(
        counts.get("DescribeTargetHealth").copied().unwrap_or(0) <= 5 * 2,
        "{counts:?}"
    );
    assert_eq!(counts.get("RegisterTargets"), None, "{counts:?}");

    // Cordon node 0, exclude node 1, delete node 2.
    w.edit_node("node-0", |n| {
        n.spec.get_or_insert_with(Default::default).unschedulable = Some(true)
    });
    w.edit_node("node-1", |n| {
        n.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(EXCLUDE.into(), "true".into());
    });
    assert!(w.kube.delete_node("node-2"));
    eventually(
        WAIT,
        "nodes 0, 1, 2 deregistered, the foreign target kept",
        &d,
        || converged(&w, &arns, expected(50, &[0, 1, 2]), &foreign),
    )
    .await;
    // The pass counts its deregistrations and publishes its Events after its AWS
    // calls, which is what the wait above saw: wait for them too.
    let reasons = || -> Vec<String> {
        w.kube
            .events()
            .into_iter()
            .filter_map(|e| e.reason)
            .collect()
    };
    eventually(
        WAIT,
        "6 deregistrations counted, Registered and Deregistering Events",
        &d,
        || async {
            let events = reasons();
            d.metrics().contains("berth_daemon_deregistrations_total 6")
                && events.iter().any(|r| r == "Registered")
                && events.iter().any(|r| r == "Deregistering")
        },
    )
    .await;
    let metrics = d.metrics();
    assert!(
        metrics.contains("berth_daemon_deregistrations_total 6"),
        "{metrics}"
    );
    assert!(
        metrics.contains("berth_daemon_aws_calls_total{operation=\"RegisterTargets\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("berth_daemon_leader 1"), "{metrics}");
    let events = reasons();
    assert!(events.iter().any(|r| r == "Registered"), "{events:?}");
    assert!(events.iter().any(|r| r == "Deregistering"), "{events:?}");

    // Restart: nothing is done again, ownership is kept (node 0 is uncordoned later
    // and comes back, proving the new process still knows what it owns).
    assert_eq!(d.terminate(), Some(0), "{}", d.log_text());
    w.proxy.reset_counts();
    let d2 = w.daemon(&args, &[]);
    d2.wait_passes(1, WAIT).await;
    let counts = w.proxy.counts();
    assert_eq!(
        counts.get("RegisterTargets"),
        None,
        "{counts:?}\n{}",
        d2.log_text()
    );
    assert_eq!(counts.get("DeregisterTargets"), None, "{counts:?}");
    w.edit_node("node-0", |n| {
        n.spec.get_or_insert_with(Default::default).unschedulable = Some(false)
    });
    eventually(WAIT, "node 0 back after uncordon", &d2, || {
        converged(&w, &arns, expected(50, &[1, 2]), &foreign)
    })
    .await;
    // Node 1's label removed: it comes back as well.
    w.edit_node("node-1", |n| {
        n.metadata
            .labels
            .get_or_insert_with(Default::default)
            .remove(EXCLUDE);
    });
    eventually(WAIT, "node 1 back", &d2, || {
        converged(&w, &arns, expected(50, &[2]), &foreign)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_target_is_not_re_registered() {
    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    w.add_node("node-0", &instance(0), &[("role", "web")]);
    let config = w.write(
        "config.yaml",
        "rules:\n  - nodeSelector: {matchLabels: {role: web}}\n    targetGroups: [{name: web}]\n",
    );
    // AWS would show the target draining (moto cannot): a canned answer says so.
    let draining = w.proxy.add(Rule::new(
        "DescribeTargetHealth",
        Fault::Respond {
            status: 200,
            body: format!(
                "<DescribeTargetHealthResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\">\
                 <DescribeTargetHealthResult><TargetHealthDescriptions><member><Target><Id>{}</Id><Port>30080</Port></Target>\
                 <TargetHealth><State>draining</State><Reason>Target.DeregistrationInProgress</Reason></TargetHealth></member>\
                 </TargetHealthDescriptions></DescribeTargetHealthResult><ResponseMetadata><RequestId>canned</RequestId>\
                 </ResponseMetadata></DescribeTargetHealthResponse>",
                instance(0)
            ),
        },
    ));
    let d = w.daemon(
        &[
            "--mode",
            "cluster",
            "--config",
            config.to_str().unwrap(),
            "--sleep-interval",
            "1",
        ],
        &[],
    );
    d.wait_passes(3, WAIT).await;
    assert_eq!(w.proxy.count("RegisterTargets"), 0, "{}", d.log_text());
    assert!(w.members(&arn).await.is_empty());
    // Once it has drained (gone from the group), the node is registered again.
    w.proxy.remove(draining);
    eventually(WAIT, "registered after the drain", &d, || async {
        w.members(&arn).await == set([format!("{}:30080", instance(0))])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_mode_handles_only_its_own_node() {
    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    for i in 0..3 {
        w.add_node(&format!("node-{i}"), &instance(i), &[("role", "web")]);
    }
    let config = w.write(
        "config.yaml",
        "rules:\n  - nodeSelector: {matchLabels: {role: web}}\n    targetGroups: [{name: web}]\n",
    );
    let d = w.daemon(
        &[
            "--mode",
            "node",
            "--config",
            config.to_str().unwrap(),
            "--imds-endpoint",
            "http://127.0.0.1:9",
            "--sleep-interval",
            "1",
        ],
        &[("NODE_NAME", "node-1")],
    );
    eventually(WAIT, "node-1 registered", &d, || async {
        w.members(&arn).await == set([format!("{}:30080", instance(1))])
    })
    .await;
    d.wait_passes(1, WAIT).await;
    assert_eq!(w.members(&arn).await.len(), 1);
    let requests = w.kube.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("/api/v1/nodes") && r.contains("metadata.name%3Dnode-1")),
        "node mode watches its node only: {requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn castai_configurations_converge_with_null_ports_and_the_legacy_field_and_survive_an_outage()
{
    use berth_castai::fake::{FakeCastAi, Fault as CastFault};
    let w = World::new().await;
    let arns = five_groups(&w).await;
    let castai = FakeCastAi::start("cluster-1", "key-1").expect("FakeCastAi");
    // cfg-0: groups 0 (null port) and 1; cfg-1: groups 2 and 3 (port 8080);
    // cfg-2: only the legacy single `eks.targetGroup` (seed 000 ignored it): group 4.
    castai.set_target_groups("cfg-0", &[(&arns[0], None), (&arns[1], None)]);
    castai.set_target_groups("cfg-1", &[(&arns[2], None), (&arns[3], Some(8080))]);
    castai.set_legacy_target_group("cfg-2", &arns[4], None);
    let label = "provisioner.cast.ai/node-configuration-id";
    for i in 0..50 {
        w.add_node(
            &format!("node-{i}"),
            &instance(i),
            &[(label, &format!("cfg-{}", i % 3))],
        );
    }
    let want = |gone: &[usize], extra: &[usize]| {
        let mut out: BTreeMap<usize, std::collections::BTreeSet<String>> =
            (0..5).map(|g| (g, Default::default())).collect();
        for i in (0..50)
            .chain(extra.iter().copied())
            .filter(|i| !gone.contains(i))
        {
            let groups: &[usize] = [&[0usize, 1][..], &[2, 3][..], &[4][..]][i % 3];
            for g in groups {
                out.get_mut(g)
                    .unwrap()
                    .insert(format!("{}:{}", instance(i), port_of(*g)));
            }
        }
        out
    };
    let env = [
        ("CLUSTER_ID", "cluster-1"),
        ("CLUSTER_API_KEY", "key-1"),
        ("CASTAI_API_URL", &*castai.base_url()),
    ];
    let args = ["--mode", "cluster", "--sleep-interval", "1"];
    let mut d = w.daemon(&args, &env);
    eventually(WAIT, "50 Cast.ai nodes in their groups", &d, || {
        converged(&w, &arns, want(&[], &[]), &[])
    })
    .await;
    assert!(
        castai.requests() <= 6,
        "configurations are cached: {} requests",
        castai.requests()
    );
    assert!(
        !d.log_text().contains("key-1"),
        "the API key never appears in logs"
    );

    // Cast.ai answers 500 for a while, and the daemon restarts meanwhile (no cache).
    castai.set_outage(Some(CastFault::Status(500)));
    assert_eq!(d.terminate(), Some(0));
    w.proxy.reset_counts();
    let mut d = w.daemon(&args, &env);
    w.add_node("node-50", &instance(50), &[(label, "cfg-2")]);
    d.wait_passes(3, WAIT).await;
    assert!(d.is_running(), "no crash during the outage");
    assert_eq!(
        w.proxy.count("DeregisterTargets"),
        0,
        "nothing deregistered because of the outage"
    );
    assert!(
        converged(&w, &arns, want(&[], &[]), &[]).await,
        "membership unchanged during the outage"
    );
    assert!(d.metrics().contains("kind=\"castai\""), "{}", d.metrics());
    castai.set_outage(None);
    eventually(WAIT, "node-50 registered once Cast.ai is back", &d, || {
        converged(&w, &arns, want(&[], &[50]), &[])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_change_the_new_leader_continues() {
    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    let config = w.write(
        "config.yaml",
        "rules:\n  - nodeSelector: {matchLabels: {role: web}}\n    targetGroups: [{name: web}]\n",
    );
    for i in 0..3 {
        w.add_node(&format!("node-{i}"), &instance(i), &[("role", "web")]);
    }
    let args = [
        "--mode",
        "cluster",
        "--config",
        config.to_str().unwrap(),
        "--sleep-interval",
        "1",
        "--lease-duration",
        "6s",
    ];
    let mut a = w.daemon(&args, &[]);
    eventually(
        WAIT,
        "the first replica leads and registers",
        &a,
        || async { w.members(&arn).await.len() == 3 },
    )
    .await;
    // The Lease carries --lease-duration: the time the follower waits before taking over.
    let lease = w
        .kube
        .get::<k8s_openapi::api::coordination::v1::Lease>(Some("default"), "berth-daemon")
        .and_then(|l| l.spec)
        .expect("the leader's Lease");
    assert_eq!(lease.lease_duration_seconds, Some(6));
    let b = w.daemon(&args, &[]);
    eventually(
        WAIT,
        "the second replica is up as a follower",
        &b,
        || async { b.get("/readyz").is_some_and(|r| r.0 == 200) },
    )
    .await;
    assert_eq!(a.metric("berth_daemon_leader"), Some(1.0));
    assert_eq!(b.metric("berth_daemon_leader"), Some(0.0));
    assert_eq!(b.passes(), 0, "a follower does not reconcile");
    // The leader crashes (nothing released): the follower takes over once the Lease
    // expires and continues.
    a.kill();
    w.add_node("node-3", &instance(3), &[("role", "web")]);
    eventually(
        Duration::from_secs(60),
        "the new leader registers node-3",
        &b,
        || async { w.members(&arn).await.len() == 4 },
    )
    .await;
    assert_eq!(b.metric("berth_daemon_leader"), Some(1.0));
    assert_eq!(w.proxy.count("DeregisterTargets"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_plan_and_changes_nothing() {
    use berth_core::domain::Owner;
    use berth_kube::ownership::ConfigMapOwnership;
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::ConfigMap;

    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    for i in 0..3 {
        w.add_node(&format!("node-{i}"), &instance(i), &[("role", "web")]);
    }
    let config = w.write("config.yaml", WEB_CONFIG);
    // A real pass first, so there is ownership a dry run could (but must not) change.
    let mut first = w.daemon(
        &[
            "--mode",
            "cluster",
            "--config",
            config.to_str().unwrap(),
            "--once",
        ],
        &[],
    );
    assert_eq!(first.wait_exit(WAIT), Some(0), "{}", first.log_text());
    let registered = w.members(&arn).await;
    assert_eq!(registered.len(), 3);
    let ownership =
        ConfigMapOwnership::config_map_name(&Owner::new("berth/default/daemon").unwrap());
    let before: ConfigMap = w
        .kube
        .get(Some("default"), &ownership)
        .expect("ownership written by the real pass");
    let events_before = w.kube.events().len();
    assert!(
        w.events_of("node-0")
            .iter()
            .any(|e| e.starts_with("Registered")),
        "the real pass published its Events before exiting: {:?}",
        w.events_of("node-0")
    );

    // node-0 cordoned (to deregister), node-3 new (to register).
    w.edit_node("node-0", |n| {
        n.spec.get_or_insert_with(Default::default).unschedulable = Some(true)
    });
    w.add_node("node-3", &instance(3), &[("role", "web")]);
    w.proxy.reset_counts();
    let mut d = w.daemon(
        &[
            "--mode",
            "cluster",
            "--config",
            config.to_str().unwrap(),
            "--dry-run",
            "--sleep-interval",
            "1",
        ],
        &[],
    );
    d.wait_passes(2, WAIT).await;
    assert_eq!(d.terminate(), Some(0), "{}", d.log_text());

    let out = d.stdout_text();
    assert!(out.contains("dry run: nothing is changed"), "{out}");
    assert!(
        out.contains(&format!("deregister {}:30080 from web", instance(0))),
        "{out}"
    );
    assert!(
        out.contains(&format!("register {}:30080 in web", instance(3))),
        "{out}"
    );
    assert!(out.contains("node node-0: leave: cordoned"), "{out}");
    // Nothing changed: AWS, ownership, Events, Lease.
    let counts = w.proxy.counts();
    for write in ["RegisterTargets", "DeregisterTargets"] {
        assert_eq!(counts.get(write), None, "{counts:?}");
    }
    assert!(counts.contains_key("DescribeTargetHealth"), "{counts:?}");
    assert_eq!(w.members(&arn).await, registered);
    let after: ConfigMap = w.kube.get(Some("default"), &ownership).unwrap();
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    assert_eq!(after.data, before.data);
    assert_eq!(w.kube.events().len(), events_before);
    assert!(w
        .kube
        .get::<Lease>(Some("default"), "berth-daemon")
        .is_none());
}
