//! What the engine did, as notices, and the deregistrations to wait out.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::drain::{DrainWait, Followed};
use super::notices::Notice;
use super::NodeTargets;
use crate::domain::{Target, TargetGroup, TargetGroupArn};
use crate::engine::{Report, Status};
use crate::plan::{MembershipChange, NodeVerdict};
use crate::provider::PollPolicy;

pub(super) struct Outcomes<'a> {
    pub(super) workflow: &'a NodeTargets,
    pub(super) verdicts: &'a [NodeVerdict],
    pub(super) resolved: &'a BTreeMap<TargetGroupArn, TargetGroup>,
    pub(super) notices: &'a mut Vec<Notice>,
    pub(super) drains: &'a mut Vec<DrainWait>,
    /// A deregistration in a group whose delay could not be looked up.
    pub(super) unknown_delay: bool,
}

impl Outcomes<'_> {
    pub(super) async fn report(&mut self, report: &Report<MembershipChange>) {
        let by_instance: HashMap<&str, &NodeVerdict> = self
            .verdicts
            .iter()
            .filter_map(|v| v.instance_id.as_ref().map(|i| (i.as_str(), v)))
            .collect();
        let node_of = |id: &str| by_instance.get(id).map(|v| v.node.clone());
        for outcome in &report.outcomes {
            match (&outcome.change, &outcome.status) {
                (MembershipChange::Register { group, targets }, Status::Done) => {
                    for r in targets {
                        tracing::info!(target = %r.target, group = %group.name(), "registered");
                        self.notices.push(Notice::Registered {
                            node: node_of(&r.target.id),
                            group: group.clone(),
                            target: r.target.clone(),
                        });
                    }
                }
                (MembershipChange::Deregister { group, targets }, Status::Done) => {
                    let absent = outcome
                        .already
                        .as_ref()
                        .map(MembershipChange::targets)
                        .unwrap_or_default();
                    let (absent, removed): (Vec<&Target>, Vec<&Target>) =
                        targets.iter().partition(|t| absent.contains(t));
                    let why_of = |t: &Target| {
                        by_instance
                            .get(&*t.id)
                            .map(|v| v.decision.to_string())
                            .unwrap_or_else(|| "node deleted".into())
                    };
                    for t in absent {
                        let why = why_of(t);
                        tracing::info!(target = %t, group = %group.name(), %why, "already absent; nothing deregistered");
                        self.notices.push(Notice::AlreadyAbsent {
                            node: node_of(&t.id),
                            group: group.clone(),
                            target: t.clone(),
                            why,
                        });
                    }
                    if removed.is_empty() {
                        continue;
                    }
                    let delay = self.delay_of(group).await;
                    let mut leaving = Vec::new();
                    for t in removed {
                        let why = why_of(t);
                        tracing::info!(target = %t, group = %group.name(), %why, "deregistered; draining");
                        self.notices.push(Notice::Deregistering {
                            node: node_of(&t.id),
                            group: group.clone(),
                            target: t.clone(),
                            why,
                            delay,
                        });
                        leaving.push((t.clone(), node_of(&t.id)));
                    }
                    self.follow(group, leaving, delay);
                }
                (change, Status::Failed(error)) => {
                    let nodes = match change {
                        MembershipChange::Register { .. } | MembershipChange::Deregister { .. } => {
                            change
                                .targets()
                                .iter()
                                .filter_map(|t| node_of(&t.id))
                                .collect()
                        }
                        MembershipChange::Forget { .. } => Vec::new(),
                    };
                    self.notices.push(Notice::ChangeFailed {
                        nodes,
                        change: change.clone(),
                        error: error.clone(),
                    });
                }
                _ => {}
            }
        }
    }

    /// The group's current deregistration delay, as the drain begins: the provider
    /// re-reads it only when its copy is older than its bound (a group only known from
    /// ownership, e.g. of a deleted node, is read too). If that fails, this pass's
    /// resolution's copy stands in; `None` when the group was not resolved either.
    async fn delay_of(&mut self, group: &TargetGroupArn) -> Option<Duration> {
        let provider = self.workflow.providers.target_groups.as_ref();
        let read = self
            .workflow
            .engine
            .caller()
            .call("DescribeTargetGroupAttributes", || {
                provider.deregistration_delay(group)
            })
            .await;
        match (read, self.resolved.get(group)) {
            (Ok(delay), _) => Some(delay),
            (Err(error), Some(g)) => {
                tracing::warn!(group = %group.name(), %error, delay = ?g.deregistration_delay, "deregistration delay not read again; the last one read is used");
                Some(g.deregistration_delay)
            }
            (Err(error), None) => {
                tracing::warn!(group = %group.name(), %error, "deregistration delay unknown; the drain is checked by the next passes");
                None
            }
        }
    }

    /// Follows the drain of `targets`: a wait for the delay, or the passes' checks.
    fn follow(
        &mut self,
        group: &TargetGroupArn,
        targets: Vec<(Target, Option<String>)>,
        delay: Option<Duration>,
    ) {
        let w = self.workflow;
        let Some(delay) = delay else {
            self.unknown_delay = true;
            w.draining.track(group, targets, false);
            return;
        };
        let fresh = w.draining.track(group, targets, true);
        if fresh.is_empty() {
            return;
        }
        let poll = PollPolicy {
            deadline: delay + w.settings.drain_poll.deadline,
            ..w.settings.drain_poll
        };
        self.drains.push(DrainWait {
            engine: w.engine.clone(),
            provider: w.providers.target_groups.clone(),
            poll,
            followed: Followed {
                draining: w.draining.clone(),
                group: group.clone(),
                targets: fresh,
                ended: false,
            },
        });
    }
}
