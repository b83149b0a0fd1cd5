//! berth-lambda's EventBridge event: any bytes the runtime could hand over.
#![no_main]

#[allow(dead_code)]
#[path = "../../bins/berth-lambda/src/event.rs"]
mod event;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Err(e) = event::parse(payload) {
        assert!(e.to_string().len() > "invalid event: ".len());
    }
});
