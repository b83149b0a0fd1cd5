use std::collections::BTreeMap;

use super::Owner;

/// One row of the ledger: who owns a binding, and its details. The ledger is a store
/// with conditional writes, so it doubles as a lock or lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRecord {
    /// The row's key, e.g. an allocation id or `targets/<arn>`.
    pub key: String,
    /// The installation that wrote it.
    pub owner: Owner,
    /// Free-form attributes (state, instance id, DNS name, expiry, ...).
    pub attributes: BTreeMap<String, String>,
    /// Bumped by the store on every write; the basis of optimistic concurrency.
    pub version: u64,
}

impl LedgerRecord {
    /// A new record at version 0 (the store sets the real version on write).
    pub fn new(key: impl Into<String>, owner: Owner) -> Self {
        LedgerRecord {
            key: key.into(),
            owner,
            attributes: BTreeMap::new(),
            version: 0,
        }
    }

    /// Sets an attribute, builder style.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.attributes.insert(name.to_owned(), value.into());
        self
    }

    /// An attribute's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
}

/// The condition a ledger write must meet, or it fails with [`crate::Error::Conflict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteCondition {
    /// Write whatever is there.
    Always,
    /// Only if no row has this key (a first claim).
    Absent,
    /// Only if the row is still at this version (compare-and-swap after a read).
    Version(u64),
}
