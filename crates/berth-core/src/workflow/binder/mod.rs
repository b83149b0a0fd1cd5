//! [`AddressBinder`]: an Elastic IP, a DNS name and a ledger row for an instance.
//!
//! Its settings, outcomes and providers are here; binding a running instance is in
//! `bind.rs`; releasing, and the ledger rows and DNS records both write, in
//! `release.rs`.

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

mod bind;
mod release;

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
}

/// The record type of an address: A or AAAA.
pub(super) fn address_record_type(ip: IpAddr) -> RecordType {
    if ip.is_ipv4() {
        RecordType::A
    } else {
        RecordType::Aaaa
    }
}
