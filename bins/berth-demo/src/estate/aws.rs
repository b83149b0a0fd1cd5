//! The estate behind an AWS endpoint (moto): created with the raw SDKs, used by the
//! daemon through berth's real ELBv2 adapter, whose calls are counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_sdk_ec2::types::InstanceType;
use aws_sdk_elasticloadbalancingv2::types::{
    ProtocolEnum, TargetDescription, TargetGroupAttribute, TargetTypeEnum,
};
use berth_aws::elbv2::ElbTargetGroups;
use berth_aws::CallCounter;
use berth_core::domain::{Target, TargetGroupArn, TargetState};
use berth_core::provider::TargetGroups;

use super::{Group, Members, Role};

/// An AMI every moto release knows.
const AMI: &str = "ami-12c6146b";

/// Target groups and instances created behind an endpoint for this run.
pub(crate) struct AwsEstate {
    endpoint: String,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    adapter: Arc<ElbTargetGroups>,
    calls: CallCounter,
    groups: Vec<Group>,
    instances: Vec<String>,
    drain_delay: Duration,
}

impl AwsEstate {
    /// Creates a VPC, a subnet, `nodes + 1` instances and every role's group (names
    /// suffixed per run, so runs against one endpoint do not meet).
    pub(crate) async fn create(
        endpoint: &str,
        region: &str,
        nodes: usize,
        drain_delay: Duration,
    ) -> anyhow::Result<Self> {
        let sdk = sdk_config(endpoint, region);
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.42.0.0/16")
            .send()
            .await
            .with_context(|| format!("CreateVpc at {endpoint} (is an AWS API answering there?)"))?
            .vpc()
            .and_then(|v| v.vpc_id())
            .context("CreateVpc answered without a VPC id")?
            .to_owned();
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block("10.42.1.0/24")
            .send()
            .await
            .context("CreateSubnet")?
            .subnet()
            .and_then(|s| s.subnet_id())
            .context("CreateSubnet answered without a subnet id")?
            .to_owned();
        let count = i32::try_from(nodes + 1).context("too many nodes")?;
        let reservation = ec2
            .run_instances()
            .image_id(AMI)
            .instance_type(InstanceType::T3Micro)
            .subnet_id(&subnet)
            .min_count(count)
            .max_count(count)
            .send()
            .await
            .context("RunInstances")?;
        let instances: Vec<String> = reservation
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect();
        if instances.len() != nodes + 1 {
            bail!(
                "RunInstances started {} instances, not {}",
                instances.len(),
                nodes + 1
            );
        }
        let run = format!("{:04x}", std::process::id() & 0xffff);
        let mut groups = Vec::new();
        for role in Role::ALL {
            let name = format!("{}-{run}", role.name());
            let arn = create_group(&elb, &vpc, &name, role.port(), drain_delay).await?;
            groups.push(Group { role, name, arn });
        }
        let calls = CallCounter::new();
        let adapter = Arc::new(ElbTargetGroups::new(&sdk, calls.clone()));
        Ok(AwsEstate {
            endpoint: endpoint.to_owned(),
            elb,
            adapter,
            calls,
            groups,
            instances,
            drain_delay,
        })
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn groups(&self) -> &[Group] {
        &self.groups
    }

    pub(crate) fn instances(&self) -> &[String] {
        &self.instances
    }

    pub(crate) fn target_groups(&self) -> Arc<dyn TargetGroups> {
        self.adapter.clone()
    }

    pub(crate) async fn members(&self, group: &TargetGroupArn) -> anyhow::Result<Members> {
        let out = self
            .elb
            .describe_target_health()
            .target_group_arn(group.as_str())
            .send()
            .await
            .with_context(|| format!("DescribeTargetHealth of {}", group.name()))?;
        let mut members = BTreeMap::new();
        for d in out.target_health_descriptions() {
            let Some(t) = d.target() else { continue };
            let (Some(id), Some(port)) = (t.id(), t.port()) else {
                continue;
            };
            let port = u16::try_from(port).with_context(|| format!("port {port}"))?;
            let state = d
                .target_health()
                .and_then(|h| h.state())
                .map(|s| s.as_str().parse::<TargetState>())
                .transpose()
                .context("target state")?
                .unwrap_or(TargetState::Unavailable);
            members.insert(Target::new(id, port), state);
        }
        Ok(members)
    }

    pub(crate) async fn register_foreign(
        &self,
        group: &TargetGroupArn,
        target: &Target,
    ) -> anyhow::Result<()> {
        self.elb
            .register_targets()
            .target_group_arn(group.as_str())
            .targets(
                TargetDescription::builder()
                    .id(&*target.id)
                    .port(i32::from(target.port))
                    .build(),
            )
            .send()
            .await
            .context("RegisterTargets (someone else's target)")?;
        Ok(())
    }

    pub(crate) fn calls(&self) -> BTreeMap<String, u64> {
        self.calls.snapshot()
    }

    pub(crate) fn drain_delay(&self) -> Duration {
        self.drain_delay
    }
}

/// Static test credentials (moto accepts any), the endpoint for every service, and no
/// look at the environment, `~/.aws` or instance metadata.
fn sdk_config(endpoint: &str, region: &str) -> SdkConfig {
    let credentials = Credentials::new("testing", "testing", None, None, "berth-demo");
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build()
}

async fn create_group(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    vpc: &str,
    name: &str,
    port: u16,
    drain_delay: Duration,
) -> anyhow::Result<TargetGroupArn> {
    let created = elb
        .create_target_group()
        .name(name)
        .protocol(ProtocolEnum::Tcp)
        .port(i32::from(port))
        .vpc_id(vpc)
        .target_type(TargetTypeEnum::Instance)
        .send()
        .await
        .with_context(|| format!("CreateTargetGroup {name}"))?;
    let arn = created
        .target_groups()
        .first()
        .and_then(|g| g.target_group_arn())
        .with_context(|| format!("CreateTargetGroup {name} answered without an ARN"))?
        .to_owned();
    elb.modify_target_group_attributes()
        .target_group_arn(&arn)
        .attributes(
            TargetGroupAttribute::builder()
                .key("deregistration_delay.timeout_seconds")
                .value(drain_delay.as_secs().to_string())
                .build(),
        )
        .send()
        .await
        .with_context(|| format!("ModifyTargetGroupAttributes of {name}"))?;
    Ok(TargetGroupArn::new(&arn)?)
}
