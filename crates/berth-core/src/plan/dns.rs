//! DNS records, changed only where berth owns the name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{chunked, list, Change, Plan};
use crate::domain::{DnsRecord, Owner, RecordType};
use crate::provider::DnsChange;

/// One change to a hosted zone's record sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordChange {
    /// Create or replace record sets (each with its ownership marker).
    Upsert {
        /// The hosted zone id.
        zone_id: String,
        /// The record sets.
        records: Vec<DnsRecord>,
    },
    /// Delete record sets berth owns.
    Delete {
        /// The hosted zone id.
        zone_id: String,
        /// The record sets, as they are now.
        records: Vec<DnsRecord>,
    },
}

impl RecordChange {
    /// The hosted zone id.
    pub fn zone_id(&self) -> &str {
        match self {
            RecordChange::Upsert { zone_id, .. } | RecordChange::Delete { zone_id, .. } => zone_id,
        }
    }

    /// The record sets.
    pub fn records(&self) -> &[DnsRecord] {
        match self {
            RecordChange::Upsert { records, .. } | RecordChange::Delete { records, .. } => records,
        }
    }

    /// The change as provider changes, for one change batch.
    pub fn dns_changes(&self) -> Vec<DnsChange> {
        match self {
            RecordChange::Upsert { records, .. } => {
                records.iter().cloned().map(DnsChange::Upsert).collect()
            }
            RecordChange::Delete { records, .. } => {
                records.iter().cloned().map(DnsChange::Delete).collect()
            }
        }
    }
}

impl Change for RecordChange {
    fn len(&self) -> usize {
        self.records().len()
    }

    fn verb(&self) -> &'static str {
        match self {
            RecordChange::Upsert { .. } => "upsert",
            RecordChange::Delete { .. } => "delete",
        }
    }

    fn split(&self, max_items: usize) -> Vec<Self> {
        let zone_id = self.zone_id().to_owned();
        match self {
            RecordChange::Upsert { records, .. } => {
                chunked(records, max_items, |records| RecordChange::Upsert {
                    zone_id: zone_id.clone(),
                    records,
                })
            }
            RecordChange::Delete { records, .. } => {
                chunked(records, max_items, |records| RecordChange::Delete {
                    zone_id: zone_id.clone(),
                    records,
                })
            }
        }
    }
}

impl fmt::Display for RecordChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in zone {}: {}",
            self.verb(),
            self.zone_id(),
            list(self.records())
        )
    }
}

impl Plan<RecordChange> {
    /// Every change of the plan as provider changes, for one atomic change batch.
    pub fn dns_changes(&self) -> Vec<DnsChange> {
        self.changes
            .iter()
            .flat_map(RecordChange::dns_changes)
            .collect()
    }
}

/// The records berth wants in one zone, and the names it wants gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsIntent {
    /// The hosted zone id.
    pub zone_id: String,
    /// Whose records these are.
    pub owner: Owner,
    /// Earlier owners of this installation whose names count as berth's (a migration
    /// from an older owner id): their markers are rewritten to `owner` on the next
    /// write, and deleted like ours.
    pub adopt: Vec<Owner>,
    /// Record sets that should exist.
    pub upsert: Vec<DnsRecord>,
    /// Record sets (name and type) that should be gone, with the name's ownership
    /// marker. Only the listed types are deleted: another system's records of other
    /// types at the same name stay.
    pub delete: Vec<(String, RecordType)>,
}

impl DnsIntent {
    /// Every name planning must observe: the names and their ownership markers.
    pub fn names(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = BTreeSet::new();
        for name in self.upsert.iter().map(|r| r.name.clone()).chain(
            self.delete
                .iter()
                .map(|(n, _)| DnsRecord::new(n, RecordType::A, 0, vec![]).name),
        ) {
            names.insert(DnsRecord::ownership_name(&name));
            names.insert(name);
        }
        names.into_iter().collect()
    }

    /// Whether a marker naming `owner` makes a name berth's.
    pub fn owns(&self, owner: &str) -> bool {
        owner == self.owner.as_str() || self.adopt.iter().any(|o| o.as_str() == owner)
    }
}

/// Plans record changes from the intent and the record sets observed at its names.
///
/// A name is berth's when its ownership marker (`_berth.<name>` TXT) names this owner
/// (or one it adopts, see [`DnsIntent::adopt`]).
/// - a wanted record is UPSERTed (never CREATEd: a retry must not fail) with its
///   marker, when the name is free or already ours; a name someone else holds is
///   skipped, never overwritten;
/// - an unwanted record set is deleted only if its name is ours, together with the
///   marker; records of other types at that name are left alone;
/// - a record that already matches is left alone.
pub fn plan_dns(intent: &DnsIntent, observed: &[DnsRecord]) -> Plan<RecordChange> {
    let mut plan = Plan::default();
    let by_key: BTreeMap<(&str, RecordType), &DnsRecord> = observed
        .iter()
        .map(|r| ((r.name.as_str(), r.record_type), r))
        .collect();
    let owner_of = |name: &str| -> Option<&str> {
        by_key
            .get(&(DnsRecord::ownership_name(name).as_str(), RecordType::Txt))
            .and_then(|r| r.owner())
    };
    let ttl_of = |r: &DnsRecord| r.ttl;

    let mut upserts = Vec::new();
    for want in &intent.upsert {
        let ours = match owner_of(&want.name) {
            Some(o) => intent.owns(o),
            None => !observed.iter().any(|r| r.name == want.name),
        };
        if !ours {
            plan.skip(
                &want.name,
                "the name exists and berth does not own it; left unchanged",
            );
            continue;
        }
        let marker = DnsRecord::ownership(&want.name, &intent.owner, ttl_of(want));
        if by_key.get(&(want.name.as_str(), want.record_type)) != Some(&want) {
            upserts.push(want.clone());
        }
        if by_key
            .get(&(marker.name.as_str(), RecordType::Txt))
            .map(|r| r.values == marker.values)
            != Some(true)
        {
            upserts.push(marker);
        }
    }

    let mut deletes = Vec::new();
    for (name, record_type) in &intent.delete {
        let name = DnsRecord::new(name, *record_type, 0, vec![]).name;
        match owner_of(&name) {
            Some(o) if intent.owns(o) => {
                deletes.extend(
                    observed
                        .iter()
                        .filter(|r| r.name == name && r.record_type == *record_type)
                        .cloned(),
                );
                if let Some(marker) =
                    by_key.get(&(DnsRecord::ownership_name(&name).as_str(), RecordType::Txt))
                {
                    if !deletes.contains(*marker) {
                        deletes.push((*marker).clone());
                    }
                }
            }
            Some(_) => plan.skip(&name, "owned by another installation; not deleted"),
            None if observed.iter().any(|r| r.name == name) => {
                plan.skip(&name, "not created by berth; not deleted")
            }
            None => {}
        }
    }
    plan.push(RecordChange::Upsert {
        zone_id: intent.zone_id.clone(),
        records: upserts,
    });
    plan.push(RecordChange::Delete {
        zone_id: intent.zone_id.clone(),
        records: deletes,
    });
    plan
}
