//! Each node's target groups, from its Cast.ai node configuration and the static rules,
//! resolved to groups with ports and deregistration delays.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use berth_core::domain::{Node, TargetGroup, TargetGroupRef};
use berth_core::plan::{NodeGroup, NodeGroups};
use berth_core::provider::{GroupBinding, NodeConfigurations, TargetGroups};

use crate::static_config::StaticConfig;

/// The node label naming a node's Cast.ai node configuration.
pub const NODE_CONFIGURATION_LABEL: &str = berth_castai::NODE_CONFIGURATION_LABEL;

/// What the resolver found for a set of nodes.
#[derive(Debug, Default)]
pub struct Resolution {
    /// Per node name: its groups, or why they are unknown.
    pub groups: BTreeMap<String, NodeGroups>,
    /// Every group resolved, by ARN (deregistration delays come from here).
    pub resolved: BTreeMap<berth_core::domain::TargetGroupArn, TargetGroup>,
    /// Problems to report (configuration or group lookups that failed), once each,
    /// with where they came from.
    pub problems: Vec<(Source, berth_core::Error)>,
}

/// Where a resolution problem came from (metrics label it; never guessed from text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The node configurations (Cast.ai).
    NodeConfigurations,
    /// The target groups (AWS).
    TargetGroups,
}

impl Source {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Source::NodeConfigurations => "castai",
            Source::TargetGroups => "aws",
        }
    }
}

/// Looks up node configurations and target groups; each distinct configuration id and
/// group reference is asked once per resolution.
pub struct Resolver {
    castai: Option<Arc<dyn NodeConfigurations>>,
    rules: StaticConfig,
    targets: Arc<dyn TargetGroups>,
}

impl Resolver {
    /// A resolver over Cast.ai (optional), static rules and the target groups provider.
    pub fn new(
        castai: Option<Arc<dyn NodeConfigurations>>,
        rules: StaticConfig,
        targets: Arc<dyn TargetGroups>,
    ) -> Self {
        Resolver {
            castai,
            rules,
            targets,
        }
    }

