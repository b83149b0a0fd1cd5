//! berth-daemon's static rules file (`--config`).
#![no_main]

#[allow(dead_code)]
#[path = "../../bins/berth-daemon/src/static_config.rs"]
mod static_config;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = static_config::StaticConfig::parse("rules.yaml", text) {
        assert!(e.to_string().starts_with("rules.yaml"));
    }
});
