//! A Cast.ai node configuration body, as the API could serve it.
#![no_main]

#[allow(dead_code)]
#[path = "../../crates/berth-castai/src/model.rs"]
mod model;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match model::parse_node_configuration("fuzz", data) {
        Ok(parsed) => assert!(parsed.target_groups.iter().all(|g| g.port != Some(0))),
        Err(e) => assert!(matches!(e, berth_core::Error::Invalid { .. })),
    }
});
