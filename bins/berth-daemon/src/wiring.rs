//! Production wiring: the command line into the real adapters (Kubernetes client,
//! ELBv2, Cast.ai, the ownership ConfigMap, IMDS in node mode), then the daemon's
//! controller ([`crate::run::run`]) in berth-runtime's process shell. Notice mode
//! needs only Kubernetes and IMDS ([`crate::notice::run`]): no AWS SDK is set up.
//!
//! Kubernetes comes first: without it the daemon can do nothing, and a missing
//! kubeconfig must be one clear error line, printed before anything probes AWS or IMDS.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use berth_aws::config::{load_sdk_config, AwsOptions};
use berth_aws::elbv2::ElbTargetGroups;
use berth_aws::imds::Imds;
use berth_aws::CallCounter;
use berth_castai::{CastAiClient, CastAiConfig};
use berth_core::domain::{InstallationId, InstanceId};
use berth_core::engine::ApplyOptions;
use berth_core::plan::NodeRules;
use berth_core::provider::NodeConfigurations;
use berth_core::workflow::node_targets::InstanceNotice;
use berth_kube::leader::LeaseConfig;
use berth_runtime::controller::Stopped;
use berth_runtime::{ExitStatus, Failure, Process};

use crate::cli::{Cli, Mode};
use crate::gc::GcSettings;
use crate::notice::{self, NoticeSettings};
use crate::run::{self, Dependencies, Settings};
use crate::static_config::StaticConfig;

/// Runs the daemon as the command line says, until SIGTERM/SIGINT (0) or after one pass
/// with `--once` (0 if everything was applied, else 1).
pub async fn run(cli: Cli, process: Process) -> Result<ExitStatus, Failure> {
    cli.validate().map_err(Failure::usage)?;
    let rules = match &cli.config {
        Some(path) => StaticConfig::load(path).map_err(Failure::usage)?,
        None => StaticConfig::default(),
    };
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes configuration (in-cluster, or KUBECONFIG / ~/.kube/config)")?;
    let bound = process
        .serve_admin(cli.listen)
        .await
        .with_context(|| format!("serving /healthz, /readyz and /metrics on {}", cli.listen))?;
    if cli.mode == Mode::Notice {
        tracing::info!(listen = %bound, "admin server up");
        let settings = NoticeSettings {
            node_name: cli.node_name.clone().unwrap_or_default(),
            every: cli.spot_poll,
            once: cli.once,
            dry_run: cli.dry_run,
            pod_name: cli.pod_name.clone(),
        };
        return notice::run(client, imds(&cli)?, settings, &process).await;
    }

    let calls = CallCounter::new();
    process.metrics.register_aws_calls(calls.clone());
    process
        .metrics
        .register_aws_calls_by_operation("berth_daemon", calls.clone());
    let sdk = load_sdk_config(&AwsOptions {
        region: cli.region.clone(),
        ..AwsOptions::default()
    })
    .await;
    let target_groups = Arc::new(ElbTargetGroups::new(&sdk, calls.clone()));
    let node_configurations: Option<Arc<dyn NodeConfigurations>> =
        match (&cli.cluster_id, &cli.castai_api_key) {
            (Some(id), Some(key)) => {
                let mut config = CastAiConfig::new(id.trim(), key.clone());
                config.base_url = cli.castai_api_url.clone();
                Some(Arc::new(
                    CastAiClient::new(config).context("Cast.ai client")?,
                ))
            }
            _ => None,
        };
    let (own_instance, spot_notice) = match cli.mode {
        Mode::Cluster | Mode::Notice => (None, None),
        Mode::Node => {
            let imds = imds(&cli)?;
            let instance = own_instance(&imds).await;
            let spot = (!cli.once).then(|| {
                let watching = [InstanceNotice::SpotInterruption].into();
                notice::spawn_watch(imds, watching, cli.spot_poll, process.shutdown.clone())
            });
            (instance, spot)
        }
    };
    let settings = settings(&cli, rules, own_instance)?;
    tracing::info!(listen = %bound, owner = %settings.owner, "admin server up");
    let ownership = Arc::new(run::config_map_store(&client, &settings));
    if !settings.dry_run() {
        // Records of the owner ids of earlier releases are moved under this one now
        // (they are read as ours anyway, so a failure here only postpones it).
        if let Err(e) = ownership.adopt().await {
            tracing::warn!(error = %e, "could not move earlier owners' records yet");
        }
    }
    let dependencies = Dependencies {
        ownership,
        client,
        target_groups,
        node_configurations,
        spot_notice,
    };
    let stopped = run::run(dependencies, settings, &process).await?;
    tracing::info!(aws_calls = ?calls.snapshot(), "AWS calls made");
    Ok(match stopped {
        Stopped::Cancelled | Stopped::Once { converged: true } => ExitStatus::SUCCESS,
        Stopped::Once { converged: false } => ExitStatus::FAILURE,
    })
}

