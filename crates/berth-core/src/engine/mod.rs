//! Applies a [`Plan`] through the provider traits: batched, rate-limited, retried with
//! jittered backoff, and reported change by change.

mod limiter;
mod membership;
mod report;
mod retry;
mod wait;

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};

use crate::domain::{DnsRecord, Target, TargetGroupArn};
use crate::plan::{Change, Plan};
use crate::provider::{Addresses, DnsChange, DnsZones, PollPolicy, TargetGroups, TargetOwnership};
use crate::{Error, Result};

use limiter::RateLimiter;
pub use report::{Outcome, Report, Status};
pub use retry::{retry, RetryPolicy};
pub use wait::{wait_for_targets, WaitFor};

/// The providers a plan may need; a change whose provider is missing fails with a
/// clear error instead of being dropped.
#[derive(Clone, Default)]
pub struct Providers {
    /// Target groups.
    pub targets: Option<Arc<dyn TargetGroups>>,
    /// Target ownership (when absent, registrations are not recorded: the caller owns
    /// its targets by construction, as the sidecar does).
    pub ownership: Option<Arc<dyn TargetOwnership>>,
    /// Elastic IPs.
    pub addresses: Option<Arc<dyn Addresses>>,
    /// DNS zones.
    pub dns: Option<Arc<dyn DnsZones>>,
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
    /// At least this long between two API calls of this engine.
    pub min_call_interval: Duration,
    /// Batches applied at once.
    pub concurrency: usize,
    /// Wait for DNS changes to be `INSYNC` (off by default: callers rarely need it).
    pub dns_sync: Option<PollPolicy>,
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
            dns_sync: None,
        }
    }
}

/// The apply step of observe → desire → plan → apply.
pub struct Engine {
    providers: Providers,
    options: ApplyOptions,
    limiter: RateLimiter,
}

impl Engine {
    /// An engine over these providers.
    pub fn new(providers: Providers, options: ApplyOptions) -> Self {
        let limiter = RateLimiter::new(options.min_call_interval);
        Engine {
            providers,
            options,
            limiter,
        }
    }

    /// The options in force.
    pub fn options(&self) -> &ApplyOptions {
        &self.options
    }

    /// Applies every change, batch by batch, and reports each batch's outcome. A failed
    /// batch does not stop the others: each change is independent and idempotent, and
    /// the next reconcile plans again from what is really there.
    pub async fn apply(&self, plan: &Plan) -> Report {
        let batches = self.split(plan);
        if self.options.dry_run {
            let outcomes = batches
                .into_iter()
                .map(|change| Outcome {
                    change,
                    status: Status::Planned,
                    attempts: 0,
                })
                .collect();
            return Report {
                outcomes,
                skipped: plan.skipped.clone(),
                dry_run: true,
            };
        }
        let outcomes = stream::iter(batches)
            .map(|change| async move {
                let (result, attempts) = self.apply_one(&change).await;
                let status = match result {
                    Ok(()) => Status::Done,
                    Err(error) => {
                        tracing::warn!(change = %change, %error, attempts, "change failed");
                        Status::Failed(error)
                    }
                };
                Outcome {
                    change,
                    status,
                    attempts,
                }
            })
            .buffered(self.options.concurrency.max(1))
            .collect()
            .await;
        Report {
            outcomes,
            skipped: plan.skipped.clone(),
            dry_run: false,
        }
    }

    /// Splits multi-item changes into API-sized batches.
    fn split(&self, plan: &Plan) -> Vec<Change> {
        let tb = self.options.target_batch_size.max(1);
        let db = self.options.dns_batch_size.max(1);
        let mut out = Vec::new();
        for change in &plan.changes {
            match change {
                Change::Register { group, targets } => {
                    out.extend(targets.chunks(tb).map(|c| Change::Register {
                        group: group.clone(),
                        targets: c.to_vec(),
                    }))
                }
                Change::Deregister { group, targets } => {
                    out.extend(targets.chunks(tb).map(|c| Change::Deregister {
                        group: group.clone(),
                        targets: c.to_vec(),
                    }))
                }
                Change::UpsertRecords { zone_id, records } => {
                    out.extend(records.chunks(db).map(|c| Change::UpsertRecords {
                        zone_id: zone_id.clone(),
                        records: c.to_vec(),
                    }))
                }
                Change::DeleteRecords { zone_id, records } => {
                    out.extend(records.chunks(db).map(|c| Change::DeleteRecords {
                        zone_id: zone_id.clone(),
                        records: c.to_vec(),
                    }))
                }
                other => out.push(other.clone()),
            }
        }
        out
    }

