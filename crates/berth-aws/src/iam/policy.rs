//! An IAM policy document: statements of actions on resources, with conditions, that
//! serialises to the JSON IAM reads (keys in IAM's customary order).

use std::collections::BTreeMap;

use serde::Serialize;

/// The policy language version every document uses.
pub const VERSION: &str = "2012-10-17";

/// An identity-based IAM policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    #[serde(rename = "Version")]
    version: &'static str,
    /// The statements, in the order they print.
    #[serde(rename = "Statement")]
    pub statements: Vec<Statement>,
}

/// One `Allow` statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    /// Says what the statement is for.
    #[serde(rename = "Sid")]
    pub sid: String,
    #[serde(rename = "Effect")]
    effect: &'static str,
    /// `service:Operation` actions.
    #[serde(rename = "Action")]
    pub actions: Vec<String>,
    /// ARNs (or `*` where the service cannot scope the actions).
    #[serde(rename = "Resource")]
    pub resources: Vec<String>,
    /// Operator → condition key → value; all must hold.
    #[serde(rename = "Condition", skip_serializing_if = "BTreeMap::is_empty")]
    pub conditions: BTreeMap<String, BTreeMap<String, String>>,
}

impl Statement {
    /// An `Allow` of `actions` on `resources`.
    pub fn allow<A, R>(sid: &str, actions: A, resources: R) -> Statement
    where
        A: IntoIterator,
        A::Item: Into<String>,
        R: IntoIterator,
        R::Item: Into<String>,
    {
        Statement {
            sid: sid.to_owned(),
            effect: "Allow",
            actions: actions.into_iter().map(Into::into).collect(),
            resources: resources.into_iter().map(Into::into).collect(),
            conditions: BTreeMap::new(),
        }
    }

    /// Adds the condition `operator: {key: value}`.
    pub fn when(
        mut self,
        operator: &str,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.conditions
            .entry(operator.to_owned())
            .or_default()
            .insert(key.into(), value.into());
        self
    }
}

impl Policy {
    /// A policy of these statements.
    pub fn new(statements: Vec<Statement>) -> Policy {
        Policy {
            version: VERSION,
            statements,
        }
    }

    /// Every action the policy allows, sorted, once each.
    pub fn actions(&self) -> Vec<String> {
        let mut actions: Vec<String> = self
            .statements
            .iter()
            .flat_map(|s| s.actions.iter().cloned())
            .collect();
        actions.sort();
        actions.dedup();
        actions
    }

    /// Whether the policy allows `action` (on some resource).
    pub fn allows(&self, action: &str) -> bool {
        self.statements
            .iter()
            .any(|s| s.actions.iter().any(|a| a == action))
    }

    /// The document as IAM reads it: pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        // Serialising plain strings and maps cannot fail.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

impl Policy {
    /// The statements as a CloudFormation YAML sequence (for a role's `PolicyDocument`),
    /// each line indented by `indent` spaces. A value naming `${...}` (a parameter or
    /// pseudo parameter, see [`Scope::cloudformation`]) is written as `!Sub`.
    pub fn cloudformation_statements(&self, indent: usize) -> String {
        let pad = " ".repeat(indent);
        let scalar = |value: &str| {
            let quoted = serde_json::to_string(value).unwrap_or_default();
            if value.contains("${") {
                format!("!Sub {quoted}")
            } else {
                quoted
            }
        };
        let mut out = String::new();
        let mut line = |depth: usize, text: String| {
            out.push_str(&pad);
            out.push_str(&" ".repeat(depth * 2));
            out.push_str(&text);
            out.push('\n');
        };
        for statement in &self.statements {
            line(0, format!("- Sid: {}", scalar(&statement.sid)));
            line(1, format!("Effect: {}", scalar(statement.effect)));
            line(1, "Action:".to_owned());
            for action in &statement.actions {
                line(2, format!("- {}", scalar(action)));
            }
            line(1, "Resource:".to_owned());
            for resource in &statement.resources {
                line(2, format!("- {}", scalar(resource)));
            }
            if !statement.conditions.is_empty() {
                line(1, "Condition:".to_owned());
                for (operator, keys) in &statement.conditions {
                    line(2, format!("{}:", scalar(operator)));
                    for (key, value) in keys {
                        line(3, format!("{}: {}", scalar(key), scalar(value)));
                    }
                }
            }
        }
        out
    }
}

/// Where the ARNs point: partition, region and account; `*` where unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    partition: String,
    region: String,
    account: String,
}

