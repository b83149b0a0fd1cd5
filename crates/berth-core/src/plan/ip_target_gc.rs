//! Garbage collection of IP targets left by sidecars that died without deregistering
//! (SIGKILL, a lost node). berth-sidecar records each registration with its pod's
//! identity before registering; the cluster-mode daemon reads those records and the
//! live pods, and removes a recorded target once its pod (by UID) has been gone for a
//! grace period.
//!
//! Two pure steps: [`IpTargetGc::due`] keeps the clock (since when each recorded pod is
//! missing) and says which records are past their grace; [`plan_ip_target_gc`] decides,
//! from the groups' observed members, what to deregister and what only to forget. A
//! target without a record is never looked at; a target whose record's pod lives, or
//! that a live pod's record also claims, or whose IP a live pod holds, is never
//! deregistered.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::{Target, TargetGroupArn};
use crate::provider::OwnedTargets;

/// Who a sidecar registration belongs to: the pod, from the Downward API.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodIdentity {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name (a recreated pod may reuse it).
    pub name: String,
    /// The pod's UID: what tells one life of a name from the next.
    pub uid: String,
}

impl fmt::Display for PodIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} ({})", self.namespace, self.name, self.uid)
    }
}

/// One sidecar's registration record: its pod and the targets it registered, per group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarRecord {
    /// Where the record is kept (e.g. `namespace/config-map`), to act on it.
    pub key: String,
    /// The pod that registered the targets.
    pub pod: PodIdentity,
    /// The targets it registered.
    pub targets: OwnedTargets,
}

/// The pods that exist now (from a synced watch cache): only what GC needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LivePods {
    /// Every pod's UID.
    pub uids: BTreeSet<String>,
    /// Every pod IP in use.
    pub ips: BTreeSet<String>,
}

/// Remembers since when each recorded pod is missing (in memory: after a restart the
/// grace starts over, which only delays a removal).
#[derive(Debug, Clone)]
pub struct IpTargetGc {
    grace: Duration,
    missing_since: BTreeMap<String, Instant>,
}

/// What [`IpTargetGc::due`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcDue {
    /// Records whose pod has been gone for longer than the grace (indexes into the
    /// records given).
    pub due: Vec<usize>,
    /// Records whose pod is gone but still within its grace, with the time left.
    pub waiting: Vec<(usize, Duration)>,
}

impl IpTargetGc {
    /// A collector removing targets whose pod has been gone for `grace`.
    pub fn new(grace: Duration) -> Self {
        IpTargetGc {
            grace,
            missing_since: BTreeMap::new(),
        }
    }

    /// The grace period.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Which `records` are due at `now`, given the pods alive (`pods` must come from a
    /// complete listing). A pod seen missing for the first time starts its grace now; a
    /// pod seen alive again (or a record gone) is forgotten.
    pub fn due(&mut self, now: Instant, records: &[SidecarRecord], pods: &LivePods) -> GcDue {
        let mut out = GcDue::default();
        let mut missing = BTreeMap::new();
        for (i, record) in records.iter().enumerate() {
            let uid = &record.pod.uid;
            if pods.uids.contains(uid) {
                continue;
            }
            let since = *self.missing_since.get(uid).unwrap_or(&now);
            missing.insert(uid.clone(), since);
            let gone_for = now.saturating_duration_since(since);
            if gone_for >= self.grace {
                out.due.push(i);
            } else {
                out.waiting.push((i, self.grace - gone_for));
            }
        }
        self.missing_since = missing;
        out
    }

    /// When the earliest waiting record becomes due, if any.
    pub fn next_due(&self, due: &GcDue) -> Option<Duration> {
        due.waiting.iter().map(|(_, left)| *left).min()
    }
}

/// One thing GC does to a record's targets in one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcAction {
    /// Deregister (and drain) these targets, then drop them from the record.
    Deregister {
        /// The record's key.
        record: String,
        /// The group.
        group: TargetGroupArn,
        /// The targets.
        targets: Vec<Target>,
    },
    /// Drop these targets from the record only: they are no longer registered, or a
    /// live pod's sidecar registered the same target since.
    Forget {
        /// The record's key.
        record: String,
        /// The group.
        group: TargetGroupArn,
        /// The targets.
        targets: Vec<Target>,
    },
    /// Delete a record that holds no target any more.
    DeleteRecord {
        /// The record's key.
        record: String,
    },
}

