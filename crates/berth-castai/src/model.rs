//! The node configuration document, as Cast.ai serves it, reduced to target groups.

use std::collections::BTreeSet;

use berth_core::domain::{TargetGroupArn, TargetGroupRef};
use berth_core::provider::GroupBinding;
use serde::Deserialize;

/// The node label carrying a node's Cast.ai node configuration id.
pub const NODE_CONFIGURATION_LABEL: &str = "provisioner.cast.ai/node-configuration-id";

/// A node configuration's id, name and target groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfiguration {
    /// The configuration id.
    pub id: String,
    /// Its name, when Cast.ai sends one.
    pub name: Option<String>,
    /// `eks.targetGroups` and the legacy `eks.targetGroup`, united, deduplicated, sorted.
    pub target_groups: Vec<GroupBinding>,
}

#[derive(Deserialize)]
struct ApiNodeConfiguration {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    eks: Option<ApiEks>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiEks {
    #[serde(default)]
    target_groups: Option<Vec<ApiTargetGroup>>,
    /// The legacy single group, still sent by older configurations.
    #[serde(default)]
    target_group: Option<ApiTargetGroup>,
}

#[derive(Deserialize)]
struct ApiTargetGroup {
    #[serde(default)]
    arn: Option<String>,
    #[serde(default)]
    port: Option<serde_json::Value>,
}

/// Parses a `GET .../node-configurations/{id}` body. `id` is the id asked for (used
/// when the body carries none). A group entry without an ARN is ignored (Cast.ai sends
/// `{"arn": ""}` for an unset legacy group); a malformed ARN or port fails the whole
/// document with [`berth_core::Error::Invalid`] rather than silently dropping a group.
pub fn parse_node_configuration(id: &str, body: &[u8]) -> berth_core::Result<NodeConfiguration> {
    let doc: ApiNodeConfiguration = serde_json::from_slice(body).map_err(|e| {
        berth_core::Error::invalid(format!(
            "Cast.ai node configuration {id} is not the expected JSON: {e}"
        ))
    })?;
    let mut groups = BTreeSet::new();
    if let Some(eks) = doc.eks {
        let entries = eks
            .target_groups
            .unwrap_or_default()
            .into_iter()
            .chain(eks.target_group);
        for entry in entries {
            let Some(arn) = entry
                .arn
                .as_deref()
                .map(str::trim)
                .filter(|a| !a.is_empty())
            else {
                continue;
            };
            let arn = TargetGroupArn::new(arn).map_err(|e| {
                berth_core::Error::invalid(format!("Cast.ai node configuration {id}: {e}"))
            })?;
            let port = parse_port(id, entry.port.as_ref())?;
            groups.insert(GroupBinding {
                group: TargetGroupRef::Arn(arn),
                port,
            });
        }
    }
    Ok(NodeConfiguration {
        id: doc
            .id
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| id.to_owned()),
        name: doc.name,
        target_groups: groups.into_iter().collect(),
    })
}

/// `null`, absent and `0` mean "the group's own port"; a number or a numeric string is
/// a port.
fn parse_port(id: &str, port: Option<&serde_json::Value>) -> berth_core::Result<Option<u16>> {
    let invalid = |p: &serde_json::Value| {
        berth_core::Error::invalid(format!(
            "Cast.ai node configuration {id}: target group port {p} is not a port"
        ))
    };
    let number = match port {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(p @ serde_json::Value::Number(n)) => n.as_u64().ok_or_else(|| invalid(p))?,
        Some(p @ serde_json::Value::String(s)) => s.trim().parse().map_err(|_| invalid(p))?,
        Some(p) => return Err(invalid(p)),
    };
    match number {
        0 => Ok(None),
        n => u16::try_from(n)
            .map(Some)
            .map_err(|_| invalid(port.unwrap_or(&serde_json::Value::Null))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/a/1";
    const B: &str = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/b/2";

    fn binding(arn: &str, port: Option<u16>) -> GroupBinding {
        GroupBinding {
            group: TargetGroupRef::Arn(TargetGroupArn::new(arn).unwrap()),
            port,
        }
    }

    #[test]
    fn unites_target_groups_and_the_legacy_field() {
        let body = serde_json::json!({
            "id": "cfg-1", "name": "default", "version": 3,
            "eks": {
                "targetGroups": [{"arn": A, "port": 80}, {"arn": B, "port": null}, {"arn": A, "port": 80}],
                "targetGroup": {"arn": A, "port": 8080},
                "securityGroups": []
            }
        });
        let cfg = parse_node_configuration("cfg-1", body.to_string().as_bytes()).unwrap();
        assert_eq!(cfg.name.as_deref(), Some("default"));
        assert_eq!(
            cfg.target_groups,
            vec![
                binding(A, Some(80)),
                binding(A, Some(8080)),
                binding(B, None)
            ]
        );
    }

    #[test]
    fn legacy_field_alone_and_empty_legacy_field() {
        let body = serde_json::json!({"eks": {"targetGroup": {"arn": B, "port": 443}}});
        let cfg = parse_node_configuration("cfg-2", body.to_string().as_bytes()).unwrap();
        assert_eq!(cfg.id, "cfg-2");
        assert_eq!(cfg.target_groups, vec![binding(B, Some(443))]);

        let body = serde_json::json!({"eks": {"targetGroups": null, "targetGroup": {"arn": "", "port": null}}});
        let cfg = parse_node_configuration("cfg-3", body.to_string().as_bytes()).unwrap();
        assert!(cfg.target_groups.is_empty());
        let cfg = parse_node_configuration("cfg-4", b"{\"id\":\"cfg-4\"}").unwrap();
        assert!(cfg.target_groups.is_empty());
    }

    #[test]
    fn ports_null_zero_string_and_invalid() {
        let body = |port: serde_json::Value| {
            serde_json::json!({"eks": {"targetGroups": [{"arn": A, "port": port}]}}).to_string()
        };
        let port =
            |p| parse_node_configuration("c", body(p).as_bytes()).map(|c| c.target_groups[0].port);
        assert_eq!(port(serde_json::json!(null)).unwrap(), None);
        assert_eq!(port(serde_json::json!(0)).unwrap(), None);
        assert_eq!(port(serde_json::json!("8443")).unwrap(), Some(8443));
        assert!(port(serde_json::json!(70000)).is_err());
        assert!(port(serde_json::json!(-1)).is_err());
        assert!(port(serde_json::json!(true)).is_err());
    }

    #[test]
    fn bad_arn_or_body_fails_the_document() {
        let body = serde_json::json!({"eks": {"targetGroups": [{"arn": "my-group", "port": 80}]}});
        let err = parse_node_configuration("c", body.to_string().as_bytes()).unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("my-group"), "{err}");
        assert!(parse_node_configuration("c", b"<html>oops</html>").is_err());
    }
}
