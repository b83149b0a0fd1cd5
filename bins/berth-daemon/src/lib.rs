//! berth-daemon: keeps every Kubernetes node's EC2 instance in its ALB/NLB target
//! groups, from Cast.ai node configurations and/or static rules, deregistering (and
//! waiting out the drain) when a node is cordoned, excluded, disrupted, long NotReady,
//! no longer matching or deleted. Node mode (DaemonSet) handles its own node; cluster
//! mode (Deployment) handles all nodes while it holds a Lease; notice mode (a DaemonSet
//! beside cluster mode) only taints its own node on a spot interruption notice or a
//! rebalance recommendation, for the leader to act on.
//!
//! The binary is wiring: the pass (group sources, rules, plan, apply, drains, when to
//! run again) is berth-core's `workflow::NodeTargets`, whose notices [`reconcile`] turns
//! into Events and metrics; the process shell (logging, signals, exit codes, the admin server and its registry)
//! and the controller loop are berth-runtime's.
//!
//! - [`gc`]: `--gc-ip-targets`, removing the IP targets of crashed sidecars;
//! - [`iam_policy`]: `berth-daemon iam-policy`, the least-privilege IAM policy;
//! - [`notice`]: the IMDS poll for spot notices (node and notice mode), and notice mode,
//!   which adds and removes its Node's notice taints as IMDS says;
//! - [`wiring`]: production `main` — the command line into the real adapters;
//! - [`run`]: the daemon's controller with its dependencies injected, the entry point
//!   for embedding (a demo against a fake API server and in-memory providers).
#![warn(missing_docs)]

pub mod cli;
pub mod events;
pub mod gc;
pub mod iam_policy;
pub mod metrics;
pub mod notice;
mod notice_taints;
pub mod reconcile;
pub mod resolve;
pub mod run;
pub mod static_config;
mod triggers;
pub mod wiring;
