//! Target-group membership for many subjects and many groups at once.

use std::collections::BTreeMap;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

use super::{chunked, list, Change, Plan};
use crate::domain::{Registration, Target, TargetGroup, TargetGroupArn, TargetHealth, TargetState};
use crate::provider::OwnedTargets;
use crate::Result;

/// One change to target-group membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// Register targets in a group (claiming ownership first).
    Register {
        /// The group.
        group: TargetGroupArn,
        /// What to register.
        targets: Vec<Registration>,
    },
    /// Deregister targets berth owns (releasing ownership after).
    Deregister {
        /// The group.
        group: TargetGroupArn,
        /// What to deregister.
        targets: Vec<Target>,
    },
    /// Forget ownership of targets that are already gone from the group.
    Forget {
        /// The group.
        group: TargetGroupArn,
        /// The targets.
        targets: Vec<Target>,
    },
}

impl MembershipChange {
    /// The group the change is about.
    pub fn group(&self) -> &TargetGroupArn {
        match self {
            MembershipChange::Register { group, .. }
            | MembershipChange::Deregister { group, .. }
            | MembershipChange::Forget { group, .. } => group,
        }
    }

    /// The targets the change is about.
    pub fn targets(&self) -> Vec<Target> {
        match self {
            MembershipChange::Register { targets, .. } => {
                targets.iter().map(|r| r.target.clone()).collect()
            }
            MembershipChange::Deregister { targets, .. }
            | MembershipChange::Forget { targets, .. } => targets.clone(),
        }
    }
}

impl Change for MembershipChange {
    fn len(&self) -> usize {
        match self {
            MembershipChange::Register { targets, .. } => targets.len(),
            MembershipChange::Deregister { targets, .. }
            | MembershipChange::Forget { targets, .. } => targets.len(),
        }
    }

    fn verb(&self) -> &'static str {
        match self {
            MembershipChange::Register { .. } => "register",
            MembershipChange::Deregister { .. } => "deregister",
            MembershipChange::Forget { .. } => "forget",
        }
    }

    fn split(&self, max_items: usize) -> Vec<Self> {
        match self {
            MembershipChange::Register { group, targets } => {
                chunked(targets, max_items, |targets| MembershipChange::Register {
                    group: group.clone(),
                    targets,
                })
            }
            MembershipChange::Deregister { group, targets } => {
                chunked(targets, max_items, |targets| MembershipChange::Deregister {
                    group: group.clone(),
                    targets,
                })
            }
            MembershipChange::Forget { .. } => vec![self.clone()],
        }
    }
}

impl fmt::Display for MembershipChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembershipChange::Register { group, targets } => {
                let t: Vec<String> = targets
                    .iter()
                    .map(|r| match &r.availability_zone {
                        Some(az) => format!("{} (az {az})", r.target),
                        None => r.target.to_string(),
                    })
                    .collect();
                write!(f, "register {} in {}", t.join(", "), group.name())
            }
            MembershipChange::Deregister { group, targets } => {
                write!(f, "deregister {} from {}", list(targets), group.name())
            }
            MembershipChange::Forget { group, targets } => write!(
                f,
                "forget {} in {} (already gone)",
                list(targets),
                group.name()
            ),
        }
    }
}

/// What should be registered: per group, each target and its Availability Zone.
/// Targets are kept sorted so planning walks them in step with the (sorted) ownership
/// records instead of hashing each one twice.
#[derive(Debug, Clone, Default)]
pub struct DesiredMembership {
    groups: HashMap<TargetGroupArn, BTreeMap<Target, Option<String>>>,
}

impl DesiredMembership {
    /// An empty desire (every owned target is to be deregistered).
    pub fn new() -> Self {
        Self::default()
    }

    /// Wants `id` in `group` on `port`, or on the group's own port when `port` is
    /// `None` (a null port from Cast.ai means exactly that).
    pub fn want(
        &mut self,
        group: &TargetGroup,
        id: &str,
        port: Option<u16>,
        availability_zone: Option<String>,
    ) -> Result<()> {
        let port = group.resolve_port(port)?;
        self.want_target(&group.arn, Target::new(id, port), availability_zone);
        Ok(())
    }

    /// Wants an already resolved target in a group.
    pub fn want_target(
        &mut self,
        group: &TargetGroupArn,
        target: Target,
        availability_zone: Option<String>,
    ) {
        self.groups
            .entry(group.clone())
            .or_default()
            .insert(target, availability_zone);
    }

    /// Declares a group with no desired target (so owned targets in it are deregistered).
    pub fn declare_group(&mut self, group: &TargetGroupArn) {
        self.groups.entry(group.clone()).or_default();
    }

    /// The groups mentioned.
    pub fn groups(&self) -> impl Iterator<Item = &TargetGroupArn> {
        self.groups.keys()
    }

    /// Whether `target` is wanted in `group`.
    pub fn contains(&self, group: &TargetGroupArn, target: &Target) -> bool {
        self.groups
            .get(group)
            .is_some_and(|g| g.contains_key(target))
    }

