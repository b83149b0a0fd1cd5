use std::fmt;
use std::net::IpAddr;

use super::{InstanceId, Tags};

/// An Elastic IP allocation id, `eipalloc-...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllocationId(pub String);

impl fmt::Display for AllocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an Elastic IP is associated now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Association {
    /// `eipassoc-...`
    pub association_id: String,
    /// The instance, if associated with one.
    pub instance_id: Option<InstanceId>,
    /// The network interface.
    pub network_interface_id: Option<String>,
    /// The private IP on that interface.
    pub private_ip: Option<IpAddr>,
}

/// Where to associate an Elastic IP: the instance's primary interface and its primary
/// private IP, so the address lands on DeviceIndex 0 whatever else is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationTarget {
    /// The instance.
    pub instance_id: InstanceId,
    /// Its primary network interface.
    pub network_interface_id: String,
    /// The private IP on that interface.
    pub private_ip: IpAddr,
}

/// An Elastic IP with its current association (AWS's truth, not tags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElasticIp {
    /// Allocation id.
    pub allocation_id: AllocationId,
    /// The public address.
    pub public_ip: IpAddr,
    /// Current association, if any.
    pub association: Option<Association>,
    /// The address's tags (pool membership).
    pub tags: Tags,
}

impl ElasticIp {
    /// Whether the address is associated with `instance`.
    pub fn is_on(&self, instance: &InstanceId) -> bool {
        self.association
            .as_ref()
            .and_then(|a| a.instance_id.as_ref())
            == Some(instance)
    }

    /// Whether the address is associated with the network interface `eni`.
    pub fn is_on_interface(&self, eni: &str) -> bool {
        self.association
            .as_ref()
            .and_then(|a| a.network_interface_id.as_deref())
            == Some(eni)
    }
}
