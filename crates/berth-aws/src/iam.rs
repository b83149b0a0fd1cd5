//! The IAM actions each adapter calls, for the least-privilege policies that
//! packaging generates. `iam-actions.json` at the crate root holds the same list in
//! machine-readable form; a test keeps the two in sync.

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
    use std::collections::BTreeMap;

    #[test]
    fn json_list_matches_the_code() {
        let json: BTreeMap<String, Vec<String>> =
            serde_json::from_str(include_str!("../iam-actions.json")).unwrap();
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
