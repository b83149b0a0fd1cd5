use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::Faults;
use crate::domain::{
    Registration, Target, TargetGroup, TargetGroupArn, TargetGroupRef, TargetHealth, TargetState,
    TargetType,
};
use crate::provider::{Deregistered, TargetGroups};
use crate::{Error, Result};

/// What a deregistered target does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeregisterBehaviour {
    /// It becomes `draining` until [`MemoryTargetGroups::finish_draining`] (like AWS).
    #[default]
    Drain,
    /// It vanishes at once (like moto).
    Vanish,
    /// It is `draining` for its group's deregistration delay, then leaves on its own
    /// (like AWS; on tokio's clock, so paused-time tests control it).
    DrainForDelay,
}

struct Group {
    group: TargetGroup,
    targets: BTreeMap<Target, TargetState>,
    /// When each target deregistered with [`DeregisterBehaviour::DrainForDelay`] leaves.
    leaves_at: BTreeMap<Target, Instant>,
}

impl Group {
    /// Drops the targets whose deregistration delay is over.
    fn expire_drains(&mut self) {
        let now = Instant::now();
        let over: Vec<Target> = self
            .leaves_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, _)| t.clone())
            .collect();
        for t in over {
            self.leaves_at.remove(&t);
            if self.targets.get(&t).is_some_and(|s| s.is_draining()) {
                self.targets.remove(&t);
            }
        }
    }
}

/// ELBv2 target groups in memory.
pub struct MemoryTargetGroups {
    groups: Mutex<HashMap<TargetGroupArn, Group>>,
    /// The state a newly registered target starts in.
    pub registered_state: TargetState,
    /// What deregistration does.
    pub deregister: DeregisterBehaviour,
    /// Fault injection and call counts (`DescribeTargetGroups`, `DescribeTargetHealth`,
    /// `RegisterTargets`, `DeregisterTargets`).
    pub faults: Faults,
}

impl Default for MemoryTargetGroups {
    fn default() -> Self {
        MemoryTargetGroups {
            groups: Mutex::default(),
            registered_state: TargetState::Healthy,
            deregister: DeregisterBehaviour::Drain,
            faults: Faults::default(),
        }
    }
}

impl MemoryTargetGroups {
    /// Newly registered targets start in `state` (`initial` to exercise health waits).
    pub fn registering_as(mut self, state: TargetState) -> Self {
        self.registered_state = state;
        self
    }

    /// Deregistered targets drain or vanish.
    pub fn deregistering(mut self, behaviour: DeregisterBehaviour) -> Self {
        self.deregister = behaviour;
        self
    }

    /// Creates a group and returns it.
    pub fn add_group(&self, name: &str, target_type: TargetType, port: Option<u16>) -> TargetGroup {
        let mut groups = self.groups.lock().expect("poisoned");
        let arn = TargetGroupArn::new(format!(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{name}/{:016x}",
            groups.len() + 1
        ))
        .expect("valid ARN");
        let group = TargetGroup {
            arn: arn.clone(),
            name: name.to_owned(),
            target_type,
            port,
            deregistration_delay: Duration::from_secs(300),
        };
        groups.insert(
            arn,
            Group {
                group: group.clone(),
                targets: BTreeMap::new(),
                leaves_at: BTreeMap::new(),
            },
        );
        group
    }

    /// Puts a target in a state directly (as another system, or health checks, would).
    pub fn set_state(&self, group: &TargetGroupArn, target: Target, state: TargetState) {
        let mut groups = self.groups.lock().expect("poisoned");
        groups
            .get_mut(group)
            .expect("unknown group")
            .targets
            .insert(target, state);
    }

    /// Sets a group's deregistration delay (ELBv2's `deregistration_delay.timeout_seconds`).
    pub fn set_deregistration_delay(&self, group: &TargetGroupArn, delay: Duration) {
        let mut groups = self.groups.lock().expect("poisoned");
        groups
            .get_mut(group)
            .expect("unknown group")
            .group
            .deregistration_delay = delay;
    }

    /// Removes a target directly (as another system would).
    pub fn remove(&self, group: &TargetGroupArn, target: &Target) {
        let mut groups = self.groups.lock().expect("poisoned");
        groups
            .get_mut(group)
            .expect("unknown group")
            .targets
            .remove(target);
    }

