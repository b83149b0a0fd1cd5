use super::*;
use crate::iam::{actions, FEATURES};

const ARN: &str =
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef";

fn scope() -> Scope {
    Scope::new(Some("eu-west-1"), Some("123456789012"))
}

fn groups(texts: &[&str]) -> Vec<TargetGroupRef> {
    texts.iter().map(|t| t.parse().unwrap()).collect()
}

fn statement<'p>(policy: &'p Policy, sid: &str) -> &'p Statement {
    policy
        .statements
        .iter()
        .find(|s| s.sid == sid)
        .unwrap_or_else(|| panic!("no statement {sid} in {}", policy.to_json()))
}

/// Every action a policy grants is one an adapter calls.
fn only_adapter_actions(policy: &Policy) {
    for action in policy.actions() {
        assert!(
            FEATURES
                .iter()
                .any(|f| actions(f).contains(&action.as_str())),
            "{action} is not in iam-actions.json"
        );
    }
}

#[test]
fn registration_is_scoped_to_the_named_groups() {
    let policy = sidecar(&scope(), &groups(&[ARN, "edge"]));
    only_adapter_actions(&policy);
    assert_eq!(statement(&policy, "BerthSidecarDescribe").resources, ["*"]);
    let writes = statement(&policy, "BerthSidecarRegisterOnlyTheseGroups");
    assert_eq!(writes.actions, ELB_WRITES);
    assert_eq!(
        writes.resources,
        [
            ARN,
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/edge/*"
        ]
    );
    assert_eq!(policy.actions().len(), 5);
}

#[test]
fn groups_learnt_at_run_time_widen_registration_to_the_account_only() {
    let policy = daemon(&scope(), None);
    only_adapter_actions(&policy);
    let writes = statement(&policy, "BerthDaemonRegisterInGroupsLearntAtRunTime");
    assert_eq!(
        writes.resources,
        ["arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/*/*"]
    );
    let scoped = daemon(&scope(), Some(&groups(&[ARN])));
    assert_eq!(
        statement(&scoped, "BerthDaemonRegisterOnlyTheseGroups").resources,
        [ARN]
    );
}

#[test]
fn the_lambda_binds_only_addresses_of_its_pool() {
    let pool = TagFilter::parse("berth/eip-pool=live,owner").unwrap();
    let policy = lambda(
        &scope(),
        LambdaResources {
            pool: &pool,
            zone_id: "Z0123",
            table: "ledger",
        },
    );
    only_adapter_actions(&policy);
    let bind = statement(&policy, "BerthLambdaBindOnlyPoolAddresses");
    assert_eq!(
        bind.resources,
        ["arn:aws:ec2:eu-west-1:123456789012:elastic-ip/*"]
    );
    assert_eq!(
        bind.conditions["StringEquals"]["ec2:ResourceTag/berth/eip-pool"],
        "live"
    );
    assert_eq!(bind.conditions["Null"]["ec2:ResourceTag/owner"], "false");
    // The instance and interface side carries no pool tag, so no condition there.
    let to = statement(&policy, "BerthLambdaBindToInstances");
    assert!(to.conditions.is_empty());
    assert!(to.resources.iter().all(|r| !r.contains("elastic-ip")));
    assert_eq!(
        statement(&policy, "BerthLambdaRecordsInTheZone").resources,
        ["arn:aws:route53:::hostedzone/Z0123"]
    );
    assert_eq!(
        statement(&policy, "BerthLambdaLedger").resources,
        ["arn:aws:dynamodb:eu-west-1:123456789012:table/ledger"]
    );
}

#[test]
fn bootstrap_grants_only_what_its_modules_call() {
    let hostname_only = bootstrap(&scope(), &BootstrapResources::default());
    assert_eq!(hostname_only.actions(), ["ec2:DescribeInstances"]);

    let everything = bootstrap(
        &scope(),
        &BootstrapResources {
            dns: Some(None),
            acm_pca_arn: Some("arn:aws:acm-pca:eu-west-1:1:certificate-authority/x".into()),
            etcd: Some(Some("markers".into())),
        },
    );
    only_adapter_actions(&everything);
    assert!(everything.allows("route53:ListHostedZonesByName"));
    assert!(everything.allows("autoscaling:DescribeAutoScalingGroups"));
    assert_eq!(
        statement(&everything, "BerthBootstrapTheNodeRecord").resources,
        ["arn:aws:route53:::hostedzone/*"]
    );
    assert_eq!(
        statement(&everything, "BerthBootstrapNodeCertificatesFromAcmPca").resources,
        ["arn:aws:acm-pca:eu-west-1:1:certificate-authority/x"]
    );

    let known_zone = bootstrap(
        &scope(),
        &BootstrapResources {
            dns: Some(Some("Z9".into())),
            ..BootstrapResources::default()
        },
    );
    assert!(!known_zone.allows("route53:ListHostedZonesByName"));
    assert!(!known_zone.allows("dynamodb:GetItem"));
    assert_eq!(
        statement(&known_zone, "BerthBootstrapTheNodeRecord").resources,
        ["arn:aws:route53:::hostedzone/Z9"]
    );
}
