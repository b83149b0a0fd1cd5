//! The daemon's own metrics, registered under `berth_daemon_` in the process's one
//! registry (berth-runtime's `Metrics`, which also holds `berth_build_info`, the
//! controller's `berth_reconcile_*` and `berth_leader`, and the AWS call counter as
//! `berth_aws_api_calls_total`, and under its older name `berth_daemon_aws_calls_total`).
//! Documented in `docs/metrics.md`.

use std::fmt;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// The daemon's metrics. Clones share the same series.
#[derive(Clone)]
pub struct Metrics {
    registry: berth_runtime::Metrics,
    /// Targets registered.
    pub registrations: Counter,
    /// Targets deregistered.
    pub deregistrations: Counter,
    /// Targets to deregister found already absent from their group (nothing removed).
    pub deregistrations_already_absent: Counter,
    /// Errors by kind (`aws`, `castai`, `kubernetes`, `access_denied`...) and, for
    /// refused permissions, the IAM action.
    pub errors: Family<Labels, Counter>,
    /// Reconcile pass duration, seconds (superseded by `berth_reconcile_duration_seconds`).
    pub reconcile_duration: Histogram,
    /// 1 while this replica leads (always 1 in node mode); superseded by `berth_leader`.
    pub leader: Gauge,
    /// Nodes skipped in the last pass (no instance id, no group).
    pub skipped_nodes: Gauge,
    /// Targets deregistered and not yet seen gone from their group (draining for the
    /// group's deregistration delay).
    pub draining_targets: Gauge,
    /// Targets seen gone from their group after a deregistration: done.
    pub drained: Counter,
    /// Notice mode: taints written on its Node, by taint key.
    pub notice_taints: Family<Labels, Counter>,
    /// Notice mode: its own taints removed from its Node (no notice pending), by key.
    pub notice_taints_removed: Family<Labels, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The daemon's metrics in a process registry of their own (tests, embedding).
    pub fn new() -> Self {
        Metrics::register(&berth_runtime::Metrics::new("daemon"))
    }

    /// Registers the daemon's metrics in the process's `registry`, under `berth_daemon_`.
    pub fn register(registry: &berth_runtime::Metrics) -> Self {
        let metrics = Metrics {
            registry: registry.clone(),
            registrations: Counter::default(),
            deregistrations: Counter::default(),
            deregistrations_already_absent: Counter::default(),
            errors: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            leader: Gauge::default(),
            skipped_nodes: Gauge::default(),
            draining_targets: Gauge::default(),
            drained: Counter::default(),
            notice_taints: Family::default(),
            notice_taints_removed: Family::default(),
        };
        registry.with_registry(|root| {
            metrics.register_in(root.sub_registry_with_prefix("berth_daemon"))
        });
        metrics
    }

    fn register_in(&self, registry: &mut Registry) {
        registry.register(
            "registrations",
            "Targets registered in target groups",
            self.registrations.clone(),
        );
        registry.register(
            "deregistrations",
            "Targets deregistered from target groups",
            self.deregistrations.clone(),
        );
        registry.register(
            "deregistrations_already_absent",
            "Targets to deregister found already absent from their group (nothing removed)",
            self.deregistrations_already_absent.clone(),
        );
        registry.register(
            "errors",
            "Errors by kind; access_denied carries the refused IAM action",
            self.errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile pass (superseded by berth_reconcile_duration_seconds)",
            self.reconcile_duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica is the leader, node mode: always 1 (superseded by berth_leader)",
            self.leader.clone(),
        );
        registry.register(
            "skipped_nodes",
            "Nodes skipped in the last reconcile pass",
            self.skipped_nodes.clone(),
        );
        registry.register(
            "draining_targets",
            "Targets deregistered and still draining (deregistration delay not over)",
            self.draining_targets.clone(),
        );
        registry.register(
            "drained",
            "Deregistered targets seen gone from their group (deregistration done)",
            self.drained.clone(),
        );
        registry.register(
            "notice_taints",
            "Notice mode: taints written on its Node (spot interruption, rebalance recommendation)",
            self.notice_taints.clone(),
        );
        registry.register(
            "notice_taints_removed",
            "Notice mode: its own taints removed from its Node once IMDS showed no such notice",
            self.notice_taints_removed.clone(),
        );
    }

    /// Counts a taint notice mode wrote on its Node.
    pub fn notice_taint(&self, key: &str) {
        self.notice_taints
            .get_or_create(&vec![("taint".to_owned(), key.to_owned())])
            .inc();
    }

    /// Counts a taint notice mode removed from its Node.
    pub fn notice_taint_removed(&self, key: &str) {
        self.notice_taints_removed
            .get_or_create(&vec![("taint".to_owned(), key.to_owned())])
            .inc();
    }

    /// Counts an error; a refused permission is labelled with its IAM action.
    pub fn error(&self, kind: &str, error: &berth_core::Error) {
        let labels = match error {
            berth_core::Error::AccessDenied { action, .. } => vec![
                ("kind".to_owned(), "access_denied".to_owned()),
                ("action".to_owned(), action.clone()),
            ],
            _ => vec![("kind".to_owned(), kind.to_owned())],
        };
        self.errors.get_or_create(&labels).inc();
    }

    /// Counts an error that is not a berth-core error (e.g. a Kubernetes watch error).
    pub fn error_kind(&self, kind: &str) {
        self.errors
            .get_or_create(&vec![("kind".to_owned(), kind.to_owned())])
            .inc();
    }

    /// The text exposition of the whole process registry.
    pub fn render(&self) -> String {
        self.registry.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_metrics_render_in_the_process_registry() {
        let process = berth_runtime::Metrics::new("daemon");
        let m = Metrics::register(&process);
        m.error(
            "aws",
            &berth_core::Error::AccessDenied {
                action: "elasticloadbalancing:RegisterTargets".into(),
                message: "no".into(),
            },
        );
        m.leader.set(1);
        m.deregistrations_already_absent.inc();
        m.notice_taint("berth.dev/spot-interruption");
        let text = process.render();
        for line in [
            "berth_daemon_errors_total{kind=\"access_denied\",action=\"elasticloadbalancing:RegisterTargets\"} 1",
            "berth_daemon_leader 1",
            "berth_daemon_deregistrations_already_absent_total 1",
            "berth_daemon_notice_taints_total{taint=\"berth.dev/spot-interruption\"} 1",
            "berth_build_info{",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert_eq!(m.render(), text);
    }
}
