//! The compiled berth-provisioner against the fake Kubernetes API server, with no
//! kubelet: Jobs stay as created unless a test writes their status, as the Job
//! controller would. Each seed-004 defect has a test here that fails on its behaviour.

mod support;

use berth_kube::fake::FakeApiServer;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::ByteString;
use serde_json::{json, Value};
use support::{config_yaml, seed_body, Provisioner, IDLE_RUNNER, NAMESPACE, TOKEN};

fn start() -> (FakeApiServer, Provisioner) {
    let api = FakeApiServer::start().expect("fake API server");
    let server = Provisioner::start(&api, &config_yaml(&[], IDLE_RUNNER));
    (api, server)
}

fn job(api: &FakeApiServer, id: &str) -> Job {
    api.get::<Job>(Some(NAMESPACE), id)
        .unwrap_or_else(|| panic!("Job {id} exists"))
}

/// Writes Job conditions, as the Job controller does.
fn finish_job(api: &FakeApiServer, id: &str, conditions: &[&str]) {
    let mut job = job(api, id);
    let conditions: Vec<Value> = conditions
        .iter()
        .map(|c| json!({"type": c, "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}))
        .collect();
    job.status = Some(serde_json::from_value(json!({"conditions": conditions})).unwrap());
    api.put(&job);
}

fn jobs(api: &FakeApiServer) -> Vec<Job> {
    api.list::<Job>(Some(NAMESPACE))
}

#[test]
fn health_is_open_and_everything_else_needs_a_bearer_token() {
    let (_api, server) = start();
    let health = server.request("GET", "/health", &[], None);
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"status": "healthy"}));
    let bodies = [
        vec![],
        vec![("Authorization", "Bearer wrong")],
        vec![("Authorization", "Bearer ")],
        vec![("Authorization", "Basic czNjcjN0")],
        vec![("Authorization", TOKEN)],
    ];
    for headers in bodies {
        let reply = server.request("GET", "/clusters/a/status", &headers, None);
        reply.problem(401);
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer realm=\"berth-provisioner\""),
            "{headers:?}"
        );
        let reply = server.request(
            "POST",
            "/clusters/provision",
            &headers,
            Some(&seed_body("a", "m5.large")),
        );
        reply.problem(401);
    }
    assert_eq!(server.call("GET", "/clusters/a/status", None).status, 404);
    let lower = format!("bearer {TOKEN}");
    assert_eq!(
        server
            .request("GET", "/v1/clusters", &[("Authorization", &lower)], None)
            .status,
        200
    );
    assert!(!server.logs().contains(TOKEN), "the token was logged");
}

