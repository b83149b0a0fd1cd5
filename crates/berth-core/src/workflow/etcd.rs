//! [`EtcdBootstrap`]: this node's etcd membership at boot — observe the group and the
//! cluster, decide with [`decide_etcd`], change membership, render the drop-in.
//!
//! Writing the drop-in is the caller's (the binary writes files); everything else
//! goes through the providers, every call through the engine's [`Caller`] (rate
//! limit, jittered retries, tallies reported in [`EtcdSummary::calls`]).

mod called;
mod observe;
mod promote;

use observe::Observed;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::called::Called;
use crate::domain::{LedgerRecord, Owner, WriteCondition};
use crate::engine::{Caller, RetryPolicy, Tally};
use crate::plan::{
    decide_etcd, render_drop_in, DropIn, EtcdDecision, EtcdSettings, InitialClusterState, JoinPlan,
    NodeIdentity, Removal, SelfStep,
};
use crate::provider::{EtcdMember, EtcdMembership, Instances, Ledger, PollPolicy, ScalingGroups};
use crate::{Error, Result};

/// The providers the workflow observes and changes the world through.
#[derive(Clone)]
pub struct EtcdProviders {
    /// The etcd cluster.
    pub membership: Arc<dyn EtcdMembership>,
    /// The Auto Scaling group of the peers.
    pub groups: Arc<dyn ScalingGroups>,
    /// EC2, for the peers' IPs and the fate of stale members' instances.
    pub instances: Arc<dyn Instances>,
    /// The "cluster created" marker's table, if configured.
    pub marker: Option<Arc<dyn Ledger>>,
}

/// How the workflow runs.
#[derive(Debug, Clone)]
pub struct EtcdBootstrapSettings {
    /// The membership rules' inputs.
    pub etcd: EtcdSettings,
    /// The Auto Scaling group whose instances are the peers.
    pub group: String,
    /// Who writes the marker.
    pub owner: Owner,
    /// Pauses between observations while the decision is to wait, and the deadline
    /// after which the run fails. Single calls are retried under the [`Caller`]'s
    /// policy; `MemberAdd` ("unhealthy cluster") and `MemberPromote` ("learner not in
    /// sync") are retried with the same backoff until this deadline.
    pub wait: PollPolicy,
}

/// What this node found on its own disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalNode {
    /// The data dir holds a WAL: etcd ran here before (a restart).
    pub has_wal: bool,
    /// The drop-in file exists.
    pub drop_in_exists: bool,
}

/// What the run did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EtcdAction {
    /// The data dir holds a WAL: membership untouched.
    Restart,
    /// Added to a healthy cluster.
    Joined,
    /// Already listed (added, never started): the drop-in only.
    Listed,
    /// A new cluster, every node writing the same initial member list.
    Created,
    /// Dry run only: the run would wait (see `waiting`).
    Wait,
    /// `promote`: this node's learner, in sync, was promoted to a voter.
    Promoted,
    /// `promote`: this node's member already votes; nothing to do.
    Voter,
}

/// What a run's provider calls cost, from the engine's [`Caller`] tally.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CallsSpent {
    /// Calls per operation (`DescribeAutoScalingGroups`, `QuorumRead`, `MemberAdd`...).
    pub calls: BTreeMap<String, u32>,
    /// Attempts per operation, retries included.
    pub attempts: BTreeMap<String, u32>,
    /// Calls that failed after their last attempt.
    pub failures: u32,
}

impl From<&Tally> for CallsSpent {
    fn from(tally: &Tally) -> Self {
        CallsSpent {
            calls: tally
                .operations
                .iter()
                .map(|(k, o)| (k.clone(), o.calls))
                .collect(),
            attempts: tally
                .operations
                .iter()
                .map(|(k, o)| (k.clone(), o.attempts))
                .collect(),
            failures: tally.failures(),
        }
    }
}

