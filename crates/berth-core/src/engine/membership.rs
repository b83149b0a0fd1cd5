//! Target-group membership through the engine: how a [`MembershipChange`] is applied,
//! and the whole observe → plan → apply loop for callers that reconcile target groups.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use super::{Applied, Apply, ApplyOptions, Caller, Engine, Report};
use crate::domain::{Target, TargetGroupArn};
use crate::plan::{plan_membership, DesiredMembership, MembershipChange, ObservedMembership, Plan};
use crate::provider::{Deregistered, OwnedByConstruction, TargetGroups, TargetOwnership};
use crate::{Error, Result};

/// What applying membership changes needs: the target groups and the store of what
/// berth registered (an [`OwnedByConstruction`] for a caller that records nothing).
#[derive(Clone)]
pub struct MembershipProviders {
    /// Target groups.
    pub targets: Arc<dyn TargetGroups>,
    /// Target ownership.
    pub ownership: Arc<dyn TargetOwnership>,
}

impl MembershipProviders {
    /// Target groups with an ownership store.
    pub fn new(targets: Arc<dyn TargetGroups>, ownership: Arc<dyn TargetOwnership>) -> Self {
        MembershipProviders { targets, ownership }
    }

    /// Target groups for a caller that owns its targets by construction.
    pub fn owned_by_construction(targets: Arc<dyn TargetGroups>) -> Self {
        MembershipProviders::new(targets, Arc::new(OwnedByConstruction))
    }
}

#[async_trait]
impl Apply for MembershipChange {
    type Providers = MembershipProviders;

    fn batch_size(options: &ApplyOptions) -> usize {
        options.target_batch_size
    }

    async fn apply(
        &self,
        providers: &MembershipProviders,
        caller: &Caller,
    ) -> Result<Applied<Self>> {
        let tg = providers.targets.as_ref();
        match self {
            MembershipChange::Register { group, targets } => {
                // Write-ahead: a crash after this leaves a claim the next plan completes.
                let store = providers.ownership.as_ref();
                let claimed = self.targets();
                own(store, caller, "ClaimTargets", || {
                    store.claim(group, &claimed)
                })
                .await?;
                caller
                    .call("RegisterTargets", || tg.register(group, targets))
                    .await?;
                Ok(Applied::changed())
            }
            MembershipChange::Deregister { group, targets } => {
                // A retried call may find absent what an earlier attempt removed before
                // its answer was lost: after such an attempt, nothing is called absent.
                let maybe_applied = AtomicBool::new(false);
                let answer = caller
                    .call("DeregisterTargets", || async {
                        let result = tg.deregister(group, targets).await;
                        let reached = match &result {
                            Err(e) => e.is_retryable() && !e.is_throttling(),
                            Ok(_) => false,
                        };
                        let earlier = maybe_applied.fetch_or(reached, Ordering::Relaxed);
                        result.map(|answer| {
                            if earlier {
                                Deregistered::removed(targets)
                            } else {
                                answer
                            }
                        })
                    })
                    .await?;
                // Absent targets are released too: the record must not outlive them.
                let store = providers.ownership.as_ref();
                own(store, caller, "ReleaseTargets", || {
                    store.release(group, targets)
                })
                .await?;
                Ok(Applied {
                    already: already_absent(group, targets, answer),
                })
            }
            MembershipChange::Forget { group, targets } => {
                let store = providers.ownership.as_ref();
                own(store, caller, "ReleaseTargets", || {
                    store.release(group, targets)
                })
                .await?;
                Ok(Applied::changed())
            }
        }
    }
}

/// The targets of a deregistration the provider found absent, as a change (`None`
/// when every one was removed). Only targets of the batch count: a provider's answer
/// cannot make the report claim more than was asked.
fn already_absent(
    group: &TargetGroupArn,
    targets: &[Target],
    answer: Deregistered,
) -> Option<MembershipChange> {
    let absent: Vec<Target> = targets
        .iter()
        .filter(|t| answer.absent.contains(t))
        .cloned()
        .collect();
    (!absent.is_empty()).then(|| MembershipChange::Deregister {
        group: group.clone(),
        targets: absent,
    })
}

/// Writes target ownership (`ClaimTargets` or `ReleaseTargets`) through the caller,
/// unless the store records nothing (then no call is spent).
async fn own<F, Fut>(
    own: &dyn TargetOwnership,
    caller: &Caller,
    operation: &str,
    write: F,
) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    if !own.records() {
        return Ok(());
    }
    caller.call(operation, write).await
}

impl Engine {
    /// Observes every group with one health call per group (retried), never per target.
    /// Groups that cannot be observed are returned with their error and left out, so
    /// planning skips them rather than guessing.
    pub async fn observe_membership<'a>(
        &self,
        targets: &dyn TargetGroups,
        groups: impl IntoIterator<Item = &'a TargetGroupArn>,
    ) -> (ObservedMembership, Vec<(TargetGroupArn, Error)>) {
        let mut observed = ObservedMembership::new();
        let mut failed = Vec::new();
        let unique: BTreeSet<&TargetGroupArn> = groups.into_iter().collect();
        for group in unique {
            match self
                .caller()
                .call("DescribeTargetHealth", || targets.health(group))
                .await
            {
                Ok(health) => observed.observe(group, health),
                Err(e) => {
                    tracing::warn!(group = %group, error = %e, "could not observe target group");
                    failed.push((group.clone(), e));
                }
            }
        }
        (observed, failed)
    }

    /// Observe → plan → apply for target-group membership. Reads ownership, observes
    /// each desired or owned group once, plans and applies. Returns the plan and the
    /// report.
    pub async fn reconcile_membership(
        &self,
        providers: &MembershipProviders,
        desired: &DesiredMembership,
    ) -> Result<(Plan<MembershipChange>, Report<MembershipChange>)> {
        let own = providers.ownership.as_ref();
        let owned = self.caller().call("ReadOwnership", || own.owned()).await?;
        let groups: Vec<&TargetGroupArn> = desired.groups().chain(owned.keys()).collect();
        let (observed, _failed) = self
            .observe_membership(providers.targets.as_ref(), groups)
            .await;
        let plan = plan_membership(desired, &observed, &owned);
        let report = self.apply(providers, &plan).await;
        Ok((plan, report))
    }
}
