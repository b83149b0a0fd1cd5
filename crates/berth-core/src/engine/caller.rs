//! [`Caller`]: the one path of every provider call — rate-limited, retried with jittered
//! backoff, and counted.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::limiter::RateLimiter;
use super::retry::{retry, RetryPolicy};
use crate::Result;

/// Calls, attempts and failures of one API operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperationTally {
    /// Calls made (each may take several attempts).
    pub calls: u32,
    /// Attempts in all, retries included.
    pub attempts: u32,
    /// Calls that failed after their last attempt.
    pub failures: u32,
}

impl OperationTally {
    /// Attempts beyond the first of each call.
    pub fn retries(&self) -> u32 {
        self.attempts.saturating_sub(self.calls)
    }
}

/// Per operation name, what a [`Caller`] (or one of its scopes) spent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// By operation name, e.g. `RegisterTargets`.
    pub operations: BTreeMap<String, OperationTally>,
}

impl Tally {
    /// Attempts in all.
    pub fn attempts(&self) -> u32 {
        self.operations.values().map(|o| o.attempts).sum()
    }

    /// Attempts beyond the first of each call.
    pub fn retries(&self) -> u32 {
        self.operations.values().map(OperationTally::retries).sum()
    }

    /// Calls that failed after their last attempt.
    pub fn failures(&self) -> u32 {
        self.operations.values().map(|o| o.failures).sum()
    }

    /// Adds another tally to this one.
    pub fn merge(&mut self, other: &Tally) {
        for (name, o) in &other.operations {
            let mine = self.operations.entry(name.clone()).or_default();
            mine.calls += o.calls;
            mine.attempts += o.attempts;
            mine.failures += o.failures;
        }
    }

    fn record(&mut self, operation: &str, attempts: u32, failed: bool) {
        let o = self.operations.entry(operation.to_owned()).or_default();
        o.calls += 1;
        o.attempts += attempts;
        o.failures += u32::from(failed);
    }
}

impl fmt::Display for Tally {
    /// `RegisterTargets 2/3 (1 failed), PutItem 1/1`: calls / attempts per operation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, o) in &self.operations {
            if !first {
                write!(f, ", ")?;
            }
            first = false;
            write!(f, "{name} {}/{}", o.calls, o.attempts)?;
            if o.failures > 0 {
                write!(f, " ({} failed)", o.failures)?;
            }
        }
        Ok(())
    }
}

/// The call path of every provider call a workflow makes: waits for the rate limit,
/// retries retryable failures with jittered backoff under [`RetryPolicy`], and counts
/// calls, attempts and failures per operation.
///
/// Clones share the rate limit and the tallies. [`Caller::scope`] makes a caller that
/// shares the rate limit and also counts into a fresh tally, so one change or one
/// event can report what it alone spent.
///
/// ```ignore
/// let health = caller.call("DescribeTargetHealth", || targets.health(&arn)).await?;
/// ```
#[derive(Clone)]
pub struct Caller {
    retry: RetryPolicy,
    limiter: Arc<RateLimiter>,
    /// The root's tally first, then each enclosing scope's, innermost last.
    tallies: Vec<Arc<Mutex<Tally>>>,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("retry", &self.retry)
            .field("min_interval", &self.limiter.interval())
            .finish_non_exhaustive()
    }
}

impl Default for Caller {
    /// The default retry policy, no rate limit.
    fn default() -> Self {
        Caller::new(RetryPolicy::default(), Duration::ZERO)
    }
}

impl Caller {
    /// A caller retrying under `retry` and spacing calls at least `min_interval` apart
    /// (zero: no limit).
    pub fn new(retry: RetryPolicy, min_interval: Duration) -> Self {
        Caller {
            retry,
            limiter: Arc::new(RateLimiter::new(min_interval)),
            tallies: vec![Arc::new(Mutex::new(Tally::default()))],
        }
    }

    /// The interval that keeps calls under `max_per_second` (zero or less: no limit).
    pub fn interval_for_rate(max_per_second: f64) -> Duration {
        if max_per_second > 0.0 && max_per_second.is_finite() {
            Duration::from_secs_f64(1.0 / max_per_second)
        } else {
            Duration::ZERO
        }
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The same caller (same rate limit, same enclosing tallies) with another retry
    /// policy, e.g. no retries for a call whose caller retries on its own schedule.
    pub fn with_retry(&self, retry: RetryPolicy) -> Caller {
        Caller {
            retry,
            ..self.clone()
        }
    }

    /// A caller that shares this one's rate limit and tallies and also counts into a
    /// fresh tally of its own, read with [`Caller::tally`].
    pub fn scope(&self) -> Caller {
        let mut tallies = self.tallies.clone();
        tallies.push(Arc::new(Mutex::new(Tally::default())));
        Caller {
            tallies,
            ..self.clone()
        }
    }

    /// What this caller's innermost scope spent (for the root: everything so far).
    pub fn tally(&self) -> Tally {
        self.tallies
            .last()
            .map(|t| t.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .unwrap_or_default()
    }

    /// Runs `call` through the rate limiter and the retry policy, and counts it under
    /// `operation`. Non-retryable errors are returned at once.
    pub async fn call<T, F, Fut>(&self, operation: &str, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let (result, attempts) = retry(&self.retry, || async {
            self.limiter.acquire().await;
            call().await
        })
        .await;
        if let Err(error) = &result {
            tracing::debug!(operation, attempts, %error, "call failed");
        }
        for tally in &self.tallies {
            tally.lock().unwrap_or_else(PoisonError::into_inner).record(
                operation,
                attempts,
                result.is_err(),
            );
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::Error;

    fn throttled() -> Error {
        Error::Throttled {
            operation: "Op".into(),
            message: "slow down".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn counts_attempts_and_failures_per_scope_and_in_the_root() {
        let root = Caller::default();
        let scope = root.scope();
        let tries = AtomicU32::new(0);
        let r = scope
            .call("Op", || async {
                if tries.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(throttled())
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(r.unwrap(), 7);
        let denied = scope
            .call("Denied", || async {
                Err::<(), _>(Error::AccessDenied {
                    action: "x:Y".into(),
                    message: "no".into(),
                })
            })
            .await;
        assert!(denied.is_err());
        let t = scope.tally();
        assert_eq!(
            t.operations["Op"],
            OperationTally {
                calls: 1,
                attempts: 3,
                failures: 0
            }
        );
        assert_eq!(t.operations["Denied"].failures, 1);
        assert_eq!((t.attempts(), t.retries(), t.failures()), (4, 2, 1));
        assert_eq!(root.tally(), t, "the root counts what its scopes spent");
        assert!(root.scope().tally().operations.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_the_rate_limit() {
        let a = Caller::new(RetryPolicy::none(), Duration::from_millis(100));
        let b = a.clone();
        let started = tokio::time::Instant::now();
        for c in [&a, &b, &a, &b] {
            c.call("Op", || async { Ok(()) }).await.unwrap();
        }
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        assert_eq!(a.tally().operations["Op"].calls, 4);
    }

    #[test]
    fn a_rate_becomes_an_interval() {
        assert_eq!(Caller::interval_for_rate(4.0), Duration::from_millis(250));
        assert_eq!(Caller::interval_for_rate(0.0), Duration::ZERO);
    }
}
