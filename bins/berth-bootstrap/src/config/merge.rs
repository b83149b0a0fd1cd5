//! Deep merge of the user's YAML over the defaults, and the unknown-key check.

use serde_json::{Map, Value};

use super::ConfigError;

/// Merges `user` into `defaults`: mappings merge key by key at every depth, anything
/// else (scalars, lists) replaces the default. A `null` section (`etcd:` with nothing
/// under it) keeps the defaults. NodeReg merged only the top level, so a user section
/// with one key lost every other default of that section.
pub(super) fn deep_merge(defaults: &mut Value, user: Value) {
    match (defaults, user) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(Value::Object(_)) if value.is_null() => {}
                    Some(slot) => deep_merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (Value::Object(_), Value::Null) => {}
        (slot, value) => *slot = value,
    }
}

/// Fails on the first key of `user` that `known` (the defaults, which list every key)
/// does not have, naming it with its full path and the nearest known key beside it.
pub(super) fn check_known_keys(known: &Value, user: &Value) -> Result<(), ConfigError> {
    check_level(known, user, "")
}

fn check_level(known: &Value, user: &Value, prefix: &str) -> Result<(), ConfigError> {
    let (Value::Object(known), Value::Object(user)) = (known, user) else {
        return Ok(());
    };
    for (key, value) in user {
        let path = format!("{prefix}{key}");
        match known.get(key) {
            Some(known_value) => check_level(known_value, value, &format!("{path}."))?,
            None => {
                return Err(ConfigError::UnknownKey {
                    nearest: nearest(known, key).map(|k| format!("{prefix}{k}")),
                    key: path,
                })
            }
        }
    }
    Ok(())
}

/// The known key closest to `key` by edit distance, if any is reasonably close.
fn nearest(known: &Map<String, Value>, key: &str) -> Option<String> {
    let wanted = key.to_ascii_lowercase();
    known
        .keys()
        .map(|k| (strsim::damerau_levenshtein(&wanted, k), k))
        .filter(|(distance, k)| *distance <= k.len().max(wanted.len()) / 2 + 1)
        .min()
        .map(|(_, k)| k.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_at_every_depth() {
        let mut defaults = json!({"hostname": {"glue": "", "tag_name": "Role",
            "ip_address": {"octets": 2, "glue": "-"}}, "modules": ["a", "b"]});
        deep_merge(
            &mut defaults,
            json!({"hostname": {"ip_address": {"octets": 3}}, "modules": ["a"]}),
        );
        assert_eq!(
            defaults,
            json!({"hostname": {"glue": "", "tag_name": "Role",
                "ip_address": {"octets": 3, "glue": "-"}}, "modules": ["a"]})
        );
    }

    #[test]
    fn a_null_section_keeps_its_defaults() {
        let mut defaults = json!({"etcd": {"client_port": 2379}});
        deep_merge(&mut defaults, json!({"etcd": null}));
        assert_eq!(defaults, json!({"etcd": {"client_port": 2379}}));
    }

    #[test]
    fn an_unknown_key_names_its_path_and_the_nearest_key() {
        let known = json!({"hostname": {"tag_name": "Role", "glue": ""}});
        let error = check_known_keys(&known, &json!({"hostname": {"tagname": "x"}})).unwrap_err();
        match error {
            ConfigError::UnknownKey { key, nearest } => {
                assert_eq!(key, "hostname.tagname");
                assert_eq!(nearest.as_deref(), Some("hostname.tag_name"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let error = check_known_keys(&known, &json!({"zzzzzzzzzz": 1})).unwrap_err();
        assert!(matches!(
            error,
            ConfigError::UnknownKey { nearest: None, .. }
        ));
    }
}
