//! berth-kube: berth's Kubernetes adapters, over kube-rs. No policy lives here: the
//! rules about when a node is registered or deregistered are in berth-core.
//!
//! - [`node_from_k8s`]: a `core/v1` Node as a [`berth_core::domain::Node`];
//! - [`watch::watch_nodes`]: a stream of node changes (all nodes, or one by name),
//!   with a cache of berth `Node`s (only the labels the decision reads, if asked);
//! - [`leader::LeaderElector`]: leader election over a `coordination.k8s.io/v1` Lease;
//! - [`events::EventRecorder`]: Events on Nodes (`kubectl describe node` shows them);
//! - [`taints::NodeTaints`]: adds taints to a Node (notice mode's spot rule), never
//!   removing one and never losing a concurrent writer's;
//! - [`ownership::ConfigMapOwnership`]: [`berth_core::provider::TargetOwnership`] kept
//!   in a ConfigMap, so ownership survives restarts and leader changes;
//! - [`sidecar_records`]: berth-sidecar's per-pod registration records (ConfigMaps),
//!   and [`pods::watch_pods`]: the live pods, for IP target GC.
//!
//! With the `test-util` feature, `fake::FakeApiServer` is a loopback API server that
//! speaks real list/watch to a real `kube::Client`.
#![warn(missing_docs)]

mod error;
pub mod events;
#[cfg(feature = "test-util")]
pub mod fake;
pub mod leader;
mod node;
pub mod ownership;
pub mod pods;
pub mod sidecar_records;
pub mod taints;
pub mod watch;

pub use error::Error;
pub use node::node_from_k8s;
