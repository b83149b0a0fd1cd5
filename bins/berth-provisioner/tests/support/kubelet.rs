//! The test harness plays the kubelet and the Job controller (none runs in the fake
//! API server): it sees each new Job, creates its Pod, runs the Job's container
//! command as a local process with the Job's environment, and writes the Pod's and
//! the Job's status (`Complete`/`Failed`, after `SuccessCriteriaMet`/`FailureTarget`
//! as the real controller does) from the exit code.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_kube::fake::FakeApiServer;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::NAMESPACE;

/// Runs Jobs until dropped.
pub struct Kubelet {
    task: tokio::task::JoinHandle<()>,
    /// The process of each running Job, by Job name.
    pids: Pids,
}

type Pids = Arc<Mutex<HashMap<String, u32>>>;

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Kubelet {
    /// Starts watching `api`'s Jobs; processes get `home` as HOME.
    pub fn start(api: Arc<FakeApiServer>, home: PathBuf) -> Self {
        let pids = Pids::default();
        let running = pids.clone();
        let task = tokio::spawn(async move {
            let jobs: Api<Job> = Api::namespaced(api.client(), NAMESPACE);
            let mut seen = HashSet::new();
            loop {
                if let Ok(list) = jobs.list(&Default::default()).await {
                    for job in list.items {
                        let name = job.metadata.name.clone().unwrap_or_default();
                        if seen.insert(name) {
                            tokio::spawn(run_job(api.clone(), job, home.clone(), running.clone()));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Kubelet { task, pids }
    }

    /// Sends `signal` (`TERM`, `INT`, ...) to a running Job's process, as the kubelet
    /// does when the pod is deleted or the Job's deadline passes.
    pub fn signal(&self, job: &str, signal: &str) {
        let pid = *self
            .pids
            .lock()
            .unwrap()
            .get(job)
            .unwrap_or_else(|| panic!("Job {job} is not running"));
        let sent = std::process::Command::new("kill")
            .args(["-s", signal, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill -s {signal} {pid}");
    }
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

async fn run_job(api: Arc<FakeApiServer>, job: Job, home: PathBuf, pids: Pids) {
    let client = api.client();
    let jobs: Api<Job> = Api::namespaced(client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(client, NAMESPACE);
    let name = job.metadata.name.clone().unwrap_or_default();
    let pod_name = format!("{name}-pod");
    let template = job.spec.clone().unwrap_or_default().template;
    let mut labels = template
        .metadata
        .clone()
        .unwrap_or_default()
        .labels
        .unwrap_or_default();
    labels.insert("job-name".into(), name.clone());
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": pod_name, "labels": labels},
        "spec": template.spec,
    }))
    .expect("a Pod from the Job's template");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create the Pod");
    let params = PatchParams::default();
    jobs.patch_status(
        &name,
        &params,
        &Patch::Merge(json!({"status": {"active": 1, "startTime": now()}})),
    )
    .await
    .expect("Job status: active");
    pods.patch_status(
        &pod_name,
        &params,
        &Patch::Merge(json!({"status": {"phase": "Running"}})),
    )
    .await
    .expect("Pod status: running");

    let container = template.spec.expect("a pod spec").containers.remove(0);
    let command = container.command.unwrap_or_default();
    let mut process = tokio::process::Command::new(&command[0]);
    process
        .args(&command[1..])
        .args(container.args.unwrap_or_default())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .kill_on_drop(true);
    for var in container.env.unwrap_or_default() {
        assert!(
            var.value_from.is_none(),
            "the harness sets literal values only"
        );
        process.env(var.name, var.value.unwrap_or_default());
    }
    let child = process
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the Job's command");
    if let Some(pid) = child.id() {
        pids.lock().unwrap().insert(name.clone(), pid);
    }
    let output = child
        .wait_with_output()
        .await
        .expect("wait for the Job's command");
    pids.lock().unwrap().remove(&name);
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    api.set_pod_log(NAMESPACE, &pod_name, &log);
    let code = output.status.code().unwrap_or(137);
    let ok = output.status.success();
    pods.patch_status(
        &pod_name,
        &params,
        &Patch::Merge(json!({"status": {
            "phase": if ok { "Succeeded" } else { "Failed" },
            "containerStatuses": [{
                "name": "runner", "image": container.image, "imageID": "", "ready": false,
                "restartCount": 0, "state": {"terminated": {"exitCode": code}}
            }]
        }})),
    )
    .await
    .expect("Pod status: terminated");
    let (first, last) = if ok {
        ("SuccessCriteriaMet", "Complete")
    } else {
        ("FailureTarget", "Failed")
    };
    let condition =
        |kind: &str| json!({"type": kind, "status": "True", "lastTransitionTime": now()});
    jobs.patch_status(
        &name,
        &params,
        &Patch::Merge(json!({"status": {"active": 0, "conditions": [condition(first)]}})),
    )
    .await
    .expect("Job status: interim condition");
    let counts = if ok {
        json!({"succeeded": 1})
    } else {
        json!({"failed": 1})
    };
    jobs.patch_status(
        &name,
        &params,
        &Patch::Merge(json!({"status": {
            "conditions": [condition(first), condition(last)],
            "succeeded": counts.get("succeeded"), "failed": counts.get("failed"),
            "completionTime": if ok { Some(now()) } else { None },
        }})),
    )
    .await
    .expect("Job status: terminal condition");
}
