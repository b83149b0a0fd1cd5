//! berth-castai: the Cast.ai API client berth-daemon reads node configurations with.
//!
//! [`CastAiClient`] implements [`berth_core::provider::NodeConfigurations`]: it fetches
//! `GET {base}/v1/kubernetes/clusters/{clusterId}/node-configurations/{id}` with the
//! `X-API-Key` header, reads both `eks.targetGroups[]` and the legacy single
//! `eks.targetGroup`, and caches each configuration. When Cast.ai is down, slow or
//! throttling, it serves the last known configuration and backs off; with nothing
//! cached it fails with a *retryable* error — never with an empty list, because an
//! outage must never look like "this node belongs in no group".
//!
//! With the `test-util` feature, `fake::FakeCastAi` serves node configurations on
//! loopback the way the real API does, with scripted faults.
#![warn(missing_docs)]

mod client;
mod config;
mod error;
#[cfg(feature = "test-util")]
pub mod fake;
mod model;

pub use client::CastAiClient;
pub use config::{ApiKey, CastAiConfig, DEFAULT_BASE_URL};
pub use error::Error;
pub use model::{parse_node_configuration, NodeConfiguration, NODE_CONFIGURATION_LABEL};
