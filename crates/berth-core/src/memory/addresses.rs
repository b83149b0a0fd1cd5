use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

use async_trait::async_trait;

use super::Faults;
use crate::domain::{AllocationId, Association, AssociationTarget, ElasticIp, TagFilter, Tags};
use crate::provider::Addresses;
use crate::{Error, Result};

/// Elastic IPs in memory. Associating an address that is already associated fails, as
/// it does in AWS without `AllowReassociation`; associating one with a private IP that
/// holds another replaces that one, as in AWS.
#[derive(Default)]
pub struct MemoryAddresses {
    addresses: Mutex<BTreeMap<AllocationId, ElasticIp>>,
    next: Mutex<u64>,
    /// Fault injection and call counts (`DescribeAddresses`, `AssociateAddress`,
    /// `DisassociateAddress`).
    pub faults: Faults,
}

impl MemoryAddresses {
    /// Allocates an address with tags.
    pub fn allocate(&self, public_ip: IpAddr, tags: Tags) -> AllocationId {
        let id = AllocationId(format!("eipalloc-{:08x}", self.bump()));
        let eip = ElasticIp {
            allocation_id: id.clone(),
            public_ip,
            association: None,
            tags,
        };
        self.addresses
            .lock()
            .expect("poisoned")
            .insert(id.clone(), eip);
        id
    }

    /// Every address, for assertions.
    pub fn all(&self) -> Vec<ElasticIp> {
        self.addresses
            .lock()
            .expect("poisoned")
            .values()
            .cloned()
            .collect()
    }

    fn bump(&self) -> u64 {
        let mut n = self.next.lock().expect("poisoned");
        *n += 1;
        *n
    }
}

#[async_trait]
impl Addresses for MemoryAddresses {
    async fn list(&self, filter: &TagFilter) -> Result<Vec<ElasticIp>> {
        self.faults.enter("DescribeAddresses")?;
        Ok(self
            .addresses
            .lock()
            .expect("poisoned")
            .values()
            .filter(|a| filter.matches(&a.tags))
            .cloned()
            .collect())
    }

    async fn associate(
        &self,
        allocation: &AllocationId,
        target: &AssociationTarget,
    ) -> Result<String> {
        self.faults.enter("AssociateAddress")?;
        let association_id = format!("eipassoc-{:08x}", self.bump());
        let mut all = self.addresses.lock().expect("poisoned");
        let eip = all
            .get_mut(allocation)
            .ok_or_else(|| Error::not_found(format!("address {allocation}")))?;
        if eip.association.is_some() {
            return Err(Error::conflict(format!(
                "address {allocation} is already associated"
            )));
        }
        // As in EC2: a private IP holds one Elastic IP, so a new association replaces
        // the address that was there (which stays allocated, unassociated).
        for other in all.values_mut() {
            if other.association.as_ref().is_some_and(|a| {
                a.network_interface_id.as_deref() == Some(target.network_interface_id.as_str())
                    && a.private_ip == Some(target.private_ip)
            }) {
                other.association = None;
            }
        }
        let eip = all
            .get_mut(allocation)
            .ok_or_else(|| Error::not_found(format!("address {allocation}")))?;
        eip.association = Some(Association {
            association_id: association_id.clone(),
            instance_id: Some(target.instance_id.clone()),
            network_interface_id: Some(target.network_interface_id.clone()),
            private_ip: Some(target.private_ip),
        });
        Ok(association_id)
    }

    async fn disassociate(&self, association_id: &str) -> Result<()> {
        self.faults.enter("DisassociateAddress")?;
        let mut all = self.addresses.lock().expect("poisoned");
        for eip in all.values_mut() {
            if eip
                .association
                .as_ref()
                .is_some_and(|a| a.association_id == association_id)
            {
                eip.association = None;
            }
        }
        Ok(())
    }
}
