//! The whole membership loop — observe, plan, apply — for callers that reconcile target
//! groups (the daemon's resync, the sidecar's start-up).

use std::collections::BTreeSet;

use super::{Engine, Report};
use crate::domain::TargetGroupArn;
use crate::plan::{plan_membership, DesiredMembership, ObservedMembership, Plan};
use crate::provider::OwnedTargets;
use crate::{Error, Result};

impl Engine {
    /// Observes every group with one health call per group (retried), never per target.
    /// Groups that cannot be observed are returned with their error and left out, so
    /// planning skips them rather than guessing.
    pub async fn observe_membership<'a>(
        &self,
        groups: impl IntoIterator<Item = &'a TargetGroupArn>,
    ) -> Result<(ObservedMembership, Vec<(TargetGroupArn, Error)>)> {
        let tg =
            self.providers.targets.as_ref().ok_or_else(|| {
                Error::invalid("observing membership needs a target groups provider")
            })?;
        let mut observed = ObservedMembership::new();
        let mut failed = Vec::new();
        let unique: BTreeSet<&TargetGroupArn> = groups.into_iter().collect();
        for group in unique {
            match self.call(|| tg.health(group)).await.0 {
                Ok(health) => observed.observe(group, health),
                Err(e) => {
                    tracing::warn!(group = %group, error = %e, "could not observe target group");
                    failed.push((group.clone(), e));
                }
            }
        }
        Ok((observed, failed))
    }

    /// Observe → plan → apply for target-group membership. Reads ownership (when an
    /// ownership provider is configured), observes each desired or owned group once,
    /// plans and applies. Returns the plan and the report.
    pub async fn reconcile_membership(
        &self,
        desired: &DesiredMembership,
    ) -> Result<(Plan, Report)> {
        let owned = match &self.providers.ownership {
            Some(own) => self.call(|| own.owned()).await.0?,
            None => OwnedTargets::new(),
        };
        let groups: Vec<&TargetGroupArn> = desired.groups().chain(owned.keys()).collect();
        let (observed, _failed) = self.observe_membership(groups).await?;
        let plan = plan_membership(desired, &observed, &owned);
        let report = self.apply(&plan).await;
        Ok((plan, report))
    }
}
