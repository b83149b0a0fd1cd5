//! [`DnsNames`]: claiming, updating and releasing DNS names under berth's ownership
//! marker, the one way every mode writes DNS.
//!
//! A name is berth's when its marker, a TXT record at `_berth.<name>` holding
//! `"berth-owner=<owner>"`, names this installation's owner (or an owner it adopts,
//! see [`DnsNames::adopting`]). berth writes a name only if it is free or its own,
//! and deletes only the record types it wrote at names it owns.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::called::Called;
use crate::domain::{DnsRecord, Owner, RecordType};
use crate::engine::Caller;
use crate::plan::{plan_dns, DnsIntent, Plan, RecordChange};
use crate::provider::{DnsChange, DnsZones};
use crate::{Error, Result};

/// What the caller knows about a name before writing it, which decides the first call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The name is probably new (a first binding): the record and its marker are
    /// CREATEd in one change batch, which Route53 refuses if either exists; only then
    /// is the name read. One call when the name is new.
    New,
    /// The name probably exists (a repeat, an update): read the name and its marker
    /// once, then UPSERT what differs. One or two calls.
    Existing,
}

/// What [`DnsNames::claim`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameWrite {
    /// The record and its marker were created (the name was free).
    Created,
    /// The name was berth's and its record or marker was UPSERTed.
    Updated,
    /// The name was berth's and already said the same: nothing was written.
    Unchanged,
}

/// DNS names in one hosted zone, written under one owner's marker.
///
/// - [`DnsNames::claim`] points a name at a record: at most one read of the name and
///   its marker, then one atomic change batch; a name someone else holds fails with
///   [`Error::NotOwned`] and is never overwritten;
/// - [`DnsNames::release`] deletes the record types berth wrote at names it owns,
///   with their markers; other systems' records stay.
#[derive(Clone)]
pub struct DnsNames {
    dns: Arc<dyn DnsZones>,
    zone_id: String,
    owner: Owner,
    adopt: Vec<Owner>,
}

impl std::fmt::Debug for DnsNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsNames")
            .field("zone_id", &self.zone_id)
            .field("owner", &self.owner)
            .field("adopt", &self.adopt)
            .finish_non_exhaustive()
    }
}

impl DnsNames {
    /// Names in zone `zone_id` (without `/hostedzone/`) owned by `owner`.
    pub fn new(dns: Arc<dyn DnsZones>, zone_id: impl Into<String>, owner: Owner) -> Self {
        DnsNames {
            dns,
            zone_id: zone_id.into(),
            owner,
            adopt: Vec::new(),
        }
    }

    /// Also counts names marked by these earlier owners of the same installation as
    /// berth's (a migration from an older owner id): their markers are rewritten to
    /// the current owner on the next write, so nothing is orphaned.
    pub fn adopting(mut self, previous: impl IntoIterator<Item = Owner>) -> Self {
        self.adopt = previous.into_iter().filter(|o| *o != self.owner).collect();
        self
    }

    /// Sends every DNS call through `caller` (its rate limit, retries and tally).
    pub fn through(mut self, caller: Caller) -> Self {
        self.dns = Arc::new(Called::new(self.dns, caller));
        self
    }

    /// The owner the markers name.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// The hosted zone id.
    pub fn zone_id(&self) -> &str {
        &self.zone_id
    }

    /// Points `record`'s name at its values, with berth's marker beside it.
    ///
    /// Fails with [`Error::NotOwned`] if the name exists and berth does not own it:
    /// records there without a marker, or another owner's marker. At most one read
    /// of the name and its marker is made.
    pub async fn claim(&self, record: &DnsRecord, expect: Expect) -> Result<NameWrite> {
        if expect == Expect::New {
            let marker = DnsRecord::ownership(&record.name, &self.owner, record.ttl);
            let create = [DnsChange::Create(marker), DnsChange::Create(record.clone())];
            match self.dns.change(&self.zone_id, &create).await {
                Ok(_) => return Ok(NameWrite::Created),
                Err(Error::Conflict { what }) => {
                    tracing::debug!(name = %record.name, %what,
                        "the name exists; reading it before writing");
                }
                Err(e) => return Err(e),
            }
        }
        let changes = self.plan_claim(record).await?.dns_changes();
        if changes.is_empty() {
            return Ok(NameWrite::Unchanged);
        }
        self.dns.change(&self.zone_id, &changes).await?;
        Ok(NameWrite::Updated)
    }

    /// What [`DnsNames::claim`] with [`Expect::Existing`] would write, without
    /// writing (a dry run): one read of the name and its marker, then the plan, empty
    /// when the name already says the same. Fails with [`Error::NotOwned`] as `claim`.
    pub async fn plan_claim(&self, record: &DnsRecord) -> Result<Plan<RecordChange>> {
        let intent = self.intent(vec![record.clone()], Vec::new());
        let observed = self.dns.records(&self.zone_id, &intent.names()).await?;
        let plan = plan_dns(&intent, &observed);
        if !plan.skipped.is_empty() {
            let held_by = observed
                .iter()
                .find(|r| r.name == DnsRecord::ownership_name(&record.name))
                .and_then(DnsRecord::owner)
                .map_or_else(
                    || "no berth ownership marker".to_owned(),
                    |o| format!("owner {o}"),
                );
            return Err(Error::NotOwned {
                what: format!("the DNS name {}", record.name),
                held_by,
            });
        }
        Ok(plan)
    }

    /// Deletes the record sets of these types at these names where berth owns the
    /// name, with their markers, in one change batch after one read. Names berth does
    /// not own are left alone (and logged); names already gone are success. Returns
    /// the names whose records were deleted.
    pub async fn release(&self, names: &[(String, RecordType)]) -> Result<Vec<String>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let intent = self.intent(Vec::new(), names.to_vec());
        let observed = self.dns.records(&self.zone_id, &intent.names()).await?;
        let plan = plan_dns(&intent, &observed);
        for skip in &plan.skipped {
            tracing::warn!(%skip, "DNS name left alone");
        }
        let changes = plan.dns_changes();
        if !changes.is_empty() {
            self.dns.change(&self.zone_id, &changes).await?;
        }
        let deleted: BTreeSet<String> = changes
            .into_iter()
            .filter_map(|c| match c {
                DnsChange::Delete(r) if r.owner().is_none() => Some(r.name),
                _ => None,
            })
            .collect();
        Ok(deleted.into_iter().collect())
    }

    fn intent(&self, upsert: Vec<DnsRecord>, delete: Vec<(String, RecordType)>) -> DnsIntent {
        DnsIntent {
            zone_id: self.zone_id.clone(),
            owner: self.owner.clone(),
            adopt: self.adopt.clone(),
            upsert,
            delete,
        }
    }
}
