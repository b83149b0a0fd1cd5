//! berth-demo: berth's main job on an embedded default. See `berth-demo --help`.
//!
//! The real berth-daemon controller (its library entry point, `berth_daemon::run`)
//! runs in cluster mode against in-process peers — berth-kube's fake Kubernetes API
//! server, berth-castai's fake Cast.ai API, berth-core's in-memory target groups or,
//! with `--aws-endpoint`, berth's ELBv2 adapter against that endpoint — while a
//! scenario acts on the fleet and waits for the state it expects. A separate binary,
//! so no production binary carries these fakes.

mod cli;
mod cluster;
mod daemon;
mod estate;
mod narrate;
mod observe;
mod report;
mod scenario;

use std::process::ExitCode;

use berth_runtime::process::{self, Options};
use berth_runtime::{ExitStatus, Failure, Process};

use crate::cli::Cli;
use crate::estate::{AwsEstate, Estate, MemoryEstate};
use crate::narrate::Narrator;

fn main() -> ExitCode {
    let cli = match process::parse::<Cli>() {
        Ok(cli) => cli.with_quiet_logs(),
        Err(status) => return status.into(),
    };
    let log = cli.log.clone();
    process::start(Options::new("demo"), &log, move |p| run(cli, p))
}

async fn run(cli: Cli, process: Process) -> Result<ExitStatus, Failure> {
    let nodes = cluster::NODES;
    let estate = match &cli.aws_endpoint {
        Some(endpoint) => {
            Estate::Aws(AwsEstate::create(endpoint, &cli.region, nodes, cli.drain_delay).await?)
        }
        None => Estate::Memory(MemoryEstate::new(nodes, cli.drain_delay)),
    };
    let options = scenario::Options {
        step_timeout: cli.step_timeout,
        resync: cli.resync,
        shutdown: process.shutdown.clone(),
    };
    match scenario::run(estate, Narrator::new(cli.progress), options).await {
        Ok(()) => Ok(ExitStatus::SUCCESS),
        Err(e) if process.shutdown.is_cancelled() => {
            Err(Failure::with_status(ExitStatus::INTERRUPTED, e))
        }
        Err(e) => Err(e.into()),
    }
}
