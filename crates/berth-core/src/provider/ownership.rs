//! Which targets berth registered, remembered across restarts and leader changes so
//! that berth deregisters only what it put there.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

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
    /// Whether this store records anything ([`OwnedByConstruction`] does not, and the
    /// engine then spends no call on it).
    fn records(&self) -> bool {
        true
    }
}

/// The ownership of a caller that owns its targets by construction (the sidecar: its
/// one target is its pod's IP): records nothing, owns nothing it did not just desire.
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnedByConstruction;

#[async_trait]
impl TargetOwnership for OwnedByConstruction {
    async fn owned(&self) -> Result<OwnedTargets> {
        Ok(OwnedTargets::new())
    }
    async fn claim(&self, _group: &TargetGroupArn, _targets: &[Target]) -> Result<()> {
        Ok(())
    }
    async fn release(&self, _group: &TargetGroupArn, _targets: &[Target]) -> Result<()> {
        Ok(())
    }
    fn records(&self) -> bool {
        false
    }
}

/// What one compare-and-swap attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap<T> {
    /// The write went through (or nothing needed writing).
    Done(T),
    /// Another writer got there first: read again and retry.
    Lost,
}

/// The one retry policy of every ownership store's read-modify-write (the ledger
/// rows here, berth-kube's ConfigMaps): up to `max_attempts` attempts, the second
/// and later after a jittered, growing pause so contending writers spread out
/// instead of colliding in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CasPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The ceiling of the pause before the second attempt; it doubles per attempt.
    pub base_delay: Duration,
    /// The largest ceiling of one pause.
    pub max_delay: Duration,
}

impl Default for CasPolicy {
    /// 16 attempts, pauses up to 5 ms, 10 ms, 20 ms ... at most 200 ms (about 2.5 s
    /// in the worst case): enough for hundreds of writers on one row or object.
    fn default() -> Self {
        CasPolicy {
            max_attempts: 16,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(200),
        }
    }
}

impl CasPolicy {
    /// The pause before attempt `attempt + 1` (`attempt` ≥ 1): uniform in
    /// `[0, min(max_delay, base_delay * 2^(attempt - 1))]` ("full jitter").
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }

    /// Runs `attempt` (read, edit, conditional write) until it is [`Swap::Done`],
    /// fails, or loses `max_attempts` times: then `Ok(None)`, and the caller reports
    /// its own conflict naming what kept changing.
    pub async fn run<T, E, F, Fut>(&self, mut attempt: F) -> Result<Option<T>, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Swap<T>, E>>,
    {
        for n in 0..self.max_attempts.max(1) {
            if n > 0 {
                tokio::time::sleep(self.delay(n)).await;
            }
            if let Swap::Done(value) = attempt().await? {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }
}

/// Target ownership kept in a [`Ledger`]: one row per (owner, group), holding the list
/// of targets, updated with compare-and-swap so two writers never lose each other's
/// claims.
pub struct LedgerOwnership<L> {
    ledger: L,
    owner: Owner,
    cas: CasPolicy,
}

impl<L: Ledger> LedgerOwnership<L> {
    /// Ownership rows of `owner` in `ledger`.
    pub fn new(ledger: L, owner: Owner) -> Self {
        LedgerOwnership {
            ledger,
            owner,
            cas: CasPolicy::default(),
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
        let done = self
            .cas
            .run(|| async {
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
                    return Ok(Swap::Done(()));
                }
                let result = if targets.is_empty() {
                    match current {
                        Some(_) => self.ledger.delete(&key, condition).await,
                        None => return Ok(Swap::Done(())),
                    }
                } else {
                    let row = LedgerRecord::new(&key, self.owner.clone())
                        .with("group", group.as_str())
                        .with("targets", encode_targets(&targets));
                    self.ledger.put(row, condition).await.map(|_| ())
                };
                match result {
                    Ok(()) => Ok(Swap::Done(())),
                    Err(Error::Conflict { .. }) => Ok(Swap::Lost),
                    Err(e) => Err(e),
                }
            })
            .await?;
        done.ok_or_else(|| {
            Error::conflict(format!(
                "ownership row {key} kept changing under us ({} attempts)",
                self.cas.max_attempts
            ))
        })
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
    fn cas_pauses_are_jittered_grow_and_are_capped() {
        let policy = CasPolicy::default();
        for attempt in 1..40 {
            let ceiling =
                Duration::from_millis(5 * (1u64 << (attempt - 1).min(16))).min(policy.max_delay);
            assert!(policy.delay(attempt) <= ceiling, "attempt {attempt}");
        }
        let distinct: BTreeSet<Duration> = (0..50).map(|_| policy.delay(6)).collect();
        assert!(distinct.len() > 10, "jittered: {distinct:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn cas_retries_lost_swaps_and_gives_up_after_its_attempts() {
        let policy = CasPolicy::default();
        let mut tries = 0;
        let won = policy
            .run(|| {
                tries += 1;
                let lost = tries < 5;
                async move { Ok::<_, Error>(if lost { Swap::Lost } else { Swap::Done(tries) }) }
            })
            .await;
        assert_eq!(won, Ok(Some(5)));
        let mut tries = 0;
        let lost = policy
            .run(|| {
                tries += 1;
                async { Ok::<Swap<()>, Error>(Swap::Lost) }
            })
            .await;
        assert_eq!((lost, tries), (Ok(None), 16));
        let failed = policy
            .run(|| async { Err::<Swap<()>, _>(Error::invalid("bad row")) })
            .await;
        assert_eq!(failed, Err(Error::invalid("bad row")));
    }

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
