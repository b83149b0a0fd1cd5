//! The static configuration file (`--config`): rules mapping node label selectors to
//! target groups, so berth-daemon works without Cast.ai (or alongside it).
//!
//! ```yaml
//! rules:
//!   - name: web                      # optional, for messages
//!     nodeSelector:
//!       matchLabels:
//!         node-role/web: "true"
//!     targetGroups:
//!       - arn: arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef
//!         port: 30080                # optional: the group's own port otherwise
//!       - name: web-tls              # by name instead of ARN
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use berth_core::domain::TargetGroupRef;
use berth_core::provider::GroupBinding;
use berth_core::workflow::node_targets::{rule_bindings, LabelRule};
use serde::Deserialize;

/// A configuration file that could not be used; the message names the bad field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not YAML of the expected shape.
    #[error("{path} is not a valid berth-daemon configuration: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message (with the line and column).
        message: String,
    },
    /// A field has a bad value.
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// The field, e.g. `rules[1].targetGroups[0].port`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    name: Option<String>,
    node_selector: RawSelector,
    target_groups: Vec<RawGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSelector {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    arn: Option<String>,
    name: Option<String>,
    // Wider than u16 so that 70000 is reported as an out-of-range port, not a type error.
    port: Option<i64>,
}

/// One validated rule: berth-core's label rule (the matching is core policy).
pub type Rule = LabelRule;

/// The validated static configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticConfig {
    /// The rules, in file order.
    pub rules: Vec<Rule>,
}

impl StaticConfig {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&shown, &text)
    }

    /// Parses and validates YAML text; `path` is only used in messages.
    pub fn parse(path: &str, text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig { rules: Vec::new() }
        } else {
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Syntax {
                path: path.to_owned(),
                message: e.to_string(),
            })?
        };
        let invalid = |field: String, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            field,
            message,
        };
        let mut rules = Vec::new();
        for (i, rule) in raw.rules.into_iter().enumerate() {
            let at = format!("rules[{i}]");
            for (key, value) in &rule.node_selector.match_labels {
                if !valid_label_key(key) {
                    return Err(invalid(
                        format!("{at}.nodeSelector.matchLabels"),
                        format!("{key:?} is not a valid label key"),
                    ));
                }
                if value.len() > 63 {
                    return Err(invalid(
                        format!("{at}.nodeSelector.matchLabels.{key}"),
                        "label values are at most 63 characters".into(),
                    ));
                }
            }
            if rule.target_groups.is_empty() {
                return Err(invalid(
                    format!("{at}.targetGroups"),
                    "a rule needs at least one target group".into(),
                ));
            }
            let mut target_groups = Vec::new();
            for (j, g) in rule.target_groups.into_iter().enumerate() {
                let at = format!("{at}.targetGroups[{j}]");
                let group = match (g.arn, g.name) {
                    (Some(arn), None) => {
                        if !arn.trim().starts_with("arn:") {
                            return Err(invalid(
                                format!("{at}.arn"),
                                format!("{arn:?} is not an ARN (use `name:` for a name)"),
                            ));
                        }
                        arn.parse::<TargetGroupRef>()
                            .map_err(|e| invalid(format!("{at}.arn"), e.to_string()))?
                    }
                    (None, Some(name)) => {
                        if name.trim().starts_with("arn:") {
                            return Err(invalid(
                                format!("{at}.name"),
                                "this is an ARN: use `arn:`".into(),
                            ));
                        }
                        name.parse::<TargetGroupRef>()
                            .map_err(|e| invalid(format!("{at}.name"), e.to_string()))?
                    }
                    (Some(_), Some(_)) => {
                        return Err(invalid(at, "give either `arn` or `name`, not both".into()))
                    }
                    (None, None) => {
                        return Err(invalid(at, "a target group needs `arn` or `name`".into()))
                    }
                };
                let port = match g.port {
                    None => None,
                    Some(p) => Some(u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| {
                        invalid(format!("{at}.port"), format!("{p} is not a port (1-65535)"))
                    })?),
                };
                target_groups.push(GroupBinding { group, port });
            }
            rules.push(Rule {
                name: rule.name.unwrap_or(at),
                match_labels: rule.node_selector.match_labels,
                target_groups,
            });
        }
        Ok(StaticConfig { rules })
    }

    /// The groups of every rule matching these labels, without duplicates.
    pub fn bindings_for(&self, labels: &BTreeMap<String, String>) -> Vec<GroupBinding> {
        rule_bindings(&self.rules, labels)
    }
}

