//! The pool sweep: repairs what lost events and dead invocations left, through the
//! binder's own steps (bind, release, the DNS workflow, compare-and-swap rows) and
//! its ownership rules. Observe (rows, pool, instances), [`plan_sweep`], apply.
//!
//! A sweep can be given a deadline ([`AddressBinder::sweep_until`]): it then stops
//! there and reports what it did not finish, rather than being killed mid-way with
//! nothing reported. Stopping is safe at any point: a repair cut short leaves at most
//! a claim, which its instance's next bind continues or which lapses, and the next
//! sweep finishes the rest.

use std::collections::BTreeSet;
use std::future::Future;

use futures::stream::{self, StreamExt};
use tokio::time::Instant;

use super::binder::{address_record_type, AddressBinder, Outcome};
use crate::domain::{AllocationId, InstanceId, InstanceState, RecordType};
use crate::plan::{plan_sweep, AddressRow, RowState, StaleRow, SweepObservation, SweepPlan};
use crate::{Error, Result};

/// How many instances one sweep binds or releases at once (each is a few calls).
const CONCURRENCY: usize = 8;

/// The repair that deletes the names dead claims wrote before their rows named them.
const ORPHANS: &str = "delete orphaned DNS names";

/// What one sweep did.
#[derive(Debug, Default)]
pub struct SweepReport {
    /// Instances that were given an address (`newly`), or whose row or record was
    /// settled to the address EC2 already showed on them.
    pub bound: Vec<(InstanceId, AllocationId)>,
    /// Instances terminated or gone whose addresses and rows were released.
    pub released: Vec<InstanceId>,
    /// Rows freed: lapsed claims and bindings whose address left the instance.
    pub freed: Vec<AllocationId>,
    /// DNS names deleted (berth-owned, no live binding).
    pub dns_deleted: Vec<String>,
    /// Rows left alone and why (live claims).
    pub skipped: Vec<(AllocationId, &'static str)>,
    /// What failed, per subject (the rest of the sweep went on; the next one retries).
    pub failed: Vec<(String, Error)>,
    /// Repairs the deadline cut short or left unstarted (`bind i-...`, `release
    /// i-...`, `free eipalloc-...`, ...): the next sweep does them.
    pub unfinished: Vec<String>,
}

impl SweepReport {
    /// Whether the sweep found nothing to repair and nothing failed.
    pub fn is_clean(&self) -> bool {
        self.bound.is_empty()
            && self.released.is_empty()
            && self.freed.is_empty()
            && self.dns_deleted.is_empty()
            && self.failed.is_empty()
            && self.unfinished.is_empty()
    }

    /// Whether the deadline stopped the sweep before every repair was done.
    pub fn is_partial(&self) -> bool {
        !self.unfinished.is_empty()
    }

    /// Whether this subject's repair has an outcome (done or failed).
    fn settled(&self, subject: &str) -> bool {
        self.failed.iter().any(|(what, _)| what == subject)
    }
}

/// `work` run until `deadline` (none: to its end); `None` if the deadline came first,
/// in which case `work` was dropped where it stood.
async fn before<T>(deadline: Option<Instant>, work: impl Future<Output = T>) -> Option<T> {
    match deadline {
        None => Some(work.await),
        Some(at) if Instant::now() >= at => None,
        Some(at) => tokio::time::timeout_at(at, work).await.ok(),
    }
}

impl AddressBinder {
    /// Reconciles the whole pool: a running matching instance without an address gets
    /// one, rows of instances terminated or gone are released with their addresses
    /// and names, lapsed claims and stale bindings are freed, a berth-owned name
    /// without a live binding is deleted. Only rows of this owner are changed, only
    /// names berth's marker names are deleted, live claims are left to their
    /// invocation. A sweep after a complete one changes nothing.
    ///
    /// Fails only when the pool cannot be observed; each repair's failure is in the
    /// report and the others still run.
    pub async fn sweep(&self) -> Result<SweepReport> {
        self.sweep_until(None).await
    }

    /// [`AddressBinder::sweep`], stopping at `deadline`: the repairs under way are
    /// dropped there and, with those not started, listed in
    /// [`SweepReport::unfinished`]. Fails with [`Error::Timeout`] (nothing changed)
    /// when the pool cannot even be observed by then.
    pub async fn sweep_until(&self, deadline: Option<Instant>) -> Result<SweepReport> {
        let started = Instant::now();
        let plan = before(deadline, self.plan_sweep())
            .await
            .ok_or_else(|| Error::Timeout {
                operation: "observe the pool for the sweep".into(),
                after: started.elapsed(),
            })??;
        let mut report = SweepReport {
            skipped: plan.skipped.clone(),
            ..SweepReport::default()
        };
        if !plan.free.is_empty()
            && before(deadline, self.free_stale(&plan.free, &mut report))
                .await
                .is_none()
        {
            let freed: BTreeSet<&AllocationId> = report.freed.iter().collect();
            let left: Vec<String> = plan
                .free
                .iter()
                .filter(|s| !freed.contains(&s.row.allocation_id))
                .map(|s| format!("free {}", s.row.allocation_id))
                .filter(|what| !report.settled(what))
                .collect();
            report.unfinished.extend(left);
        }
        if !plan.release.is_empty()
            && before(deadline, self.release_dead(&plan, &mut report))
                .await
                .is_none()
        {
            let released: BTreeSet<&InstanceId> = report.released.iter().collect();
            let left: Vec<String> = plan
                .release
                .iter()
                .filter(|id| !released.contains(id))
                .map(|id| format!("release {id}"))
                .filter(|what| !report.settled(what))
                .collect();
            if left.is_empty() {
                report.unfinished.push(ORPHANS.into());
            }
            report.unfinished.extend(left);
        }
        self.bind_missing(&plan.bind, deadline, &mut report).await;
        report.bound.sort();
        report.released.sort();
        report.dns_deleted.sort();
        Ok(report)
    }

