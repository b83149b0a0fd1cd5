//! berth-aws: berth-core's provider traits over the official AWS SDK for Rust.
//!
//! One cargo feature per service, so each binary links only what it needs:
//!
//! | feature       | module          | implements                                  |
//! |---------------|-----------------|---------------------------------------------|
//! | `elbv2`       | `elbv2`         | `TargetGroups`                              |
//! | `ec2`         | `ec2`           | `Instances`, `Addresses`                    |
//! | `route53`     | `route53`       | `DnsZones`                                  |
//! | `dynamodb`    | `dynamodb`      | `Ledger`                                    |
//! | `autoscaling` | `autoscaling`   | instances of an Auto Scaling group          |
//! | `imds`        | `imds`          | instance identity, spot interruption notice |
//! | `acmpca`      | `acmpca`        | node certificates from ACM Private CA       |
//!
//! Every adapter is built from one [`aws_config::SdkConfig`] (see
//! [`config::load_sdk_config`]) and a [`CallCounter`] that counts the calls per
//! operation; every adapter maps the SDK's errors into [`berth_core::Error`] with
//! [`error::from_sdk`], so the engine alone decides what is retried.
#![warn(missing_docs)]

pub mod config;
pub mod counter;
pub mod error;
pub mod iam;

#[cfg(feature = "acmpca")]
pub mod acmpca;
#[cfg(feature = "autoscaling")]
pub mod autoscaling;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "ec2")]
pub mod ec2;
#[cfg(feature = "elbv2")]
pub mod elbv2;
#[cfg(feature = "imds")]
pub mod imds;
#[cfg(feature = "route53")]
pub mod route53;

pub use counter::CallCounter;
