//! One live run per cluster: the Lease `berth-lock-<cluster>` names the run holding
//! it. It is created, or taken over by a replace conditioned on its resourceVersion
//! when its run is over (core's `lock_decision`); a conflict means another request won
//! the race and the decision is made again. Terraform's own lock (its backend's Lease)
//! is never touched while a Job may be running.

use std::time::Duration;

use berth_core::plan::runs::{lock_decision, LockDecision, LockHolder};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::PostParams;

use super::{owned_meta, Result, Store, StoreError};

pub(super) fn lock_name(cluster: &str) -> String {
    format!("berth-lock-{cluster}")
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl Store {
    /// Takes the cluster's lock for `holder`, or answers who holds it.
    pub(crate) async fn acquire_lock(&self, cluster: &str, holder: &str) -> Result<()> {
        let api = self.api::<Lease>();
        let name = lock_name(cluster);
        for _ in 0..5 {
            let now = k8s_openapi::jiff::Timestamp::now();
            let mut lease = Lease {
                metadata: owned_meta(&name, cluster, "lock"),
                spec: Some(LeaseSpec {
                    holder_identity: Some(holder.to_owned()),
                    acquire_time: Some(MicroTime(now)),
                    ..Default::default()
                }),
            };
            let current = api.get_opt(&name).await?;
            let observed = match &current {
                None => None,
                Some(current) => {
                    let spec = current.spec.clone().unwrap_or_default();
                    match spec.holder_identity {
                        None => None,
                        Some(run) => {
                            let held_for = spec
                                .acquire_time
                                .and_then(|t| Duration::try_from(now.duration_since(t.0)).ok())
                                .unwrap_or(Duration::MAX);
                            Some((
                                run.clone(),
                                LockHolder {
                                    job: self.job_outcome(&run).await?,
                                    held_for,
                                },
                            ))
                        }
                    }
                }
            };
            let decision = match (&current, &observed) {
                (None, _) => LockDecision::Create,
                (Some(_), None) => LockDecision::TakeOver,
                (Some(_), Some((_, holder))) => lock_decision(Some(*holder)),
            };
            let result = match decision {
                LockDecision::Held => {
                    let run = observed.map(|(run, _)| run).unwrap_or_default();
                    return Err(StoreError::Held(run));
                }
                LockDecision::Create => api.create(&PostParams::default(), &lease).await,
                LockDecision::TakeOver => {
                    lease.metadata.resource_version =
                        current.and_then(|c| c.metadata.resource_version);
                    api.replace(&name, &PostParams::default(), &lease).await
                }
            };
            match result {
                Ok(_) => return Ok(()),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict(format!(
            "the lock of cluster {cluster} kept changing; try again"
        )))
    }

    /// Gives the lock back if `holder` still holds it (a run that never started).
    pub(crate) async fn release_lock(&self, cluster: &str, holder: &str) {
        let api = self.api::<Lease>();
        let name = lock_name(cluster);
        if let Ok(Some(lease)) = api.get_opt(&name).await {
            let held_by = lease.spec.and_then(|s| s.holder_identity);
            if held_by.as_deref() == Some(holder) {
                let params = kube::api::DeleteParams {
                    preconditions: Some(kube::api::Preconditions {
                        resource_version: lease.metadata.resource_version,
                        uid: None,
                    }),
                    ..Default::default()
                };
                if let Err(e) = api.delete(&name, &params).await {
                    tracing::warn!(cluster, error = %e, "cannot release the cluster's lock");
                }
            }
        }
    }
}
