//! Workflows: policy that strings observe, plan and apply together for one event.
//!
//! - [`AddressBinder`]: an Elastic IP from a tagged pool, a DNS record and a ledger row
//!   for a running EC2 instance, released when it goes (berth-lambda's policy).
//! - [`DnsNames`]: claiming, updating and releasing DNS names under berth's ownership
//!   marker (the Lambda's binder and berth-bootstrap).
//! - [`EtcdBootstrap`]: this node's etcd membership at boot (berth-bootstrap's policy).
//! - [`NodeTargets`]: the daemon's pass — nodes, Cast.ai node configurations and label
//!   rules to target-group membership, drains followed, notices and a requeue.
//! - [`TargetSlots`]: one target joining its target groups and leaving them, drained
//!   (berth-sidecar's policy).
//! - [`IpTargetCollector`]: IP target GC, the targets of gone pods' sidecar records
//!   (berth-daemon `--gc-ip-targets`).
//! - [`AddressBinder::sweep`]: the pool sweep, repairing what lost events left
//!   (berth-lambda's scheduled event).

#[cfg(test)]
mod address_world;
mod binder;
mod called;
mod dns;
#[cfg(test)]
mod dns_tests;
mod etcd;
mod ip_target_gc;
#[cfg(test)]
mod ip_target_gc_tests;
mod naming;
pub mod node_targets;
#[cfg(test)]
mod retries;
mod slots;
#[cfg(test)]
mod slots_tests;
mod sweep;
#[cfg(test)]
mod sweep_tests;
#[cfg(test)]
mod tests;

pub use crate::plan::{attr, AddressRow, RowState};
pub use binder::{AddressBinder, AddressProviders, Binding, BindingSettings, Clock, Outcome};
pub use dns::{DnsNames, Expect, NameWrite};
pub use etcd::{
    CallsSpent, EtcdAction, EtcdBootstrap, EtcdBootstrapSettings, EtcdProviders, EtcdSummary,
    LocalNode,
};
pub use ip_target_gc::{GcDone, GcPassReport, IpTargetCollector};
pub use naming::DnsNameTemplate;
pub use node_targets::{NodeTargets, NodeTargetsProviders, NodeTargetsSettings};
pub use slots::{JoinFailure, Slot, TargetSlots};
pub use sweep::SweepReport;
