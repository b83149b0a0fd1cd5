//! Wiring: command line → logging → AWS adapter → HTTP endpoints → runner.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use berth_aws::config::{load_sdk_config, AwsOptions};
use berth_aws::elbv2::ElbTargetGroups;
use berth_aws::CallCounter;
use berth_core::provider::TargetGroups;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::args::{self, Config, Parsed};
use crate::http::{self, Status};
use crate::logging;
use crate::metrics::{CallSource, Metrics};
use crate::runner::{Runner, Settings};

/// How a run fails.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad command line: this one line, exit 2.
    Usage(String),
    /// Anything else, with the exit code to use.
    Run {
        /// Non-zero exit code.
        code: u8,
        /// What went wrong.
        error: anyhow::Error,
    },
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Run { code: 1, error }
    }
}

/// First and longest delay between two `DescribeTargetHealth` polls of one group.
const POLL: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(5));

/// Parses the command line and runs the sidecar; returns the exit code.
pub(crate) fn run() -> Result<u8, Failure> {
    let parsed =
        args::parse(std::env::args_os(), std::env::var("POD_IP").ok()).map_err(Failure::Usage)?;
    let config = match parsed {
        Parsed::Print(text) => {
            print!("{text}");
            return Ok(0);
        }
        Parsed::Run(config) => *config,
    };
    logging::init(config.log_format);
    // One thread is plenty for a sidecar and keeps its memory small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> Result<u8, Failure> {
    // Handlers first: a SIGTERM during registration must deregister, not kill us.
    let signals = signals().context("cannot install the SIGTERM/SIGINT handlers")?;
    let sdk = load_sdk_config(&AwsOptions::default()).await;
    let counter = CallCounter::new();
    let provider: Arc<dyn TargetGroups> = Arc::new(ElbTargetGroups::new(&sdk, counter.clone()));
    let calls: CallSource = Arc::new(move || counter.snapshot());
    let status = Arc::new(Status::new(Metrics::new(calls)));
    let runner = Runner::new(provider, settings(&config), status.clone());
    if config.dry_run {
        print!("{}", runner.dry_run().await?);
        return Ok(0);
    }
    let listener = http::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
    }
    let server = tokio::spawn(http::serve(listener, status));
    let finish = runner.run(signals).await;
    server.abort();
    match finish.error {
        None => Ok(finish.code),
        Some(error) => Err(Failure::Run {
            code: finish.code.max(1),
            error,
        }),
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

/// Forwards SIGTERM and SIGINT, by name, for as long as the process lives.
fn signals() -> std::io::Result<mpsc::UnboundedReceiver<&'static str>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            if tx.send(name).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}
