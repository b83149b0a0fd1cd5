//! berth-sidecar: registers a pod's IP in ELBv2 target groups while the pod lives, and
//! deregisters and drains it on SIGTERM/SIGINT. A drop-in for the Go NLB registrator
//! sidecar (same flags), built on berth-core's engine and berth-aws's ELBv2 adapter,
//! in berth-runtime's process shell.
//!
//! `main` parses the Go-style command line and hands the rest to berth-runtime.

mod app;
mod args;
mod duration;
mod goflags;
mod hook;
mod iam_policy;
mod lifecycle;
mod metrics;
mod record;
mod runner;
mod status;

use std::process::ExitCode;

use berth_runtime::process::{self, Options};
use berth_runtime::signals::Repeat;

use crate::args::Parsed;

fn main() -> ExitCode {
    let argv: Vec<_> = std::env::args_os().collect();
    if iam_policy::requested(&argv) {
        return iam_policy::main(argv);
    }
    let parsed = args::parse(argv, std::env::var("POD_IP").ok());
    let config = match parsed {
        Ok(Parsed::Run(config)) => *config,
        Ok(Parsed::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(line) => {
            eprintln!("{line}");
            return ExitCode::from(berth_runtime::ExitStatus::USAGE.code());
        }
    };
    // One thread is plenty for a sidecar and keeps its memory small. A second signal is
    // the sidecar's to handle: it cuts the drain wait short.
    let options = Options::new("sidecar")
        .current_thread()
        .repeat(Repeat::Deliver);
    let log = config.log_args();
    process::start(options, &log, |process| app::run(config, process))
}
