//! The AWS side of the demo: target groups and instances, in memory or behind an
//! endpoint (moto). The daemon gets a `TargetGroups` provider; the demo observes the
//! groups on its own path, so its reads are not counted as berth's calls.

mod aws;
mod memory;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth_core::domain::{Target, TargetGroupArn, TargetState};
use berth_core::provider::TargetGroups;

pub(crate) use aws::AwsEstate;
pub(crate) use memory::MemoryEstate;

/// A target group the demo uses, by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Role {
    /// Static rule `role=web` → web.
    Web,
    /// Static rule `role=web` → api.
    Api,
    /// Cast.ai configuration `cfg-batch`, before the change.
    Batch,
    /// Cast.ai configuration `cfg-batch`, after the change.
    BatchV2,
}

impl Role {
    /// Every role, in table order.
    pub(crate) const ALL: [Role; 4] = [Role::Web, Role::Api, Role::Batch, Role::BatchV2];

    /// The group's name (before any per-run suffix).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Web => "web",
            Role::Api => "api",
            Role::Batch => "batch",
            Role::BatchV2 => "batch-v2",
        }
    }

    /// The group's port (its targets are registered on it).
    pub(crate) fn port(self) -> u16 {
        match self {
            Role::Web => 30080,
            Role::Api => 30443,
            Role::Batch => 30090,
            Role::BatchV2 => 30091,
        }
    }
}

/// A group as created.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    /// What it is for in the scenario.
    pub(crate) role: Role,
    /// Its name.
    pub(crate) name: String,
    /// Its ARN.
    pub(crate) arn: TargetGroupArn,
}

/// Targets and their states, as the demo sees them.
pub(crate) type Members = BTreeMap<Target, TargetState>;

/// In memory or behind an endpoint.
pub(crate) enum Estate {
    /// berth-core's in-memory target groups.
    Memory(MemoryEstate),
    /// The real ELBv2 adapter against an endpoint.
    Aws(AwsEstate),
}

impl Estate {
    /// Where AWS is, for the narration.
    pub(crate) fn describe(&self) -> String {
        match self {
            Estate::Memory(_) => "in-memory AWS (berth-core's target groups)".to_owned(),
            Estate::Aws(e) => format!("AWS at {} through berth's ELBv2 adapter", e.endpoint()),
        }
    }

    /// The groups, in table order.
    pub(crate) fn groups(&self) -> &[Group] {
        match self {
            Estate::Memory(e) => e.groups(),
            Estate::Aws(e) => e.groups(),
        }
    }

    /// The group playing `role`.
    pub(crate) fn group(&self, role: Role) -> &Group {
        self.groups()
            .iter()
            .find(|g| g.role == role)
            .unwrap_or_else(|| unreachable!("every estate creates every role's group"))
    }

    /// Instance ids: one per node, then one more (a machine with no node, whose target
    /// someone else registered).
    pub(crate) fn instances(&self) -> &[String] {
        match self {
            Estate::Memory(e) => e.instances(),
            Estate::Aws(e) => e.instances(),
        }
    }

    /// The provider the daemon calls.
    pub(crate) fn target_groups(&self) -> Arc<dyn TargetGroups> {
        match self {
            Estate::Memory(e) => e.target_groups(),
            Estate::Aws(e) => e.target_groups(),
        }
    }

    /// A group's targets now (not counted as berth's calls).
    pub(crate) async fn members(&self, group: &TargetGroupArn) -> anyhow::Result<Members> {
        match self {
            Estate::Memory(e) => Ok(e.members(group)),
            Estate::Aws(e) => e.members(group).await,
        }
    }

    /// Registers a target as another system would (not counted as berth's calls).
    pub(crate) async fn register_foreign(
        &self,
        group: &TargetGroupArn,
        target: &Target,
    ) -> anyhow::Result<()> {
        match self {
            Estate::Memory(e) => {
                e.register_foreign(group, target);
                Ok(())
            }
            Estate::Aws(e) => e.register_foreign(group, target).await,
        }
    }

    /// The AWS calls berth made, by operation.
    pub(crate) fn calls(&self) -> BTreeMap<String, u64> {
        match self {
            Estate::Memory(e) => e.calls(),
            Estate::Aws(e) => e.calls(),
        }
    }

    /// The deregistration delay the groups were given.
    pub(crate) fn drain_delay(&self) -> Duration {
        match self {
            Estate::Memory(e) => e.drain_delay(),
            Estate::Aws(e) => e.drain_delay(),
        }
    }
}

/// The demo's instance ids in memory: `i-` and 17 hex digits, like EC2's.
pub(crate) fn memory_instance_id(n: usize) -> String {
    format!("i-0de{n:014x}")
}
