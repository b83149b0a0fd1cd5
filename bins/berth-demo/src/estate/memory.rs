//! The estate in berth-core's in-memory target groups.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth_core::domain::{Target, TargetGroupArn, TargetState, TargetType};
use berth_core::memory::{DeregisterBehaviour, MemoryTargetGroups};
use berth_core::provider::TargetGroups;

use super::{memory_instance_id, Group, Members, Role};

/// In-memory target groups whose deregistered targets drain for the groups' delay.
pub(crate) struct MemoryEstate {
    provider: Arc<MemoryTargetGroups>,
    groups: Vec<Group>,
    instances: Vec<String>,
    drain_delay: Duration,
}

impl MemoryEstate {
    /// Every role's group, and `nodes + 1` instance ids.
    pub(crate) fn new(nodes: usize, drain_delay: Duration) -> Self {
        let provider = Arc::new(
            MemoryTargetGroups::default().deregistering(DeregisterBehaviour::DrainForDelay),
        );
        let groups = Role::ALL
            .iter()
            .map(|&role| {
                let g = provider.add_group(role.name(), TargetType::Instance, Some(role.port()));
                provider.set_deregistration_delay(&g.arn, drain_delay);
                Group {
                    role,
                    name: g.name,
                    arn: g.arn,
                }
            })
            .collect();
        MemoryEstate {
            provider,
            groups,
            instances: (1..=nodes + 1).map(memory_instance_id).collect(),
            drain_delay,
        }
    }

    pub(crate) fn groups(&self) -> &[Group] {
        &self.groups
    }

    pub(crate) fn instances(&self) -> &[String] {
        &self.instances
    }

    pub(crate) fn target_groups(&self) -> Arc<dyn TargetGroups> {
        self.provider.clone()
    }

    pub(crate) fn members(&self, group: &TargetGroupArn) -> Members {
        self.provider.members(group)
    }

    pub(crate) fn register_foreign(&self, group: &TargetGroupArn, target: &Target) {
        self.provider
            .set_state(group, target.clone(), TargetState::Healthy);
    }

    pub(crate) fn calls(&self) -> BTreeMap<String, u64> {
        self.provider.faults.snapshot()
    }

    pub(crate) fn drain_delay(&self) -> Duration {
        self.drain_delay
    }
}
