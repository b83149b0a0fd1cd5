//! Where a node's target groups come from: its Cast.ai node configuration and the label
//! rules, merged by pure functions, then looked up through the providers — each
//! configuration id and each group reference once per pass, every call through the
//! engine's [`Caller`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::notices::Notice;
use crate::domain::{Node, TargetGroup, TargetGroupArn, TargetGroupRef};
use crate::engine::{Caller, RetryPolicy};
use crate::plan::{NodeGroup, NodeGroups};
use crate::provider::{GroupBinding, NodeConfigurations, TargetGroups};

/// The node label naming a node's Cast.ai node configuration.
pub const NODE_CONFIGURATION_LABEL: &str = "provisioner.cast.ai/node-configuration-id";

/// A static rule: nodes whose labels match belong in these target groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRule {
    /// The rule's name, for messages.
    pub name: String,
    /// Every label that must be present with this value (empty: every node matches).
    pub match_labels: BTreeMap<String, String>,
    /// The groups a matching node belongs in.
    pub target_groups: Vec<GroupBinding>,
}

impl LabelRule {
    /// Whether a node with these labels matches.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// The groups of every rule matching these labels, in rule order, without duplicates.
pub fn rule_bindings(rules: &[LabelRule], labels: &BTreeMap<String, String>) -> Vec<GroupBinding> {
    let mut out: Vec<GroupBinding> = Vec::new();
    for rule in rules.iter().filter(|r| r.matches(labels)) {
        push_new(&mut out, &rule.target_groups);
    }
    out
}

/// A node's bindings: its rules' bindings, then its node configuration's, without
/// duplicates. `configuration` is `None` when the node names no configuration (or no
/// configuration source is set up), or the lookup's answer, an error text when it
/// failed: then the node's groups are unknown (planning without them would deregister
/// it), whatever the rules say.
pub fn merge_bindings(
    from_rules: Vec<GroupBinding>,
    configuration: Option<&Result<Vec<GroupBinding>, String>>,
) -> Result<Vec<GroupBinding>, String> {
    match configuration {
        None => Ok(from_rules),
        Some(Err(reason)) => Err(reason.clone()),
        Some(Ok(list)) => {
            let mut out = from_rules;
            push_new(&mut out, list);
            Ok(out)
        }
    }
}

/// A node's groups from its bindings and the answers for each group reference. One
/// unresolvable group makes the whole node unknown: planning without that group would
/// deregister the node from it.
pub fn node_groups(
    bindings: &Result<Vec<GroupBinding>, String>,
    groups: &HashMap<TargetGroupRef, Result<TargetGroup, String>>,
) -> NodeGroups {
    let bindings = match bindings {
        Err(reason) => {
            return NodeGroups::Unknown {
                reason: reason.clone(),
            }
        }
        Ok(b) => b,
    };
    let mut list = Vec::new();
    for b in bindings {
        match groups.get(&b.group) {
            Some(Ok(g)) => list.push(NodeGroup {
                group: g.clone(),
                port: b.port,
            }),
            Some(Err(reason)) => {
                return NodeGroups::Unknown {
                    reason: reason.clone(),
                }
            }
            None => {
                return NodeGroups::Unknown {
                    reason: format!("target group {} unresolved", b.group),
                }
            }
        }
    }
    NodeGroups::Resolved(list)
}

fn push_new(out: &mut Vec<GroupBinding>, more: &[GroupBinding]) {
    for b in more {
        if !out.contains(b) {
            out.push(b.clone());
        }
    }
}

/// What resolution found for the nodes of one pass.
#[derive(Debug, Default)]
pub(super) struct Resolution {
    /// Per node name: its groups, or why they are unknown.
    pub groups: BTreeMap<String, NodeGroups>,
    /// Every group resolved, by ARN (deregistration delays come from here).
    pub resolved: BTreeMap<TargetGroupArn, TargetGroup>,
}

/// Looks up the configurations and groups of `nodes`; every failure becomes a notice
/// (typed by where it came from) and makes the nodes concerned unknown.
///
/// Node configurations are asked once, without retries inside the pass: a failure only
/// holds the nodes concerned, and the next pass (retried with backoff, as a held pass
/// does not converge) asks again, so an outage never stalls the pass. Group lookups are
/// AWS calls and are retried by the caller.
pub(super) async fn resolve(
    nodes: &[Node],
    rules: &[LabelRule],
    configurations: Option<&dyn NodeConfigurations>,
    target_groups: &dyn TargetGroups,
    caller: &Caller,
    notices: &mut Vec<Notice>,
) -> Resolution {
    let mut out = Resolution::default();
    let ids: BTreeSet<&str> = nodes
        .iter()
        .filter_map(|n| n.label(NODE_CONFIGURATION_LABEL))
        .collect();
    let mut answers: HashMap<&str, Result<Vec<GroupBinding>, String>> = HashMap::new();
    if let Some(source) = configurations {
        let once = caller.with_retry(RetryPolicy::none());
        for id in ids {
            let answer = once
                .call("GetNodeConfiguration", || source.target_groups(id))
                .await;
            let answer = answer.map_err(|error| {
                let text = format!("node configuration {id}: {error}");
                notices.push(Notice::ConfigurationUnavailable {
                    configuration: id.to_owned(),
                    error,
                });
                text
            });
            answers.insert(id, answer);
        }
    }
    // Without a configuration source the label means nothing: the rules decide.
    let per_node: Vec<(&Node, Result<Vec<GroupBinding>, String>)> = nodes
        .iter()
        .map(|node| {
            let answer = node
                .label(NODE_CONFIGURATION_LABEL)
                .and_then(|id| answers.get(id));
            (
                node,
                merge_bindings(rule_bindings(rules, &node.labels), answer),
            )
        })
        .collect();
    let refs: BTreeSet<&TargetGroupRef> = per_node
        .iter()
        .filter_map(|(_, b)| b.as_ref().ok())
        .flatten()
        .map(|b| &b.group)
        .collect();
    let mut groups: HashMap<TargetGroupRef, Result<TargetGroup, String>> = HashMap::new();
    for r in refs {
        let answer = caller
            .call("DescribeTargetGroups", || target_groups.resolve(r))
            .await;
        let answer = match answer {
            Ok(g) => {
                out.resolved.insert(g.arn.clone(), g.clone());
                Ok(g)
            }
            Err(error) => {
                let text = format!("target group {r}: {error}");
                notices.push(Notice::GroupUnresolved {
                    group: r.clone(),
                    error,
                });
                Err(text)
            }
        };
        groups.insert(r.clone(), answer);
    }
    for (node, bindings) in per_node {
        out.groups
            .insert(node.name.clone(), node_groups(&bindings, &groups));
    }
    out
}
