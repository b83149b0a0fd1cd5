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
