//! The compiled cluster-mode daemon through AWS faults and a leader crash, at CI scale
//! over a `common::fleet` estate (the 5,000-node runs are benchmarks in
//! scale_faults.rs; the checks are shared, in faults_support):
//! - a fifth of the ELBv2 calls failing (throttling, 503, connection closed) and a
//!   tenth 2 s slow for the whole convergence: it converges, deregisters nothing,
//!   AWS receives each target once, and every failed attempt shows in /metrics;
//! - the leader SIGKILLed in the middle of a convergence: the other replica takes over
//!   once the Lease expires and finishes — every target registered exactly once, none
//!   forgotten (in AWS and in the ownership record), nothing deregistered.

mod common;
mod faults_support;

use std::time::Duration;

use common::fleet::Fleet;
use faults_support::*;

/// A bound for event-based waits (nothing asserts a duration).
const TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_of_aws_calls_failing_converges_without_a_wrong_deregistration() {
    let fleet = Fleet::build(150, 12, 0).await;
    // Small batches: more calls, so every kind of fault lands on each kind of call.
    converge_through_faults(&fleet, 2, &["--batch-size", "10"], TIMEOUT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_mid_convergence_the_other_finishes_registering_each_target_once() {
    let fleet = Fleet::build(150, 12, 0).await;
    leader_killed_mid_convergence(&fleet, 2, 5, Duration::from_millis(300), TIMEOUT).await;
}
