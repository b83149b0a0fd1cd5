//! The pool sweep's decisions: from the whole pool as EC2, the ledger and the
//! instances show it now, what repairs the events missed (a lost event, a crashed
//! invocation). Pure: the workflow observes, this decides, the workflow applies.

use std::collections::{BTreeMap, BTreeSet};

use super::address::AddressPolicy;
use super::address_row::{AddressRow, RowState};
use crate::domain::{AllocationId, ElasticIp, Instance, InstanceId, InstanceState, TagFilter};

/// What the sweep saw, read in this order so that an invocation in flight is never
/// mistaken for damage: the rows first (a claim precedes every association), then
/// the pool, then the instances.
#[derive(Debug, Clone, Copy)]
pub struct SweepObservation<'a> {
    /// berth's own rows (other owners' rows are left out before planning).
    pub rows: &'a [AddressRow],
    /// The pool's addresses with their associations now.
    pub pool: &'a [ElasticIp],
    /// The instances matching the filter and those the rows name, as EC2 describes
    /// them now; an instance EC2 does not know is absent.
    pub instances: &'a [Instance],
    /// Which instances get an address.
    pub instance_filter: &'a TagFilter,
    /// Release on stop or not.
    pub policy: AddressPolicy,
    /// Unix seconds now (claims lapse).
    pub now: u64,
}

/// A row of ours that no live binding stands behind: freed after its name (if any)
/// is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleRow {
    /// The row as read (its version is the compare-and-swap condition).
    pub row: AddressRow,
    /// Why it is stale, for the report.
    pub reason: &'static str,
}

/// What one sweep does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepPlan {
    /// Running matching instances without a complete binding: bound (or settled
    /// when EC2 already shows a pool address on them).
    pub bind: Vec<InstanceId>,
    /// Instances terminated or gone (or stopped, with release on stop) that rows of
    /// ours still name: released as their terminate event would have.
    pub release: Vec<InstanceId>,
    /// Rows of live instances that are not what EC2 shows: lapsed claims, bindings
    /// whose address has left the instance.
    pub free: Vec<StaleRow>,
    /// Rows left alone, and why (live claims: an invocation is at work).
    pub skipped: Vec<(AllocationId, &'static str)>,
}

impl SweepPlan {
    /// Whether the sweep has nothing to change.
    pub fn is_empty(&self) -> bool {
        self.bind.is_empty() && self.release.is_empty() && self.free.is_empty()
    }
}

/// Whether an instance still has a claim on its address: known to EC2, not
/// terminating, and not stopped when stopping releases.
fn alive(instance: Option<&Instance>, policy: AddressPolicy) -> bool {
    instance.is_some_and(|i| {
        let released_by_stop = i.state.is_stopping() && policy.release_on_stop;
        !i.state.is_terminating() && !released_by_stop
    })
}

/// Decides the sweep. Only rows of ours are changed; an address associated with an
/// instance no row of ours names is never touched, nor is a live claim.
pub fn plan_sweep(seen: SweepObservation<'_>) -> SweepPlan {
    let instances: BTreeMap<&InstanceId, &Instance> =
        seen.instances.iter().map(|i| (&i.id, i)).collect();
    let pool: BTreeMap<&AllocationId, &ElasticIp> =
        seen.pool.iter().map(|a| (&a.allocation_id, a)).collect();
    let mut plan = SweepPlan::default();
    let mut release = BTreeSet::new();
    for row in seen.rows {
        let Some(holder) = row.instance_id.as_ref() else {
            continue;
        };
        if row.state == RowState::Free {
            continue;
        }
        if row.state == RowState::Claimed && !row.claim_expired(seen.now) {
            plan.skipped.push((
                row.allocation_id.clone(),
                "a live claim: an invocation is binding it",
            ));
            continue;
        }
        if !alive(instances.get(holder).copied(), seen.policy) {
            release.insert(holder.clone());
            continue;
        }
        let on_holder = pool
            .get(&row.allocation_id)
            .is_some_and(|a| a.is_on(holder));
        match row.state {
            RowState::Claimed if !on_holder => plan.free.push(StaleRow {
                row: row.clone(),
                reason: "a lapsed claim",
            }),
            RowState::Bound if !on_holder => plan.free.push(StaleRow {
                row: row.clone(),
                reason: "the address has left the instance",
            }),
            // On its instance: the bind below settles a lapsed claim into a binding.
            _ => {}
        }
    }
    plan.release = release.into_iter().collect();
    let complete = |id: &InstanceId| {
        seen.pool.iter().filter(|a| a.is_on(id)).any(|a| {
            seen.rows.iter().any(|r| {
                r.allocation_id == a.allocation_id
                    && r.state == RowState::Bound
                    && r.instance_id.as_ref() == Some(id)
                    && r.association_id.as_deref()
                        == a.association.as_ref().map(|x| x.association_id.as_str())
            })
        })
    };
    plan.bind = seen
        .instances
        .iter()
        .filter(|i| i.state == InstanceState::Running)
        .filter(|i| seen.instance_filter.matches(&i.tags))
        .filter(|i| !complete(&i.id))
        .map(|i| i.id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    plan
}

#[cfg(test)]
#[path = "sweep_tests.rs"]
mod tests;
