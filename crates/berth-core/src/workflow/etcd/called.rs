//! The etcd workflow's providers through the [`crate::engine::Caller`]: every call
//! rate-limited, retried with jittered backoff and counted, as the other workflows'.

use std::sync::Arc;

use async_trait::async_trait;

use crate::engine::Caller;
use crate::provider::{EtcdMember, EtcdMembership, LocalView, ScalingGroup, ScalingGroups};
use crate::Result;

/// A provider `P` whose calls go through `caller`, counted under the operation each
/// trait method stands for (the etcd and Auto Scaling counterpart of
/// `workflow::called::Called`).
pub(super) struct Called<P: ?Sized> {
    inner: Arc<P>,
    caller: Caller,
}

impl<P: ?Sized> Called<P> {
    pub(super) fn new(inner: Arc<P>, caller: Caller) -> Self {
        Called { inner, caller }
    }
}

#[async_trait]
impl<P: ScalingGroups + ?Sized> ScalingGroups for Called<P> {
    async fn group(&self, name: &str) -> Result<ScalingGroup> {
        self.caller
            .call("DescribeAutoScalingGroups", || self.inner.group(name))
            .await
    }
}

/// Named after etcd's RPCs. `local_view` and `quorum_members` answer `None` rather
/// than fail when nothing answers, so they are counted but never retried.
#[async_trait]
impl<P: EtcdMembership + ?Sized> EtcdMembership for Called<P> {
    async fn local_view(&self, client_url: &str) -> Result<Option<LocalView>> {
        self.caller
            .call("Status", || self.inner.local_view(client_url))
            .await
    }
    async fn quorum_members(&self, endpoints: &[String]) -> Result<Option<Vec<EtcdMember>>> {
        self.caller
            .call("QuorumRead", || self.inner.quorum_members(endpoints))
            .await
    }
    async fn add_member(
        &self,
        endpoints: &[String],
        peer_urls: &[String],
        learner: bool,
    ) -> Result<(EtcdMember, Vec<EtcdMember>)> {
        self.caller
            .call("MemberAdd", || {
                self.inner.add_member(endpoints, peer_urls, learner)
            })
            .await
    }
    async fn remove_member(&self, endpoints: &[String], id: u64) -> Result<()> {
        self.caller
            .call("MemberRemove", || self.inner.remove_member(endpoints, id))
            .await
    }
    async fn promote_member(&self, endpoints: &[String], id: u64) -> Result<()> {
        self.caller
            .call("MemberPromote", || self.inner.promote_member(endpoints, id))
            .await
    }
}
