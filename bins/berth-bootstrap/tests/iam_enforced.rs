//! Boots with AWS refusing, as IAM would, every action the policy
//! `berth-bootstrap iam-policy` prints for the same configuration does not grant: an
//! action missing from the policy fails these tests. Covered: hostname and the DNS
//! record (the zone found by name), an etcd join into a healthy cluster, and
//! certificates from ACM Private CA.

// Both worlds load the shared subnet helper as a module of their own.
#![allow(clippy::duplicate_mod)]

mod etcd_world;
mod node;

use std::path::Path;

use berth_testing::{FaultProxy, RuleId};
use etcd_world::World;
use node::Node;

/// `proxy` refuses every action `berth-bootstrap iam-policy -c config` does not grant.
fn enforce_printed_policy(proxy: &FaultProxy, config: &Path) -> RuleId {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_berth-bootstrap"));
    command.arg("iam-policy").arg("-c").arg(config);
    berth_testing::iam::enforce_printed_policy(proxy, &mut command)
}

/// Boots `node` with `config`, AWS refusing every action the policy printed for it
/// does not grant: the boot is done and nothing was refused.
async fn boots_within_the_printed_policy(node: &Node, config: &Path) {
    let denied = enforce_printed_policy(&node.proxy, config);

    let run = node.run(&["-c", config.to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.summary, run.stderr);
    assert_eq!(run.summary["outcome"], "done");
    assert_eq!(
        node.proxy.fired(denied),
        0,
        "AWS refused actions the policy lacks; calls: {:?}",
        node.proxy.counts()
    );
}

#[tokio::test]
async fn a_boot_needs_no_action_the_printed_policy_lacks() {
    let node = Node::start(&[("Role", "master")]).await;
    let config = node.config("", "modules: [hostname, dns]\n");
    boots_within_the_printed_policy(&node, &config).await;
    assert_eq!(node.proxy.count("ChangeResourceRecordSets"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_etcd_join_needs_no_action_the_printed_policy_lacks() {
    let (world, nodes) = World::formed().await;
    let new = world.grow(&nodes).await;
    let yaml = format!(
        "base:\n  chroot_path: false\nmodules: [etcd]\n{}",
        world.etcd_section(&new)
    );
    let config = world.etcd.path(&format!("{}/policy.yaml", new.id));
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, &yaml).unwrap();
    let proxy = FaultProxy::start(world.aws_endpoint()).await;
    let denied = enforce_printed_policy(&proxy, &config);

    let run = world
        .run_config_through(&proxy.endpoint(), &new, &yaml, &[])
        .await;
    run.assert_done();
    assert_eq!(run.membership()["action"], "joined", "{}", run.summary);
    assert_eq!(
        proxy.fired(denied),
        0,
        "AWS refused actions the policy lacks; calls: {:?}",
        proxy.counts()
    );
    // The join's calls went through the proxy: the group, the marker read and write.
    assert_eq!(proxy.count("DescribeAutoScalingGroups"), 1);
    assert_eq!(proxy.count("GetItem"), 1);
    assert_eq!(proxy.count("PutItem"), 1);
}

#[tokio::test]
async fn acm_private_ca_certificates_need_no_action_the_printed_policy_lacks() {
    let node = Node::start(&[("Role", "master")]).await;
    let (arn, _) = node.acm_private_ca().await;
    let config = node.config(
        &format!("  acm_pca_arn: {arn}\n"),
        "modules: [hostname, dns, certificates]\n",
    );
    boots_within_the_printed_policy(&node, &config).await;
    assert_eq!(node.proxy.count("IssueCertificate"), 1);
    assert!(node.proxy.count("GetCertificate") >= 1);
}
