//! IP target GC (`--gc-ip-targets`, cluster mode, leader only): removes from IP target
//! groups the targets berth-sidecar registered whose pod has been gone for the grace
//! period — a sidecar killed with SIGKILL, or its node lost, never deregistered.
//!
//! The sidecar records each registration, with its pod's identity, in a ConfigMap of
//! the pod's namespace (berth-kube's `sidecar_records`). This module only wires: the
//! pod watch (berth-kube `pods`), when to run a pass (leader only, after the pod list
//! is in, every interval, soon after a pod deletion, when a waiting record falls due),
//! berth-core's [`IpTargetCollector`] workflow for the pass itself (records, pods
//! confirmed gone with a `get`, one `DescribeTargetHealth` per due group, the plan,
//! `Engine::deregister`, forgets, empty records deleted), and its report turned into
//! logs, metrics, Events and background `Leaving::drain` waits. Nothing without a record
//! is ever touched.

use std::sync::Arc;
use std::time::Duration;

use berth_core::domain::{InstallationId, Mode as OwnerMode, Owner, Target};
use berth_core::engine::Engine;
use berth_core::plan::{GcAction, GcHold};
use berth_core::provider::PollPolicy;
use berth_core::workflow::{GcDone, GcPassReport, IpTargetCollector};
use berth_kube::events::{pod_reference, EventRecorder, EventType, ObjectReference};
use berth_kube::pods::{watch_pods, PodChange};
use berth_kube::sidecar_records::KubeSidecarRecords;
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
    /// Targets acted on, by action (`deregister`, `forget`, `delete_record`) and result
    /// (`ok`, `error`; `already_absent` for a deregistration that found its target
    /// gone already).
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

    /// Counts an action's targets (its record, for `delete_record`); a deregistration's
    /// `absent` targets, found gone already, apart: nothing was removed for them.
    fn done(&self, action: &GcAction, ok: bool, absent: usize) {
        let count = match action {
            GcAction::Deregister { targets, .. } | GcAction::Forget { targets, .. } => {
                targets.len()
            }
            GcAction::DeleteRecord { .. } => 1,
        };
        let result = if ok { "ok" } else { "error" };
        self.action(action.verb(), result, count.saturating_sub(absent));
        self.action(action.verb(), "already_absent", absent);
    }

    fn action(&self, verb: &str, result: &str, count: usize) {
        if count == 0 {
            return;
        }
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
        let records = Arc::new(KubeSidecarRecords::new(
            self.client.clone(),
            self.settings.owner.clone(),
        ));
        let mut collector = IpTargetCollector::new(
            self.engine.clone(),
            self.targets.clone(),
            records,
            self.settings.grace,
        );
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
                    collector.restart();
                    next = Instant::now();
                }
                Some(_) = drains.join_next(), if !drains.is_empty() => {}
                () = tokio::time::sleep_until(next) => {
                    next = Instant::now() + self.settings.interval;
                    if !synced || !*leader.borrow() {
                        continue;
                    }
                    match collector.pass(&cache.live()).await {
                        Ok(report) => {
                            metrics.passes.get_or_create(&vec![("result".into(), "ok".into())]).inc();
                            if let Some(due_in) = report.next_due {
                                next = next.min(Instant::now() + due_in);
                            }
                            self.report(report, &metrics, &mut drains).await;
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

    /// Turns a pass's report into logs, metrics, Events and background drain waits.
    async fn report(&self, report: GcPassReport, metrics: &GcMetrics, drains: &mut JoinSet<()>) {
        metrics.records.set(report.records as i64);
        metrics.waiting.set(report.waiting as i64);
        metrics.held.set(report.held.len() as i64);
        for (pod, error) in &report.unconfirmed {
            match error {
                None => {
                    tracing::warn!(pod = %pod, "the pod watch missed a running pod; its targets stay")
                }
                Some(e) => {
                    tracing::warn!(pod = %pod, error = %e, "cannot confirm the pod is gone; retried at the next pass")
                }
            }
        }
        for (group, e) in &report.unobserved {
            tracing::warn!(group = %group, error = %e, "could not observe target group");
        }
        for hold in &report.held {
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
        for done in report.done {
            self.done(done, metrics, drains).await;
        }
    }

    async fn done(&self, done: GcDone, metrics: &GcMetrics, drains: &mut JoinSet<()>) {
        let GcDone {
            pod,
            action,
            result,
            leaving,
        } = done;
        let absent = leaving.as_ref().map_or(0, |l| l.outcome().absent.len());
        metrics.done(&action, result.is_ok(), absent);
        if let Err(e) = &result {
            tracing::warn!(pod = %pod, record = action.record(), action = action.verb(), error = %e, "IP target GC action failed; retried at the next pass");
            return;
        }
        match &action {
            GcAction::Deregister { group, .. } => {
                let Some(left) = leaving else {
                    return; // a dry run
                };
                let outcome = left.outcome();
                let pod_ref = pod_reference(&pod.namespace, &pod.name, &pod.uid);
                if !outcome.absent.is_empty() {
                    let list = join(&outcome.absent);
                    tracing::info!(pod = %pod, group = %group, targets = %list, "the targets of a gone pod were already absent; nothing to deregister, their record is cleared");
                    let message = format!(
                        "berth-daemon found {list} already absent from {} (pod gone for over {:?}); nothing deregistered, its record is cleared",
                        group.name(),
                        self.settings.grace
                    );
                    self.event(pod_ref.clone(), "AlreadyAbsent", &message).await;
                }
                if outcome.removed.is_empty() {
                    return;
                }
                let list = join(&outcome.removed);
                tracing::info!(pod = %pod, group = %group, targets = %list, "deregistered the targets of a gone pod; draining");
                let message = format!(
                    "berth-daemon deregistered {list} from {} (pod gone for over {:?}, its sidecar never deregistered)",
                    group.name(),
                    self.settings.grace
                );
                self.event(pod_ref, "Deregistered", &message).await;
                let poll = PollPolicy {
                    initial: Duration::from_secs(1),
                    max: Duration::from_secs(15),
                    deadline: self.settings.drain_bound,
                };
                let drained = metrics.drained.clone();
                let (group, count) = (group.clone(), outcome.removed.len() as u64);
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
            GcAction::Forget { group, targets, .. } => tracing::info!(
                pod = %pod, group = %group, targets = %join(targets),
                "forgot recorded targets no longer registered (or re-registered by a live pod)"
            ),
            GcAction::DeleteRecord { record } => {
                tracing::info!(pod = %pod, record, "deleted an empty sidecar record")
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
    fn a_deregistration_counts_its_already_absent_targets_apart() {
        let registry = berth_runtime::Metrics::new("daemon");
        let metrics = GcMetrics::register(&registry);
        let group = berth_core::domain::TargetGroupArn::new(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
        )
        .unwrap();
        let action = GcAction::Deregister {
            record: "shop/berth-sidecar-web-0".into(),
            group,
            targets: vec![Target::new("10.0.0.1", 80), Target::new("10.0.0.2", 80)],
        };
        metrics.done(&action, true, 1);
        let text = registry.render();
        for line in [
            "berth_daemon_ip_target_gc_actions_total{action=\"deregister\",result=\"ok\"} 1",
            "berth_daemon_ip_target_gc_actions_total{action=\"deregister\",result=\"already_absent\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        metrics.done(&action, true, 0);
        assert!(registry.render().contains(
            "berth_daemon_ip_target_gc_actions_total{action=\"deregister\",result=\"ok\"} 3"
        ));
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
