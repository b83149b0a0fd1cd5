//! How the controller loop runs: its [`Config`] and the [`Backoff`] of failed passes.

use std::time::Duration;

/// The delay before retrying a failed pass: `initial`, doubled after each failure up to
/// `max`, plus a random part of up to `jitter` times the delay (so replicas and pods do
/// not retry in step). Reset by a converged pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay (before jitter).
    pub max: Duration,
    /// The random part, as a fraction of the delay (0.2 = up to 20 % more).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The delay after `failures` consecutive failures (1 for the first), jitter
    /// included.
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(32);
        let base = self
            .initial
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.max);
        let jitter = self.jitter.clamp(0.0, 1.0) * fastrand::f64();
        base + base.mul_f64(jitter)
    }
}

/// How the loop runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// How long a changed key waits for others before its pass.
    pub debounce: Duration,
    /// A pass this long after the previous one; `None`: only on triggers.
    pub resync: Option<Duration>,
    /// Retries of failed passes.
    pub backoff: Backoff,
    /// No pass before [`Trigger::Synced`].
    pub wait_for_sync: bool,
    /// Return after the first pass.
    pub once: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            debounce: Duration::from_secs(1),
            resync: Some(Duration::from_secs(300)),
            backoff: Backoff::default(),
            wait_for_sync: true,
            once: false,
        }
    }
}
