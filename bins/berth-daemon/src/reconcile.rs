//! One reconcile pass: resolve groups → read ownership → observe each group once →
//! node rules → plan → apply → report (metrics, Events, drain waits).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use berth_core::domain::{InstanceId, Node, Target, TargetGroupArn};
use berth_core::engine::{wait_for_targets, Engine, MembershipProviders, Report, Status, WaitFor};
use berth_core::plan::{
    desire_nodes, owned_by_instances, plan_membership, MembershipChange as Change, NodeDecision,
    NodeRules, NodeVerdict, Plan,
};
use berth_core::provider::{PollPolicy, TargetGroups, TargetOwnership};

use crate::events::{NodeEvent, NodeEvents, Severity};
use crate::metrics::Metrics;
use crate::resolve::Resolver;

/// Which targets this daemon answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every node (cluster mode).
    Cluster,
    /// One node (node mode): only its instance's targets are planned, so a daemon never
    /// deregisters a neighbour's targets. `instance` (from IMDS) keeps that scope
    /// when the Node object is gone.
    Node {
        /// The node's name.
        name: String,
        /// Its instance, if known independently of the Node object.
        instance: Option<InstanceId>,
    },
}

/// The outcome of one pass.
#[derive(Debug)]
pub struct Pass {
    /// What was planned.
    pub plan: Plan<Change>,
    /// What the engine did with it.
    pub report: Report<Change>,
    /// Per node: serve, leave, hold or skip, and why.
    pub verdicts: Vec<NodeVerdict>,
    /// Groups that could not be observed (left alone this pass).
    pub unobserved: Vec<(TargetGroupArn, berth_core::Error)>,
}

