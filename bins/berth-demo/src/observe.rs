//! What the demo sees of the target groups and of berth's ownership record, and the
//! history of every target seen, so the final table also lists the ones that left.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::Context as _;
use berth_core::domain::{Target, TargetState};
use berth_core::provider::{OwnedTargets, TargetOwnership};

use crate::cluster::NodeSpec;
use crate::estate::{Estate, Members, Role};

/// The groups and the ownership record at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// Each group's targets.
    pub(crate) members: BTreeMap<Role, Members>,
    /// What berth's ownership store records.
    pub(crate) owned: OwnedTargets,
}

impl Snapshot {
    /// Reads every group (on the demo's uncounted path) and the ownership record.
    pub(crate) async fn take(
        estate: &Estate,
        ownership: &dyn TargetOwnership,
    ) -> anyhow::Result<Snapshot> {
        let mut members = BTreeMap::new();
        for g in estate.groups() {
            members.insert(g.role, estate.members(&g.arn).await?);
        }
        let owned = ownership
            .owned()
            .await
            .context("reading berth's ownership record")?;
        Ok(Snapshot { members, owned })
    }

    /// The state of `target` in the group playing `role`, if it is there.
    pub(crate) fn state(&self, role: Role, target: &Target) -> Option<TargetState> {
        self.members.get(&role)?.get(target).copied()
    }
}

/// Node targets in one group, counted by what the steps wait for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// In the group and not leaving it (healthy, or still in its first health checks).
    pub(crate) registered: usize,
    /// Deregistered, waiting out the delay.
    pub(crate) draining: usize,
    /// Not in the group.
    pub(crate) gone: usize,
}

impl Tally {
    /// Counts `nodes`' targets in the group playing `role`.
    pub(crate) fn of(snapshot: &Snapshot, role: Role, nodes: &[NodeSpec]) -> Tally {
        let mut t = Tally::default();
        for n in nodes {
            match snapshot.state(role, &Target::new(&n.instance, role.port())) {
                Some(TargetState::Draining) => t.draining += 1,
                Some(_) => t.registered += 1,
                None => t.gone += 1,
            }
        }
        t
    }

    /// `1 registered, 1 draining` (zero counts left out; `none` when empty).
    pub(crate) fn describe(&self) -> String {
        let mut out = String::new();
        for (n, what) in [
            (self.registered, "registered"),
            (self.draining, "draining"),
            (self.gone, "gone"),
        ] {
            if n > 0 {
                if !out.is_empty() {
                    out.push_str(", ");
                }
                let _ = write!(out, "{n} {what}");
            }
        }
        if out.is_empty() {
            out.push_str("none");
        }
        out
    }
}

/// Every (group, target) seen during the run, and whether berth's record ever held it.
#[derive(Debug, Clone, Default)]
pub(crate) struct History {
    /// Seen in the group.
    pub(crate) seen: BTreeSet<(Role, Target)>,
    /// Seen in berth's ownership record.
    pub(crate) owned: BTreeSet<(Role, Target)>,
}

impl History {
    /// Adds what `snapshot` shows.
    pub(crate) fn record(&mut self, estate: &Estate, snapshot: &Snapshot) {
        for (role, members) in &snapshot.members {
            for t in members.keys() {
                self.seen.insert((*role, t.clone()));
            }
            let arn = &estate.group(*role).arn;
            for t in snapshot.owned.get(arn).into_iter().flatten() {
                self.owned.insert((*role, t.clone()));
            }
        }
    }
}
