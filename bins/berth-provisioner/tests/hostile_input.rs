//! Hostile path parameters and query strings against the compiled server: every
//! endpoint with a `{name}` or `{id}`, given arbitrary (percent-encoded) text, answers
//! a 4xx problem+json with a title, never a 5xx; and nothing is created — no Job,
//! no ConfigMap, no Lease. (Request bodies: `validation.rs`; the name grammar under
//! libFuzzer: the `fuzz/` target `provisioner_names`.)

mod support;

use berth_kube::fake::FakeApiServer;
use berth_testing::hostile::{assert_clear_error, config};
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
