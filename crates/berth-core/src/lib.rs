//! berth-core: the domain, the provider traits and the reconciliation engine of berth.
//!
//! berth binds Kubernetes-on-AWS nodes and pods to what they need — target-group
//! slots, Elastic IPs, DNS names — and releases it when they go. Every mode runs the
//! same four steps:
//!
//! 1. **observe** actual state through the [`provider`] traits;
//! 2. **desire** what should be (built by the caller from its own inputs);
//! 3. **plan**, a pure function `(desired, observed) -> Plan` in [`plan`];
//! 4. **apply** the plan through the traits with the [`engine`].
//!
//! This crate does no I/O and depends on no AWS, Kubernetes or HTTP crate; adapters
//! live in other crates. With the `test-util` feature it exports mockall mocks and
//! in-memory providers ([`memory`]) that behave like the real services.
#![warn(missing_docs)]

pub mod domain;
pub mod engine;
pub mod error;
#[cfg(feature = "test-util")]
pub mod memory;
pub mod plan;
pub mod provider;
pub mod workflow;

pub use error::{Error, Result};
