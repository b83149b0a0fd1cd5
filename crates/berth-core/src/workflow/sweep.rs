//! The pool sweep: repairs what lost events and dead invocations left, through the
//! binder's own steps (bind, release, the DNS workflow, compare-and-swap rows) and
//! its ownership rules. Observe (rows, pool, instances), [`plan_sweep`], apply.

use std::collections::BTreeSet;

use futures::stream::{self, StreamExt};

use super::binder::{address_record_type, AddressBinder, Outcome};
use crate::domain::{AllocationId, InstanceId, InstanceState, RecordType};
use crate::plan::{plan_sweep, AddressRow, RowState, StaleRow, SweepObservation, SweepPlan};
use crate::{Error, Result};

/// How many instances one sweep binds or releases at once (each is a few calls).
const CONCURRENCY: usize = 8;

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
}

impl SweepReport {
    /// Whether the sweep found nothing to repair and nothing failed.
    pub fn is_clean(&self) -> bool {
        self.bound.is_empty()
            && self.released.is_empty()
            && self.freed.is_empty()
            && self.dns_deleted.is_empty()
            && self.failed.is_empty()
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
        let plan = self.plan_sweep().await?;
        let mut report = SweepReport {
            skipped: plan.skipped.clone(),
            ..SweepReport::default()
        };
        self.free_stale(&plan.free, &mut report).await;
        self.release_dead(&plan, &mut report).await;
        let binds: Vec<(InstanceId, Result<Outcome>)> = stream::iter(plan.bind.iter())
            .map(|id| async move { (id.clone(), self.bind(id).await) })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (id, result) in binds {
            match result {
                Ok(Outcome::Bound { binding, .. }) => {
                    report.bound.push((id, binding.allocation_id));
                }
                Ok(_) => {}
                Err(e) => report.failed.push((format!("bind {id}"), e)),
            }
        }
        report.bound.sort();
        report.released.sort();
        report.dns_deleted.sort();
        Ok(report)
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
        let released: Vec<(InstanceId, Result<Outcome>)> = stream::iter(plan.release.iter())
            .map(|id| async move {
                let outcome = self.release(id, InstanceState::Terminated).await;
                (id.clone(), outcome)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (id, result) in released {
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
            Err(e) => report.failed.push(("delete orphaned DNS names".into(), e)),
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
