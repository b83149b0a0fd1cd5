//! Providers whose every call goes through a [`Caller`]: the rate limit, retries with
//! jittered backoff, and the per-operation tally. A workflow wraps the providers it
//! is given once, so no call of it can bypass the engine.

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{
    AllocationId, AssociationTarget, DnsRecord, ElasticIp, Instance, InstanceId, LedgerRecord,
    TagFilter, WriteCondition,
};
use crate::engine::Caller;
use crate::provider::{Addresses, DnsChange, DnsZones, Instances, Ledger};
use crate::Result;

/// A provider `P` whose calls go through `caller`, counted under the AWS operation
/// each trait method stands for.
pub(crate) struct Called<P: ?Sized> {
    inner: Arc<P>,
    caller: Caller,
}

impl<P: ?Sized> Called<P> {
    pub(crate) fn new(inner: Arc<P>, caller: Caller) -> Self {
        Called { inner, caller }
    }
}

#[async_trait]
impl<P: Instances + ?Sized> Instances for Called<P> {
    async fn describe(&self, ids: &[InstanceId]) -> Result<Vec<Instance>> {
        self.caller
            .call("DescribeInstances", || self.inner.describe(ids))
            .await
    }
    async fn matching(&self, filter: &TagFilter) -> Result<Vec<Instance>> {
        self.caller
            .call("DescribeInstances", || self.inner.matching(filter))
            .await
    }
}

#[async_trait]
impl<P: Addresses + ?Sized> Addresses for Called<P> {
    async fn list(&self, filter: &TagFilter) -> Result<Vec<ElasticIp>> {
        self.caller
            .call("DescribeAddresses", || self.inner.list(filter))
            .await
    }
    async fn associate(
        &self,
        allocation: &AllocationId,
        target: &AssociationTarget,
    ) -> Result<String> {
        self.caller
            .call("AssociateAddress", || {
                self.inner.associate(allocation, target)
            })
            .await
    }
    async fn disassociate(&self, association_id: &str) -> Result<()> {
        self.caller
            .call("DisassociateAddress", || {
                self.inner.disassociate(association_id)
            })
            .await
    }
}

#[async_trait]
impl<P: DnsZones + ?Sized> DnsZones for Called<P> {
    async fn records(&self, zone_id: &str, names: &[String]) -> Result<Vec<DnsRecord>> {
        self.caller
            .call("ListResourceRecordSets", || {
                self.inner.records(zone_id, names)
            })
            .await
    }
    async fn change(&self, zone_id: &str, changes: &[DnsChange]) -> Result<String> {
        self.caller
            .call("ChangeResourceRecordSets", || {
                self.inner.change(zone_id, changes)
            })
            .await
    }
    async fn is_in_sync(&self, change_id: &str) -> Result<bool> {
        self.caller
            .call("GetChange", || self.inner.is_in_sync(change_id))
            .await
    }
}

#[async_trait]
impl<P: Ledger + ?Sized> Ledger for Called<P> {
    async fn get(&self, key: &str) -> Result<Option<LedgerRecord>> {
        self.caller.call("GetItem", || self.inner.get(key)).await
    }
    async fn put(&self, record: LedgerRecord, condition: WriteCondition) -> Result<LedgerRecord> {
        self.caller
            .call("PutItem", || {
                self.inner.put(record.clone(), condition.clone())
            })
            .await
    }
    async fn delete(&self, key: &str, condition: WriteCondition) -> Result<()> {
        self.caller
            .call("DeleteItem", || self.inner.delete(key, condition.clone()))
            .await
    }
    async fn scan(&self, prefix: &str) -> Result<Vec<LedgerRecord>> {
        self.caller.call("Scan", || self.inner.scan(prefix)).await
    }
}
