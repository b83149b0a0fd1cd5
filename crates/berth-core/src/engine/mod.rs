//! Applies a [`Plan`] through typed providers: batched, rate-limited, retried with
//! jittered backoff, and reported change by change.
//!
//! A change type implements [`crate::plan::Change`] (pure: size, verb, batching) and
//! [`Apply`] (which providers it needs and how it is applied through a [`Caller`]). The
//! engine is generic over it, so a new capability brings its own change type and
//! providers without touching the others, and a missing provider is a compile error.

mod caller;
mod leave;
mod limiter;
mod membership;
mod records;
mod report;
mod retry;
mod wait;

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};

use crate::plan::{Change, Plan};
use crate::provider::{DnsZones, PollPolicy};
use crate::{Error, Result};

pub use caller::{Caller, OperationTally, Tally};
pub use leave::{Drained, Leaving};
pub use membership::MembershipProviders;
pub use records::DnsProviders;
pub use report::{Outcome, Report, Status};
pub use retry::{retry, RetryPolicy};
pub use wait::{wait_for_targets, WaitFor};

/// How a change type is applied: the providers it needs and the calls it makes.
///
/// `Engine::apply` takes `&C::Providers`: a plan applied with providers of another
/// kind, or without them, does not compile.
#[async_trait]
pub trait Apply: Change {
    /// What applying needs, e.g. target groups and an ownership store. Typed, so a
    /// plan cannot be applied without them.
    type Providers: ?Sized + Send + Sync;

    /// Items per batch under these options (`usize::MAX`: never split).
    fn batch_size(options: &ApplyOptions) -> usize {
        let _ = options;
        usize::MAX
    }

    /// Applies one batch, every provider call through `caller`, and says which part of
    /// it was already in effect.
    async fn apply(&self, providers: &Self::Providers, caller: &Caller) -> Result<Applied<Self>>;
}

/// A batch applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied<C> {
    /// The part of the batch that was already in effect, as the provider answered
    /// (targets a deregistration found not registered): applying it changed nothing.
    /// Success all the same: every change is idempotent.
    pub already: Option<C>,
}

impl<C> Applied<C> {
    /// The whole batch changed something.
    pub fn changed() -> Self {
        Applied { already: None }
    }
}

/// How the engine applies a plan.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Report what would be done, change nothing.
    pub dry_run: bool,
    /// Targets per `RegisterTargets`/`DeregisterTargets` call.
    pub target_batch_size: usize,
    /// Record sets per DNS change batch. Route53 allows 1000 records in a batch and
    /// counts an UPSERT twice, so 500 UPSERTs is the safe maximum.
    pub dns_batch_size: usize,
    /// Retries of retryable failures.
    pub retry: RetryPolicy,
    /// At least this long between two API calls of this engine (and of every clone of
    /// its [`Caller`]); binaries set it from `--aws-max-rps` with
    /// [`Caller::interval_for_rate`].
    pub min_call_interval: Duration,
    /// Batches applied at once.
    pub concurrency: usize,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            dry_run: false,
            target_batch_size: 200,
            dns_batch_size: 500,
            retry: RetryPolicy::default(),
            min_call_interval: Duration::ZERO,
            concurrency: 4,
        }
    }
}

/// The apply step of observe → desire → plan → apply, and the [`Caller`] every
/// workflow's provider calls go through. Clones share the caller.
#[derive(Debug, Clone)]
pub struct Engine {
    options: ApplyOptions,
    caller: Caller,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(ApplyOptions::default())
    }
}

impl Engine {
    /// An engine applying with these options.
    pub fn new(options: ApplyOptions) -> Self {
        let caller = Caller::new(options.retry, options.min_call_interval);
        Engine { options, caller }
    }

    /// The options in force.
    pub fn options(&self) -> &ApplyOptions {
        &self.options
    }

    /// The call path shared by everything this engine does (rate limit, retries,
    /// tallies of the engine's whole life).
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Applies every change, batch by batch, and reports each batch's outcome. A failed
    /// batch does not stop the others: each change is independent and idempotent, and
    /// the next reconcile plans again from what is really there.
    pub async fn apply<C: Apply>(&self, providers: &C::Providers, plan: &Plan<C>) -> Report<C> {
        let size = C::batch_size(&self.options).max(1);
        let batches: Vec<C> = plan.changes.iter().flat_map(|c| c.split(size)).collect();
        if self.options.dry_run {
            let outcomes = batches
                .into_iter()
                .map(|change| Outcome {
                    change,
                    status: Status::Planned,
                    attempts: 0,
                    already: None,
                })
                .collect();
            return Report {
                outcomes,
                skipped: plan.skipped.clone(),
                dry_run: true,
                calls: Tally::default(),
            };
        }
        let scope = self.caller.scope();
        let outcomes = stream::iter(batches)
            .map(|change| {
                let caller = scope.scope();
                async move {
                    let result = change.apply(providers, &caller).await;
                    let attempts = caller.tally().attempts();
                    let (status, already) = match result {
                        Ok(applied) => (Status::Done, applied.already),
                        Err(error) => {
                            tracing::warn!(change = %change, %error, attempts, "change failed");
                            (Status::Failed(error), None)
                        }
                    };
                    Outcome {
                        change,
                        status,
                        attempts,
                        already,
                    }
                }
            })
            .buffered(self.options.concurrency.max(1))
            .collect()
            .await;
        Report {
            outcomes,
            skipped: plan.skipped.clone(),
            dry_run: false,
            calls: scope.tally(),
        }
    }
}

/// Waits until a DNS change is `INSYNC`, with backoff (never a busy poll).
pub async fn wait_dns_sync(dns: &dyn DnsZones, change_id: &str, policy: PollPolicy) -> Result<()> {
    wait_dns_sync_through(
        dns,
        &Caller::new(RetryPolicy::none(), Duration::ZERO),
        change_id,
        policy,
    )
    .await
}

/// [`wait_dns_sync`] with each poll through `caller`, without retries: the wait is the
/// retry.
pub(crate) async fn wait_dns_sync_through(
    dns: &dyn DnsZones,
    caller: &Caller,
    change_id: &str,
    policy: PollPolicy,
) -> Result<()> {
    let started = tokio::time::Instant::now();
    let mut delay = policy.initial;
    let poll = caller.with_retry(RetryPolicy::none());
    loop {
        match poll.call("GetChange", || dns.is_in_sync(change_id)).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) if !e.is_retryable() => return Err(e),
            Err(_) => {}
        }
        let elapsed = started.elapsed();
        if elapsed >= policy.deadline {
            return Err(Error::Timeout {
                operation: format!("waiting for DNS change {change_id}"),
                after: elapsed,
            });
        }
        tokio::time::sleep(delay.min(policy.deadline - elapsed)).await;
        delay = (delay * 2).min(policy.max);
    }
}
