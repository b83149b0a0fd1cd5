//! Instances of an Auto Scaling group with their lifecycle state: [`AutoScaling`].
//!
//! Bootstrap uses it to tell peers that are in service from peers still booting or
//! already leaving (seed 003 treated a booting peer as a member).

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_autoscaling::types::AutoScalingGroup;
use aws_sdk_autoscaling::Client;
use berth_core::domain::InstanceId;
use berth_core::provider::{self, ScalingGroup, ScalingGroups};
use berth_core::{Error, Result};

use crate::error::from_sdk;
use crate::CallCounter;

const OP: &str = "DescribeAutoScalingGroups";

/// Where an instance is in its Auto Scaling lifecycle, as Auto Scaling spells it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LifecycleState {
    /// `Pending`: launching.
    Pending,
    /// `Pending:Wait`: held by a launch lifecycle hook.
    PendingWait,
    /// `Pending:Proceed`: a launch lifecycle hook completed.
    PendingProceed,
    /// `Quarantined`
    Quarantined,
    /// `InService`: launched and serving.
    InService,
    /// `EnteringStandby`
    EnteringStandby,
    /// `Standby`: in the group but taken out of service.
    Standby,
    /// `Terminating`
    Terminating,
    /// `Terminating:Wait`: held by a termination lifecycle hook.
    TerminatingWait,
    /// `Terminating:Proceed`
    TerminatingProceed,
    /// `Terminated`
    Terminated,
    /// `Detaching`
    Detaching,
    /// `Detached`
    Detached,
    /// Any other state (warm pools, root volume replacement), spelled as sent.
    Other(String),
}

impl LifecycleState {
    /// The Auto Scaling spelling.
    pub fn as_str(&self) -> &str {
        match self {
            LifecycleState::Pending => "Pending",
            LifecycleState::PendingWait => "Pending:Wait",
            LifecycleState::PendingProceed => "Pending:Proceed",
            LifecycleState::Quarantined => "Quarantined",
            LifecycleState::InService => "InService",
            LifecycleState::EnteringStandby => "EnteringStandby",
            LifecycleState::Standby => "Standby",
            LifecycleState::Terminating => "Terminating",
            LifecycleState::TerminatingWait => "Terminating:Wait",
            LifecycleState::TerminatingProceed => "Terminating:Proceed",
            LifecycleState::Terminated => "Terminated",
            LifecycleState::Detaching => "Detaching",
            LifecycleState::Detached => "Detached",
            LifecycleState::Other(other) => other,
        }
    }

    /// Launched and serving (`InService`).
    pub fn is_in_service(&self) -> bool {
        *self == LifecycleState::InService
    }

    /// Still launching (`Pending`, `Pending:Wait`, `Pending:Proceed`).
    pub fn is_launching(&self) -> bool {
        matches!(
            self,
            LifecycleState::Pending | LifecycleState::PendingWait | LifecycleState::PendingProceed
        )
    }

    /// Leaving the group for good (terminating or detaching).
    pub fn is_leaving(&self) -> bool {
        matches!(
            self,
            LifecycleState::Terminating
                | LifecycleState::TerminatingWait
                | LifecycleState::TerminatingProceed
                | LifecycleState::Terminated
                | LifecycleState::Detaching
                | LifecycleState::Detached
        )
    }
}

impl FromStr for LifecycleState {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s {
            "Pending" => LifecycleState::Pending,
            "Pending:Wait" => LifecycleState::PendingWait,
            "Pending:Proceed" => LifecycleState::PendingProceed,
            "Quarantined" => LifecycleState::Quarantined,
            "InService" => LifecycleState::InService,
            "EnteringStandby" => LifecycleState::EnteringStandby,
            "Standby" => LifecycleState::Standby,
            "Terminating" => LifecycleState::Terminating,
            "Terminating:Wait" => LifecycleState::TerminatingWait,
            "Terminating:Proceed" => LifecycleState::TerminatingProceed,
            "Terminated" => LifecycleState::Terminated,
            "Detaching" => LifecycleState::Detaching,
            "Detached" => LifecycleState::Detached,
            other => LifecycleState::Other(other.to_owned()),
        })
    }
}

