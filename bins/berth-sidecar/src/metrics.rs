//! The sidecar's own metrics, registered under `berth_sidecar_` in the process's one
//! registry (berth-runtime's, which also exports the AWS call counter, as
//! `berth_aws_api_calls_total` and under the sidecar's older name
//! `berth_sidecar_aws_calls_total`). Documented in `docs/metrics.md`.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use berth_aws::CallCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// The prefix of the sidecar's own metrics.
const PREFIX: &str = "berth_sidecar";

type GroupLabel = [(&'static str, String); 1];
type StageLabel = [(&'static str, &'static str); 1];

/// The sidecar's metrics.
pub(crate) struct Metrics {
    /// The whole registry, rendered by the tests.
    #[cfg(test)]
    registry: berth_runtime::Metrics,
    registrations: Family<GroupLabel, Counter>,
    deregistrations: Family<GroupLabel, Counter>,
    already_absent: Family<GroupLabel, Counter>,
    failures: Family<StageLabel, Counter>,
    ready: Gauge,
    time_to_healthy: Gauge<f64, AtomicU64>,
    drain: Gauge<f64, AtomicU64>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The sidecar's metrics in a registry of their own (tests).
    #[cfg(test)]
    pub(crate) fn new(calls: CallCounter) -> Self {
        Metrics::register(&berth_runtime::Metrics::new("sidecar"), calls)
    }

    /// Registers the sidecar's metrics in the process's `registry`, and the AWS calls
    /// of `calls` (read at each scrape) under both names.
    pub(crate) fn register(registry: &berth_runtime::Metrics, calls: CallCounter) -> Self {
        let metrics = Metrics {
            registrations: Family::default(),
            deregistrations: Family::default(),
            already_absent: Family::default(),
            failures: Family::default(),
            ready: Gauge::default(),
            time_to_healthy: Gauge::default(),
            drain: Gauge::default(),
            #[cfg(test)]
            registry: registry.clone(),
        };
        registry.with_registry(|root| metrics.register_in(root.sub_registry_with_prefix(PREFIX)));
        registry.register_aws_calls(calls.clone());
        registry.register_aws_calls_by_operation(PREFIX, calls);
        metrics
    }

    fn register_in(&self, registry: &mut prometheus_client::registry::Registry) {
        let metrics = self;
        registry.register(
            "registrations",
            "Targets registered, per target group",
            metrics.registrations.clone(),
        );
        registry.register(
            "deregistrations",
            "Targets deregistered, per target group",
            metrics.deregistrations.clone(),
        );
        registry.register(
            "deregistrations_already_absent",
            "Deregistrations that found the target already absent from its group (nothing \
             removed), per target group",
            metrics.already_absent.clone(),
        );
        registry.register(
            "failures",
            "Failures, per stage (resolve, pre_register_hook, register, wait_healthy, \
             deregister, drain, post_deregister_hook)",
            metrics.failures.clone(),
        );
        registry.register(
            "ready",
            "1 while /readyz answers 200",
            metrics.ready.clone(),
        );
        registry.register(
            "time_to_healthy_seconds",
            "From the start of registration until healthy in every group",
            metrics.time_to_healthy.clone(),
        );
        registry.register(
            "drain_seconds",
            "From the signal until the target left every group (or the drain bound)",
            metrics.drain.clone(),
        );
    }

    /// Counts a registration in `group`.
    pub(crate) fn registered(&self, group: &str) {
        self.registrations
            .get_or_create(&[("target_group", group.to_owned())])
            .inc();
    }

    /// Counts a deregistration from `group`.
    pub(crate) fn deregistered(&self, group: &str) {
        self.deregistrations
            .get_or_create(&[("target_group", group.to_owned())])
            .inc();
    }

    /// Counts a deregistration from `group` that found the target already absent.
    pub(crate) fn already_absent(&self, group: &str) {
        self.already_absent
            .get_or_create(&[("target_group", group.to_owned())])
            .inc();
    }

    /// Counts a failure at `stage`.
    pub(crate) fn failed(&self, stage: &'static str) {
        self.failures.get_or_create(&[("stage", stage)]).inc();
    }

    /// Sets readiness.
    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// Records the time to healthy.
    pub(crate) fn healthy_after(&self, took: Duration) {
        self.time_to_healthy.set(took.as_secs_f64());
    }

    /// Records the drain time.
    pub(crate) fn drained_after(&self, took: Duration) {
        self.drain.set(took.as_secs_f64());
    }

    /// The text exposition of the whole registry.
    #[cfg(test)]
    pub(crate) fn render(&self) -> String {
        self.registry.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric() {
        let calls = CallCounter::new();
        let m = Metrics::new(calls.clone());
        for _ in 0..2 {
            calls.record_call("Elastic Load Balancing v2", "RegisterTargets");
        }
        for _ in 0..5 {
            calls.record_call("Elastic Load Balancing v2", "DescribeTargetHealth");
        }
        m.registered("web");
        m.registered("web");
        m.deregistered("web");
        m.already_absent("api");
        m.failed("register");
        m.set_ready(true);
        m.healthy_after(Duration::from_millis(1500));
        m.drained_after(Duration::from_secs(3));
        let text = m.render();
        for line in [
            "berth_sidecar_registrations_total{target_group=\"web\"} 2",
            "berth_sidecar_deregistrations_total{target_group=\"web\"} 1",
            "berth_sidecar_deregistrations_already_absent_total{target_group=\"api\"} 1",
            "berth_sidecar_failures_total{stage=\"register\"} 1",
            "berth_sidecar_ready 1",
            "berth_sidecar_time_to_healthy_seconds 1.5",
            "berth_sidecar_drain_seconds 3.0",
            "berth_sidecar_aws_calls_total{operation=\"RegisterTargets\"} 2",
            "berth_sidecar_aws_calls_total{operation=\"DescribeTargetHealth\"} 5",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
