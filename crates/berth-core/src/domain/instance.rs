use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use super::Tags;
use crate::Error;

/// An EC2 instance id, `i-...`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct InstanceId(String);

impl InstanceId {
    /// Validates the `i-` prefix and the characters.
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        let valid = id.len() > 2
            && id.starts_with("i-")
            && id[2..].chars().all(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(Error::invalid(format!(
                "{id:?} is not an EC2 instance id (i-...)"
            )));
        }
        Ok(InstanceId(id))
    }

    /// Extracts the id from a Kubernetes node's `spec.providerID`, `aws:///<az>/<id>`.
    pub fn from_provider_id(provider_id: &str) -> Result<Self, Error> {
        let rest = provider_id.strip_prefix("aws://").ok_or_else(|| {
            Error::invalid(format!(
                "providerID {provider_id:?} is not an AWS provider id"
            ))
        })?;
        let last = rest.rsplit('/').next().unwrap_or_default();
        InstanceId::new(last)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// EC2 instance lifecycle states, as EC2 and EventBridge spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    /// `pending`
    Pending,
    /// `running`
    Running,
    /// `stopping`
    Stopping,
    /// `stopped`
    Stopped,
    /// `shutting-down`
    ShuttingDown,
    /// `terminated`
    Terminated,
}

impl InstanceState {
    /// The EC2 spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
        }
    }

    /// The instance is going away for good.
    pub fn is_terminating(self) -> bool {
        matches!(
            self,
            InstanceState::ShuttingDown | InstanceState::Terminated
        )
    }

    /// The instance is stopping or stopped (it may come back).
    pub fn is_stopping(self) -> bool {
        matches!(self, InstanceState::Stopping | InstanceState::Stopped)
    }
}

impl FromStr for InstanceState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            other => return Err(Error::invalid(format!("unknown instance state {other:?}"))),
        })
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A network interface attached to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInterface {
    /// `eni-...`
    pub id: String,
    /// 0 for the primary interface. EC2 does not list interfaces in device order.
    pub device_index: u32,
    /// The interface's primary private IP.
    pub private_ip: IpAddr,
    /// The public IP associated with the primary private IP, if any.
    pub public_ip: Option<IpAddr>,
}

/// An EC2 instance as berth needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The instance id.
    pub id: InstanceId,
    /// Lifecycle state.
    pub state: InstanceState,
    /// Availability Zone, e.g. `eu-west-1a`.
    pub availability_zone: String,
    /// Every private IP of every interface, primary interface first.
    pub private_ips: Vec<IpAddr>,
    /// All attached interfaces, in whatever order EC2 returned them.
    pub interfaces: Vec<NetworkInterface>,
    /// Instance tags.
    pub tags: Tags,
}

impl Instance {
    /// The primary network interface: the one at device index 0 — not "the first one
    /// listed", which EC2 does not guarantee.
    pub fn primary_interface(&self) -> Option<&NetworkInterface> {
        self.interfaces.iter().find(|i| i.device_index == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_id_from_provider_id() {
        let id = InstanceId::from_provider_id("aws:///eu-west-1a/i-0abc123").unwrap();
        assert_eq!(id.as_str(), "i-0abc123");
        assert!(InstanceId::from_provider_id("gce://p/z/n").is_err());
        assert!(InstanceId::from_provider_id("aws:///eu-west-1a/").is_err());
        assert!(InstanceId::new("i-").is_err());
    }

    #[test]
    fn primary_interface_is_device_index_zero_not_first_listed() {
        let eni = |id: &str, idx, ip: &str| NetworkInterface {
            id: id.into(),
            device_index: idx,
            private_ip: ip.parse().unwrap(),
            public_ip: None,
        };
        let inst = Instance {
            id: InstanceId::new("i-1").unwrap(),
            state: InstanceState::Running,
            availability_zone: "us-east-1a".into(),
            private_ips: vec![],
            interfaces: vec![
                eni("eni-second", 1, "10.0.0.2"),
                eni("eni-primary", 0, "10.0.0.1"),
            ],
            tags: Tags::new(),
        };
        assert_eq!(inst.primary_interface().unwrap().id, "eni-primary");
    }

    #[test]
    fn states_round_trip() {
        for s in [
            "pending",
            "running",
            "stopping",
            "stopped",
            "shutting-down",
            "terminated",
        ] {
            assert_eq!(s.parse::<InstanceState>().unwrap().as_str(), s);
        }
        assert!("rebooting".parse::<InstanceState>().is_err());
    }
}
