//! The compiled berth-provisioner, the real `terraform` binary and the runner script
//! from examples/provisioner, with Terraform's state in its `kubernetes` backend on
//! the fake API server, and the test harness as kubelet.

mod support;

use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_kube::fake::{FakeApiServer, Fault};
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;
use support::kubelet::Kubelet;
use support::{config_yaml, repo_root, seed_body, Provisioner, Scratch, NAMESPACE};

fn terraform_present() {
    let found = std::process::Command::new("terraform")
        .arg("version")
        .output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "these tests need the terraform binary on PATH (.ci/run checks /usr/local/bin/terraform)"
    );
}

/// The states a run ends in.
const ENDED: &[&str] = &["applied", "errored", "canceled"];

struct World {
    api: Arc<FakeApiServer>,
    server: Provisioner,
    kubelet: Kubelet,
    _scratch: Scratch,
}

fn world(behaviour: &str) -> World {
    terraform_present();
    let api = Arc::new(FakeApiServer::start().expect("fake API server"));
    let scratch = Scratch::new();
    let kubeconfig = scratch.0.join("runner-kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    let home = scratch.0.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let runner = repo_root().join("examples/provisioner/runner/berth-runner.sh");
    let module = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/terraform"));
    let runner_yaml = format!(
        "  image: berth-runner:test\n  command: [\"{}\"]\n  env:\n    BERTH_KUBE_API: \"{}\"\n    KUBE_CONFIG_PATH: \"{}\"\n    BERTH_TF_MODULE: \"{}\"\n    CHECKPOINT_DISABLE: \"1\"\n    BERTH_PUSH_BACKOFF: \"0\"\n",
        runner.display(),
        api.url(),
        kubeconfig.display(),
        module.display()
    );
    let server = Provisioner::start(
        &api,
        &config_yaml(&[("behaviour", behaviour)], &runner_yaml),
    );
    let kubelet = Kubelet::start(api.clone(), home);
    World {
        api,
        server,
        kubelet,
        _scratch: scratch,
    }
}

impl World {
    async fn wait_for(&self, id: &str, states: &[&str]) -> Value {
        self.server.wait_for(id, states).await
    }

    async fn wait_for_log(&self, id: &str, text: &str) {
        self.server.wait_for_log(id, text).await;
    }

    fn log(&self, id: &str) -> String {
        self.server.log(id)
    }

    /// The managed resource addresses in the cluster's state Secret, if there is one.
    fn state(&self, cluster: &str) -> Option<Vec<String>> {
        let secrets = self.api.list::<Secret>(Some(NAMESPACE));
        let secret = secrets.iter().find(|s| {
            s.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(&format!("tfstate-default-{cluster}")))
        })?;
        let gz = &secret.data.as_ref()?.get("tfstate")?.0;
        let mut text = String::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_string(&mut text)
            .unwrap();
        let state: Value = serde_json::from_str(&text).unwrap();
        Some(
            state["resources"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| {
                    r["mode"] == "managed" && !r["instances"].as_array().unwrap().is_empty()
                })
                .map(|r| {
                    format!(
                        "{}.{}",
                        r["type"].as_str().unwrap(),
                        r["name"].as_str().unwrap()
                    )
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
        )
    }

    /// Asserts the cluster's state Secret holds `resource` (a partial state is kept).
    fn assert_state_holds(&self, cluster: &str, resource: &str) {
        let state = self.state(cluster).expect("the state Secret is kept");
        assert!(
            state.iter().any(|r| r == resource),
            "{resource} in {state:?}"
        );
    }

    /// The seed's `GET /clusters/{name}/status`.
    fn seed_status(&self, cluster: &str) -> Value {
        let path = format!("/clusters/{cluster}/status");
        self.server.call("GET", &path, None).json()
    }
}

/// Both resources of the test module.
const BOTH: [&str; 2] = ["terraform_data.cluster", "terraform_data.nodes"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_apply_is_errored_and_keeps_its_partial_state() {
    // Seed 004: `terraform apply | tee` without pipefail reported success, and state
    // was copied only after success, so a failed apply orphaned what it created.
    let w = world("fail");
    let id = w.server.seed_run("provision", "broken-001", "m6gd.large");
    let run = w.wait_for(&id, ENDED).await;
    let log = w.log(&id);
    assert_eq!(run["state"], "errored", "{log}");
    assert!(log.contains("failing on demand"), "{log}");
    let status = w.seed_status("broken-001");
    assert_eq!(
        (status["status"].as_str(), status["phase"].as_str()),
        (Some("failed"), Some("Failed"))
    );
    w.assert_state_holds("broken-001", "terraform_data.cluster");
    let problem = w
        .server
        .call("DELETE", "/clusters/broken-001/cleanup", None)
        .problem(409);
    assert!(
        problem["detail"].as_str().unwrap().contains("resource"),
        "{problem}"
    );
    assert!(
        w.state("broken-001").is_some(),
        "cleanup refused: the state stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_apply_is_refused_while_the_first_runs_and_cancel_saves_the_state() {
    let w = world("slow");
    let id = w.server.seed_run("provision", "slow", "c5.metal");
    w.wait_for(&id, &["applying"]).await;
    w.wait_for_log(&id, "creating nodes slowly").await;
    for (method, path, body) in [
        (
            "POST",
            "/clusters/provision",
            Some(seed_body("slow", "c5.metal")),
        ),
        ("DELETE", "/clusters/slow", None),
    ] {
        let problem = w.server.call(method, path, body.as_deref()).problem(409);
        assert_eq!(problem["active_run"], id.as_str());
    }
    let canceled_at = Instant::now();
    assert_eq!(
        w.server
            .call("POST", &format!("/v1/runs/{id}/cancel"), None)
            .status,
        202
    );
    let run = w.wait_for(&id, ENDED).await;
    let log = w.log(&id);
    assert_eq!(run["state"], "canceled", "{log}");
    // The provisioner sleeps 60 s: the run ended because terraform was interrupted.
    assert!(canceled_at.elapsed() < Duration::from_secs(55), "{log}");
    assert!(log.contains("sending SIGINT to terraform"), "{log}");
    w.assert_state_holds("slow", "terraform_data.cluster");
    // The run is over: the cluster's lock is free again.
    let next = w.server.call("DELETE", "/clusters/slow", None);
    assert_eq!(next.status, 200, "{}", next.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_after_apply_empties_the_state_and_cleanup_then_succeeds() {
    let w = world("succeed");
    let reply = w.server.call(
        "PUT",
        "/v1/clusters/prod-eu",
        Some(
            r#"{"kubernetes_version":"1.33","instance_type":"m7i-flex.large","ip_family":"ipv4"}"#,
        ),
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    let id = reply.json()["latest_run"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = w.wait_for(&id, ENDED).await;
    assert_eq!(run["state"], "applied", "{}", w.log(&id));
    assert_eq!(run["resources"], 2);
    let log = w.log(&id);
    assert!(
        log.contains("Successfully configured the backend \"kubernetes\""),
        "{log}"
    );
    assert!(log.contains("Apply complete! Resources: 2 added"), "{log}");
    assert_eq!(w.state("prod-eu").unwrap(), BOTH);
    let status = w.seed_status("prod-eu");
    assert_eq!(status["status"], "completed");
    assert_eq!(status["cluster_id"], "prod-eu");
    // Cleanup of a live cluster is refused and keeps the state.
    w.server
        .call("DELETE", "/clusters/prod-eu/cleanup", None)
        .problem(409);
    assert_eq!(w.state("prod-eu").unwrap().len(), 2);

    let destroy = w.server.call("DELETE", "/clusters/prod-eu", None);
    assert_eq!(destroy.status, 200, "{}", destroy.text());
    let destroy_id = destroy.json()["job_name"].as_str().unwrap().to_owned();
    let run = w.wait_for(&destroy_id, ENDED).await;
    assert_eq!(run["state"], "applied", "{}", w.log(&destroy_id));
    assert_eq!(run["resources"], 0);
    assert!(w
        .log(&destroy_id)
        .contains("Destroy complete! Resources: 2 destroyed"));
    assert_eq!(w.state("prod-eu").unwrap(), Vec::<String>::new());
    assert_eq!(
        w.server.call("GET", "/v1/clusters/prod-eu", None).json()["phase"],
        "destroyed"
    );
    let cleanup = w.server.call("DELETE", "/clusters/prod-eu/cleanup", None);
    assert_eq!(cleanup.status, 200, "{}", cleanup.text());
    assert!(w.state("prod-eu").is_none());
}

/// The path of the cluster's state Secret (its name has no hash suffix here).
fn state_secret_path(cluster: &str) -> String {
    format!("/api/v1/namespaces/{NAMESPACE}/secrets/tfstate-default-{cluster}")
}

/// Provisions `cluster` (seed endpoint) and waits until the run ends.
async fn provision(w: &World, cluster: &str) -> (String, Value) {
    let id = w.server.seed_run("provision", cluster, "g4dn.xlarge");
    let run = w.wait_for(&id, ENDED).await;
    (id, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_errored_tfstate_from_a_failed_final_push_is_pushed_again() {
    // The state Secret's first write (its creation in `init`) is served; the apply's
    // final write is refused once, so terraform leaves errored.tfstate and fails.
    let w = world("succeed");
    let path = state_secret_path("lost-push");
    w.api.inject(Fault::new("PUT", &path).after(1).times(1));
    let (id, run) = provision(&w, "lost-push").await;
    let log = w.log(&id);
    assert_eq!(w.api.refused(), [format!("PUT {path}")], "{log}");
    assert_eq!(run["state"], "errored", "terraform apply exited 1: {log}");
    assert!(log.contains("Failed to save state"), "{log}");
    assert!(log.contains("errored.tfstate found"), "{log}");
    assert!(log.contains("errored.tfstate pushed"), "{log}");
    assert_eq!(run["errored_state"], "pushed", "{run}");
    assert_eq!(run["resources"], 2, "{run}");
    assert_eq!(w.state("lost-push").unwrap(), BOTH);
    let status = w.seed_status("lost-push");
    assert_eq!(status["status"], "failed");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("errored.tfstate")),
        "{status}"
    );
    // Nothing was lost: the next apply finds everything in the state.
    let (again, run) = provision(&w, "lost-push").await;
    let log = w.log(&again);
    assert_eq!(run["state"], "applied", "{log}");
    assert!(log.contains("No changes."), "{log}");
    assert!(run["errored_state"].is_null(), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_errored_tfstate_that_cannot_be_pushed_is_kept_in_a_secret_and_reported() {
    // Every write of the state Secret after its creation is refused: the final push
    // and the runner's three retries.
    let w = world("succeed");
    let path = state_secret_path("no-push");
    w.api.inject(Fault::new("PUT", &path).after(1));
    let (id, run) = provision(&w, "no-push").await;
    let log = w.log(&id);
    assert_eq!(run["state"], "errored", "{log}");
    assert_eq!(w.api.refused().len(), 4, "{log}");
    assert!(
        log.contains(&format!("keeping it in Secret {id}-errored-tfstate")),
        "{log}"
    );
    assert_eq!(run["errored_state"], "saved-in-secret", "{run}");
    // Counted from errored.tfstate, not from the backend's stale state.
    assert_eq!(run["resources"], 2, "{run}");
    assert_eq!(w.state("no-push").unwrap(), Vec::<String>::new());
    let kept: Secret = w
        .api
        .get(Some(NAMESPACE), &format!("{id}-errored-tfstate"))
        .expect("the Secret holding errored.tfstate");
    let file = &kept.data.unwrap()["errored.tfstate"].0;
    let kept: Value = serde_json::from_slice(file).unwrap();
    let mut kept: Vec<_> = kept["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    kept.sort();
    assert_eq!(kept, ["cluster", "nodes"]);
    let status = w.seed_status("no-push");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "errored.tfstate is kept in Secret {id}-errored-tfstate"
        )),
        "{status}"
    );
    // The cluster's state is incomplete: cleanup stays refused.
    w.server
        .call("DELETE", "/clusters/no-push/cleanup", None)
        .problem(409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_the_runner_interrupts_terraform_which_saves_its_state() {
    // A pod deleted, or a Job past its deadline: the kubelet sends the runner SIGTERM.
    let w = world("slow");
    let id = w.server.seed_run("provision", "evicted", "c5.metal");
    w.wait_for(&id, &["applying"]).await;
    w.wait_for_log(&id, "creating nodes slowly").await;
    let sent_at = Instant::now();
    w.kubelet.signal(&id, "TERM");
    let run = w.wait_for(&id, ENDED).await;
    let log = w.log(&id);
    // Nobody asked for a cancel: the run failed.
    assert_eq!(run["state"], "errored", "{log}");
    // The provisioner sleeps 60 s: the run ended because terraform was interrupted.
    assert!(sent_at.elapsed() < Duration::from_secs(55), "{log}");
    assert!(log.contains("received SIGTERM"), "{log}");
    assert!(log.contains("Interrupt received"), "{log}");
    w.assert_state_holds("evicted", "terraform_data.cluster");
}
