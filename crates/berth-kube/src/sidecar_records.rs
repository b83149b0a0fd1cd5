//! berth-sidecar's registration records: one ConfigMap per pod, in the pod's namespace,
//! named after the pod's UID and annotated with the pod's identity, holding (like every
//! berth ownership ConfigMap, see [`crate::ownership`]) the targets it registered per
//! group. The sidecar writes it before `RegisterTargets` and deletes it once its last
//! target is deregistered; the cluster-mode daemon lists them (label
//! [`RECORD_LABEL`]) to collect the targets of pods that died without deregistering.
//!
//! Why a ConfigMap in the pod's namespace: the sidecar already runs with a
//! ServiceAccount there (a namespaced Role suffices, no cluster-wide write), the
//! record lives and dies with the namespace, and the store is the same
//! compare-and-swap one the daemon uses, so nothing new is trusted. No ownerReference
//! to the pod: Kubernetes would delete the record with the pod, before GC reads it.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use berth_core::domain::Owner;
use berth_core::plan::{PodIdentity, SidecarRecord};
use berth_core::provider::{OwnedTargets, SidecarRecords, TargetOwnership};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ListParams;
use kube::{Api, Client};

use crate::ownership::{decode_group, ConfigMapOwnership, OWNER_ANNOTATION};
use crate::Error;

/// The label of every sidecar registration record.
pub const RECORD_LABEL: (&str, &str) = ("berth.dev/record", "sidecar-registration");
/// The annotation holding the pod's name.
pub const POD_NAME_ANNOTATION: &str = "berth.dev/pod-name";
/// The annotation holding the pod's namespace.
pub const POD_NAMESPACE_ANNOTATION: &str = "berth.dev/pod-namespace";
/// The annotation holding the pod's UID.
pub const POD_UID_ANNOTATION: &str = "berth.dev/pod-uid";

/// `berth-sidecar-<uid>`: one record per pod life (a recreated pod with the same name
/// has another UID, so another record).
pub fn record_name(uid: &str) -> String {
    let uid: String = uid
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(200)
        .collect();
    format!("berth-sidecar-{uid}")
}

/// The record store of `pod`, for its sidecar: a [`ConfigMapOwnership`] of `owner`
/// (`berth/<installation>/sidecar`) in the pod's namespace, created with the pod's
/// identity and deleted once empty (RBAC: `get`, `create`, `update`, `delete` on
/// `configmaps` in the pod's namespace).
pub fn record_store(client: Client, pod: &PodIdentity, owner: Owner) -> ConfigMapOwnership {
    let annotations = BTreeMap::from([
        (POD_NAMESPACE_ANNOTATION.to_owned(), pod.namespace.clone()),
        (POD_NAME_ANNOTATION.to_owned(), pod.name.clone()),
        (POD_UID_ANNOTATION.to_owned(), pod.uid.clone()),
    ]);
    let labels = BTreeMap::from([(RECORD_LABEL.0.to_owned(), RECORD_LABEL.1.to_owned())]);
    ConfigMapOwnership::with_name(client, &pod.namespace, &record_name(&pod.uid), owner)
        .labelled(labels, annotations)
        .deleting_when_empty()
}

/// The store of an existing record, by its [`SidecarRecord::key`] (`namespace/name`),
/// for GC to release targets from (and delete it once empty).
pub fn record_store_by_key(client: Client, key: &str, owner: Owner) -> ConfigMapOwnership {
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    ConfigMapOwnership::with_name(client, namespace, name, owner).deleting_when_empty()
}