    /// Ends every drain: draining targets leave their groups.
    pub fn finish_draining(&self) {
        for g in self.groups.lock().expect("poisoned").values_mut() {
            g.targets.retain(|_, s| !s.is_draining());
            g.leaves_at.clear();
        }
    }

    /// A group's targets and states.
    pub fn members(&self, group: &TargetGroupArn) -> BTreeMap<Target, TargetState> {
        self.groups
            .lock()
            .expect("poisoned")
            .get_mut(group)
            .map(|g| {
                g.expire_drains();
                g.targets.clone()
            })
            .unwrap_or_default()
    }
}

#[async_trait]
impl TargetGroups for MemoryTargetGroups {
    async fn resolve(&self, group: &TargetGroupRef) -> Result<TargetGroup> {
        self.faults.enter("DescribeTargetGroups")?;
        let groups = self.groups.lock().expect("poisoned");
        let found = match group {
            TargetGroupRef::Arn(arn) => groups.get(arn).map(|g| g.group.clone()),
            TargetGroupRef::Name(name) => groups
                .values()
                .find(|g| &g.group.name == name)
                .map(|g| g.group.clone()),
        };
        found.ok_or_else(|| Error::not_found(format!("target group {group}")))
    }

    async fn deregistration_delay(&self, group: &TargetGroupArn) -> Result<Duration> {
        self.faults.enter("DescribeTargetGroupAttributes")?;
        let groups = self.groups.lock().expect("poisoned");
        groups
            .get(group)
            .map(|g| g.group.deregistration_delay)
            .ok_or_else(|| Error::not_found(format!("target group {group}")))
    }

    async fn health(&self, group: &TargetGroupArn) -> Result<Vec<TargetHealth>> {
        self.faults.enter("DescribeTargetHealth")?;
        let mut groups = self.groups.lock().expect("poisoned");
        let g = groups
            .get_mut(group)
            .ok_or_else(|| Error::not_found(format!("target group {group}")))?;
        g.expire_drains();
        Ok(g.targets
            .iter()
            .map(|(t, s)| TargetHealth {
                target: t.clone(),
                state: *s,
                reason: None,
            })
            .collect())
    }

    async fn register(&self, group: &TargetGroupArn, targets: &[Registration]) -> Result<()> {
        self.faults.enter("RegisterTargets")?;
        let mut groups = self.groups.lock().expect("poisoned");
        let g = groups
            .get_mut(group)
            .ok_or_else(|| Error::not_found(format!("target group {group}")))?;
        g.expire_drains();
        for r in targets {
            let state = g
                .targets
                .entry(r.target.clone())
                .or_insert(self.registered_state);
            if state.is_draining() {
                // ELBv2 takes a draining target back: the reason berth must never ask it to.
                *state = self.registered_state;
                g.leaves_at.remove(&r.target);
            }
        }
        Ok(())
    }

    async fn deregister(&self, group: &TargetGroupArn, targets: &[Target]) -> Result<Deregistered> {
        self.faults.enter("DeregisterTargets")?;
        let mut groups = self.groups.lock().expect("poisoned");
        let g = groups
            .get_mut(group)
            .ok_or_else(|| Error::not_found(format!("target group {group}")))?;
        g.expire_drains();
        let leaves_at = Instant::now() + g.group.deregistration_delay;
        let mut answer = Deregistered::default();
        for t in targets {
            // Like ELBv2: a draining target is still registered, a vanished one is not.
            if !g.targets.contains_key(t) {
                answer.absent.push(t.clone());
                continue;
            }
            answer.removed.push(t.clone());
            match self.deregister {
                DeregisterBehaviour::Vanish => {
                    g.targets.remove(t);
                }
                DeregisterBehaviour::Drain => {
                    if let Some(s) = g.targets.get_mut(t) {
                        *s = TargetState::Draining;
                    }
                }
                DeregisterBehaviour::DrainForDelay => {
                    if let Some(s) = g.targets.get_mut(t) {
                        if !s.is_draining() {
                            *s = TargetState::Draining;
                            g.leaves_at.insert(t.clone(), leaves_at);
                        }
                    }
                }
            }
        }
        Ok(answer)
    }
}
