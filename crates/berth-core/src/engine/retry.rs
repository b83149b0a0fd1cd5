//! Retries with jittered exponential backoff and a bounded budget.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::{Error, Result};

/// How the engine retries a failing call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt (before jitter).
    pub base_delay: Duration,
    /// Longest single delay.
    pub max_delay: Duration,
    /// Stop retrying once this much time has been spent on one call.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
            budget: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The delay before attempt `attempt + 1` ("full jitter": uniform in
    /// `[0, min(max, base * 2^attempt)]`, so many callers do not retry in step).
    /// Throttling doubles the ceiling: the service asked us to slow down.
    pub fn delay(&self, attempt: u32, throttled: bool) -> Duration {
        let factor = 1u32 << attempt.min(16);
        let mut ceiling = self.base_delay.saturating_mul(factor);
        if throttled {
            ceiling = ceiling.saturating_mul(2);
        }
        let ceiling = ceiling.min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(nanos / 2..=nanos.max(1)))
    }
}

/// Runs `call` until it succeeds, fails with a non-retryable error, or the policy's
/// attempts or budget run out. Returns the result and the number of attempts.
pub async fn retry<T, F, Fut>(policy: &RetryPolicy, mut call: F) -> (Result<T>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Ok(v) => return (Ok(v), attempt),
            Err(e) if !e.is_retryable() => return (Err(e), attempt),
            Err(e) => {
                let delay = policy.delay(attempt - 1, e.is_throttling());
                let out_of_budget = started.elapsed() + delay > policy.budget;
                if attempt >= policy.max_attempts || out_of_budget {
                    return (Err(e), attempt);
                }
                // Operators need to see throttling and outages without debug logs on.
                if e.is_throttling() {
                    tracing::warn!(error = %e, attempt, ?delay, "throttled; backing off");
                } else {
                    tracing::info!(error = %e, attempt, ?delay, "retryable failure; backing off");
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Shorthand used by waiters: a retryable error that ends a wait.
pub(crate) fn timeout(operation: &str, after: Duration) -> Error {
    Error::Timeout {
        operation: operation.to_owned(),
        after,
    }
}
