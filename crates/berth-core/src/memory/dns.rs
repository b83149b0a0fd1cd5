use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::Faults;
use crate::domain::{DnsRecord, HostedZone, RecordType};
use crate::provider::{DnsChange, DnsZones};
use crate::{Error, Result};

type Key = (String, String, RecordType);

/// Route53-like hosted zones in memory: change batches are atomic, a DELETE must match
/// the record exactly, and a change is `INSYNC` after a number of polls.
#[derive(Default)]
pub struct MemoryDns {
    zones: Mutex<HashMap<String, HostedZone>>,
    records: Mutex<BTreeMap<Key, DnsRecord>>,
    polls: Mutex<HashMap<String, u32>>,
    /// Polls of `GetChange` before a change reports `INSYNC`.
    pub sync_after_polls: u32,
    /// Fault injection and call counts (`ListResourceRecordSets`,
    /// `ChangeResourceRecordSets`, `GetChange`).
    pub faults: Faults,
}

impl MemoryDns {
    /// Changes report `INSYNC` only after `polls` polls.
    pub fn syncing_after(mut self, polls: u32) -> Self {
        self.sync_after_polls = polls;
        self
    }

    /// Adds a zone.
    pub fn add_zone(&self, id: &str, name: &str) -> HostedZone {
        let zone = HostedZone {
            id: id.to_owned(),
            name: DnsRecord::new(name, RecordType::A, 0, vec![]).name,
        };
        self.zones
            .lock()
            .expect("poisoned")
            .insert(id.to_owned(), zone.clone());
        zone
    }

    /// Every record of a zone, for assertions.
    pub fn all(&self, zone_id: &str) -> Vec<DnsRecord> {
        self.records
            .lock()
            .expect("poisoned")
            .iter()
            .filter(|(k, _)| k.0 == zone_id)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Puts a record directly (as another system would).
    pub fn put(&self, zone_id: &str, record: DnsRecord) {
        let key = (zone_id.to_owned(), record.name.clone(), record.record_type);
        self.records.lock().expect("poisoned").insert(key, record);
    }

    fn known_zone(&self, zone_id: &str) -> Result<()> {
        if self.zones.lock().expect("poisoned").contains_key(zone_id) {
            Ok(())
        } else {
            Err(Error::not_found(format!("hosted zone {zone_id}")))
        }
    }
}

#[async_trait]
impl DnsZones for MemoryDns {
    async fn records(&self, zone_id: &str, names: &[String]) -> Result<Vec<DnsRecord>> {
        self.faults.enter("ListResourceRecordSets")?;
        self.known_zone(zone_id)?;
        let records = self.records.lock().expect("poisoned");
        Ok(records
            .iter()
            .filter(|(k, _)| {
                k.0 == zone_id
                    && names
                        .iter()
                        .any(|n| DnsRecord::new(n, RecordType::A, 0, vec![]).name == k.1)
            })
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn change(&self, zone_id: &str, changes: &[DnsChange]) -> Result<String> {
        self.faults.enter("ChangeResourceRecordSets")?;
        self.known_zone(zone_id)?;
        let mut records = self.records.lock().expect("poisoned");
        let mut next = records.clone();
        for change in changes {
            match change {
                DnsChange::Create(r) => {
                    let key = (zone_id.to_owned(), r.name.clone(), r.record_type);
                    if next.contains_key(&key) {
                        return Err(Error::conflict(format!(
                            "InvalidChangeBatch: tried to create {r} but it already exists"
                        )));
                    }
                    next.insert(key, r.clone());
                }
                DnsChange::Upsert(r) => {
                    next.insert(
                        (zone_id.to_owned(), r.name.clone(), r.record_type),
                        r.clone(),
                    );
                }
                DnsChange::Delete(r) => {
                    let key = (zone_id.to_owned(), r.name.clone(), r.record_type);
                    if next.get(&key) != Some(r) {
                        return Err(Error::invalid(format!(
                            "InvalidChangeBatch: {r} does not exist as given"
                        )));
                    }
                    next.remove(&key);
                }
            }
        }
        *records = next;
        let id = format!("C{:012}", self.polls.lock().expect("poisoned").len() + 1);
        self.polls.lock().expect("poisoned").insert(id.clone(), 0);
        Ok(id)
    }

    async fn is_in_sync(&self, change_id: &str) -> Result<bool> {
        self.faults.enter("GetChange")?;
        let mut polls = self.polls.lock().expect("poisoned");
        let n = polls
            .get_mut(change_id)
            .ok_or_else(|| Error::not_found(format!("change {change_id}")))?;
        *n += 1;
        Ok(*n > self.sync_after_polls)
    }
}