#[test]
fn tokens_rotate_when_the_file_changes() {
    let (_api, server) = start();
    assert_eq!(server.call("GET", "/v1/clusters", None).status, 200);
    std::fs::write(&server.token_file, "rotated-token-with-another-length\n").unwrap();
    server.call("GET", "/v1/clusters", None).problem(401);
    let reply = server.request(
        "GET",
        "/v1/clusters",
        &[("Authorization", "Bearer rotated-token-with-another-length")],
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[test]
fn names_of_64_characters_are_refused_and_nothing_is_created() {
    // Seed 004 accepted names up to 100 characters; Job and label values allow 63.
    let (api, server) = start();
    let long = "a".repeat(64);
    let problem = server
        .seed_post("provision", &long, "m5.large")
        .problem(422);
    assert_eq!(problem["errors"][0]["field"], "cluster_name");
    let seed_pattern_ok = format!("{}-1", "b".repeat(97));
    server
        .seed_post("test", &seed_pattern_ok, "m5.large")
        .problem(422);
    assert!(jobs(&api).is_empty(), "nothing is created");
    assert!(api.list::<ConfigMap>(Some(NAMESPACE)).is_empty());

    let max = "c".repeat(63);
    let reply = server.seed_post("test", &max, "m5.large");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let job = job(&api, reply.json()["job_name"].as_str().unwrap());
    assert!(job.metadata.name.unwrap().len() <= 63);
    assert_eq!(job.metadata.labels.unwrap()["berth.dev/cluster"], max);
}

#[test]
fn malformed_bodies_are_422_naming_each_field() {
    let (api, server) = start();
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({}),
            vec![
                "cluster_name",
                "kubernetes_version",
                "instance_type",
                "ip_family",
            ],
        ),
        (
            json!({"cluster_name": "ok", "kubernetes_version": "1.20", "instance_type": "m5.large", "ip_family": "ipv4"}),
            vec!["kubernetes_version"],
        ),
        (
            json!({"cluster_name": "ok", "kubernetes_version": "1.33", "instance_type": "m5.hugelarge", "ip_family": "ipv4"}),
            vec!["instance_type"],
        ),
        (
            json!({"cluster_name": "ok", "kubernetes_version": "1.33", "instance_type": "m5.large", "ip_family": "ipv5"}),
            vec!["ip_family"],
        ),
        (
            json!({"cluster_name": "Bad_Name", "kubernetes_version": 1.33, "instance_type": "m5.large", "ip_family": "ipv4"}),
            vec!["cluster_name", "kubernetes_version"],
        ),
        (json!([1, 2]), vec!["body"]),
    ];
    for (body, fields) in cases {
        let problem = server
            .call("POST", "/clusters/provision", Some(&body.to_string()))
            .problem(422);
        let named: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(named, fields, "{body}");
    }
    server
        .call("POST", "/clusters/test", Some("{not json"))
        .problem(400);
    let problem = server
        .call(
            "PUT",
            "/v1/clusters/x",
            Some(r#"{"kubernetes_version":"1.33","instance_type":"t3","ip_family":"ipv4"}"#),
        )
        .problem(422);
    assert_eq!(problem["errors"][0]["field"], "instance_type");
    server.call("GET", "/v1/clusters/UPPER", None).problem(422);
    assert!(jobs(&api).is_empty());
    assert!(api.list::<ConfigMap>(Some(NAMESPACE)).is_empty());
    server.call("GET", "/no/such/thing", None).problem(404);
}

#[test]
fn runs_are_jobs_named_by_run_id_with_labels_and_limits() {
    let (api, server) = start();
    let reply = server.seed_post("test", "test-cluster-001", "m5.xlarge");
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["cluster_name"], "test-cluster-001");
    assert_eq!(body["status"], "pending");
    assert_eq!(
        body["message"],
        "Dry-run job created. Check status endpoint for progress."
    );
    assert!(body["created_at"].is_string());
    let id = body["job_name"].as_str().unwrap();
    assert!(id.starts_with("run-") && id.len() <= 63);
    let plan = job(&api, id);
    let labels = plan.metadata.labels.clone().unwrap();
    assert_eq!(labels["berth.dev/cluster"], "test-cluster-001");
    assert_eq!(labels["berth.dev/operation"], "plan");
    assert_eq!(labels["berth.dev/run"], id);
    let spec = plan.spec.unwrap();
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(spec.active_deadline_seconds, Some(3 * 3600));
    assert_eq!(spec.ttl_seconds_after_finished, Some(24 * 3600));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(1800));
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let env: Vec<(String, String)> = pod.containers[0]
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    for expected in [
        ("TF_VAR_cluster_name", "test-cluster-001"),
        ("TF_VAR_instance_type", "m5.xlarge"),
        ("TF_VAR_region", "ap-south-1"),
        ("TF_VAR_vpc_id", "vpc-test"),
        ("BERTH_OPERATION", "plan"),
    ] {
        assert!(
            env.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {env:?}"
        );
    }
    // The suffix must not end in -<number> (Terraform reads that as a workspace).
    let suffix = &env
        .iter()
        .find(|(k, _)| k == "BERTH_STATE_SUFFIX")
        .unwrap()
        .1;
    assert!(suffix.starts_with("test-cluster-001-h"), "{suffix}");

    finish_job(&api, id, &["SuccessCriteriaMet", "Complete"]);
    let reply = server.seed_post("provision", "test-cluster-001", "m5.xlarge");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let apply = job(&api, reply.json()["job_name"].as_str().unwrap());
    assert_eq!(
        apply.spec.unwrap().ttl_seconds_after_finished,
        None,
        "apply Jobs are kept"
    );
}