impl GcAction {
    /// `deregister`, `forget` or `delete_record` (logs, metrics).
    pub fn verb(&self) -> &'static str {
        match self {
            GcAction::Deregister { .. } => "deregister",
            GcAction::Forget { .. } => "forget",
            GcAction::DeleteRecord { .. } => "delete_record",
        }
    }

    /// The record acted on.
    pub fn record(&self) -> &str {
        match self {
            GcAction::Deregister { record, .. }
            | GcAction::Forget { record, .. }
            | GcAction::DeleteRecord { record } => record,
        }
    }
}

/// Why a due target was left alone this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcHold {
    /// Its group's members could not be read: nothing is decided blind.
    Unobserved {
        /// The record's key.
        record: String,
        /// The group.
        group: TargetGroupArn,
    },
    /// Its IP belongs to a live pod (the address was reused): never deregistered
    /// while that pod lives; the record is kept and looked at again later.
    IpInUse {
        /// The record's key.
        record: String,
        /// The target.
        target: Target,
    },
}

/// What GC does in one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPlan {
    /// The actions, record by record.
    pub actions: Vec<GcAction>,
    /// What was left alone, and why.
    pub held: Vec<GcHold>,
}

impl GcPlan {
    /// How many actions of this verb.
    pub fn count(&self, verb: &str) -> usize {
        self.actions.iter().filter(|a| a.verb() == verb).count()
    }
}

/// Decides what to do with the `due` records (indexes into `records`, from
/// [`IpTargetGc::due`]). `registered` holds each observed group's current members
/// (draining ones excluded: they are already leaving); a group missing from it was not
/// observed. Only recorded targets are ever named, and only due records' ones.
pub fn plan_ip_target_gc(
    records: &[SidecarRecord],
    due: &[usize],
    pods: &LivePods,
    registered: &BTreeMap<TargetGroupArn, BTreeSet<Target>>,
) -> GcPlan {
    let due_set: BTreeSet<usize> = due.iter().copied().collect();
    // Targets claimed by records that are not due (their pod lives, or is within its
    // grace): those sidecars own them now.
    let mut claimed: BTreeSet<(&TargetGroupArn, &Target)> = BTreeSet::new();
    for (i, record) in records.iter().enumerate() {
        if !due_set.contains(&i) {
            for (group, targets) in &record.targets {
                claimed.extend(targets.iter().map(|t| (group, t)));
            }
        }
    }
    let mut plan = GcPlan::default();
    for &i in &due_set {
        let Some(record) = records.get(i) else {
            continue;
        };
        let key = &record.key;
        let mut kept_any = false;
        for (group, targets) in &record.targets {
            let Some(members) = registered.get(group) else {
                plan.held.push(GcHold::Unobserved {
                    record: key.clone(),
                    group: group.clone(),
                });
                kept_any = true;
                continue;
            };
            let mut deregister = Vec::new();
            let mut forget = Vec::new();
            for target in targets {
                if !members.contains(target) || claimed.contains(&(group, target)) {
                    forget.push(target.clone());
                } else if pods.ips.contains(target.id.as_ref()) {
                    plan.held.push(GcHold::IpInUse {
                        record: key.clone(),
                        target: target.clone(),
                    });
                    kept_any = true;
                } else {
                    deregister.push(target.clone());
                }
            }
            if !deregister.is_empty() {
                plan.actions.push(GcAction::Deregister {
                    record: key.clone(),
                    group: group.clone(),
                    targets: deregister,
                });
            }
            if !forget.is_empty() {
                plan.actions.push(GcAction::Forget {
                    record: key.clone(),
                    group: group.clone(),
                    targets: forget,
                });
            }
        }
        // An empty record is deleted here; one emptied by the actions above is deleted
        // by the store when its last target is released.
        if record.targets.values().all(BTreeSet::is_empty) && !kept_any {
            plan.actions.push(GcAction::DeleteRecord {
                record: key.clone(),
            });
        }
    }
    plan
}

#[cfg(test)]
#[path = "ip_target_gc_tests.rs"]
mod tests;
