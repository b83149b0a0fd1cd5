//! Hostile path parameters and query strings against the compiled server: every
//! endpoint with a `{name}` or `{id}`, given arbitrary (percent-encoded) text, answers
//! a 4xx problem+json with a title, never a 5xx; and nothing is created — no Job,
//! no ConfigMap, no Lease. Request bodies: the validation the API applies
//! (`validate::seed_request`, `validate::v1_spec_request`) accepts a spec the
//! configuration allows or refuses with a 400/422 naming each invalid field (the
//! compiled server given any body: `validation.rs`). Under libFuzzer: the `fuzz/`
//! targets `provisioner_names` and `provisioner_bodies`.

mod support;

// The server's validation, compiled in as the fuzz target does (a binary has no
// library to import).
#[allow(dead_code)]
#[path = "../src/config.rs"]
mod config;
#[allow(dead_code)]
#[path = "../src/problem.rs"]
mod problem;
#[allow(dead_code)]
#[path = "../src/validate.rs"]
mod validate;

use berth_core::plan::runs::{cluster_name_error, is_instance_type};
use berth_kube::fake::FakeApiServer;
use berth_testing::hostile::{any_json, assert_clear_error, config, one_edit, one_field_changed};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use support::{config_yaml, Provisioner, IDLE_RUNNER, NAMESPACE};

/// Every byte outside unreserved characters percent-encoded.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// (method, path template) of every endpoint with a parameter; `{}` is the parameter.
const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/clusters/{}/status"),
    ("GET", "/clusters/{}/logs"),
    ("DELETE", "/clusters/{}"),
    ("POST", "/clusters/{}/cleanup"),
    ("GET", "/v1/clusters/{}"),
    ("PUT", "/v1/clusters/{}"),
    ("POST", "/v1/clusters/{}/runs"),
    ("GET", "/v1/runs/{}"),
    ("POST", "/v1/runs/{}/cancel"),
    ("GET", "/v1/runs/{}/logs"),
    ("GET", "/v1/clusters?limit={}"),
    ("GET", "/v1/runs/x/logs?since={}"),
];

fn parameter() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[a-z0-9-]{0,70}",
        Just(String::new()),
        Just("..".to_owned()),
        Just("../../etc/passwd".to_owned()),
        Just("-x-".to_owned()),
        Just("a".repeat(64)),
        Just("\u{0}".to_owned()),
        Just("ä".repeat(40)),
    ]
}

#[test]
fn hostile_parameters_are_refused_and_change_nothing() {
    let api = FakeApiServer::start().expect("fake API server");
    let server = Provisioner::start(&api, &config_yaml(&[], IDLE_RUNNER));
    TestRunner::new(config(160))
        .run(
            &(0..ENDPOINTS.len(), parameter(), 0..3u8),
            |(which, parameter, body)| {
                let (method, template) = ENDPOINTS[which];
                let path = template.replace("{}", &encode(&parameter));
                // Bodies that are never a valid spec: nothing may start.
                let body = match body {
                    0 => None,
                    1 => Some("{}"),
                    _ => Some("{\"kubernetes_version\": 1}"),
                };
                let reply = server.call(method, &path, body);
                prop_assert!(
                    (400..500).contains(&reply.status),
                    "{method} {path} -> {} {}",
                    reply.status,
                    reply.text()
                );
                if reply.status != 405 {
                    let problem = reply.json();
                    assert_clear_error(problem["title"].as_str().unwrap_or_default());
                }
                Ok(())
            },
        )
        .unwrap();
    assert!(api.list::<Job>(Some(NAMESPACE)).is_empty());
    assert!(api.list::<Lease>(Some(NAMESPACE)).is_empty());
    let config_maps = api.list::<ConfigMap>(Some(NAMESPACE));
    assert!(config_maps.is_empty(), "{} ConfigMaps", config_maps.len());
    assert_eq!(server.call("GET", "/health", None).status, 200);
}

