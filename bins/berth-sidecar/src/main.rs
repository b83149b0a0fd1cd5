//! berth-sidecar: registers a pod's IP in ELBv2 target groups while the pod lives, and
//! deregisters and drains it on SIGTERM/SIGINT. A drop-in for the Go NLB registrator
//! sidecar (same flags), built on berth-core's engine and berth-aws's ELBv2 adapter.
//!
//! `main` only maps the outcome of [`app::run`] to an exit code.

mod app;
mod args;
mod duration;
mod goflags;
mod hook;
mod http;
mod lifecycle;
mod logging;
mod metrics;
mod runner;

use std::process::ExitCode;

fn main() -> ExitCode {
    match app::run() {
        Ok(code) => ExitCode::from(code),
        Err(app::Failure::Usage(line)) => {
            eprintln!("{line}");
            ExitCode::from(2)
        }
        Err(app::Failure::Run { code, error }) => {
            eprintln!("error: {error:#}");
            ExitCode::from(code)
        }
    }
}
