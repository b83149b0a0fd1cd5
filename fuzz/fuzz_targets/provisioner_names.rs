//! berth-provisioner's path parameters and request fields: the cluster-name and
//! instance-type grammars every request goes through (berth-core `plan::runs`).
#![no_main]

use berth_core::plan::runs::{cluster_name_error, is_instance_type};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if cluster_name_error(text).is_none() {
        // A valid name is safe in a Kubernetes object name and a URL path.
        assert!(!text.is_empty() && text.len() <= 63, "{text:?}");
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{text:?}"
        );
    }
    if is_instance_type(text) {
        assert!(text.contains('.') && text.is_ascii(), "{text:?}");
    }
});
