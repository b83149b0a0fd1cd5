//! berth-bootstrap's configuration file, merged over the defaults and validated.
#![no_main]

#[allow(dead_code, unused_imports)]
#[path = "../../bins/berth-bootstrap/src/config/mod.rs"]
mod config;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = config::Config::parse("config.yaml", text) {
        assert!(!e.to_string().trim().is_empty());
    }
});
