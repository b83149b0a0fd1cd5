//! Which nodes belong in which target groups: the daemon's rules, as a pure function
//! from nodes and their resolved groups to a [`DesiredMembership`].
//!
//! A node serves (is wanted in its groups) when it is Ready, schedulable, not excluded
//! and not being disrupted. A node that is leaving is wanted nowhere, so
//! [`super::plan_membership`] deregisters whatever berth registered for it. A node
//! whose groups are unknown (its node configuration could not be read) *holds*: what
//! is registered for it stays, so an outage of a configuration source never
//! deregisters anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, SystemTime};

use super::{DesiredMembership, ObservedMembership};
use crate::domain::{InstanceId, Node, Target, TargetGroup, TargetGroupArn};
use crate::provider::OwnedTargets;

/// The label that takes a node out of external load balancers (a Kubernetes standard).
pub const EXCLUDE_FROM_LOAD_BALANCERS: &str =
    "node.kubernetes.io/exclude-from-external-load-balancers";
/// The taint the node lifecycle controller sets on a cordoned node.
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// A taint key pattern: an exact key, or every key under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaintMatch {
    /// Exactly this key.
    Key(String),
    /// Every key starting with this text, e.g. `aws-node-termination-handler/`.
    Prefix(String),
}

impl TaintMatch {
    /// Whether a taint key matches.
    pub fn matches(&self, key: &str) -> bool {
        match self {
            TaintMatch::Key(k) => k == key,
            TaintMatch::Prefix(p) => key.starts_with(p.as_str()),
        }
    }
}

/// The rules deciding whether a node serves. [`NodeRules::default`] is what the daemon
/// runs with unless told otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRules {
    /// Deregister a cordoned (unschedulable) node. Default true: a cordon usually
    /// precedes a drain, and the load balancer should stop sending it new flows first.
    pub deregister_on_cordon: bool,
    /// How long a node may be NotReady before it is deregistered. Shorter blips are
    /// left to the load balancer's health checks.
    pub not_ready_grace: Duration,
    /// A node carrying this label (any value but `"false"`) is deregistered.
    pub exclusion_label: String,
    /// Taints announcing the node is about to go away (deregister ahead of it).
    pub disruption_taints: Vec<TaintMatch>,
}

impl Default for NodeRules {
    fn default() -> Self {
        NodeRules {
            deregister_on_cordon: true,
            not_ready_grace: Duration::from_secs(300),
            exclusion_label: EXCLUDE_FROM_LOAD_BALANCERS.to_owned(),
            disruption_taints: vec![
                // Karpenter v1 taints a node it is about to disrupt (v1beta1 spelled it
                // `karpenter.sh/disruption`).
                TaintMatch::Key("karpenter.sh/disrupted".into()),
                TaintMatch::Key("karpenter.sh/disruption".into()),
                // aws-node-termination-handler: spot-itn, scheduled-maintenance,
                // rebalance-recommendation, asg-lifecycle-termination, ...
                TaintMatch::Prefix("aws-node-termination-handler/".into()),
                // The cluster autoscaler's mark on a node it is deleting.
                TaintMatch::Key("ToBeDeletedByClusterAutoscaler".into()),
            ],
        }
    }
}

/// One target group a node should be in, with the port from its source (`None`: the
/// group's own port, which is what a null port from Cast.ai means).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeGroup {
    /// The resolved group.
    pub group: TargetGroup,
    /// The explicit port, if any.
    pub port: Option<u16>,
}

/// A node's target groups as its sources (Cast.ai, static rules) say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeGroups {
    /// Every source answered; the list may be empty (the node matches nothing).
    Resolved(Vec<NodeGroup>),
    /// A source could not be read or a group could not be resolved: keep the node's
    /// current registrations, change nothing for it.
    Unknown {
        /// Why, for logs and Events.
        reason: String,
    },
}

/// Why a node is taken out of its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaveReason {
    /// `spec.unschedulable` (or the unschedulable taint).
    Cordoned,
    /// The exclusion label is set.
    Excluded,
    /// A disruption taint, with its key.
    Disrupted(String),
    /// NotReady for longer than the grace period.
    NotReady(Duration),
}

