//! berth-bootstrap: one-shot node setup at boot — hostname, DNS record, certificates
//! and etcd membership — replacing NodeReg (seed 003) with its YAML keys unchanged.
//!
//! Wiring only: configuration ([`config`]), the command line ([`cli`]), identity from
//! IMDSv2 and EC2, then each module in order. Logs go to stderr, one JSON
//! [`summary::Summary`] to stdout; exit codes: 0 done, 1 failed, 2 bad configuration,
//! [`EXIT_AMI_BUILD`] for an AMI build (nothing done).

pub mod certs;
pub mod cli;
pub mod config;
pub mod context;
pub mod dns;
pub mod etcd;
pub mod files;
pub mod hostname;
pub mod identity;
pub mod run;
pub mod summary;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, LogFormat};

/// Exit code of an instance that builds an AMI: nothing was done, and units that
/// `Require=` berth-bootstrap must not start.
pub const EXIT_AMI_BUILD: u8 = 3;

/// Parses the command line, runs once, prints the summary and returns the exit code.
pub fn main_exit_code() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("berth-bootstrap: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let summary = runtime.block_on(run::run(&cli));
    let text = serde_json::to_string(&summary).unwrap_or_else(|e| {
        format!(r#"{{"status":"failed","error":"summary not serialisable: {e}"}}"#)
    });
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
    ExitCode::from(summary.exit_code)
}

fn init_logging(cli: &Cli) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cli.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(false);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
