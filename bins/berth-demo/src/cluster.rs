//! The Kubernetes side: berth-kube's in-process API server (a real `kube::Client`
//! lists and watches it) and the fleet of nodes the scenario acts on.

use std::collections::BTreeMap;

use anyhow::Context as _;
use berth_castai::NODE_CONFIGURATION_LABEL;
use berth_kube::fake::{ready_node, FakeApiServer};
use k8s_openapi::api::coordination::v1::Lease;

/// Nodes in the fleet.
pub(crate) const NODES: usize = 6;

/// The Cast.ai node configuration of the last two nodes.
pub(crate) const CONFIGURATION: &str = "cfg-batch";

/// The label the static rule selects.
pub(crate) const ROLE_LABEL: (&str, &str) = ("role", "web");

/// One node of the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeSpec {
    /// `node-<n>`.
    pub(crate) name: String,
    /// Its EC2 instance (the providerID).
    pub(crate) instance: String,
    /// Placed by the static rule (`role=web`) or by Cast.ai (`cfg-batch`).
    pub(crate) by_castai: bool,
}

impl NodeSpec {
    fn labels(&self) -> Vec<(&str, &str)> {
        let mut labels = vec![("kubernetes.io/os", "linux")];
        if self.by_castai {
            labels.push((NODE_CONFIGURATION_LABEL, CONFIGURATION));
        } else {
            labels.push(ROLE_LABEL);
        }
        labels
    }
}

/// The fleet on `instances` (one per node): nodes 1-4 are web nodes, 5-6 Cast.ai's.
pub(crate) fn fleet(instances: &[String]) -> Vec<NodeSpec> {
    instances
        .iter()
        .take(NODES)
        .enumerate()
        .map(|(i, instance)| NodeSpec {
            name: format!("node-{}", i + 1),
            instance: instance.clone(),
            by_castai: i >= 4,
        })
        .collect()
}

/// The API server and what the scenario does to it.
pub(crate) struct Cluster {
    api: FakeApiServer,
}

impl Cluster {
    /// Starts the API server (empty).
    pub(crate) fn start() -> anyhow::Result<Self> {
        let api = FakeApiServer::start().context("starting the in-process Kubernetes API")?;
        Ok(Cluster { api })
    }

    /// A client of it.
    pub(crate) fn client(&self) -> kube::Client {
        self.api.client()
    }

    /// The node joins (Ready).
    pub(crate) fn join(&self, node: &NodeSpec) {
        self.api
            .add_node(ready_node(&node.name, &node.instance, &node.labels()));
    }

    /// `kubectl cordon`.
    pub(crate) fn cordon(&self, name: &str) -> anyhow::Result<()> {
        let mut node = self
            .api
            .node(name)
            .with_context(|| format!("node {name} is not in the cluster"))?;
        node.spec.get_or_insert_with(Default::default).unschedulable = Some(true);
        self.api.update_node(node);
        Ok(())
    }

    /// `kubectl delete node`.
    pub(crate) fn delete(&self, name: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.api.delete_node(name),
            "node {name} is not in the cluster"
        );
        Ok(())
    }

    /// Who holds the Lease `namespace/name`, if anyone.
    pub(crate) fn lease_holder(&self, namespace: &str, name: &str) -> Option<String> {
        self.api
            .get::<Lease>(Some(namespace), name)?
            .spec?
            .holder_identity
    }

    /// The Events recorded, counted by reason; an Event standing for a series of
    /// repeats (same node, reason and action) counts each of them.
    pub(crate) fn events_by_reason(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for e in self.api.events() {
            let repeats = e
                .series
                .as_ref()
                .and_then(|s| usize::try_from(s.count).ok())
                .unwrap_or(1);
            *out.entry(e.reason.unwrap_or_default()).or_default() += repeats;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_web_nodes_and_two_castai_nodes() {
        let ids: Vec<String> = (1..=7).map(|i| format!("i-{i:017x}")).collect();
        let fleet = fleet(&ids);
        assert_eq!(fleet.len(), NODES);
        assert_eq!(fleet[0].name, "node-1");
        assert_eq!(fleet[5].instance, ids[5]);
        let by_castai: Vec<bool> = fleet.iter().map(|n| n.by_castai).collect();
        assert_eq!(by_castai, [false, false, false, false, true, true]);
        assert!(fleet[4]
            .labels()
            .contains(&(NODE_CONFIGURATION_LABEL, CONFIGURATION)));
    }
}
