//! Hostile IMDS answers: arbitrary bodies, and the identity document, the spot
//! interruption notice or the rebalance recommendation with one field changed,
//! served by `FakeImds` over IMDSv2 (and given to `imds::answers` directly, as the
//! fuzz target `imds_answers` does), are either read or refused with a non-retryable
//! provider error saying the answer was unexpected, naming the IMDS path (and the
//! field when one value is invalid); nothing panics.
#![cfg(feature = "imds")]

use berth_aws::imds::{answers, Imds};
use berth_core::Error;
use berth_testing::hostile::{any_json, assert_clear_error, config, one_field_changed};
use berth_testing::imds::{FakeImds, IDENTITY_PATH, SPOT_ACTION_PATH};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};

fn identity() -> Value {
    json!({
        "accountId": "123456789012",
        "availabilityZone": "eu-west-1b",
        "instanceId": "i-0abc123def4567890",
        "instanceType": "m6gd.large",
        "privateIp": "10.1.2.3",
        "region": "eu-west-1",
        "version": "2017-09-30"
    })
}

fn spot_action() -> Value {
    json!({"action": "terminate", "time": "2024-05-01T10:02:00Z"})
}

fn rebalance() -> Value {
    json!({"noticeTime": "2024-05-01T10:00:00Z"})
}

const REBALANCE_PATH: &str = "/latest/meta-data/events/recommendations/rebalance";

/// A body: arbitrary text, any JSON, or the valid document with one field changed.
fn bodies(valid: Value) -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,120}",
        any_json().prop_map(|v| v.to_string()),
        one_field_changed(valid.clone()).prop_map(|v| v.to_string()),
        one_field_changed(valid).prop_map(|v| v.to_string()),
    ]
}

fn refused_clearly(error: &Error, path: &str) -> Result<(), TestCaseError> {
    let message = error.to_string();
    assert_clear_error(&message);
    prop_assert!(message.contains(path), "{message}");
    prop_assert!(!error.is_retryable(), "{error:?}");
    Ok(())
}

#[test]
fn hostile_identity_documents_are_read_or_refused_clearly() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = FakeImds::start();
    let imds = Imds::with_endpoint(&server.endpoint()).unwrap();
    TestRunner::new(config(128))
        .run(&bodies(identity()), |body| {
            server.route(IDENTITY_PATH, 200, &body);
            match runtime.block_on(imds.identity()) {
                Ok(found) => prop_assert!(found.instance_id.as_str().starts_with("i-")),
                Err(e) => refused_clearly(&e, IDENTITY_PATH)?,
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn hostile_spot_notices_are_read_or_refused_clearly() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = FakeImds::start();
    let imds = Imds::with_endpoint(&server.endpoint()).unwrap();
    TestRunner::new(config(128))
        .run(&bodies(spot_action()), |body| {
            server.route(SPOT_ACTION_PATH, 200, &body);
            if let Err(e) = runtime.block_on(imds.spot_interruption()) {
                refused_clearly(&e, SPOT_ACTION_PATH)?;
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn an_invalid_instance_id_is_refused_naming_the_path_and_the_field() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = FakeImds::start();
    let imds = Imds::with_endpoint(&server.endpoint()).unwrap();
    let mut document = identity();
    document["instanceId"] = json!("not-an-id");
    server.route(IDENTITY_PATH, 200, &document.to_string());
    let error = runtime.block_on(imds.identity()).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, Error::Provider { ref operation, retryable: false, .. }
            if operation.contains(IDENTITY_PATH)),
        "{error:?}"
    );
    assert!(message.contains(IDENTITY_PATH), "{message}");
    assert!(message.contains("instanceId"), "{message}");
    assert!(message.contains("not-an-id"), "{message}");
    assert!(!error.is_retryable(), "{error:?}");
}

#[test]
fn hostile_rebalance_recommendations_are_read_or_refused_clearly() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = FakeImds::start();
    let imds = Imds::with_endpoint(&server.endpoint()).unwrap();
    TestRunner::new(config(128))
        .run(&bodies(rebalance()), |body| {
            server.route(REBALANCE_PATH, 200, &body);
            match runtime.block_on(imds.rebalance_recommendation()) {
                Ok(found) => prop_assert!(found.is_some(), "a 200 answer read as none"),
                Err(e) => refused_clearly(&e, REBALANCE_PATH)?,
            }
            Ok(())
        })
        .unwrap();
}

/// The parsers themselves, many more cases than over HTTP: each answer, any body.
#[test]
fn arbitrary_answers_are_parsed_or_refused_naming_the_path() {
    let any_answer = prop_oneof![
        bodies(identity()),
        bodies(spot_action()),
        bodies(rebalance()),
    ];
    TestRunner::new(config(1024))
        .run(&any_answer, |body| {
            match answers::identity_document(&body) {
                Ok(found) => prop_assert!(found.instance_id.as_str().starts_with("i-")),
                Err(e) => refused_clearly(&e, IDENTITY_PATH)?,
            }
            if let Err(e) = answers::instance_action(&body) {
                refused_clearly(&e, SPOT_ACTION_PATH)?;
            }
            if let Err(e) = answers::rebalance_notice(&body) {
                refused_clearly(&e, REBALANCE_PATH)?;
            }
            Ok(())
        })
        .unwrap();
}
