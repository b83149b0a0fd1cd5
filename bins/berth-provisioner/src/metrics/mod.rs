//! The provisioner's metrics, in berth-runtime's registry under `berth_provisioner_`
//! (documented in `docs/metrics.md`): API requests by route and status, runs started,
//! and — from a watch of the runs' Jobs — runs finished by result, runs active and
//! run durations.

mod http;
mod runs;

use std::time::Duration;

use berth_core::plan::runs::Operation;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub(crate) use http::record_request;
pub(crate) use runs::watch_runs;

type OperationLabel = [(&'static str, String); 1];
type RunLabels = [(&'static str, String); 2];
type RouteLabels = [(&'static str, String); 2];
type RequestLabels = [(&'static str, String); 3];

/// The provisioner's metric families; clones share them.
#[derive(Clone)]
pub(crate) struct ProvisionerMetrics {
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabels, Histogram>,
    runs_started: Family<OperationLabel, Counter>,
    runs_finished: Family<RunLabels, Counter>,
    runs_active: Family<OperationLabel, Gauge>,
    run_duration: Family<RunLabels, Histogram>,
}

impl Default for ProvisionerMetrics {
    fn default() -> Self {
        ProvisionerMetrics {
            requests: Family::default(),
            // 1 ms .. ~33 s
            request_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            runs_started: Family::default(),
            runs_finished: Family::default(),
            runs_active: Family::default(),
            // 10 s .. ~5.7 h (a deadline of 3 h is the default)
            run_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(10.0, 2.0, 12))
            }),
        }
    }
}

impl ProvisionerMetrics {
    /// New families, registered in the process's registry.
    pub(crate) fn registered(metrics: &berth_runtime::Metrics) -> Self {
        let mine = ProvisionerMetrics::default();
        metrics.with_registry(|r| mine.register(r.sub_registry_with_prefix("berth_provisioner")));
        mine
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_requests",
            "API requests answered, per method, route (the path template) and status code",
            self.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an API request (to its first byte), per method and route",
            self.request_duration.clone(),
        );
        registry.register(
            "runs_started",
            "Runs this process started (a Job created), per operation",
            self.runs_started.clone(),
        );
        registry.register(
            "runs",
            "Runs seen ending by this process, per operation and result (the run's final state)",
            self.runs_finished.clone(),
        );
        registry.register(
            "runs_active",
            "Runs whose Job has no terminal condition yet, per operation",
            self.runs_active.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "From a run's Job starting to its terminal condition, per operation and result",
            self.run_duration.clone(),
        );
    }

    /// A run was started.
    pub(crate) fn run_started(&self, operation: Operation) {
        self.runs_started
            .get_or_create(&[("operation", operation.as_str().to_owned())])
            .inc();
    }

    fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&[
                ("method", method.to_owned()),
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ])
            .inc();
        self.request_duration
            .get_or_create(&[("method", method.to_owned()), ("route", route.to_owned())])
            .observe(took.as_secs_f64());
    }

    fn run_finished(&self, operation: Operation, result: &str, took: Option<Duration>) {
        let labels = [
            ("operation", operation.as_str().to_owned()),
            ("result", result.to_owned()),
        ];
        self.runs_finished.get_or_create(&labels).inc();
        if let Some(took) = took {
            self.run_duration
                .get_or_create(&labels)
                .observe(took.as_secs_f64());
        }
    }

    fn set_active(&self, operation: Operation, active: i64) {
        self.runs_active
            .get_or_create(&[("operation", operation.as_str().to_owned())])
            .set(active);
    }
}
