//! berth-sidecar's Go durations: refused with the text named, or printed back the same.
#![no_main]

#[allow(dead_code)]
#[path = "../../bins/berth-sidecar/src/duration.rs"]
mod duration;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match duration::parse_go_duration(text) {
        Ok(parsed) => {
            let printed = duration::format_go_duration(parsed);
            assert_eq!(duration::parse_go_duration(&printed).ok(), Some(parsed));
        }
        Err(e) => assert!(e.to_string().contains(&format!("{text:?}"))),
    }
});
