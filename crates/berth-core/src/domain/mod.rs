//! What berth binds, as plain data: instances, pods, target groups and their targets,
//! Elastic IPs, DNS records, ledger records and owners.

mod address;
mod dns;
mod instance;
mod ledger;
mod node;
mod owner;
mod tags;
mod target;

pub use address::{AllocationId, Association, AssociationTarget, ElasticIp};
pub use dns::{DnsRecord, HostedZone, RecordType};
pub use instance::{Instance, InstanceId, InstanceState, NetworkInterface};
pub use ledger::{AttributeEquals, LedgerRecord, WriteCondition};
pub use node::{Node, Taint, TaintEffect};
pub use owner::{InstallationId, Mode, Owner};
pub use tags::{TagFilter, TagMatch, Tags};
pub use target::{
    Registration, Target, TargetGroup, TargetGroupArn, TargetGroupRef, TargetHealth, TargetState,
    TargetType,
};
