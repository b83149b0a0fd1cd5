//! The pods that exist, for IP target GC: a kube-rs watcher over every Pod with a
//! reflector cache that keeps only each pod's identity, phase and IPs (the transform
//! drops the spec, the rest of the status and the metadata berth does not read), so
//! the cache stays small on large clusters.

use berth_core::plan::{LivePods, PodIdentity};
use futures::stream::BoxStream;
use futures::{future, StreamExt};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};

use crate::Error;

/// The watcher's cache of pods.
#[derive(Clone)]
pub struct PodCache {
    store: Store<Pod>,
}

impl PodCache {
    /// The pods that still run: a pod in phase `Succeeded` or `Failed` has stopped
    /// for good (its IP is free again) and does not count.
    pub fn live(&self) -> LivePods {
        let mut live = LivePods::default();
        for pod in self.store.state() {
            if is_finished(&pod) {
                continue;
            }
            if let Some(uid) = &pod.metadata.uid {
                live.uids.insert(uid.clone());
            }
            if let Some(status) = &pod.status {
                live.ips.extend(status.pod_ip.iter().cloned());
                live.ips
                    .extend(status.pod_ips.iter().flatten().map(|ip| ip.ip.clone()));
            }
        }
        live
    }

    /// How many pods are cached.
    pub fn len(&self) -> usize {
        self.store.state().len()
    }

    /// Whether no pod is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until the first full listing has been received (the stream must be polled
    /// meanwhile). Fails only if the stream was dropped before that.
    pub async fn wait_until_ready(&self) -> Result<(), Error> {
        self.store
            .wait_until_ready()
            .await
            .map_err(|_| Error::Invalid("the pod watch stopped before its first listing".into()))
    }
}

/// Whether `pod` still runs, asked of the API server rather than the cache (which a
/// stuck watch could leave stale): it exists under its name with the same UID and has
/// not finished. What IP target GC checks before it deregisters anything.
pub async fn still_running(client: Client, pod: &PodIdentity) -> Result<bool, Error> {
    let api: Api<Pod> = Api::namespaced(client, &pod.namespace);
    let found = api
        .get_opt(&pod.name)
        .await
        .map_err(|e| Error::kube(format!("get Pod {}/{}", pod.namespace, pod.name), e))?;
    Ok(found
        .is_some_and(|p| p.metadata.uid.as_deref() == Some(pod.uid.as_str()) && !is_finished(&p)))
}

fn is_finished(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed")
}

/// Keeps what [`PodCache::live`] reads and drops the rest.
fn keep_identity(pod: &mut Pod) {
    let meta = std::mem::take(&mut pod.metadata);
    pod.metadata = ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        ..ObjectMeta::default()
    };
    pod.spec = None;
    pod.status = pod.status.take().map(|s| PodStatus {
        phase: s.phase,
        pod_ip: s.pod_ip,
        pod_ips: s.pod_ips,
        ..PodStatus::default()
    });
}

/// What the pod watch saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodChange {
    /// A pod was added or changed.
    Applied,
    /// A pod was deleted (or stopped for good).
    Gone,
    /// The watch (re)started from a full listing.
    Synced,
}

/// Starts watching every pod. The stream must be polled for the cache to fill; it never
/// ends by itself: after an error (yielded as `Err`) the watcher backs off and re-lists.
pub fn watch_pods(client: Client) -> (PodCache, BoxStream<'static, Result<PodChange, Error>>) {
    let api: Api<Pod> = Api::all(client);
    let (store, writer) = reflector::store();
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(keep_identity);
    let changes = reflector::reflector(writer, events)
        .filter_map(|event| {
            future::ready(match event {
                Err(e) => Some(Err(Error::Watch(e))),
                Ok(watcher::Event::Apply(p)) if is_finished(&p) => Some(Ok(PodChange::Gone)),
                Ok(watcher::Event::Apply(_)) => Some(Ok(PodChange::Applied)),
                Ok(watcher::Event::Delete(_)) => Some(Ok(PodChange::Gone)),
                Ok(watcher::Event::InitDone) => Some(Ok(PodChange::Synced)),
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => None,
            })
        })
        .boxed();
    (PodCache { store }, changes)
}
