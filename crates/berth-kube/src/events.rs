//! Kubernetes Events on Nodes, so `kubectl describe node` shows what berth did (and,
//! for IP target GC, on the Pods whose targets were collected).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;

use crate::Error;

pub use kube::runtime::events::EventType;

/// How long a repeat is folded into the Event it repeats (kube-rs' recorder's window).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// Publishes Events about Nodes (`events.k8s.io/v1`, in the `default` namespace as
/// for every cluster-scoped object; RBAC: `create` and `patch` on `events` in API
/// group `events.k8s.io`). Repeats of the same reason and action on the same object
/// within six minutes are folded into one Event with a series count, as kube-rs'
/// recorder does.
///
/// kube-rs' `Recorder` keeps a clone of every Event it published for that window:
/// after a 5,000-node convergence that was ~13.5 MiB of the daemon's heap (5,000
/// `Registered` Events, docs/benchmarks.md). This one keeps, per recent Event, only
/// what folding needs: its key, name, namespace, count and time.
pub struct EventRecorder {
    client: Client,
    controller: String,
    instance: String,
    recent: Mutex<HashMap<String, Recent>>,
}

/// What is kept of a published Event while repeats may fold into it.
struct Recent {
    namespace: String,
    name: String,
    count: i32,
    last: Instant,
}

impl EventRecorder {
    /// A recorder reporting as `controller` (e.g. `berth-daemon`); `instance` names
    /// this replica (the pod name), defaulting to the controller.
    pub fn new(client: Client, controller: impl Into<String>, instance: Option<String>) -> Self {
        let controller = controller.into();
        EventRecorder {
            client,
            instance: instance.unwrap_or_else(|| controller.clone()),
            controller,
            recent: Mutex::default(),
        }
    }

    /// Publishes one Event about node `node_name`. `reason` is short PascalCase
    /// (`Registered`), `action` what berth did (`RegisterTargets`), `message` the
    /// human-readable detail (at most 1 kB; longer text is cut).
    pub async fn publish(
        &self,
        node_name: &str,
        event_type: EventType,
        reason: &str,
        action: &str,
        message: &str,
    ) -> Result<(), Error> {
        self.publish_about(
            &node_reference(node_name),
            event_type,
            reason,
            action,
            message,
        )
        .await
    }

    /// Publishes one Event about any object (e.g. a Pod, in its namespace: RBAC
    /// `create` on `events` there too).
    pub async fn publish_about(
        &self,
        object: &ObjectReference,
        event_type: EventType,
        reason: &str,
        action: &str,
        message: &str,
    ) -> Result<(), Error> {
        let type_ = match event_type {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        };
        let (reason, action) = (truncate(reason, 128), truncate(action, 128));
        let key = [
            type_,
            &reason,
            &action,
            object.kind.as_deref().unwrap_or_default(),
            object.namespace.as_deref().unwrap_or_default(),
            object.name.as_deref().unwrap_or_default(),
            object.uid.as_deref().unwrap_or_default(),
        ]
        .join("\u{1f}");
        let context = || {
            let kind = object.kind.as_deref().unwrap_or("object");
            let name = object.name.as_deref().unwrap_or_default();
            format!("create Event for {kind} {name}")
        };
        let now = Instant::now();
        if let Some((namespace, name, count)) = self.repeat_of(&key, now) {
            match self.fold(&namespace, &name, count).await {
                Ok(()) => {
                    self.remember(
                        key,
                        Recent {
                            namespace,
                            name,
                            count,
                            last: now,
                        },
                    );
                    return Ok(());
                }
                // Expired or deleted meanwhile: a new Event starts a new series.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(Error::kube(context(), e)),
            }
        }
        let namespace = object
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let stamp = Timestamp::now();
        let name = format!(
            "{}.{:x}",
            object.name.as_deref().unwrap_or(&self.controller),
            stamp.as_nanosecond()
        );
        let event = Event {
            action: Some(action),
            reason: Some(reason),
            event_time: Some(MicroTime(stamp)),
            regarding: Some(object.clone()),
            note: Some(truncate(message, 1024)),
            metadata: ObjectMeta {
                namespace: Some(namespace.clone()),
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(type_.to_owned()),
            ..Event::default()
        };
        Api::<Event>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await
            .map_err(|e| Error::kube(context(), e))?;
        self.remember(
            key,
            Recent {
                namespace,
                name,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }

    /// The Event `key` would fold into and its next count; forgets what has aged out.
    fn repeat_of(&self, key: &str, now: Instant) -> Option<(String, String, i32)> {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.retain(|_, r| now.duration_since(r.last) < SERIES_WINDOW);
        recent.get(key).map(|r| {
            (
                r.namespace.clone(),
                r.name.clone(),
                r.count.saturating_add(1),
            )
        })
    }

    fn remember(&self, key: String, entry: Recent) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent.insert(key, entry);
    }

    /// Counts a repeat on the Event it folds into (`series`, as kube-rs does).
    async fn fold(&self, namespace: &str, name: &str, count: i32) -> Result<(), kube::Error> {
        let patch = serde_json::json!({
            "series": { "count": count, "lastObservedTime": MicroTime(Timestamp::now()) }
        });
        Api::<Event>::namespaced(self.client.clone(), namespace)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
    }

    /// How many Events may still fold repeats (what this recorder holds in memory).
    pub fn recent(&self) -> usize {
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A reference to a Node. The uid is the node name, as the kubelet sets it, which is
/// what `kubectl describe node` selects events by.
pub fn node_reference(node_name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(node_name.into()),
        uid: Some(node_name.into()),
        ..ObjectReference::default()
    }
}

/// A reference to a Pod (its Events go to its namespace; `kubectl get events` lists
/// them even once the pod is gone).
pub fn pod_reference(namespace: &str, name: &str, uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        uid: Some(uid.into()),
        ..ObjectReference::default()
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate(&"x".repeat(2000), 1024).len(), 1024);
    }
}
