//! Hostile input for Cast.ai node configurations: arbitrary bytes, arbitrary JSON and
//! a real configuration with one field changed never panic; a refusal is
//! `Error::Invalid` naming the configuration, and a parsed one keeps only valid
//! groups. The `fuzz/` target `castai_node_configuration` runs the same parser under
//! libFuzzer.

use berth_castai::parse_node_configuration;
use berth_core::domain::TargetGroupRef;
use berth_testing::hostile::{any_json, assert_clear_error, config, one_field_changed};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

const ID: &str = "5a3b0c2e-node-config";

fn valid_configuration() -> serde_json::Value {
    serde_json::json!({
        "id": ID,
        "name": "default",
        "eks": {
            "targetGroups": [
                {"arn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef", "port": 30080},
                {"arn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/api/fedcba9876543210", "port": "8443"}
            ],
            "targetGroup": {"arn": "", "port": null},
            "securityGroups": ["sg-0123"]
        }
    })
}

fn check(body: &[u8]) -> Result<(), TestCaseError> {
    match parse_node_configuration(ID, body) {
        Ok(parsed) => {
            prop_assert!(!parsed.id.is_empty());
            for binding in &parsed.target_groups {
                prop_assert!(matches!(binding.group, TargetGroupRef::Arn(_)));
                prop_assert!(binding.port != Some(0));
            }
        }
        Err(e) => {
            prop_assert!(matches!(e, berth_core::Error::Invalid { .. }), "{e:?}");
            let message = e.to_string();
            assert_clear_error(&message);
            prop_assert!(message.contains(ID), "{message}");
        }
    }
    Ok(())
}

#[test]
fn the_valid_configuration_parses() {
    let parsed =
        parse_node_configuration(ID, valid_configuration().to_string().as_bytes()).unwrap();
    assert_eq!(parsed.target_groups.len(), 2);
}

#[test]
fn arbitrary_bytes_are_refused_clearly() {
    TestRunner::new(config(256))
        .run(&proptest::collection::vec(any::<u8>(), 0..256), |body| {
            check(&body)
        })
        .unwrap();
}

#[test]
fn any_json_is_parsed_or_refused_clearly() {
    TestRunner::new(config(256))
        .run(&any_json(), |doc| check(doc.to_string().as_bytes()))
        .unwrap();
}

#[test]
fn a_configuration_with_one_field_changed_is_parsed_or_refused_clearly() {
    TestRunner::new(config(512))
        .run(&one_field_changed(valid_configuration()), |doc| {
            check(doc.to_string().as_bytes())
        })
        .unwrap();
}

#[test]
fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    for depth in [64, 1_000, 100_000] {
        check(format!("{{\"eks\":{}{}}}", "[".repeat(depth), "]".repeat(depth)).as_bytes())
            .unwrap();
    }
}