impl Scope {
    /// The scope of `region` and `account` (`*` for either when unknown); the partition
    /// follows the region (`cn-*` → `aws-cn`, `us-gov-*` → `aws-us-gov`, else `aws`).
    pub fn new(region: Option<&str>, account: Option<&str>) -> Scope {
        let known = |v: Option<&str>| {
            v.map(str::trim)
                .filter(|v| !v.is_empty())
                .map_or_else(|| "*".to_owned(), str::to_owned)
        };
        let region = known(region);
        let partition = if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        Scope {
            partition: partition.to_owned(),
            region,
            account: known(account),
        }
    }

    /// The scope the standard variables name: `AWS_REGION` (else `AWS_DEFAULT_REGION`)
    /// and `AWS_ACCOUNT_ID`, read through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Scope {
        let region = lookup("AWS_REGION").or_else(|| lookup("AWS_DEFAULT_REGION"));
        Scope::new(region.as_deref(), lookup("AWS_ACCOUNT_ID").as_deref())
    }

    /// CloudFormation's pseudo parameters, for a template's `!Sub`.
    pub fn cloudformation() -> Scope {
        Scope {
            partition: "${AWS::Partition}".to_owned(),
            region: "${AWS::Region}".to_owned(),
            account: "${AWS::AccountId}".to_owned(),
        }
    }

    /// `arn:<partition>:<service>:<region>:<account>:<resource>`.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }

    /// An ARN of a global service (Route53): no region, no account.
    pub fn global_arn(&self, service: &str, resource: &str) -> String {
        format!("arn:{}:{service}:::{resource}", self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_iams_key_order_and_omits_empty_conditions() {
        let policy = Policy::new(vec![
            Statement::allow("Read", ["ec2:DescribeInstances"], ["*"]),
            Statement::allow("Bind", ["ec2:AssociateAddress"], ["arn:x"]).when(
                "StringEquals",
                "ec2:ResourceTag/pool",
                "live",
            ),
        ]);
        let json = policy.to_json();
        let version = json.find("\"Version\"").unwrap();
        let statement = json.find("\"Statement\"").unwrap();
        assert!(version < statement, "{json}");
        let sid = json.find("\"Sid\"").unwrap();
        let action = json.find("\"Action\"").unwrap();
        let resource = json.find("\"Resource\"").unwrap();
        assert!(sid < action && action < resource, "{json}");
        assert_eq!(json.matches("\"Condition\"").count(), 1, "{json}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            value["Statement"][1]["Condition"]["StringEquals"]["ec2:ResourceTag/pool"],
            "live"
        );
        assert!(policy.allows("ec2:AssociateAddress"));
        assert!(!policy.allows("ec2:ReleaseAddress"));
    }

    #[test]
    fn cloudformation_yaml_substitutes_parameters() {
        let scope = Scope::cloudformation();
        let policy = Policy::new(vec![Statement::allow(
            "Bind",
            ["ec2:AssociateAddress"],
            [scope.arn("ec2", "elastic-ip/*"), "*".to_owned()],
        )
        .when("StringEquals", "ec2:ResourceTag/pool", "${Pool}")]);
        assert_eq!(
            policy.cloudformation_statements(2),
            concat!(
                "  - Sid: \"Bind\"\n",
                "    Effect: \"Allow\"\n",
                "    Action:\n",
                "      - \"ec2:AssociateAddress\"\n",
                "    Resource:\n",
                "      - !Sub \"arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:elastic-ip/*\"\n",
                "      - \"*\"\n",
                "    Condition:\n",
                "      \"StringEquals\":\n",
                "        \"ec2:ResourceTag/pool\": !Sub \"${Pool}\"\n",
            )
        );
    }

    #[test]
    fn scope_fills_unknowns_with_wildcards_and_picks_the_partition() {
        assert_eq!(
            Scope::new(None, None).arn("dynamodb", "table/t"),
            "arn:aws:dynamodb:*:*:table/t"
        );
        assert_eq!(
            Scope::new(Some("cn-north-1"), Some("1")).arn("ec2", "elastic-ip/*"),
            "arn:aws-cn:ec2:cn-north-1:1:elastic-ip/*"
        );
        assert_eq!(
            Scope::new(Some("us-gov-west-1"), None).global_arn("route53", "hostedzone/Z1"),
            "arn:aws-us-gov:route53:::hostedzone/Z1"
        );
        let env = |k: &str| (k == "AWS_DEFAULT_REGION").then(|| "eu-west-1".to_owned());
        assert_eq!(
            Scope::from_lookup(env).arn("ec2", "x"),
            "arn:aws:ec2:eu-west-1:*:x"
        );
        assert_eq!(
            Scope::cloudformation().arn("dynamodb", "table/${LedgerTable}"),
            "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${LedgerTable}"
        );
    }
}
