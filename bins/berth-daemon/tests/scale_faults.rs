//! Faults and leader change at scale (docs/benchmarks.md, "Faults and leader change at
//! scale"): ignored benchmarks, run on purpose with
//!
//! ```text
//! cargo test -p berth-daemon --test scale_faults -- --ignored --nocapture --test-threads 1
//! ```
//!
//! - a burst of throttling, then how fast the daemon recovers with the SDK's adaptive
//!   retry (berth's former setting) and with standard retry (berth's setting now);
//! - a fifth of the ELBv2 calls failing and a tenth 2 s slow for the whole convergence
//!   of 5,000 nodes;
//! - the leader SIGKILLed in the middle of a 5,000-node convergence.
//!
//! `BERTH_SCALE_NODES` (default 5000) sets the fleet size, `BERTH_BURST_NODES` (default
//! 1000) that of the retry comparison. On a shared target dir, copy the daemon first
//! and point `BERTH_DAEMON_BIN` at the copy, so that another checkout's build cannot
//! replace it midway. The checks are those of the
//! CI-sized runs in e2e_aws_faults.rs (faults_support).

mod common;
mod faults_support;

use std::time::{Duration, Instant};

use berth_testing::{Fault, Match, Rule};
use common::fleet::Fleet;
use common::{eventually, Daemon};
use faults_support::*;

const GROUPS: usize = 20;
const TIMEOUT: Duration = Duration::from_secs(1800);

/// The SDK retry settings compared: berth's former one, its current one, and the SDK
/// not retrying at all (the engine alone).
const MODES: [(&str, &[(&str, &str)]); 3] = [
    (
        "adaptive, 5 attempts (before)",
        &[("AWS_RETRY_MODE", "adaptive"), ("AWS_MAX_ATTEMPTS", "5")],
    ),
    ("standard, 3 attempts (now)", &[]),
    ("standard, 1 attempt", &[("AWS_MAX_ATTEMPTS", "1")]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: wall clock; run with --ignored --nocapture"]
async fn throttling_burst_recovery_adaptive_versus_standard_retry() {
    let nodes = env_usize("BERTH_BURST_NODES", 1000);
    let burst = Duration::from_secs(20);
    let resync = 10;
    let mut lines = Vec::new();
    for (mode, env) in MODES {
        // Every ELBv2 call throttled for 20 s from the start, then none.
        let fleet = Fleet::build(nodes, GROUPS, 0).await;
        let w = &fleet.world;
        let throttle = w.proxy.add(Rule::matching(
            Match::Service("elasticloadbalancing".into()),
            Fault::Throttle,
        ));
        let d = fleet.daemon(resync, &[], env);
        // The burst starts with the daemon's first ELBv2 call.
        eventually(TIMEOUT, "the first call throttled", &d, || async {
            w.proxy.fired(throttle) >= 1
        })
        .await;
        tokio::time::sleep(burst).await;
        let throttled = w.proxy.fired(throttle);
        w.proxy.remove(throttle);
        let converged = fleet.wait_converged(&d, TIMEOUT).await;
        let calls = w.proxy.total();
        let passes = steady_pass_seconds(&d, 2).await;
        let line = format!(
            "{mode}: {throttled} calls throttled in the {burst:?} burst; converged {converged:.1?} \
             after it ended ({calls} calls in all); the next 2 resync passes took {passes:.2?} s"
        );
        println!("{line}");
        lines.push(line);
        drop(d);
        drop(fleet);

        // A fifth of the calls failing for the whole convergence.
        let fleet = Fleet::build(nodes, GROUPS, 0).await;
        let mix = fault_mix(&fleet.world.proxy);
        let d = fleet.daemon(resync, &[], env);
        let converged = fleet.wait_converged(&d, TIMEOUT).await;
        let fired = mix.fired(&fleet.world.proxy);
        let passes = steady_pass_seconds(&d, 2).await;
        let line = format!(
            "{mode}: a fifth failing ({fired:?}): converged in {converged:.1?} from the start \
             ({} calls); the next 2 resync passes took {passes:.2?} s",
            fleet.world.proxy.total()
        );
        println!("{line}");
        lines.push(line);
    }
    println!("\n{}", lines.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: 5,000 nodes, minutes of wall clock; run with --ignored --nocapture"]
async fn a_fifth_of_aws_calls_failing_5000_nodes_converge() {
    let nodes = env_usize("BERTH_SCALE_NODES", 5000);
    let built = Instant::now();
    let fleet = Fleet::build(nodes, GROUPS, 0).await;
    println!(
        "fleet: {nodes} nodes, {GROUPS} groups, {} targets, built in {:.1?}",
        fleet.expected_targets(),
        built.elapsed()
    );
    let run = converge_through_faults(&fleet, 30, &[], TIMEOUT).await;
    let retries: f64 = run.errors.values().sum();
    println!(
        "{nodes} nodes through a fifth of ELBv2 calls failing: converged in {:.1?}, \
         {retries} failed attempts retried",
        run.converged_in
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: 5,000 nodes, minutes of wall clock; run with --ignored --nocapture"]
async fn leader_killed_mid_convergence_5000_nodes_the_other_finishes() {
    let nodes = env_usize("BERTH_SCALE_NODES", 5000);
    let fleet = Fleet::build(nodes, GROUPS, 0).await;
    let run =
        leader_killed_mid_convergence(&fleet, 30, 200, Duration::from_millis(300), TIMEOUT).await;
    println!(
        "{nodes} nodes: leader killed at {}/{} registrations; the new leader finished {:.1?} \
         after the kill; {} RegisterTargets in all",
        run.registered_at_kill, run.targets, run.finished_in, run.register_calls
    );
}

/// The durations of the next `n` passes (each a steady resync), in seconds, from the
/// pass duration histogram's sum and count read in one scrape.
async fn steady_pass_seconds(d: &Daemon, n: usize) -> Vec<f64> {
    let read = |d: &Daemon| {
        let metrics = d.metrics();
        let of = |name: &str| metric_sum(&metrics, name, &["controller=\"nodes\""]);
        (
            of("berth_reconcile_duration_seconds_count"),
            of("berth_reconcile_duration_seconds_sum"),
        )
    };
    let mut out = Vec::new();
    let (mut count, mut sum) = read(d);
    let deadline = Instant::now() + TIMEOUT;
    while out.len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (c, s) = read(d);
        if c > count {
            out.push((s - sum) / (c - count));
            (count, sum) = (c, s);
        }
    }
    out
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
