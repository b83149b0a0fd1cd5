//! berth-runtime: everything a berth process needs that is neither a provider nor a
//! decision — the counterpart of kube-runtime for berth's binaries.
//!
//! | module         | what                                                              |
//! |----------------|-------------------------------------------------------------------|
//! | [`process`]    | `main`/`start`: parse, log, signals, run, exit code                |
//! | [`args`]       | clap args every binary flattens: [`LogArgs`], [`AwsArgs`]          |
//! | [`logging`]    | the tracing subscriber: text or JSON on stderr, a `mode` field     |
//! | [`exit`]       | [`ExitStatus`], [`Failure`], an error chain printed once           |
//! | [`signals`]    | SIGTERM/SIGINT cancel one [`CancellationToken`]                    |
//! | [`admin`]      | `/healthz`, `/readyz`, `/metrics`; [`Readiness`]                   |
//! | [`metrics`]    | one Prometheus registry per process, build info, reconcile, AWS    |
//! | [`controller`] | the controller loop: triggers, debounce, resync, backoff, gates    |
//! | [`oneshot`]    | run once under a deadline, one JSON summary on stdout              |
//!
//! A binary's `main` is
//!
//! ```no_run
//! use berth_runtime::{process, ExitStatus, Failure, LogArgs, Process};
//!
//! #[derive(clap::Parser)]
//! #[command(version = berth_runtime::LONG_VERSION)]
//! struct Cli {
//!     #[command(flatten)]
//!     log: LogArgs,
//! }
//!
//! impl process::Cli for Cli {
//!     fn log_args(&self) -> &LogArgs {
//!         &self.log
//!     }
//! }
//!
//! async fn run(cli: Cli, process: Process) -> Result<ExitStatus, Failure> {
//!     process.shutdown.cancelled().await;
//!     Ok(ExitStatus::SUCCESS)
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     process::main(process::Options::new("example"), run)
//! }
//! ```
#![warn(missing_docs)]

pub mod admin;
#[cfg(feature = "api")]
pub mod api;
pub mod args;
pub mod controller;
mod error;
pub mod exit;
pub mod logging;
pub mod metrics;
pub mod oneshot;
pub mod process;
pub mod signals;

pub use admin::Readiness;
pub use args::{AwsArgs, LogArgs, LogFormat};
pub use error::Error;
pub use exit::{ExitStatus, Failure};
pub use metrics::Metrics;
pub use process::Process;
pub use tokio_util::sync::CancellationToken;

/// The workspace version (`CARGO_PKG_VERSION`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision the binary was built from (`unknown` outside a git checkout).
pub const REVISION: &str = env!("BERTH_GIT_REVISION");

/// `--version`'s text: `0.1.0 (revision 1a2b3c4d5e6f)`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("BERTH_GIT_REVISION"),
    ")"
);
