//! Pure planning: `(desired, observed) -> Plan`. Nothing here calls a provider, so
//! every rule is tested with plain values.
//!
//! Each capability has its own change type ([`MembershipChange`], [`RecordChange`]);
//! [`Plan`] is generic over it. How a change is applied lives in [`crate::engine`].

mod address;
mod address_row;
mod dns;
mod etcd;
mod ip_target_gc;
mod membership;
mod nodes;
pub mod runs;
mod sweep;

use std::fmt;

pub use address::{plan_address, AddressDecision, AddressPolicy};
pub use address_row::{attr, AddressRow, RowState};
pub use dns::{plan_dns, DnsIntent, RecordChange};
pub use etcd::{
    decide_etcd, presence, quorum, render_drop_in, ClusterState, DropIn, EtcdDecision,
    EtcdObservation, EtcdSettings, EtcdTls, InitialClusterState, InstanceFate, JoinPlan,
    NodeIdentity, ObservedMember, Peer, Presence, Removal, SelfStep,
};
pub use ip_target_gc::{
    plan_ip_target_gc, GcAction, GcDue, GcHold, GcPlan, IpTargetGc, LivePods, PodIdentity,
    SidecarRecord,
};
pub use membership::{plan_membership, DesiredMembership, MembershipChange, ObservedMembership};
pub use nodes::{
    desire_nodes, owned_by_instances, LeaveReason, NodeDecision, NodeDesire, NodeGroup, NodeGroups,
    NodeRules, NodeVerdict, TaintMatch, EXCLUDE_FROM_LOAD_BALANCERS, UNSCHEDULABLE_TAINT,
};
pub use sweep::{plan_sweep, StaleRow, SweepObservation, SweepPlan};

/// One change to the world, as planning sees it: printable, countable and divisible
/// into API-sized batches. The engine applies it through [`crate::engine::Apply`].
pub trait Change: fmt::Display + fmt::Debug + Clone + Send + Sync + 'static {
    /// How many items (targets, records, ...) the change touches.
    fn len(&self) -> usize;

    /// Whether the change touches nothing.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A short verb for logs and metrics: `register`, `deregister`, ...
    fn verb(&self) -> &'static str;

    /// The change cut into batches of at most `max_items` items (in order).
    fn split(&self, max_items: usize) -> Vec<Self> {
        let _ = max_items;
        vec![self.clone()]
    }
}

/// `items` in chunks of at most `max` (at least one item each), rebuilt by `make`.
pub(crate) fn chunked<T: Clone, C>(items: &[T], max: usize, make: impl Fn(Vec<T>) -> C) -> Vec<C> {
    items.chunks(max.max(1)).map(|c| make(c.to_vec())).collect()
}

/// Something planning chose not to do, and why (printed with the plan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// What was skipped, e.g. `i-1:80 in web`.
    pub subject: String,
    /// Why.
    pub reason: String,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "skip {}: {}", self.subject, self.reason)
    }
}

/// A list of changes of one kind, printable for dry-runs and countable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<C> {
    /// The changes, in the order they should be applied.
    pub changes: Vec<C>,
    /// What was deliberately left alone.
    pub skipped: Vec<Skip>,
}

impl<C> Default for Plan<C> {
    fn default() -> Self {
        Plan {
            changes: Vec::new(),
            skipped: Vec::new(),
        }
    }
}

impl<C: Change> Plan<C> {
    /// Whether the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.iter().all(Change::is_empty)
    }

    /// The number of items changed (targets, records, addresses).
    pub fn len(&self) -> usize {
        self.changes.iter().map(Change::len).sum()
    }

    /// Items changed by one kind of change, e.g. `count("register")`.
    pub fn count(&self, verb: &str) -> usize {
        self.changes
            .iter()
            .filter(|c| c.verb() == verb)
            .map(Change::len)
            .sum()
    }

    /// Appends another plan.
    pub fn extend(&mut self, other: Plan<C>) {
        self.changes.extend(other.changes);
        self.skipped.extend(other.skipped);
    }

    /// Adds a change, unless it touches nothing.
    pub fn push(&mut self, change: C) {
        if !change.is_empty() {
            self.changes.push(change);
        }
    }

    /// Records something deliberately left alone, and why.
    pub fn skip(&mut self, subject: impl Into<String>, reason: impl Into<String>) {
        self.skipped.push(Skip {
            subject: subject.into(),
            reason: reason.into(),
        });
    }
}

impl<C: fmt::Display> fmt::Display for Plan<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            writeln!(f, "no changes")?;
        }
        for c in &self.changes {
            writeln!(f, "{c}")?;
        }
        for s in &self.skipped {
            writeln!(f, "{s}")?;
        }
        Ok(())
    }
}

/// Items joined with `, ` (for the changes' `Display`).
pub(crate) fn list<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
