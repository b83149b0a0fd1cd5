//! [`NodeTaints`]: adds taints to a Node, idempotently and without losing a concurrent
//! writer's taints. Which taints is the caller's decision (berth-core's spot rule).

use berth_core::domain::Taint;
use k8s_openapi::api::core::v1 as core;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::node::node_from_k8s;
use crate::Error;

/// How often a patch that lost to a concurrent change of the Node is tried again.
const ATTEMPTS: usize = 5;

/// Adds taints to Nodes: `get` and `patch` on `nodes`, nothing else.
#[derive(Clone)]
pub struct NodeTaints {
    api: Api<core::Node>,
}

impl NodeTaints {
    /// Over `client`.
    pub fn new(client: kube::Client) -> Self {
        NodeTaints {
            api: Api::all(client),
        }
    }

    /// The taints Node `name` carries now (one `get`): also how notice mode checks at
    /// start that it may read its Node.
    pub async fn current(&self, name: &str) -> Result<Vec<Taint>, Error> {
        let node = self
            .api
            .get(name)
            .await
            .map_err(|e| Error::kube(format!("get Node {name}"), e))?;
        Ok(node_from_k8s(&node).taints)
    }

    /// Reads Node `name`, asks `missing` which taints to add given the taints it
    /// carries, and writes them only if there are any: one `get`, and one `patch` only
    /// when something is missing. The patch carries the `resourceVersion` read and the
    /// whole list (the Node's taints plus the new ones), so a taint another writer added
    /// meanwhile is never dropped: a 409 reads again. Nothing is ever removed. Returns
    /// the taints added (empty: the Node had them all).
    pub async fn add_missing(
        &self,
        name: &str,
        missing: impl Fn(&[Taint]) -> Vec<Taint>,
    ) -> Result<Vec<Taint>, Error> {
        let operation = format!("patch Node {name} taints");
        for _ in 0..ATTEMPTS {
            let node = self
                .api
                .get(name)
                .await
                .map_err(|e| Error::kube(format!("get Node {name}"), e))?;
            let add = missing(&node_from_k8s(&node).taints);
            if add.is_empty() {
                return Ok(add);
            }
            let mut taints = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default();
            taints.extend(add.iter().map(|t| core::Taint {
                key: t.key.clone(),
                value: t.value.clone(),
                effect: t.effect.as_str().to_owned(),
                time_added: None,
            }));
            let patch = json!({
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "spec": {"taints": taints},
            });
            match self
                .api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(add),
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(e) => return Err(Error::kube(operation, e)),
            }
        }
        Err(Error::Conflict(format!(
            "{operation}: the Node changed under {ATTEMPTS} attempts"
        )))
    }
}
