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

/// Node mode, one DaemonSet pod: its node in all 10 groups. Every pod of a node-mode
/// fleet makes these calls each resync, so 500 nodes make 500 times as many (the
/// figure in docs/benchmarks.md is this measurement multiplied, and says so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_mode_one_pod_10_groups_calls_per_resync() {
    let w = World::new().await;
    let mut config =
        String::from("rules:\n  - nodeSelector: {matchLabels: {pool: p0}}\n    targetGroups:\n");
    for g in 0..10 {
        w.group(&format!("tg-{g}"), 30000 + g).await;
        config.push_str(&format!("      - {{name: tg-{g}}}\n"));
    }
    let config = w.write("config.yaml", &config);
    w.add_node("node-0", &instance(0), &[("pool", "p0")]);
    let imds = berth_testing::imds::FakeImds::start();
    imds.set_identity(&instance(0), "eu-west-1", "10.0.0.10");
    let d = w.daemon(
        &[
            "--mode",
            "node",
            "--config",
            config.to_str().unwrap(),
            "--imds-endpoint",
            &imds.endpoint(),
            // The count below is exact over the passes between two reads, each taken
            // just after a pass ended: the pause between passes is what a loaded
            // machine may take to make that read, so it is not cut to 1 s.
            "--sleep-interval",
            "3",
        ],
        &[("NODE_NAME", "node-0")],
    );
    eventually(
        Duration::from_secs(60),
        "registered in 10 groups",
        &d,
        || async { w.proxy.count("RegisterTargets") == 10 },
    )
    .await;
    d.wait_passes(1, Duration::from_secs(30)).await;
    const PASSES: u64 = 5;
    w.proxy.reset_counts();
    let kube_before = w.kube.requests().len();
    d.wait_passes(PASSES, Duration::from_secs(60)).await;
    let aws = w.proxy.counts();
    let kube: Vec<String> = w.kube.requests()[kube_before..].to_vec();
    let config_maps = kube.iter().filter(|r| r.contains("/configmaps")).count();
    println!("node mode, one pod, {PASSES} resyncs: AWS {aws:?}; Kubernetes {kube:?}");
    let health = aws.get("DescribeTargetHealth").copied().unwrap_or(0);
    assert_eq!(
        health as u64,
        10 * PASSES,
        "one DescribeTargetHealth per group per resync, per pod: {aws:?}"
    );
    assert_eq!(aws.get("RegisterTargets"), None, "{aws:?}");
    println!(
        "per resync, per pod: {} AWS calls ({} DescribeTargetHealth), {} ConfigMap requests; \
         x500 pods: {} AWS calls",
        w.proxy.total() as u64 / PASSES,
        health as u64 / PASSES,
        config_maps as u64 / PASSES,
        500 * w.proxy.total() as u64 / PASSES,
    );
}

/// Notice mode, one DaemonSet pod, no notice: over many polls it makes no AWS call and
/// no Kubernetes request (past its one start-up read of its Node), only IMDS reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notice_mode_one_pod_makes_no_aws_call_and_no_kubernetes_request_while_quiet() {
    let w = World::new().await;
    w.add_node("node-0", &instance(0), &[]);
    let imds = berth_testing::imds::FakeImds::start();
    let imds_url = imds.endpoint();
    let d = w.daemon(
        &["--mode", "notice", "--spot-poll", "100ms"],
        &[
            ("NODE_NAME", "node-0"),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds_url),
            ("AWS_EC2_METADATA_DISABLED", "false"),
        ],
    );
    let spot = berth_testing::imds::SPOT_ACTION_PATH;
    // Ready: polling, and its one start-up read of the Node done.
    eventually(Duration::from_secs(30), "ready and polling", &d, || async {
        imds.gets(spot) >= 1 && d.get("/readyz").is_some_and(|(s, _)| s == 200)
    })
    .await;
    let kube_before = w.kube.requests().len();
    let polls_before = imds.gets(spot);
    eventually(Duration::from_secs(30), "50 polls", &d, || async {
        imds.gets(spot) >= polls_before + 50
    })
    .await;
    let kube: Vec<String> = w.kube.requests()[kube_before..].to_vec();
    let seen = imds.requests();
    println!(
        "notice mode, one pod, 50 polls: AWS {:?}; Kubernetes {kube:?}; IMDS tokens {}, GETs {}",
        w.proxy.counts(),
        seen.tokens_issued,
        seen.authorised_gets.len()
    );
    assert_eq!(w.proxy.total(), 0, "{:?}", w.proxy.counts());
    assert!(kube.is_empty(), "{kube:?}");
}
