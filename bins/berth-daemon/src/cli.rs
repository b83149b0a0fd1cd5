//! Command line and environment. The seed's variables keep working: `CLUSTER_NAME`,
//! `AWS_REGION`, `CLUSTER_API_KEY`, `CLUSTER_ID`, `SLEEP_INTERVAL`, `DEBUG`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use berth_castai::ApiKey;
use berth_core::domain::{InstallationId, Mode as OwnerMode, Owner};
use berth_kube::leader::LeaseConfig;
use berth_runtime::{AwsArgs, LogArgs};
use clap::builder::BoolishValueParser;
use clap::{Parser, ValueEnum};

/// Which nodes this replica handles, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// DaemonSet, small clusters: its own node (`NODE_NAME`) and the IMDS spot
    /// interruption notice; every pod calls AWS each resync (one DescribeTargetHealth
    /// per group of its node) and keeps an ownership ConfigMap of its own.
    Node,
    /// Deployment: every node, while holding the Lease; one DescribeTargetHealth per
    /// group per resync, whatever the fleet.
    Cluster,
    /// DaemonSet beside `cluster`, for spot nodes: polls IMDS for a spot interruption
    /// notice or a rebalance recommendation and taints its own node (`NODE_NAME`) for
    /// the leader to deregister; no AWS call, no ConfigMap.
    Notice,
}

/// Keeps every node's EC2 instance in its ALB/NLB target groups.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "berth-daemon",
    version = berth_runtime::LONG_VERSION,
    about,
    after_help = "Deployment shapes: `--mode node` as a DaemonSet (small clusters: every pod \
                  calls AWS each resync); `--mode cluster` as a Deployment, plus `--mode notice` \
                  as a DaemonSet on spot nodes (the notice pods only poll IMDS and taint their \
                  node). See docs/daemon.md.\n\n\
                  `berth-daemon iam-policy [FLAGS] [--account-id ID]` prints the least-privilege \
                  IAM policy for these flags and exits (none for `--mode notice`)."
)]
pub struct Cli {
    /// `node` (DaemonSet, one node), `cluster` (leader-elected Deployment, all nodes) or
    /// `notice` (DaemonSet beside `cluster`: IMDS spot notices as node taints).
    #[arg(long, env = "BERTH_MODE", value_enum, default_value = "node")]
    pub mode: Mode,

    /// This node's name (node and notice mode; from the Downward API `spec.nodeName`).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,

    /// The cluster's name. Releases before installation ids owned their records as
    /// `berth-daemon/<cluster>`: those records are adopted.
    #[arg(long, env = "CLUSTER_NAME")]
    pub cluster_name: String,

    /// AWS region (else the standard chain).
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,

    /// Cast.ai cluster id; with the API key, enables Cast.ai node configurations.
    #[arg(long, env = "CLUSTER_ID")]
    pub cluster_id: Option<String>,

    /// Cast.ai API key (from a Secret). Never logged.
    #[arg(long = "castai-api-key", env = "CLUSTER_API_KEY", hide_env_values = true, value_parser = parse_api_key)]
    pub castai_api_key: Option<ApiKey>,

    /// Cast.ai API base URL.
    #[arg(long, env = "CASTAI_API_URL", default_value = berth_castai::DEFAULT_BASE_URL)]
    pub castai_api_url: String,

    /// Static rules (YAML) mapping node label selectors to target groups.
    #[arg(long, env = "BERTH_CONFIG")]
    pub config: Option<PathBuf>,

    /// Seconds between full resyncs (drift repair); node changes are acted on after
    /// --debounce, without waiting for one.
    #[arg(long = "sleep-interval", env = "SLEEP_INTERVAL", default_value_t = 300)]
    pub sleep_interval: u64,

    /// Debug logging: the same as `--log-level debug` when --log-level is not given.
    #[arg(long, env = "DEBUG", value_parser = BoolishValueParser::new(), default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub debug: bool,

    /// Print each plan and change nothing: no AWS writes, no ownership writes, no Events,
    /// no Lease (no replica campaigns), no taint (notice mode).
    #[arg(long, env = "BERTH_DRY_RUN", value_parser = BoolishValueParser::new(), default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub dry_run: bool,

    /// Run one pass (once the node list is in; notice mode: one IMDS poll) and exit: 0
    /// if everything was applied. Cluster mode does not campaign for the Lease then: the
    /// pass runs whether or not another replica leads.
    #[arg(long)]
    pub once: bool,