    /// Resolves the groups of `nodes`.
    pub async fn resolve(&self, nodes: &[Node]) -> Resolution {
        let mut out = Resolution::default();
        // Configuration ids → bindings (or the error text), once per id.
        let ids: BTreeSet<&str> = nodes
            .iter()
            .filter_map(|n| n.label(NODE_CONFIGURATION_LABEL))
            .collect();
        let mut configurations: HashMap<&str, Result<Vec<GroupBinding>, String>> = HashMap::new();
        for id in ids {
            let answer = match &self.castai {
                Some(castai) => match castai.target_groups(id).await {
                    Ok(b) => Ok(b),
                    Err(e) => {
                        let text = format!("node configuration {id}: {e}");
                        out.problems.push((Source::NodeConfigurations, e));
                        Err(text)
                    }
                },
                // Without Cast.ai the label means nothing: the static rules decide.
                None => Ok(Vec::new()),
            };
            configurations.insert(id, answer);
        }
        // Bindings per node.
        let mut per_node: Vec<(&Node, Result<Vec<GroupBinding>, String>)> = Vec::new();
        for node in nodes {
            let mut bindings = self.rules.bindings_for(&node.labels);
            let from_castai = node
                .label(NODE_CONFIGURATION_LABEL)
                .and_then(|id| configurations.get(id));
            let answer = match from_castai {
                Some(Err(e)) => Err(e.clone()),
                Some(Ok(list)) => {
                    for b in list {
                        if !bindings.contains(b) {
                            bindings.push(b.clone());
                        }
                    }
                    Ok(bindings)
                }
                None => Ok(bindings),
            };
            per_node.push((node, answer));
        }
        // Group references → groups, once per reference.
        let refs: BTreeSet<TargetGroupRef> = per_node
            .iter()
            .filter_map(|(_, b)| b.as_ref().ok())
            .flatten()
            .map(|b| b.group.clone())
            .collect();
        let mut groups: HashMap<TargetGroupRef, Result<TargetGroup, String>> = HashMap::new();
        for r in refs {
            let answer = match self.targets.resolve(&r).await {
                Ok(g) => {
                    out.resolved.insert(g.arn.clone(), g.clone());
                    Ok(g)
                }
                Err(e) => {
                    let text = format!("target group {r}: {e}");
                    out.problems.push((Source::TargetGroups, e));
                    Err(text)
                }
            };
            groups.insert(r, answer);
        }
        for (node, bindings) in per_node {
            let entry = match bindings {
                Err(reason) => NodeGroups::Unknown { reason },
                Ok(bindings) => {
                    let mut list = Vec::new();
                    let mut unknown = None;
                    for b in &bindings {
                        match groups.get(&b.group) {
                            Some(Ok(g)) => list.push(NodeGroup {
                                group: g.clone(),
                                port: b.port,
                            }),
                            Some(Err(e)) => unknown = Some(e.clone()),
                            None => unknown = Some(format!("target group {} unresolved", b.group)),
                        }
                    }
                    // One unresolvable group makes the whole node unknown: planning
                    // without it would deregister the node from that group.
                    match unknown {
                        Some(reason) => NodeGroups::Unknown { reason },
                        None => NodeGroups::Resolved(list),
                    }
                }
            };
            out.groups.insert(node.name.clone(), entry);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use berth_core::domain::TargetType;
    use berth_core::memory::{MemoryNodeConfigurations, MemoryTargetGroups};
    use berth_core::Error;

    use super::*;

    fn node(name: &str, config: Option<&str>) -> Node {
        let mut n = Node::new(name).with_provider_id(&format!("aws:///us-east-1a/i-{name}"));
        if let Some(c) = config {
            n.labels.insert(NODE_CONFIGURATION_LABEL.into(), c.into());
        }
        n
    }

    #[tokio::test]
    async fn combines_castai_and_static_rules_asking_once_per_id_and_group() {
        let tg = Arc::new(MemoryTargetGroups::default());
        let web = tg.add_group("web", TargetType::Instance, Some(80));
        let api = tg.add_group("api", TargetType::Instance, Some(443));
        let castai = Arc::new(MemoryNodeConfigurations::default());
        castai.insert(
            "cfg-1",
            vec![GroupBinding {
                group: TargetGroupRef::Arn(web.arn.clone()),
                port: None,
            }],
        );
        let rules = StaticConfig::parse(
            "c",
            "rules:\n  - nodeSelector: {matchLabels: {role: api}}\n    targetGroups: [{name: api, port: 8443}]\n",
        )
        .unwrap();
        let resolver = Resolver::new(Some(castai.clone()), rules, tg.clone());
        let mut both = node("b1", Some("cfg-1"));
        both.labels.insert("role".into(), "api".into());
        let nodes = vec![
            node("a1", Some("cfg-1")),
            node("a2", Some("cfg-1")),
            both,
            node("c1", None),
        ];
        let r = resolver.resolve(&nodes).await;
        assert_eq!(castai.faults.calls("GetNodeConfiguration"), 1);
        assert_eq!(tg.faults.calls("DescribeTargetGroups"), 2);
        let NodeGroups::Resolved(b1) = &r.groups["b1"] else {
            panic!("{:?}", r.groups["b1"])
        };
        assert_eq!(b1.len(), 2);
        assert!(
            b1.contains(&NodeGroup {
                group: api.clone(),
                port: Some(8443),
            }),
            "the static rule's api group on its explicit port: {b1:?}"
        );
        assert!(b1.contains(&NodeGroup {
            group: web.clone(),
            port: None,
        }));
        assert_eq!(r.groups["c1"], NodeGroups::Resolved(vec![]));
    }

    #[tokio::test]
    async fn a_castai_failure_or_an_unknown_group_makes_the_node_unknown() {
        let tg = Arc::new(MemoryTargetGroups::default());
        let castai = Arc::new(MemoryNodeConfigurations::default());
        castai.faults.fail(
            "GetNodeConfiguration",
            Error::Unavailable {
                operation: "Cast.ai".into(),
                message: "500".into(),
            },
            1,
        );
        castai.insert(
            "cfg-2",
            vec![GroupBinding {
                group: TargetGroupRef::Name("missing".into()),
                port: None,
            }],
        );
        let resolver = Resolver::new(Some(castai), StaticConfig::default(), tg);
        let r = resolver
            .resolve(&[node("a", Some("cfg-1")), node("b", Some("cfg-2"))])
            .await;
        assert!(matches!(&r.groups["a"], NodeGroups::Unknown { reason } if reason.contains("500")));
        assert!(
            matches!(&r.groups["b"], NodeGroups::Unknown { reason } if reason.contains("missing"))
        );
        assert_eq!(r.problems.len(), 2);
    }
}
