//! The least-privilege policy a binary prints (`<binary> iam-policy ...`), enforced on a
//! [`FaultProxy`] as IAM would: the `tests/iam_enforced.rs` of each binary.

use std::process::Command;

use crate::{FaultProxy, Rule, RuleId};

/// The actions of every statement of the policy `command` prints on stdout; the
/// command must exit 0.
pub fn printed_policy_actions(command: &mut Command) -> Vec<String> {
    let out = command.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let policy: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// `proxy` refuses every action the policy `command` prints does not grant.
pub fn enforce_printed_policy(proxy: &FaultProxy, command: &mut Command) -> RuleId {
    proxy.add(Rule::deny_all_but(printed_policy_actions(command)))
}