impl fmt::Display for LifecycleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One instance of an Auto Scaling group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInstance {
    /// The EC2 instance.
    pub id: InstanceId,
    /// Its lifecycle state in the group.
    pub lifecycle_state: LifecycleState,
    /// Its Availability Zone.
    pub availability_zone: String,
    /// Whether Auto Scaling considers it healthy (`HealthStatus` = `Healthy`).
    pub healthy: bool,
}

/// Reads Auto Scaling groups through `DescribeAutoScalingGroups`.
#[derive(Debug, Clone)]
pub struct AutoScaling {
    client: Client,
}

impl AutoScaling {
    /// An adapter over `config`, counting its calls in `counter`.
    pub fn new(config: &SdkConfig, counter: CallCounter) -> Self {
        let config = aws_sdk_autoscaling::config::Builder::from(config)
            .interceptor(counter)
            .build();
        AutoScaling {
            client: Client::from_conf(config),
        }
    }

    /// One group as the SDK describes it, in one call.
    async fn describe(&self, group: &str) -> Result<AutoScalingGroup> {
        let output = self
            .client
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(group)
            .send()
            .await
            .map_err(|e| from_sdk(OP, "autoscaling:DescribeAutoScalingGroups", e))?;
        output
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(group))
            .cloned()
            .ok_or_else(|| Error::not_found(format!("Auto Scaling group {group}")))
    }

    /// The instances of `group` with their lifecycle state, in one call. Fails with
    /// [`Error::NotFound`] if the group does not exist.
    pub async fn instances(&self, group: &str) -> Result<Vec<GroupInstance>> {
        let found = self.describe(group).await?;
        found
            .instances()
            .iter()
            .map(|instance| {
                let lifecycle_state =
                    instance
                        .lifecycle_state()
                        .map(|s| s.as_str())
                        .ok_or_else(|| Error::Provider {
                            operation: OP.into(),
                            message: format!(
                                "instance {:?} of {group} has no lifecycle state",
                                instance.instance_id()
                            ),
                            retryable: false,
                        })?;
                Ok(GroupInstance {
                    id: InstanceId::new(instance.instance_id().unwrap_or_default())?,
                    lifecycle_state: lifecycle_state
                        .parse()
                        .unwrap_or_else(|never: std::convert::Infallible| match never {}),
                    availability_zone: instance.availability_zone().unwrap_or_default().to_owned(),
                    healthy: instance.health_status() == Some("Healthy"),
                })
            })
            .collect()
    }
}

/// The group with its desired capacity (for the etcd membership workflow).
#[async_trait]
impl ScalingGroups for AutoScaling {
    async fn group(&self, name: &str) -> Result<ScalingGroup> {
        let found = self.describe(name).await?;
        let instances = found
            .instances()
            .iter()
            .map(|i| {
                Ok(provider::GroupInstance {
                    id: InstanceId::new(i.instance_id().unwrap_or_default())?,
                    lifecycle_state: i
                        .lifecycle_state()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ScalingGroup {
            name: name.to_owned(),
            desired_capacity: found
                .desired_capacity()
                .and_then(|c| u32::try_from(c).ok())
                .unwrap_or(0),
            instances,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_states_round_trip_and_classify() {
        for s in [
            "Pending",
            "Pending:Wait",
            "Pending:Proceed",
            "Quarantined",
            "InService",
            "EnteringStandby",
            "Standby",
            "Terminating",
            "Terminating:Wait",
            "Terminating:Proceed",
            "Terminated",
            "Detaching",
            "Detached",
            "Warmed:Running",
        ] {
            let state: LifecycleState = s.parse().unwrap();
            assert_eq!(state.as_str(), s);
        }
        let parse = |s: &str| s.parse::<LifecycleState>().unwrap();
        assert!(parse("InService").is_in_service());
        assert!(parse("Pending:Wait").is_launching());
        assert!(!parse("Pending:Wait").is_in_service());
        assert!(parse("Terminating:Wait").is_leaving());
        assert!(!parse("Standby").is_leaving());
        assert_eq!(
            parse("Warmed:Running"),
            LifecycleState::Other("Warmed:Running".into())
        );
    }
}
