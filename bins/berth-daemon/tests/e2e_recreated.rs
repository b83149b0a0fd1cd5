//! A running daemon follows a target group deleted and recreated under the same name
//! (a new ARN), without a restart: the adapter drops the group it resolved when AWS
//! answers TargetGroupNotFound, and the next pass resolves the new one.

mod common;

use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_group_deleted_and_recreated_under_its_name_is_followed_without_restart() {
    let w = World::new().await;
    let old = w.group("web", 30080).await;
    for i in 0..2 {
        w.add_node(&format!("node-{i}"), &instance(i), &[("role", "web")]);
    }
    let config = w.write("config.yaml", WEB_CONFIG);
    let d = w.daemon(
        &[
            "--mode",
            "cluster",
            "--config",
            config.to_str().unwrap(),
            "--sleep-interval",
            "2",
        ],
        &[],
    );
    let both = set([
        format!("{}:30080", instance(0)),
        format!("{}:30080", instance(1)),
    ]);
    eventually(
        WAIT,
        "both nodes registered in the first group",
        &d,
        || async { w.members(&old).await == both },
    )
    .await;

    w.elb
        .delete_target_group()
        .target_group_arn(&old)
        .send()
        .await
        .expect("DeleteTargetGroup");
    let new = w.group("web", 30080).await;
    assert_ne!(new, old, "a recreated group has a new ARN");

    eventually(
        WAIT,
        "both nodes registered in the recreated group",
        &d,
        || async { w.members(&new).await == both },
    )
    .await;
    let mut d = d;
    assert!(d.is_running(), "{}", tail(&d.log_text(), 3000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_writes_one_json_object_per_line() {
    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    w.add_node("node-0", &instance(0), &[("role", "web")]);
    let config = w.write("config.yaml", WEB_CONFIG);
    let mut d = w.daemon(
        &[
            "--mode",
            "cluster",
            "--config",
            config.to_str().unwrap(),
            "--log-format",
            "json",
            "--aws-max-rps",
            "50",
        ],
        &[],
    );
    eventually(WAIT, "node-0 registered", &d, || async {
        w.members(&arn).await.len() == 1
    })
    .await;
    assert_eq!(d.terminate(), Some(0), "{}", tail(&d.log_text(), 3000));
    let log = d.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(value.get("level").is_some(), "{line}");
        assert_eq!(value["mode"], "daemon", "{line}");
    }
    assert!(
        lines.iter().any(|l| l.contains("registered")),
        "{}",
        tail(&log, 3000)
    );
}
