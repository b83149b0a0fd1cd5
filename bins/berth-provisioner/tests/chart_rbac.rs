//! charts/berth-provisioner's RBAC is exactly what the provisioner and its runner use,
//! proven by running them (as charts/tests/tests/daemon_rbac.rs does for the daemon).
//! For each example values file (`ci/*-values.yaml`) the chart is rendered with a real
//! helm; the compiled berth-provisioner runs with the server configuration the chart
//! renders (its runner made local: the example runner script, the real terraform with
//! its `kubernetes` backend, the test module) against berth-kube's fake API server,
//! the test harness playing kubelet. A representative life of a cluster: an apply
//! (another operation refused meanwhile) canceled, the spec changed and that apply
//! canceled, status and list, destroy, cleanup. The API and the runner reach the server at URLs of their own
//! (`FakeApiServer::url_as`), standing for their ServiceAccounts' credentials: each
//! one's requests are checked against the rules the chart binds to its ServiceAccount,
//! both ways (`berth_charts::rbac::assert_least_privilege`): every request allowed,
//! every rule used.

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use berth_charts::pod;
use berth_charts::rbac::{self, Grant};
use berth_charts::render::{examples, release, template, values_file, Rendered};
use berth_kube::fake::FakeApiServer;
use serde_json::{json, Value};
use support::kubelet::Kubelet;
use support::{repo_root, Provisioner, Scratch, NAMESPACE};

const CHART: &str = "berth-provisioner";
const API: &str = "api";
const RUNNER: &str = "runner";
const CLUSTER: &str = "rbac-1";

/// The server configuration the chart renders (its ConfigMap's `config.yaml`).
fn rendered_config(rendered: &Rendered) -> Value {
    let maps = rendered.all("ConfigMap");
    let text = maps
        .iter()
        .find_map(|m| m["data"]["config.yaml"].as_str())
        .expect("the chart renders the server configuration");
    serde_saphyr::from_str(text).expect("the rendered config.yaml parses")
}