impl fmt::Display for LeaveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaveReason::Cordoned => f.write_str("cordoned"),
            LeaveReason::Excluded => write!(f, "labelled {EXCLUDE_FROM_LOAD_BALANCERS}"),
            LeaveReason::Disrupted(key) => write!(f, "disruption taint {key}"),
            LeaveReason::NotReady(d) => write!(f, "NotReady for {}s", d.as_secs()),
        }
    }
}

/// What the rules decided for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeDecision {
    /// Wanted in these groups (ARN, resolved port).
    Serve(Vec<(TargetGroupArn, u16)>),
    /// Wanted nowhere: deregister what berth registered for it.
    Leave(LeaveReason),
    /// Keep what is registered, add nothing (groups unknown, or NotReady within grace).
    Hold(String),
    /// Nothing to do: the node has no instance id or matches no group.
    Skip(String),
}

impl fmt::Display for NodeDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeDecision::Serve(groups) => {
                let names: Vec<String> = groups
                    .iter()
                    .map(|(arn, port)| format!("{}:{port}", arn.name()))
                    .collect();
                write!(f, "serve in {}", names.join(", "))
            }
            NodeDecision::Leave(reason) => write!(f, "leave: {reason}"),
            NodeDecision::Hold(reason) => write!(f, "hold: {reason}"),
            NodeDecision::Skip(reason) => write!(f, "skip: {reason}"),
        }
    }
}

/// One node's decision, with the problems met on the way (e.g. a group without a
/// port): the daemon turns these into Kubernetes Events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeVerdict {
    /// The node's name.
    pub node: String,
    /// Its instance, when known.
    pub instance_id: Option<InstanceId>,
    /// The decision.
    pub decision: NodeDecision,
    /// Per-group problems that did not change the decision.
    pub warnings: Vec<String>,
}

/// The desired membership of a set of nodes, and why each node got what it got.
#[derive(Debug, Clone, Default)]
pub struct NodeDesire {
    /// Feed to [`super::plan_membership`].
    pub membership: DesiredMembership,
    /// One verdict per node, in input order.
    pub verdicts: Vec<NodeVerdict>,
}

/// Decides, for each node, whether it serves, leaves, holds or is skipped, and builds
/// the desired membership.
///
/// `groups` maps node names to their resolved groups; a node missing from it is
/// treated as [`NodeGroups::Unknown`] (never as "matches nothing": that would
/// deregister it). Held nodes keep their currently registered, owned, non-draining
/// targets, which is why `observed` and `owned` are needed. `now` is the time the
/// NotReady grace is measured against.
pub fn desire_nodes(
    nodes: &[Node],
    groups: &BTreeMap<String, NodeGroups>,
    rules: &NodeRules,
    now: SystemTime,
    observed: &ObservedMembership,
    owned: &OwnedTargets,
) -> NodeDesire {
    let mut desire = NodeDesire::default();
    for group in groups.values().filter_map(|g| match g {
        NodeGroups::Resolved(list) => Some(list),
        NodeGroups::Unknown { .. } => None,
    }) {
        // A group some node should be in is planned even with no member left in it.
        for g in group {
            desire.membership.declare_group(&g.group.arn);
        }
    }
    for node in nodes {
        let mut warnings = Vec::new();
        let decision = decide(node, groups.get(&node.name), rules, now);
        let decision = match (decision, &node.instance_id) {
            (Decided::Serve(list), Some(id)) => {
                let mut serving = Vec::new();
                for g in list {
                    match g.group.resolve_port(g.port) {
                        Ok(port) => {
                            let target = Target::new(id.as_str(), port);
                            desire.membership.want_target(&g.group.arn, target, None);
                            serving.push((g.group.arn.clone(), port));
                        }
                        Err(e) => warnings.push(e.to_string()),
                    }
                }
                serving.sort();
                serving.dedup();
                NodeDecision::Serve(serving)
            }
            (Decided::Hold(reason), Some(id)) => {
                hold(&mut desire.membership, id, observed, owned);
                NodeDecision::Hold(reason)
            }
            (Decided::Leave(reason), Some(_)) => NodeDecision::Leave(reason),
            (Decided::Skip(reason), _) => NodeDecision::Skip(reason),
            (_, None) => NodeDecision::Skip(
                "no EC2 instance id (spec.providerID is missing or not aws:///<az>/<id>)".into(),
            ),
        };
        desire.verdicts.push(NodeVerdict {
            node: node.name.clone(),
            instance_id: node.instance_id.clone(),
            decision,
            warnings,
        });
    }
    desire
}

