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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// Write whatever is there.
    Always,
    /// Only if no row has this key (a first claim).
    Absent,
    /// Only if the row is still at this version (compare-and-swap after a read).
    Version(u64),
    /// Only if no row has this key, or the row belongs to the writer (same owner) and
    /// at least one of these attributes has the given value. The store decides in
    /// one write, so a row can be claimed without reading it first.
    AbsentOrAny(Vec<AttributeEquals>),
}

/// One clause of [`WriteCondition::AbsentOrAny`]: an attribute has this value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeEquals {
    /// The attribute's name.
    pub name: String,
    /// The value it must have.
    pub value: String,
}

impl AttributeEquals {
    /// `name` = `value`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        AttributeEquals {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl WriteCondition {
    /// Whether the condition holds for a write by `writer` when the stored row is
    /// `current` (a write without an owner, a delete, owns no row). Stores that
    /// evaluate conditions themselves (DynamoDB) must agree with this.
    pub fn holds(&self, current: Option<&LedgerRecord>, writer: Option<&Owner>) -> bool {
        match self {
            WriteCondition::Always => true,
            WriteCondition::Absent => current.is_none(),
            WriteCondition::Version(v) => current.is_some_and(|r| r.version == *v),
            WriteCondition::AbsentOrAny(any) => current.is_none_or(|r| {
                Some(&r.owner) == writer && any.iter().any(|c| r.get(&c.name) == Some(&c.value))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_or_any_holds_for_no_row_or_an_own_row_matching_a_clause() {
        let me = Owner::new("berth/me").unwrap();
        let other = Owner::new("berth/other").unwrap();
        let claimable = WriteCondition::AbsentOrAny(vec![
            AttributeEquals::new("state", "free"),
            AttributeEquals::new("instance_id", "i-1"),
        ]);
        let row = |owner: &Owner, state: &str, instance: &str| {
            LedgerRecord::new("eipalloc-1", owner.clone())
                .with("state", state)
                .with("instance_id", instance)
        };
        assert!(claimable.holds(None, Some(&me)));
        assert!(claimable.holds(Some(&row(&me, "free", "")), Some(&me)));
        assert!(claimable.holds(Some(&row(&me, "claimed", "i-1")), Some(&me)));
        assert!(!claimable.holds(Some(&row(&me, "claimed", "i-2")), Some(&me)));
        assert!(!claimable.holds(Some(&row(&me, "bound", "i-2")), Some(&me)));
        assert!(!claimable.holds(Some(&row(&other, "free", "")), Some(&me)));
        assert!(!claimable.holds(Some(&row(&me, "free", "")), None));
        assert!(!WriteCondition::AbsentOrAny(vec![]).holds(Some(&row(&me, "free", "")), Some(&me)));
        assert!(WriteCondition::Version(3).holds(
            Some(&LedgerRecord {
                version: 3,
                ..row(&me, "free", "")
            }),
            None
        ));
        assert!(!WriteCondition::Absent.holds(Some(&row(&me, "free", "")), Some(&me)));
        assert!(WriteCondition::Always.holds(Some(&row(&other, "bound", "i-9")), None));
    }
}
