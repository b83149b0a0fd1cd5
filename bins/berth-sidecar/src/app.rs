//! Wiring: AWS adapter → metrics and admin server (berth-runtime's) → runner.

use std::sync::Arc;
use std::time::Duration;

use berth_aws::config::{load_sdk_config, AwsOptions};
use berth_aws::elbv2::ElbTargetGroups;
use berth_aws::CallCounter;
use berth_core::provider::TargetGroups;
use berth_runtime::{ExitStatus, Failure, Process};

use crate::args::Config;
use crate::metrics::Metrics;
use crate::record;
use crate::runner::{Runner, Settings};
use crate::status::Status;

/// First and longest delay between two `DescribeTargetHealth` polls of one group.
const POLL: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(5));

/// Runs the sidecar in `process`; returns the exit code.
pub(crate) async fn run(config: Config, mut process: Process) -> Result<ExitStatus, Failure> {
    // berth-runtime installed the handlers before this runs: a SIGTERM from here on
    // reaches the runner (which deregisters if it registered) or, while the AWS
    // configuration loads (it may wait on IMDS), ends the run before anything is
    // registered. Either way the exit is clean.
    let signals = process
        .take_signals()
        .ok_or("the signal handlers deliver no signals")?;
    let aws = AwsOptions::default();
    let sdk = tokio::select! {
        sdk = load_sdk_config(&aws) => sdk,
        () = process.shutdown.cancelled() => {
            tracing::info!("signal received while starting; nothing was registered");
            return Ok(ExitStatus::SUCCESS);
        }
    };
    let counter = CallCounter::new();
    let provider: Arc<dyn TargetGroups> = Arc::new(ElbTargetGroups::new(&sdk, counter.clone()));
    let metrics = Metrics::register(&process.metrics, counter);
    let status = Arc::new(Status::with_readiness(metrics, process.readiness.clone()));
    let mut runner = Runner::new(provider, settings(&config), status)
        .min_call_interval(config.min_call_interval);
    let pod = record::pod_identity(config.record_registration, |name| std::env::var(name).ok())
        .map_err(Failure::usage)?;
    if let (Some(pod), false) = (&pod, config.dry_run) {
        // Before the admin server and any registration: no record, no registration.
        runner = runner.record_in(record::store(pod, &config.installation_id).await?);
    }
    if config.dry_run {
        print!("{}", runner.dry_run().await?);
        return Ok(ExitStatus::SUCCESS);
    }
    // Listening before registering: a taken port fails before anything is registered.
    process.serve_admin(config.listen).await?;
    tracing::info!(
        target_id = %config.target_id,
        installation_id = %config.installation_id,
        "berth-sidecar started"
    );
    let finish = runner.run(signals).await;
    match finish.error {
        None => Ok(ExitStatus::new(finish.code)),
        Some(error) => Err(Failure::with_status(
            ExitStatus::new(finish.code.max(1)),
            error,
        )),
    }
}

fn settings(config: &Config) -> Settings {
    Settings {
        groups: config.groups.clone(),
        target_id: config.target_id.clone(),
        port: config.port,
        availability_zone: config.availability_zone.clone(),
        pre_register: config.pre_register.clone(),
        post_deregister: config.post_deregister.clone(),
        wait_in_service: config.wait_in_service,
        drain_timeout: config.drain_timeout,
        poll: POLL,
    }
}
