//! The compiled cluster-mode daemon through AWS faults and a leader crash, at CI scale
//! (the 5,000-node runs are benchmarks in scale_faults.rs):
//! - a fifth of the ELBv2 calls failing (throttling, 503, connection closed) and a
//!   tenth 2 s slow for the whole convergence: it converges, deregisters nothing,
//!   registers each target once, and the retries show in /metrics;
//! - the leader SIGKILLed in the middle of a convergence: the other replica takes over
//!   once the Lease expires and finishes — every target registered exactly once, none
//!   forgotten (in AWS and in the ownership record), nothing deregistered.

mod common;
mod faults_support;

use std::time::Duration;

use berth_testing::{Fault, Rule};
use common::*;
use faults_support::*;

/// Generous bounds for event-based waits (nothing asserts a duration).
const CONVERGE: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_of_aws_calls_failing_converges_without_a_wrong_deregistration() {
    let w = World::new().await;
    let estate = Estate::build(&w, 150, 12).await;
    let mix = fault_mix(&w.proxy);
    // Small batches: more calls, so every kind of fault lands on each kind of call.
    let args = estate.args(&["--sleep-interval", "2", "--batch-size", "10"]);
    let d = w.daemon(&args, &[]);
    let want = estate.registrations() as f64;
    eventually(CONVERGE, "every target registered", &d, || async {
        d.metric("berth_daemon_registrations_total")
            .is_some_and(|n| n >= want)
    })
    .await;
    eventually(CONVERGE, "a converged pass", &d, || async {
        metric_sum(
            &d.metrics(),
            "berth_reconcile_total",
            &["controller=\"nodes\"", "result=\"success\""],
        ) >= 1.0
    })
    .await;
    let fired = mix.fired(&w.proxy);
    let metrics = d.metrics();
    let (calls, errors) = aws_calls_and_errors(&metrics);
    println!("faults injected: {fired:?}\nAWS calls: {calls:?}\nAWS errors: {errors:?}");

    assert_eq!(estate.differences(&w).await, Vec::<String>::new());
    assert_eq!(
        w.proxy.count("DeregisterTargets"),
        0,
        "a fresh convergence deregisters nothing: {:?}",
        w.proxy.counts()
    );
    let received = registrations_received(&w.proxy);
    assert_eq!(received.len(), estate.registrations());
    assert_eq!(registered_twice(&received), Vec::new());
    assert_eq!(owned_pairs(&w).len(), estate.registrations());
    for (fault, n) in &fired {
        assert!(*n >= 1, "{fault} never injected: {fired:?}");
    }
    // Every failed attempt is visible, by operation and error code.
    let throttled: f64 = errors
        .iter()
        .filter(|(k, _)| k.ends_with(" Throttling"))
        .map(|(_, v)| v)
        .sum();
    let unavailable: f64 = errors
        .iter()
        .filter(|(k, _)| k.ends_with(" ServiceUnavailable"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        throttled as usize,
        w.proxy.fired(mix.throttle),
        "{errors:?}"
    );
    assert_eq!(
        unavailable as usize,
        w.proxy.fired(mix.server_error),
        "{errors:?}"
    );
    let all_errors: f64 = errors.values().sum();
    let injected =
        w.proxy.fired(mix.throttle) + w.proxy.fired(mix.server_error) + w.proxy.fired(mix.reset);
    assert_eq!(all_errors as usize, injected, "{errors:?}");
    let attempts: f64 = calls.values().sum();
    assert_eq!(
        attempts as usize,
        w.proxy.total(),
        "every attempt counted: {calls:?} vs {:?}",
        w.proxy.counts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_mid_convergence_the_other_finishes_registering_each_target_once() {
    let w = World::new().await;
    let estate = Estate::build(&w, 150, 12).await;
    // Slow registrations so that the convergence is still going when the leader dies.
    w.proxy.add(Rule::new(
        "RegisterTargets",
        Fault::Delay(Duration::from_millis(300)),
    ));
    let args = estate.args(&["--sleep-interval", "2", "--batch-size", "5"]);
    let mut a = w.daemon(&args, &[]);
    let mut b = w.daemon(&args, &[]);
    let batches = estate.registrations() / 5;
    eventually(CONVERGE, "a leader registering", &a, || async {
        w.proxy.forwarded_bodies("RegisterTargets").len() >= batches / 4
    })
    .await;
    let leads =
        |d: &Daemon| metric_sum(&d.metrics(), "berth_leader", &["controller=\"nodes\""]) == 1.0;
    let a_leads = leads(&a);
    assert_ne!(a_leads, leads(&b), "exactly one leader");
    let (leader, follower) = if a_leads {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert_eq!(follower.passes(), 0, "the follower has not reconciled");
    leader.kill();
    let at_kill = registrations_received(&w.proxy).len();
    println!(
        "leader killed after {at_kill} of {} registrations",
        estate.registrations()
    );
    assert!(
        at_kill < estate.registrations(),
        "killed mid-convergence: {at_kill} already registered"
    );

    let follower = &*follower;
    eventually(CONVERGE, "the new leader finishes", follower, || async {
        estate.differences(&w).await.is_empty()
    })
    .await;
    eventually(CONVERGE, "a converged pass", follower, || async {
        metric_sum(
            &follower.metrics(),
            "berth_reconcile_total",
            &["controller=\"nodes\"", "result=\"success\""],
        ) >= 1.0
    })
    .await;
    // None forgotten: in AWS and in the ownership record (so it can be deregistered).
    assert_eq!(estate.differences(&w).await, Vec::<String>::new());
    assert_eq!(owned_pairs(&w).len(), estate.registrations());
    // None registered twice: each target reached AWS in exactly one RegisterTargets.
    let received = registrations_received(&w.proxy);
    assert_eq!(received.len(), estate.registrations());
    assert_eq!(registered_twice(&received), Vec::new());
    assert_eq!(
        w.proxy.count("DeregisterTargets"),
        0,
        "{:?}",
        w.proxy.counts()
    );
}
