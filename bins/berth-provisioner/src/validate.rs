//! Request bodies are read as JSON values and checked field by field, so a bad body
//! is a 422 naming each invalid field (and nothing is created).

use berth_core::plan::runs::{cluster_name_error, is_instance_type};
use serde_json::{Map, Value};

use crate::config::ServerConfig;
use crate::problem::{FieldError, Problem};

/// A validated cluster spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterSpec {
    pub(crate) kubernetes_version: String,
    pub(crate) instance_type: String,
    pub(crate) ip_family: String,
}

/// The body as a JSON object, or a 400/422.
pub(crate) fn object(body: &[u8]) -> Result<Map<String, Value>, Problem> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Problem::invalid(vec![FieldError {
            field: "body".into(),
            message: "must be a JSON object".into(),
        }])),
        Err(e) => Err(Problem::bad_request(format!("the body is not JSON: {e}"))),
    }
}

/// Checks a cluster name (from the body or the path).
pub(crate) fn cluster_name(field: &str, name: &str) -> Result<(), FieldError> {
    match cluster_name_error(name) {
        None => Ok(()),
        Some(message) => Err(FieldError {
            field: field.into(),
            message: message.into(),
        }),
    }
}

fn string<'a>(
    body: &'a Map<String, Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match body.get(field) {
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.push(FieldError {
                field: field.into(),
                message: "must be a string".into(),
            });
            None
        }
        None => {
            errors.push(FieldError {
                field: field.into(),
                message: "is required".into(),
            });
            None
        }
    }
}

/// Reads a string field that must be one of `allowed` (from the configuration).
fn one_of<'a>(
    body: &'a Map<String, Value>,
    field: &str,
    allowed: &[String],
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    let value = string(body, field, errors)?;
    if !allowed.iter().any(|a| a == value) {
        errors.push(FieldError {
            field: field.into(),
            message: format!("must be one of {}", allowed.join(", ")),
        });
    }
    Some(value)
}

/// Reads and checks `kubernetes_version`, `instance_type` and `ip_family`.
pub(crate) fn spec(
    body: &Map<String, Value>,
    config: &ServerConfig,
    errors: &mut Vec<FieldError>,
) -> Option<ClusterSpec> {
    let version = one_of(
        body,
        "kubernetes_version",
        &config.kubernetes_versions,
        errors,
    );
    let instance_type = string(body, "instance_type", errors);
    if let Some(t) = instance_type {
        if !is_instance_type(t) {
            errors.push(FieldError {
                field: "instance_type".into(),
                message: "is not an EC2 instance type (family.size, e.g. m6gd.large)".into(),
            });
        }
    }
    let ip_family = one_of(body, "ip_family", &config.ip_families, errors);
    if !errors.is_empty() {
        return None;
    }
    Some(ClusterSpec {
        kubernetes_version: version?.to_owned(),
        instance_type: instance_type?.to_owned(),
        ip_family: ip_family?.to_owned(),
    })
}

/// The seed's request: `{cluster_name, kubernetes_version, instance_type, ip_family}`.
pub(crate) fn seed_request(
    body: &[u8],
    config: &ServerConfig,
) -> Result<(String, ClusterSpec), Problem> {
    let body = object(body)?;
    let mut errors = Vec::new();
    let name = string(&body, "cluster_name", &mut errors).map(str::to_owned);
    if let Some(n) = &name {
        if let Err(e) = cluster_name("cluster_name", n) {
            errors.push(e);
        }
    }
    let spec = spec(&body, config, &mut errors);
    match (name, spec) {
        (Some(name), Some(spec)) if errors.is_empty() => Ok((name, spec)),
        _ => Err(Problem::invalid(errors)),
    }
}

/// The `/v1` spec request (`PUT /v1/clusters/{name}`): the spec, with the path's
/// `name` checked and the body's `cluster_name`, if given, equal to it.
pub(crate) fn v1_spec_request(
    name: &str,
    body: &[u8],
    config: &ServerConfig,
) -> Result<ClusterSpec, Problem> {
    let body = object(body)?;
    let mut errors = Vec::new();
    if let Err(e) = cluster_name("name", name) {
        errors.push(e);
    }
    if let Some(named) = body.get("cluster_name") {
        if named.as_str() != Some(name) {
            errors.push(FieldError {
                field: "cluster_name".into(),
                message: "must equal the name in the path".into(),
            });
        }
    }
    match spec(&body, config, &mut errors) {
        Some(spec) if errors.is_empty() => Ok(spec),
        _ => Err(Problem::invalid(errors)),
    }
}
