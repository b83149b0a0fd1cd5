//! The daemon's pass: berth-core's [`NodeTargets`] workflow, its notices turned into
//! Kubernetes Events and metrics, its drain waits run off the pass.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use berth_core::domain::Node;
use berth_core::engine::Engine;
use berth_core::plan::NodeRules;
use berth_core::provider::{PollPolicy, TargetGroups, TargetOwnership};
use berth_core::workflow::node_targets::DrainWait;
use berth_core::workflow::{NodeTargets, NodeTargetsProviders, NodeTargetsSettings};

use crate::events::{translate, NodeEvent, NodeEvents};
use crate::metrics::Metrics;
use crate::resolve::Resolver;

/// Which targets this daemon answers for, and what a pass returns (berth-core's).
pub use berth_core::workflow::node_targets::{Pass, Scope};

/// The workflow, its Event sink and its metrics.
pub struct Reconciler {
    workflow: Arc<NodeTargets>,
    metrics: Arc<Metrics>,
    events: Arc<dyn NodeEvents>,
    /// Event publishing in flight, so a stopping daemon can let it finish.
    publishing: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Reconciler {
    /// A reconciler applying through `engine`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        resolver: Resolver,
        targets: Arc<dyn TargetGroups>,
        ownership: Arc<dyn TargetOwnership>,
        engine: Engine,
        rules: NodeRules,
        scope: Scope,
        metrics: Arc<Metrics>,
        events: Arc<dyn NodeEvents>,
    ) -> Self {
        let providers = NodeTargetsProviders {
            target_groups: targets,
            ownership,
            node_configurations: resolver.node_configurations,
        };
        let settings = NodeTargetsSettings {
            node_rules: rules,
            label_rules: resolver.rules,
            scope,
            ..NodeTargetsSettings::default()
        };
        Reconciler {
            workflow: Arc::new(NodeTargets::new(engine, providers, settings)),
            metrics,
            events,
            publishing: Mutex::default(),
        }
    }

    /// Overrides how drains are polled (tests shorten it). Call before the first pass:
    /// once a drain wait shares the workflow, it is too late and nothing changes.
    pub fn with_drain_poll(mut self, poll: PollPolicy) -> Self {
        self.workflow = match Arc::try_unwrap(self.workflow) {
            Ok(workflow) => Arc::new(workflow.with_drain_poll(poll)),
            Err(shared) => shared,
        };
        self
    }

    /// Targets deregistered and not yet seen gone from their group.
    pub fn draining(&self) -> usize {
        self.workflow.draining()
    }

    /// The node labels a pass reads (the watch cache keeps no other).
    pub fn label_keys(&self) -> BTreeSet<String> {
        self.workflow.settings().label_keys()
    }

    /// A spot interruption is announced for `node`: from the next pass on it leaves its
    /// groups ahead of the interruption.
    pub fn notice_spot_interruption(&self, node: &str) {
        self.workflow.notice_spot_interruption(node);
    }

    /// Waits, at most `limit`, until the Events of past passes are published: a
    /// stopping daemon (`--once`, SIGTERM) must not lose them. Drain waits are not
    /// waited for (they last up to the deregistration delay).
    pub async fn flush_events(&self, limit: Duration) {
        let tasks = std::mem::take(&mut *lock(&self.publishing));
        if tokio::time::timeout(limit, futures::future::join_all(tasks))
            .await
            .is_err()
        {
            tracing::warn!(
                ?limit,
                "some Kubernetes Events were not published before stopping"
            );
        }
    }

    /// Runs one pass over `nodes` (the nodes in scope, as the watcher has them).
    pub async fn reconcile(&self, nodes: &[Node]) -> Result<Pass, berth_core::Error> {
        let started = Instant::now();
        let result = self.workflow.pass(nodes, SystemTime::now()).await;
        self.metrics
            .reconcile_duration
            .observe(started.elapsed().as_secs_f64());
        let mut pass = match result {
            Ok(pass) => pass,
            Err(e) => {
                self.metrics.error("reconcile", &e);
                return Err(e);
            }
        };
        self.metrics.skipped_nodes.set(pass.skipped_nodes() as i64);
        let events: Vec<NodeEvent> = pass
            .notices
            .iter()
            .flat_map(|n| translate(n, &self.metrics))
            .collect();
        self.publish(events);
        for drain in std::mem::take(&mut pass.drains) {
            self.wait_drained(drain);
        }
        self.metrics
            .draining_targets
            .set(self.workflow.draining() as i64);
        Ok(pass)
    }

    fn publish(&self, events: Vec<NodeEvent>) {
        if events.is_empty() {
            return;
        }
        let sink = self.events.clone();
        let task = tokio::spawn(async move {
            for e in events {
                sink.publish(e).await;
            }
        });
        let mut publishing = lock(&self.publishing);
        publishing.retain(|t| !t.is_finished());
        publishing.push(task);
    }

    /// Runs a drain wait off the pass, then reports how it ended.
    fn wait_drained(&self, drain: DrainWait) {
        let workflow = self.workflow.clone();
        let metrics = self.metrics.clone();
        let sink = self.events.clone();
        tokio::spawn(async move {
            let notices = drain.wait().await;
            metrics.draining_targets.set(workflow.draining() as i64);
            for notice in &notices {
                for event in translate(notice, &metrics) {
                    sink.publish(event).await;
                }
            }
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