    /// Address for `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "BERTH_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Namespace of the ownership ConfigMap(s) and the Lease (the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "kube-system")]
    pub namespace: String,

    /// This replica's identity for leader election and Events (the pod name); default:
    /// `$HOSTNAME`.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// Name of the Lease (cluster mode).
    #[arg(long, env = "BERTH_LEASE_NAME", default_value = "berth-daemon")]
    pub lease_name: String,

    /// How long the Lease lasts without renewal (cluster mode; whole seconds, at least
    /// 5s): a replica takes over a crashed leader's Lease after this. The leader renews
    /// every 2/15 of it and steps down when it could not renew for 2/3 of it (at 15s,
    /// client-go's 2s and 10s).
    #[arg(long, env = "BERTH_LEASE_DURATION", value_parser = humantime::parse_duration, default_value = "15s")]
    pub lease_duration: Duration,

    /// Deregister cordoned nodes.
    #[arg(long, env = "BERTH_DEREGISTER_ON_CORDON", value_parser = BoolishValueParser::new(), default_value = "true", num_args = 0..=1, default_missing_value = "true")]
    pub deregister_on_cordon: bool,

    /// How long a node may be NotReady before it is deregistered.
    #[arg(long, env = "BERTH_NOT_READY_GRACE", value_parser = humantime::parse_duration, default_value = "5m")]
    pub not_ready_grace: Duration,

    /// How long to gather node changes before acting on them.
    #[arg(long, env = "BERTH_DEBOUNCE", value_parser = humantime::parse_duration, default_value = "200ms")]
    pub debounce: Duration,

    /// How often node and notice mode poll IMDS for a spot interruption notice (and
    /// notice mode for a rebalance recommendation).
    #[arg(long, env = "BERTH_SPOT_POLL", value_parser = humantime::parse_duration, default_value = "5s")]
    pub spot_poll: Duration,

    /// IMDS endpoint override (tests); default: `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else
    /// the standard one.
    #[arg(long, env = "BERTH_IMDS_ENDPOINT", hide = true)]
    pub imds_endpoint: Option<String>,

    /// Targets per RegisterTargets/DeregisterTargets call, 1 to 500. ELBv2 documents no
    /// per-call limit; 200 is what the AWS Load Balancer Controller sends, 500 is
    /// berth's own bound (larger calls are untested against ELBv2).
    #[arg(long, env = "BERTH_BATCH_SIZE", default_value_t = 200)]
    pub batch_size: usize,

    /// Cluster mode: remove from IP target groups the targets berth-sidecar recorded
    /// whose pod is gone (the sidecar died without deregistering), after --gc-grace.
    #[arg(long, env = "BERTH_GC_IP_TARGETS", value_parser = BoolishValueParser::new(), default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub gc_ip_targets: bool,

    /// How long a recorded pod must be gone before --gc-ip-targets removes its targets.
    #[arg(long, env = "BERTH_GC_GRACE", value_parser = humantime::parse_duration, default_value = "5m")]
    pub gc_grace: Duration,

    /// `--log-format text|json`, `--log-level` (berth-runtime's).
    #[command(flatten)]
    pub log: LogArgs,

    /// `--aws-max-rps`, `--installation-id` (berth-runtime's).
    #[command(flatten)]
    pub aws: AwsArgs,
}

