//! Deregistered targets until they have left their group: waited for off the pass
//! (a [`DrainWait`] polls through the engine for the group's deregistration delay), or,
//! when the delay is unknown, checked by the following passes.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;

use super::notices::Notice;
use crate::domain::{Target, TargetGroupArn};
use crate::engine::Engine;
use crate::plan::ObservedMembership;
use crate::provider::{PollPolicy, TargetGroups};

/// One deregistered target not yet seen gone.
#[derive(Debug, Clone)]
pub(super) struct Tracked {
    node: Option<String>,
    since: Instant,
    /// A [`DrainWait`] answers for it; otherwise the passes check it.
    waited: bool,
}

/// The deregistered targets not yet seen gone, shared by the workflow and its waits.
#[derive(Debug, Clone, Default)]
pub(super) struct Draining(Arc<Mutex<BTreeMap<(TargetGroupArn, Target), Tracked>>>);

impl Draining {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<(TargetGroupArn, Target), Tracked>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Starts tracking the targets not tracked yet and returns those (a target
    /// deregistered again while its drain is followed is not followed twice).
    pub(super) fn track(
        &self,
        group: &TargetGroupArn,
        targets: Vec<(Target, Option<String>)>,
        waited: bool,
    ) -> Vec<(Target, Option<String>)> {
        let mut map = self.lock();
        let now = Instant::now();
        targets
            .into_iter()
            .filter(|(t, node)| {
                let key = (group.clone(), t.clone());
                if map.contains_key(&key) {
                    return false;
                }
                let tracked = Tracked {
                    node: node.clone(),
                    since: now,
                    waited,
                };
                map.insert(key, tracked);
                true
            })
            .collect()
    }

    /// The groups of drains the passes check.
    pub(super) fn checked_groups(&self) -> Vec<TargetGroupArn> {
        let mut groups: Vec<TargetGroupArn> = self
            .lock()
            .iter()
            .filter(|(_, t)| !t.waited)
            .map(|((g, _), _)| g.clone())
            .collect();
        groups.dedup();
        groups
    }

    /// Checks the pass-checked drains against this pass's observation: gone → drained;
    /// present and no longer draining → registered again by someone, not a drain any
    /// more; still draining or not observed → checked again. Returns whether any is
    /// left to check.
    pub(super) fn check(&self, observed: &ObservedMembership, notices: &mut Vec<Notice>) -> bool {
        let mut map = self.lock();
        map.retain(|(group, target), tracked| {
            if tracked.waited || !observed.has_group(group) {
                return true;
            }
            match observed.state(group, target) {
                None => {
                    tracing::info!(target = %target, group = %group.name(), "left the target group");
                    notices.push(Notice::Drained {
                        node: tracked.node.clone(),
                        group: group.clone(),
                        target: target.clone(),
                        took: tracked.since.elapsed(),
                    });
                    false
                }
                Some(state) => state.is_draining(),
            }
        });
        map.values().any(|t| !t.waited)
    }
}

/// A deregistration to wait out, off the pass: [`DrainWait::wait`] polls the group
/// through the engine until the targets have left it (the deregistration delay plus
/// the workflow's poll deadline) and returns a [`Notice::Drained`] or
/// [`Notice::DrainNotConfirmed`] per target. Run it in its own task: the pass does not
/// wait for it. A wait dropped before it ends (never run, or cancelled) hands its
/// targets to the following passes, which report them drained once they have left.
pub struct DrainWait {
    pub(super) engine: Engine,
    pub(super) provider: Arc<dyn TargetGroups>,
    pub(super) poll: PollPolicy,
    pub(super) followed: Followed,
}

/// The targets a [`DrainWait`] answers for, released from the workflow's tracking
/// when the wait ends or is dropped.
pub(super) struct Followed {
    pub(super) draining: Draining,
    pub(super) group: TargetGroupArn,
    pub(super) targets: Vec<(Target, Option<String>)>,
    pub(super) ended: bool,
}

impl Drop for Followed {
    fn drop(&mut self) {
        let mut map = self.draining.lock();
        for (target, _) in &self.targets {
            let key = (self.group.clone(), target.clone());
            if self.ended {
                map.remove(&key);
            } else if let Some(tracked) = map.get_mut(&key) {
                tracked.waited = false;
            }
        }
    }
}

impl fmt::Debug for DrainWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainWait")
            .field("group", &self.followed.group)
            .field("targets", &self.followed.targets)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

impl DrainWait {
    /// The group drained.
    pub fn group(&self) -> &TargetGroupArn {
        &self.followed.group
    }

    /// The targets drained.
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.followed.targets.iter().map(|(t, _)| t)
    }

    /// Waits until the targets have left the group, or until the deadline.
    pub async fn wait(mut self) -> Vec<Notice> {
        let group = self.followed.group.clone();
        let targets: Vec<Target> = self.targets().cloned().collect();
        let result = self
            .engine
            .wait_drained(self.provider.as_ref(), &group, &targets, self.poll)
            .await;
        let mut notices = Vec::new();
        for (target, node) in &self.followed.targets {
            let notice = match &result {
                Ok(took) => Notice::Drained {
                    node: node.clone(),
                    group: group.clone(),
                    target: target.clone(),
                    took: *took,
                },
                Err(error) => Notice::DrainNotConfirmed {
                    node: node.clone(),
                    group: group.clone(),
                    target: target.clone(),
                    error: error.clone(),
                },
            };
            tracing::info!(group = %group.name(), "{notice}");
            notices.push(notice);
        }
        self.followed.ended = true;
        notices
    }
}
