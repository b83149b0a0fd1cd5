//! A `core/v1` Node as berth-core's plain [`Node`].

use std::time::{Duration, SystemTime};

use berth_core::domain::{InstanceId, Node, Taint, TaintEffect};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::jiff::Timestamp;

/// Converts an API Node. Nothing here fails: a provider id that is not AWS's leaves
/// `instance_id` empty, a taint with an unknown effect is kept as `NoSchedule` (it
/// still names a key the rules may look for), and a missing or `Unknown` Ready
/// condition reads as not ready.
pub fn node_from_k8s(node: &core::Node) -> Node {
    let spec = node.spec.as_ref();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    Node {
        name: node.metadata.name.clone().unwrap_or_default(),
        instance_id: spec
            .and_then(|s| s.provider_id.as_deref())
            .and_then(|p| InstanceId::from_provider_id(p).ok()),
        labels: node.metadata.labels.clone().unwrap_or_default(),
        taints: spec
            .and_then(|s| s.taints.as_ref())
            .map(|taints| {
                taints
                    .iter()
                    .map(|t| Taint {
                        key: t.key.clone(),
                        value: t.value.clone().filter(|v| !v.is_empty()),
                        effect: TaintEffect::parse(&t.effect).unwrap_or(TaintEffect::NoSchedule),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        ready: ready.is_some_and(|c| c.status == "True"),
        ready_since: ready
            .and_then(|c| c.last_transition_time.as_ref())
            .and_then(|t| system_time(t.0)),
    }
}

fn system_time(ts: Timestamp) -> Option<SystemTime> {
    let nanos = u64::try_from(ts.as_nanosecond()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_node(json: serde_json::Value) -> core::Node {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn converts_a_ready_cordoned_tainted_node() {
        let node = api_node(serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "ip-10-0-0-1", "labels": {"provisioner.cast.ai/node-configuration-id": "cfg-1"}},
            "spec": {
                "providerID": "aws:///eu-west-1a/i-0abc123",
                "unschedulable": true,
                "taints": [
                    {"key": "karpenter.sh/disrupted", "effect": "NoSchedule"},
                    {"key": "aws-node-termination-handler/spot-itn", "value": "x", "effect": "NoExecute"}
                ]
            },
            "status": {"conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-01T10:00:00Z"}
            ]}
        }));
        let n = node_from_k8s(&node);
        assert_eq!(n.name, "ip-10-0-0-1");
        assert_eq!(n.instance_id.as_ref().unwrap().as_str(), "i-0abc123");
        assert_eq!(
            n.label("provisioner.cast.ai/node-configuration-id"),
            Some("cfg-1")
        );
        assert!(n.unschedulable);
        assert!(n.ready);
        assert_eq!(
            n.ready_since,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_557_600))
        );
        assert_eq!(
            n.taints,
            vec![
                Taint::new("karpenter.sh/disrupted", TaintEffect::NoSchedule),
                Taint {
                    key: "aws-node-termination-handler/spot-itn".into(),
                    value: Some("x".into()),
                    effect: TaintEffect::NoExecute
                },
            ]
        );
    }

    #[test]
    fn bare_node_is_not_ready_and_has_no_instance() {
        let n = node_from_k8s(&api_node(
            serde_json::json!({"metadata": {"name": "n"}, "spec": {"providerID": "kind://docker/kind/n"}}),
        ));
        assert_eq!(n.name, "n");
        assert_eq!(n.instance_id, None);
        assert!(!n.ready);
        assert_eq!(n.ready_since, None);
        assert!(!n.unschedulable);
        assert!(n.taints.is_empty());

        let unknown = node_from_k8s(&api_node(serde_json::json!({
            "metadata": {"name": "n"},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown", "lastTransitionTime": "2024-05-01T10:00:00Z"}]}
        })));
        assert!(!unknown.ready);
        assert!(unknown.ready_since.is_some());
    }
}
