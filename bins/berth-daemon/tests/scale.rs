//! The daemon at cluster scale (docs/benchmarks.md, "Cluster mode at 5,000 nodes"): the
//! compiled daemon in cluster mode against the fake API server and moto behind the
//! FaultProxy, over a fleet built by `common::fleet` (2–4 groups per node).
//!
//! The default run keeps one small estate (300 nodes, 20 groups) asserting counts only:
//! registrations batched to `--batch-size`, no deregistration, and exactly one
//! `DescribeTargetHealth` per group — nothing else — per steady resync. The figures
//! come from the ignored benchmark:
//!
//! ```text
//! cargo test -p berth-daemon --test scale -- --ignored --nocapture
//! ```
//!
//! (`BERTH_SCALE_NODES`, default 5000, sets the fleet size; `BERTH_SCALE_ROUNDS`,
//! default 60, the resyncs with churn.)

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::fleet::{memory, Fleet, Memory};
use common::Daemon;

const GROUPS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_300_nodes_batches_registrations_and_resyncs_with_one_describe_per_group() {
    let fleet = Fleet::build(300, GROUPS, 0).await;
    let batch = 20;
    let d = fleet.daemon(1, &["--batch-size", &batch.to_string()], &[]);
    fleet.wait_converged(&d, Duration::from_secs(120)).await;

    let converge = fleet.world.proxy.counts();
    assert_eq!(
        converge.get("RegisterTargets").copied(),
        Some(register_batches(&fleet, batch)),
        "one RegisterTargets per {batch} targets of each group: {converge:?}"
    );
    assert_eq!(converge.get("DeregisterTargets"), None, "{converge:?}");

    let resync = steady_resync(&fleet, &d).await;
    assert_eq!(
        resync,
        BTreeMap::from([("DescribeTargetHealth".to_owned(), GROUPS)]),
        "a steady resync: one DescribeTargetHealth per group, nothing else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: 5,000 nodes, minutes of wall clock and moto CPU; run with --ignored --nocapture"]
async fn cluster_mode_5000_nodes_converges_resyncs_and_stays_flat_under_churn() {
    let nodes = env_usize("BERTH_SCALE_NODES", 5000);
    let rounds = env_usize("BERTH_SCALE_ROUNDS", 60);
    let churn = (nodes / 100).max(4);
    let built = Instant::now();
    let mut fleet = Fleet::build(nodes, GROUPS, churn * rounds / 2 + churn).await;
    println!(
        "fleet: {nodes} nodes, {GROUPS} groups, {} targets, built in {:.1?}",
        fleet.expected_targets(),
        built.elapsed()
    );

    let d = fleet.daemon(1, &[], &[]);
    let pid = d.pid().expect("daemon running");
    let converged = fleet.wait_converged(&d, Duration::from_secs(900)).await;
    let converge = fleet.world.proxy.counts();
    let after_convergence = memory(pid);
    println!("converged from empty in {converged:.1?}; AWS calls: {converge:?}");
    println!("after convergence: {after_convergence}");
    assert_eq!(
        converge.get("RegisterTargets").copied(),
        Some(register_batches(&fleet, 200)),
        "{converge:?}"
    );

    let started = Instant::now();
    let resync = steady_resync(&fleet, &d).await;
    println!(
        "one steady resync ({:.1?} for two passes): {resync:?}",
        started.elapsed()
    );
    assert_eq!(
        resync,
        BTreeMap::from([("DescribeTargetHealth".to_owned(), GROUPS)])
    );
    let steady = memory(pid);
    println!("steady: {steady}");

    // An hour of 60 s resyncs: each round deletes `churn` nodes, adds `churn` new ones,
    // turns `churn` NotReady and brings the previous round's NotReady back, then waits
    // for a pass to complete after the change.
    let mut next = nodes;
    let mut samples: Vec<Memory> = Vec::new();
    let churn_started = Instant::now();
    fleet.world.proxy.reset_counts();
    for round in 0..rounds {
        let present: Vec<usize> = fleet.present().keys().copied().collect();
        let step = present.len() / churn;
        for k in 0..churn {
            let i = present[(round * 13 + k * step) % present.len()];
            if round % 2 == 0 {
                fleet.remove(i);
            } else {
                fleet.set_ready(i, false);
            }
        }
        let not_ready: Vec<usize> = fleet
            .present()
            .iter()
            .filter(|(_, ready)| !**ready)
            .map(|(i, _)| *i)
            .collect();
        if round % 2 == 0 {
            for i in not_ready {
                fleet.set_ready(i, true);
            }
            for _ in 0..churn {
                fleet.add(next);
                next += 1;
            }
        }
        d.wait_passes(2, Duration::from_secs(300)).await;
        samples.push(memory(pid));
    }
    let churned = churn_started.elapsed();
    let churn_calls = fleet.world.proxy.counts();
    fleet.wait_converged(&d, Duration::from_secs(600)).await;
    let after_churn = memory(pid);
    println!(
        "{rounds} rounds of churn ({churn} deleted or NotReady, {churn} added per round) in {churned:.1?}; AWS calls: {churn_calls:?}"
    );
    println!(
        "RSS per round (MiB): {:?}",
        samples
            .iter()
            .map(|m| (m.rss_kib as f64 / 1024.0 * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    println!("after churn: {after_churn}");
    // Flat: the last rounds hold no more than the first ones plus a little slack for
    // the allocator (a per-node leak would grow by the churned nodes' share each round).
    let quarter = (rounds / 4).max(1);
    let early = samples[..quarter]
        .iter()
        .map(|m| m.rss_kib)
        .max()
        .unwrap_or(0);
    let late = samples[rounds - quarter..]
        .iter()
        .map(|m| m.rss_kib)
        .max()
        .unwrap_or(0);
    assert!(
        late <= early + early / 10 + 2048,
        "memory grew under churn: {early} KiB early, {late} KiB late"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: resident memory by fleet size; run with --ignored --nocapture"]
async fn cluster_mode_memory_by_fleet_size() {
    let sizes = std::env::var("BERTH_SCALE_SIZES").unwrap_or_else(|_| "0,1000,2500,5000".into());
    for nodes in sizes.split(',').filter_map(|n| n.trim().parse().ok()) {
        let fleet = Fleet::build(nodes, GROUPS, 0).await;
        if let Some(hold) = env_usize_opt("BERTH_SCALE_HOLD") {
            hold_for_a_profiler(&fleet, nodes, hold).await;
            continue;
        }
        let d = fleet.daemon(1, &[], &[]);
        let converged = fleet.wait_converged(&d, Duration::from_secs(900)).await;
        d.wait_passes(3, Duration::from_secs(300)).await;
        let pid = d.pid().expect("daemon running");
        println!(
            "{nodes} nodes ({} targets): converged in {converged:.1?}, after 3 resyncs {}",
            fleet.expected_targets(),
            memory(pid)
        );
    }
}

/// RegisterTargets calls expected to register the whole fleet from empty, `batch`
/// targets per call.
fn register_batches(fleet: &Fleet, batch: usize) -> usize {
    fleet
        .expected()
        .iter()
        .map(|g| g.len().div_ceil(batch))
        .sum()
}

/// The AWS calls of one steady-state resync: counted between the ends of two passes.
async fn steady_resync(fleet: &Fleet, d: &Daemon) -> BTreeMap<String, usize> {
    d.wait_passes(1, Duration::from_secs(300)).await;
    fleet.world.proxy.reset_counts();
    d.wait_passes(1, Duration::from_secs(300)).await;
    fleet.world.proxy.counts()
}

fn env_usize(name: &str, default: usize) -> usize {
    env_usize_opt(name).unwrap_or(default)
}

fn env_usize_opt(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// With `BERTH_SCALE_HOLD=<seconds>`: writes the daemon's environment and command line
/// to `<dir>/run-daemon.sh` and keeps the fleet up that long, for running the daemon by
/// hand under a heap profiler (`heaptrack sh run-daemon.sh` does not follow the exec;
/// edit the script's last line to `exec heaptrack "$DAEMON" ...`).
async fn hold_for_a_profiler(fleet: &Fleet, nodes: usize, seconds: usize) {
    let w = &fleet.world;
    let mut script = String::from("#!/bin/sh\n");
    for (k, v) in berth_testing::aws_env(&w.proxy.endpoint()) {
        script.push_str(&format!("export {k}='{v}'\n"));
    }
    script.push_str(&format!(
        "export KUBECONFIG='{}' CLUSTER_NAME=e2e POD_NAMESPACE=default POD_NAME=berth-daemon-manual RUST_LOG=info\n",
        w.dir.join("kubeconfig").display()
    ));
    script.push_str(&format!(
        "DAEMON='{}'\nexec \"$DAEMON\" --listen 127.0.0.1:0 --mode cluster --config '{}' --sleep-interval 1\n",
        env!("CARGO_BIN_EXE_berth-daemon"),
        fleet.config.display()
    ));
    let path = w.write("run-daemon.sh", &script);
    println!(
        "{nodes} nodes: the fleet is up for {seconds} s; run {}",
        path.display()
    );
    tokio::time::sleep(Duration::from_secs(seconds as u64)).await;
}
