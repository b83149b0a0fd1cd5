//! Figures for docs/benchmarks.md (berth-daemon): AWS calls per resync for 500 nodes × 10
//! groups in cluster mode (asserted in the default run: counts, not time), and the time
//! from a node turning Ready to its RegisterTargets call (a wall-clock figure: an
//! ignored test, run on purpose with
//! `cargo test -p berth-daemon --release --test benchmark -- --include-ignored --nocapture`).

mod common;

use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_500_nodes_10_groups_calls_per_resync() {
    let (w, d, _) = converged_estate().await;
    let first = w.proxy.counts();
    println!("convergence (500 nodes x 2 groups each, 10 groups): {first:?}");

    // A steady-state resync: count every AWS call between two passes.
    d.wait_passes(1, Duration::from_secs(30)).await;
    w.proxy.reset_counts();
    d.wait_passes(1, Duration::from_secs(30)).await;
    let resync = w.proxy.counts();
    println!("one resync: {resync:?}");
    let health = resync.get("DescribeTargetHealth").copied().unwrap_or(0);
    assert!(
        health <= 10,
        "at most one DescribeTargetHealth per group per resync: {resync:?}"
    );
    assert_eq!(resync.get("RegisterTargets"), None, "{resync:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a wall-clock benchmark: run with --include-ignored"]
async fn cluster_mode_500_nodes_ready_to_register_latency() {
    let (w, d, _) = converged_estate().await;
    // Ready → RegisterTargets: a new Ready node, timed until moto holds it.
    let before = w.proxy.count("RegisterTargets");
    let started = Instant::now();
    w.add_node("node-new", &instance(9999), &[("pool", "p0")]);
    eventually(
        Duration::from_secs(10),
        "RegisterTargets for the new node",
        &d,
        || async { w.proxy.count("RegisterTargets") >= before + 2 },
    )
    .await;
    let latency = started.elapsed();
    println!("node Ready -> RegisterTargets: {latency:?}");
    assert!(latency < Duration::from_secs(3), "{latency:?}");
}

/// 500 nodes in 5 pools, each bound to 2 of 10 groups, all registered by a running
/// cluster-mode daemon.
async fn converged_estate() -> (World, Daemon, Vec<String>) {
    let w = World::new().await;
    let mut arns = Vec::new();
    for g in 0..10 {
        arns.push(w.group(&format!("tg-{g}"), 30000 + g).await);
    }
    // Node i (pool i % 5) belongs in groups 2p and 2p+1: 500 nodes, 1000 registrations.
    let mut config = String::from("rules:\n");
    for p in 0..5 {
        config.push_str(&format!(
            "  - nodeSelector: {{matchLabels: {{pool: p{p}}}}}\n    targetGroups: [{{arn: \"{}\"}}, {{name: tg-{}}}]\n",
            arns[2 * p],
            2 * p + 1
        ));
    }
    let config = w.write("config.yaml", &config);
    for i in 0..500 {
        w.add_node(
            &format!("node-{i}"),
            &instance(i),
            &[("pool", &format!("p{}", i % 5))],
        );
    }
    let args = [
        "--mode",
        "cluster",
        "--config",
        config.to_str().unwrap(),
        "--sleep-interval",
        "2",
    ];
    let d = w.daemon(&args, &[]);
    eventually(
        Duration::from_secs(120),
        "500 nodes registered",
        &d,
        || async {
            let mut total = 0;
            for arn in &arns {
                total += w.members(arn).await.len();
            }
            total == 1000
        },
    )
    .await;
    (w, d, arns)
}
