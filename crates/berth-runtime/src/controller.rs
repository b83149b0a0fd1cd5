//! The controller loop the daemon (and later the provisioner) runs on.
//!
//! ```text
//! triggers ──► debounce ──┐
//! resync timer ───────────┤
//! leadership: now leader ─┼──► [synced? leader?] ──► reconcile(pass) ──► Outcome
//! requeue_after / backoff ┘                                   │
//!        ▲────────────────────────────────────────────────────┘
//! ```
//!
//! - **Triggers**: a stream of [`Trigger`]s. `Changed(key)` schedules a pass after the
//!   debounce (a burst of changes makes one pass; a change never postpones a pass
//!   already due); `Now` schedules one at once (e.g. a spot interruption notice);
//!   `Synced` opens the synced gate. The stream ending is an error
//!   ([`Error::TriggersEnded`]); use `futures::stream::pending()` for "no triggers".
//! - **Synced gate**: with [`Config::wait_for_sync`], no pass runs before `Synced` (the
//!   first full listing) has arrived.
//! - **Leadership gate**: no pass runs while [`Leadership::is_leader`] is false; becoming
//!   leader runs a pass at once.
//! - **Resync**: a pass every [`Config::resync`] after the last one, whatever happened.
//! - **Outcome**: the reconcile function returns when to run again
//!   ([`Outcome::requeue_after`]) and whether it converged ([`Outcome::retry`]); an error
//!   or a pass that did not converge is retried after [`Backoff`]'s jittered,
//!   exponentially growing delay, reset by the next converged pass.
//! - **Cancellation**: the shared token stops the loop between passes (a pass in
//!   progress finishes: half-applied changes are worse than a late exit).
//! - **Metrics**: every pass is recorded in `berth_reconcile_total`,
//!   `berth_reconcile_duration_seconds` and
//!   `berth_last_successful_reconcile_timestamp_seconds`.
//! - **Once**: with [`Config::once`] the loop returns after its first pass.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admin::Readiness;
use crate::exit::{chain, BoxError};
use crate::metrics::{PassResult, ReconcileMetrics};
use crate::Error;

mod leadership;
mod settings;
#[cfg(test)]
mod tests;

pub use leadership::{AlwaysLeader, Leadership};
pub use settings::{Backoff, Config};

/// What wakes the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger<K> {
    /// `K` changed: a pass after the debounce, with `K` in [`Pass::changed`].
    Changed(K),
    /// A pass as soon as the gates allow.
    Now,
    /// The first full listing is in: opens the synced gate and runs a pass.
    Synced,
}

/// Why a pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The first pass (without a synced gate).
    Start,
    /// The first full listing arrived.
    Synced,
    /// Keys changed.
    Changed,
    /// [`Trigger::Now`].
    Now,
    /// The periodic resync.
    Resync,
    /// The previous pass asked for it ([`Outcome::requeue_after`]).
    Requeue,
    /// The previous pass failed or did not converge.
    Retry,
    /// This process became the leader.
    Leadership,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Reason::Start => "start",
            Reason::Synced => "synced",
            Reason::Changed => "changed",
            Reason::Now => "now",
            Reason::Resync => "resync",
            Reason::Requeue => "requeue",
            Reason::Retry => "retry",
            Reason::Leadership => "leadership",
        };
        f.write_str(text)
    }
}

/// One pass: why, and the keys changed since the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass<K> {
    /// Why it runs (the earliest scheduled reason).
    pub reason: Reason,
    /// Keys from [`Trigger::Changed`] since the previous pass, sorted, each once.
    pub changed: Vec<K>,
}

/// What a pass asks of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Run again after this long at the latest (e.g. when a NotReady node's grace ends).
    pub requeue_after: Option<Duration>,
    /// The pass did not converge (a partial failure, a decision held back): retry it
    /// with the error backoff.
    pub retry: bool,
}

impl Outcome {
    /// Converged; nothing to schedule.
    pub fn done() -> Self {
        Outcome::default()
    }

    /// Converged; run again after `after`.
    pub fn requeue_after(after: Duration) -> Self {
        Outcome {
            requeue_after: Some(after),
            retry: false,
        }
    }

