//! One target per target group, joining its groups and leaving them: berth-sidecar's
//! policy for its pod's IP. Observe every group, plan (a target still draining from a
//! previous life is waited out, never re-registered mid-drain), apply; wait healthy;
//! deregister and drain — every call through the engine.

use std::fmt;
use std::time::Duration;

use futures::future::join_all;

use crate::domain::{Target, TargetGroup, TargetHealth};
use crate::engine::{Engine, Leaving, MembershipProviders, Report, WaitFor};
use crate::plan::{plan_membership, DesiredMembership, MembershipChange, ObservedMembership, Plan};
use crate::provider::{OwnedTargets, PollPolicy};
use crate::{Error, Result};

/// A resolved group and the target as it is registered there (its port resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The group.
    pub group: TargetGroup,
    /// The target in it.
    pub target: Target,
}

/// Why a registration did not start; nothing was registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinFailure {
    /// A group's targets could not be read.
    Unobserved {
        /// The group's name.
        group: String,
        /// Why.
        error: Error,
    },
    /// The target was still draining from a previous life when the wait ended.
    StillDraining {
        /// The group's name.
        group: String,
        /// Why the wait ended.
        error: Error,
    },
}

impl JoinFailure {
    /// The provider's error.
    pub fn error(&self) -> &Error {
        match self {
            JoinFailure::Unobserved { error, .. } | JoinFailure::StillDraining { error, .. } => {
                error
            }
        }
    }
}

impl fmt::Display for JoinFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinFailure::Unobserved { group, .. } => {
                write!(f, "cannot read the targets of {group}")
            }
            JoinFailure::StillDraining { group, .. } => write!(
                f,
                "the target is still draining from a previous run in {group}"
            ),
        }
    }
}

/// Keeps one target in each of its groups: registers it where it is missing, waits
/// for it to be healthy, deregisters it and waits out the drain.
#[derive(Clone)]
pub struct TargetSlots {
    engine: Engine,
    providers: MembershipProviders,
    availability_zone: Option<String>,
}

impl fmt::Debug for TargetSlots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetSlots")
            .field("availability_zone", &self.availability_zone)
            .finish_non_exhaustive()
    }
}

impl TargetSlots {
    /// Slots changed through `engine` over `providers`.
    pub fn new(engine: Engine, providers: MembershipProviders) -> Self {
        TargetSlots {
            engine,
            providers,
            availability_zone: None,
        }
    }

    /// Registers with this Availability Zone (`all` for an IP outside the VPC).
    pub fn availability_zone(mut self, zone: Option<String>) -> Self {
        self.availability_zone = zone;
        self
    }

    /// The engine every call goes through.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Observes every group (one health call each) and plans the registration.
    pub async fn plan_registration(
        &self,
        slots: &[Slot],
    ) -> Result<Plan<MembershipChange>, JoinFailure> {
        self.observe_and_plan(slots).await.map(|(plan, _)| plan)
    }

    async fn observe_and_plan(
        &self,
        slots: &[Slot],
    ) -> Result<(Plan<MembershipChange>, ObservedMembership), JoinFailure> {
        let mut desired = DesiredMembership::new();
        let mut observed = ObservedMembership::new();
        for slot in slots {
            let arn = &slot.group.arn;
            desired.want_target(arn, slot.target.clone(), self.availability_zone.clone());
            let health = self
                .health(slot)
                .await
                .map_err(|error| JoinFailure::Unobserved {
                    group: slot.group.name.clone(),
                    error,
                })?;
            observed.observe(arn, health);
        }
        // The caller owns its targets by construction: nothing else is deregistered.
        let plan = plan_membership(&desired, &observed, &OwnedTargets::new());
        Ok((plan, observed))
    }

    /// Registers the target where it is missing and keeps it where it already is (a
    /// restart). Where it is still draining from a previous life, waits under
    /// `drain_wait` until it is gone, then plans again.
    pub async fn register(
        &self,
        slots: &[Slot],
        drain_wait: PollPolicy,
    ) -> Result<Report<MembershipChange>, JoinFailure> {
        let (mut plan, observed) = self.observe_and_plan(slots).await?;
        let state = |slot: &Slot| observed.state(&slot.group.arn, &slot.target);
        for slot in slots {
            if state(slot).is_some_and(|s| !s.is_draining()) {
                tracing::info!(group = %slot.group.name, target = %slot.target, "already registered (a restart); keeping it");
            }
        }
        let draining: Vec<&Slot> = slots
            .iter()
            .filter(|s| state(s).is_some_and(|s| s.is_draining()))
            .collect();
        if !draining.is_empty() {
            for skip in &plan.skipped {
                tracing::info!(subject = %skip.subject, reason = %skip.reason, "waiting before registering");
            }
            let waits = draining.iter().map(|slot| async move {
                self.wait(slot, WaitFor::Gone, drain_wait)
                    .await
                    .map_err(|error| JoinFailure::StillDraining {
                        group: slot.group.name.clone(),
                        error,
                    })
            });
            for waited in join_all(waits).await {
                waited?;
            }
            plan = self.observe_and_plan(slots).await?.0;
        }
        Ok(self.engine.apply(&self.providers, &plan).await)
    }

    /// Waits under `poll` until the target is healthy in every group; one result per
    /// slot, in order (how long it took, or why it is not).
    pub async fn wait_healthy(&self, slots: &[Slot], poll: PollPolicy) -> Vec<Result<Duration>> {
        join_all(slots.iter().map(|s| self.wait(s, WaitFor::Healthy, poll))).await
    }

    /// The target's health in its group now (`None`: not registered there).
    pub async fn state(&self, slot: &Slot) -> Result<Option<TargetHealth>> {
        let health = self.health(slot).await?;
        Ok(health.into_iter().find(|h| h.target == slot.target))
    }

    /// Deregisters the target from every group (where it is absent too: a cancelled
    /// registration may have reached the service); one [`Leaving`] per slot, in order,
    /// to be drained.
    pub async fn deregister(&self, slots: &[Slot]) -> Vec<Leaving> {
        let leaving = slots.iter().map(|slot| {
            self.engine.deregister(
                &self.providers,
                &slot.group.arn,
                std::slice::from_ref(&slot.target),
            )
        });
        join_all(leaving).await
    }

    async fn health(&self, slot: &Slot) -> Result<Vec<TargetHealth>> {
        let provider = self.providers.targets.as_ref();
        let arn = &slot.group.arn;
        self.engine
            .caller()
            .call("DescribeTargetHealth", || provider.health(arn))
            .await
    }

    async fn wait(&self, slot: &Slot, until: WaitFor, poll: PollPolicy) -> Result<Duration> {
        self.engine
            .wait_targets(
                self.providers.targets.as_ref(),
                &slot.group.arn,
                std::slice::from_ref(&slot.target),
                until,
                poll,
            )
            .await
    }
}
