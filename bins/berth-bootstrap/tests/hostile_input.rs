//! Hostile input for the bootstrap's configuration file: arbitrary text, the example
//! with one edit, and the example's keys with one field changed never panic, and a
//! refusal says what is wrong. The `fuzz/` target `bootstrap_config` runs the same
//! parser under libFuzzer.

use berth_bootstrap::config::Config;
use berth_testing::hostile::assert_clear_error;
use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../../../examples/bootstrap/config.yaml");

/// The example's settings as a document (JSON is YAML).
fn valid_config() -> serde_json::Value {
    serde_json::json!({
        "base": {"ami_build_tag": "is_ami_build", "chroot_path": "/media/root"},
        "hostname": {"glue": "", "tag_name": "Role",
                     "ip_address": {"octets": 2, "glue": "-"}, "set_kernel": true},
        "hosted_zone": {"name": "k8s.example.com.", "id": "Z0123456789ABCDEFGHIJ",
                        "ttl": 300, "owner": "berth-bootstrap"},
        "certificates": {"ca_cert_file": "/media/root/etc/berth/ca.pem",
                         "ca_key_file": "/media/root/etc/berth/ca-key.pem",
                         "acm_pca_arn": null, "node_certificate": true,
                         "validity_days": 365, "renew_at_percent": 66,
                         "reload_command": ["systemctl", "try-reload-or-restart", "etcd.service"]},
        "etcd": {"client_schema": "https", "client_port": 2379, "peer_schema": "https",
                 "peer_port": 2380, "auto_scaling_group": null, "cluster_size": 3,
                 "learner": false, "marker_table": "berth-etcd-markers"},
        "modules": ["hostname", "dns", "certificates", "etcd"]
    })
}

fn check(text: &str) -> Result<(), TestCaseError> {
    if let Err(e) = Config::parse("config.yaml", text) {
        assert_clear_error(&e.to_string());
    }
    Ok(())
}

#[test]
fn the_valid_documents_parse() {
    Config::parse("config.yaml", EXAMPLE).expect("the example");
    Config::parse("config.yaml", &valid_config().to_string()).expect("the document");
}

berth_testing::hostile_yaml_tests! {
    check: check,
    example: EXAMPLE,
    valid: valid_config(),
    one_field_changed: valid_settings_with_one_field_changed_are_parsed_or_refused_clearly,
    root_key: "base",
}
