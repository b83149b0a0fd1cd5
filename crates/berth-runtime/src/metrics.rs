//! One Prometheus registry per process, with the metrics every mode shares.
//!
//! Names follow the conventions of the AWS Load Balancer Controller and
//! controller-runtime; every metric is documented in `docs/metrics.md`.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Metric, Registry};

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The process's registry, shared by every clone. Modes register their own metrics in
/// it (under their own prefix: [`Metrics::with_registry`] and
/// `Registry::sub_registry_with_prefix`); the admin server renders it.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<RwLock<Registry>>,
    reconcile: ReconcileMetrics,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry holding `berth_build_info{version,revision,mode}` and the reconcile
    /// metrics.
    pub fn new(mode: &str) -> Self {
        let mut registry = Registry::default();
        registry.register(
            "berth_build",
            "The version, git revision and mode of this process",
            Info::new(vec![
                ("version".to_owned(), crate::VERSION.to_owned()),
                ("revision".to_owned(), crate::REVISION.to_owned()),
                ("mode".to_owned(), mode.to_owned()),
            ]),
        );
        let reconcile = ReconcileMetrics::default();
        reconcile.register(&mut registry);
        Metrics {
            registry: Arc::new(RwLock::new(registry)),
            reconcile,
        }
    }

    /// Registers `metric` as `name` (counters get their `_total` suffix when rendered).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.with_registry(|r| r.register(name, help, metric));
    }

    /// Registers a collector, read at every scrape.
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        self.with_registry(|r| r.register_collector(collector));
    }

    /// Gives `f` the registry, e.g. to register under a prefix:
    /// `metrics.with_registry(|r| my.register(r.sub_registry_with_prefix("berth_sidecar")))`.
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        let mut registry = self
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut registry)
    }

    /// The reconcile metrics the controller loop records.
    pub fn reconcile(&self) -> &ReconcileMetrics {
        &self.reconcile
    }

    /// Exports `counter` as `berth_aws_api_calls_total{service,operation}` and
    /// `berth_aws_api_errors_total{service,operation,error_code}`, read at every scrape.
    #[cfg(feature = "aws")]
    pub fn register_aws_calls(&self, counter: berth_aws::CallCounter) {
        self.register_collector(Box::new(aws::AwsCalls(counter)));
    }

    /// Also exports `counter` under a mode's older name, `<prefix>_aws_calls_total{operation}`
    /// (every service together), read at every scrape: kept for dashboards built on it,
    /// deprecated in favour of `berth_aws_api_calls_total`.
    #[cfg(feature = "aws")]
    pub fn register_aws_calls_by_operation(&self, prefix: &str, counter: berth_aws::CallCounter) {
        self.with_registry(|r| {
            r.sub_registry_with_prefix(prefix)
                .register_collector(Box::new(aws::AwsCallsByOperation(counter)))
        });
    }

    /// The OpenMetrics text exposition ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let registry = self.registry.read().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        // Writing to a String cannot fail; a collector's error truncates the output.
        if let Err(e) = encode(&mut out, &registry) {
            tracing::warn!(error = %e, "encoding the metrics failed");
        }
        out
    }
}

type ControllerLabel = [(&'static str, String); 1];
type ResultLabels = [(&'static str, String); 2];

/// How a reconcile pass ended, the `result` label of `berth_reconcile_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassResult {
    /// Converged.
    Success,
    /// Converged, and asked to run again after a delay (`requeue_after`).
    RequeueAfter,
    /// Did not converge (a partial failure, something held): retried with backoff.
    Requeue,
    /// Failed: retried with backoff.
    Error,
}

impl PassResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            PassResult::Success => "success",
            PassResult::RequeueAfter => "requeue_after",
            PassResult::Requeue => "requeue",
            PassResult::Error => "error",
        }
    }
}

/// `berth_reconcile_total{controller,result}`, `berth_reconcile_duration_seconds{controller}`,
/// `berth_last_successful_reconcile_timestamp_seconds{controller}` and
/// `berth_leader{controller}`.
#[derive(Clone)]
pub struct ReconcileMetrics {
    total: Family<ResultLabels, Counter>,
    leader: Family<ControllerLabel, Gauge>,
    duration: Family<ControllerLabel, Histogram>,
    last_success: Family<ControllerLabel, Gauge<f64, AtomicU64>>,
}

impl fmt::Debug for ReconcileMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReconcileMetrics")
    }
}

fn duration_histogram() -> Histogram {
    // 5 ms .. ~82 s
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

impl Default for ReconcileMetrics {
    fn default() -> Self {
        ReconcileMetrics {
            total: Family::default(),
            leader: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            last_success: Family::default(),
        }
    }
}

impl ReconcileMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "berth_reconcile",
            "Reconcile passes, per controller and result (success, requeue_after, requeue, error)",
            self.total.clone(),
        );
        registry.register(
            "berth_reconcile_duration_seconds",
            "Duration of one reconcile pass, per controller",
            self.duration.clone(),
        );
        registry.register(
            "berth_last_successful_reconcile_timestamp_seconds",
            "Unix time at which the last converged pass of the controller ended",
            self.last_success.clone(),
        );
        registry.register(
            "berth_leader",
            "1 while this process may run the controller's passes (it leads, or needs no election)",
            self.leader.clone(),
        );
    }

    /// Records whether `controller` leads.
    pub fn set_leader(&self, controller: &str, leading: bool) {
        self.leader
            .get_or_create(&[("controller", controller.to_owned())])
            .set(i64::from(leading));
    }

    /// Records one pass of `controller` that took `took`.
    pub fn observe(&self, controller: &str, result: PassResult, took: Duration) {
        self.total
            .get_or_create(&[
                ("controller", controller.to_owned()),
                ("result", result.as_str().to_owned()),
            ])
            .inc();
        let label = [("controller", controller.to_owned())];
        self.duration
            .get_or_create(&label)
            .observe(took.as_secs_f64());
        if matches!(result, PassResult::Success | PassResult::RequeueAfter) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            self.last_success
                .get_or_create(&label)
                .set(now.as_secs_f64());
        }
    }
}

