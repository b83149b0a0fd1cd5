//! Which targets berth registered, remembered across restarts and leader changes so
//! that berth deregisters only what it put there.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;

use super::Ledger;
use crate::domain::{LedgerRecord, Owner, Target, TargetGroupArn, WriteCondition};
use crate::{Error, Result};

/// Targets owned by this installation, per group.
pub type OwnedTargets = BTreeMap<TargetGroupArn, BTreeSet<Target>>;

/// The store of target ownership.
#[cfg_attr(feature = "test-util", mockall::automock)]
#[async_trait]
pub trait TargetOwnership: Send + Sync {
    /// Everything this installation owns.
    async fn owned(&self) -> Result<OwnedTargets>;
    /// Records that berth is about to register these targets (written before the
    /// registration, so a crash in between leaves a claim the next plan resolves).
    async fn claim(&self, group: &TargetGroupArn, targets: &[Target]) -> Result<()>;
    /// Forgets targets berth deregistered (or that are gone).
    async fn release(&self, group: &TargetGroupArn, targets: &[Target]) -> Result<()>;
}

/// Target ownership kept in a [`Ledger`]: one row per (owner, group), holding the list
/// of targets, updated with compare-and-swap so two writers never lose each other's
/// claims.
pub struct LedgerOwnership<L> {
    ledger: L,
    owner: Owner,
    max_attempts: u32,
}

impl<L: Ledger> LedgerOwnership<L> {
    /// Ownership rows of `owner` in `ledger`.
    pub fn new(ledger: L, owner: Owner) -> Self {
        LedgerOwnership {
            ledger,
            owner,
            max_attempts: 8,
        }
    }

    fn prefix(&self) -> String {
        format!("owner/{}/targets/", self.owner)
    }

    fn key(&self, group: &TargetGroupArn) -> String {
        format!("{}{}", self.prefix(), group)
    }

    /// Read-modify-write of one group's row, retried when another writer got there first.
    async fn update(
        &self,
        group: &TargetGroupArn,
        edit: impl Fn(&mut BTreeSet<Target>),
    ) -> Result<()> {
        let key = self.key(group);
        for _ in 0..self.max_attempts {
            let current = self.ledger.get(&key).await?;
            let (mut targets, condition) = match &current {
                Some(row) => (
                    decode_targets(row.get("targets").unwrap_or_default())?,
                    WriteCondition::Version(row.version),
                ),
                None => (BTreeSet::new(), WriteCondition::Absent),
            };
            let before = targets.clone();
            edit(&mut targets);
            if targets == before && current.is_some() {
                return Ok(());
            }
            let result = if targets.is_empty() {
                match current {
                    Some(_) => self.ledger.delete(&key, condition).await,
                    None => return Ok(()),
                }
            } else {
                let row = LedgerRecord::new(&key, self.owner.clone())
                    .with("group", group.as_str())
                    .with("targets", encode_targets(&targets));
                self.ledger.put(row, condition).await.map(|_| ())
            };
            match result {
                Err(Error::Conflict { .. }) => continue,
                other => return other,
            }
        }
        Err(Error::conflict(format!(
            "ownership row {key} kept changing under us"
        )))
    }
}

#[async_trait]
impl<L: Ledger> TargetOwnership for LedgerOwnership<L> {
    async fn owned(&self) -> Result<OwnedTargets> {
        let mut owned = OwnedTargets::new();
        for row in self.ledger.scan(&self.prefix()).await? {
            // Rows written by another owner never land under our prefix, but check anyway:
            // ownership is the one thing berth must not get wrong.
            if row.owner != self.owner {
                continue;
            }
            let group = TargetGroupArn::new(row.get("group").unwrap_or_default())?;
            owned.insert(
                group,
                decode_targets(row.get("targets").unwrap_or_default())?,
            );
        }
        Ok(owned)
    }

    async fn claim(&self, group: &TargetGroupArn, targets: &[Target]) -> Result<()> {
        self.update(group, |set| set.extend(targets.iter().cloned()))
            .await
    }

    async fn release(&self, group: &TargetGroupArn, targets: &[Target]) -> Result<()> {
        self.update(group, |set| {
            for t in targets {
                set.remove(t);
            }
        })
        .await
    }
}

/// The text form of a target set in an ownership record: `id:port` separated by
/// spaces. Shared by every ownership store so their records read the same.
pub fn encode_targets(targets: &BTreeSet<Target>) -> String {
    targets
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The inverse of [`encode_targets`].
pub fn decode_targets(text: &str) -> Result<BTreeSet<Target>> {
    text.split_whitespace()
        .map(|item| {
            // IPv6 targets contain ':' too: the port is after the last one.
            let (id, port) = item
                .rsplit_once(':')
                .ok_or_else(|| Error::invalid(format!("ownership entry {item:?} has no port")))?;
            let port = port
                .parse()
                .map_err(|_| Error::invalid(format!("ownership entry {item:?} has a bad port")))?;
            Ok(Target::new(id, port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_ipv6() {
        let set: BTreeSet<Target> = [
            Target::new("i-1", 80),
            Target::new("fd00::1", 8080),
            Target::new("10.0.0.1", 443),
        ]
        .into();
        assert_eq!(decode_targets(&encode_targets(&set)).unwrap(), set);
        assert!(decode_targets("i-1").is_err());
    }
}