#[test]
fn a_second_run_is_refused_while_one_is_active() {
    // Seed 004 had no lock: a destroy could start while a provision ran.
    let (api, server) = start();
    let id: &str = &server.seed_run("provision", "prod", "m5.large");
    for (method, path, body) in [
        ("DELETE", "/clusters/prod", None),
        (
            "POST",
            "/clusters/provision",
            Some(seed_body("prod", "m5.large")),
        ),
        (
            "POST",
            "/clusters/test",
            Some(seed_body("prod", "m5.large")),
        ),
    ] {
        let problem = server.call(method, path, body.as_deref()).problem(409);
        assert_eq!(problem["active_run"], id, "{method} {path}");
        assert!(problem["detail"].as_str().unwrap().contains(id));
    }
    assert_eq!(jobs(&api).len(), 1);
    // FailureTarget comes before the pod is gone: still active.
    finish_job(&api, id, &["FailureTarget"]);
    server.call("DELETE", "/clusters/prod", None).problem(409);
    finish_job(&api, id, &["FailureTarget", "Failed"]);
    let destroy = server.call("DELETE", "/clusters/prod", None);
    assert_eq!(destroy.status, 200, "{}", destroy.text());
    assert_eq!(
        job(&api, destroy.json()["job_name"].as_str().unwrap())
            .metadata
            .labels
            .unwrap()["berth.dev/operation"],
        "destroy"
    );
    // A lock whose Job vanished (deleted by hand) is stale once the creation grace is over;
    // a fresh one whose Job is not created yet is not.
    let lease: Lease = api
        .get(Some(NAMESPACE), "berth-lock-prod")
        .expect("the cluster's lock");
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        destroy.json()["job_name"].as_str()
    );
}

#[test]
fn status_follows_the_newest_run_of_the_cluster() {
    // Seed 004 looked Jobs up by fixed names and could report an older one.
    let (api, server) = start();
    let plan_id: &str = &server.seed_run("test", "web", "m5.large");
    finish_job(&api, plan_id, &["Complete"]);
    let status = server.call("GET", "/clusters/web/status", None).json();
    assert_eq!(
        (
            status["job_name"].as_str(),
            status["status"].as_str(),
            status["phase"].as_str()
        ),
        (Some(plan_id), Some("completed"), Some("Succeeded"))
    );
    assert_eq!(
        status["cluster_id"],
        Value::Null,
        "a plan creates no cluster"
    );

    let apply_id: &str = &server.seed_run("provision", "web", "m5.large");
    let status = server.call("GET", "/clusters/web/status", None).json();
    assert_eq!(
        (status["job_name"].as_str(), status["status"].as_str()),
        (Some(apply_id), Some("pending"))
    );
    finish_job(&api, apply_id, &["Failed"]);
    let status = server.call("GET", "/clusters/web/status", None).json();
    assert_eq!(
        (
            status["job_name"].as_str(),
            status["status"].as_str(),
            status["phase"].as_str()
        ),
        (Some(apply_id), Some("failed"), Some("Failed"))
    );
    assert!(status["message"].as_str().unwrap().contains(apply_id));

    let apply2_id: &str = &server.seed_run("provision", "web", "m5.large");
    finish_job(&api, apply2_id, &["Complete"]);
    let status = server.call("GET", "/clusters/web/status", None).json();
    assert_eq!(status["job_name"], apply2_id);
    assert_eq!(status["cluster_id"], "web");
    assert_eq!(
        status["kubeconfig_command"],
        "aws eks update-kubeconfig --region ap-south-1 --name web"
    );
    let view = server.call("GET", "/v1/clusters/web", None).json();
    assert_eq!(view["phase"], "ready");
    assert_eq!(view["latest_run"]["id"], apply2_id);
    assert_eq!(view["latest_run"]["state"], "applied");
}

fn state_secret(name: &str, resources: usize) -> Secret {
    use std::io::Write as _;
    let instances: Vec<Value> = (0..resources)
        .map(|i| json!({"attributes": {"id": i.to_string()}}))
        .collect();
    let state = json!({"version": 4, "resources": [{"mode": "managed", "type": "terraform_data", "name": "x", "instances": instances}]});
    let mut gz = flate2_encoder();
    gz.write_all(state.to_string().as_bytes()).unwrap();
    let mut secret = Secret::default();
    secret.metadata.name = Some(format!("tfstate-default-{name}"));
    secret.metadata.namespace = Some(NAMESPACE.into());
    secret.data = Some([("tfstate".to_owned(), ByteString(gz.finish().unwrap()))].into());
    secret
}