/// The summary of a run, serialisable into the binary's JSON report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EtcdSummary {
    /// What happened.
    pub action: EtcdAction,
    /// Nothing was changed.
    pub dry_run: bool,
    /// This node's member name.
    pub member_name: String,
    /// The stale member removed first.
    pub removed: Option<Removal>,
    /// Stale-looking members kept, and why.
    pub kept: Vec<String>,
    /// This node's member, once added (`None` in a dry run).
    pub added: Option<EtcdMember>,
    /// Whether it joined as a learner.
    pub learner: bool,
    /// A learner promoted by this run.
    pub promoted: Option<String>,
    /// A learner that could not be promoted yet, and why.
    pub promotion_deferred: Option<String>,
    /// The "cluster created" marker was written by this run.
    pub marker_written: bool,
    /// The drop-in to write; `None` to leave the file as it is.
    pub drop_in: Option<DropIn>,
    /// Observations that ended in a pause.
    pub waits: u32,
    /// Dry run only: why the run would wait.
    pub waiting: Option<String>,
    /// The provider calls this workflow made, through its [`Caller`].
    pub calls: CallsSpent,
}

impl EtcdSummary {
    fn new(action: EtcdAction, me: &NodeIdentity, dry_run: bool) -> Self {
        EtcdSummary {
            action,
            dry_run,
            member_name: me.instance_id.to_string(),
            removed: None,
            kept: Vec::new(),
            added: None,
            learner: false,
            promoted: None,
            promotion_deferred: None,
            marker_written: false,
            drop_in: None,
            waits: 0,
            waiting: None,
            calls: CallsSpent::default(),
        }
    }
}

/// Decides and applies this node's etcd membership. Safe to repeat, safe to race:
/// every node of a forming cluster renders the same initial member list, a member is
/// removed only behind every guard of [`decide_etcd`], and nothing is changed when
/// no quorum answers and a cluster may exist.
pub struct EtcdBootstrap {
    /// Every provider wrapped so that its calls go through `caller`.
    providers: EtcdProviders,
    /// The etcd provider unwrapped, for calls retried under a longer policy.
    membership: Arc<dyn EtcdMembership>,
    settings: EtcdBootstrapSettings,
    caller: Caller,
}

impl EtcdBootstrap {
    /// A workflow over these providers, every call through a scope of `caller`: its
    /// rate limit and retry policy, and a tally of this workflow's own calls (one
    /// workflow per boot: [`EtcdSummary::calls`] is what it spent).
    pub fn new(providers: EtcdProviders, settings: EtcdBootstrapSettings, caller: Caller) -> Self {
        let caller = caller.scope();
        let membership = providers.membership.clone();
        let providers = EtcdProviders {
            membership: Arc::new(called::Called::new(providers.membership, caller.clone())),
            groups: Arc::new(called::Called::new(providers.groups, caller.clone())),
            instances: Arc::new(Called::new(providers.instances, caller.clone())),
            marker: providers
                .marker
                .map(|m| Arc::new(Called::new(m, caller.clone())) as Arc<dyn Ledger>),
        };
        EtcdBootstrap {
            providers,
            membership,
            settings,
            caller,
        }
    }

    /// The caller every provider call goes through (its tally: what this workflow
    /// spent so far).
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Runs once for this node. `dry_run` observes and decides but changes nothing.
    /// Fails with [`Error::Conflict`] when creating a cluster would risk a second one,
    /// with [`Error::Timeout`] when the deadline passes while waiting.
    pub async fn run(
        &self,
        me: &NodeIdentity,
        local: LocalNode,
        dry_run: bool,
    ) -> Result<EtcdSummary> {
        let summary = if local.has_wal {
            self.restart(me, local, dry_run).await?
        } else {
            self.boot(me, dry_run).await?
        };
        Ok(self.finish(summary))
    }

