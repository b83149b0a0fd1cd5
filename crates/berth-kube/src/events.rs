//! Kubernetes Events on Nodes, so `kubectl describe node` shows what berth did (and,
//! for IP target GC, on the Pods whose targets were collected).

pub use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder, Reporter};
use kube::Client;

use crate::Error;

pub use kube::runtime::events::EventType;

/// Publishes Events about Nodes (`events.k8s.io/v1`, in the `default` namespace as
/// for every cluster-scoped object; RBAC: `create` and `patch` on `events` in API
/// group `events.k8s.io`). Repeats of the same reason on the same node within a few
/// minutes are folded into one Event with a count, as kube-rs' recorder does.
pub struct EventRecorder {
    recorder: Recorder,
}

impl EventRecorder {
    /// A recorder reporting as `controller` (e.g. `berth-daemon`); `instance` names
    /// this replica (the pod name), defaulting to the controller.
    pub fn new(client: Client, controller: impl Into<String>, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: controller.into(),
            instance,
        };
        EventRecorder {
            recorder: Recorder::new(client, reporter),
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
        let event = Event {
            type_: event_type,
            reason: truncate(reason, 128),
            note: Some(truncate(message, 1024)),
            action: truncate(action, 128),
            secondary: None,
        };
        self.recorder.publish(&event, object).await.map_err(|e| {
            let kind = object.kind.as_deref().unwrap_or("object");
            let name = object.name.as_deref().unwrap_or_default();
            Error::kube(format!("create Event for {kind} {name}"), e)
        })
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
