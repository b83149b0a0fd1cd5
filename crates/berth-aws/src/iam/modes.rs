//! The least-privilege policy of each mode, from what its configuration names: the
//! actions are those the mode's adapters call (see [`super::actions`]); the resources
//! are the target groups, hosted zone, tables, certificate authority and Elastic IP
//! pool the configuration names, `*` only where AWS cannot scope an action (the
//! `Describe*`/`List*` reads of ELBv2, EC2, Auto Scaling and Route53's zone lookup).

use berth_core::domain::{TagFilter, TargetGroupRef};

use super::policy::{Policy, Scope, Statement};

const ELB: &str = "elasticloadbalancing";
/// ELBv2's reads, which cannot be scoped to a resource.
const ELB_READS: [&str; 3] = [
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeTargetHealth",
];
const ELB_WRITES: [&str; 2] = [
    "elasticloadbalancing:RegisterTargets",
    "elasticloadbalancing:DeregisterTargets",
];

/// The ARN a group reference grants: the ARN itself, or every group of that name.
fn group_arn(scope: &Scope, group: &TargetGroupRef) -> String {
    match group {
        TargetGroupRef::Arn(arn) => arn.as_str().to_owned(),
        TargetGroupRef::Name(name) => scope.arn(ELB, &format!("targetgroup/{name}/*")),
    }
}

/// Reads anywhere, registration only in `groups` (`None`: groups learnt at run time,
/// e.g. from Cast.ai, so any group of the account and region).
fn target_groups(prefix: &str, scope: &Scope, groups: Option<&[TargetGroupRef]>) -> Policy {
    let resources: Vec<String> = match groups {
        Some(groups) => {
            let mut arns: Vec<String> = groups.iter().map(|g| group_arn(scope, g)).collect();
            arns.dedup();
            arns
        }
        None => vec![scope.arn(ELB, "targetgroup/*/*")],
    };
    let sid = if groups.is_some() {
        format!("{prefix}RegisterOnlyTheseGroups")
    } else {
        format!("{prefix}RegisterInGroupsLearntAtRunTime")
    };
    Policy::new(vec![
        Statement::allow(&format!("{prefix}Describe"), ELB_READS, ["*"]),
        Statement::allow(&sid, ELB_WRITES, resources),
    ])
}

/// berth-daemon: the static rules' groups, or any group when Cast.ai supplies them
/// (`groups: None`). IMDS (node mode's spot notice) needs no IAM.
pub fn daemon(scope: &Scope, groups: Option<&[TargetGroupRef]>) -> Policy {
    target_groups("BerthDaemon", scope, groups)
}

/// berth-sidecar: the groups on its command line.
pub fn sidecar(scope: &Scope, groups: &[TargetGroupRef]) -> Policy {
    target_groups("BerthSidecar", scope, Some(groups))
}

/// What berth-lambda's configuration names.
#[derive(Debug, Clone, Copy)]
pub struct LambdaResources<'a> {
    /// The Elastic IP pool's tags (`BERTH_EIP_TAGS`).
    pub pool: &'a TagFilter,
    /// The hosted zone id (`BERTH_HOSTED_ZONE_ID`).
    pub zone_id: &'a str,
    /// The ledger table (`BERTH_LEDGER_TABLE`).
    pub table: &'a str,
}

/// The `ec2:ResourceTag/...` conditions that hold for exactly the addresses of `pool`.
fn pool_conditions(statement: Statement, pool: &TagFilter) -> Statement {
    pool.clauses
        .iter()
        .fold(statement, |statement, clause| match &clause.value {
            Some(value) => statement.when(
                "StringEquals",
                format!("ec2:ResourceTag/{}", clause.key),
                value.clone(),
            ),
            None => statement.when("Null", format!("ec2:ResourceTag/{}", clause.key), "false"),
        })
}

/// berth-lambda: addresses of the pool only (a tag condition on the Elastic IP, which
/// kubeip's policy lacks), records of the one zone, rows of the one table.
pub fn lambda(scope: &Scope, resources: LambdaResources<'_>) -> Policy {
    let bind = ["ec2:AssociateAddress", "ec2:DisassociateAddress"];
    Policy::new(vec![
        Statement::allow(
            "BerthLambdaReadInstancesAndAddresses",
            [
                "ec2:DescribeInstances",
                "ec2:DescribeAddresses",
                "ec2:DescribeNetworkInterfaces",
            ],
            ["*"],
        ),
        pool_conditions(
            Statement::allow(
                "BerthLambdaBindOnlyPoolAddresses",
                bind,
                [scope.arn("ec2", "elastic-ip/*")],
            ),
            resources.pool,
        ),
        Statement::allow(
            "BerthLambdaBindToInstances",
            bind,
            [
                scope.arn("ec2", "instance/*"),
                scope.arn("ec2", "network-interface/*"),
            ],
        ),
        Statement::allow(
            "BerthLambdaRecordsInTheZone",
            [
                "route53:ListResourceRecordSets",
                "route53:ChangeResourceRecordSets",
            ],
            [scope.global_arn("route53", &format!("hostedzone/{}", resources.zone_id))],
        ),
        Statement::allow(
            "BerthLambdaLedger",
            ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan"],
            [scope.arn("dynamodb", &format!("table/{}", resources.table))],
        ),
    ])
}

/// What berth-bootstrap's configuration names, for the modules that run.
#[derive(Debug, Clone, Default)]
pub struct BootstrapResources {
    /// The DNS module runs: the zone id, or `None` when it is looked up by name.
    pub dns: Option<Option<String>>,
    /// The certificates module runs with ACM Private CA: the CA's ARN.
    pub acm_pca_arn: Option<String>,
    /// The etcd module runs: the "cluster created" marker table, if any.
    pub etcd: Option<Option<String>>,
}

/// berth-bootstrap: the instance's tags (always read, for the AMI-build check), the
/// node's record in the one zone, the one CA, the etcd peers and the marker table.
pub fn bootstrap(scope: &Scope, resources: &BootstrapResources) -> Policy {
    let mut reads = vec!["ec2:DescribeInstances"];
    if resources.etcd.is_some() {
        // Auto Scaling's Describe actions cannot be scoped to a group.
        reads.push("autoscaling:DescribeAutoScalingGroups");
    }
    let mut statements = vec![Statement::allow(
        "BerthBootstrapInstanceTagsAndEtcdPeers",
        reads,
        ["*"],
    )];
    if let Some(zone_id) = &resources.dns {
        if zone_id.is_none() {
            statements.push(Statement::allow(
                "BerthBootstrapFindTheZoneByName",
                ["route53:ListHostedZonesByName"],
                ["*"],
            ));
        }
        let zone = zone_id.as_deref().unwrap_or("*");
        statements.push(Statement::allow(
            "BerthBootstrapTheNodeRecord",
            [
                "route53:ListResourceRecordSets",
                "route53:ChangeResourceRecordSets",
            ],
            [scope.global_arn("route53", &format!("hostedzone/{zone}"))],
        ));
    }
    if let Some(Some(table)) = &resources.etcd {
        statements.push(Statement::allow(
            "BerthBootstrapEtcdClusterCreatedMarker",
            ["dynamodb:GetItem", "dynamodb:PutItem"],
            [scope.arn("dynamodb", &format!("table/{table}"))],
        ));
    }
    if let Some(arn) = &resources.acm_pca_arn {
        statements.push(Statement::allow(
            "BerthBootstrapNodeCertificatesFromAcmPca",
            super::actions("acmpca").iter().copied(),
            [arn.clone()],
        ));
    }
    Policy::new(statements)
}

#[cfg(test)]
mod tests;
