//! What an API server's authorizer sees of each request the fake served: RBAC's
//! resource attributes (verb, API group, resource with its subresource, namespace,
//! name), derived from the method, path and query as Kubernetes' request-info resolver
//! does. A chart's tests check a binary's requests against the rules it renders.

use std::fmt;

use super::{decode, route};

/// One resource request, as RBAC authorizes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceRequest {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: String,
    /// The API group: empty for the core group (`/api/v1`).
    pub group: String,
    /// The resource, with its subresource after a slash (`pods/log`, `nodes/status`).
    pub resource: String,
    /// The namespace; `None` for a cluster-scoped object, or a list or watch across
    /// every namespace.
    pub namespace: Option<String>,
    /// The object's name; `None` for a create, or a list or watch not narrowed to one
    /// name (a `metadata.name` field selector narrows it, as in Kubernetes).
    pub name: Option<String>,
}

impl ResourceRequest {
    /// The request a served request line (`METHOD path?query`) stands for; `None` for a
    /// path that names no resource (`/version`, `/openapi/v2`).
    pub fn of(line: &str) -> Option<ResourceRequest> {
        let (method, target) = line.split_once(' ')?;
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let route = route(path)?;
        let param = |wanted: &str| {
            query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| decode(k) == wanted)
                .map(|(_, v)| decode(v))
        };
        let watching = matches!(param("watch").as_deref(), Some("true" | "1"));
        let verb = match (method, &route.name) {
            ("GET", _) if watching => "watch",
            ("GET", Some(_)) => "get",
            ("GET", None) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", Some(_)) => "delete",
            ("DELETE", None) => "deletecollection",
            _ => return None,
        };
        let name = route.name.clone().or_else(|| {
            // A list or watch of one name is authorized as that name.
            param("fieldSelector")?
                .split(',')
                .find_map(|term| {
                    let name = term.strip_prefix("metadata.name")?;
                    name.strip_prefix("==").or_else(|| name.strip_prefix('='))
                })
                .map(str::to_owned)
        });
        let group = route
            .prefix
            .strip_prefix("apis/")
            .and_then(|g| g.split_once('/'))
            .map_or("", |(group, _)| group);
        let resource = match &route.subresource {
            Some(sub) => format!("{}/{sub}", route.resource),
            None => route.resource.clone(),
        };
        Some(ResourceRequest {
            verb: verb.to_owned(),
            group: group.to_owned(),
            resource,
            namespace: route.namespace.clone(),
            name: (verb != "create").then_some(name).flatten(),
        })
    }
}

impl fmt::Display for ResourceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {group}/{}", self.verb, self.resource)?;
        if let Some(name) = &self.name {
            write!(f, " {name}")?;
        }
        match &self.namespace {
            Some(namespace) => write!(f, " in {namespace}"),
            None => write!(f, " (cluster-wide)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(line: &str) -> (String, String, String, Option<String>, Option<String>) {
        let r = ResourceRequest::of(line).unwrap();
        (r.verb, r.group, r.resource, r.namespace, r.name)
    }

    fn s(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    #[test]
    fn verbs_groups_subresources_and_names_as_kubernetes_authorizes_them() {
        assert_eq!(
            of("GET /api/v1/nodes?resourceVersion=0"),
            ("list".into(), "".into(), "nodes".into(), None, None)
        );
        assert_eq!(
            of("GET /api/v1/nodes?fieldSelector=metadata.name%3Dnode-1&watch=true"),
            ("watch".into(), "".into(), "nodes".into(), None, s("node-1"))
        );
        assert_eq!(
            of("POST /apis/events.k8s.io/v1/namespaces/default/events"),
            (
                "create".into(),
                "events.k8s.io".into(),
                "events".into(),
                s("default"),
                None
            )
        );
        assert_eq!(
            of("PUT /apis/coordination.k8s.io/v1/namespaces/ns/leases/l"),
            (
                "update".into(),
                "coordination.k8s.io".into(),
                "leases".into(),
                s("ns"),
                s("l")
            )
        );
        assert_eq!(
            of("PATCH /api/v1/nodes/n/status"),
            (
                "patch".into(),
                "".into(),
                "nodes/status".into(),
                None,
                s("n")
            )
        );
        assert_eq!(
            of("GET /api/v1/namespaces/ns/pods/p/log?container=c"),
            ("get".into(), "".into(), "pods/log".into(), s("ns"), s("p"))
        );
        assert_eq!(
            of("DELETE /api/v1/namespaces/ns/configmaps"),
            (
                "deletecollection".into(),
                "".into(),
                "configmaps".into(),
                s("ns"),
                None
            )
        );
        assert_eq!(ResourceRequest::of("GET /version"), None);
        assert_eq!(
            ResourceRequest::of("DELETE /api/v1/namespaces/ns/configmaps/c")
                .unwrap()
                .to_string(),
            "delete core/configmaps c in ns"
        );
    }
}