fn flate2_encoder() -> flate2::write::GzEncoder<Vec<u8>> {
    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default())
}

#[test]
fn cleanup_of_a_live_cluster_is_refused() {
    // Seed 004 deleted the state of live clusters.
    let (api, server) = start();
    let apply_id: &str = &server.seed_run("provision", "live", "m5.large");
    api.put(&state_secret("live", 3));
    // Terraform's own lock, as a running runner holds it: never removed while live.
    let tf_lock = "lock-tfstate-default-live";
    let held: Lease = serde_json::from_value(
        json!({"metadata": {"name": tf_lock, "namespace": NAMESPACE},
        "spec": {"holderIdentity": "terraform"}}),
    )
    .unwrap();
    api.put(&held);
    server
        .call("DELETE", "/clusters/live/cleanup", None)
        .problem(409);
    finish_job(&api, apply_id, &["Complete"]);
    let problem = server
        .call("DELETE", "/clusters/live/cleanup", None)
        .problem(409);
    assert!(
        problem["detail"].as_str().unwrap().contains("3 resource"),
        "{problem}"
    );
    // A destroy that failed leaves resources: still refused.
    let destroy = server.call("DELETE", "/clusters/live", None).json();
    let destroy_id = destroy["job_name"].as_str().unwrap();
    finish_job(&api, destroy_id, &["Failed"]);
    api.put(&state_secret("live", 0));
    let problem = server
        .call("DELETE", "/clusters/live/cleanup", None)
        .problem(409);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not a destroy that applied"),
        "{problem}"
    );
    assert!(
        api.get::<Secret>(Some(NAMESPACE), "tfstate-default-live")
            .is_some(),
        "the state is kept"
    );
    assert!(
        api.get::<Lease>(Some(NAMESPACE), tf_lock).is_some(),
        "Terraform's lock is kept"
    );

    let destroy = server.call("DELETE", "/clusters/live", None).json();
    finish_job(&api, destroy["job_name"].as_str().unwrap(), &["Complete"]);
    // An errored.tfstate the failed destroy's runner kept, superseded by the destroy.
    let kept: Secret = serde_json::from_value(json!({"metadata": {
        "name": format!("{destroy_id}-errored-tfstate"), "namespace": NAMESPACE,
        "labels": {"app.kubernetes.io/managed-by": "berth-provisioner", "berth.dev/cluster": "live"}}}))
    .unwrap();
    api.put(&kept);
    let reply = server.call("DELETE", "/clusters/live/cleanup", None);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let deleted = reply.json()["deleted"].clone();
    for object in [
        "secret/tfstate-default-live".to_owned(),
        format!("secret/{destroy_id}-errored-tfstate"),
        "lease/berth-lock-live".to_owned(),
        format!("lease/{tf_lock}"),
    ] {
        assert!(
            deleted.as_array().unwrap().contains(&json!(object)),
            "{object} in {deleted}"
        );
    }
    assert!(api.list::<Secret>(Some(NAMESPACE)).is_empty());
    assert!(jobs(&api).is_empty());
    assert!(api.list::<ConfigMap>(Some(NAMESPACE)).is_empty());
}

