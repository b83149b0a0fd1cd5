//! The traits through which the engine observes and changes the world.
//!
//! Adapters implement them over real clients (berth-aws, berth-kube, berth-castai).
//! With the `test-util` feature every trait has a mockall mock (`MockTargetGroups`,
//! ...) and an in-memory implementation in [`crate::memory`].
//!
//! Contract for implementers: translate service errors into [`crate::Error`] so that
//! retryable failures are marked as such and refused permissions name the IAM action;
//! make each call one API call where the service allows it (the engine batches and
//! retries, the adapter does not loop).

mod etcd;
mod ownership;
mod sidecar_records;

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{
    AllocationId, AssociationTarget, DnsRecord, ElasticIp, Instance, InstanceId, LedgerRecord,
    Registration, TagFilter, Target, TargetGroup, TargetGroupArn, TargetGroupRef, TargetHealth,
    WriteCondition,
};
use crate::Result;

pub use etcd::{EtcdMember, EtcdMembership, GroupInstance, LocalView, ScalingGroup, ScalingGroups};
#[cfg(feature = "test-util")]
pub use etcd::{MockEtcdMembership, MockScalingGroups};
#[cfg(feature = "test-util")]
pub use ownership::MockTargetOwnership;
pub use ownership::{
    decode_targets, encode_targets, CasPolicy, LedgerOwnership, OwnedByConstruction, OwnedTargets,
    Swap, TargetOwnership,
};
pub use sidecar_records::SidecarRecords;

/// ELBv2 target groups.
#[cfg_attr(feature = "test-util", mockall::automock)]
#[async_trait]
pub trait TargetGroups: Send + Sync {
    /// Resolves a name or ARN to the group, with its port and deregistration delay.
    /// Fails with [`crate::Error::NotFound`] naming the group if it does not exist.
    async fn resolve(&self, group: &TargetGroupRef) -> Result<TargetGroup>;
    /// The group's deregistration delay, current within the provider's documented
    /// bound: asked when a drain begins. An adapter caching resolutions may serve an
    /// old delay from [`TargetGroups::resolve`] and re-read it here; by default it is
    /// [`TargetGroups::resolve`]'s.
    async fn deregistration_delay(&self, group: &TargetGroupArn) -> Result<Duration> {
        let by_arn = TargetGroupRef::Arn(group.clone());
        Ok(self.resolve(&by_arn).await?.deregistration_delay)
    }
    /// The whole membership of a group and each target's health, in one call.
    async fn health(&self, group: &TargetGroupArn) -> Result<Vec<TargetHealth>>;
    /// Registers targets (one API call; the engine sizes the batches).
    async fn register(&self, group: &TargetGroupArn, targets: &[Registration]) -> Result<()>;
    /// Deregisters targets (one API call where the service allows it). Deregistering
    /// an absent target succeeds, and the answer says which targets were absent (from
    /// the service's typed answer, never from an error's text).
    async fn deregister(&self, group: &TargetGroupArn, targets: &[Target]) -> Result<Deregistered>;
}

/// What a deregistration did, target by target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deregistered {
    /// Targets the group had: they are leaving it (draining for its delay).
    pub removed: Vec<Target>,
    /// Targets the group did not have: nothing was removed for them.
    pub absent: Vec<Target>,
}

impl Deregistered {
    /// Every target removed.
    pub fn removed(targets: &[Target]) -> Self {
        Deregistered {
            removed: targets.to_vec(),
            absent: Vec::new(),
        }
    }

    /// Every target absent.
    pub fn absent(targets: &[Target]) -> Self {
        Deregistered {
            removed: Vec::new(),
            absent: targets.to_vec(),
        }
    }
}

/// EC2 instances.
#[cfg_attr(feature = "test-util", mockall::automock)]
#[async_trait]
pub trait Instances: Send + Sync {
    /// Describes instances by id. Unknown ids are left out of the answer.
    async fn describe(&self, ids: &[InstanceId]) -> Result<Vec<Instance>>;
    /// Every instance whose tags match `filter`, in whatever state EC2 still reports
    /// (the pool sweep's view of the fleet; one paginated listing).
    async fn matching(&self, filter: &TagFilter) -> Result<Vec<Instance>>;
}