impl Cli {
    /// Checks combinations clap cannot express; the message says what to set.
    pub fn validate(&self) -> Result<(), String> {
        let needs_node = matches!(self.mode, Mode::Node | Mode::Notice);
        if needs_node && self.node_name.as_deref().is_none_or(str::is_empty) {
            let mode = self
                .mode
                .to_possible_value()
                .map(|v| v.get_name().to_owned());
            return Err(format!(
                "--mode {} needs NODE_NAME (the Downward API's spec.nodeName)",
                mode.unwrap_or_default()
            ));
        }
        if self.cluster_name.trim().is_empty() {
            return Err("CLUSTER_NAME is empty".into());
        }
        if self.mode == Mode::Notice {
            // IMDS and its own Node only: no target group source, no AWS settings.
            return Ok(());
        }
        match (&self.cluster_id, &self.castai_api_key) {
            (Some(_), None) => return Err("CLUSTER_ID is set but CLUSTER_API_KEY is not".into()),
            (None, Some(_)) => return Err("CLUSTER_API_KEY is set but CLUSTER_ID is not".into()),
            _ => {}
        }
        if self.cluster_id.is_none() && self.config.is_none() {
            return Err(
                "no source of target groups: set CLUSTER_ID and CLUSTER_API_KEY (Cast.ai) and/or --config".into(),
            );
        }
        if self.sleep_interval == 0 {
            return Err("SLEEP_INTERVAL must be at least 1 second".into());
        }
        if let Err(e) = self.owner() {
            return Err(format!("--installation-id: {e}"));
        }
        if self.gc_ip_targets && self.mode != Mode::Cluster {
            return Err("--gc-ip-targets needs --mode cluster (the leader collects)".into());
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(format!(
                "--batch-size must be between 1 and {MAX_BATCH_SIZE}: ELBv2 documents no \
                 per-call limit on targets, so berth sets its own (the default, 200, is what \
                 the AWS Load Balancer Controller sends per call)"
            ));
        }
        validate_lease_duration(self.lease_duration)?;
        Ok(())
    }

    /// The log settings: `--log-level` if given, else `debug` with the seed's `DEBUG`,
    /// else `RUST_LOG`, else `info`.
    pub fn log_args(&self) -> LogArgs {
        let mut log = self.log.clone();
        if log.level.is_none() && self.debug {
            log.level = Some("debug".into());
        }
        log
    }

    /// The owner of the targets this daemon registers: `berth/<installation>/daemon`.
    pub fn owner(&self) -> Result<Owner, berth_core::Error> {
        let installation = InstallationId::new(&self.aws.installation_id)?;
        Ok(Owner::for_installation(&installation, OwnerMode::Daemon))
    }

    /// The owner ids of earlier releases, whose records are adopted:
    /// `berth-daemon/<cluster>`.
    pub fn previous_owners(&self) -> Vec<Owner> {
        Owner::new(format!("berth-daemon/{}", self.cluster_name.trim()))
            .into_iter()
            .collect()
    }
}

/// The most targets per RegisterTargets/DeregisterTargets call berth sends: ELBv2's
/// API reference gives no limit for `Targets.member.N`, so the bound is berth's own,
/// 2.5 times the 200 the AWS Load Balancer Controller sends.
const MAX_BATCH_SIZE: usize = 500;

/// A Lease the leader can keep renewing: at least [`LeaseConfig::MIN_LEASE_DURATION`],
/// and whole seconds, as `leaseDurationSeconds` stores it (other replicas read that).
fn validate_lease_duration(duration: Duration) -> Result<(), String> {
    let min = LeaseConfig::MIN_LEASE_DURATION;
    if duration < min {
        return Err(format!(
            "--lease-duration must be at least {}s: the leader renews every 2/15 of it and \
             steps down after 2/3 of it without renewal, so {} leaves no time for a slow \
             API server",
            min.as_secs(),
            humantime::format_duration(duration)
        ));
    }
    if duration.subsec_nanos() != 0 {
        return Err(format!(
            "--lease-duration must be whole seconds (the Lease's leaseDurationSeconds), not {}",
            humantime::format_duration(duration)
        ));
    }
    if i32::try_from(duration.as_secs()).is_err() {
        return Err(
            "--lease-duration does not fit the Lease's leaseDurationSeconds (int32)".into(),
        );
    }
    Ok(())
}

