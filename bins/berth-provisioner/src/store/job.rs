//! A run's Job: named by the run id (never the cluster name: Job names and the
//! `job-name` label of its pods must fit 63 characters), labelled with cluster,
//! operation and run, never retried (`backoffLimit: 0`: a second Terraform run on a
//! half-applied state is not what was asked for), bounded by `activeDeadlineSeconds`,
//! kept when it applies or destroys, collected after `ttlSecondsAfterFinished` when it
//! only plans, and given a long grace period so Terraform can save its state on SIGTERM.

use berth_core::plan::runs::{state_secret_suffix, Operation};
use k8s_openapi::api::batch::v1::Job;
use serde_json::{json, Value};

use crate::config::ServerConfig;
use crate::validate::ClusterSpec;

use super::run_labels;

pub(super) fn manifest(
    config: &ServerConfig,
    namespace: &str,
    id: &str,
    cluster: &str,
    operation: Operation,
    spec: &ClusterSpec,
) -> Job {
    let runner = &config.runner;
    let mut env: Vec<Value> = Vec::new();
    let mut set = |name: &str, value: &str| env.push(json!({"name": name, "value": value}));
    set("BERTH_RUN_ID", id);
    set("BERTH_CLUSTER", cluster);
    set("BERTH_OPERATION", operation.as_str());
    set("BERTH_NAMESPACE", namespace);
    set("BERTH_STATE_SUFFIX", &state_secret_suffix(cluster));
    set("TF_VAR_cluster_name", cluster);
    set("TF_VAR_kubernetes_version", &spec.kubernetes_version);
    set("TF_VAR_instance_type", &spec.instance_type);
    set("TF_VAR_ip_family", &spec.ip_family);
    set("TF_VAR_region", &config.region);
    for (name, value) in &config.terraform_vars {
        set(&format!("TF_VAR_{name}"), value);
    }
    for (name, value) in &runner.env {
        set(name, value);
    }
    let env_from: Vec<Value> = runner
        .env_from_secret
        .iter()
        .map(|s| json!({"secretRef": {"name": s}}))
        .collect();
    let labels = run_labels(id, cluster, operation);
    let mut job_spec = json!({
        "backoffLimit": 0,
        "activeDeadlineSeconds": runner.active_deadline_seconds,
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": runner.termination_grace_seconds,
                "containers": [{
                    "name": "runner",
                    "image": runner.image,
                    "command": runner.command,
                    "env": env,
                    "envFrom": env_from,
                    "securityContext": {
                        "allowPrivilegeEscalation": false,
                        "runAsNonRoot": true,
                        "capabilities": {"drop": ["ALL"]}
                    }
                }]
            }
        }
    });
    if let Some(account) = &runner.service_account {
        job_spec["template"]["spec"]["serviceAccountName"] = json!(account);
    }
    if operation == Operation::Plan {
        job_spec["ttlSecondsAfterFinished"] = json!(runner.plan_ttl_seconds);
    }
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": id, "labels": labels},
        "spec": job_spec,
    });
    serde_json::from_value(job)
        .unwrap_or_else(|e| unreachable!("the Job manifest is built from typed parts: {e}"))
}
