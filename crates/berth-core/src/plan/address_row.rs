//! The ledger row of one pool address, as the scheduler reads it.

use std::fmt;
use std::net::IpAddr;

use crate::domain::{AllocationId, InstanceId, LedgerRecord, Owner};
use crate::{Error, Result};

/// Where a pool address stands in berth's ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    /// Nobody holds it.
    Free,
    /// A caller is binding it; the claim lapses at `claim_expires_at`.
    Claimed,
    /// Associated with an instance, DNS written.
    Bound,
}

impl RowState {
    /// The stored spelling: `free`, `claimed`, `bound`.
    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Free => "free",
            RowState::Claimed => "claimed",
            RowState::Bound => "bound",
        }
    }
}

impl fmt::Display for RowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RowState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "free" => RowState::Free,
            "claimed" => RowState::Claimed,
            "bound" => RowState::Bound,
            other => {
                return Err(Error::invalid(format!(
                    "unknown ledger row state {other:?}"
                )))
            }
        })
    }
}

/// Attribute names of an address row (the key attribute is the allocation id).
pub mod attr {
    /// The public address.
    pub const PUBLIC_IP: &str = "public_ip";
    /// The instance holding or claiming it.
    pub const INSTANCE_ID: &str = "instance_id";
    /// EC2's association id.
    pub const ASSOCIATION_ID: &str = "association_id";
    /// The DNS name berth wrote for it (fully qualified, trailing dot).
    pub const DNS_NAME: &str = "dns_name";
    /// `free`, `claimed` or `bound`.
    pub const STATE: &str = "state";
    /// When a claim lapses, Unix seconds.
    pub const CLAIM_EXPIRES_AT: &str = "claim_expires_at";
    /// Last write, Unix seconds.
    pub const UPDATED_AT: &str = "updated_at";
}

/// One pool address's row, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRow {
    /// The address (the row's key).
    pub allocation_id: AllocationId,
    /// The public IP.
    pub public_ip: Option<IpAddr>,
    /// State.
    pub state: RowState,
    /// The instance (claimed or bound).
    pub instance_id: Option<InstanceId>,
    /// The association (bound).
    pub association_id: Option<String>,
    /// The DNS name berth owns for it (bound).
    pub dns_name: Option<String>,
    /// When the claim lapses, Unix seconds (claimed).
    pub claim_expires_at: Option<u64>,
    /// The store's version, for compare-and-swap; `None` if the row does not exist yet.
    pub version: Option<u64>,
}

impl AddressRow {
    /// A free row that has never been stored.
    pub fn new(allocation_id: AllocationId, public_ip: Option<IpAddr>) -> Self {
        AddressRow {
            allocation_id,
            public_ip,
            state: RowState::Free,
            instance_id: None,
            association_id: None,
            dns_name: None,
            claim_expires_at: None,
            version: None,
        }
    }

    /// Decodes a ledger record; malformed values are an error naming the row.
    pub fn decode(record: &LedgerRecord) -> Result<Self> {
        let bad = |what: &str, value: &str| {
            Error::invalid(format!("ledger row {}: bad {what} {value:?}", record.key))
        };
        let opt = |name: &str| record.get(name).filter(|v| !v.is_empty());
        Ok(AddressRow {
            allocation_id: AllocationId(record.key.clone()),
            public_ip: opt(attr::PUBLIC_IP)
                .map(|v| v.parse().map_err(|_| bad(attr::PUBLIC_IP, v)))
                .transpose()?,
            state: opt(attr::STATE).unwrap_or("free").parse()?,
            instance_id: opt(attr::INSTANCE_ID)
                .map(|v| InstanceId::new(v).map_err(|_| bad(attr::INSTANCE_ID, v)))
                .transpose()?,
            association_id: opt(attr::ASSOCIATION_ID).map(str::to_owned),
            dns_name: opt(attr::DNS_NAME).map(str::to_owned),
            claim_expires_at: opt(attr::CLAIM_EXPIRES_AT)
                .map(|v| v.parse().map_err(|_| bad(attr::CLAIM_EXPIRES_AT, v)))
                .transpose()?,
            version: Some(record.version),
        })
    }

