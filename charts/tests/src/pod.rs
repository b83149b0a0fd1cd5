//! The workloads a chart renders, and the command line their container runs with.

use serde_json::Value;

use crate::render::Rendered;

/// Every DaemonSet and Deployment rendered.
pub fn workloads(rendered: &Rendered) -> Vec<&Value> {
    let mut workloads = rendered.all("DaemonSet");
    workloads.extend(rendered.all("Deployment"));
    workloads
}

/// `DaemonSet berth-daemon`: a workload's kind and name, for messages.
pub fn label(workload: &Value) -> String {
    format!(
        "{} {}",
        workload["kind"].as_str().unwrap_or_default(),
        workload["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// The workload's pod spec.
pub fn pod_spec(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]
}

/// The ServiceAccount the workload's pods run as (`default` when it names none).
pub fn service_account(workload: &Value) -> String {
    pod_spec(workload)["serviceAccountName"]
        .as_str()
        .unwrap_or("default")
        .to_owned()
}

/// What a pod of the workload knows about itself, for the variables the chart fills
/// from `fieldRef`s.
#[derive(Debug, Clone)]
pub struct Pod {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `spec.nodeName`.
    pub node_name: String,
}

/// The first container's command line as a pod runs it: `program`, the rendered
/// arguments, then each environment variable as the flag `flag_of_env` names for it
/// (`--flag=value`), its value resolved for `pod` (`fieldRef`s) or, from a Secret,
/// `from-a-secret`. A variable no flag stands for is left out.
///
/// # Panics
/// When a `fieldRef` names a field [`Pod`] does not have.
pub fn command_line(
    workload: &Value,
    program: &str,
    pod: &Pod,
    flag_of_env: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let container = &pod_spec(workload)["containers"][0];
    let mut line = vec![program.to_owned()];
    line.extend(
        container["args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_owned)),
    );
    for env in container["env"].as_array().into_iter().flatten() {
        let name = env["name"].as_str().unwrap_or_default();
        let Some(flag) = flag_of_env(name) else {
            continue;
        };
        let value = match (&env["value"], &env["valueFrom"]) {
            (Value::String(value), _) => value.clone(),
            (_, from) if from["secretKeyRef"].is_object() => "from-a-secret".to_owned(),
            (_, from) => match from["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => pod.name.clone(),
                Some("metadata.namespace") => pod.namespace.clone(),
                Some("spec.nodeName") => pod.node_name.clone(),
                other => panic!("{name}: a value from {other:?}, which this test cannot fill"),
            },
        };
        line.push(format!("--{flag}={value}"));
    }
    line
}
