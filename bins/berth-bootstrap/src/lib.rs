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
pub mod iam_policy;
pub mod identity;
pub mod run;
pub mod summary;

use std::process::ExitCode;

use berth_runtime::oneshot::run_once;
use berth_runtime::process::Options;

use crate::cli::Cli;

/// Exit code of an instance that builds an AMI: nothing was done, and units that
/// `Require=` berth-bootstrap must not start.
pub const EXIT_AMI_BUILD: u8 = 3;

/// berth-runtime's one-shot process: parses the command line, logs on stderr, runs
/// once under `--deadline` (SIGTERM cancels: exit 130), prints one JSON report on
/// stdout and returns the exit code.
pub fn main_exit_code() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if iam_policy::requested(&argv) {
        return iam_policy::main(argv);
    }
    berth_runtime::process::main(
        Options::new("bootstrap").current_thread(),
        |cli: Cli, process| async move {
            Ok(run_once(cli.deadline, &process.shutdown, run::run(&cli)).await)
        },
    )
}