    /// Binds the instances the events missed, as many at once as [`CONCURRENCY`],
    /// each outcome recorded as it comes; at the deadline, the rest are unfinished.
    async fn bind_missing(
        &self,
        bind: &[InstanceId],
        deadline: Option<Instant>,
        report: &mut SweepReport,
    ) {
        let mut binds = stream::iter(bind.iter())
            .map(|id| async move { (id, self.bind(id).await) })
            .buffer_unordered(CONCURRENCY);
        let mut done = BTreeSet::new();
        while let Some(Some((id, result))) = before(deadline, binds.next()).await {
            done.insert(id);
            match result {
                Ok(Outcome::Bound { binding, .. }) => {
                    report.bound.push((id.clone(), binding.allocation_id));
                }
                Ok(_) => {}
                Err(e) => report.failed.push((format!("bind {id}"), e)),
            }
        }
        report.unfinished.extend(
            bind.iter()
                .filter(|id| !done.contains(id))
                .map(|id| format!("bind {id}")),
        );
    }

    /// Observes the pool (rows first, then addresses, then instances: an invocation
    /// in flight claims before it associates) and plans, without changing anything.
    pub async fn plan_sweep(&self) -> Result<SweepPlan> {
        let rows: Vec<AddressRow> = self.rows().await?.into_values().collect();
        let pool = self.addresses.list(&self.settings.pool).await?;
        let mut instances = self
            .instances
            .matching(&self.settings.instance_filter)
            .await?;
        let known: BTreeSet<InstanceId> = instances.iter().map(|i| i.id.clone()).collect();
        let named: Vec<InstanceId> = rows
            .iter()
            .filter(|r| r.state != RowState::Free)
            .filter_map(|r| r.instance_id.clone())
            .filter(|id| !known.contains(id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !named.is_empty() {
            instances.extend(self.instances.describe(&named).await?);
        }
        Ok(plan_sweep(SweepObservation {
            rows: &rows,
            pool: &pool,
            instances: &instances,
            instance_filter: &self.settings.instance_filter,
            policy: self.settings.policy,
            now: self.now(),
        }))
    }

    /// Deletes the names of stale rows (berth's only), then frees the rows on the
    /// version read: a row that changed since is someone else's business now.
    async fn free_stale(&self, stale: &[StaleRow], report: &mut SweepReport) {
        if stale.is_empty() {
            return;
        }
        let names: Vec<(String, RecordType)> =
            stale.iter().filter_map(|s| self.row_name(&s.row)).collect();
        match self.names.release(&names).await {
            Ok(deleted) => report.dns_deleted.extend(deleted),
            Err(e) => {
                // The rows keep naming their records, so the next sweep tries again.
                report.failed.push(("delete stale DNS names".into(), e));
                return;
            }
        }
        for s in stale {
            let free = AddressRow {
                version: s.row.version,
                ..AddressRow::new(s.row.allocation_id.clone(), s.row.public_ip)
            };
            match self.write(&free).await {
                Ok(_) => {
                    tracing::info!(allocation_id = %s.row.allocation_id, reason = s.reason,
                        "stale ledger row freed");
                    report.freed.push(s.row.allocation_id.clone());
                }
                Err(Error::Conflict { .. }) => {
                    tracing::info!(allocation_id = %s.row.allocation_id,
                        "ledger row changed while sweeping; left to its writer");
                }
                Err(e) => report
                    .failed
                    .push((format!("free {}", s.row.allocation_id), e)),
            }
        }
    }

    /// Releases instances that are gone, as their terminate events would have, and
    /// the names of their lapsed claims that a dead invocation wrote before its row
    /// named them.
    async fn release_dead(&self, plan: &SweepPlan, report: &mut SweepReport) {
        if plan.release.is_empty() {
            return;
        }
        let orphans: Vec<(String, RecordType)> = match self.rows().await {
            Ok(rows) => rows
                .values()
                .filter(|r| {
                    r.state == RowState::Claimed
                        && r.instance_id
                            .as_ref()
                            .is_some_and(|i| plan.release.contains(i))
                })
                .filter_map(|r| self.row_name(r))
                .collect(),
            Err(e) => {
                report.failed.push(("read the ledger".into(), e));
                return;
            }
        };
        // Each outcome is recorded as it comes: a deadline may cut the rest short.
        let mut released = stream::iter(plan.release.iter())
            .map(|id| async move {
                let outcome = self.release(id, InstanceState::Terminated).await;
                (id.clone(), outcome)
            })
            .buffer_unordered(CONCURRENCY);
        while let Some((id, result)) = released.next().await {
            match result {
                Ok(Outcome::Released { dns_names, .. }) => {
                    report.dns_deleted.extend(dns_names);
                    report.released.push(id);
                }
                Ok(_) => report.released.push(id),
                Err(e) => report.failed.push((format!("release {id}"), e)),
            }
        }
        match self.names.release(&orphans).await {
            Ok(deleted) => report.dns_deleted.extend(deleted),
            Err(e) => report.failed.push((ORPHANS.into(), e)),
        }
    }

    /// The name a row stands for: the one it records, or for a claim that never
    /// recorded one, the name its address renders to when the template needs nothing
    /// but the IP.
    fn row_name(&self, row: &AddressRow) -> Option<(String, RecordType)> {
        let ip = row.public_ip?;
        let name = match &row.dns_name {
            Some(name) => name.clone(),
            None if row.state == RowState::Claimed => self
                .settings
                .name_template
                .render_ip(ip, &self.settings.dns_suffix)?
                .ok()?,
            None => return None,
        };
        Some((name, address_record_type(ip)))
    }
}