    /// Did not converge: retry with backoff.
    pub fn retry() -> Self {
        Outcome {
            requeue_after: None,
            retry: true,
        }
    }

    /// This outcome, also asking for a pass after `after` at the latest (`None`: no
    /// change).
    pub fn and_requeue_after(mut self, after: Option<Duration>) -> Self {
        self.requeue_after = match (self.requeue_after, after) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self
    }
}

/// The reconcile function: any `FnMut(Pass<K>) -> impl Future<Output = Result<Outcome,
/// E>>`, or a type implementing this (whose future may borrow it).
pub trait Reconcile<K> {
    /// The error of a failed pass.
    type Error: Into<BoxError>;

    /// Runs one pass.
    fn reconcile(
        &mut self,
        pass: Pass<K>,
    ) -> impl Future<Output = Result<Outcome, Self::Error>> + Send;
}

impl<K, F, Fut, E> Reconcile<K> for F
where
    F: FnMut(Pass<K>) -> Fut,
    Fut: Future<Output = Result<Outcome, E>> + Send,
    E: Into<BoxError>,
{
    type Error = E;

    fn reconcile(&mut self, pass: Pass<K>) -> impl Future<Output = Result<Outcome, E>> + Send {
        self(pass)
    }
}

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The shutdown token was cancelled.
    Cancelled,
    /// [`Config::once`]: after the first pass, which converged or not.
    Once {
        /// The pass converged.
        converged: bool,
    },
}

/// The controller loop. Build it, then [`Controller::run`] it.
#[derive(Debug)]
pub struct Controller<L = AlwaysLeader> {
    name: String,
    config: Config,
    leadership: L,
    metrics: Option<ReconcileMetrics>,
    readiness: Option<Readiness>,
}

impl Controller<AlwaysLeader> {
    /// A controller named `name` (the `controller` label of its metrics), always leader.
    pub fn new(name: impl Into<String>, config: Config) -> Self {
        Controller {
            name: name.into(),
            config,
            leadership: AlwaysLeader,
            metrics: None,
            readiness: None,
        }
    }
}

impl<L: Leadership> Controller<L> {
    /// Runs passes only while `leadership` says so.
    pub fn leadership<L2: Leadership>(self, leadership: L2) -> Controller<L2> {
        Controller {
            name: self.name,
            config: self.config,
            leadership,
            metrics: self.metrics,
            readiness: self.readiness,
        }
    }

    /// Records every pass in these metrics (`Metrics::reconcile`).
    pub fn metrics(mut self, metrics: &ReconcileMetrics) -> Self {
        self.metrics = Some(metrics.clone());
        self
    }

