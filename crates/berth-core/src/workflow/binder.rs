//! [`AddressBinder`]: an Elastic IP, a DNS name and a ledger row for an instance.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::called::Called;
use super::dns::{DnsNames, Expect};
use super::naming::DnsNameTemplate;
use crate::domain::{
    AllocationId, Association, AssociationTarget, AttributeEquals, DnsRecord, ElasticIp, Instance,
    InstanceId, InstanceState, Owner, RecordType, TagFilter, WriteCondition,
};
use crate::engine::Caller;
use crate::plan::{attr, AddressRow, RowState};
use crate::plan::{plan_address, AddressDecision, AddressPolicy};
use crate::provider::{Addresses, DnsZones, Instances, Ledger};
use crate::{Error, Result};

/// Every allocation id starts so; the ledger is scanned under this prefix.
const ALLOCATION_PREFIX: &str = "eipalloc-";
/// Compare-and-swap attempts on one row before giving up.
const CAS_ATTEMPTS: usize = 5;

/// What the binder is configured with (the Lambda reads it from its environment).
#[derive(Debug, Clone)]
pub struct BindingSettings {
    /// Whose records and rows these are (the DNS ownership marker names it).
    pub owner: Owner,
    /// Earlier owner ids of this installation: their rows and DNS names are berth's
    /// too, and are rewritten under `owner` when next written (nothing is orphaned
    /// when the owner id changes).
    pub previous_owners: Vec<Owner>,
    /// Which instances get an address; all clauses must match.
    pub instance_filter: TagFilter,
    /// The pool: Elastic IPs carrying all of these tags.
    pub pool: TagFilter,
    /// The Route53 hosted zone id.
    pub zone_id: String,
    /// The records are `<template>.<suffix>`.
    pub dns_suffix: String,
    /// The name template.
    pub name_template: DnsNameTemplate,
    /// Record TTL, seconds.
    pub dns_ttl: u32,
    /// Release on stop, or keep the address for the restart.
    pub policy: AddressPolicy,
    /// How long a claim holds if its caller never completes it.
    pub claim_ttl: Duration,
}

/// An address bound to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The address.
    pub allocation_id: AllocationId,
    /// Its public IP.
    pub public_ip: IpAddr,
    /// EC2's association id.
    pub association_id: String,
    /// The DNS name berth owns for it, if it could write one.
    pub dns_name: Option<String>,
    /// Why the DNS name was not written, if it was not (the name belongs to someone else).
    pub dns_skipped: Option<String>,
}

/// What handling one instance event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The instance holds a pool address with its record and row.
    Bound {
        /// The binding.
        binding: Binding,
        /// `true` if this call associated the address, `false` if it was already there.
        newly: bool,
    },
    /// The instance's addresses were released (none if it held none: already released).
    Released {
        /// Addresses disassociated or whose rows were freed.
        addresses: Vec<AllocationId>,
        /// DNS names deleted.
        dns_names: Vec<String>,
    },
    /// Nothing to do, and why.
    Ignored {
        /// The reason.
        reason: String,
    },
}

impl Outcome {
    /// A one-word label for logs: `bound`, `already_bound`, `released`, `ignored`.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Bound { newly: true, .. } => "bound",
            Outcome::Bound { newly: false, .. } => "already_bound",
            Outcome::Released { .. } => "released",
            Outcome::Ignored { .. } => "ignored",
        }
    }

    fn ignored(reason: impl Into<String>) -> Self {
        Outcome::Ignored {
            reason: reason.into(),
        }
    }
}

/// Unix seconds now; replaceable so tests can move time.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// What the address workflow calls: EC2 instances and Elastic IPs, the DNS zone and
/// the ledger. Clones share the providers.
#[derive(Clone)]
pub struct AddressProviders {
    /// EC2 instances.
    pub instances: Arc<dyn Instances>,
    /// Elastic IPs.
    pub addresses: Arc<dyn Addresses>,
    /// The hosted zone.
    pub dns: Arc<dyn DnsZones>,
    /// The ledger of bindings.
    pub ledger: Arc<dyn Ledger>,
}

