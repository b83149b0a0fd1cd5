//! IAM: the actions each adapter calls, and the least-privilege policy of each mode
//! built from them ([`modes`]) as a document ([`policy`]). Pure functions: the binaries
//! parse their configuration and print `modes::<mode>(..).to_json()`
//! (`berth-<mode> iam-policy`).
//!
//! `iam-actions.json` at the crate root holds the same action lists in machine-readable
//! form; tests keep the two in sync and check that every SDK operation an adapter calls
//! is listed.

pub mod modes;
pub mod policy;

pub use policy::{Policy, Scope, Statement};

/// The adapters (cargo features) that call AWS APIs, in the order of `iam-actions.json`.
pub const FEATURES: &[&str] = &[
    "elbv2",
    "ec2",
    "route53",
    "dynamodb",
    "autoscaling",
    "imds",
    "acmpca",
];

const ELBV2: &[&str] = &[
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:RegisterTargets",
    "elasticloadbalancing:DeregisterTargets",
];

const EC2: &[&str] = &[
    "ec2:DescribeInstances",
    "ec2:DescribeAddresses",
    "ec2:DescribeNetworkInterfaces",
    "ec2:AssociateAddress",
    "ec2:DisassociateAddress",
];

const ROUTE53: &[&str] = &[
    "route53:ListHostedZonesByName",
    "route53:ListResourceRecordSets",
    "route53:ChangeResourceRecordSets",
    "route53:GetChange",
];

const DYNAMODB: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:Scan",
];

const AUTOSCALING: &[&str] = &["autoscaling:DescribeAutoScalingGroups"];

/// IMDS is reached over the instance's link-local address, not through IAM.
const IMDS: &[&str] = &[];

const ACMPCA: &[&str] = &[
    "acm-pca:GetCertificateAuthorityCertificate",
    "acm-pca:IssueCertificate",
    "acm-pca:GetCertificate",
];

/// The IAM actions the adapter behind `feature` calls; empty for an unknown feature.
pub fn actions(feature: &str) -> &'static [&'static str] {
    match feature {
        "elbv2" => ELBV2,
        "ec2" => EC2,
        "route53" => ROUTE53,
        "dynamodb" => DYNAMODB,
        "autoscaling" => AUTOSCALING,
        "imds" => IMDS,
        "acmpca" => ACMPCA,
        _ => &[],
    }
}

/// The IAM action of an API operation of `feature`'s service, e.g.
/// `iam_action("elbv2", "RegisterTargets")` → `elasticloadbalancing:RegisterTargets`.
/// Adapters name it in [`crate::error::from_sdk`]; `None` if the adapter is not
/// supposed to call that operation.
pub fn iam_action(feature: &str, operation: &str) -> Option<&'static str> {
    actions(feature)
        .iter()
        .copied()
        .find(|action| action.split_once(':').map(|(_, op)| op) == Some(operation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn json_list_matches_the_code() {
        let json: BTreeMap<String, Vec<String>> =
            serde_json::from_str(include_str!("../../iam-actions.json")).unwrap();
        let from_code: BTreeMap<String, Vec<String>> = FEATURES
            .iter()
            .map(|f| {
                let actions = actions(f).iter().map(|a| a.to_string()).collect();
                (f.to_string(), actions)
            })
            .collect();
        assert_eq!(
            json, from_code,
            "iam-actions.json and src/iam.rs disagree: update both"
        );
    }

    /// Each adapter's source, and the feature (service) it implements.
    const ADAPTERS: &[(&str, &str)] = &[
        ("elbv2", include_str!("../elbv2.rs")),
        ("ec2", include_str!("../ec2.rs")),
        ("route53", include_str!("../route53.rs")),
        ("dynamodb", include_str!("../dynamodb.rs")),
        ("autoscaling", include_str!("../autoscaling.rs")),
        ("imds", include_str!("../imds.rs")),
        ("acmpca", include_str!("../acmpca.rs")),
    ];

    /// The SDK operations called on `.client` in `source`: `client.describe_instances()`
    /// or `self.client\n    .describe_instances()`, as `DescribeInstances`. SDK waiters
    /// (`wait_until_*`) poll an operation of their own, named by the adapter's
    /// `from_sdk(.., "service:Operation", ..)` which this test also reads.
    fn sdk_operations(source: &str) -> BTreeSet<String> {
        let code: String = source
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        code.match_indices("client.")
            .filter_map(|(at, _)| {
                let rest = &code[at + "client.".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                let called = rest[name.len()..].starts_with("()");
                (called && !name.is_empty() && !name.starts_with("wait_until"))
                    .then(|| pascal_case(&name))
            })
            .collect()
    }

    fn pascal_case(snake: &str) -> String {
        snake
            .split('_')
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_uppercase().to_string() + chars.as_str()
                })
            })
            .collect()
    }

    #[test]
    fn every_sdk_call_of_every_adapter_is_listed() {
        assert_eq!(
            ADAPTERS.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
            FEATURES,
            "a new adapter must be listed here"
        );
        let mut seen = 0;
        for (feature, source) in ADAPTERS {
            for operation in sdk_operations(source) {
                seen += 1;
                assert!(
                    iam_action(feature, &operation).is_some(),
                    "the {feature} adapter calls {operation}, which iam-actions.json does not list"
                );
            }
            // What the error mapping names must be listed too (waiters' operations).
            for action in actions(feature) {
                let named = source.contains(&format!("\"{action}\""));
                let (_, operation) = action.split_once(':').unwrap();
                assert!(
                    named || sdk_operations(source).contains(operation),
                    "iam-actions.json lists {action}, which the {feature} adapter never calls"
                );
            }
        }
        assert!(
            seen >= 20,
            "the scan found only {seen} SDK calls: is it broken?"
        );
        assert_eq!(
            sdk_operations("self.client\n  .describe_target_health()\n .send()"),
            BTreeSet::from(["DescribeTargetHealth".to_owned()])
        );
    }

    #[test]
    fn operations_map_to_their_action() {
        assert_eq!(
            iam_action("elbv2", "RegisterTargets"),
            Some("elasticloadbalancing:RegisterTargets")
        );
        assert_eq!(
            iam_action("route53", "GetChange"),
            Some("route53:GetChange")
        );
        assert_eq!(iam_action("elbv2", "DeleteLoadBalancer"), None);
        assert!(actions("nonsense").is_empty());
    }
}
