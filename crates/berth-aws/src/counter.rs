//! A per-operation call counter, attached to every client as an SDK interceptor.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Counts the requests sent to AWS, per operation (`RegisterTargets`, ...).
///
/// Every attempt counts — a call the SDK retried twice counts three times — because
/// that is what AWS rate-limits and what the benchmarks compare. Clones share the
/// same counts, so one counter can be attached to several clients and read by the
/// engine's report, the metrics and the tests.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl CallCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        CallCounter::default()
    }

    /// Requests sent for `operation` so far.
    pub fn get(&self, operation: &str) -> u64 {
        self.lock().get(operation).copied().unwrap_or(0)
    }

    /// Requests sent for every operation so far.
    pub fn total(&self) -> u64 {
        self.lock().values().sum()
    }

    /// The counts per operation.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.lock().clone()
    }

    /// Sets every count back to zero.
    pub fn reset(&self) {
        self.lock().clear();
    }

    /// Counts one request for `operation`.
    pub fn record(&self, operation: &str) {
        *self.lock().entry(operation.to_owned()).or_insert(0) += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        // A panic while holding the lock cannot leave a map of counters inconsistent.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "berth::CallCounter"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Every generated operation stores its name in the config bag.
        let operation = cfg.load::<Metadata>().map_or("unknown", Metadata::name);
        self.record(operation);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_counts() {
        let counter = CallCounter::new();
        let clone = counter.clone();
        clone.record("RegisterTargets");
        clone.record("RegisterTargets");
        counter.record("DescribeTargetHealth");
        assert_eq!(counter.get("RegisterTargets"), 2);
        assert_eq!(counter.get("DeregisterTargets"), 0);
        assert_eq!(counter.total(), 3);
        assert_eq!(
            counter.snapshot().into_iter().collect::<Vec<_>>(),
            vec![
                ("DescribeTargetHealth".to_owned(), 1),
                ("RegisterTargets".to_owned(), 2)
            ]
        );
        counter.reset();
        assert_eq!(clone.total(), 0);
    }
}
