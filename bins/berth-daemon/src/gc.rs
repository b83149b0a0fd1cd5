//! IP target GC (`--gc-ip-targets`, cluster mode, leader only): removes from IP target
//! groups the targets berth-sidecar registered whose pod has been gone for the grace
//! period — a sidecar killed with SIGKILL, or its node lost, never deregistered.
//!
//! The sidecar records each registration, with its pod's identity, in a ConfigMap of
//! the pod's namespace (berth-kube's `sidecar_records`). Each pass here lists those
//! records, asks berth-core's [`IpTargetGc`] which pods (by UID) have been missing
//! from the pod watch for longer than the grace, confirms each is gone with a `get` of
//! the Pod (a stale watch cache never removes a live pod's target), observes those
//! records' groups (one
//! `DescribeTargetHealth` each), and applies [`plan_ip_target_gc`]'s decision through
//! the engine: `Engine::deregister` (the record releases the target after
//! `DeregisterTargets`, and is deleted once empty) then `Leaving::drain` in the
//! background; targets already gone are only forgotten. Nothing without a record is
//! ever touched.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use berth_core::domain::{InstallationId, Mode as OwnerMode, Owner, Target, TargetGroupArn};
use berth_core::engine::{Engine, MembershipProviders};
use berth_core::plan::{
    plan_ip_target_gc, GcAction, GcHold, IpTargetGc, LivePods, MembershipChange, Plan,
    SidecarRecord,
};
use berth_core::provider::PollPolicy;
use berth_kube::events::{pod_reference, EventRecorder, EventType, ObjectReference};
use berth_kube::pods::{still_running, watch_pods, PodChange};
use berth_kube::sidecar_records::{list_records, record_store_by_key};
use berth_runtime::CancellationToken;
use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How long after a pod deletion is seen the next pass runs (deletions in a burst are
/// handled together).
const AFTER_DELETION: Duration = Duration::from_secs(1);

/// The GC's settings.
#[derive(Debug, Clone)]
pub struct GcSettings {
    /// How long a recorded pod must have been gone before its targets are removed.
    pub grace: Duration,
    /// The longest time between two passes.
    pub interval: Duration,
    /// The owner of the sidecars' records: `berth/<installation>/sidecar`.
    pub owner: Owner,
    /// How long a background drain wait lasts at most (reporting only: the target
    /// is deregistered either way).
    pub drain_bound: Duration,
}

impl GcSettings {
    /// GC of `installation`'s sidecar records after `grace`; a pass at least every
    /// half grace (between 1 s and 60 s).
    pub fn new(installation: &InstallationId, grace: Duration) -> Self {
        GcSettings {
            grace,
            interval: (grace / 2).clamp(Duration::from_secs(1), Duration::from_secs(60)),
            owner: Owner::for_installation(installation, OwnerMode::Sidecar),
            drain_bound: Duration::from_secs(3600),
        }
    }
}

/// The GC's metrics, under `berth_daemon_ip_target_gc_` (docs/metrics.md).
#[derive(Clone, Default)]
struct GcMetrics {
    /// Passes run, by result (`ok`, `error`).
    passes: Family<Vec<(String, String)>, Counter>,
    /// Targets acted on, by action (`deregister`, `forget`, `delete_record`) and result.
    actions: Family<Vec<(String, String)>, Counter>,
    /// Sidecar registration records seen in the last pass.
    records: Gauge,
    /// Records whose pod is gone, still within the grace.
    waiting: Gauge,
    /// Due targets left alone in the last pass (IP reused by a live pod, group
    /// unobserved).
    held: Gauge,
    /// Collected targets seen gone from their group after the drain.
    drained: Counter,
}

impl GcMetrics {
    fn register(registry: &berth_runtime::Metrics) -> Self {
        let metrics = GcMetrics::default();
        registry.with_registry(|root| {
            let r = root.sub_registry_with_prefix("berth_daemon_ip_target_gc");
            r.register(
                "passes",
                "IP target GC passes, by result",
                metrics.passes.clone(),
            );
            r.register(
                "actions",
                "IP target GC actions on targets (records for delete_record), by action and result",
                metrics.actions.clone(),
            );
            r.register(
                "records",
                "Sidecar registration records seen",
                metrics.records.clone(),
            );
            r.register(
                "waiting",
                "Records whose pod is gone, within the grace period",
                metrics.waiting.clone(),
            );
            r.register(
                "held",
                "Due targets left alone (IP held by a live pod, group unobserved)",
                metrics.held.clone(),
            );
            r.register(
                "drained",
                "Collected targets seen gone from their group",
                metrics.drained.clone(),
            );
        });
        metrics
    }

    fn action(&self, verb: &str, ok: bool, count: usize) {
        let result = if ok { "ok" } else { "error" };
        self.actions
            .get_or_create(&vec![
                ("action".into(), verb.into()),
                ("result".into(), result.into()),
            ])
            .inc_by(count as u64);
    }
}

/// What the GC works with.
pub(crate) struct Collector {
    pub(crate) client: kube::Client,
    pub(crate) targets: Arc<dyn berth_core::provider::TargetGroups>,
    pub(crate) engine: Engine,
    pub(crate) settings: GcSettings,
    /// `None` in a dry run.
    pub(crate) events: Option<Arc<EventRecorder>>,
}

impl Collector {
    /// Runs until `shutdown`: watches pods, and while `leader` is true runs a pass every
    /// interval, soon after a pod deletion, and when a waiting record falls due.
    pub(crate) async fn run(
        self,
        registry: &berth_runtime::Metrics,
        mut leader: watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) {
        let metrics = GcMetrics::register(registry);
        let mut gc = IpTargetGc::new(self.settings.grace);
        let (cache, mut changes) = watch_pods(self.client.clone());
        let mut drains = JoinSet::new();
        let mut synced = false;
        let mut next = Instant::now() + self.settings.interval;
        tracing::info!(grace = ?self.settings.grace, owner = %self.settings.owner, "IP target GC on");
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                change = changes.next() => match change {
                    Some(Ok(PodChange::Synced)) => { synced = true; next = Instant::now(); }
                    Some(Ok(PodChange::Gone)) => next = next.min(Instant::now() + AFTER_DELETION),
                    Some(Ok(PodChange::Applied)) => {}
                    Some(Err(e)) => tracing::warn!(error = %e, "pod watch failed; it retries"),
                    None => break,
                },
                changed = leader.changed() => {
                    if changed.is_err() { break; }
                    // A new leader starts every grace over: it cannot know what the
                    // previous one saw.
                    gc = IpTargetGc::new(self.settings.grace);
                    next = Instant::now();
                }
                Some(_) = drains.join_next(), if !drains.is_empty() => {}
                () = tokio::time::sleep_until(next) => {
                    next = Instant::now() + self.settings.interval;
                    if !synced || !*leader.borrow() {
                        continue;
                    }
                    match self.pass(&mut gc, &cache.live(), &metrics, &mut drains).await {
                        Ok(due_in) => {
                            metrics.passes.get_or_create(&vec![("result".into(), "ok".into())]).inc();
                            if let Some(due_in) = due_in {
                                next = next.min(Instant::now() + due_in);
                            }
                        }
                        Err(e) => {
                            metrics.passes.get_or_create(&vec![("result".into(), "error".into())]).inc();
                            tracing::warn!(error = %e, "IP target GC pass failed; retried at the next one");
                        }
                    }
                }
            }
        }
        drains.abort_all();
    }

    /// One pass; returns when the earliest waiting record falls due.
    async fn pass(
        &self,
        gc: &mut IpTargetGc,
        live: &LivePods,
        metrics: &GcMetrics,
        drains: &mut JoinSet<()>,
    ) -> Result<Option<Duration>, berth_kube::Error> {
        let records = list_records(self.client.clone(), &self.settings.owner).await?;
        let due = gc.due(Instant::now(), &records, live);
        metrics.records.set(records.len() as i64);
        metrics.waiting.set(due.waiting.len() as i64);
        for (i, left) in &due.waiting {
            tracing::debug!(pod = %records[*i].pod, due_in = ?left, "recorded pod gone; within its grace");
        }
        let next_due = gc.next_due(&due);
        let (due, live) = self.confirm(&records, due.due, live).await;
        if due.is_empty() {
            metrics.held.set(0);
            return Ok(next_due);
        }
        let groups: BTreeSet<&TargetGroupArn> = due
            .iter()
            .flat_map(|i| records[*i].targets.keys())
            .collect();
        let registered = self.observe(groups).await;
        let plan = plan_ip_target_gc(&records, &due, &live, &registered);
        metrics.held.set(plan.held.len() as i64);
        for hold in &plan.held {
            match hold {
                GcHold::Unobserved { record, group } => {
                    tracing::warn!(record, group = %group, "group unobserved; collected later")
                }
                GcHold::IpInUse { record, target } => tracing::warn!(
                    record, target = %target,
                    "the recorded pod is gone but a live pod holds its IP; left registered"
                ),
            }
        }
        let by_key: BTreeMap<&str, &SidecarRecord> =
            records.iter().map(|r| (r.key.as_str(), r)).collect();
        for action in &plan.actions {
            let Some(record) = by_key.get(action.record()) else {
                continue;
            };
            self.act(action, record, metrics, drains).await;
        }
        Ok(next_due)
    }

    /// Asks the API server about each due record's pod before anything is removed: a
    /// pod found running (the watch cache was stale) is not due, and counts as live; a
    /// pod that cannot be asked about is not due this time.
    async fn confirm(
        &self,
        records: &[SidecarRecord],
        due: Vec<usize>,
        live: &LivePods,
    ) -> (Vec<usize>, LivePods) {
        let mut live = live.clone();
        let mut confirmed = Vec::new();
        for i in due {
            let pod = &records[i].pod;
            match still_running(self.client.clone(), pod).await {
                Ok(false) => confirmed.push(i),
                Ok(true) => {
                    tracing::warn!(pod = %pod, "the pod watch missed a running pod; its targets stay");
                    live.uids.insert(pod.uid.clone());
                }
                Err(e) => {
                    tracing::warn!(pod = %pod, error = %e, "cannot confirm the pod is gone; retried at the next pass")
                }
            }
        }
        (confirmed, live)
    }

    /// Each group's registered members (draining ones left out: already leaving);
    /// a group that cannot be read is left out, and nothing in it is decided.
    async fn observe(
        &self,
        groups: BTreeSet<&TargetGroupArn>,
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
                Err(e) => {
                    tracing::warn!(group = %group, error = %e, "could not observe target group")
                }
            }
        }
        registered
    }

    async fn act(
        &self,
        action: &GcAction,
        record: &SidecarRecord,
        metrics: &GcMetrics,
        drains: &mut JoinSet<()>,
    ) {
        let store = Arc::new(record_store_by_key(
            self.client.clone(),
            &record.key,
            self.settings.owner.clone(),
        ));
        let providers = MembershipProviders::new(self.targets.clone(), store.clone());
        let pod = &record.pod;
        match action {
            GcAction::Deregister { group, targets, .. } => {
                let left = self.engine.deregister(&providers, group, targets).await;
                let ok = left.report.is_success();
                metrics.action("deregister", ok, targets.len());
                let list = join(targets);
                if !ok {
                    for (_, e) in left.report.errors() {
                        tracing::warn!(pod = %pod, group = %group, targets = %list, error = %e, "IP target GC could not deregister");
                    }
                    return;
                }
                if left.report.dry_run {
                    return;
                }
                tracing::info!(pod = %pod, group = %group, targets = %list, "deregistered the targets of a gone pod; draining");
                self.event(pod_reference(&pod.namespace, &pod.name, &pod.uid), "Deregistered", &format!(
                    "berth-daemon deregistered {list} from {} (pod gone for over {:?}, its sidecar never deregistered)",
                    group.name(), self.settings.grace
                ))
                .await;
                let poll = PollPolicy {
                    initial: Duration::from_secs(1),
                    max: Duration::from_secs(15),
                    deadline: self.settings.drain_bound,
                };
                let drained = metrics.drained.clone();
                let (group, count) = (group.clone(), targets.len() as u64);
                drains.spawn(async move {
                    match left.drain(poll).await.drain {
                        Some(Ok(took)) => {
                            drained.inc_by(count);
                            tracing::info!(group = %group, targets = %list, took = ?took, "collected targets drained");
                        }
                        Some(Err(e)) => tracing::warn!(group = %group, targets = %list, error = %e, "collected targets not seen drained"),
                        None => {}
                    }
                });
            }
            GcAction::Forget { group, targets, .. } => {
                let mut plan = Plan::default();
                plan.push(MembershipChange::Forget {
                    group: group.clone(),
                    targets: targets.clone(),
                });
                let report = self.engine.apply(&providers, &plan).await;
                metrics.action("forget", report.is_success(), targets.len());
                let error = report.errors().next().map(|(_, e)| e.to_string());
                if let Some(e) = error {
                    tracing::warn!(record = %record.key, error = %e, "could not update a sidecar record");
                } else {
                    tracing::info!(pod = %pod, group = %group, targets = %join(targets), "forgot recorded targets no longer registered (or re-registered by a live pod)");
                }
            }
            GcAction::DeleteRecord { .. } => {
                if self.engine.options().dry_run {
                    return;
                }
                let deleted = store.delete_if_empty().await;
                metrics.action("delete_record", deleted.is_ok(), 1);
                if let Err(e) = deleted {
                    tracing::warn!(record = %record.key, error = %e, "could not delete an empty sidecar record");
                }
            }
        }
    }

    async fn event(&self, object: ObjectReference, reason: &str, message: &str) {
        let Some(events) = &self.events else {
            return;
        };
        if let Err(e) = events
            .publish_about(
                &object,
                EventType::Normal,
                reason,
                "DeregisterTargets",
                message,
            )
            .await
        {
            tracing::warn!(error = %e, "could not publish an Event");
        }
    }
}

