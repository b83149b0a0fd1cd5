//! The daemon's reconcile pass as one workflow: which instances belong in which target
//! groups, from the nodes, their Cast.ai node configurations and the label rules.
//!
//! One [`NodeTargets::pass`]: resolve each node's groups (configurations and group
//! references looked up once each) → read ownership → observe each group once → the
//! node rules ([`crate::plan::desire_nodes`]) → plan ([`crate::plan::plan_membership`])
//! → apply through the engine. It returns the plan, the report, typed [`Notice`]s,
//! the deregistrations to wait out ([`DrainWait`], run off the pass) and when to run
//! again ([`Pass::requeue_after`]). Every provider call goes through the engine's
//! [`crate::engine::Caller`].
//!
//! Policy kept here, so every caller (the daemon, an embedder) gets the same:
//! - a node whose configuration or a group of which cannot be looked up is held — an
//!   outage never deregisters; configurations are not retried inside a pass;
//! - only targets berth registered are deregistered; in [`Scope::Node`] only the
//!   node's own instance's;
//! - a group only known from ownership that AWS answers NotFound for took its targets
//!   with it: their ownership is forgotten ([`Notice::GroupGone`]);
//! - a deregistered target is waited for for its group's real deregistration delay
//!   (a group only known from ownership is looked up by ARN). If the group cannot be
//!   looked up, nothing is guessed: the drain is not waited for, the following passes
//!   observe the group and report the target drained once it has left, and the pass
//!   asks to run again within [`DRAIN_RECHECK`];
//! - the spot rule ([`leaving`]): a node carrying [`SPOT_INTERRUPTION_TAINT`] or
//!   [`REBALANCE_RECOMMENDATION_TAINT`] leaves its groups ahead of the interruption;
//!   both are disruption taints. Notice mode writes them on the Node object (the
//!   cluster-mode leader sees them); node mode's own notice
//!   ([`NodeTargets::notice_spot_interruption`]) adds the taint in memory.

mod drain;
pub mod leaving;
mod notices;
mod outcomes;
mod requeue;
mod sources;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

pub use drain::DrainWait;
pub use leaving::{
    plan_notice_taints, taints_to_add, InstanceNotice, NoticeState, NoticeStates, TaintChange,
    REBALANCE_RECOMMENDATION_TAINT, SPOT_INTERRUPTION_TAINT,
};
pub use notices::{HoldReason, Notice, Source};
pub use requeue::{grace_expiry, DRAIN_RECHECK};
pub use sources::{
    merge_bindings, node_groups, rule_bindings, LabelRule, NODE_CONFIGURATION_LABEL,
};

use crate::domain::{InstanceId, Node, TargetGroupArn};
use crate::engine::{Engine, MembershipProviders, Report};
use crate::plan::{
    desire_nodes, owned_by_instances, plan_membership, MembershipChange, NodeDecision, NodeRules,
    NodeVerdict, Plan,
};
use crate::provider::{NodeConfigurations, PollPolicy, TargetGroups, TargetOwnership};
use crate::{Error, Result};

/// Which targets a workflow answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every node (cluster mode).
    Cluster,
    /// One node (node mode): only its instance's targets are planned, so a daemon never
    /// deregisters a neighbour's targets. `instance` (from IMDS) keeps that scope when
    /// the Node object is gone.
    Node {
        /// The node's name.
        name: String,
        /// Its instance, if known independently of the Node object.
        instance: Option<InstanceId>,
    },
}

/// The providers a pass calls.
#[derive(Clone)]
pub struct NodeTargetsProviders {
    /// Target groups: resolved, observed, registered, deregistered.
    pub target_groups: Arc<dyn TargetGroups>,
    /// What berth registered (only that is ever deregistered).
    pub ownership: Arc<dyn TargetOwnership>,
    /// Cast.ai node configurations (`None`: the label rules alone decide).
    pub node_configurations: Option<Arc<dyn NodeConfigurations>>,
}

/// How a pass decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTargetsSettings {
    /// Which nodes serve (the notice taints, [`SPOT_INTERRUPTION_TAINT`] and
    /// [`REBALANCE_RECOMMENDATION_TAINT`], are added to its disruption taints).
    pub node_rules: NodeRules,
    /// Static rules: label selectors → groups, merged with the node configurations.
    pub label_rules: Vec<LabelRule>,
    /// Whose targets.
    pub scope: Scope,
    /// How a drain is polled; the wait lasts the group's deregistration delay plus
    /// `deadline`.
    pub drain_poll: PollPolicy,
}

impl Default for NodeTargetsSettings {
    fn default() -> Self {
        NodeTargetsSettings {
            node_rules: NodeRules::default(),
            label_rules: Vec::new(),
            scope: Scope::Cluster,
            drain_poll: PollPolicy {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(30),
                deadline: Duration::from_secs(120),
            },
        }
    }
}