/// Binds a pool Elastic IP, a DNS record and a ledger row to a running instance, and
/// releases them when it goes. Every step is safe to repeat and safe to race:
///
/// - an address is claimed with one conditional ledger write before it is associated
///   (the row is absent, free, or already this instance's), so of many concurrent
///   callers exactly one gets it; a claim that is never completed lapses after
///   [`BindingSettings::claim_ttl`];
/// - association never takes an address from anyone (no reassociation). EC2's
///   answer decides, not the ledger or tags: an association id is the address on the
///   interface; any other answer is followed by asking EC2 where the pool's
///   addresses are;
/// - a new name is CREATEd with its ownership marker in one batch, which Route53
///   refuses if either exists; then the names are read and UPSERTed only where berth
///   owns them;
/// - invocations for the same instance (at-least-once delivery) converge on the
///   same address: each instance tries the pool in its own fixed order, and a claim
///   already made for it is continued.
///
/// The common first binding is six calls: describe the instance, list the pool,
/// claim, associate, create the records, mark the row bound.
pub struct AddressBinder {
    pub(super) instances: Arc<dyn Instances>,
    pub(super) addresses: Arc<dyn Addresses>,
    pub(super) names: DnsNames,
    pub(super) ledger: Arc<dyn Ledger>,
    pub(super) settings: BindingSettings,
    pub(super) caller: Caller,
    pub(super) clock: Clock,
}

impl AddressBinder {
    /// A binder over these providers, every call through a [`Caller`] with the
    /// default retry policy and no rate limit.
    pub fn new(providers: AddressProviders, settings: BindingSettings) -> Self {
        Self::with_caller(providers, settings, Caller::default())
    }