fn join(targets: &[Target]) -> String {
    targets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::Cli;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("berth-daemon").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn gc_is_off_by_default_needs_cluster_mode_and_collects_the_sidecars_of_its_installation() {
        let cli = parse(&["--cluster-name", "p", "--config", "c", "--mode", "cluster"]);
        assert!(!cli.gc_ip_targets);
        assert_eq!(cli.gc_grace, Duration::from_secs(300));
        let node = parse(&[
            "--cluster-name",
            "p",
            "--config",
            "c",
            "--node-name",
            "n",
            "--gc-ip-targets",
        ]);
        assert!(node.validate().unwrap_err().contains("--mode cluster"));
        let cli = parse(&[
            "--cluster-name",
            "p",
            "--config",
            "c",
            "--mode",
            "cluster",
            "--gc-ip-targets",
            "--gc-grace",
            "90s",
            "--installation-id",
            "eu-1",
        ]);
        cli.validate().unwrap();
        let settings = crate::wiring::settings(&cli, Default::default(), None).unwrap();
        let gc = settings.gc.expect("GC on");
        assert_eq!(gc.grace, Duration::from_secs(90));
        assert_eq!(gc.interval, Duration::from_secs(45));
        assert_eq!(gc.owner.as_str(), "berth/eu-1/sidecar");
        assert_eq!(
            GcSettings::new(&InstallationId::default(), Duration::from_secs(1)).interval,
            Duration::from_secs(1)
        );
    }
}
