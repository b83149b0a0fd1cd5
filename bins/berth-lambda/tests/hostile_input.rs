//! Hostile input for the function's event: arbitrary JSON and bytes, and the
//! EventBridge state-change event with one field changed, are refused with a clear
//! `invalid event` message and never panic; the compiled function answers such
//! events with an `InvalidEvent` error and makes no AWS call (nothing changes). The
//! `fuzz/` target `lambda_event` runs the same parser under libFuzzer.

// The binary has no library: its event parser is compiled in here as it is.
#[allow(dead_code)]
#[path = "../src/event.rs"]
mod event;

use std::process::Stdio;
use std::time::Duration;

use berth_testing::hostile::{any_json, assert_clear_error, config, one_field_changed};
use berth_testing::{aws_env, FaultProxy, LambdaRuntimeApi, MotoServer};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};

fn valid_event() -> Value {
    json!({
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": "2024-11-11T21:29:54Z",
        "region": "us-east-1",
        "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"],
        "detail": {"instance-id": "i-0abc", "state": "running"}
    })
}

fn check(payload: Value) -> Result<(), TestCaseError> {
    if let Err(e) = event::parse(payload) {
        let message = e.to_string();
        assert_clear_error(&message);
        prop_assert!(message.starts_with("invalid event: "), "{message}");
        prop_assert!(message.len() > "invalid event: ".len(), "{message}");
    }
    Ok(())
}

#[test]
fn the_valid_event_parses() {
    event::parse(valid_event()).expect("the example event");
}

#[test]
fn any_json_is_refused_clearly() {
    TestRunner::new(config(256))
        .run(&any_json(), check)
        .unwrap();
}

#[test]
fn the_event_with_one_field_changed_is_parsed_or_refused_clearly() {
    TestRunner::new(config(512))
        .run(&one_field_changed(valid_event()), check)
        .unwrap();
}

#[test]
fn arbitrary_bytes_are_not_json_or_refused_clearly() {
    TestRunner::new(config(128))
        .run(
            &proptest::collection::vec(any::<u8>(), 0..200),
            |bytes| match serde_json::from_slice::<Value>(&bytes) {
                Ok(value) => check(value),
                Err(e) => {
                    assert_clear_error(&e.to_string());
                    Ok(())
                }
            },
        )
        .unwrap();
}

/// Hostile events sent to the compiled function: each is answered with an
/// `InvalidEvent` error naming the problem, and not one AWS call is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_refuses_hostile_events_without_touching_aws() {
    let moto = MotoServer::isolated().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let api = LambdaRuntimeApi::start();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth-lambda"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(api.env("berth-lambda"))
        .envs(aws_env(&proxy.endpoint()))
        .envs([
            ("BERTH_INSTANCE_TAGS", "team=live"),
            ("BERTH_EIP_TAGS", "pool=live"),
            ("BERTH_HOSTED_ZONE_ID", "Z0123456789ABCDEFGHIJ"),
            ("BERTH_DNS_SUFFIX", "live.example.com"),
            ("BERTH_LEDGER_TABLE", "berth-ledger"),
            ("RUST_LOG", "trace"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn berth-lambda");
    api.wait_for_polls(1, Duration::from_secs(60)).await;
    proxy.reset_counts();

    let mut hostile: Vec<String> = vec![
        String::new(),
        "null".into(),
        "\"i-0abc\"".into(),
        "[]".into(),
        "{}".into(),
        "1e400".into(),
        "[".repeat(10_000),
        format!("{}{}", "{\"a\":".repeat(200), "}".repeat(200)),
    ];
    let mut runner = TestRunner::new(config(24));
    for _ in 0..24 {
        let doc = one_field_changed(valid_event())
            .new_tree(&mut runner)
            .unwrap()
            .current();
        // A changed event that is still a valid one would act: only send refusals.
        if event::parse(doc.clone()).is_err() {
            hostile.push(doc.to_string());
        }
    }
    let mut refused = 0;
    for payload in &hostile {
        let id = api.invoke(payload.clone());
        let result = api.result(&id, Duration::from_secs(60)).await;
        assert!(result.is_error(), "{payload:.80}: {result:?}");
        assert_clear_error(result.body());
        refused += 1;
    }
    assert!(refused >= 8);
    assert_eq!(proxy.total(), 0, "AWS calls: {:?}", proxy.counts());
    assert!(child.try_wait().unwrap().is_none(), "the function died");
    child.kill().await.ok();
}