impl NodeTargetsSettings {
    /// The node labels a pass reads: the label rules' keys, the node configuration
    /// label and the exclusion label. A node with only these labels is decided as the
    /// whole node, so a cache of thousands of nodes need keep no other.
    pub fn label_keys(&self) -> BTreeSet<String> {
        self.label_rules
            .iter()
            .flat_map(|rule| rule.match_labels.keys().cloned())
            .chain([
                NODE_CONFIGURATION_LABEL.to_owned(),
                self.node_rules.exclusion_label.clone(),
            ])
            .collect()
    }
}

/// What one pass did and asks for.
#[derive(Debug)]
pub struct Pass {
    /// What was planned.
    pub plan: Plan<MembershipChange>,
    /// What the engine did with it.
    pub report: Report<MembershipChange>,
    /// Per node: serve, leave, hold or skip, and why.
    pub verdicts: Vec<NodeVerdict>,
    /// Groups that could not be observed (left alone this pass).
    pub unobserved: Vec<(TargetGroupArn, Error)>,
    /// What happened, in order, for Events and metrics.
    pub notices: Vec<Notice>,
    /// Deregistrations to wait out, off the pass (each once, however often planned).
    pub drains: Vec<DrainWait>,
    /// Run again after this long at the latest: a NotReady node's grace runs out, a
    /// wanted target is still draining, or a drain is checked by the passes.
    pub requeue_after: Option<Duration>,
    /// Nodes held because their groups are unknown.
    held: usize,
}

impl Pass {
    /// Whether the pass converged: every change applied, every group observed, no node
    /// held for unknown groups. A caller retries a pass that did not with backoff (a
    /// NotReady node within its grace converges: [`Pass::requeue_after`] covers it).
    pub fn converged(&self) -> bool {
        self.report.is_success() && self.unobserved.is_empty() && self.held == 0
    }

    /// Nodes that cannot be placed (no instance id, no matching group).
    pub fn skipped_nodes(&self) -> usize {
        self.verdicts
            .iter()
            .filter(|v| matches!(v.decision, NodeDecision::Skip(_)))
            .count()
    }
}

/// The daemon's pass over a set of nodes. Keeps, between passes, the drains it follows,
/// the hold/skip notes already reported and the spot interruption notices.
pub struct NodeTargets {
    engine: Engine,
    providers: NodeTargetsProviders,
    settings: NodeTargetsSettings,
    draining: drain::Draining,
    /// The last hold/skip note per node, so a resync does not repeat it.
    notes: Mutex<HashMap<String, String>>,
    /// Nodes with a spot interruption notice given in memory (node mode).
    spot: Mutex<BTreeSet<String>>,
}

impl NodeTargets {
    /// A workflow applying through `engine`.
    pub fn new(
        engine: Engine,
        providers: NodeTargetsProviders,
        mut settings: NodeTargetsSettings,
    ) -> Self {
        for taint in leaving::notice_disruption_taints() {
            if !settings.node_rules.disruption_taints.contains(&taint) {
                settings.node_rules.disruption_taints.push(taint);
            }
        }
        NodeTargets {
            engine,
            providers,
            settings,
            draining: drain::Draining::default(),
            notes: Mutex::default(),
            spot: Mutex::default(),
        }
    }

    /// Overrides how drains are polled (tests shorten it).
    pub fn with_drain_poll(mut self, poll: PollPolicy) -> Self {
        self.settings.drain_poll = poll;
        self
    }

    /// The settings in force.
    pub fn settings(&self) -> &NodeTargetsSettings {
        &self.settings
    }

    /// Deregistered targets not yet seen gone from their group.
    pub fn draining(&self) -> usize {
        self.draining.len()
    }