/// `[prefix/]name`: a DNS subdomain prefix and a 1–63 character name of alphanumerics,
/// `-`, `_` and `.`, starting and ending alphanumeric.
fn valid_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    });
    name_ok && prefix_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str =
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef";

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_example_rules_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/daemon/rules.yaml");
        let cfg = StaticConfig::load(&path).expect("examples/daemon/rules.yaml must stay valid");
        assert_eq!(cfg.rules.len(), 1);
        assert_eq!(
            cfg.bindings_for(&labels(&[("node-role/web", "true")]))
                .len(),
            2
        );
    }

    #[test]
    fn parses_rules_by_arn_and_name_with_optional_port() {
        let cfg = StaticConfig::parse(
            "c.yaml",
            &format!(
                "rules:\n  - name: web\n    nodeSelector:\n      matchLabels:\n        role: web\n    targetGroups:\n      - arn: {ARN}\n        port: 30080\n      - name: web-tls\n  - nodeSelector: {{}}\n    targetGroups:\n      - name: all-nodes\n"
            ),
        )
        .unwrap();
        assert_eq!(cfg.rules.len(), 2);
        assert_eq!(cfg.rules[0].name, "web");
        assert_eq!(cfg.rules[1].name, "rules[1]");
        let web = cfg.bindings_for(&labels(&[("role", "web")]));
        assert_eq!(web.len(), 3);
        assert_eq!(web[0].port, Some(30080));
        assert_eq!(web[1].group, TargetGroupRef::Name("web-tls".into()));
        assert_eq!(web[1].port, None);
        let other = cfg.bindings_for(&labels(&[("role", "db")]));
        assert_eq!(other.len(), 1, "an empty selector matches every node");
    }

    fn error(text: &str) -> String {
        StaticConfig::parse("c.yaml", text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_bad_field() {
        let e = error("rules:\n  - nodeSelector: {}\n    targetGroups:\n      - name: web\n        port: 70000\n");
        assert!(
            e.contains("rules[0].targetGroups[0].port") && e.contains("70000"),
            "{e}"
        );
        let e = error("rules:\n  - nodeSelector: {}\n    targetGroups:\n      - arn: not-an-arn\n");
        assert!(e.contains("rules[0].targetGroups[0].arn"), "{e}");
        let e = error("rules:\n  - nodeSelector: {}\n    targetGroups:\n      - port: 80\n");
        assert!(
            e.contains("rules[0].targetGroups[0]") && e.contains("`arn` or `name`"),
            "{e}"
        );
        let e = error(&format!(
            "rules:\n  - nodeSelector: {{}}\n    targetGroups:\n      - arn: {ARN}\n        name: web\n"
        ));
        assert!(e.contains("not both"), "{e}");
        let e = error("rules:\n  - nodeSelector: {}\n    targetGroups: []\n");
        assert!(
            e.contains("rules[0].targetGroups") && e.contains("at least one"),
            "{e}"
        );
        let e = error("rules:\n  - nodeSelector:\n      matchLabels:\n        'bad key!': x\n    targetGroups:\n      - name: web\n");
        assert!(
            e.contains("rules[0].nodeSelector.matchLabels") && e.contains("bad key!"),
            "{e}"
        );
        let e = error("rules:\n  - nodeSelector: {}\n    targetGroups:\n      - name: web_under\n");
        assert!(e.contains("rules[0].targetGroups[0].name"), "{e}");
        let e = error("rules:\n  - nodeSelector: {}\n    targetGroup:\n      - name: web\n");
        assert!(e.contains("targetGroup"), "unknown fields are refused: {e}");
        let e = error("rules:\n  - targetGroups:\n      - name: web\n");
        assert!(e.contains("nodeSelector"), "{e}");
    }

    #[test]
    fn an_empty_file_has_no_rules() {
        assert!(StaticConfig::parse("c.yaml", "").unwrap().rules.is_empty());
        assert!(StaticConfig::parse("c.yaml", "rules: []\n")
            .unwrap()
            .rules
            .is_empty());
    }

    #[test]
    fn label_keys() {
        assert!(valid_label_key("node.kubernetes.io/instance-type"));
        assert!(valid_label_key("role"));
        assert!(!valid_label_key("/role"));
        assert!(!valid_label_key("-role"));
        assert!(!valid_label_key("a/b/c"));
    }
}