    /// Encodes the row for `owner`, stamped at `now` (Unix seconds). Absent values are
    /// left out rather than stored empty.
    pub fn encode(&self, owner: &Owner, now: u64) -> LedgerRecord {
        let mut r = LedgerRecord::new(self.allocation_id.0.clone(), owner.clone())
            .with(attr::STATE, self.state.as_str())
            .with(attr::UPDATED_AT, now.to_string());
        let mut set = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                r.attributes.insert(name.to_owned(), v);
            }
        };
        set(attr::PUBLIC_IP, self.public_ip.map(|ip| ip.to_string()));
        set(
            attr::INSTANCE_ID,
            self.instance_id.as_ref().map(|i| i.to_string()),
        );
        set(attr::ASSOCIATION_ID, self.association_id.clone());
        set(attr::DNS_NAME, self.dns_name.clone());
        set(
            attr::CLAIM_EXPIRES_AT,
            self.claim_expires_at.map(|t| t.to_string()),
        );
        r.version = self.version.unwrap_or(0);
        r
    }

    /// Whether a live (unexpired) claim or a binding holds the row for an instance
    /// other than `instance` at `now`. Such a row is not for us to take.
    pub fn held_by_other(&self, instance: &InstanceId, now: u64) -> bool {
        let other = self.instance_id.as_ref().is_some_and(|i| i != instance);
        match self.state {
            RowState::Free => false,
            RowState::Bound => other,
            RowState::Claimed => other && !self.claim_expired(now),
        }
    }

    /// Whether a claim has lapsed (a claim without an expiry has lapsed).
    pub fn claim_expired(&self, now: u64) -> bool {
        self.state == RowState::Claimed && self.claim_expires_at.is_none_or(|t| t <= now)
    }

    /// The same row with only the fields that matter to a reader compared (no
    /// version, no timestamps): whether a write would change anything.
    pub fn same_binding(&self, other: &AddressRow) -> bool {
        self.state == other.state
            && self.public_ip == other.public_ip
            && self.instance_id == other.instance_id
            && self.association_id == other.association_id
            && self.dns_name == other.dns_name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_ledger_records() {
        let owner = Owner::new("berth-lambda/t").unwrap();
        let row = AddressRow {
            state: RowState::Claimed,
            instance_id: Some(InstanceId::new("i-1").unwrap()),
            claim_expires_at: Some(100),
            ..AddressRow::new(
                AllocationId("eipalloc-1".into()),
                Some("203.0.113.1".parse().unwrap()),
            )
        };
        let mut record = row.encode(&owner, 40);
        assert_eq!(record.get(attr::STATE), Some("claimed"));
        assert_eq!(record.get(attr::UPDATED_AT), Some("40"));
        assert_eq!(record.get(attr::DNS_NAME), None);
        record.version = 3;
        let back = AddressRow::decode(&record).unwrap();
        assert_eq!(back.version, Some(3));
        assert!(back.same_binding(&row));
        assert_eq!(back.claim_expires_at, Some(100));
    }

    #[test]
    fn claims_expire_and_bindings_do_not() {
        let me = InstanceId::new("i-1").unwrap();
        let other = InstanceId::new("i-2").unwrap();
        let claimed = AddressRow {
            state: RowState::Claimed,
            instance_id: Some(other.clone()),
            claim_expires_at: Some(100),
            ..AddressRow::new(AllocationId("eipalloc-1".into()), None)
        };
        assert!(claimed.held_by_other(&me, 99));
        assert!(!claimed.held_by_other(&me, 100));
        assert!(!claimed.held_by_other(&other, 99), "its own claim");
        let bound = AddressRow {
            state: RowState::Bound,
            claim_expires_at: None,
            ..claimed
        };
        assert!(bound.held_by_other(&me, u64::MAX));
        assert!(!bound.held_by_other(&other, 0));
    }

    #[test]
    fn malformed_rows_are_reported() {
        let owner = Owner::new("o").unwrap();
        let record = LedgerRecord::new("eipalloc-1", owner).with(attr::STATE, "weird");
        assert!(AddressRow::decode(&record).is_err());
    }
}
