//! The sidecar's whole life (register, ready, SIGTERM, deregister, drain) with AWS
//! refusing every action the policy `berth-sidecar iam-policy` prints does not grant, as
//! IAM would: an action missing from the policy fails this test.

mod support;

use std::process::Command;
use std::time::Duration;

use berth_testing::iam::enforce_printed_policy;
use support::{Sidecar, Stage, POD_IP};

const READY_WITHIN: Duration = Duration::from_secs(60);
const EXIT_WITHIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_run_needs_no_action_the_printed_policy_lacks() {
    let stage = Stage::start().await;
    let flags = ["--target-group", "web", "--target-group", &stage.groups.api];
    let endpoint = stage.proxy.endpoint();
    let denied = enforce_printed_policy(
        &stage.proxy,
        Command::new(env!("CARGO_BIN_EXE_berth-sidecar"))
            .envs(berth_testing::aws_env(&endpoint))
            .arg("iam-policy")
            .args(flags),
    );

    let mut cmd = Sidecar::command(&endpoint);
    cmd.args(flags);
    let mut sidecar = Sidecar::spawn(cmd);
    sidecar.until_ready(READY_WITHIN).await;
    assert_eq!(
        stage.groups.targets(&stage.groups.web).await,
        [format!("{POD_IP}:80")]
    );
    sidecar.terminate();
    let status = sidecar.wait(EXIT_WITHIN).await;
    assert_eq!(status.code(), Some(0), "stderr:\n{}", sidecar.stderr());
    assert!(stage.groups.targets(&stage.groups.web).await.is_empty());

    assert_eq!(
        stage.proxy.fired(denied),
        0,
        "AWS refused actions the policy lacks; calls: {:?}",
        stage.proxy.counts()
    );
    for operation in [
        "RegisterTargets",
        "DeregisterTargets",
        "DescribeTargetHealth",
    ] {
        assert!(
            stage.proxy.count(operation) > 0,
            "{operation} was never called"
        );
    }
}