/// Keeps only the owned targets of these instances: in node mode a daemon plans for its
/// own instance and must not deregister its neighbours' targets.
pub fn owned_by_instances(owned: &OwnedTargets, instances: &BTreeSet<InstanceId>) -> OwnedTargets {
    owned
        .iter()
        .map(|(group, targets)| {
            let mine: BTreeSet<_> = targets
                .iter()
                .filter(|t| instances.iter().any(|i| i.as_str() == &*t.id))
                .cloned()
                .collect();
            (group.clone(), mine)
        })
        .filter(|(_, targets)| !targets.is_empty())
        .collect()
}

enum Decided<'a> {
    Serve(&'a [NodeGroup]),
    Leave(LeaveReason),
    Hold(String),
    Skip(String),
}

fn decide<'a>(
    node: &Node,
    groups: Option<&'a NodeGroups>,
    rules: &NodeRules,
    now: SystemTime,
) -> Decided<'a> {
    // Leaving wins over everything, unknown groups included: these reasons do not
    // depend on any configuration source.
    if let Some(reason) = leave_reason(node, rules, now) {
        return Decided::Leave(reason);
    }
    if !node.ready {
        return Decided::Hold(format!(
            "NotReady for less than {}s",
            rules.not_ready_grace.as_secs()
        ));
    }
    match groups {
        None => Decided::Hold("its target groups have not been resolved".into()),
        Some(NodeGroups::Unknown { reason }) => Decided::Hold(reason.clone()),
        Some(NodeGroups::Resolved(list)) if list.is_empty() => Decided::Skip(
            "matches no target group (no node-configuration label with target groups, \
             no static rule)"
                .into(),
        ),
        Some(NodeGroups::Resolved(list)) => Decided::Serve(list),
    }
}

fn leave_reason(node: &Node, rules: &NodeRules, now: SystemTime) -> Option<LeaveReason> {
    if node
        .label(&rules.exclusion_label)
        .is_some_and(|v| v != "false")
    {
        return Some(LeaveReason::Excluded);
    }
    if let Some(taint) = node
        .taints
        .iter()
        .find(|t| rules.disruption_taints.iter().any(|m| m.matches(&t.key)))
    {
        return Some(LeaveReason::Disrupted(taint.key.clone()));
    }
    let cordoned = node.unschedulable || node.has_taint(UNSCHEDULABLE_TAINT);
    if cordoned && rules.deregister_on_cordon {
        return Some(LeaveReason::Cordoned);
    }
    // Without a transition time the duration is unknown: hold rather than guess.
    if let Some(down) = node.not_ready_for(now) {
        if down >= rules.not_ready_grace {
            return Some(LeaveReason::NotReady(down));
        }
    }
    None
}

/// Wants every owned target of `instance` that is in its group now and not draining,
/// so planning neither deregisters nor re-registers anything for it.
fn hold(
    membership: &mut DesiredMembership,
    instance: &InstanceId,
    observed: &ObservedMembership,
    owned: &OwnedTargets,
) {
    for (group, targets) in owned {
        for target in targets.iter().filter(|t| &*t.id == instance.as_str()) {
            let present = observed
                .state(group, target)
                .is_some_and(|s| !s.is_draining());
            if present {
                membership.want_target(group, target.clone(), None);
            }
        }
    }
}
