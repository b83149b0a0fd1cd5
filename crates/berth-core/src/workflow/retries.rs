//! The binder through the engine's [`Caller`] on the in-memory providers, in tokio's
//! paused time: failures are retried with backoff and counted, and the rate limit
//! holds under a burst.

use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;

use super::address_world::{id, World};
use crate::domain::{InstanceId, InstanceState};
use crate::engine::{Caller, RetryPolicy};
use crate::Error;

/// The shared world with `pool` addresses and `instances` matching instances.
fn world(pool: usize, instances: usize) -> World {
    let w = World::new();
    w.pool(pool);
    for n in 0..instances {
        w.launch(n);
    }
    w
}

fn throttled(operation: &str) -> Error {
    Error::Throttled {
        operation: operation.into(),
        message: "Rate exceeded".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn throttled_and_failing_calls_are_retried_with_backoff_and_reported() {
    let w = world(2, 1);
    w.addresses
        .faults
        .fail("AssociateAddress", throttled("AssociateAddress"), 2);
    w.ledger.faults.fail(
        "PutItem",
        Error::Unavailable {
            operation: "PutItem".into(),
            message: "InternalServerError".into(),
        },
        1,
    );
    let root = Caller::default();
    let event = root.scope();
    let started = Instant::now();
    let outcome = w
        .binder_through(w.settings(false), event.clone())
        .handle(&id(0), InstanceState::Running)
        .await
        .unwrap();
    assert_eq!(outcome.kind(), "bound", "{outcome:?}");
    assert!(started.elapsed() > Duration::ZERO, "retries waited");
    let tally = event.tally();
    let associate = tally.operations["AssociateAddress"];
    assert_eq!((associate.calls, associate.attempts), (1, 3), "{tally}");
    let put = tally.operations["PutItem"];
    assert_eq!(
        (put.calls, put.attempts, put.failures),
        (2, 3, 0),
        "{tally}"
    );
    assert_eq!(tally.retries(), 3);
    assert_eq!(tally.failures(), 0);
    assert_eq!(root.tally(), tally, "the root counts every event's calls");
    // The retried calls really reached the providers.
    assert_eq!(w.addresses.faults.calls("AssociateAddress"), 3);
    assert_eq!(w.ledger.faults.calls("PutItem"), 3);
}

#[tokio::test(start_paused = true)]
async fn a_call_failing_past_its_attempts_fails_the_event_and_is_counted() {
    let w = world(2, 1);
    let policy = RetryPolicy {
        max_attempts: 3,
        ..RetryPolicy::default()
    };
    w.addresses
        .faults
        .fail("DescribeAddresses", throttled("DescribeAddresses"), 3);
    let caller = Caller::new(policy, Duration::ZERO);
    let err = w
        .binder_through(w.settings(false), caller.clone())
        .handle(&id(0), InstanceState::Running)
        .await
        .unwrap_err();
    assert!(err.is_throttling(), "{err:?}");
    let described = caller.tally().operations["DescribeAddresses"];
    assert_eq!((described.attempts, described.failures), (3, 1));
    assert!(w.ledger.rows().is_empty(), "nothing claimed");
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_holds_under_a_burst() {
    const RATE: f64 = 10.0;
    let w = world(20, 20);
    let caller = Caller::new(RetryPolicy::none(), Caller::interval_for_rate(RATE));
    let binder = w.binder_through(w.settings(false), caller.clone());
    let ids: Vec<InstanceId> = (0..20).map(id).collect();
    let started = Instant::now();
    let results = join_all(ids.iter().map(|i| binder.handle(i, InstanceState::Running))).await;
    let elapsed = started.elapsed();
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let calls = caller.tally().attempts();
    assert!(calls >= 20 * 6, "{calls} calls");
    // N calls at R per second take at least (N - 1) / R, however they interleave.
    let floor = Duration::from_secs_f64(f64::from(calls - 1) / RATE);
    assert!(
        elapsed >= floor,
        "{calls} calls in {elapsed:?} (< {floor:?})"
    );
    // And the limiter does not stall either: one interval per call at most.
    let ceiling = Duration::from_secs_f64(f64::from(calls) / RATE);
    assert!(
        elapsed <= ceiling,
        "{calls} calls in {elapsed:?} (> {ceiling:?})"
    );
}
