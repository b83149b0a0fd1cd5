//! The daemon registering a node and deregistering it when cordoned, with AWS refusing,
//! as IAM would, every action the policy `berth-daemon iam-policy` prints for the same
//! flags does not grant: an action missing from the policy fails this test.

mod common;

use std::process::Command;
use std::time::Duration;

use berth_testing::Rule;
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
    let policy = Command::new(env!("CARGO_BIN_EXE_berth-daemon"))
        .envs(berth_testing::aws_env(&w.proxy.endpoint()))
        .env_remove("CLUSTER_ID")
        .args(["iam-policy", "--cluster-name", "e2e", "--config", config])
        .output()
        .unwrap();
    assert!(policy.status.success(), "{policy:?}");
    let policy: serde_json::Value = serde_json::from_slice(&policy.stdout).unwrap();
    let granted: Vec<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let denied = w.proxy.add(Rule::deny_all_but(granted));

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
