//! Notice mode's writes: berth-core's plan for the notice taints
//! (`plan_notice_taints`: add the taint of a pending notice, remove berth's own taint of
//! a notice IMDS shows not pending, nothing on an IMDS error) applied to its own Node
//! through `NodeTaints`, each change logged, counted and published as an Event on the
//! Node.

use berth_core::domain::Taint;
use berth_core::workflow::node_targets::{
    plan_notice_taints, InstanceNotice, NoticeState, NoticeStates,
};
use berth_kube::events::EventRecorder;
use berth_kube::taints::NodeTaints;

use crate::events::{NodeEvent, NodeEvents, Severity};
use crate::metrics::Metrics;

/// Writes the notice taints of one Node.
pub(crate) struct NodeNoticeTaints {
    pub(crate) taints: NodeTaints,
    /// `None` in a dry run (nothing published).
    pub(crate) events: Option<EventRecorder>,
    pub(crate) metrics: Metrics,
    pub(crate) node: String,
    pub(crate) dry_run: bool,
}

impl NodeNoticeTaints {
    /// Makes Node `self.node`'s notice taints what `states` says; whether it succeeded
    /// (one `get`, and one `patch` only if something changes; nothing at all while no
    /// notice could be read yet).
    pub(crate) async fn apply(&self, states: &NoticeStates) -> bool {
        if states.is_empty() {
            return true;
        }
        let node = self.node.as_str();
        let plan = |current: &[Taint]| plan_notice_taints(current, states);
        if self.dry_run {
            return match self.taints.current(node).await {
                Ok(current) => {
                    let change = plan(&current);
                    tracing::info!(node, notices = ?states, add = ?change.add, remove = ?change.remove, "dry run: the notice taints are not written");
                    true
                }
                Err(e) => {
                    tracing::warn!(node, error = %e, "could not read the node; retrying");
                    self.metrics
                        .error("kubernetes", &berth_core::Error::from(e));
                    false
                }
            };
        }
        match self.taints.change(node, plan).await {
            Ok(change) if change.is_empty() => {
                self.unchanged(states);
                true
            }
            Ok(change) => {
                for taint in &change.remove {
                    self.removed(taint).await;
                }
                for taint in &change.add {
                    self.added(taint).await;
                }
                true
            }
            Err(e) => {
                tracing::warn!(node, error = %e, "could not change the node's taints; retrying");
                self.metrics
                    .error("kubernetes", &berth_core::Error::from(e));
                false
            }
        }
    }

    /// Whether `current` (the Node's taints as just read) already is what `states`
    /// says; if so, logs it as [`NodeNoticeTaints::apply`] would.
    pub(crate) fn already(&self, current: &[Taint], states: &NoticeStates) -> bool {
        let done = !states.is_empty() && plan_notice_taints(current, states).is_empty();
        if done {
            self.unchanged(states);
        }
        done
    }

    fn unchanged(&self, states: &NoticeStates) {
        let node = self.node.as_str();
        if states.values().any(|s| *s == NoticeState::Pending) {
            tracing::info!(node, notices = ?states, "the node already carries the notice taints");
        } else {
            tracing::debug!(node, "no notice pending and no notice taint on the node");
        }
    }

    async fn added(&self, taint: &Taint) {
        self.metrics.notice_taint(&taint.key);
        let notice = notice_of(taint);
        tracing::warn!(
            node = %self.node,
            taint = %taint.key,
            effect = taint.effect.as_str(),
            "tainted the node: the cluster-mode leader deregisters it"
        );
        let message = format!(
            "IMDS announces a {notice}: tainted {}:{}; the cluster-mode leader deregisters \
             the node",
            taint.key,
            taint.effect.as_str()
        );
        self.publish("NoticeTaintAdded", "TaintNode", message).await;
    }

    async fn removed(&self, taint: &Taint) {
        self.metrics.notice_taint_removed(&taint.key);
        let notice = notice_of(taint);
        tracing::warn!(
            node = %self.node,
            taint = %taint.key,
            effect = taint.effect.as_str(),
            "removed berth's notice taint: IMDS shows no {notice}; the cluster-mode leader \
             registers the node again unless something else keeps it out"
        );
        let message = format!(
            "IMDS shows no {notice}: removed berth's taint {}:{}; the cluster-mode leader \
             registers the node again unless something else keeps it out",
            taint.key,
            taint.effect.as_str()
        );
        self.publish("NoticeTaintRemoved", "UntaintNode", message)
            .await;
    }

    async fn publish(&self, reason: &str, action: &str, message: String) {
        if let Some(events) = &self.events {
            let event = NodeEvent {
                node: self.node.clone(),
                severity: Severity::Normal,
                reason: reason.into(),
                action: action.into(),
                message,
            };
            NodeEvents::publish(events, event).await;
        }
    }
}

/// The notice a taint of the plan marks (the plan only names berth's notice keys).
fn notice_of(taint: &Taint) -> String {
    InstanceNotice::of_taint_key(&taint.key).map_or_else(|| taint.key.clone(), |n| n.to_string())
}
