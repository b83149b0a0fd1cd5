//! Prometheus metrics served on `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// The daemon's metrics.
pub struct Metrics {
    registry: Registry,
    /// Targets registered.
    pub registrations: Counter,
    /// Targets deregistered.
    pub deregistrations: Counter,
    /// Errors by kind (`aws`, `castai`, `kubernetes`, `access_denied`...) and, for
    /// refused permissions, the IAM action.
    pub errors: Family<Labels, Counter>,
    /// AWS API calls by operation.
    pub aws_calls: Family<Labels, Counter>,
    /// Reconcile pass duration, seconds.
    pub reconcile_duration: Histogram,
    /// 1 while this replica leads (always 1 in node mode).
    pub leader: Gauge,
    /// Nodes skipped in the last pass (no instance id, no group).
    pub skipped_nodes: Gauge,
    /// Targets deregistered and not yet seen gone from their group (draining for the
    /// group's deregistration delay).
    pub draining_targets: Gauge,
    /// Targets seen gone from their group after a deregistration: done.
    pub drained: Counter,
    aws_seen: Mutex<BTreeMap<String, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All metrics registered under the `berth_daemon_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("berth_daemon");
        let registrations = Counter::default();
        let deregistrations = Counter::default();
        let errors = Family::<Labels, Counter>::default();
        let aws_calls = Family::<Labels, Counter>::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let leader = Gauge::default();
        let skipped_nodes = Gauge::default();
        let draining_targets = Gauge::default();
        let drained = Counter::default();
        registry.register(
            "registrations",
            "Targets registered in target groups",
            registrations.clone(),
        );
        registry.register(
            "deregistrations",
            "Targets deregistered from target groups",
            deregistrations.clone(),
        );
        registry.register(
            "errors",
            "Errors by kind; access_denied carries the refused IAM action",
            errors.clone(),
        );
        registry.register("aws_calls", "AWS API calls by operation", aws_calls.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile pass",
            reconcile_duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica is the leader (node mode: always 1)",
            leader.clone(),
        );
        registry.register(
            "skipped_nodes",
            "Nodes skipped in the last reconcile pass",
            skipped_nodes.clone(),
        );
        registry.register(
            "draining_targets",
            "Targets deregistered and still draining (deregistration delay not over)",
            draining_targets.clone(),
        );
        registry.register(
            "drained",
            "Deregistered targets seen gone from their group (deregistration done)",
            drained.clone(),
        );
        Metrics {
            registry,
            registrations,
            deregistrations,
            errors,
            aws_calls,
            reconcile_duration,
            leader,
            skipped_nodes,
            draining_targets,
            drained,
            aws_seen: Mutex::new(BTreeMap::new()),
        }
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

    /// Brings the AWS call counters up to a per-operation snapshot of cumulative counts.
    pub fn observe_aws_calls(&self, snapshot: &BTreeMap<String, u64>) {
        let mut seen = self.aws_seen.lock().unwrap_or_else(|e| e.into_inner());
        for (op, total) in snapshot {
            let before = seen.get(op).copied().unwrap_or(0);
            if *total > before {
                self.aws_calls
                    .get_or_create(&vec![("operation".to_owned(), op.clone())])
                    .inc_by(total - before);
                seen.insert(op.clone(), *total);
            }
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_errors_with_the_iam_action_and_aws_calls_by_operation() {
        let m = Metrics::new();
        m.error(
            "aws",
            &berth_core::Error::AccessDenied {
                action: "elasticloadbalancing:RegisterTargets".into(),
                message: "no".into(),
            },
        );
        m.observe_aws_calls(&[("DescribeTargetHealth".to_owned(), 3)].into());
        m.observe_aws_calls(&[("DescribeTargetHealth".to_owned(), 5)].into());
        let text = m.render();
        assert!(
            text.contains(
                "berth_daemon_errors_total{kind=\"access_denied\",action=\"elasticloadbalancing:RegisterTargets\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("berth_daemon_aws_calls_total{operation=\"DescribeTargetHealth\"} 5"),
            "{text}"
        );
    }
}
