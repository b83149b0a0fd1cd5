//! Validation tables: the full EC2 instance-type list, and a property test that no
//! request body makes the compiled server fail (5xx) or die.

mod support;

use aws_sdk_ec2::types::InstanceType;
use berth_core::plan::runs::is_instance_type;
use berth_kube::fake::FakeApiServer;
use k8s_openapi::api::batch::v1::Job;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use support::{config_yaml, Provisioner, IDLE_RUNNER, NAMESPACE};

#[test]
fn every_ec2_instance_type_is_accepted() {
    let values = InstanceType::values();
    assert!(values.len() > 500, "the SDK lists {} types", values.len());
    let refused: Vec<&&str> = values.iter().filter(|t| !is_instance_type(t)).collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
}

/// The seed's instance-type pattern: a 2-3 character family (letter, digit, optional
/// letter) and a size up to `<n>xlarge`.
fn seed_pattern(t: &str) -> bool {
    let Some((family, size)) = t.split_once('.') else {
        return false;
    };
    let f = family.as_bytes();
    let family_ok = (f.len() == 2 || f.len() == 3)
        && f[0].is_ascii_lowercase()
        && f[1].is_ascii_digit()
        && f.get(2).is_none_or(u8::is_ascii_lowercase);
    let size_ok = ["nano", "micro", "small", "medium", "large", "xlarge"].contains(&size)
        || size
            .strip_suffix("xlarge")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    family_ok && size_ok
}

#[test]
fn the_server_accepts_every_type_the_seed_refused() {
    let refused_by_seed: Vec<&str> = InstanceType::values()
        .iter()
        .copied()
        .filter(|t| !seed_pattern(t))
        .collect();
    assert!(refused_by_seed.len() > 100, "{refused_by_seed:?}");
    for t in ["m6gd.large", "g4dn.xlarge", "c5.metal", "m7i-flex.large"] {
        assert!(refused_by_seed.contains(&t), "{t}");
    }
    let api = FakeApiServer::start().expect("fake API server");
    let server = Provisioner::start(&api, &config_yaml(&[], IDLE_RUNNER));
    for (i, instance_type) in refused_by_seed.iter().enumerate() {
        let reply = server.seed_post("test", &format!("c-{i}x"), instance_type);
        assert_eq!(reply.status, 200, "{instance_type}: {}", reply.text());
    }
    assert_eq!(
        api.list::<Job>(Some(NAMESPACE)).len(),
        refused_by_seed.len()
    );
}

#[test]
fn malformed_instance_types_are_refused() {
    for bad in [
        "",
        "m5",
        "m5.",
        ".large",
        "M5.LARGE",
        "m5.large ",
        "m5.2xlarge.x",
        "m5_large",
        "m5.-large",
        "-m5.large",
        "m5.metal-",
        "m5.huge",
        "x".repeat(70).as_str(),
    ] {
        assert!(!is_instance_type(bad), "{bad:?}");
    }
}

fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
    let scalar = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-zA-Z0-9._-]{0,80}".prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
    ];
    let field = prop_oneof![
        Just("cluster_name".to_owned()),
        Just("kubernetes_version".to_owned()),
        Just("instance_type".to_owned()),
        Just("ip_family".to_owned()),
        Just("operation".to_owned()),
        "[a-z_]{1,12}",
    ];
    let object = proptest::collection::btree_map(field, scalar, 0..6).prop_map(|m| {
        serde_json::to_vec(&m.into_iter().collect::<serde_json::Map<_, _>>()).unwrap()
    });
    prop_oneof![object, proptest::collection::vec(any::<u8>(), 0..200)]
}

#[test]
fn no_request_body_fails_the_server() {
    let api = FakeApiServer::start().expect("fake API server");
    let server = Provisioner::start(&api, &config_yaml(&[], IDLE_RUNNER));
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    let paths = [
        "/clusters/test",
        "/clusters/provision",
        "/v1/clusters/p-1",
        "/v1/clusters/p-1/runs",
    ];
    runner
        .run(&(body_strategy(), 0..paths.len()), |(body, which)| {
            let path = paths[which];
            let method = if path == "/v1/clusters/p-1" {
                "PUT"
            } else {
                "POST"
            };
            let reply = support::http(
                &server.addr,
                method,
                path,
                &[("Authorization", &format!("Bearer {}", support::TOKEN))],
                Some(&body),
            );
            prop_assert!(
                [200, 201, 400, 404, 409, 422].contains(&reply.status),
                "{method} {path} {:?} -> {} {}",
                String::from_utf8_lossy(&body),
                reply.status,
                reply.text()
            );
            Ok(())
        })
        .unwrap();
    assert_eq!(server.request("GET", "/health", &[], None).status, 200);
}
