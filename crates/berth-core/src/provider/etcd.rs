//! The traits the etcd membership workflow observes and changes the world through:
//! [`EtcdMembership`] (an etcd cluster, reached through client URLs) and
//! [`ScalingGroups`] (the Auto Scaling group whose instances are the peers).

use async_trait::async_trait;

use crate::domain::InstanceId;
use crate::Result;

/// One member of an etcd cluster, as `MemberList` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EtcdMember {
    /// The member id etcd assigned.
    pub id: u64,
    /// The member's name; empty for a member that was added but never started.
    pub name: String,
    /// Where the other members reach it.
    pub peer_urls: Vec<String>,
    /// Where clients reach it; empty until it started.
    pub client_urls: Vec<String>,
    /// A learner does not vote and does not count for quorum.
    pub is_learner: bool,
}

impl EtcdMember {
    /// Whether the member ever started (etcd learns its name when it first joins).
    pub fn started(&self) -> bool {
        !self.name.is_empty()
    }
}

/// What one etcd member says about itself, answered locally (no quorum needed): proof
/// that a peer runs etcd with data, even when the cluster has lost quorum.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LocalView {
    /// The answering member's id.
    pub member_id: u64,
    /// The cluster it belongs to.
    pub cluster_id: u64,
    /// The members it knows of (its own, possibly stale, view).
    pub members: Vec<EtcdMember>,
}

/// An etcd cluster reached through client URLs (`http://ip:2379`, `https://...`).
///
/// Contract for implementers: a call that reaches no endpoint returns `Ok(None)` where
/// the answer is optional, and otherwise [`crate::Error::Unavailable`] (retryable);
/// etcd's "unhealthy cluster" refusal of a membership change is retryable too.
#[cfg_attr(feature = "test-util", mockall::automock)]
#[async_trait]
pub trait EtcdMembership: Send + Sync {
    /// The status and member list of the one member at `client_url`, answered
    /// locally; `None` if nothing answers there.
    async fn local_view(&self, client_url: &str) -> Result<Option<LocalView>>;
    /// The member list of the cluster behind `endpoints`, if a quorum answers a
    /// linearizable read through one of them; `None` if none does. (`MemberList` alone
    /// is answered locally and proves nothing.)
    async fn quorum_members(&self, endpoints: &[String]) -> Result<Option<Vec<EtcdMember>>>;
    /// Adds a member with these peer URLs (as a learner if asked). Returns the new
    /// member and the member list after the change.
    async fn add_member(
        &self,
        endpoints: &[String],
        peer_urls: &[String],
        learner: bool,
    ) -> Result<(EtcdMember, Vec<EtcdMember>)>;
    /// Removes a member.
    async fn remove_member(&self, endpoints: &[String], id: u64) -> Result<()>;
    /// Promotes a learner; fails retryably while it is not in sync with the leader.
    async fn promote_member(&self, endpoints: &[String], id: u64) -> Result<()>;
}

/// One instance of an Auto Scaling group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupInstance {
    /// The instance.
    pub id: InstanceId,
    /// Its lifecycle state, as Auto Scaling spells it (`Pending:Wait`, `InService`...).
    pub lifecycle_state: String,
}

/// An Auto Scaling group as the etcd workflow needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScalingGroup {
    /// The group's name.
    pub name: String,
    /// How many instances the group wants.
    pub desired_capacity: u32,
    /// Its instances, in any state.
    pub instances: Vec<GroupInstance>,
}

/// Auto Scaling groups.
#[cfg_attr(feature = "test-util", mockall::automock)]
#[async_trait]
pub trait ScalingGroups: Send + Sync {
    /// One group with its instances, in one call. Fails with
    /// [`crate::Error::NotFound`] if it does not exist.
    async fn group(&self, name: &str) -> Result<ScalingGroup>;
}