/// The controller's settings from the command line.
pub fn settings(
    cli: &Cli,
    rules: StaticConfig,
    own_instance: Option<InstanceId>,
) -> Result<Settings, Failure> {
    let identity = cli
        .pod_name
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("berth-daemon-{}", std::process::id()));
    let elected = cli.mode == Mode::Cluster && !cli.once && !cli.dry_run;
    Ok(Settings {
        mode: cli.mode,
        node_name: cli.node_name.clone(),
        own_instance,
        rules,
        node_rules: NodeRules {
            deregister_on_cordon: cli.deregister_on_cordon,
            not_ready_grace: cli.not_ready_grace,
            ..NodeRules::default()
        },
        apply: ApplyOptions {
            dry_run: cli.dry_run,
            target_batch_size: cli.batch_size,
            min_call_interval: cli.aws.min_call_interval(),
            ..ApplyOptions::default()
        },
        resync: Duration::from_secs(cli.sleep_interval),
        debounce: cli.debounce,
        once: cli.once,
        namespace: cli.namespace.clone(),
        election: elected.then(|| {
            LeaseConfig::new(&cli.namespace, &cli.lease_name, &identity)
                .with_lease_duration(cli.lease_duration)
        }),
        identity,
        owner: cli.owner().map_err(Failure::usage)?,
        previous_owners: cli.previous_owners(),
        gc: cli.gc_ip_targets.then(|| gc_settings(cli)).transpose()?,
    })
}

/// `--gc-ip-targets`' settings: the sidecars of this installation, after `--gc-grace`.
fn gc_settings(cli: &Cli) -> Result<GcSettings, Failure> {
    let installation = InstallationId::new(&cli.aws.installation_id).map_err(Failure::usage)?;
    Ok(GcSettings::new(&installation, cli.gc_grace))
}

/// The instance id from IMDS, so node mode keeps its scope if the Node object goes.
async fn own_instance(imds: &Imds) -> Option<InstanceId> {
    match tokio::time::timeout(Duration::from_secs(3), imds.identity()).await {
        Ok(Ok(identity)) => Some(identity.instance_id),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "IMDS identity unavailable; using the Node's providerID only");
            None
        }
        Err(_) => {
            tracing::warn!("IMDS identity timed out; using the Node's providerID only");
            None
        }
    }
}

/// The IMDSv2 client: `--imds-endpoint`, else `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else
/// the instance's own.
fn imds(cli: &Cli) -> Result<Imds, Failure> {
    match &cli.imds_endpoint {
        Some(url) => Imds::with_endpoint(url).map_err(Failure::usage),
        None => Ok(Imds::new()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn the_lease_duration_reaches_the_election_settings() {
        let cli = Cli::try_parse_from([
            "berth-daemon",
            "--cluster-name=p",
            "--mode=cluster",
            "--config=c",
            "--pod-name=pod-a",
            "--lease-duration=30s",
        ])
        .unwrap();
        let lease = settings(&cli, StaticConfig::default(), None)
            .unwrap()
            .election
            .expect("cluster mode campaigns");
        assert_eq!(lease.identity, "pod-a");
        assert_eq!(lease.lease_duration, Duration::from_secs(30));
        assert_eq!(lease.renew_deadline, Duration::from_secs(20));
        assert_eq!(lease.retry_period, Duration::from_secs(4));
    }
}
