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

/// Drops from an API Node everything [`node_from_k8s`] does not read, so a cache of
/// thousands of nodes holds a few hundred bytes of each rather than its whole object
/// (an EKS node is ~10 KB of JSON, mostly managed fields, images and status). Kept:
/// the name, labels, `spec.providerID`, `spec.taints`, `spec.unschedulable` and the
/// Ready condition's `status` and `lastTransitionTime`; everything else — annotations,
/// managed fields, owner references, addresses, capacity, images, node info, the other
/// conditions, the condition's reason, message and heartbeat — is dropped.
/// `node_from_k8s` gives the same [`Node`] for the slim object as for the whole one.
pub fn slim_node(node: &mut core::Node) {
    let metadata = std::mem::take(&mut node.metadata);
    node.metadata.name = metadata.name;
    node.metadata.labels = metadata.labels;
    node.spec = node.spec.take().map(|spec| core::NodeSpec {
        provider_id: spec.provider_id,
        taints: spec.taints,
        unschedulable: spec.unschedulable,
        ..core::NodeSpec::default()
    });
    let ready = node
        .status
        .take()
        .and_then(|s| s.conditions)
        .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"));
    node.status = ready.map(|ready| core::NodeStatus {
        conditions: Some(vec![core::NodeCondition {
            type_: ready.type_,
            status: ready.status,
            last_transition_time: ready.last_transition_time,
            ..core::NodeCondition::default()
        }]),
        ..core::NodeStatus::default()
    });
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

    /// An EKS node as the API serves it: every field berth reads, and the bulk it does not.
    fn rich_node() -> core::Node {
        api_node(serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": "ip-10-0-0-1.eu-west-1.compute.internal",
                "uid": "0b8f5c1e-0000-4000-8000-000000000001",
                "resourceVersion": "12345",
                "creationTimestamp": "2024-05-01T09:58:00Z",
                "labels": {"kubernetes.io/hostname": "ip-10-0-0-1", "node-role/web": "true",
                    "provisioner.cast.ai/node-configuration-id": "cfg-1",
                    "node.kubernetes.io/exclude-from-external-load-balancers": "false"},
                "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                    "csi.volume.kubernetes.io/nodeid": "{\"ebs.csi.aws.com\":\"i-0abc123\"}"},
                "finalizers": ["example.com/keep"],
                "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:images": {}}}}]
            },
            "spec": {
                "providerID": "aws:///eu-west-1a/i-0abc123",
                "podCIDR": "10.1.0.0/24",
                "unschedulable": true,
                "taints": [
                    {"key": "karpenter.sh/disrupted", "effect": "NoSchedule"},
                    {"key": "aws-node-termination-handler/spot-itn", "value": "x", "effect": "NoExecute",
                     "timeAdded": "2024-05-01T10:05:00Z"}
                ]
            },
            "status": {
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                "capacity": {"cpu": "4", "memory": "16084236Ki", "pods": "58"},
                "allocatable": {"cpu": "3920m", "memory": "15136012Ki", "pods": "58"},
                "conditions": [
                    {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                     "lastTransitionTime": "2024-05-01T10:00:00Z"},
                    {"type": "Ready", "status": "True", "reason": "KubeletReady",
                     "message": "kubelet is posting ready status",
                     "lastHeartbeatTime": "2024-05-01T11:00:00Z",
                     "lastTransitionTime": "2024-05-01T10:00:00Z"}
                ],
                "images": [{"names": ["registry/eks/pause:3.9"], "sizeBytes": 299_514}],
                "nodeInfo": {"architecture": "amd64", "bootID": "b", "containerRuntimeVersion": "containerd://1.7.11",
                    "kernelVersion": "5.10", "kubeProxyVersion": "v1.29.0", "kubeletVersion": "v1.29.0",
                    "machineID": "m", "operatingSystem": "linux", "osImage": "Amazon Linux 2", "systemUUID": "s"},
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}
            }
        }))
    }

    #[test]
    fn a_slim_node_decides_as_the_whole_node() {
        let whole = rich_node();
        let mut slim = whole.clone();
        slim_node(&mut slim);
        assert_eq!(node_from_k8s(&slim), node_from_k8s(&whole));
        assert!(node_from_k8s(&slim).ready && node_from_k8s(&slim).unschedulable);
        assert_eq!(node_from_k8s(&slim).taints.len(), 2);

        // The same for a NotReady node, one without a Ready condition, and a bare one.
        let mut not_ready = whole.clone();
        let conditions = not_ready
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap();
        conditions[1].status = "False".into();
        let mut no_ready = whole.clone();
        no_ready
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
            .truncate(1);
        let bare = api_node(serde_json::json!({"metadata": {"name": "n"}}));
        for node in [not_ready, no_ready, bare] {
            let mut slim = node.clone();
            slim_node(&mut slim);
            assert_eq!(node_from_k8s(&slim), node_from_k8s(&node));
        }
    }

    #[test]
    fn a_slim_node_keeps_nothing_the_decision_does_not_read() {
        let mut slim = rich_node();
        slim_node(&mut slim);
        let json = serde_json::to_value(&slim).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {
                    "name": "ip-10-0-0-1.eu-west-1.compute.internal",
                    "labels": {"kubernetes.io/hostname": "ip-10-0-0-1", "node-role/web": "true",
                        "provisioner.cast.ai/node-configuration-id": "cfg-1",
                        "node.kubernetes.io/exclude-from-external-load-balancers": "false"}
                },
                "spec": {
                    "providerID": "aws:///eu-west-1a/i-0abc123",
                    "unschedulable": true,
                    "taints": [
                        {"key": "karpenter.sh/disrupted", "effect": "NoSchedule"},
                        {"key": "aws-node-termination-handler/spot-itn", "value": "x", "effect": "NoExecute",
                         "timeAdded": "2024-05-01T10:05:00Z"}
                    ]
                },
                "status": {"conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-01T10:00:00Z"}
                ]}
            })
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