    /// Records a spot interruption notice for `node`: from the next pass on, it
    /// carries [`SPOT_INTERRUPTION_TAINT`] and leaves its groups.
    pub fn notice_spot_interruption(&self, node: &str) {
        self.spot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node.to_owned());
    }

    /// One pass over `nodes` (the nodes in scope); `now` is what the NotReady grace is
    /// measured against. Fails only when ownership cannot be read (nothing is changed
    /// then); every other problem is a notice and the pass goes on without it.
    pub async fn pass(&self, nodes: &[Node], now: SystemTime) -> Result<Pass> {
        let nodes = self.with_spot_taints(nodes);
        let mut notices = Vec::new();
        let p = &self.providers;
        let caller = self.engine.caller();
        let resolution = sources::resolve(
            &nodes,
            &self.settings.label_rules,
            p.node_configurations.as_deref(),
            p.target_groups.as_ref(),
            caller,
            &mut notices,
        )
        .await;
        let ownership = p.ownership.as_ref();
        let mut owned = caller.call("ReadOwnership", || ownership.owned()).await?;
        if let Scope::Node { instance, .. } = &self.settings.scope {
            let mut mine: BTreeSet<InstanceId> =
                nodes.iter().filter_map(|n| n.instance_id.clone()).collect();
            mine.extend(instance.clone());
            owned = owned_by_instances(&owned, &mine);
        }
        let checked = self.draining.checked_groups();
        let groups: BTreeSet<&TargetGroupArn> = resolution
            .resolved
            .keys()
            .chain(owned.keys())
            .chain(checked.iter())
            .collect();
        let (mut observed, mut unobserved) = self
            .engine
            .observe_membership(p.target_groups.as_ref(), groups)
            .await;
        unobserved.retain(|(group, e)| {
            let gone =
                matches!(e, Error::NotFound { .. }) && !resolution.resolved.contains_key(group);
            if gone {
                notices.push(Notice::GroupGone {
                    group: group.clone(),
                });
                observed.observe(group, Vec::new());
            }
            !gone
        });
        for (group, error) in &unobserved {
            notices.push(Notice::GroupUnobserved {
                group: group.clone(),
                error: error.clone(),
            });
        }
        let rechecking = self.draining.check(&observed, &mut notices);
        let rules = &self.settings.node_rules;
        let desire = desire_nodes(&nodes, &resolution.groups, rules, now, &observed, &owned);
        let plan = plan_membership(&desire.membership, &observed, &owned);
        let membership = MembershipProviders::new(p.target_groups.clone(), p.ownership.clone());
        let report = self.engine.apply(&membership, &plan).await;
        let mut drains = Vec::new();
        let mut unknown_delay = false;
        if !report.dry_run {
            let mut out = outcomes::Outcomes {
                workflow: self,
                verdicts: &desire.verdicts,
                resolved: &resolution.resolved,
                notices: &mut notices,
                drains: &mut drains,
                unknown_delay: false,
            };
            out.report(&report).await;
            unknown_delay = out.unknown_delay;
            self.notes(&nodes, &desire.verdicts, &mut notices);
        }
        let held = desire
            .verdicts
            .iter()
            .zip(nodes.iter())
            .filter(|(v, n)| matches!(v.decision, NodeDecision::Hold(_)) && n.ready)
            .count();
        let recheck = (rechecking || unknown_delay).then_some(DRAIN_RECHECK);
        let requeue_after = requeue::earliest(
            requeue::earliest(
                grace_expiry(&nodes, rules.not_ready_grace, now),
                requeue::draining_wanted(&desire.verdicts, &observed, &resolution.resolved),
            ),
            recheck,
        );
        Ok(Pass {
            plan,
            report,
            verdicts: desire.verdicts,
            unobserved,
            notices,
            drains,
            requeue_after,
            held,
        })
    }

    /// The nodes, with the spot interruption taint on those with a notice given in
    /// memory; borrowed as they are when none has one (every pass but those few: a
    /// copy of every node costs megabytes at thousands of nodes).
    fn with_spot_taints<'n>(&self, nodes: &'n [Node]) -> Cow<'n, [Node]> {
        let spot = self.spot.lock().unwrap_or_else(PoisonError::into_inner);
        if !nodes.iter().any(|n| spot.contains(&n.name)) {
            return Cow::Borrowed(nodes);
        }
        let notice = BTreeSet::from([InstanceNotice::SpotInterruption]);
        nodes
            .iter()
            .map(|n| {
                if spot.contains(&n.name) {
                    leaving::with_notice_taints(n, &notice)
                } else {
                    n.clone()
                }
            })
            .collect()
    }

    /// Holds and skips, reported once per change of reason rather than every resync.
    fn notes(&self, nodes: &[Node], verdicts: &[NodeVerdict], notices: &mut Vec<Notice>) {
        let mut notes = self.notes.lock().unwrap_or_else(PoisonError::into_inner);
        for (v, n) in verdicts.iter().zip(nodes) {
            let note = match &v.decision {
                NodeDecision::Skip(reason) => Some(Notice::Skipped {
                    node: v.node.clone(),
                    reason: reason.clone(),
                }),
                NodeDecision::Hold(reason) => {
                    let reason = if n.ready {
                        HoldReason::GroupsUnknown {
                            reason: reason.clone(),
                        }
                    } else {
                        HoldReason::NotReadyWithinGrace {
                            grace: self.settings.node_rules.not_ready_grace,
                        }
                    };
                    Some(Notice::Held {
                        node: v.node.clone(),
                        reason,
                    })
                }
                NodeDecision::Serve(_) if !v.warnings.is_empty() => Some(Notice::GroupSkipped {
                    node: v.node.clone(),
                    warnings: v.warnings.clone(),
                }),
                _ => None,
            };
            match note {
                Some(note) => {
                    let text = note.to_string();
                    if notes.get(&v.node) != Some(&text) {
                        notes.insert(v.node.clone(), text);
                        notices.push(note);
                    }
                }
                None => {
                    notes.remove(&v.node);
                }
            }
        }
        // A node gone from the pass forgets its note (and may be reported afresh).
        notes.retain(|node, _| verdicts.iter().any(|v| &v.node == node));
    }
}