#[test]
fn the_resource_api_is_idempotent() {
    let (api, server) = start();
    let spec = r#"{"kubernetes_version":"1.32","instance_type":"g4dn.xlarge","ip_family":"ipv4"}"#;
    let created = server.call("PUT", "/v1/clusters/alpha", Some(spec));
    assert_eq!(created.status, 201, "{}", created.text());
    let run_id = created.json()["latest_run"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(created.json()["phase"], "provisioning");
    let again = server.call("PUT", "/v1/clusters/alpha", Some(spec));
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["latest_run"]["id"], run_id);
    let other = r#"{"kubernetes_version":"1.33","instance_type":"g4dn.xlarge","ip_family":"ipv4"}"#;
    assert_eq!(
        server
            .call("PUT", "/v1/clusters/alpha", Some(other))
            .problem(409)["active_run"],
        run_id
    );
    assert_eq!(jobs(&api).len(), 1);
    finish_job(&api, &run_id, &["Complete"]);

    // Runs with an Idempotency-Key: a retry answers the same run.
    let key = [
        ("Authorization", format!("Bearer {TOKEN}")),
        ("Idempotency-Key", "k-1".to_owned()),
    ];
    let headers: Vec<(&str, &str)> = key.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = server.request(
        "POST",
        "/v1/clusters/alpha/runs",
        &headers,
        Some(r#"{"operation":"plan"}"#),
    );
    assert_eq!(first.status, 201, "{}", first.text());
    let retry = server.request(
        "POST",
        "/v1/clusters/alpha/runs",
        &headers,
        Some(r#"{"operation":"plan"}"#),
    );
    assert_eq!(retry.status, 200);
    assert_eq!(first.json()["id"], retry.json()["id"]);
    server
        .call(
            "POST",
            "/v1/clusters/alpha/runs",
            Some(r#"{"operation":"plan"}"#),
        )
        .problem(409);
    server
        .call(
            "POST",
            "/v1/clusters/alpha/runs",
            Some(r#"{"operation":"nuke"}"#),
        )
        .problem(422);
    server
        .call(
            "POST",
            "/v1/clusters/nobody/runs",
            Some(r#"{"operation":"plan"}"#),
        )
        .problem(404);

    let run = server
        .call(
            "GET",
            &format!("/v1/runs/{}", first.json()["id"].as_str().unwrap()),
            None,
        )
        .json();
    assert_eq!(run["operation"], "plan");
    assert_eq!(run["state"], "pending");
    assert_eq!(run["spec"]["instance_type"], "g4dn.xlarge");
    server.call("GET", "/v1/runs/run-none", None).problem(404);

    for name in ["beta", "gamma"] {
        assert_eq!(
            server
                .call("PUT", &format!("/v1/clusters/{name}"), Some(spec))
                .status,
            201
        );
    }
    let page = server.call("GET", "/v1/clusters?limit=2", None).json();
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert_eq!(page["next_after"], "beta");
    let page = server
        .call("GET", "/v1/clusters?limit=2&after=beta", None)
        .json();
    assert_eq!(page["items"][0]["name"], "gamma");
    assert_eq!(page["next_after"], Value::Null);
    server
        .call("GET", "/v1/clusters?limit=0", None)
        .problem(422);
    server
        .call("GET", "/v1/clusters?limit=x", None)
        .problem(400);
}

fn log_chunk(run: &str, seq: u32, text: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(format!("{run}-log-{seq:06}"));
    cm.metadata.namespace = Some(NAMESPACE.into());
    cm.metadata.labels = Some(
        [
            ("berth.dev/run".to_owned(), run.to_owned()),
            ("berth.dev/object".to_owned(), "log".to_owned()),
        ]
        .into(),
    );
    cm.binary_data = Some([("log".to_owned(), ByteString(text.as_bytes().to_vec()))].into());
    cm
}

#[test]
fn logs_page_by_offset_follow_and_cancel() {
    let (api, server) = start();
    let id = server.seed_run("provision", "logs", "m5.large");
    api.put(&log_chunk(&id, 1, "Initializing the backend...\n"));
    api.put(&log_chunk(&id, 2, "Plan: 2 to add\n"));
    let page = server.call("GET", &format!("/v1/runs/{id}/logs?limit=12"), None);
    assert_eq!(page.text(), "Initializing");
    assert_eq!(page.header("x-next-offset"), Some("12"));
    let rest = server.call("GET", &format!("/v1/runs/{id}/logs?offset=12"), None);
    assert_eq!(rest.text(), " the backend...\nPlan: 2 to add\n");
    assert_eq!(rest.header("x-next-offset"), Some("43"));
    let seed_logs = server.call("GET", "/clusters/logs/logs", None).json();
    assert_eq!(
        seed_logs["logs"],
        "Initializing the backend...\nPlan: 2 to add\n"
    );
    assert_eq!(seed_logs["job_name"], id);

    let cancel = server.call("POST", &format!("/v1/runs/{id}/cancel"), None);
    assert_eq!(cancel.status, 202, "{}", cancel.text());
    assert_eq!(cancel.json()["cancel_requested"], true);
    let record: ConfigMap = api.get(Some(NAMESPACE), &id).unwrap();
    assert!(
        record.data.unwrap().contains_key("cancel"),
        "the runner sees the request"
    );
    // The Job controller ends it after the cancel grace (600 s) if terraform does not stop.
    let deadline = job(&api, &id)
        .spec
        .unwrap()
        .active_deadline_seconds
        .unwrap();
    assert!((600..=660).contains(&deadline), "{deadline}");

    // follow=true streams until the run ends.
    let addr = server.addr.clone();
    let follow_path = format!("/v1/runs/{id}/logs?follow=true&offset=28");
    let follower = std::thread::spawn(move || {
        support::http(
            &addr,
            "GET",
            &follow_path,
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            None,
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    api.put(&log_chunk(&id, 3, "Interrupt received.\n"));
    finish_job(&api, &id, &["Failed"]);
    let followed = follower.join().unwrap();
    assert_eq!(followed.text(), "Plan: 2 to add\nInterrupt received.\n");
    let run = server.call("GET", &format!("/v1/runs/{id}"), None).json();
    assert_eq!(run["state"], "canceled");
    server
        .call("POST", &format!("/v1/runs/{id}/cancel"), None)
        .problem(409);

    // The Job and its pod gone (ttlSecondsAfterFinished, or deleted by hand): the
    // runner's final report decides the state, and the log is served as before.
    let mut record: ConfigMap = api.get(Some(NAMESPACE), &id).unwrap();
    let data = record.data.get_or_insert_with(Default::default);
    data.insert("phase".into(), "failed".into());
    api.put(&record);
    assert!(api.delete::<Job>(Some(NAMESPACE), &id));
    let run = server.call("GET", &format!("/v1/runs/{id}"), None).json();
    assert_eq!(run["state"], "canceled", "{run}");
    let seed_logs = server.call("GET", "/clusters/logs/logs", None).json();
    assert_eq!(
        seed_logs["logs"],
        "Initializing the backend...\nPlan: 2 to add\nInterrupt received.\n"
    );
}

#[test]
fn the_openapi_document_matches_the_committed_copy() {
    let (_api, server) = start();
    let reply = server.request("GET", "/openapi.json", &[], None);
    assert_eq!(reply.status, 200);
    let served = reply.json();
    assert_eq!(
        served["openapi"].as_str().map(|v| v.starts_with("3.")),
        Some(true)
    );
    for path in [
        "/clusters/test",
        "/clusters/{name}/status",
        "/v1/clusters/{name}",
        "/v1/runs/{id}/logs",
        "/health",
    ] {
        assert!(served["paths"].get(path).is_some(), "{path}");
    }
    let committed_path = support::repo_root().join("bins/berth-provisioner/openapi.json");
    let text = format!("{}\n", reply.text());
    if std::env::var_os("BERTH_UPDATE_OPENAPI").is_some() {
        std::fs::write(&committed_path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == text,
        "bins/berth-provisioner/openapi.json is out of date: run `BERTH_UPDATE_OPENAPI=1 cargo test -p berth-provisioner --test api openapi` and commit it"
    );
}

#[test]
fn a_bad_start_exits_2_and_names_the_problem() {
    let scratch = support::Scratch::new();
    let config = scratch.0.join("config.yaml");
    std::fs::write(&config, config_yaml(&[], IDLE_RUNNER)).unwrap();
    let empty_tokens = scratch.0.join("tokens");
    std::fs::write(&empty_tokens, "# none yet\n").unwrap();
    let bad_config = scratch.0.join("bad.yaml");
    std::fs::write(
        &bad_config,
        "kubernetes_versions: []\nregion: x\nrunner: {image: i}\n",
    )
    .unwrap();
    let cases: [(&[(&str, &std::path::Path)], &str); 3] = [
        (&[("BERTH_PROVISIONER_CONFIG", &config)], "--token-file"),
        (
            &[
                ("BERTH_PROVISIONER_CONFIG", &config),
                ("BERTH_PROVISIONER_TOKEN_FILE", &empty_tokens),
            ],
            "holds no token",
        ),
        (
            &[
                ("BERTH_PROVISIONER_CONFIG", &bad_config),
                ("BERTH_PROVISIONER_TOKEN_FILE", &empty_tokens),
            ],
            "kubernetes_versions",
        ),
    ];
    for (env, expected) in cases {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_berth-provisioner"));
        command
            .env_clear()
            .env("POD_NAMESPACE", NAMESPACE)
            .args(["--listen", "127.0.0.1:0"]);
        for (k, v) in env {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
}