/// Elastic IP addresses.
#[cfg_attr(feature = "test-util", mockall::automock)]
#[async_trait]
pub trait Addresses: Send + Sync {
    /// Addresses whose tags match the filter, with their current association.
    async fn list(&self, filter: &TagFilter) -> Result<Vec<ElasticIp>>;
    /// Associates an address, never taking it from someone else: an address that is
    /// already associated fails with [`crate::Error::Conflict`]. Returns the
    /// association id.
    async fn associate(
        &self,
        allocation: &AllocationId,
        target: &AssociationTarget,
    ) -> Result<String>;
    /// Removes an association. An association that no longer exists is success.
    async fn disassociate(&self, association_id: &str) -> Result<()>;
}

/// One change to a hosted zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsChange {
    /// Create the record set; if one exists at that name and type, the whole batch
    /// fails with [`crate::Error::Conflict`] and nothing changes.
    Create(DnsRecord),
    /// Create or replace the record set.
    Upsert(DnsRecord),
    /// Delete the record set (it must match the current one exactly).
    Delete(DnsRecord),
}

/// DNS hosted zones.
#[cfg_attr(feature = "test-util", mockall::automock)]
#[async_trait]
pub trait DnsZones: Send + Sync {
    /// The record sets at exactly these names (never a listing of the whole zone).
    async fn records(&self, zone_id: &str, names: &[String]) -> Result<Vec<DnsRecord>>;
    /// Applies changes atomically (one change batch). Returns the change id.
    async fn change(&self, zone_id: &str, changes: &[DnsChange]) -> Result<String>;
    /// Whether a change has propagated (`INSYNC`). The engine waits with backoff.
    async fn is_in_sync(&self, change_id: &str) -> Result<bool>;
}

/// A key-value store with conditional writes: berth's record of what it owns, and a
/// lock or lease when a write is conditioned on a version.
#[cfg_attr(feature = "test-util", mockall::automock)]
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Reads a row.
    async fn get(&self, key: &str) -> Result<Option<LedgerRecord>>;
    /// Writes a row if `condition` holds, else fails with [`crate::Error::Conflict`].
    /// Returns the row as stored, with its new version.
    async fn put(&self, record: LedgerRecord, condition: WriteCondition) -> Result<LedgerRecord>;
    /// Deletes a row if `condition` holds. Deleting an absent row with
    /// [`WriteCondition::Always`] succeeds.
    async fn delete(&self, key: &str, condition: WriteCondition) -> Result<()>;
    /// Every row whose key starts with `prefix`.
    async fn scan(&self, prefix: &str) -> Result<Vec<LedgerRecord>>;
}

/// Where a node's target groups come from (Cast.ai node configurations, static rules).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupBinding {
    /// The group.
    pub group: TargetGroupRef,
    /// The port, or `None` for the group's own port.
    pub port: Option<u16>,
}

/// A source of node configurations.
#[cfg_attr(feature = "test-util", mockall::automock)]
#[async_trait]
pub trait NodeConfigurations: Send + Sync {
    /// The target groups of a node configuration.
    async fn target_groups(&self, configuration_id: &str) -> Result<Vec<GroupBinding>>;
}

/// How long to wait and how to back off between polls; shared by every waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPolicy {
    /// First delay.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Give up after this long.
    pub deadline: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(15),
            deadline: Duration::from_secs(300),
        }
    }
}

/// A shared ledger is a ledger (so one store can back several users, e.g. ownership
/// and the address ledger).
#[async_trait]
impl<T: Ledger + ?Sized> Ledger for std::sync::Arc<T> {
    async fn get(&self, key: &str) -> Result<Option<LedgerRecord>> {
        (**self).get(key).await
    }
    async fn put(&self, record: LedgerRecord, condition: WriteCondition) -> Result<LedgerRecord> {
        (**self).put(record, condition).await
    }
    async fn delete(&self, key: &str, condition: WriteCondition) -> Result<()> {
        (**self).delete(key, condition).await
    }
    async fn scan(&self, prefix: &str) -> Result<Vec<LedgerRecord>> {
        (**self).scan(prefix).await
    }
}
