//! Who this node is: the instance identity from IMDSv2, its tags from one
//! `DescribeInstances`, and the AWS configuration every module shares.

use std::net::IpAddr;

use anyhow::{anyhow, Context};
use aws_config::SdkConfig;
use berth_aws::config::{load_sdk_config, AwsOptions};
use berth_aws::ec2::Ec2Instances;
use berth_aws::imds::Imds;
use berth_aws::CallCounter;
use berth_core::domain::{InstanceId, Tags};
use berth_core::provider::Instances;
use serde::Serialize;

/// The tag EC2 Auto Scaling puts on the instances of a group.
pub const AUTO_SCALING_GROUP_TAG: &str = "aws:autoscaling:groupName";

/// This instance.
#[derive(Debug, Clone, Serialize)]
pub struct NodeIdentity {
    /// The instance id (also the etcd member name).
    pub instance_id: InstanceId,
    /// The region.
    pub region: String,
    /// The Availability Zone.
    pub availability_zone: String,
    /// The primary private IP.
    pub private_ip: IpAddr,
    /// The instance's tags.
    #[serde(skip)]
    pub tags: Tags,
    /// The Auto Scaling group the instance belongs to, from its tag.
    pub auto_scaling_group: Option<String>,
}

/// The AWS configuration and the call counter shared by every module.
#[derive(Debug, Clone)]
pub struct Aws {
    /// Credentials from the standard chain, endpoints from `AWS_ENDPOINT_URL*`.
    pub sdk: SdkConfig,
    /// AWS calls per operation, reported in the summary.
    pub counter: CallCounter,
}

/// Reads the identity from IMDSv2 (`AWS_EC2_METADATA_SERVICE_ENDPOINT` if set),
/// loads the AWS configuration (region from `AWS_REGION`, else the instance's own)
/// and reads the instance's tags.
pub async fn discover(counter: CallCounter) -> anyhow::Result<(NodeIdentity, Aws)> {
    let imds = Imds::new();
    let identity = imds
        .identity()
        .await
        .context("reading the instance identity from IMDSv2")?;
    let region_from_env = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|r| !r.is_empty()));
    let options = AwsOptions {
        region: (!region_from_env).then(|| identity.region.clone()),
        ..AwsOptions::default()
    };
    let sdk = load_sdk_config(&options).await;
    let aws = Aws { sdk, counter };
    let instances = Ec2Instances::new(&aws.sdk, aws.counter.clone());
    let described = instances
        .describe(std::slice::from_ref(&identity.instance_id))
        .await
        .with_context(|| format!("describing this instance {}", identity.instance_id))?;
    let instance = described
        .into_iter()
        .find(|i| i.id == identity.instance_id)
        .ok_or_else(|| anyhow!("EC2 does not know this instance {}", identity.instance_id))?;
    let auto_scaling_group = instance.tags.get(AUTO_SCALING_GROUP_TAG).cloned();
    Ok((
        NodeIdentity {
            instance_id: identity.instance_id,
            region: identity.region,
            availability_zone: identity.availability_zone,
            private_ip: identity.private_ip,
            tags: instance.tags,
            auto_scaling_group,
        },
        aws,
    ))
}
