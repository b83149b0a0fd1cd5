//! berth-aws's IMDS answers: any text as the instance identity document, the spot
//! instance-action notice and the rebalance recommendation (`imds::answers`, the
//! parsing the IMDSv2 client applies to each answer).
#![no_main]

#[path = "../../crates/berth-aws/src/imds/answers.rs"]
mod answers;

use libfuzzer_sys::fuzz_target;

/// A refusal: non-retryable (asking again gets the same answer), naming the path.
fn refused(error: &berth_core::Error, path: &str) {
    assert!(!error.is_retryable(), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(path), "{message}");
}

fuzz_target!(|text: &str| {
    match answers::identity_document(text) {
        Ok(identity) => assert!(identity.instance_id.as_str().starts_with("i-")),
        Err(e) => refused(&e, answers::IDENTITY_PATH),
    }
    if let Err(e) = answers::instance_action(text) {
        refused(&e, answers::SPOT_ACTION_PATH);
    }
    if let Err(e) = answers::rebalance_notice(text) {
        refused(&e, answers::REBALANCE_PATH);
    }
});
