//! Hostile input for the static rules file (`--config`): arbitrary text, the example
//! with one edit, and valid rules with one field changed never panic, and a refusal
//! names the file and says what is wrong. The `fuzz/` target `daemon_rules` runs the
//! same parser under libFuzzer.

use berth_daemon::static_config::{ConfigError, StaticConfig};
use berth_testing::hostile::assert_clear_error;
use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../../../examples/daemon/rules.yaml");

fn valid_rules() -> serde_json::Value {
    serde_json::json!({"rules": [
        {"name": "web",
         "nodeSelector": {"matchLabels": {"node-role/web": "true"}},
         "targetGroups": [
            {"arn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef", "port": 30080},
            {"name": "web-tls"}]},
        {"nodeSelector": {}, "targetGroups": [{"name": "all-nodes"}]}
    ]})
}

/// Parses `text`: a valid configuration, or an error naming the file.
fn check(text: &str) -> Result<(), TestCaseError> {
    match StaticConfig::parse("rules.yaml", text) {
        Ok(parsed) => {
            for rule in &parsed.rules {
                prop_assert!(!rule.target_groups.is_empty(), "{rule:?}");
                prop_assert!(rule.target_groups.iter().all(|g| g.port != Some(0)));
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert_clear_error(&message);
            prop_assert!(message.starts_with("rules.yaml"), "{message}");
            if let ConfigError::Invalid { field, .. } = &e {
                prop_assert!(!field.is_empty(), "{message}");
            }
        }
    }
    Ok(())
}

#[test]
fn the_valid_documents_parse() {
    StaticConfig::parse("rules.yaml", EXAMPLE).expect("the example");
    let text = serde_json::to_string(&valid_rules()).unwrap();
    assert_eq!(
        StaticConfig::parse("rules.yaml", &text)
            .unwrap()
            .rules
            .len(),
        2
    );
}

berth_testing::hostile_yaml_tests! {
    check: check,
    example: EXAMPLE,
    valid: valid_rules(),
    one_field_changed: valid_rules_with_one_field_changed_are_parsed_or_refused_clearly,
    root_key: "rules",
}