/// Regression (found by the test above): a run id the Kubernetes client cannot put in
/// a URL (`%00`) was a 502 "Kubernetes call failed"; it is no run: 404.
#[test]
fn a_run_id_that_cannot_name_an_object_is_not_found() {
    let api = FakeApiServer::start().expect("fake API server");
    let server = Provisioner::start(&api, &config_yaml(&[], IDLE_RUNNER));
    for id in ["%00", "%20", "..", "A", "-a", "a%2Fb"] {
        for (method, path) in [
            ("GET", format!("/v1/runs/{id}")),
            ("POST", format!("/v1/runs/{id}/cancel")),
            ("GET", format!("/v1/runs/{id}/logs")),
        ] {
            let reply = server.call(method, &path, None);
            assert_eq!(reply.status, 404, "{method} {path}: {}", reply.text());
        }
    }
}

/// The server configuration of these tests, as the server reads it.
fn server_config() -> config::ServerConfig {
    serde_saphyr::from_str(&config_yaml(&[], IDLE_RUNNER)).expect("the test configuration")
}

/// The seed's create body, valid.
fn seed_body() -> serde_json::Value {
    serde_json::json!({
        "cluster_name": "web",
        "kubernetes_version": "1.33",
        "instance_type": "m6gd.large",
        "ip_family": "ipv4",
    })
}

/// Accepted with a spec the configuration allows, or refused with a 400, or a 422
/// naming each invalid field with a reason.
fn spec_or_problem(
    result: Result<validate::ClusterSpec, problem::Problem>,
    config: &config::ServerConfig,
) -> Result<(), TestCaseError> {
    match result {
        Ok(spec) => {
            prop_assert!(config
                .kubernetes_versions
                .contains(&spec.kubernetes_version));
            prop_assert!(config.ip_families.contains(&spec.ip_family));
            prop_assert!(is_instance_type(&spec.instance_type), "{spec:?}");
        }
        Err(problem) => {
            prop_assert!(matches!(problem.status, 400 | 422), "{problem:?}");
            assert_clear_error(&problem.detail);
            if problem.status == 422 {
                prop_assert!(!problem.errors.is_empty(), "{problem:?}");
                for e in &problem.errors {
                    assert_clear_error(&e.message);
                    prop_assert!(!e.field.is_empty(), "{problem:?}");
                }
            }
        }
    }
    Ok(())
}

/// Any text, any JSON, and the valid body with one field changed or one edit.
fn hostile_body() -> impl Strategy<Value = Vec<u8>> {
    let valid = seed_body();
    let text = valid.to_string();
    prop_oneof![
        one_field_changed(valid).prop_map(|v| v.to_string().into_bytes()),
        any_json().prop_map(|v| v.to_string().into_bytes()),
        one_edit(&text).prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

#[test]
fn hostile_request_bodies_are_validated_or_refused_naming_each_field() {
    let settings = server_config();
    // The valid body is accepted by both: the test can tell acceptance from refusal.
    let body = seed_body().to_string();
    assert!(validate::seed_request(body.as_bytes(), &settings).is_ok());
    assert!(validate::v1_spec_request("web", body.as_bytes(), &settings).is_ok());
    TestRunner::new(config(512))
        .run(&(hostile_body(), parameter()), |(body, name)| {
            match validate::seed_request(&body, &settings) {
                Ok((named, spec)) => {
                    prop_assert!(cluster_name_error(&named).is_none(), "{named:?}");
                    spec_or_problem(Ok(spec), &settings)?;
                }
                Err(problem) => spec_or_problem(Err(problem), &settings)?,
            }
            for path_name in ["web", name.as_str()] {
                let result = validate::v1_spec_request(path_name, &body, &settings);
                if result.is_ok() {
                    prop_assert!(cluster_name_error(path_name).is_none(), "{path_name:?}");
                }
                spec_or_problem(result, &settings)?;
            }
            Ok(())
        })
        .unwrap();
}
