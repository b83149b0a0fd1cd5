//! Test harness for berth's AWS adapters and end-to-end tests (dev-only).
//!
//! - [`MotoServer`]: one real `moto_server` (the AWS emulator from PyPI) per
//!   test binary, on a free loopback port, reset between tests.
//! - [`FaultProxy`]: an HTTP/1.1 reverse proxy placed between an SDK client
//!   (or a child process) and moto that injects throttling, 5xx answers,
//!   connection resets, latency and canned answers, and counts the calls per
//!   AWS operation.
//! - [`etcd::EtcdProcesses`]: real `etcd` 3.4 members on loopback addresses, each
//!   with its data dir, stopped with SIGTERM then SIGKILL.
//! - [`imds::FakeImds`]: an IMDSv2-only instance metadata service (identity,
//!   spot interruption notice) on a loopback port.
//! - [`iam::enforce_printed_policy`]: the policy a binary prints, enforced on a
//!   [`FaultProxy`] as IAM would.
//! - [`hostile`]: arbitrary and one-field-changed inputs for the parsers' property tests.
//! - [`golden::assert_file`]: a committed generated file must equal what generates it.
//! - [`aws_env`] and [`sdk_config`]: point a child process or an SDK client at
//!   an endpoint with static test credentials.
//!
//! ```no_run
//! use berth_testing::{sdk_config, FaultProxy, Fault, MotoServer, Rule};
//!
//! # async fn example() {
//! let moto = MotoServer::isolated().await; // serialised with other tests, moto reset
//! let proxy = FaultProxy::start(&moto.endpoint()).await;
//! proxy.add(Rule::new("DescribeTargetHealth", Fault::Throttle).times(2));
//! let config = sdk_config(&proxy.endpoint());
//! // ... build an SDK client from `config`, call the adapter ...
//! assert_eq!(proxy.count("DescribeTargetHealth"), 3);
//! # }
//! ```

mod aws;
mod background;
pub mod etcd;
pub mod golden;
pub mod hostile;
pub mod iam;
pub mod imds;
mod lambda_runtime_api;
mod moto;
mod proxy;

pub use aws::{aws_env, sdk_config, TEST_REGION};
pub use lambda_runtime_api::{InvocationResult, LambdaRuntimeApi};
pub use moto::{MotoGuard, MotoServer};
pub use proxy::{Fault, FaultProxy, Match, Rule, RuleId};
