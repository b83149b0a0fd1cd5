//! Terraform's state, read back from its `kubernetes` backend (Secret
//! `tfstate-default-<suffix>`, key `tfstate`, gzip'd JSON), and cleanup: only a
//! cluster whose last apply-or-destroy is a destroy that applied and whose state holds
//! no managed resource loses its state, locks, Jobs and records.

use std::io::Read as _;

use berth_core::plan::runs::{cleanup_decision, state_secret_suffix};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, ListParams, PropagationPolicy};

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
        let mut deleted = Vec::new();
        let secret = state_secret(cluster);
        if self
            .api::<Secret>()
            .delete(&secret, &DeleteParams::default())
            .await
            .is_ok()
        {
            deleted.push(format!("secret/{secret}"));
        }
        let tf_lock = format!("lock-{secret}");
        if self
            .api::<Lease>()
            .delete(&tf_lock, &DeleteParams::default())
            .await
            .is_ok()
        {
            deleted.push(format!("lease/{tf_lock}"));
        }
        let owned =
            ListParams::default().labels(&format!("{CLUSTER}={cluster},{MANAGED_BY}={MANAGER}"));
        let background = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        for job in self.api::<Job>().list(&owned).await?.items {
            let name = job.metadata.name.unwrap_or_default();
            self.api::<Job>().delete(&name, &background).await?;
            deleted.push(format!("job/{name}"));
        }
        for cm in self.api::<ConfigMap>().list(&owned).await?.items {
            let name = cm.metadata.name.unwrap_or_default();
            self.api::<ConfigMap>()
                .delete(&name, &DeleteParams::default())
                .await?;
            deleted.push(format!("configmap/{name}"));
        }
        let lock = lock_name(cluster);
        self.api::<Lease>()
            .delete(&lock, &DeleteParams::default())
            .await?;
        deleted.push(format!("lease/{lock}"));
        tracing::info!(cluster, objects = deleted.len(), "cluster cleaned up");
        Ok(deleted)
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
