//! Pure planning: `(desired, observed) -> Plan`. Nothing here calls a provider, so
//! every rule is tested with plain values.

mod address;
mod dns;
mod etcd;
mod membership;
mod nodes;
pub mod runs;

use std::fmt;

use crate::domain::{
    AllocationId, AssociationTarget, DnsRecord, Registration, Target, TargetGroupArn,
};

pub use address::{plan_address, AddressDecision, AddressPolicy};
pub use dns::{plan_dns, DnsIntent};
pub use etcd::{
    decide_etcd, presence, quorum, render_drop_in, ClusterState, DropIn, EtcdDecision,
    EtcdObservation, EtcdSettings, EtcdTls, InitialClusterState, InstanceFate, JoinPlan,
    NodeIdentity, ObservedMember, Peer, Presence, Removal, SelfStep,
};
pub use membership::{plan_membership, DesiredMembership, ObservedMembership};
pub use nodes::{
    desire_nodes, owned_by_instances, LeaveReason, NodeDecision, NodeDesire, NodeGroup, NodeGroups,
    NodeRules, NodeVerdict, TaintMatch, EXCLUDE_FROM_LOAD_BALANCERS, UNSCHEDULABLE_TAINT,
};

/// One change to the world. Target and record changes carry many items: the engine
/// splits them into API-sized batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
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
    /// Associate an Elastic IP (never re-associating one that is taken).
    Associate {
        /// The address.
        allocation_id: AllocationId,
        /// Where.
        target: AssociationTarget,
    },
    /// Remove an Elastic IP association.
    Disassociate {
        /// The address.
        allocation_id: AllocationId,
        /// The association to remove.
        association_id: String,
    },
    /// Create or replace record sets (each with its ownership marker).
    UpsertRecords {
        /// The hosted zone id.
        zone_id: String,
        /// The record sets.
        records: Vec<DnsRecord>,
    },
    /// Delete record sets berth owns.
    DeleteRecords {
        /// The hosted zone id.
        zone_id: String,
        /// The record sets, as they are now.
        records: Vec<DnsRecord>,
    },
}

impl Change {
    /// How many items (targets, records, addresses) the change touches.
    pub fn len(&self) -> usize {
        match self {
            Change::Register { targets, .. } => targets.len(),
            Change::Deregister { targets, .. } | Change::Forget { targets, .. } => targets.len(),
            Change::Associate { .. } | Change::Disassociate { .. } => 1,
            Change::UpsertRecords { records, .. } | Change::DeleteRecords { records, .. } => {
                records.len()
            }
        }
    }

    /// Whether the change touches nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A short verb for logs and metrics: `register`, `deregister`, ...
    pub fn verb(&self) -> &'static str {
        match self {
            Change::Register { .. } => "register",
            Change::Deregister { .. } => "deregister",
            Change::Forget { .. } => "forget",
            Change::Associate { .. } => "associate",
            Change::Disassociate { .. } => "disassociate",
            Change::UpsertRecords { .. } => "upsert",
            Change::DeleteRecords { .. } => "delete",
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list<T: fmt::Display>(items: &[T]) -> String {
            items
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
        match self {
            Change::Register { group, targets } => {
                let t: Vec<String> = targets
                    .iter()
                    .map(|r| match &r.availability_zone {
                        Some(az) => format!("{} (az {az})", r.target),
                        None => r.target.to_string(),
                    })
                    .collect();
                write!(f, "register {} in {}", t.join(", "), group.name())
            }
            Change::Deregister { group, targets } => {
                write!(f, "deregister {} from {}", list(targets), group.name())
            }
            Change::Forget { group, targets } => write!(
                f,
                "forget {} in {} (already gone)",
                list(targets),
                group.name()
            ),
            Change::Associate {
                allocation_id,
                target,
            } => write!(
                f,
                "associate {allocation_id} with {} ({} {})",
                target.instance_id, target.network_interface_id, target.private_ip
            ),
            Change::Disassociate {
                allocation_id,
                association_id,
            } => {
                write!(f, "disassociate {allocation_id} ({association_id})")
            }
            Change::UpsertRecords { zone_id, records } => {
                write!(f, "upsert in zone {zone_id}: {}", list(records))
            }
            Change::DeleteRecords { zone_id, records } => {
                write!(f, "delete in zone {zone_id}: {}", list(records))
            }
        }
    }
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

/// A list of changes, printable for dry-runs and countable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The changes, in the order they should be applied.
    pub changes: Vec<Change>,
    /// What was deliberately left alone.
    pub skipped: Vec<Skip>,
}

impl Plan {
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
    pub fn extend(&mut self, other: Plan) {
        self.changes.extend(other.changes);
        self.skipped.extend(other.skipped);
    }

    fn push(&mut self, change: Change) {
        if !change.is_empty() {
            self.changes.push(change);
        }
    }

    fn skip(&mut self, subject: impl Into<String>, reason: impl Into<String>) {
        self.skipped.push(Skip {
            subject: subject.into(),
            reason: reason.into(),
        });
    }
}

impl fmt::Display for Plan {
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
