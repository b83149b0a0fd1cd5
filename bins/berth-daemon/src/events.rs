//! Where the daemon reports what it did to a node: Kubernetes Events in production, a
//! list in tests; and the translation of the workflow's notices into Events and
//! metrics (the only thing the daemon decides about them is their presentation).

use std::sync::Mutex;

use async_trait::async_trait;
use berth_core::plan::MembershipChange;
use berth_core::workflow::node_targets::{Notice, Source};
use berth_kube::events::{EventRecorder, EventType};

use crate::metrics::Metrics;

/// Normal or Warning, as Kubernetes Events have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Something berth did.
    Normal,
    /// Something that needs a person.
    Warning,
}

/// One reported event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEvent {
    /// The node.
    pub node: String,
    /// Normal or Warning.
    pub severity: Severity,
    /// Short PascalCase reason (`Registered`, `Deregistered`, `Skipped`...).
    pub reason: String,
    /// The action (`RegisterTargets`, `Reconcile`...).
    pub action: String,
    /// The details.
    pub message: String,
}

/// A sink of node events. Publishing never fails the caller: a lost Event is logged.
#[async_trait]
pub trait NodeEvents: Send + Sync {
    /// Publishes one event.
    async fn publish(&self, event: NodeEvent);
}

#[async_trait]
impl NodeEvents for EventRecorder {
    async fn publish(&self, event: NodeEvent) {
        let kind = match event.severity {
            Severity::Normal => EventType::Normal,
            Severity::Warning => EventType::Warning,
        };
        let result = EventRecorder::publish(
            self,
            &event.node,
            kind,
            &event.reason,
            &event.action,
            &event.message,
        )
        .await;
        if let Err(e) = result {
            tracing::warn!(node = %event.node, reason = %event.reason, error = %e, "could not publish a Kubernetes Event");
        }
    }
}

/// Events kept in memory (tests, and `--dry-run` where nothing is published).
#[derive(Default)]
pub struct RecordedEvents {
    events: Mutex<Vec<NodeEvent>>,
}

impl RecordedEvents {
    /// Everything published so far.
    pub fn all(&self) -> Vec<NodeEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[async_trait]
impl NodeEvents for RecordedEvents {
    async fn publish(&self, event: NodeEvent) {
        tracing::info!(node = %event.node, reason = %event.reason, "{}", event.message);
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
    }
}

/// Counts `notice` in the metrics and returns the Events it becomes (none for a node
/// that is gone, or for what only metrics and logs carry).
pub fn translate(notice: &Notice, metrics: &Metrics) -> Vec<NodeEvent> {
    use Severity::{Normal, Warning};
    if let Some((source, error)) = notice.failure() {
        let kind = match source {
            Source::NodeConfigurations => "castai",
            Source::TargetGroups => "aws",
        };
        metrics.error(kind, error);
    }
    let event = |node: &str, severity, reason: &str, action: &str| NodeEvent {
        node: node.to_owned(),
        severity,
        reason: reason.into(),
        action: action.into(),
        message: notice.to_string(),
    };
    let on = |node: &Option<String>, severity, reason: &str, action: &str| {
        node.iter()
            .map(|n| event(n, severity, reason, action))
            .collect::<Vec<_>>()
    };
    match notice {
        Notice::Registered { node, .. } => {
            metrics.registrations.inc();
            on(node, Normal, "Registered", "RegisterTargets")
        }
        Notice::Deregistering { node, .. } => {
            metrics.deregistrations.inc();
            on(node, Normal, "Deregistering", "DeregisterTargets")
        }
        Notice::AlreadyAbsent { node, .. } => {
            metrics.deregistrations_already_absent.inc();
            on(node, Normal, "AlreadyAbsent", "DeregisterTargets")
        }
        Notice::Drained { node, .. } => {
            metrics.drained.inc();
            on(node, Normal, "Deregistered", "DeregisterTargets")
        }
        Notice::DrainNotConfirmed { node, .. } => {
            on(node, Warning, "DrainNotConfirmed", "DeregisterTargets")
        }
        Notice::ChangeFailed { nodes, change, .. } => {
            let (reason, action) = match change {
                MembershipChange::Register { .. } => ("RegistrationFailed", "RegisterTargets"),
                MembershipChange::Deregister { .. } => {
                    ("DeregistrationFailed", "DeregisterTargets")
                }
                MembershipChange::Forget { .. } => ("OwnershipUpdateFailed", "UpdateOwnership"),
            };
            nodes
                .iter()
                .map(|n| event(n, Warning, reason, action))
                .collect()
        }
        Notice::Held { node, .. } => vec![event(node, Warning, "Held", "Reconcile")],
        Notice::Skipped { node, .. } => vec![event(node, Normal, "Skipped", "Reconcile")],
        Notice::GroupSkipped { node, .. } => {
            vec![event(node, Warning, "GroupSkipped", "Reconcile")]
        }
        other if other.failure().is_some() => {
            tracing::warn!("{other}");
            Vec::new()
        }
        other => {
            tracing::info!("{other}");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use berth_core::domain::{Target, TargetGroupArn};

    use super::*;

    #[test]
    fn an_already_absent_target_is_its_own_event_and_count_not_a_deregistration() {
        let metrics = Metrics::new();
        let group = TargetGroupArn::new(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
        )
        .unwrap();
        let notice = Notice::AlreadyAbsent {
            node: Some("node-1".into()),
            group,
            target: Target::new("i-0123", 80),
            why: "leave: cordoned".into(),
        };

        let events = translate(&notice, &metrics);

        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, "AlreadyAbsent");
        assert_eq!(events[0].severity, Severity::Normal);
        assert_eq!(events[0].action, "DeregisterTargets");
        assert!(
            events[0]
                .message
                .contains("already absent from target group web"),
            "{}",
            events[0].message
        );
        let text = metrics.render();
        assert!(
            text.contains("berth_daemon_deregistrations_already_absent_total 1"),
            "{text}"
        );
        assert!(
            text.contains("berth_daemon_deregistrations_total 0"),
            "{text}"
        );
    }
}