    /// Number of (group, target) pairs wanted.
    pub fn len(&self) -> usize {
        self.groups.values().map(BTreeMap::len).sum()
    }

    /// Whether nothing is wanted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What is registered now: per observed group, each target's state, sorted by target.
/// A group that could not be observed is absent, and planning leaves it alone.
#[derive(Debug, Clone, Default)]
pub struct ObservedMembership {
    groups: HashMap<TargetGroupArn, Vec<(Target, TargetState)>>,
}

impl ObservedMembership {
    /// Nothing observed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one group's `DescribeTargetHealth` answer.
    pub fn observe(&mut self, group: &TargetGroupArn, health: Vec<TargetHealth>) {
        let mut members: Vec<(Target, TargetState)> =
            health.into_iter().map(|h| (h.target, h.state)).collect();
        members.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        members.dedup_by(|a, b| a.0 == b.0);
        self.groups.insert(group.clone(), members);
    }

    /// The state of a target, if it is in the group.
    pub fn state(&self, group: &TargetGroupArn, target: &Target) -> Option<TargetState> {
        let members = self.groups.get(group)?;
        members
            .binary_search_by(|(t, _)| t.cmp(target))
            .ok()
            .map(|i| members[i].1)
    }

    /// Whether the group was observed.
    pub fn has_group(&self, group: &TargetGroupArn) -> bool {
        self.groups.contains_key(group)
    }
}

/// Plans membership changes for every group that is desired or owned.
///
/// - a desired target missing from its group is registered (on the resolved port);
/// - a desired target that is `draining` is left alone until it has gone — it is never
///   re-registered mid-drain (seed 000 did, cutting in-flight connections);
/// - a target berth owns that is no longer desired is deregistered, unless it is
///   already draining; once gone, its ownership record is forgotten;
/// - a target berth does not own is never deregistered, whoever put it there;
/// - a group that could not be observed is skipped entirely.
pub fn plan_membership(
    desired: &DesiredMembership,
    observed: &ObservedMembership,
    owned: &OwnedTargets,
) -> Plan<MembershipChange> {
    let mut plan = Plan::default();
    let groups: BTreeSet<&TargetGroupArn> = desired.groups.keys().chain(owned.keys()).collect();
    for group in groups {
        let Some(present) = observed.groups.get(group) else {
            plan.skip(
                group.name(),
                "membership could not be observed; nothing changed in this group",
            );
            continue;
        };
        // At least this many wanted targets cannot be present: size for them up front.
        let missing = desired
            .groups
            .get(group)
            .map_or(0, BTreeMap::len)
            .saturating_sub(present.len());
        let mut register = Vec::with_capacity(missing);
        let mut deregister = Vec::new();
        let mut forget = Vec::new();
        // One merge over the sorted desired and owned targets, asking the sorted
        // membership about each in ascending order: linear, no per-target hashing.
        let mut wanted = desired.groups.get(group).into_iter().flatten().peekable();
        let mut mine = owned.get(group).into_iter().flatten().peekable();
        let mut cursor = Cursor::new(present);
        loop {
            let (target, az, is_wanted) = match (wanted.peek(), mine.peek()) {
                (None, None) => break,
                (Some(&(w, az)), Some(&m)) if w <= m => {
                    if w == m {
                        mine.next();
                    }
                    wanted.next();
                    (w, az, true)
                }
                (Some(&(w, az)), None) => {
                    wanted.next();
                    (w, az, true)
                }
                (_, Some(&m)) => {
                    mine.next();
                    (m, &None, false)
                }
            };
            match (cursor.state(target), is_wanted) {
                (None, true) => register.push(Registration {
                    target: target.clone(),
                    availability_zone: az.clone(),
                }),
                (Some(state), true) if state.is_draining() => plan.skip(
                    format!("{target} in {}", group.name()),
                    "draining: not re-registered until it has left the group",
                ),
                (Some(_), true) => {}
                (None, false) => forget.push(target.clone()),
                (Some(state), false) if state.is_draining() => {}
                (Some(_), false) => deregister.push(target.clone()),
            }
        }
        plan.push(MembershipChange::Deregister {
            group: group.clone(),
            targets: deregister,
        });
        plan.push(MembershipChange::Register {
            group: group.clone(),
            targets: register,
        });
        plan.push(MembershipChange::Forget {
            group: group.clone(),
            targets: forget,
        });
    }
    plan
}

/// A forward-only walk over a group's sorted members, queried with sorted targets.
struct Cursor<'a> {
    members: &'a [(Target, TargetState)],
}

impl<'a> Cursor<'a> {
    fn new(members: &'a [(Target, TargetState)]) -> Self {
        Cursor { members }
    }

    /// The state of `target`; targets must be asked for in ascending order.
    fn state(&mut self, target: &Target) -> Option<TargetState> {
        while let Some(((t, s), rest)) = self.members.split_first() {
            match t.cmp(target) {
                std::cmp::Ordering::Less => self.members = rest,
                std::cmp::Ordering::Equal => return Some(*s),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }
}
