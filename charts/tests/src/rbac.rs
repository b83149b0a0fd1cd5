//! A chart's RBAC as the API server applies it: the rules its Roles and ClusterRoles
//! grant one ServiceAccount through its bindings, whether they allow a request, and
//! which rules no request used.
//!
//! The requests come from a real run against berth-kube's fake API server
//! ([`berth_kube::fake::FakeApiServer::resource_requests`]), so whatever a chart
//! renders (and whatever a binary asks) is checked without listing either here.

use std::fmt;

use berth_kube::fake::ResourceRequest;
use serde_json::Value;

use crate::render::Rendered;

/// One rule of a Role or ClusterRole, and where it applies.
#[derive(Debug, Clone)]
pub struct Grant {
    /// `ClusterRole berth-daemon` or `Role berth-system/berth-daemon`.
    pub role: String,
    /// The namespace a RoleBinding limits it to; `None` through a ClusterRoleBinding.
    pub namespace: Option<String>,
    /// `apiGroups`.
    pub api_groups: Vec<String>,
    /// `resources` (`pods/log` for a subresource).
    pub resources: Vec<String>,
    /// `verbs`.
    pub verbs: Vec<String>,
    /// `resourceNames`: empty for every name.
    pub resource_names: Vec<String>,
}

impl Grant {
    /// Whether this rule allows `request`, as Kubernetes' RBAC authorizer decides.
    pub fn allows(&self, request: &ResourceRequest) -> bool {
        let any = |list: &[String], wanted: &str| list.iter().any(|x| x == "*" || x == wanted);
        let resource = self.resources.iter().any(|r| {
            r == "*"
                || *r == request.resource
                || request
                    .resource
                    .split_once('/')
                    .is_some_and(|(_, sub)| r.strip_prefix("*/") == Some(sub))
        });
        let name = self.resource_names.is_empty()
            || request
                .name
                .as_ref()
                .is_some_and(|n| self.resource_names.contains(n));
        let namespace = match &self.namespace {
            None => true,
            Some(bound) => request.namespace.as_ref() == Some(bound),
        };
        namespace
            && any(&self.verbs, &request.verb)
            && any(&self.api_groups, &request.group)
            && resource
            && name
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {:?} on {:?} in groups {:?}",
            self.role, self.verbs, self.resources, self.api_groups
        )?;
        if !self.resource_names.is_empty() {
            write!(f, " named {:?}", self.resource_names)?;
        }
        match &self.namespace {
            Some(namespace) => write!(f, " in {namespace}"),
            None => write!(f, " cluster-wide"),
        }
    }
}

/// Every rule the rendered chart grants ServiceAccount `service_account` of
/// `namespace`, through the ClusterRoleBindings and RoleBindings naming it.
///
/// # Panics
/// When a binding refers to a role the chart does not render: its rules are unknown.
pub fn grants(rendered: &Rendered, namespace: &str, service_account: &str) -> Vec<Grant> {
    let names_it = |binding: &Value| {
        binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["name"] == service_account
                    && s["namespace"] == namespace
            })
    };
    let role = |kind: &str, role_namespace: Option<&str>, name: &str| {
        rendered
            .all(kind)
            .into_iter()
            .find(|r| {
                r["metadata"]["name"] == name
                    && r["metadata"]["namespace"].as_str() == role_namespace
            })
            .unwrap_or_else(|| {
                panic!(
                    "a binding refers to {kind} {name}, which the chart does not render:\n{}",
                    rendered.text
                )
            })
    };
    let mut grants = Vec::new();
    for (binding_kind, binding) in rendered
        .all("ClusterRoleBinding")
        .into_iter()
        .map(|b| ("ClusterRoleBinding", b))
        .chain(
            rendered
                .all("RoleBinding")
                .into_iter()
                .map(|b| ("RoleBinding", b)),
        )
    {
        if !names_it(binding) {
            continue;
        }
        let bound = binding["metadata"]["namespace"].as_str();
        let limit = (binding_kind == "RoleBinding").then(|| bound.unwrap_or(namespace));
        let kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
        let name = binding["roleRef"]["name"].as_str().unwrap_or_default();
        let (role, label) = match kind {
            "ClusterRole" => (role(kind, None, name), format!("ClusterRole {name}")),
            _ => {
                let ns = limit.unwrap_or(namespace);
                (role(kind, Some(ns), name), format!("Role {ns}/{name}"))
            }
        };
        for rule in role["rules"].as_array().into_iter().flatten() {
            let strings = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            };
            grants.push(Grant {
                role: label.clone(),
                namespace: limit.map(str::to_owned),
                api_groups: strings("apiGroups"),
                resources: strings("resources"),
                verbs: strings("verbs"),
                resource_names: strings("resourceNames"),
            });
        }
    }
    grants
}

/// The requests no grant allows (each once, in order).
pub fn denied<'a>(grants: &[Grant], requests: &'a [ResourceRequest]) -> Vec<&'a ResourceRequest> {
    let mut denied: Vec<&ResourceRequest> = Vec::new();
    for request in requests {
        if !grants.iter().any(|g| g.allows(request)) && !denied.contains(&request) {
            denied.push(request);
        }
    }
    denied
}

