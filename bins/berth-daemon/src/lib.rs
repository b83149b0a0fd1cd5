//! berth-daemon: keeps every Kubernetes node's EC2 instance in its ALB/NLB target
//! groups, from Cast.ai node configurations and/or static rules, deregistering (and
//! waiting out the drain) when a node is cordoned, excluded, disrupted, long NotReady,
//! no longer matching or deleted. Node mode (DaemonSet) handles its own node; cluster
//! mode (Deployment) handles all nodes while it holds a Lease.
//!
//! The binary is wiring: the rules are in `berth_core::plan::desire_nodes`, the
//! planning in `berth_core::plan::plan_membership`, the apply in `berth_core::Engine`.
#![warn(missing_docs)]

pub mod events;
pub mod metrics;
pub mod reconcile;
pub mod resolve;
pub mod static_config;

/// Runs the daemon and returns the process exit code.
pub fn main_exit_code() -> i32 {
    0
}
