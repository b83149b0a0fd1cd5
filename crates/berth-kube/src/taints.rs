//! [`NodeTaints`]: adds and removes taints of a Node, idempotently and without losing a
//! concurrent writer's taints. Which taints is the caller's decision (berth-core's spot
//! rule, `plan_notice_taints`): this adapter removes nothing the plan does not name.

use berth_core::domain::{Taint, TaintEffect};
use berth_core::workflow::node_targets::TaintChange;
use k8s_openapi::api::core::v1 as core;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::node::node_from_k8s;
use crate::Error;

/// How often a patch that lost to a concurrent change of the Node is tried again.
const ATTEMPTS: usize = 5;

/// Changes the taints of Nodes: `get` and `patch` on `nodes`, nothing else.
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
    /// carries, and writes them only if there are any ([`NodeTaints::change`] with
    /// nothing to remove). Returns the taints added (empty: the Node had them all).
    pub async fn add_missing(
        &self,
        name: &str,
        missing: impl Fn(&[Taint]) -> Vec<Taint>,
    ) -> Result<Vec<Taint>, Error> {
        let change = self
            .change(name, |current| TaintChange {
                add: missing(current),
                remove: Vec::new(),
            })
            .await?;
        Ok(change.add)
    }

    /// Reads Node `name`, asks `plan` what to add and remove given the taints it
    /// carries, and writes that only if it is not empty: one `get`, and one `patch` only
    /// when something changes. The patch carries the `resourceVersion` read and the
    /// whole list (the Node's taints, less exactly those `plan` removes, plus the new
    /// ones), so a taint another writer added or kept meanwhile is never dropped: a 409
    /// reads again and asks `plan` again. Only the taints `plan` names are removed.
    /// Returns the change written (empty: the Node was as `plan` wants).
    pub async fn change(
        &self,
        name: &str,
        plan: impl Fn(&[Taint]) -> TaintChange,
    ) -> Result<TaintChange, Error> {
        let operation = format!("patch Node {name} taints");
        for _ in 0..ATTEMPTS {
            let node = self
                .api
                .get(name)
                .await
                .map_err(|e| Error::kube(format!("get Node {name}"), e))?;
            let change = plan(&node_from_k8s(&node).taints);
            if change.is_empty() {
                return Ok(change);
            }
            let mut taints = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default();
            taints.retain(|t| !change.remove.iter().any(|r| is(t, r)));
            taints.extend(change.add.iter().map(|t| core::Taint {
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
                Ok(_) => return Ok(change),
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(e) => return Err(Error::kube(operation, e)),
            }
        }
        Err(Error::Conflict(format!(
            "{operation}: the Node changed under {ATTEMPTS} attempts"
        )))
    }
}

/// Whether API taint `t` is `taint` as `node_from_k8s` reads it (an empty value is
/// none, an unknown effect `NoSchedule`): the plan names taints as read.
fn is(t: &core::Taint, taint: &Taint) -> bool {
    t.key == taint.key
        && t.value.as_deref().filter(|v| !v.is_empty()) == taint.value.as_deref()
        && TaintEffect::parse(&t.effect).unwrap_or(TaintEffect::NoSchedule) == taint.effect
}
