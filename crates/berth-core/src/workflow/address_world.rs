//! The world the address workflow's tests run in: the in-memory providers (each call
//! yielding a random number of times, so concurrent binds interleave as against AWS),
//! a pool, instances, a clock, and the invariants every test checks.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::domain::{
    AllocationId, AssociationTarget, DnsRecord, ElasticIp, Instance, InstanceId, InstanceState,
    LedgerRecord, NetworkInterface, Owner, RecordType, TagFilter, Tags, WriteCondition,
};
use crate::engine::{Caller, RetryPolicy};
use crate::memory::{MemoryAddresses, MemoryDns, MemoryInstances, MemoryLedger};
use crate::plan::AddressPolicy;
use crate::provider::{Addresses, DnsChange, DnsZones, Instances, Ledger};
use crate::Result;

pub(super) const ZONE: &str = "Z123";
pub(super) const SUFFIX: &str = "live.example.com";

/// Delegates to a provider after yielding a random number of times, so that
/// concurrent binds interleave at every call as they would against AWS.
pub(super) struct Yielding<T>(pub(super) Arc<T>);

async fn jitter() {
    for _ in 0..fastrand::usize(0..4) {
        tokio::task::yield_now().await;
    }
}

#[async_trait]
impl<T: Instances> Instances for Yielding<T> {
    async fn describe(&self, ids: &[InstanceId]) -> Result<Vec<Instance>> {
        jitter().await;
        self.0.describe(ids).await
    }
    async fn matching(&self, filter: &TagFilter) -> Result<Vec<Instance>> {
        jitter().await;
        self.0.matching(filter).await
    }
}

#[async_trait]
impl<T: Addresses> Addresses for Yielding<T> {
    async fn list(&self, filter: &TagFilter) -> Result<Vec<ElasticIp>> {
        jitter().await;
        self.0.list(filter).await
    }
    async fn associate(&self, a: &AllocationId, t: &AssociationTarget) -> Result<String> {
        jitter().await;
        self.0.associate(a, t).await
    }
    async fn disassociate(&self, association_id: &str) -> Result<()> {
        jitter().await;
        self.0.disassociate(association_id).await
    }
}

#[async_trait]
impl<T: DnsZones> DnsZones for Yielding<T> {
    async fn records(&self, zone_id: &str, names: &[String]) -> Result<Vec<DnsRecord>> {
        jitter().await;
        self.0.records(zone_id, names).await
    }
    async fn change(&self, zone_id: &str, changes: &[DnsChange]) -> Result<String> {
        jitter().await;
        self.0.change(zone_id, changes).await
    }
    async fn is_in_sync(&self, change_id: &str) -> Result<bool> {
        jitter().await;
        self.0.is_in_sync(change_id).await
    }
}

#[async_trait]
impl<T: Ledger> Ledger for Yielding<T> {
    async fn get(&self, key: &str) -> Result<Option<LedgerRecord>> {
        jitter().await;
        self.0.get(key).await
    }
    async fn put(&self, record: LedgerRecord, condition: WriteCondition) -> Result<LedgerRecord> {
        jitter().await;
        self.0.put(record, condition).await
    }
    async fn delete(&self, key: &str, condition: WriteCondition) -> Result<()> {
        jitter().await;
        self.0.delete(key, condition).await
    }
    async fn scan(&self, prefix: &str) -> Result<Vec<LedgerRecord>> {
        jitter().await;
        self.0.scan(prefix).await
    }
}

pub(super) struct World {
    pub(super) instances: Arc<MemoryInstances>,
    pub(super) addresses: Arc<MemoryAddresses>,
    pub(super) dns: Arc<MemoryDns>,
    pub(super) ledger: Arc<MemoryLedger>,
    pub(super) now: Arc<AtomicU64>,
    pub(super) owner: Owner,
}

pub(super) fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn id(n: usize) -> InstanceId {
    InstanceId::new(format!("i-{n:04}")).unwrap()
}

impl World {
    pub(super) fn new() -> Self {
        let dns = MemoryDns::default();
        dns.add_zone(ZONE, SUFFIX);
        World {
            instances: Arc::default(),
            addresses: Arc::default(),
            dns: Arc::new(dns),
            ledger: Arc::default(),
            now: Arc::new(AtomicU64::new(1_000_000)),
            owner: Owner::new("berth-lambda/ledger").unwrap(),
        }
    }

    pub(super) fn settings(&self, release_on_stop: bool) -> BindingSettings {
        BindingSettings {
            owner: self.owner.clone(),
            previous_owners: Vec::new(),
            instance_filter: TagFilter::parse("karpenter.sh/nodepool,team=live").unwrap(),
            pool: TagFilter::parse("pool=live").unwrap(),
            zone_id: ZONE.into(),
            dns_suffix: SUFFIX.into(),
            name_template: DnsNameTemplate::default(),
            dns_ttl: 60,
            policy: AddressPolicy { release_on_stop },
            claim_ttl: Duration::from_secs(120),
        }
    }

    /// A binder with these settings whose calls make no retry: these tests drive
    /// each failure by hand (retries: `retries.rs`).
    pub(super) fn binder_with(&self, settings: BindingSettings) -> AddressBinder {
        self.binder_through(settings, Caller::new(RetryPolicy::none(), Duration::ZERO))
    }

