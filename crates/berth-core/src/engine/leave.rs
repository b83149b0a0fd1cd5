//! Targets leaving a group and waits on target health, every poll through the engine's
//! caller: [`Engine::deregister`] then [`Leaving::drain`] are the two halves of
//! [`Engine::deregister_and_drain`], for a caller that must act between them (the
//! sidecar: a second signal may cut the drain short, never the deregistration).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{
    wait_for_targets, Caller, Engine, MembershipProviders, Report, RetryPolicy, Status, WaitFor,
};
use crate::domain::TargetHealth;
use crate::domain::{Registration, Target, TargetGroup, TargetGroupArn, TargetGroupRef};
use crate::plan::{MembershipChange, Plan};
use crate::provider::{Deregistered, PollPolicy, TargetGroups};
use crate::Result;

/// How a deregistration ended.
#[derive(Debug)]
pub struct Drained {
    /// The deregistration's report (one batch per API-sized chunk).
    pub report: Report<MembershipChange>,
    /// How long the targets took to leave the group, or why they were not seen gone
    /// (`None` when there was nothing to wait for: the deregistration failed, or
    /// every target was already absent).
    pub drain: Option<Result<Duration>>,
}

/// Targets deregistered from a group (their ownership released) and not yet seen gone.
#[must_use = "a deregistration is waited out with `drain`, or its report read"]
pub struct Leaving {
    /// The deregistration's report.
    pub report: Report<MembershipChange>,
    group: TargetGroupArn,
    targets: Vec<Target>,
    engine: Engine,
    provider: Arc<dyn TargetGroups>,
}

impl std::fmt::Debug for Leaving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaving")
            .field("group", &self.group)
            .field("targets", &self.targets)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl Leaving {
    /// The group left.
    pub fn group(&self) -> &TargetGroupArn {
        &self.group
    }

    /// Whether the deregistration went through (nothing failed, not a dry run): only
    /// then is there a drain to wait for.
    pub fn is_deregistered(&self) -> bool {
        self.report.is_success() && !self.report.dry_run
    }

    /// What the deregistration did, from its report: the targets of done batches the
    /// group had (`removed`: they are leaving it) and those it did not (`absent`:
    /// nothing was removed). Empty for a failed batch, and in a dry run.
    pub fn outcome(&self) -> Deregistered {
        let mut outcome = Deregistered::default();
        for o in &self.report.outcomes {
            if !matches!(o.status, Status::Done) {
                continue;
            }
            let absent = o.already.as_ref().map(MembershipChange::targets);
            for t in o.change.targets() {
                if absent.as_ref().is_some_and(|a| a.contains(&t)) {
                    outcome.absent.push(t);
                } else {
                    outcome.removed.push(t);
                }
            }
        }
        outcome
    }

    /// Waits, under `poll`, until the targets have left the group (the deregistration
    /// delay), every health poll through the engine's caller.
    pub async fn drain(self, poll: PollPolicy) -> Drained {
        if !self.is_deregistered() {
            return Drained {
                report: self.report,
                drain: None,
            };
        }
        // Targets found absent have nothing to drain; with none removed, no call is
        // spent.
        let removed = self.outcome().removed;
        if removed.is_empty() {
            return Drained {
                report: self.report,
                drain: None,
            };
        }
        let drain = self
            .engine
            .wait_drained(self.provider.as_ref(), &self.group, &removed, poll)
            .await;
        Drained {
            report: self.report,
            drain: Some(drain),
        }
    }
}

impl Engine {
    /// Deregisters `targets` from `group` (absent ones included: deregistering is
    /// idempotent) and releases their ownership; [`Leaving::drain`] waits them out.
    pub async fn deregister(
        &self,
        providers: &MembershipProviders,
        group: &TargetGroupArn,
        targets: &[Target],
    ) -> Leaving {
        let mut plan = Plan::default();
        plan.push(MembershipChange::Deregister {
            group: group.clone(),
            targets: targets.to_vec(),
        });
        Leaving {
            report: self.apply(providers, &plan).await,
            group: group.clone(),
            targets: targets.to_vec(),
            engine: self.clone(),
            provider: providers.targets.clone(),
        }
    }

    /// Deregisters `targets` from `group` (releasing their ownership) and waits, under
    /// `poll`, until they have left it — the deregistration delay — with every health
    /// poll through the engine's caller. One operation for every mode that lets a
    /// target go.
    pub async fn deregister_and_drain(
        &self,
        providers: &MembershipProviders,
        group: &TargetGroupArn,
        targets: &[Target],
        poll: PollPolicy,
    ) -> Drained {
        self.deregister(providers, group, targets)
            .await
            .drain(poll)
            .await
    }

    /// The second half of [`Engine::deregister_and_drain`], for a caller that applied
    /// the deregistration in a plan and waits for it elsewhere (the daemon does not
    /// hold its pass for a deregistration delay): polls under `poll`, every health
    /// call through the engine's caller without retries (the poll is the retry), until
    /// the targets have left the group. Returns how long that took.
    pub async fn wait_drained(
        &self,
        provider: &dyn TargetGroups,
        group: &TargetGroupArn,
        targets: &[Target],
        poll: PollPolicy,
    ) -> Result<Duration> {
        self.wait_targets(provider, group, targets, WaitFor::Gone, poll)
            .await
    }

    /// Polls `group`'s health until every target satisfies `until` (healthy, or gone),
    /// backing off under `poll` and failing with a timeout at its deadline. Each poll
    /// goes through this engine's caller (rate limit, tally) without retries: the wait
    /// is the retry. Returns how long it took.
    pub async fn wait_targets(
        &self,
        provider: &dyn TargetGroups,
        group: &TargetGroupArn,
        targets: &[Target],
        until: WaitFor,
        poll: PollPolicy,
    ) -> Result<Duration> {
        let polled = PolledTargets {
            inner: provider,
            caller: self.caller().with_retry(RetryPolicy::none()),
        };
        wait_for_targets(&polled, group, targets, until, poll).await
    }
}

/// Target groups whose health polls go through a caller (rate limit, tally).
struct PolledTargets<'a> {
    inner: &'a dyn TargetGroups,
    caller: Caller,
}

#[async_trait]
impl TargetGroups for PolledTargets<'_> {
    async fn resolve(&self, group: &TargetGroupRef) -> Result<TargetGroup> {
        self.inner.resolve(group).await
    }
    async fn health(&self, group: &TargetGroupArn) -> Result<Vec<TargetHealth>> {
        self.caller
            .call("DescribeTargetHealth", || self.inner.health(group))
            .await
    }
    async fn register(&self, group: &TargetGroupArn, targets: &[Registration]) -> Result<()> {
        self.inner.register(group, targets).await
    }
    async fn deregister(&self, group: &TargetGroupArn, targets: &[Target]) -> Result<Deregistered> {
        self.inner.deregister(group, targets).await
    }
}
