//! The daemon registering a node and deregistering it when cordoned, with AWS refusing,
//! as IAM would, every action the policy `berth-daemon iam-policy` prints for the same
//! flags does not grant: an action missing from the policy fails this test.

mod common;

use std::process::Command;
use std::time::Duration;

use berth_testing::iam::enforce_printed_policy;
use common::{eventually, instance, set, World};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_and_deregister_need_no_action_the_printed_policy_lacks() {
    let w = World::new().await;
    let web = w.group("web", 30080).await;
    let config = w.write(
        "rules.yaml",
        &format!(
            "rules:\n  - nodeSelector:\n      matchLabels:\n        role: web\n    targetGroups:\n      - arn: {web}\n"
        ),
    );
    let config = config.to_str().unwrap();
    let denied = enforce_printed_policy(
        &w.proxy,
        Command::new(env!("CARGO_BIN_EXE_berth-daemon"))
            .envs(berth_testing::aws_env(&w.proxy.endpoint()))
            .env_remove("CLUSTER_ID")
            .args(["iam-policy", "--cluster-name", "e2e", "--config", config]),
    );

    w.add_node("node-0", &instance(0), &[("role", "web")]);
    let mut d = w.daemon(&["--mode", "cluster", "--config", config], &[]);
    let registered = set([format!("{}:30080", instance(0))]);
    eventually(WAIT, "the node in its group", &d, || async {
        w.members(&web).await == registered
    })
    .await;
    w.edit_node("node-0", |n| {
        n.spec.get_or_insert_with(Default::default).unschedulable = Some(true)
    });
    eventually(WAIT, "the cordoned node out of its group", &d, || async {
        w.members(&web).await.is_empty()
    })
    .await;
    d.terminate();
    assert_eq!(
        w.proxy.fired(denied),
        0,
        "AWS refused actions the policy lacks; calls: {:?}",
        w.proxy.counts()
    );
    for operation in ["RegisterTargets", "DeregisterTargets"] {
        assert!(w.proxy.count(operation) > 0, "{operation} was never called");
    }
}