    /// A binder whose every call goes through `caller`.
    pub(super) fn binder_through(
        &self,
        settings: BindingSettings,
        caller: Caller,
    ) -> AddressBinder {
        let now = self.now.clone();
        let providers = AddressProviders {
            instances: Arc::new(Yielding(self.instances.clone())),
            addresses: Arc::new(Yielding(self.addresses.clone())),
            dns: Arc::new(Yielding(self.dns.clone())),
            ledger: Arc::new(Yielding(self.ledger.clone())),
        };
        AddressBinder::with_caller(providers, settings, caller)
            .with_clock(Arc::new(move || now.load(Ordering::SeqCst)))
    }

    pub(super) fn binder(&self) -> AddressBinder {
        self.binder_with(self.settings(false))
    }

    pub(super) fn launch_tagged(&self, n: usize, instance_tags: Tags) -> InstanceId {
        let ip: IpAddr = format!("10.0.{}.{}", n / 250, n % 250 + 1).parse().unwrap();
        self.instances.insert(Instance {
            id: id(n),
            state: InstanceState::Running,
            availability_zone: "eu-west-1a".into(),
            private_ips: vec![ip],
            // A secondary interface listed first: the primary is found by device index.
            interfaces: vec![
                NetworkInterface {
                    id: format!("eni-{n:04}b"),
                    device_index: 1,
                    private_ip: format!("10.1.0.{}", n % 250 + 1).parse().unwrap(),
                    public_ip: None,
                },
                NetworkInterface {
                    id: format!("eni-{n:04}"),
                    device_index: 0,
                    private_ip: ip,
                    public_ip: None,
                },
            ],
            tags: instance_tags,
        });
        id(n)
    }

    pub(super) fn launch(&self, n: usize) -> InstanceId {
        self.launch_tagged(
            n,
            tags(&[("karpenter.sh/nodepool", "default"), ("team", "live")]),
        )
    }

    pub(super) async fn set_state(&self, n: usize, state: InstanceState) {
        let mut i = self.instances.describe(&[id(n)]).await.unwrap().remove(0);
        i.state = state;
        self.instances.insert(i);
    }

    /// `n` pool addresses, plus one address outside the pool that must never be used.
    pub(super) fn pool(&self, n: usize) -> Vec<AllocationId> {
        self.addresses
            .allocate("198.51.100.1".parse().unwrap(), tags(&[("pool", "other")]));
        (0..n)
            .map(|k| {
                self.addresses.allocate(
                    format!("203.0.113.{}", k + 1).parse().unwrap(),
                    tags(&[("pool", "live")]),
                )
            })
            .collect()
    }

    pub(super) fn rows(&self) -> Vec<AddressRow> {
        self.ledger
            .rows()
            .iter()
            .map(|r| AddressRow::decode(r).unwrap())
            .collect()
    }

    pub(super) fn held_by(&self, n: usize) -> Vec<ElasticIp> {
        self.addresses
            .all()
            .into_iter()
            .filter(|a| a.is_on(&id(n)))
            .collect()
    }

    pub(super) fn a_records(&self) -> BTreeMap<String, Vec<String>> {
        self.dns
            .all(ZONE)
            .into_iter()
            .filter(|r| r.record_type == RecordType::A)
            .map(|r| (r.name, r.values))
            .collect()
    }

    /// The invariants after any sequence of events: no instance holds two addresses,
    /// every associated pool address has its `bound` row and A record, no claim is
    /// left, and every `bound` row agrees with EC2.
    pub(super) fn assert_consistent(&self) {
        let all = self.addresses.all();
        let mut per_instance: BTreeMap<InstanceId, usize> = BTreeMap::new();
        for a in &all {
            if let Some(i) = a.association.as_ref().and_then(|x| x.instance_id.clone()) {
                *per_instance.entry(i).or_default() += 1;
            }
        }
        assert!(
            per_instance.values().all(|&n| n == 1),
            "an instance holds several addresses: {per_instance:?}"
        );
        let rows: BTreeMap<AllocationId, AddressRow> = self
            .rows()
            .into_iter()
            .map(|r| (r.allocation_id.clone(), r))
            .collect();
        let records = self.a_records();
        for a in all
            .iter()
            .filter(|a| a.tags.get("pool").map(String::as_str) == Some("live"))
        {
            let row = rows.get(&a.allocation_id);
            match &a.association {
                Some(assoc) => {
                    let row = row.unwrap_or_else(|| panic!("no row for bound {}", a.allocation_id));
                    assert_eq!(row.state, RowState::Bound, "{row:?}");
                    assert_eq!(row.instance_id, assoc.instance_id, "{row:?}");
                    assert_eq!(row.association_id.as_ref(), Some(&assoc.association_id));
                    let name = row.dns_name.clone().expect("bound row has a DNS name");
                    assert_eq!(records.get(&name), Some(&vec![a.public_ip.to_string()]));
                }
                None => {
                    if let Some(row) = row {
                        assert_eq!(row.state, RowState::Free, "stale row {row:?}");
                    }
                }
            }
        }
        assert!(
            rows.values().all(|r| r.state != RowState::Claimed),
            "claims left behind: {rows:?}"
        );
    }
}

pub(super) fn binding(outcome: Outcome) -> Binding {
    match outcome {
        Outcome::Bound { binding, .. } => binding,
        other => panic!("expected a binding, got {other:?}"),
    }
}
