//! Registration records: with the pod's identity from the Downward API (`POD_NAME`,
//! `POD_NAMESPACE`, `POD_UID`), the sidecar records each registration in a ConfigMap
//! of its pod's namespace (berth-kube's `sidecar_records`) before `RegisterTargets`,
//! and the record is deleted once its last target is deregistered. A sidecar killed
//! in between leaves the record, from which berth-daemon `--gc-ip-targets` removes the
//! IP once the pod is gone.
//!
//! The records go through the engine's ownership store: the claim is written before
//! the registration (a failure to record stops the registration, so an IP is never
//! registered unrecorded), the release after the deregistration.

use std::sync::Arc;

use anyhow::Context as _;
use berth_core::domain::{InstallationId, Mode, Owner};
use berth_core::plan::PodIdentity;
use berth_core::provider::TargetOwnership;

/// The Downward API variables that identify the pod.
pub(crate) const POD_VARIABLES: [&str; 3] = ["POD_NAMESPACE", "POD_NAME", "POD_UID"];

/// Whether and for which pod to record, from `--record-registration` and the
/// environment (`env`): unset, recording is on when every pod variable is set; on,
/// every one of them must be.
pub(crate) fn pod_identity(
    flag: Option<bool>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<PodIdentity>, String> {
    let values: Vec<Option<String>> = POD_VARIABLES
        .iter()
        .map(|name| {
            env(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        })
        .collect();
    let all = values.iter().all(Option::is_some);
    match flag {
        Some(false) => return Ok(None),
        None if !all => return Ok(None),
        Some(true) if !all => {
            let missing: Vec<&str> = POD_VARIABLES
                .iter()
                .zip(&values)
                .filter(|(_, v)| v.is_none())
                .map(|(n, _)| *n)
                .collect();
            return Err(format!(
                "error: --record-registration needs {} (set them from the Downward API: \
                 metadata.namespace, metadata.name, metadata.uid)",
                missing.join(", ")
            ));
        }
        _ => {}
    }
    let mut values = values.into_iter().flatten();
    let mut next = || values.next().unwrap_or_default();
    Ok(Some(PodIdentity {
        namespace: next(),
        name: next(),
        uid: next(),
    }))
}

/// The record store of `pod`, over the in-cluster (or `KUBECONFIG`) Kubernetes
/// client.
pub(crate) async fn store(
    pod: &PodIdentity,
    installation: &InstallationId,
) -> anyhow::Result<Arc<dyn TargetOwnership>> {
    let client = kube::Client::try_default().await.context(
        "recording registrations needs the Kubernetes API (in-cluster, or KUBECONFIG); \
         or pass --record-registration=false",
    )?;
    let owner = Owner::for_installation(installation, Mode::Sidecar);
    let store = berth_kube::sidecar_records::record_store(client, pod, owner);
    tracing::info!(
        namespace = %pod.namespace,
        config_map = store.name(),
        pod = %pod,
        "recording registrations"
    );
    Ok(Arc::new(store))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    const ALL: [(&str, &str); 3] = [
        ("POD_NAMESPACE", "web"),
        ("POD_NAME", "web-0"),
        ("POD_UID", "1234-abcd"),
    ];

    #[test]
    fn recording_follows_the_pod_variables_unless_the_flag_says_otherwise() {
        let pod = pod_identity(None, env(&ALL)).unwrap().unwrap();
        assert_eq!(
            (pod.namespace.as_str(), pod.name.as_str(), pod.uid.as_str()),
            ("web", "web-0", "1234-abcd")
        );
        assert_eq!(pod_identity(Some(false), env(&ALL)), Ok(None));
        // The Go sidecar's drop-in environment (POD_IP only): nothing recorded.
        assert_eq!(pod_identity(None, env(&ALL[..2])), Ok(None));
        let err = pod_identity(Some(true), env(&ALL[..2])).unwrap_err();
        assert!(
            err.contains("POD_UID") && !err.contains("POD_NAME,"),
            "{err}"
        );
        assert_eq!(pod_identity(None, env(&[("POD_UID", " ")])), Ok(None));
    }
}
