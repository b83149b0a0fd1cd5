//! Where the daemon reports what it did to a node: Kubernetes Events in production, a
//! list in tests.

use std::sync::Mutex;

use async_trait::async_trait;
use berth_kube::events::{EventRecorder, EventType};

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
