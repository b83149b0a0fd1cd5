//! `apiVersion` and `kind` as a real API server sets them on every object it stores
//! (Terraform's `kubernetes` backend decodes Secrets as unstructured objects and needs
//! them), and the `<Kind>List` type of lists.

use serde_json::Value;

/// The kind of the resources the tests and berth use; others keep what was sent.
fn kind_of(resource: &str) -> Option<&'static str> {
    Some(match resource {
        "configmaps" => "ConfigMap",
        "secrets" => "Secret",
        "pods" => "Pod",
        "nodes" => "Node",
        "namespaces" => "Namespace",
        "services" => "Service",
        "serviceaccounts" => "ServiceAccount",
        "events" => "Event",
        "leases" => "Lease",
        "jobs" => "Job",
        _ => return None,
    })
}

/// `v1` for `api/v1`, `<group>/<version>` for `apis/<group>/<version>`.
fn api_version(prefix: &str) -> &str {
    prefix
        .strip_prefix("apis/")
        .or_else(|| prefix.strip_prefix("api/"))
        .unwrap_or(prefix)
}

/// Sets `apiVersion` and (for known resources) `kind` on a stored object.
pub(super) fn stamp(prefix: &str, resource: &str, object: &mut Value) {
    if let Value::Object(fields) = object {
        fields.insert("apiVersion".into(), Value::from(api_version(prefix)));
        if let Some(kind) = kind_of(resource) {
            fields.insert("kind".into(), Value::from(kind));
        }
    }
}

/// `(apiVersion, kind)` of a list response: `<Kind>List`, or `List` when unknown.
pub(super) fn list_type(prefix: &str, resource: &str) -> (String, String) {
    let kind = kind_of(resource).map_or_else(|| "List".to_owned(), |k| format!("{k}List"));
    (api_version(prefix).to_owned(), kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_group_versions_and_kinds() {
        let mut secret = serde_json::json!({"metadata": {}});
        stamp("api/v1", "secrets", &mut secret);
        assert_eq!(secret["apiVersion"], "v1");
        assert_eq!(secret["kind"], "Secret");
        let mut lease = serde_json::json!({});
        stamp("apis/coordination.k8s.io/v1", "leases", &mut lease);
        assert_eq!(lease["apiVersion"], "coordination.k8s.io/v1");
        assert_eq!(lease["kind"], "Lease");
        assert_eq!(
            list_type("apis/batch/v1", "jobs"),
            ("batch/v1".to_owned(), "JobList".to_owned())
        );
        assert_eq!(list_type("apis/x.io/v1", "widgets").1, "List");
    }
}
