//! A Kubernetes API outage: the fake API server refuses every request (503) for a
//! while, then returns with its watch history compacted (a watch resuming from the
//! daemon's last resourceVersion gets 410 Gone and must list again). The daemon must
//! not exit, must deregister nothing because of the outage, and must converge on the
//! changes made while it could not see them.

mod common;

use std::time::Duration;

use berth_kube::fake::Fault;
use common::*;
use k8s_openapi::api::core::v1 as core;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_outage_deregisters_nothing_and_converges_after_a_compacted_watch() {
    let w = World::new().await;
    let arn = w.group("web", 30080).await;
    for i in 0..3 {
        w.add_node(&format!("node-{i}"), &instance(i), &[("role", "web")]);
    }
    let config = w.write("config.yaml", WEB_CONFIG);
    let mut d = w.daemon(
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
    let target = |i: usize| format!("{}:30080", instance(i));
    let before = set((0..3).map(target));
    eventually(WAIT, "the three nodes registered", &d, || async {
        w.members(&arn).await == before
    })
    .await;

    // The outage: every request refused, open watches dropped; meanwhile node-1
    // goes away and node-3 joins, which the daemon cannot see.
    w.kube.inject(Fault::everything().status(503));
    w.kube.close_watches();
    assert!(w.kube.delete::<core::Node>(None, "node-1"));
    w.add_node("node-3", &instance(3), &[("role", "web")]);

    // Until the daemon has retried the node list/watch several times: nothing
    // deregistered, still running. (It runs no reconcile pass meanwhile: its
    // leadership and its node watch both depend on the API server.)
    let refused_nodes = || {
        w.kube
            .refused()
            .iter()
            .filter(|r| r.contains("/api/v1/nodes"))
            .count()
    };
    eventually(
        WAIT,
        "the daemon retried the node list during the outage",
        &d,
        || async {
            let members = w.members(&arn).await;
            assert_eq!(
                members,
                before,
                "a target changed during the outage\n{}",
                tail(&d.log_text(), 6000)
            );
            refused_nodes() >= 3
        },
    )
    .await;
    assert!(d.is_running(), "{}", tail(&d.log_text(), 6000));

    // The server returns, its history compacted: the old resourceVersion is Gone,
    // the daemon lists again and converges on the changes it missed.
    w.kube.compact();
    w.kube.clear_faults();
    let after = set([target(0), target(2), target(3)]);
    eventually(
        WAIT,
        "node-1 deregistered and node-3 registered after the outage",
        &d,
        || async { w.members(&arn).await == after },
    )
    .await;
    assert!(d.is_running(), "{}", tail(&d.log_text(), 6000));
}