    /// Sets `readiness` ready once synced (at once without a synced gate).
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = Some(readiness);
        self
    }

    /// Runs until `shutdown` is cancelled (or after one pass with [`Config::once`]).
    pub async fn run<K, S, R>(
        mut self,
        triggers: S,
        shutdown: CancellationToken,
        mut reconcile: R,
    ) -> Result<Stopped, Error>
    where
        K: Ord + Send,
        S: Stream<Item = Trigger<K>> + Send,
        R: Reconcile<K> + Send,
    {
        let mut triggers = std::pin::pin!(triggers);
        let mut state = State::<K> {
            pending: None,
            changed: BTreeSet::new(),
            failures: 0,
        };
        let mut synced = !self.config.wait_for_sync;
        if synced {
            self.set_ready();
            state.schedule(Instant::now(), Reason::Start);
        }
        let mut next_resync = self.config.resync.map(|r| Instant::now() + r);
        let mut leadership_final = false;
        // The leadership last acted upon (is_leader may already show a change that
        // `changed` has not reported yet).
        let mut last_leader = self.leadership.is_leader();
        self.record_leader(last_leader);
        loop {
            let leading = self.leadership.is_leader();
            let due = state
                .pending
                .filter(|_| synced && leading)
                .map(|(at, _)| at);
            // Biased: a due pass goes before queued triggers, so a flood of changes
            // cannot starve it (the keys it brings go into the next pass).
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(Stopped::Cancelled),
                () = sleep_until(due) => {
                    let converged = self.pass(&mut state, &mut reconcile).await;
                    if self.config.once {
                        return Ok(Stopped::Once { converged });
                    }
                    next_resync = self.config.resync.map(|r| Instant::now() + r);
                }
                trigger = triggers.next() => match trigger {
                    Some(Trigger::Changed(key)) => {
                        state.changed.insert(key);
                        state.schedule(Instant::now() + self.config.debounce, Reason::Changed);
                    }
                    Some(Trigger::Now) => state.schedule(Instant::now(), Reason::Now),
                    Some(Trigger::Synced) => {
                        if !synced {
                            tracing::debug!(controller = %self.name, "synced");
                            synced = true;
                            self.set_ready();
                        }
                        state.schedule(Instant::now(), Reason::Synced);
                    }
                    None => return Err(Error::TriggersEnded),
                },
                changed = self.leadership.changed(), if !leadership_final => match changed {
                    Some(leading) if leading != last_leader => {
                        last_leader = leading;
                        self.record_leader(leading);
                        if leading {
                            tracing::info!(controller = %self.name, "became the leader");
                            state.schedule(Instant::now(), Reason::Leadership);
                        } else {
                            tracing::info!(controller = %self.name, "no longer the leader");
                        }
                    }
                    Some(_) => {}
                    None => leadership_final = true,
                },
                () = sleep_until(next_resync) => {
                    tracing::debug!(controller = %self.name, "periodic resync");
                    next_resync = self.config.resync.map(|r| Instant::now() + r);
                    state.schedule(Instant::now(), Reason::Resync);
                }
            }
        }
    }

    fn record_leader(&self, leading: bool) {
        if let Some(m) = &self.metrics {
            m.set_leader(&self.name, leading);
        }
    }

    fn set_ready(&self) {
        if let Some(r) = &self.readiness {
            r.ready();
        }
    }

    /// Runs the due pass, records it and schedules the next. Returns whether it
    /// converged.
    async fn pass<K: Ord, R: Reconcile<K>>(&self, state: &mut State<K>, reconcile: &mut R) -> bool {
        let reason = state.pending.take().map_or(Reason::Now, |(_, r)| r);
        let changed: Vec<K> = std::mem::take(&mut state.changed).into_iter().collect();
        let started = Instant::now();
        let result = reconcile.reconcile(Pass { reason, changed }).await;
        let took = started.elapsed();
        let (result, converged, requeue_after) = match result {
            Ok(o) if o.retry => (PassResult::Requeue, false, o.requeue_after),
            Ok(o) if o.requeue_after.is_some() => (PassResult::RequeueAfter, true, o.requeue_after),
            Ok(_) => (PassResult::Success, true, None),
            Err(e) => {
                let e: BoxError = e.into();
                tracing::error!(controller = %self.name, %reason, error = %chain(&*e), "reconcile pass failed");
                (PassResult::Error, false, None)
            }
        };
        if let Some(m) = &self.metrics {
            m.observe(&self.name, result, took);
        }
        let now = Instant::now();
        if converged {
            state.failures = 0;
        } else {
            state.failures = state.failures.saturating_add(1);
            let delay = self.config.backoff.delay(state.failures);
            tracing::info!(controller = %self.name, retry_in = ?delay, "pass did not converge; retrying with backoff");
            state.schedule(now + delay, Reason::Retry);
        }
        if let Some(after) = requeue_after {
            state.schedule(now + after, Reason::Requeue);
        }
        tracing::debug!(controller = %self.name, %reason, result = result.as_str(), ?took, "pass");
        converged
    }
}

struct State<K> {
    /// When the next pass is due, and why.
    pending: Option<(Instant, Reason)>,
    changed: BTreeSet<K>,
    /// Consecutive passes that did not converge.
    failures: u32,
}

impl<K> State<K> {
    /// A pass at `at` unless one is due earlier.
    fn schedule(&mut self, at: Instant, reason: Reason) {
        match self.pending {
            Some((due, _)) if due <= at => {}
            _ => self.pending = Some((at, reason)),
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
