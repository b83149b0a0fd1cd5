//! Terraform's state, read back from its `kubernetes` backend (Secret
//! `tfstate-default-<suffix>`, key `tfstate`, gzip'd JSON), and cleanup: only a
//! cluster whose last apply-or-destroy is a destroy that applied and whose state holds
//! no managed resource loses its state, locks, Jobs and records.

use std::io::Read as _;

use berth_core::plan::runs::{cleanup_decision, state_secret_suffix};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, ListParams, PropagationPolicy};
use kube::Resource;
use serde::de::DeserializeOwned;

use super::lock::lock_name;
use super::{Result, Store, StoreError, CLUSTER, MANAGED_BY, MANAGER};

fn state_secret(cluster: &str) -> String {
    format!("tfstate-default-{}", state_secret_suffix(cluster))
}

/// Managed resource instances in a state document.
fn managed_instances(state: &serde_json::Value) -> u64 {
    state["resources"]
        .as_array()
        .map(|resources| {
            resources
                .iter()
                .filter(|r| r["mode"] == "managed")
                .map(|r| r["instances"].as_array().map_or(0, |i| i.len() as u64))
                .sum()
        })
        .unwrap_or(0)
}

impl Store {
    /// Managed resources in the cluster's state; 0 when there is no state.
    pub(crate) async fn state_resources(&self, cluster: &str) -> Result<u64> {
        let Some(secret) = self.api::<Secret>().get_opt(&state_secret(cluster)).await? else {
            return Ok(0);
        };
        let Some(gz) = secret.data.as_ref().and_then(|d| d.get("tfstate")) else {
            return Ok(0);
        };
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(gz.0.as_slice())
            .read_to_end(&mut text)
            .map_err(|e| {
                StoreError::Conflict(format!("the state of {cluster} is not gzip: {e}"))
            })?;
        let state: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
            StoreError::Conflict(format!("the state of {cluster} is not JSON: {e}"))
        })?;
        Ok(managed_instances(&state))
    }

    /// Deletes a destroyed cluster's state, locks, Jobs, records and logs; returns
    /// what it deleted. Refused while a run is live or resources remain.
    pub(crate) async fn cleanup(&self, cluster: &str) -> Result<Vec<String>> {
        // Hold the lock while deciding and deleting, so no run starts meanwhile.
        let holder = format!("cleanup-{:08x}", fastrand::u32(..));
        self.acquire_lock(cluster, &holder).await?;
        let decided = async {
            let runs = self.runs_of(cluster).await?;
            let resources = self.state_resources(cluster).await?;
            let history: Vec<_> = runs.iter().map(|r| (r.operation, r.state)).collect();
            cleanup_decision(&history, resources as usize)
                .map_err(|refusal| StoreError::Conflict(format!("cluster {cluster}: {refusal}")))
        }
        .await;
        if let Err(e) = decided {
            self.release_lock(cluster, &holder).await;
            return Err(e);
        }
        match self.delete_cluster_objects(cluster).await {
            Ok(deleted) => {
                tracing::info!(cluster, objects = deleted.len(), "cluster cleaned up");
                Ok(deleted)
            }
            Err(e) => {
                // Nothing left is live: a repeated cleanup finishes the job.
                self.release_lock(cluster, &holder).await;
                Err(e)
            }
        }
    }

    /// The deletions of [`Store::cleanup`], the cluster's lock last.
    async fn delete_cluster_objects(&self, cluster: &str) -> Result<Vec<String>> {
        let mut deleted = Vec::new();
        let secret = state_secret(cluster);
        let plain = DeleteParams::default();
        self.delete_named::<Secret>(&secret, &plain, &mut deleted)
            .await?;
        self.delete_named::<Lease>(&format!("lock-{secret}"), &plain, &mut deleted)
            .await?;
        // The Jobs (their pods with them), the records, spec and log chunks, and any
        // `<run>-errored-tfstate` Secret: everything the API and its runners labelled.
        let owned =
            ListParams::default().labels(&format!("{CLUSTER}={cluster},{MANAGED_BY}={MANAGER}"));
        let background = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        self.delete_listed::<Job>(&owned, &background, &mut deleted)
            .await?;
        self.delete_listed::<ConfigMap>(&owned, &plain, &mut deleted)
            .await?;
        self.delete_listed::<Secret>(&owned, &plain, &mut deleted)
            .await?;
        self.delete_named::<Lease>(&lock_name(cluster), &plain, &mut deleted)
            .await?;
        Ok(deleted)
    }
}

/// A namespaced Kubernetes object type the store can list and delete.
trait Namespaced:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> Namespaced for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
{
}

impl Store {
    /// Deletes one object if it exists, noting `kind/name` in `deleted`.
    async fn delete_named<K: Namespaced>(
        &self,
        name: &str,
        params: &DeleteParams,
        deleted: &mut Vec<String>,
    ) -> Result<()> {
        match self.api::<K>().delete(name, params).await {
            Ok(_) => {
                deleted.push(format!("{}/{name}", K::kind(&()).to_lowercase()));
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes every object the list finds.
    async fn delete_listed<K: Namespaced>(
        &self,
        list: &ListParams,
        params: &DeleteParams,
        deleted: &mut Vec<String>,
    ) -> Result<()> {
        for object in self.api::<K>().list(list).await?.items {
            let name = object.meta().name.clone().unwrap_or_default();
            self.delete_named::<K>(&name, params, deleted).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_managed_instances_only() {
        let state = serde_json::json!({"resources": [
            {"mode": "managed", "instances": [{}, {}]},
            {"mode": "data", "instances": [{}]},
            {"mode": "managed", "instances": []},
        ]});
        assert_eq!(managed_instances(&state), 2);
        assert_eq!(managed_instances(&serde_json::json!({"resources": []})), 0);
    }
}
