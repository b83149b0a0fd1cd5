//! The provisioner's metrics on berth-runtime's admin server: API requests by route and
//! status, runs started, active and finished (from the Jobs' conditions, written here as
//! the Job controller would) with their durations.

mod support;

use std::time::{Duration, Instant};

use berth_kube::fake::FakeApiServer;
use k8s_openapi::api::batch::v1::Job;
use serde_json::json;
use support::{config_yaml, Provisioner, IDLE_RUNNER, NAMESPACE};

/// Writes a start time and a terminal condition `took` seconds later.
fn end_job(api: &FakeApiServer, id: &str, condition: &str, took: u32) {
    let mut job: Job = api.get(Some(NAMESPACE), id).expect("the run's Job");
    job.status = Some(
        serde_json::from_value(json!({
            "startTime": "2026-01-01T00:00:00Z",
            "conditions": [{"type": condition, "status": "True",
                "lastTransitionTime": format!("2026-01-01T00:00:{took:02}Z")}],
        }))
        .unwrap(),
    );
    api.put(&job);
}

/// Scrapes until every line is there (the run metrics follow a watch).
fn scrape_until(server: &Provisioner, lines: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = server.metrics();
        if lines.iter().all(|l| text.lines().any(|t| t == *l)) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "missing some of {lines:#?} in\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn requests_and_runs_are_counted_on_the_admin_server() {
    let api = FakeApiServer::start().expect("fake API server");
    // A run that ended before the server started is not counted as ending now.
    let old: Job = serde_json::from_value(json!({
        "metadata": {"name": "run-old", "namespace": NAMESPACE, "labels": {
            "app.kubernetes.io/managed-by": "berth-provisioner",
            "berth.dev/operation": "destroy"}},
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }))
    .unwrap();
    api.put(&old);
    let server = Provisioner::start(&api, &config_yaml(&[], IDLE_RUNNER));

    assert_eq!(server.request("GET", "/health", &[], None).status, 200);
    assert_eq!(server.request("GET", "/v1/clusters", &[], None).status, 401);
    let apply = server.seed_post("provision", "m1", "m5.large");
    assert_eq!(apply.status, 200, "{}", apply.text());
    let plan = server.seed_post("test", "m2", "m5.large");
    assert_eq!(plan.status, 200, "{}", plan.text());
    server.seed_post("provision", "m1", "m5.large").problem(409);
    server.call("GET", "/v1/runs/run-nope", None).problem(404);
    server.call("GET", "/no/such/endpoint", None).problem(404);

    scrape_until(
        &server,
        &[
            "berth_provisioner_runs_active{operation=\"apply\"} 1",
            "berth_provisioner_runs_active{operation=\"plan\"} 1",
            "berth_provisioner_runs_active{operation=\"destroy\"} 0",
        ],
    );
    end_job(
        &api,
        apply.json()["job_name"].as_str().unwrap(),
        "Complete",
        42,
    );
    end_job(&api, plan.json()["job_name"].as_str().unwrap(), "Failed", 7);
    let text = scrape_until(
        &server,
        &[
            "berth_provisioner_runs_total{operation=\"apply\",result=\"applied\"} 1",
            "berth_provisioner_runs_total{operation=\"plan\",result=\"errored\"} 1",
            "berth_provisioner_runs_active{operation=\"apply\"} 0",
            "berth_provisioner_runs_active{operation=\"plan\"} 0",
        ],
    );
    for line in [
        "berth_provisioner_runs_started_total{operation=\"apply\"} 1",
        "berth_provisioner_runs_started_total{operation=\"plan\"} 1",
        "berth_provisioner_run_duration_seconds_sum{operation=\"apply\",result=\"applied\"} 42.0",
        "berth_provisioner_run_duration_seconds_sum{operation=\"plan\",result=\"errored\"} 7.0",
        "berth_provisioner_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1",
        "berth_provisioner_http_requests_total{method=\"GET\",route=\"/v1/clusters\",status=\"401\"} 1",
        "berth_provisioner_http_requests_total{method=\"POST\",route=\"/clusters/provision\",status=\"200\"} 1",
        "berth_provisioner_http_requests_total{method=\"POST\",route=\"/clusters/provision\",status=\"409\"} 1",
        "berth_provisioner_http_requests_total{method=\"POST\",route=\"/clusters/test\",status=\"200\"} 1",
        "berth_provisioner_http_requests_total{method=\"GET\",route=\"/v1/runs/{id}\",status=\"404\"} 1",
        "berth_provisioner_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
        "berth_provisioner_http_request_duration_seconds_count{method=\"POST\",route=\"/clusters/provision\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    assert!(text.contains("mode=\"provisioner\""), "{text}");
    assert!(
        !text.contains("berth_provisioner_runs_total{operation=\"destroy\""),
        "{text}"
    );
}
