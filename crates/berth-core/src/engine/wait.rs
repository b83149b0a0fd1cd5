//! Waiting for targets to become healthy or to leave a group: polls with backoff and a
//! deadline, never in a busy loop.

use std::time::Duration;

use tokio::time::Instant;

use super::retry::timeout;
use crate::domain::{Target, TargetGroupArn, TargetState};
use crate::provider::{PollPolicy, TargetGroups};
use crate::Result;

/// What to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// Every target `healthy`.
    Healthy,
    /// Every target gone from the group (drained).
    Gone,
}

/// Polls `health` until every target in `targets` satisfies `until`, backing off from
/// `policy.initial` to `policy.max`, failing with a timeout at `policy.deadline`.
/// Returns how long it took.
pub async fn wait_for_targets(
    provider: &dyn TargetGroups,
    group: &TargetGroupArn,
    targets: &[Target],
    until: WaitFor,
    policy: PollPolicy,
) -> Result<Duration> {
    let started = Instant::now();
    let mut delay = policy.initial;
    loop {
        let health = provider.health(group).await;
        // A failed poll is not the end of the wait: only the deadline is.
        if let Ok(health) = &health {
            let done = targets.iter().all(|t| {
                let state = health.iter().find(|h| &h.target == t).map(|h| h.state);
                match until {
                    WaitFor::Healthy => state == Some(TargetState::Healthy),
                    WaitFor::Gone => state.is_none(),
                }
            });
            if done {
                return Ok(started.elapsed());
            }
        } else if let Err(e) = &health {
            if !e.is_retryable() {
                return health.map(|_| started.elapsed());
            }
        }
        let elapsed = started.elapsed();
        if elapsed >= policy.deadline {
            let what = match until {
                WaitFor::Healthy => "waiting for healthy targets",
                WaitFor::Gone => "waiting for targets to drain",
            };
            return Err(timeout(what, elapsed));
        }
        tokio::time::sleep(delay.min(policy.deadline - elapsed)).await;
        delay = (delay * 2).min(policy.max);
    }
}