/// Everything a pass needs.
pub struct Reconciler {
    resolver: Resolver,
    targets: Arc<dyn TargetGroups>,
    ownership: Arc<dyn TargetOwnership>,
    engine: Engine,
    rules: NodeRules,
    scope: Scope,
    metrics: Arc<Metrics>,
    events: Arc<dyn NodeEvents>,
    /// How often to check that a deregistered target has drained.
    drain_poll: PollPolicy,
    draining: Arc<Mutex<HashSet<(TargetGroupArn, Target)>>>,
    /// The last hold/skip note published per node, so a resync does not repeat it.
    notes: Mutex<HashMap<String, String>>,
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
        Reconciler {
            resolver,
            targets,
            ownership,
            engine,
            rules,
            scope,
            metrics,
            events,
            drain_poll: PollPolicy {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(30),
                deadline: Duration::from_secs(120),
            },
            draining: Arc::default(),
            notes: Mutex::default(),
            publishing: Mutex::default(),
        }
    }

    /// Overrides how drains are polled (tests shorten it).
    pub fn with_drain_poll(mut self, poll: PollPolicy) -> Self {
        self.drain_poll = poll;
        self
    }

    /// Targets deregistered and not yet seen gone from their group.
    pub fn draining(&self) -> usize {
        lock(&self.draining).len()
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
        let result = self.pass(nodes).await;
        self.metrics
            .reconcile_duration
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            self.metrics.error("reconcile", e);
        }
        result
    }

    async fn pass(&self, nodes: &[Node]) -> Result<Pass, berth_core::Error> {
        let resolution = self.resolver.resolve(nodes).await;
        for (source, problem) in &resolution.problems {
            self.metrics.error(source.label(), problem);
        }
        let ownership = self.ownership.as_ref();
        let mut owned = self
            .engine
            .caller()
            .call("ReadOwnership", || ownership.owned())
            .await?;
        if let Scope::Node { instance, .. } = &self.scope {
            let mut mine: BTreeSet<InstanceId> =
                nodes.iter().filter_map(|n| n.instance_id.clone()).collect();
            mine.extend(instance.clone());
            owned = owned_by_instances(&owned, &mine);
        }
        let groups: BTreeSet<&TargetGroupArn> =
            resolution.resolved.keys().chain(owned.keys()).collect();
        let (mut observed, mut unobserved) = self
            .engine
            .observe_membership(self.targets.as_ref(), groups)
            .await;
        // A group only known from ownership that AWS says is gone took its targets
        // with it: observe it empty, so its ownership is forgotten instead of the
        // group being left unobserved on every pass.
        unobserved.retain(|(group, e)| {
            let gone = matches!(e, berth_core::Error::NotFound { .. })
                && !resolution.resolved.contains_key(group);
            if gone {
                tracing::info!(group = %group, "owned target group no longer exists; forgetting its targets");
                observed.observe(group, Vec::new());
            }
            !gone
        });
        for (group, e) in &unobserved {
            tracing::warn!(group = %group, error = %e, "target group not observed; left alone this pass");
            self.metrics.error("aws", e);
        }
        let desire = desire_nodes(
            nodes,
            &resolution.groups,
            &self.rules,
            SystemTime::now(),
            &observed,
            &owned,
        );
        let plan = plan_membership(&desire.membership, &observed, &owned);
        let providers = MembershipProviders::new(self.targets.clone(), self.ownership.clone());
        let report = self.engine.apply(&providers, &plan).await;
        let skipped = desire
            .verdicts
            .iter()
            .filter(|v| matches!(v.decision, NodeDecision::Skip(_)))
            .count();
        self.metrics.skipped_nodes.set(skipped as i64);
        if !report.dry_run {
            self.report(&desire.verdicts, &report, &resolution.resolved);
        }
        Ok(Pass {
            plan,
            report,
            verdicts: desire.verdicts,
            unobserved,
        })
    }

    /// Metrics, Events and drain waits for what was done.
    fn report(
        &self,
        verdicts: &[NodeVerdict],
        report: &Report<Change>,
        resolved: &BTreeMap<TargetGroupArn, berth_core::domain::TargetGroup>,
    ) {
        let by_instance: HashMap<&str, &NodeVerdict> = verdicts
            .iter()
            .filter_map(|v| v.instance_id.as_ref().map(|i| (i.as_str(), v)))
            .collect();
        let node_of = |id: &str| by_instance.get(id).map(|v| v.node.clone());
        let mut events = Vec::new();
        let event =
            |node: String, severity, reason: &str, action: &str, message: String| NodeEvent {
                node,
                severity,
                reason: reason.into(),
                action: action.into(),
                message,
            };
        for outcome in &report.outcomes {
            match (&outcome.change, &outcome.status) {
                (Change::Register { group, targets }, Status::Done) => {
                    self.metrics.registrations.inc_by(targets.len() as u64);
                    for r in targets {
                        tracing::info!(target = %r.target, group = %group.name(), "registered");
                        if let Some(node) = node_of(&r.target.id) {
                            let text =
                                format!("registered {} in target group {}", r.target, group.name());
                            events.push(event(
                                node,
                                Severity::Normal,
                                "Registered",
                                "RegisterTargets",
                                text,
                            ));
                        }
                    }
                }
                (Change::Deregister { group, targets }, Status::Done) => {
                    self.metrics.deregistrations.inc_by(targets.len() as u64);
                    let delay = self.delay_of(group, resolved);
                    for t in targets {
                        let why = by_instance
                            .get(&*t.id)
                            .map(|v| v.decision.to_string())
                            .unwrap_or_else(|| "node deleted".into());
                        tracing::info!(target = %t, group = %group.name(), %why, "deregistered; draining");
                        if let Some(node) = node_of(&t.id) {
                            let text = format!(
                                "deregistering {t} from target group {} ({why}); draining for up to {}s",
                                group.name(),
                                delay.as_secs()
                            );
                            events.push(event(
                                node,
                                Severity::Normal,
                                "Deregistering",
                                "DeregisterTargets",
                                text,
                            ));
                        }
                    }
                    self.wait_drained(group.clone(), targets.clone(), delay, &by_instance);
                }
                (change, Status::Failed(e)) => {
                    self.metrics.error("aws", e);
                    let (reason, action, ids): (&str, &str, Vec<&str>) = match change {
                        Change::Register { targets, .. } => (
                            "RegistrationFailed",
                            "RegisterTargets",
                            targets.iter().map(|r| &*r.target.id).collect(),
                        ),
                        Change::Deregister { targets, .. } => (
                            "DeregistrationFailed",
                            "DeregisterTargets",
                            targets.iter().map(|t| &*t.id).collect(),
                        ),
                        _ => ("OwnershipUpdateFailed", "UpdateOwnership", Vec::new()),
                    };
                    for node in ids.into_iter().filter_map(node_of) {
                        events.push(event(
                            node,
                            Severity::Warning,
                            reason,
                            action,
                            format!("{change}: {e}"),
                        ));
                    }
                }
                _ => {}
            }
        }
        // Holds and skips are reported once per change of reason, not every resync.
        let mut notes = lock(&self.notes);
        for v in verdicts {
            let note = match &v.decision {
                NodeDecision::Skip(r) => Some(("Skipped", Severity::Normal, r.clone())),
                NodeDecision::Hold(r) => Some(("Held", Severity::Warning, r.clone())),
                NodeDecision::Serve(_) if !v.warnings.is_empty() => {
                    Some(("GroupSkipped", Severity::Warning, v.warnings.join("; ")))
                }
                _ => None,
            };
            match note {
                Some((reason, severity, text)) => {
                    if notes.get(&v.node) != Some(&text) {
                        notes.insert(v.node.clone(), text.clone());
                        events.push(event(v.node.clone(), severity, reason, "Reconcile", text));
                    }
                }
                None => {
                    notes.remove(&v.node);
                }
            }
        }
        drop(notes);
        if !events.is_empty() {
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
    }

    fn delay_of(
        &self,
        group: &TargetGroupArn,
        resolved: &BTreeMap<TargetGroupArn, berth_core::domain::TargetGroup>,
    ) -> Duration {
        // A group only known from ownership was not resolved this pass: assume ELBv2's
        // default delay.
        resolved
            .get(group)
            .map(|g| g.deregistration_delay)
            .unwrap_or(Duration::from_secs(300))
    }

    /// Waits, off the reconcile path, until the targets have left the group (the
    /// deregistration delay), then reports them deregistered.
    fn wait_drained(
        &self,
        group: TargetGroupArn,
        targets: Vec<Target>,
        delay: Duration,
        by_instance: &HashMap<&str, &NodeVerdict>,
    ) {
        let mut fresh = Vec::new();
        {
            let mut draining = lock(&self.draining);
            for t in targets {
                if draining.insert((group.clone(), t.clone())) {
                    fresh.push(t);
                }
            }
            self.metrics.draining_targets.set(draining.len() as i64);
        }
        if fresh.is_empty() {
            return;
        }
        let nodes: Vec<Option<String>> = fresh
            .iter()
            .map(|t| by_instance.get(&*t.id).map(|v| v.node.clone()))
            .collect();
        let provider = self.targets.clone();
        let events = self.events.clone();
        let draining = self.draining.clone();
        let metrics = self.metrics.clone();
        let policy = PollPolicy {
            deadline: delay + self.drain_poll.deadline,
            ..self.drain_poll
        };
        tokio::spawn(async move {
            let result =
                wait_for_targets(provider.as_ref(), &group, &fresh, WaitFor::Gone, policy).await;
            for (t, node) in fresh.iter().zip(nodes) {
                {
                    let mut draining = lock(&draining);
                    draining.remove(&(group.clone(), t.clone()));
                    metrics.draining_targets.set(draining.len() as i64);
                }
                if result.is_ok() {
                    metrics.drained.inc();
                }
                let (severity, reason, text) = match &result {
                    Ok(took) => (
                        Severity::Normal,
                        "Deregistered",
                        format!(
                            "{t} left target group {} after {}s",
                            group.name(),
                            took.as_secs()
                        ),
                    ),
                    Err(e) => (
                        Severity::Warning,
                        "DrainNotConfirmed",
                        format!(
                            "{t} deregistered from {} but not seen gone: {e}",
                            group.name()
                        ),
                    ),
                };
                tracing::info!(target = %t, group = %group.name(), "{text}");
                if let Some(node) = node {
                    events
                        .publish(NodeEvent {
                            node,
                            severity,
                            reason: reason.into(),
                            action: "DeregisterTargets".into(),
                            message: text,
                        })
                        .await;
                }
            }
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
