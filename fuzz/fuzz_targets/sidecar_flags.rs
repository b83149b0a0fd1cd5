//! berth-sidecar's Go-style command line rewriting and Go booleans. Arguments are
//! the input split at NUL bytes.
#![no_main]

#[allow(dead_code)]
#[path = "../../bins/berth-sidecar/src/goflags.rs"]
mod goflags;

use std::ffi::OsString;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let args: Vec<OsString> = std::iter::once("berth-sidecar")
        .chain(text.split('\0'))
        .map(OsString::from)
        .collect();
    let out = goflags::normalise(args.clone(), |name| name.len() % 2 == 0);
    assert_eq!(out.len(), args.len(), "one argument out per argument in");
    for arg in text.split('\0') {
        if let Err(message) = goflags::parse_go_bool(arg) {
            assert!(!message.is_empty());
        }
    }
});
