//! In-memory providers that behave like the real services, with injectable faults and
//! call counters. For tests of the engine and of downstream crates (`test-util`).

mod addresses;
mod dns;
mod etcd;
mod faults;
mod ledger;
mod targets;

use std::collections::HashMap;

use async_trait::async_trait;

use crate::domain::{Instance, InstanceId, TagFilter};
use crate::provider::{GroupBinding, Instances, NodeConfigurations};
use crate::{Error, Result};

pub use addresses::MemoryAddresses;
pub use dns::MemoryDns;
pub use etcd::{MemoryEtcd, MemoryScalingGroups};
pub use faults::Faults;
pub use ledger::MemoryLedger;
pub use targets::{DeregisterBehaviour, MemoryTargetGroups};

/// EC2 instances held in memory.
#[derive(Default)]
pub struct MemoryInstances {
    instances: std::sync::Mutex<HashMap<InstanceId, Instance>>,
    /// Fault injection and call counts (`DescribeInstances`).
    pub faults: Faults,
}

impl MemoryInstances {
    /// Adds or replaces an instance.
    pub fn insert(&self, instance: Instance) {
        self.instances
            .lock()
            .expect("poisoned")
            .insert(instance.id.clone(), instance);
    }
}

#[async_trait]
impl Instances for MemoryInstances {
    async fn describe(&self, ids: &[InstanceId]) -> Result<Vec<Instance>> {
        self.faults.enter("DescribeInstances")?;
        let all = self.instances.lock().expect("poisoned");
        Ok(ids.iter().filter_map(|id| all.get(id).cloned()).collect())
    }
    async fn matching(&self, filter: &TagFilter) -> Result<Vec<Instance>> {
        self.faults.enter("DescribeInstances")?;
        let all = self.instances.lock().expect("poisoned");
        let mut found: Vec<Instance> = all
            .values()
            .filter(|i| filter.matches(&i.tags))
            .cloned()
            .collect();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }
}

/// Node configurations held in memory (a stand-in for Cast.ai).
#[derive(Default)]
pub struct MemoryNodeConfigurations {
    configurations: std::sync::Mutex<HashMap<String, Vec<GroupBinding>>>,
    /// Fault injection and call counts (`GetNodeConfiguration`).
    pub faults: Faults,
}

impl MemoryNodeConfigurations {
    /// Sets a configuration's target groups.
    pub fn insert(&self, id: &str, groups: Vec<GroupBinding>) {
        self.configurations
            .lock()
            .expect("poisoned")
            .insert(id.to_owned(), groups);
    }
}

#[async_trait]
impl NodeConfigurations for MemoryNodeConfigurations {
    async fn target_groups(&self, configuration_id: &str) -> Result<Vec<GroupBinding>> {
        self.faults.enter("GetNodeConfiguration")?;
        self.configurations
            .lock()
            .expect("poisoned")
            .get(configuration_id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("node configuration {configuration_id}")))
    }
}