    async fn boot(&self, me: &NodeIdentity, dry_run: bool) -> Result<EtcdSummary> {
        let started = Instant::now();
        let mut pauses = Pauses::new(&self.settings.wait, started);
        let mut removed: Option<Removal> = None;
        loop {
            let mut observed = self.observe(me).await?;
            observed.observation.may_remove = removed.is_none();
            let decision = decide_etcd(&self.settings.etcd, me, &observed.observation);
            tracing::debug!(?decision, "etcd membership decision");
            let reason = match decision {
                EtcdDecision::Join(plan) => match &plan.me {
                    SelfStep::Wait { reason } => {
                        // Remove the stale member now; add on a later observation.
                        let reason = reason.clone();
                        if let Some(removal) = &plan.remove {
                            if !dry_run {
                                self.remove(removal, &observed.endpoints).await?;
                            }
                            removed = Some(removal.clone());
                        }
                        reason
                    }
                    _ => {
                        let mut summary = self
                            .join(me, plan, &observed, removed.take(), started, dry_run)
                            .await?;
                        summary.waits = pauses.waits;
                        return Ok(summary);
                    }
                },
                EtcdDecision::Create { initial_cluster } => {
                    let mut s = EtcdSummary::new(EtcdAction::Created, me, dry_run);
                    s.drop_in = Some(render_drop_in(
                        &self.settings.etcd,
                        me,
                        &initial_cluster,
                        InitialClusterState::New,
                    ));
                    s.waits = pauses.waits;
                    return Ok(s);
                }
                EtcdDecision::Fail { reason } => return Err(Error::conflict(reason)),
                EtcdDecision::Wait { reason } => reason,
            };
            if dry_run {
                // A dry run reports the wait instead of sitting it out.
                let mut s = EtcdSummary::new(EtcdAction::Wait, me, dry_run);
                s.removed = removed;
                s.waiting = Some(reason);
                return Ok(s);
            }
            pauses.pause("etcd membership", &reason).await?;
        }
    }

    /// The summary with the calls this workflow spent so far.
    fn finish(&self, mut summary: EtcdSummary) -> EtcdSummary {
        summary.calls = CallsSpent::from(&self.caller.tally());
        summary
    }

    async fn remove(&self, removal: &Removal, endpoints: &[String]) -> Result<()> {
        tracing::info!(member = %removal.member.name, reason = %removal.reason, "removing a stale etcd member");
        self.providers
            .membership
            .remove_member(endpoints, removal.member.id)
            .await
    }

    /// The etcd provider through the caller, retrying until the wait deadline (what is
    /// left of it since `started`): for refusals that end once the cluster settles.
    fn membership_until_deadline(&self, started: Instant) -> called::Called<dyn EtcdMembership> {
        let budget = self
            .settings
            .wait
            .deadline
            .saturating_sub(started.elapsed());
        let policy = RetryPolicy {
            max_attempts: u32::MAX,
            budget,
            ..*self.caller.retry_policy()
        };
        called::Called::new(self.membership.clone(), self.caller.with_retry(policy))
    }

    async fn restart(
        &self,
        me: &NodeIdentity,
        local: LocalNode,
        dry_run: bool,
    ) -> Result<EtcdSummary> {
        let mut summary = EtcdSummary::new(EtcdAction::Restart, me, dry_run);
        if !local.drop_in_exists {
            // etcd ignores the initial cluster once it has data; name and URLs matter.
            summary.drop_in = Some(render_drop_in(
                &self.settings.etcd,
                me,
                &[],
                InitialClusterState::Existing,
            ));
        }
        // A cluster created by this node's first boot gets its marker here, once healthy.
        if self.marker_exists().await? == Some(false) {
            let observed = self.observe(me).await?;
            if observed.healthy && !dry_run {
                summary.marker_written = self.write_marker(me).await?;
            }
        }
        Ok(summary)
    }