#[cfg(feature = "aws")]
mod aws {
    use std::fmt;

    use berth_aws::CallCounter;
    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
    use prometheus_client::metrics::counter::ConstCounter;

    /// The call counter, read at scrape time (it is the one place that sees SDK retries).
    #[derive(Debug)]
    pub(super) struct AwsCalls(pub(super) CallCounter);

    impl Collector for AwsCalls {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
            let calls = self.0.calls().into_iter().map(|(call, count)| {
                (
                    [("service", call.service), ("operation", call.operation)],
                    count,
                )
            });
            counters(
                &mut encoder,
                "berth_aws_api_calls",
                "AWS API requests sent (every attempt, SDK retries included), per service and operation",
                calls,
            )?;
            let errors = self.0.errors().into_iter().map(|(error, count)| {
                let labels = [
                    ("service", error.call.service),
                    ("operation", error.call.operation),
                    ("error_code", error.error_code),
                ];
                (labels, count)
            });
            counters(
                &mut encoder,
                "berth_aws_api_errors",
                "AWS API attempts that failed, per service, operation and error code",
                errors,
            )
        }
    }

    /// The call counter per operation, every service together (a mode's older name).
    #[derive(Debug)]
    pub(super) struct AwsCallsByOperation(pub(super) CallCounter);

    impl Collector for AwsCallsByOperation {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
            let calls = self
                .0
                .snapshot()
                .into_iter()
                .map(|(operation, count)| ([("operation", operation)], count));
            counters(
                &mut encoder,
                "aws_calls",
                "AWS API requests sent (retries included), per operation; deprecated: \
                 berth_aws_api_calls_total",
                calls,
            )
        }
    }

    /// One counter family read from `counts`.
    fn counters<const N: usize>(
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        counts: impl Iterator<Item = ([(&'static str, String); N], u64)>,
    ) -> Result<(), fmt::Error> {
        let probe = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(name, help, None, probe.metric_type())?;
        for (labels, count) in counts {
            ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_and_reconcile_metrics_render() {
        let metrics = Metrics::new("daemon");
        metrics
            .reconcile()
            .observe("nodes", PassResult::Success, Duration::from_millis(20));
        metrics
            .reconcile()
            .observe("nodes", PassResult::Error, Duration::from_millis(20));
        let mine = Counter::<u64>::default();
        metrics.with_registry(|r| {
            r.sub_registry_with_prefix("berth_daemon").register(
                "registrations",
                "Targets registered",
                mine.clone(),
            )
        });
        mine.inc();
        let text = metrics.render();
        for line in [
            format!(
                "berth_build_info{{version=\"{}\",revision=\"{}\",mode=\"daemon\"}} 1",
                crate::VERSION,
                crate::REVISION
            ),
            "berth_reconcile_total{controller=\"nodes\",result=\"success\"} 1".to_owned(),
            "berth_reconcile_total{controller=\"nodes\",result=\"error\"} 1".to_owned(),
            "berth_reconcile_duration_seconds_count{controller=\"nodes\"} 2".to_owned(),
            "berth_daemon_registrations_total 1".to_owned(),
        ] {
            assert!(text.contains(&line), "missing {line:?} in\n{text}");
        }
        assert!(
            text.contains(
                "berth_last_successful_reconcile_timestamp_seconds{controller=\"nodes\"} 1"
            ),
            "{text}"
        );
    }

    #[cfg(feature = "aws")]
    #[test]
    fn the_aws_counters_are_read_at_scrape_time() {
        let metrics = Metrics::new("sidecar");
        let counter = berth_aws::CallCounter::new();
        metrics.register_aws_calls(counter.clone());
        let before = metrics.render();
        assert!(!before.contains("RegisterTargets"), "{before}");
        counter.record_call("Elastic Load Balancing v2", "RegisterTargets");
        counter.record_call("Elastic Load Balancing v2", "RegisterTargets");
        counter.record_error("Elastic Load Balancing v2", "RegisterTargets", "Throttling");
        metrics.register_aws_calls_by_operation("berth_sidecar", counter.clone());
        counter.record_call("Route 53", "GetChange");
        let text = metrics.render();
        for line in [
            "berth_sidecar_aws_calls_total{operation=\"RegisterTargets\"} 2",
            "berth_sidecar_aws_calls_total{operation=\"GetChange\"} 1",
            "berth_aws_api_calls_total{service=\"Elastic Load Balancing v2\",operation=\"RegisterTargets\"} 2",
            "berth_aws_api_errors_total{service=\"Elastic Load Balancing v2\",operation=\"RegisterTargets\",error_code=\"Throttling\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
