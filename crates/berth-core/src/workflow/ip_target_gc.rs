//! IP target GC's pass (berth-daemon `--gc-ip-targets`): the records of berth-sidecar
//! registrations whose pod is gone past the grace are collected. Observe (the records,
//! the pods, then each due pod confirmed gone with the source of truth and each of
//! their groups read once), plan (berth-core's `plan_ip_target_gc`), apply through the
//! engine: `Engine::deregister` (the record's store releases the target after
//! `DeregisterTargets`), a `Forget` for targets already gone, an empty record deleted.
//! The deregistrations are handed back as [`Leaving`]s for the caller to drain.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::{Target, TargetGroupArn};
use crate::engine::{Engine, Leaving, MembershipProviders};
use crate::plan::{
    plan_ip_target_gc, GcAction, GcHold, IpTargetGc, LivePods, MembershipChange, Plan, PodIdentity,
    SidecarRecord,
};
use crate::provider::{SidecarRecords, TargetGroups};
use crate::{Error, Result};

/// What one pass found and did.
#[derive(Debug, Default)]
pub struct GcPassReport {
    /// Records seen.
    pub records: usize,
    /// Records whose pod is gone, within the grace.
    pub waiting: usize,
    /// When the earliest waiting record falls due.
    pub next_due: Option<Duration>,
    /// Due pods not collected: found running (`None`: the pod cache was stale) or
    /// not confirmed gone (the error).
    pub unconfirmed: Vec<(PodIdentity, Option<Error>)>,
    /// Due targets left alone, and why.
    pub held: Vec<GcHold>,
    /// Groups that could not be read.
    pub unobserved: Vec<(TargetGroupArn, Error)>,
    /// What was done, action by action.
    pub done: Vec<GcDone>,
}

/// One action applied.
#[derive(Debug)]
pub struct GcDone {
    /// The gone pod.
    pub pod: PodIdentity,
    /// The action.
    pub action: GcAction,
    /// How it went.
    pub result: Result<()>,
    /// For a deregistration that went through: the targets to drain.
    pub leaving: Option<Leaving>,
}

/// Collects the IP targets of gone pods' sidecar records, pass after pass (the grace
/// clock lives here).
pub struct IpTargetCollector {
    engine: Engine,
    targets: Arc<dyn TargetGroups>,
    records: Arc<dyn SidecarRecords>,
    gc: IpTargetGc,
}

impl IpTargetCollector {
    /// A collector over these target groups and records, removing after `grace`.
    pub fn new(
        engine: Engine,
        targets: Arc<dyn TargetGroups>,
        records: Arc<dyn SidecarRecords>,
        grace: Duration,
    ) -> Self {
        IpTargetCollector {
            engine,
            targets,
            records,
            gc: IpTargetGc::new(grace),
        }
    }

    /// Forgets every grace clock (a new leader cannot know what the previous one saw:
    /// removals are delayed, never hastened).
    pub fn restart(&mut self) {
        self.gc = IpTargetGc::new(self.gc.grace());
    }

    /// One pass, given the pods alive per a complete (possibly stale) listing. Fails
    /// only if the records cannot be listed.
    pub async fn pass(&mut self, live: &LivePods) -> Result<GcPassReport> {
        let records = self.records.list().await?;
        let due = self.gc.due(Instant::now(), &records, live);
        let mut report = GcPassReport {
            records: records.len(),
            waiting: due.waiting.len(),
            next_due: self.gc.next_due(&due),
            ..GcPassReport::default()
        };
        let mut live = live.clone();
        let mut confirmed = Vec::new();
        for i in due.due {
            let pod = &records[i].pod;
            match self.records.still_running(pod).await {
                Ok(false) => confirmed.push(i),
                Ok(true) => {
                    live.uids.insert(pod.uid.clone());
                    report.unconfirmed.push((pod.clone(), None));
                }
                Err(e) => report.unconfirmed.push((pod.clone(), Some(e))),
            }
        }
        if confirmed.is_empty() {
            return Ok(report);
        }
        let groups: BTreeSet<&TargetGroupArn> = confirmed
            .iter()
            .flat_map(|i| records[*i].targets.keys())
            .collect();
        let registered = self.observe(groups, &mut report).await;
        let plan = plan_ip_target_gc(&records, &confirmed, &live, &registered);
        report.held = plan.held;
        let by_key: BTreeMap<&str, &SidecarRecord> =
            records.iter().map(|r| (r.key.as_str(), r)).collect();
        for action in plan.actions {
            if let Some(record) = by_key.get(action.record()) {
                report.done.push(self.act(action, record).await);
            }
        }
        Ok(report)
    }

    /// Each group's registered members (draining ones left out: already leaving).
    async fn observe(
        &self,
        groups: BTreeSet<&TargetGroupArn>,
        report: &mut GcPassReport,
    ) -> BTreeMap<TargetGroupArn, BTreeSet<Target>> {
        let mut registered = BTreeMap::new();
        for group in groups {
            let targets = self.targets.as_ref();
            match self
                .engine
                .caller()
                .call("DescribeTargetHealth", || targets.health(group))
                .await
            {
                Ok(health) => {
                    let members = health
                        .into_iter()
                        .filter(|h| !h.state.is_draining())
                        .map(|h| h.target)
                        .collect();
                    registered.insert(group.clone(), members);
                }
                Err(e) => report.unobserved.push((group.clone(), e)),
            }
        }
        registered
    }

    async fn act(&self, action: GcAction, record: &SidecarRecord) -> GcDone {
        let providers = MembershipProviders::new(self.targets.clone(), self.records.store(record));
        let (result, leaving) = match &action {
            GcAction::Deregister { group, targets, .. } => {
                let left = self.engine.deregister(&providers, group, targets).await;
                let result = match left.report.errors().next() {
                    Some((_, e)) => Err(e.clone()),
                    None => Ok(()),
                };
                let leaving = left.is_deregistered().then_some(left);
                (result, leaving)
            }
            GcAction::Forget { group, targets, .. } => {
                let mut plan = Plan::default();
                plan.push(MembershipChange::Forget {
                    group: group.clone(),
                    targets: targets.clone(),
                });
                let report = self.engine.apply(&providers, &plan).await;
                let result = match report.errors().next() {
                    Some((_, e)) => Err(e.clone()),
                    None => Ok(()),
                };
                (result, None)
            }
            GcAction::DeleteRecord { .. } if self.engine.options().dry_run => (Ok(()), None),
            GcAction::DeleteRecord { .. } => (self.records.delete_if_empty(record).await, None),
        };
        GcDone {
            pod: record.pod.clone(),
            action,
            result,
            leaving,
        }
    }
}
