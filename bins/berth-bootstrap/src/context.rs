//! What the binary hands the etcd module (`crate::etcd::run`): the parsed settings,
//! who this instance is, the AWS configuration to build providers from, the node's
//! TLS files, the engine's caller, the step, the dry-run flag and the run's deadline.

use std::path::{Path, PathBuf};

use berth_core::engine::Caller;
use tokio::time::Instant;

use crate::config::EtcdSettings;
use crate::identity::{Aws, NodeIdentity};

/// The etcd module's input.
#[derive(Debug, Clone, Copy)]
pub struct EtcdRun<'a> {
    /// `etcd:` from the configuration, validated.
    pub settings: &'a EtcdSettings,
    /// Instance id (the member name), private IP, region, Auto Scaling group (from the
    /// instance's `aws:autoscaling:groupName` tag; `settings.auto_scaling_group`
    /// overrides it).
    pub identity: &'a NodeIdentity,
    /// The shared SDK configuration and call counter: build berth-aws adapters
    /// (`AutoScaling`, `Ec2Instances`, DynamoDB) from it so calls are counted.
    pub aws: &'a Aws,
    /// The node certificate, its key and the CA certificate, when the certificates
    /// module is configured (for the TLS variables of an `https` schema).
    pub tls: Option<&'a TlsFiles>,
    /// The run's caller: every provider call of the workflow goes through it.
    pub caller: &'a Caller,
    /// Boot (membership and drop-in) or promote this node's learner.
    pub step: EtcdStep,
    /// Change nothing; report what would be done.
    pub dry_run: bool,
    /// The whole run must be over by then: waits end here (then fail, exit 1).
    pub deadline: Instant,
    /// `base.chroot_path` (or `/`): paths berth writes under it are named in the
    /// drop-in as the host's etcd sees them, without it.
    pub root: &'a Path,
}

/// What the etcd module does in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdStep {
    /// Before etcd starts: membership, then the drop-in (`run`, `plan`).
    Boot,
    /// After etcd started: promote this node's learner once in sync
    /// (`promote-learner`).
    PromoteLearner,
}

/// Where the certificates module keeps the node's TLS material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate (PEM).
    pub ca_file: PathBuf,
    /// The node certificate (PEM).
    pub cert_file: PathBuf,
    /// The node's private key (PEM, 0600).
    pub key_file: PathBuf,
}