/// `config`, its runner run here: the example runner script and the test module,
/// reaching the API server as [`RUNNER`] (its URL for curl, a kubeconfig for
/// terraform's backend). The chart's image, ServiceAccount and limits are kept.
fn local_runner(mut config: Value, api: &FakeApiServer, scratch: &Scratch) -> Value {
    let kubeconfig = scratch.0.join("runner-kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig_as(RUNNER)).unwrap();
    let script = repo_root().join("examples/provisioner/runner/berth-runner.sh");
    let module = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/terraform"));
    let runner = &mut config["runner"];
    runner["command"] = json!([script.display().to_string()]);
    let env = runner["env"].as_object().cloned().unwrap_or_default();
    let mut env = Value::Object(env);
    for (name, value) in [
        ("BERTH_KUBE_API", api.url_as(RUNNER)),
        ("KUBE_CONFIG_PATH", kubeconfig.display().to_string()),
        ("BERTH_TF_MODULE", module.display().to_string()),
        ("CHECKPOINT_DISABLE", "1".to_owned()),
        ("BERTH_PUSH_BACKOFF", "0".to_owned()),
    ] {
        env[name] = json!(value);
    }
    runner["env"] = env;
    // The test module's variables; the chart's others are not declared there.
    config["terraform_vars"]["vpc_id"] = json!("vpc-test");
    // Node creation sleeps, so a run can be canceled while terraform runs.
    config["terraform_vars"]["behaviour"] = json!("slow");
    config
}

/// The rules the chart binds to `account`, in the namespace the run uses (the release
/// namespace stands for [`NAMESPACE`]).
fn grants(rendered: &Rendered, account: &str) -> Vec<Grant> {
    let (_, namespace) = release(CHART);
    let mut grants = rbac::grants(rendered, namespace, account);
    assert!(!grants.is_empty(), "the chart grants {account} nothing");
    for grant in &mut grants {
        if grant.namespace.as_deref() == Some(namespace) {
            grant.namespace = Some(NAMESPACE.to_owned());
        }
    }
    grants
}

struct World {
    server: Provisioner,
    _kubelet: Kubelet,
}

impl World {
    fn run_id(reply: &support::Reply) -> String {
        let body = reply.json();
        body["latest_run"]["id"]
            .as_str()
            .or_else(|| body["job_name"].as_str())
            .or_else(|| body["id"].as_str())
            .unwrap_or_else(|| panic!("a run id in {body}"))
            .to_owned()
    }
}

const ENDED: &[&str] = &["applied", "planned", "errored", "canceled"];

/// Applies `spec` to [`CLUSTER`] (a new spec: 201) and cancels the run once terraform
/// is creating the (slow) nodes; returns the run id.
async fn apply_and_cancel(w: &World, spec: &Value) -> String {
    let path = format!("/v1/clusters/{CLUSTER}");
    let created = w.server.call("PUT", &path, Some(&spec.to_string()));
    assert_eq!(created.status, 201, "{}", created.text());
    let id = World::run_id(&created);
    w.server.wait_for_log(&id, "creating nodes slowly").await;
    // Another operation while this one runs is refused (the cluster's Lease is held).
    let mut seed = spec.clone();
    seed["cluster_name"] = json!(CLUSTER);
    let again = w
        .server
        .call("POST", "/clusters/provision", Some(&seed.to_string()));
    assert_eq!(again.status, 409, "{}", again.text());
    let cancel = w
        .server
        .call("POST", &format!("/v1/runs/{id}/cancel"), None);
    assert_eq!(cancel.status, 202, "{}", cancel.text());
    let run = w.server.wait_for(&id, ENDED).await;
    assert_eq!(run["state"], "canceled", "{}", w.server.log(&id));
    id
}

/// A cluster's life through the API, the runner doing each run: an apply canceled, the
/// spec changed and that apply canceled too, status and list, destroy, cleanup.
async fn a_clusters_life(w: &World) {
    let mut spec = json!({"kubernetes_version": "1.33", "instance_type": "m7i-flex.large",
        "ip_family": "ipv4"});
    apply_and_cancel(w, &spec).await;
    spec["instance_type"] = json!("m7i.xlarge");
    let changed = apply_and_cancel(w, &spec).await;
    let status = w
        .server
        .call("GET", &format!("/clusters/{CLUSTER}/status"), None);
    assert_eq!(status.status, 200, "{}", status.text());
    let listed = w.server.call("GET", "/v1/clusters", None);
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert!(w
        .server
        .log(&changed)
        .contains("sending SIGINT to terraform"));

    let destroy = w
        .server
        .call("DELETE", &format!("/clusters/{CLUSTER}"), None);
    assert_eq!(destroy.status, 200, "{}", destroy.text());
    let destroy = World::run_id(&destroy);
    let run = w.server.wait_for(&destroy, ENDED).await;
    assert_eq!(run["state"], "applied", "{}", w.server.log(&destroy));
    let cleanup = w
        .server
        .call("DELETE", &format!("/clusters/{CLUSTER}/cleanup"), None);
    assert_eq!(cleanup.status, 200, "{}", cleanup.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_rbac_is_exactly_what_the_api_and_the_runner_use() {
    for values in examples(CHART) {
        let rendered = template(CHART, &values, &[]);
        let deployments = pod::workloads(&rendered);
        assert_eq!(deployments.len(), 1, "{values}: one workload, the API");
        let api_account = pod::service_account(deployments[0]);
        let config = rendered_config(&rendered);
        let runner_account = config["runner"]["service_account"]
            .as_str()
            .expect("the runner's ServiceAccount in the rendered config")
            .to_owned();

        let api = Arc::new(FakeApiServer::start().expect("fake API server"));
        let scratch = Scratch::new();
        let home = scratch.0.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let config = local_runner(config, &api, &scratch);
        let server = Provisioner::start_with_kubeconfig(
            &api.kubeconfig_as(API),
            &serde_json::to_string(&config).unwrap(),
        );
        let kubelet = Kubelet::start(api.clone(), home);
        let w = World {
            server,
            _kubelet: kubelet,
        };
        a_clusters_life(&w).await;
        drop(w);

        let at = |who: &str| format!("{who} ({})", values_file(CHART, &values).display());
        for (who, account, client) in [
            ("the API", &api_account, API),
            ("the runner", &runner_account, RUNNER),
        ] {
            let requests = api.resource_requests_of(client);
            assert!(
                !requests.is_empty(),
                "{who} asked nothing of the API server"
            );
            rbac::assert_least_privilege(
                &at(who),
                &format!("{NAMESPACE}/{account}"),
                &grants(&rendered, account),
                &requests,
                // This run takes every path the chart grants for: no rule is justified
                // by a path it does not take.
                |_| None,
            );
        }
    }
}