/// Each grant's verbs that no request used (`Grant` with those verbs only); grants
/// every verb of which was used are left out.
pub fn unused(grants: &[Grant], requests: &[ResourceRequest]) -> Vec<Grant> {
    grants
        .iter()
        .filter_map(|grant| {
            let verbs: Vec<String> = grant
                .verbs
                .iter()
                .filter(|verb| {
                    !requests
                        .iter()
                        .any(|r| (**verb == "*" || **verb == r.verb) && grant.allows(r))
                })
                .cloned()
                .collect();
            (!verbs.is_empty()).then(|| Grant {
                verbs,
                ..grant.clone()
            })
        })
        .collect()
}

/// Least privilege both ways, for the run of one workload (`at`, for messages) as
/// ServiceAccount `account`: every request of the run is allowed by `grants`, and each
/// verb of each grant was used by a request or `justify` says why the run did not need
/// it (printed with `--nocapture`).
///
/// # Panics
/// When a request is denied (listing them and the grants), or a grant went unused with
/// no justification (listing them): the chart is missing a rule, or grants one too many.
pub fn assert_least_privilege(
    at: &str,
    account: &str,
    grants: &[Grant],
    requests: &[ResourceRequest],
    justify: impl Fn(&Grant) -> Option<String>,
) {
    let lines = |items: Vec<String>| items.join("\n  ");
    let denied = denied(grants, requests);
    assert!(
        denied.is_empty(),
        "{at}: the chart's RBAC for ServiceAccount {account} refuses what was asked:\n  {}\n\
         it grants:\n  {}",
        lines(denied.iter().map(ToString::to_string).collect()),
        lines(grants.iter().map(ToString::to_string).collect()),
    );
    let mut unjustified = Vec::new();
    for grant in unused(grants, requests) {
        match justify(&grant) {
            Some(why) => println!("{at}: not used in this run: {grant}: {why}"),
            None => unjustified.push(grant.to_string()),
        }
    }
    assert!(
        unjustified.is_empty(),
        "{at}: the chart grants ServiceAccount {account} what this run never used, and no \
         reason is given for it (remove it from the chart, or justify it in the test):\n  {}\n\
         the run asked:\n  {}",
        lines(unjustified),
        lines(requests.iter().map(ToString::to_string).collect()),
    );
    println!("{at}: {} requests, every one allowed", requests.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::parse;

    const CHART: &str = "\
---
# Source: c/templates/rbac.yaml
kind: ClusterRole
metadata: {name: c}
rules:
  - {apiGroups: [\"\"], resources: [nodes], verbs: [list, watch]}
---
# Source: c/templates/rbac.yaml
kind: ClusterRoleBinding
metadata: {name: c}
roleRef: {kind: ClusterRole, name: c}
subjects: [{kind: ServiceAccount, name: sa, namespace: ns}]
---
# Source: c/templates/rbac.yaml
kind: Role
metadata: {name: r, namespace: ns}
rules:
  - {apiGroups: [\"\"], resources: [configmaps], verbs: [create]}
  - {apiGroups: [\"\"], resources: [configmaps], resourceNames: [mine], verbs: [get, update]}
  - {apiGroups: [\"\"], resources: [\"*/log\"], verbs: [get]}
---
# Source: c/templates/rbac.yaml
kind: RoleBinding
metadata: {name: r, namespace: ns}
roleRef: {kind: Role, name: r}
subjects: [{kind: ServiceAccount, name: sa, namespace: ns}]
---
# Source: c/templates/rbac.yaml
kind: RoleBinding
metadata: {name: other, namespace: ns}
roleRef: {kind: ClusterRole, name: c}
subjects: [{kind: ServiceAccount, name: someone-else, namespace: ns}]
";

    fn request(line: &str) -> ResourceRequest {
        ResourceRequest::of(line).unwrap()
    }

    #[test]
    fn rules_allow_by_verb_group_resource_name_and_namespace() {
        let grants = grants(&parse(CHART), "ns", "sa");
        assert_eq!(grants.len(), 4, "{grants:?}");
        let allowed = |line: &str| grants.iter().any(|g| g.allows(&request(line)));
        assert!(allowed("GET /api/v1/nodes?watch=true"));
        assert!(allowed("POST /api/v1/namespaces/ns/configmaps"));
        assert!(allowed("PUT /api/v1/namespaces/ns/configmaps/mine"));
        assert!(allowed("GET /api/v1/namespaces/ns/pods/p/log"));
        assert!(!allowed("GET /api/v1/nodes/n"), "a verb not granted");
        assert!(
            !allowed("PUT /api/v1/namespaces/ns/configmaps/other"),
            "another name"
        );
        assert!(
            !allowed("POST /api/v1/namespaces/elsewhere/configmaps"),
            "another namespace"
        );
        assert!(!allowed("GET /api/v1/configmaps"), "across namespaces");
        assert!(
            !allowed("GET /apis/apps/v1/namespaces/ns/configmaps/mine"),
            "another group"
        );
        assert!(
            !allowed("GET /api/v1/namespaces/ns/pods/p"),
            "the resource, not its log"
        );

        let requests = [
            request("GET /api/v1/nodes?watch=true"),
            request("GET /api/v1/nodes/n"),
            request("GET /api/v1/nodes/n"),
        ];
        let denied = denied(&grants, &requests);
        assert_eq!(denied, [&requests[1]]);
        let unused: Vec<String> = unused(&grants, &requests)
            .iter()
            .map(|g| format!("{}:{:?}", g.role, g.verbs))
            .collect();
        assert_eq!(
            unused,
            [
                "ClusterRole c:[\"list\"]",
                "Role ns/r:[\"create\"]",
                "Role ns/r:[\"get\", \"update\"]",
                "Role ns/r:[\"get\"]"
            ]
        );
    }
}
