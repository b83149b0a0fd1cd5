//! A minimum interval between API calls, shared by concurrent appliers.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Spaces calls at least `interval` apart (a token bucket of one token).
#[derive(Debug)]
pub(crate) struct RateLimiter {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub(crate) fn new(interval: Duration) -> Self {
        RateLimiter {
            interval,
            next: Mutex::new(None),
        }
    }

    /// The minimum interval between two calls.
    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// Waits for the next free slot.
    pub(crate) async fn acquire(&self) {
        if self.interval.is_zero() {
            return;
        }
        let mut next = self.next.lock().await;
        let now = Instant::now();
        let slot = match *next {
            Some(at) if at > now => at,
            _ => now,
        };
        *next = Some(slot + self.interval);
        drop(next);
        tokio::time::sleep_until(slot).await;
    }
}
