//! berth-sidecar's whole command line: the Go-flag rewriting, clap's parse and the
//! checks after it (`args::parse`, as `main` calls it). The input split at NUL bytes:
//! the first piece is `$POD_IP` (empty: unset), the rest the arguments.
#![no_main]

#[allow(dead_code)]
#[path = "../../bins/berth-sidecar/src/args.rs"]
mod args;
#[allow(dead_code)]
#[path = "../../bins/berth-sidecar/src/duration.rs"]
mod duration;
#[allow(dead_code)]
#[path = "../../bins/berth-sidecar/src/goflags.rs"]
mod goflags;
#[allow(dead_code)]
#[path = "../../bins/berth-sidecar/src/hook.rs"]
mod hook;

use std::ffi::OsString;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let mut pieces = text.split('\0');
    let pod_ip = pieces.next().filter(|p| !p.is_empty()).map(str::to_owned);
    let argv = std::iter::once("berth-sidecar")
        .chain(pieces)
        .map(OsString::from);
    match args::parse(argv, pod_ip) {
        Ok(args::Parsed::Run(config)) => {
            assert!(!config.groups.is_empty());
            assert!(!config.target_id.trim().is_empty());
            assert_ne!(config.port, Some(0));
        }
        Ok(args::Parsed::Print(text)) => assert!(!text.trim().is_empty()),
        Err(message) => {
            assert!(!message.trim().is_empty(), "an empty usage error");
            assert!(!message.contains('\n'), "more than one line: {message}");
        }
    }
});