/// The key is wrapped at once, so `Debug` of the whole command line shows `***`.
fn parse_api_key(text: &str) -> Result<ApiKey, String> {
    ApiKey::new(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("berth-daemon").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn seed_variables_and_defaults() {
        let cli = parse(&[
            "--cluster-name",
            "prod",
            "--cluster-id",
            "c",
            "--castai-api-key",
            "k",
            "--node-name",
            "n",
        ]);
        assert_eq!(cli.sleep_interval, 300);
        assert!(cli.deregister_on_cordon);
        assert!(!cli.debug);
        assert_eq!(cli.mode, Mode::Node);
        cli.validate().unwrap();
        assert_eq!(cli.owner().unwrap().as_str(), "berth/default/daemon");
        assert_eq!(
            cli.previous_owners(),
            vec![Owner::new("berth-daemon/prod").unwrap()]
        );
        let cli = parse(&[
            "--cluster-name",
            "prod",
            "--config",
            "c",
            "--mode",
            "cluster",
            "--installation-id",
            "eu-1",
        ]);
        assert_eq!(cli.owner().unwrap().as_str(), "berth/eu-1/daemon");
        let cli = parse(&[
            "--cluster-name",
            "p",
            "--config",
            "c",
            "--mode",
            "cluster",
            "--installation-id",
            "a/b",
        ]);
        assert!(cli.validate().unwrap_err().contains("--installation-id"));
    }

    #[test]
    fn validation_names_what_is_missing() {
        let cli = parse(&["--cluster-name", "prod", "--config", "x.yaml"]);
        assert!(cli.validate().unwrap_err().contains("NODE_NAME"));
        let cli = parse(&["--cluster-name", "prod", "--mode", "cluster"]);
        assert!(cli.validate().unwrap_err().contains("--config"));
        let cli = parse(&[
            "--cluster-name",
            "prod",
            "--mode",
            "cluster",
            "--cluster-id",
            "c",
        ]);
        assert!(cli.validate().unwrap_err().contains("CLUSTER_API_KEY"));
        // Notice mode needs its node, and no source of target groups.
        let cli = parse(&["--cluster-name", "prod", "--mode", "notice"]);
        assert!(cli
            .validate()
            .unwrap_err()
            .contains("--mode notice needs NODE_NAME"));
        let cli = parse(&[
            "--cluster-name",
            "p",
            "--mode",
            "notice",
            "--node-name",
            "n",
        ]);
        cli.validate().unwrap();
        let cli = parse(&[
            "--cluster-name",
            "p",
            "--mode",
            "cluster",
            "--config",
            "c",
            "--debug",
            "--deregister-on-cordon",
            "false",
        ]);
        assert!(cli.debug);
        assert!(!cli.deregister_on_cordon);
    }

    fn cluster(extra: &[&str]) -> Cli {
        let base = ["--cluster-name", "p", "--mode", "cluster", "--config", "c"];
        parse(&[&base[..], extra].concat())
    }

    #[test]
    fn batch_size_is_bounded_by_berth_not_by_a_claimed_elbv2_limit() {
        assert_eq!(cluster(&[]).batch_size, 200);
        cluster(&["--batch-size", "1"]).validate().unwrap();
        cluster(&["--batch-size", "500"]).validate().unwrap();
        for size in ["0", "501"] {
            let e = cluster(&["--batch-size", size]).validate().unwrap_err();
            assert!(e.contains("between 1 and 500"), "{e}");
            assert!(e.contains("ELBv2 documents no per-call limit"), "{e}");
            assert!(!e.contains("ELBv2 limit"), "{e}");
        }
    }

    #[test]
    fn lease_duration_defaults_to_15s_and_rejects_what_cannot_be_renewed() {
        assert_eq!(cluster(&[]).lease_duration, Duration::from_secs(15));
        let cli = cluster(&["--lease-duration", "1m"]);
        cli.validate().unwrap();
        assert_eq!(cli.lease_duration, Duration::from_secs(60));
        cluster(&["--lease-duration", "5s"]).validate().unwrap();
        for short in ["4s", "4999ms", "0s"] {
            let e = cluster(&["--lease-duration", short])
                .validate()
                .unwrap_err();
            assert!(e.starts_with("--lease-duration must be at least 5s"), "{e}");
        }
        let e = cluster(&["--lease-duration", "7500ms"])
            .validate()
            .unwrap_err();
        assert!(e.contains("whole seconds"), "{e}");
        let e = cluster(&["--lease-duration", "100years"])
            .validate()
            .unwrap_err();
        assert!(e.contains("int32"), "{e}");
        assert!(Cli::try_parse_from([
            "berth-daemon",
            "--cluster-name",
            "p",
            "--lease-duration",
            "soon"
        ])
        .is_err());
    }

    #[test]
    fn the_api_key_never_shows_in_debug_output() {
        let cli = parse(&[
            "--cluster-name",
            "p",
            "--cluster-id",
            "c",
            "--castai-api-key",
            "s3cr3t-key",
        ]);
        assert_eq!(cli.castai_api_key.as_ref().unwrap().expose(), "s3cr3t-key");
        assert!(!format!("{cli:?}").contains("s3cr3t"), "{cli:?}");
    }
}