    /// A binder over these providers, every call through `caller`: its rate limit,
    /// its retries, and its tally (give each event a [`Caller::scope`] to report what
    /// that event alone spent).
    pub fn with_caller(
        providers: AddressProviders,
        settings: BindingSettings,
        caller: Caller,
    ) -> Self {
        let AddressProviders {
            instances,
            addresses,
            dns,
            ledger,
        } = providers;
        let names = DnsNames::new(dns, settings.zone_id.clone(), settings.owner.clone())
            .adopting(settings.previous_owners.iter().cloned())
            .through(caller.clone());
        AddressBinder {
            instances: Arc::new(Called::new(instances, caller.clone())),
            addresses: Arc::new(Called::new(addresses, caller.clone())),
            names,
            ledger: Arc::new(Called::new(ledger, caller.clone())),
            settings,
            caller,
            clock: Arc::new(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            }),
        }
    }

    /// The caller every provider call goes through (its [`Caller::tally`] is what
    /// this binder spent).
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Replaces the clock (Unix seconds).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The settings in force.
    pub fn settings(&self) -> &BindingSettings {
        &self.settings
    }

    /// Handles one state change of one instance.
    pub async fn handle(&self, instance: &InstanceId, state: InstanceState) -> Result<Outcome> {
        match state {
            InstanceState::Running => self.bind(instance).await,
            s if s.is_terminating()
                || (s.is_stopping() && self.settings.policy.release_on_stop) =>
            {
                self.release(instance, s).await
            }
            s if s.is_stopping() => Ok(Outcome::ignored(
                "a stopped instance keeps its address (release on stop is off)",
            )),
            s => Ok(Outcome::ignored(format!(
                "the instance is {s}; its address is bound once it is running"
            ))),
        }
    }

    /// Whether a row written by `owner` is ours: our owner id, or an earlier one.
    fn owns(&self, owner: &Owner) -> bool {
        *owner == self.settings.owner || self.settings.previous_owners.contains(owner)
    }

    pub(super) fn now(&self) -> u64 {
        (self.clock)()
    }

    fn exhausted(&self) -> Error {
        Error::PoolExhausted {
            pool: self.settings.pool.to_string(),
        }
    }

    pub(super) async fn bind(&self, id: &InstanceId) -> Result<Outcome> {
        let described = self.instances.describe(std::slice::from_ref(id)).await?;
        let Some(instance) = described.into_iter().find(|i| &i.id == id) else {
            return Ok(Outcome::ignored(format!("EC2 does not know instance {id}")));
        };
        if !self.settings.instance_filter.matches(&instance.tags) {
            return Ok(Outcome::ignored(format!(
                "the instance's tags do not match {}",
                self.settings.instance_filter
            )));
        }
        if instance.state.is_terminating() || instance.state.is_stopping() {
            return Ok(Outcome::ignored(format!(
                "the event says running but EC2 says {}",
                instance.state
            )));
        }
        // EC2's associations say which addresses are free; the claim then asks the
        // ledger, in the same write that takes the row.
        let pool = self.addresses.list(&self.settings.pool).await?;
        let now = self.now();
        let decision = plan_address(
            id,
            InstanceState::Running,
            Some(&instance),
            &pool,
            self.settings.policy,
        )?;
        match decision {
            AddressDecision::Keep(eip) => {
                let row = self.read_row(&eip.allocation_id).await?;
                self.settle(&instance, &eip, row, false).await
            }
            AddressDecision::Exhausted => Err(self.exhausted()),
            AddressDecision::Bind { target, candidates } => {
                for allocation in candidates {
                    let Some(eip) = pool.iter().find(|a| a.allocation_id == allocation) else {
                        continue;
                    };
                    if let Some(outcome) = self.try_candidate(&instance, eip, &target, now).await? {
                        return Ok(outcome);
                    }
                }
                Err(self.exhausted())
            }
            AddressDecision::Release(_) | AddressDecision::Nothing(_) => {
                Ok(Outcome::ignored("nothing to bind for a running instance"))
            }
        }
    }

    /// Claims and associates one candidate. `Ok(None)`: someone else got it first,
    /// try the next one (our claim is withdrawn).
    async fn try_candidate(
        &self,
        instance: &Instance,
        eip: &ElasticIp,
        target: &AssociationTarget,
        now: u64,
    ) -> Result<Option<Outcome>> {
        // Render first: a template that cannot be rendered fails before any change.
        self.dns_name(instance, eip.public_ip)?;
        let Some(claimed) = self.claim(eip, &instance.id, now).await? else {
            return Ok(None);
        };
        let refused = match self.addresses.associate(&eip.allocation_id, target).await {
            // With reassociation refused, an association id is EC2 saying the address
            // is on our interface now: that answer is the re-check.
            Ok(association_id) => {
                let associated = ElasticIp {
                    association: Some(Association {
                        association_id,
                        instance_id: Some(instance.id.clone()),
                        network_interface_id: Some(target.network_interface_id.clone()),
                        private_ip: Some(target.private_ip),
                    }),
                    ..eip.clone()
                };
                return self
                    .settle(instance, &associated, Some(claimed), true)
                    .await
                    .map(Some);
            }
            // Taken, or no clear answer (the association may have happened): ask EC2.
            Err(e) if matches!(e, Error::Conflict { .. }) || e.is_retryable() => e,
            Err(e) => {
                self.unclaim(&claimed).await;
                return Err(e);
            }
        };
        let pool = self.addresses.list(&self.settings.pool).await?;
        let on_target: Vec<&ElasticIp> = pool.iter().filter(|a| holds(a, target)).collect();
        if let Some(ours) = on_target
            .iter()
            .find(|a| a.allocation_id == eip.allocation_id)
        {
            return self
                .settle(instance, ours, Some(claimed), true)
                .await
                .map(Some);
        }
        self.unclaim(&claimed).await;
        if let Some(other) = on_target.first() {
            // Another invocation for this instance bound a different address.
            let row = self.read_row(&other.allocation_id).await?;
            return self.settle(instance, other, row, false).await.map(Some);
        }
        if !matches!(refused, Error::Conflict { .. }) {
            return Err(refused);
        }
        tracing::info!(
            allocation_id = %eip.allocation_id,
            instance_id = %instance.id,
            "address taken by someone else before association; trying the next one"
        );
        Ok(None)
    }

    /// Claims the row in one conditional write: it must be absent, free, or already
    /// this instance's (a duplicate delivery continues its own claim). When that
    /// loses, the row is read: a lapsed claim is taken over by version; a live claim,
    /// a binding for another instance or another owner's row means `None`.
    async fn claim(
        &self,
        eip: &ElasticIp,
        id: &InstanceId,
        now: u64,
    ) -> Result<Option<AddressRow>> {
        let claim = AddressRow {
            state: RowState::Claimed,
            instance_id: Some(id.clone()),
            claim_expires_at: Some(now + self.settings.claim_ttl.as_secs().max(1)),
            ..AddressRow::new(eip.allocation_id.clone(), Some(eip.public_ip))
        };
        let claimable = WriteCondition::AbsentOrAny(vec![
            AttributeEquals::new(attr::STATE, RowState::Free.as_str()),
            AttributeEquals::new(attr::INSTANCE_ID, id.as_str()),
        ]);
        match self
            .ledger
            .put(claim.encode(&self.settings.owner, now), claimable)
            .await
        {
            Ok(stored) => return AddressRow::decode(&stored).map(Some),
            Err(Error::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
        for _ in 0..CAS_ATTEMPTS {
            let current = match self.read_row(&eip.allocation_id).await {
                Ok(row) => row,
                Err(Error::Conflict { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            if current.as_ref().is_some_and(|r| r.held_by_other(id, now)) {
                return Ok(None);
            }
            let next = AddressRow {
                version: current.and_then(|c| c.version),
                ..claim.clone()
            };
            match self.write(&next).await {
                Ok(row) => return Ok(Some(row)),
                Err(Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Withdraws a claim we made (best effort: an unwithdrawn claim lapses anyway).
    async fn unclaim(&self, claimed: &AddressRow) {
        let free = AddressRow {
            version: claimed.version,
            ..AddressRow::new(claimed.allocation_id.clone(), claimed.public_ip)
        };
        if let Err(error) = self.write(&free).await {
            tracing::warn!(allocation_id = %claimed.allocation_id, %error,
                "could not withdraw a claim; it lapses on its own");
        }
    }

    /// Makes the DNS record and the row match an address EC2 shows on the instance.
    async fn settle(
        &self,
        instance: &Instance,
        eip: &ElasticIp,
        row: Option<AddressRow>,
        newly: bool,
    ) -> Result<Outcome> {
        let association_id = eip
            .association
            .as_ref()
            .map(|a| a.association_id.clone())
            .unwrap_or_default();
        let name = self.dns_name(instance, eip.public_ip)?;
        let dns_skipped = self.upsert_dns(&name, eip.public_ip, newly).await?;
        let dns_name = dns_skipped.is_none().then_some(name);
        let bound = AddressRow {
            state: RowState::Bound,
            instance_id: Some(instance.id.clone()),
            association_id: Some(association_id.clone()),
            dns_name: dns_name.clone(),
            claim_expires_at: None,
            ..AddressRow::new(eip.allocation_id.clone(), Some(eip.public_ip))
        };
        // After a lost write, a row another invocation bound to this instance stands,
        // unless it names another association: then two invocations associated in
        // turn, and EC2 says which association is current.
        let mut bound = bound;
        let mut current = row;
        for _ in 0..CAS_ATTEMPTS {
            let yielded = self
                .store(&bound, current.take(), |c| {
                    !(c.state == RowState::Bound && c.instance_id.as_ref() == Some(&instance.id))
                })
                .await?;
            let Some(found) = yielded else { break };
            if found.association_id == bound.association_id {
                break;
            }
            let pool = self.addresses.list(&self.settings.pool).await?;
            let Some(now) = pool
                .iter()
                .find(|a| a.allocation_id == eip.allocation_id && a.is_on(&instance.id))
                .and_then(|a| a.association.as_ref())
            else {
                break;
            };
            bound.association_id = Some(now.association_id.clone());
            current = Some(found);
        }
        let association_id = bound.association_id.clone().unwrap_or_default();
        Ok(Outcome::Bound {
            binding: Binding {
                allocation_id: eip.allocation_id.clone(),
                public_ip: eip.public_ip,
                association_id,
                dns_name,
                dns_skipped,
            },
            newly,
        })
    }

    pub(super) async fn release(&self, id: &InstanceId, state: InstanceState) -> Result<Outcome> {
        let rows = self.rows().await?;
        let pool = self.addresses.list(&self.settings.pool).await?;
        let held = match plan_address(id, state, None, &pool, self.settings.policy)? {
            AddressDecision::Release(held) => held,
            _ => Vec::new(),
        };
        // Rows for this instance whose address EC2 does not show on another instance
        // (if it does, the row is stale and that instance's own events fix it).
        let mine: Vec<&AddressRow> = rows
            .values()
            .filter(|r| r.instance_id.as_ref() == Some(id) && r.state != RowState::Free)
            .filter(|r| {
                !pool.iter().any(|a| {
                    a.allocation_id == r.allocation_id
                        && a.association.as_ref().is_some_and(|x| {
                            x.instance_id.as_ref().is_some_and(|other| other != id)
                        })
                })
            })
            .collect();
        for eip in &held {
            if let Some(association) = &eip.association {
                self.addresses
                    .disassociate(&association.association_id)
                    .await?;
            }
        }
        let names: Vec<(String, RecordType)> = mine
            .iter()
            .filter_map(|r| Some((r.dns_name.clone()?, address_record_type(r.public_ip?))))
            .collect();
        let dns_names = self.names.release(&names).await?;
        for row in &mine {
            let free = AddressRow::new(row.allocation_id.clone(), row.public_ip);
            self.store(&free, Some((*row).clone()), |current| {
                current.instance_id.as_ref() == Some(id) && current.state != RowState::Free
            })
            .await?;
        }
        let mut addresses: BTreeSet<AllocationId> =
            held.iter().map(|a| a.allocation_id.clone()).collect();
        addresses.extend(mine.iter().map(|r| r.allocation_id.clone()));
        Ok(Outcome::Released {
            addresses: addresses.into_iter().collect(),
            dns_names,
        })
    }

    /// Writes `desired` over `current` with compare-and-swap. On conflict the row is
    /// read again and written again only while `still_ours` holds for what was found.
    /// A row that already says the same is not written again. Returns the row found
    /// when it yielded to it.
    async fn store(
        &self,
        desired: &AddressRow,
        mut current: Option<AddressRow>,
        still_ours: impl Fn(&AddressRow) -> bool,
    ) -> Result<Option<AddressRow>> {
        for attempt in 0..CAS_ATTEMPTS {
            if let Some(c) = &current {
                if c.same_binding(desired) {
                    return Ok(None);
                }
                if attempt > 0 && !still_ours(c) {
                    return Ok(current);
                }
            }
            let next = AddressRow {
                version: current.as_ref().and_then(|c| c.version),
                ..desired.clone()
            };
            match self.write(&next).await {
                Ok(_) => return Ok(None),
                Err(Error::Conflict { .. }) => {
                    current = self.read_row(&desired.allocation_id).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict(format!(
            "ledger row {} kept changing under us",
            desired.allocation_id
        )))
    }

    /// One conditional write: on the version read, or on absence for a new row.
    pub(super) async fn write(&self, row: &AddressRow) -> Result<AddressRow> {
        let condition = match row.version {
            Some(v) => crate::domain::WriteCondition::Version(v),
            None => crate::domain::WriteCondition::Absent,
        };
        let stored = self
            .ledger
            .put(row.encode(&self.settings.owner, self.now()), condition)
            .await?;
        AddressRow::decode(&stored)
    }

    async fn read_row(&self, allocation: &AllocationId) -> Result<Option<AddressRow>> {
        match self.ledger.get(&allocation.0).await? {
            Some(r) if self.owns(&r.owner) => AddressRow::decode(&r).map(Some),
            Some(_) => Err(Error::conflict(format!(
                "ledger row {allocation} belongs to another owner"
            ))),
            None => Ok(None),
        }
    }

    /// Every row of ours; other owners' rows and unreadable ones are left alone.
    pub(super) async fn rows(&self) -> Result<BTreeMap<AllocationId, AddressRow>> {
        let mut rows = BTreeMap::new();
        for record in self.ledger.scan(ALLOCATION_PREFIX).await? {
            if !self.owns(&record.owner) {
                continue;
            }
            match AddressRow::decode(&record) {
                Ok(row) => {
                    rows.insert(row.allocation_id.clone(), row);
                }
                Err(error) => {
                    tracing::warn!(%error, "unreadable ledger row; its address is left alone");
                }
            }
        }
        Ok(rows)
    }

    pub(super) fn dns_name(&self, instance: &Instance, ip: IpAddr) -> Result<String> {
        self.settings
            .name_template
            .render(instance, ip, &self.settings.dns_suffix)
    }

    /// Writes the record and its ownership marker unless another system owns the
    /// name; returns why it was skipped, if it was. `fresh`: the name is probably new
    /// (a first binding), so it is CREATEd with its marker first.
    async fn upsert_dns(&self, name: &str, ip: IpAddr, fresh: bool) -> Result<Option<String>> {
        let record = DnsRecord::new(
            name,
            address_record_type(ip),
            self.settings.dns_ttl,
            vec![ip.to_string()],
        );
        let expect = if fresh { Expect::New } else { Expect::Existing };
        match self.names.claim(&record, expect).await {
            Ok(_) => Ok(None),
            Err(refused @ Error::NotOwned { .. }) => {
                tracing::warn!(error = %refused, "DNS name left alone");
                Ok(Some(refused.to_string()))
            }
            Err(e) => Err(e),
        }
    }
}

/// The record type of an address: A or AAAA.
pub(super) fn address_record_type(ip: IpAddr) -> RecordType {
    if ip.is_ipv4() {
        RecordType::A
    } else {
        RecordType::Aaaa
    }
}

/// Whether `eip` is on the association target: its interface, or its instance when
/// EC2 did not say which interface.
fn holds(eip: &ElasticIp, target: &AssociationTarget) -> bool {
    eip.is_on_interface(&target.network_interface_id)
        || (eip.is_on(&target.instance_id)
            && eip
                .association
                .as_ref()
                .is_some_and(|a| a.network_interface_id.is_none()))
}