/// Every sidecar registration record of `owner`, in every namespace (RBAC: `list`
/// on `configmaps` cluster-wide). A record of another owner is left out; one that
/// cannot be read is logged and left out (GC never acts on what it cannot read).
pub async fn list_records(client: Client, owner: &Owner) -> Result<Vec<SidecarRecord>, Error> {
    let api: Api<ConfigMap> = Api::all(client);
    let selector = format!("{}={}", RECORD_LABEL.0, RECORD_LABEL.1);
    let maps = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| Error::kube("list sidecar registration ConfigMaps", e))?;
    let mut records = Vec::new();
    for map in maps {
        let annotations = map.metadata.annotations.clone().unwrap_or_default();
        if annotations.get(OWNER_ANNOTATION).map(String::as_str) != Some(owner.as_str()) {
            continue;
        }
        let key = format!(
            "{}/{}",
            map.metadata.namespace.as_deref().unwrap_or_default(),
            map.metadata.name.as_deref().unwrap_or_default()
        );
        match parse_record(&key, &annotations, map.data.unwrap_or_default()) {
            Ok(record) => records.push(record),
            Err(e) => {
                tracing::warn!(record = %key, error = %e, "unreadable sidecar registration record; left alone")
            }
        }
    }
    Ok(records)
}

/// [`SidecarRecords`] over the Kubernetes API: the records of `owner` in every
/// namespace, and the Pods they name (RBAC: `configmaps` list/get/update/delete and
/// `pods` get, cluster-wide).
pub struct KubeSidecarRecords {
    client: Client,
    owner: Owner,
}

impl KubeSidecarRecords {
    /// The records of `owner` (`berth/<installation>/sidecar`).
    pub fn new(client: Client, owner: Owner) -> Self {
        KubeSidecarRecords { client, owner }
    }
}

#[async_trait]
impl SidecarRecords for KubeSidecarRecords {
    async fn list(&self) -> berth_core::Result<Vec<SidecarRecord>> {
        Ok(list_records(self.client.clone(), &self.owner).await?)
    }

    fn store(&self, record: &SidecarRecord) -> Arc<dyn TargetOwnership> {
        Arc::new(record_store_by_key(
            self.client.clone(),
            &record.key,
            self.owner.clone(),
        ))
    }

    async fn delete_if_empty(&self, record: &SidecarRecord) -> berth_core::Result<()> {
        record_store_by_key(self.client.clone(), &record.key, self.owner.clone())
            .delete_if_empty()
            .await?;
        Ok(())
    }

    async fn still_running(&self, pod: &PodIdentity) -> berth_core::Result<bool> {
        Ok(crate::pods::still_running(self.client.clone(), pod).await?)
    }
}

fn parse_record(
    key: &str,
    annotations: &BTreeMap<String, String>,
    data: BTreeMap<String, String>,
) -> Result<SidecarRecord, Error> {
    let field = |name: &str| {
        annotations
            .get(name)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("record {key} has no {name} annotation")))
    };
    let pod = PodIdentity {
        namespace: field(POD_NAMESPACE_ANNOTATION)?,
        name: field(POD_NAME_ANNOTATION)?,
        uid: field(POD_UID_ANNOTATION)?,
    };
    let mut targets = OwnedTargets::new();
    for (group, text) in data {
        let set = berth_core::provider::decode_targets(&text)
            .map_err(|e| Error::Invalid(format!("record {key}: {e}")))?;
        if !set.is_empty() {
            targets.insert(decode_group(&group)?, set);
        }
    }
    Ok(SidecarRecord {
        key: key.to_owned(),
        pod,
        targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_are_per_uid_and_valid() {
        assert_eq!(
            record_name("0F8B-12_aa"),
            "berth-sidecar-0f8b-12-aa".to_owned()
        );
        assert!(record_name(&"x".repeat(500)).len() <= 253);
    }

    #[test]
    fn records_need_the_pod_identity() {
        let annotations = BTreeMap::from([
            (POD_NAMESPACE_ANNOTATION.to_owned(), "web".to_owned()),
            (POD_NAME_ANNOTATION.to_owned(), "web-0".to_owned()),
        ]);
        assert!(parse_record("web/x", &annotations, BTreeMap::new()).is_err());
        let mut annotations = annotations;
        annotations.insert(POD_UID_ANNOTATION.to_owned(), "u1".to_owned());
        let data = BTreeMap::from([(
            "arn_aws_elasticloadbalancing_us-east-1_123456789012_targetgroup.tg.0123".to_owned(),
            "10.0.0.1:80".to_owned(),
        )]);
        let record = parse_record("web/x", &annotations, data).unwrap();
        assert_eq!(record.pod.uid, "u1");
        assert_eq!(record.targets.values().next().unwrap().len(), 1);
    }
}