    /// Runs one call through the rate limiter and the retry policy.
    async fn call<T, F, Fut>(&self, call: F) -> (Result<T>, u32)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        retry(&self.options.retry, || async {
            self.limiter.acquire().await;
            call().await
        })
        .await
    }

    async fn apply_one(&self, change: &Change) -> (Result<()>, u32) {
        match change {
            Change::Register { group, targets } => {
                let Some(tg) = self.targets() else {
                    return missing("target groups");
                };
                let ids: Vec<Target> = targets.iter().map(|r| r.target.clone()).collect();
                let mut attempts = 0;
                if let Some(own) = &self.providers.ownership {
                    // Write-ahead: a crash after this leaves a claim the next plan completes.
                    let (r, n) = self.call(|| own.claim(group, &ids)).await;
                    attempts += n;
                    if r.is_err() {
                        return (r, attempts);
                    }
                }
                let (r, n) = self.call(|| tg.register(group, targets)).await;
                (r, attempts + n)
            }
            Change::Deregister { group, targets } => {
                let Some(tg) = self.targets() else {
                    return missing("target groups");
                };
                let (r, mut attempts) = self.call(|| tg.deregister(group, targets)).await;
                if r.is_err() {
                    return (r, attempts);
                }
                let (r, n) = self.release(group, targets).await;
                attempts += n;
                (r, attempts)
            }
            Change::Forget { group, targets } => self.release(group, targets).await,
            Change::Associate {
                allocation_id,
                target,
            } => {
                let Some(a) = &self.providers.addresses else {
                    return missing("addresses");
                };
                let (r, n) = self.call(|| a.associate(allocation_id, target)).await;
                (r.map(|_| ()), n)
            }
            Change::Disassociate { association_id, .. } => {
                let Some(a) = &self.providers.addresses else {
                    return missing("addresses");
                };
                self.call(|| a.disassociate(association_id)).await
            }
            Change::UpsertRecords { zone_id, records } => {
                self.dns_change(zone_id, records, DnsChange::Upsert).await
            }
            Change::DeleteRecords { zone_id, records } => {
                self.dns_change(zone_id, records, DnsChange::Delete).await
            }
        }
    }

    fn targets(&self) -> Option<&Arc<dyn TargetGroups>> {
        self.providers.targets.as_ref()
    }

    async fn release(&self, group: &TargetGroupArn, targets: &[Target]) -> (Result<()>, u32) {
        match &self.providers.ownership {
            Some(own) => self.call(|| own.release(group, targets)).await,
            None => (Ok(()), 0),
        }
    }

    async fn dns_change(
        &self,
        zone_id: &str,
        records: &[DnsRecord],
        kind: fn(DnsRecord) -> DnsChange,
    ) -> (Result<()>, u32) {
        let Some(dns) = &self.providers.dns else {
            return missing("DNS zones");
        };
        let changes: Vec<DnsChange> = records.iter().cloned().map(kind).collect();
        let (r, n) = self.call(|| dns.change(zone_id, &changes)).await;
        let change_id = match r {
            Ok(id) => id,
            Err(e) => return (Err(e), n),
        };
        let Some(policy) = self.options.dns_sync else {
            return (Ok(()), n);
        };
        (wait_dns_sync(dns.as_ref(), &change_id, policy).await, n)
    }
}

/// Waits until a DNS change is `INSYNC`, with backoff (never a busy poll).
pub async fn wait_dns_sync(dns: &dyn DnsZones, change_id: &str, policy: PollPolicy) -> Result<()> {
    let started = tokio::time::Instant::now();
    let mut delay = policy.initial;
    loop {
        match dns.is_in_sync(change_id).await {
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

fn missing(what: &str) -> (Result<()>, u32) {
    (
        Err(Error::invalid(format!(
            "the plan needs a {what} provider and none was configured"
        ))),
        0,
    )
}
