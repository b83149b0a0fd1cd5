//! A boot (hostname and the DNS record, the zone found by name) with AWS refusing, as
//! IAM would, every action the policy `berth-bootstrap iam-policy` prints for the same
//! configuration does not grant: an action missing from the policy fails this test.

mod node;

use berth_testing::Rule;
use node::Node;

#[tokio::test]
async fn a_boot_needs_no_action_the_printed_policy_lacks() {
    let node = Node::start(&[("Role", "master")]).await;
    let config = node.config("", "modules: [hostname, dns]\n");
    let config = config.to_str().unwrap();
    let policy = std::process::Command::new(env!("CARGO_BIN_EXE_berth-bootstrap"))
        .args(["iam-policy", "-c", config])
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
    let denied = node.proxy.add(Rule::deny_all_but(granted));

    let run = node.run(&["-c", config]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.summary, run.stderr);
    assert_eq!(run.summary["outcome"], "done");
    assert_eq!(
        node.proxy.fired(denied),
        0,
        "AWS refused actions the policy lacks; calls: {:?}",
        node.proxy.counts()
    );
    assert_eq!(node.proxy.count("ChangeResourceRecordSets"), 1);
}