    async fn join(
        &self,
        me: &NodeIdentity,
        plan: Box<JoinPlan>,
        observed: &Observed,
        removed_earlier: Option<Removal>,
        started: Instant,
        dry_run: bool,
    ) -> Result<EtcdSummary> {
        let etcd = &self.settings.etcd;
        let endpoints = observed.endpoints.as_slice();
        let action = match plan.me {
            SelfStep::Listed { .. } => EtcdAction::Listed,
            _ => EtcdAction::Joined,
        };
        let mut summary = EtcdSummary::new(action, me, dry_run);
        summary.kept = plan.kept.clone();
        summary.removed = plan.remove.clone().or(removed_earlier);
        let mut members = plan.members.clone();
        if let SelfStep::Add { learner } = plan.me {
            summary.learner = learner;
        }
        if dry_run {
            summary.promoted = plan.promote.as_ref().map(|m| m.name.clone());
            summary.drop_in = Some(render_existing(etcd, me, &members));
            return Ok(summary);
        }
        if let Some(removal) = &plan.remove {
            self.remove(removal, endpoints).await?;
        }
        if let Some(learner) = &plan.promote {
            let id = learner.id;
            // Another node's learner: one attempt; one not yet in sync is left to its
            // own `promote` step or a later join.
            let once = called::Called::new(
                self.membership.clone(),
                self.caller.with_retry(RetryPolicy::none()),
            );
            match once.promote_member(endpoints, id).await {
                Ok(()) => summary.promoted = Some(learner.name.clone()),
                Err(e) => summary.promotion_deferred = Some(format!("{}: {e}", learner.name)),
            }
        }
        if let SelfStep::Add { learner } = plan.me {
            let peer_urls = [etcd.peer_url(me.private_ip)];
            // "unhealthy cluster" for a few seconds after members connect or one was
            // removed: retried with jittered backoff until the deadline.
            let (added, after) = self
                .membership_until_deadline(started)
                .add_member(endpoints, &peer_urls, learner)
                .await?;
            tracing::info!(
                member = added.id,
                learner,
                "added this node to the etcd cluster"
            );
            summary.added = Some(added);
            members = after;
        }
        summary.drop_in = Some(render_existing(etcd, me, &members));
        if observed.marker == Some(false) {
            summary.marker_written = self.write_marker(me).await?;
        }
        Ok(summary)
    }

    /// `Some(exists)` with a marker table, `None` without one.
    async fn marker_exists(&self) -> Result<Option<bool>> {
        let Some(ledger) = &self.providers.marker else {
            return Ok(None);
        };
        let row = ledger.get(&self.settings.etcd.cluster_token).await?;
        Ok(Some(row.is_some()))
    }

    /// One conditional write; a marker someone else wrote first is just as good.
    async fn write_marker(&self, me: &NodeIdentity) -> Result<bool> {
        let Some(ledger) = &self.providers.marker else {
            return Ok(false);
        };
        let record = LedgerRecord::new(
            &self.settings.etcd.cluster_token,
            self.settings.owner.clone(),
        )
        .with("written_by", me.instance_id.as_str());
        match ledger.put(record, WriteCondition::Absent).await {
            Ok(_) => Ok(true),
            Err(Error::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The drop-in of a node joining (or listed in) an existing cluster.
fn render_existing(etcd: &EtcdSettings, me: &NodeIdentity, members: &[EtcdMember]) -> DropIn {
    let initial: Vec<(String, String)> = members
        .iter()
        .flat_map(|m| m.peer_urls.iter().map(|u| (m.name.clone(), u.clone())))
        .collect();
    render_drop_in(etcd, me, &initial, InitialClusterState::Existing)
}

/// The pauses between observations of one run: jittered, doubling up to the wait
/// policy's maximum, never past its deadline.
struct Pauses<'a> {
    policy: &'a PollPolicy,
    started: Instant,
    delay: Duration,
    waits: u32,
}

impl<'a> Pauses<'a> {
    fn new(policy: &'a PollPolicy, started: Instant) -> Self {
        Pauses {
            policy,
            started,
            delay: policy.initial,
            waits: 0,
        }
    }

    /// Sleeps before the next observation, or fails with [`Error::Timeout`] once the
    /// deadline has passed.
    async fn pause(&mut self, what: &str, reason: &str) -> Result<()> {
        let elapsed = self.started.elapsed();
        if elapsed >= self.policy.deadline {
            return Err(Error::Timeout {
                operation: format!("waiting for {what} ({reason})"),
                after: elapsed,
            });
        }
        self.waits += 1;
        let pause = jitter(self.delay).min(self.policy.deadline - elapsed);
        tracing::info!(%reason, ?pause, "{what}: waiting");
        tokio::time::sleep(pause).await;
        self.delay = (self.delay * 2).min(self.policy.max);
        Ok(())
    }
}

/// Uniform in `[delay / 2, delay]`: nodes booting together do not poll in step.
fn jitter(delay: Duration) -> Duration {
    let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(nanos / 2..=nanos.max(1)))
}
