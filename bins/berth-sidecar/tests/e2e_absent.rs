//! End-to-end: the target is removed from one of its groups behind the sidecar's back
//! (deregistered directly through the SDK against moto, as an operator or the
//! daemon's IP target GC would) before SIGTERM. The exit is clean, and the log line
//! and metrics say "already absent" for that group, "deregistered" for the other.

mod support;

use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancingv2::types::TargetDescription;
use berth_testing::MotoServer;
use support::{create_groups, Sidecar, POD_IP};

const WITHIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_removed_behind_its_back_is_reported_already_absent_and_the_exit_is_clean() {
    let moto = MotoServer::isolated().await;
    let groups = create_groups(&moto.endpoint()).await;
    // The post-deregister command holds the process (and its /metrics) until the test
    // has read the metrics: the counters are only readable while it runs.
    let release = std::env::temp_dir().join(format!("berth-sidecar-absent-{}", std::process::id()));
    let _ = std::fs::remove_file(&release);
    let hold = format!("while [ ! -e {0} ]; do sleep 0.05; done", release.display());
    let mut cmd = Sidecar::command(&moto.endpoint());
    cmd.args([
        "--target-group",
        "web",
        "--target-group",
        "api",
        "-post-deregister-command",
        &hold,
        "-post-deregister-timeout",
        "60s",
    ]);
    let mut sidecar = Sidecar::spawn(cmd);
    sidecar.until_ready(WITHIN).await;
    assert_eq!(groups.targets(&groups.web).await, [format!("{POD_IP}:80")]);

    groups
        .elb
        .deregister_targets()
        .target_group_arn(&groups.web)
        .targets(TargetDescription::builder().id(POD_IP).port(80).build())
        .send()
        .await
        .expect("DeregisterTargets behind the sidecar's back");
    assert!(groups.targets(&groups.web).await.is_empty());

    sidecar.terminate();
    let metrics = until_metrics(&sidecar, "berth_sidecar_deregistrations_total{").await;
    std::fs::write(&release, b"").expect("release the post-deregister command");
    let status = sidecar.wait(WITHIN).await;
    let _ = std::fs::remove_file(&release);
    let stderr = sidecar.stderr();

    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    for line in [
        "berth_sidecar_deregistrations_already_absent_total{target_group=\"web\"} 1",
        "berth_sidecar_deregistrations_total{target_group=\"api\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    assert!(
        !metrics.contains("berth_sidecar_deregistrations_total{target_group=\"web\"}"),
        "web counted as deregistered:\n{metrics}"
    );
    assert!(
        !metrics.contains("berth_sidecar_failures_total"),
        "a failure counted:\n{metrics}"
    );
    let said = |group: &str, what: &str| {
        stderr
            .lines()
            .any(|l| l.contains(what) && l.contains(group) && l.contains(POD_IP))
    };
    assert!(
        said("web", "already absent; nothing to deregister"),
        "stderr:\n{stderr}"
    );
    assert!(
        !stderr
            .lines()
            .any(|l| l.contains("web") && l.contains(POD_IP) && l.contains("deregistered")),
        "web logged as deregistered; stderr:\n{stderr}"
    );
    assert!(said("api", "deregistered"), "stderr:\n{stderr}");
    assert!(
        !stderr.lines().any(|l| l.contains("drained group=\"web\"")),
        "nothing drained from web; stderr:\n{stderr}"
    );
    assert!(groups.targets(&groups.api).await.is_empty());
}

/// `/metrics` once it contains `needle` (the deregistrations are counted), read while
/// the post-deregister command holds the process.
async fn until_metrics(sidecar: &Sidecar, needle: &str) -> String {
    let deadline = Instant::now() + WITHIN;
    while Instant::now() < deadline {
        if let Some((200, body)) = sidecar.get("/metrics") {
            if body.contains(needle) {
                return body;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{needle} never in /metrics; stderr:\n{}", sidecar.stderr());
}
