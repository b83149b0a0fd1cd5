//! A tiny berth process for berth-runtime's own tests (`tests/process.rs`): exit codes,
//! `--version`, error chains, the one-shot summary and the second signal.

use std::fmt;
use std::time::Duration;

use berth_runtime::oneshot::{run_once, Finished};
use berth_runtime::process::{self, Options};
use berth_runtime::{ExitStatus, Failure, LogArgs, Process};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "probe", version = berth_runtime::LONG_VERSION)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fails with an error whose layers repeat each other.
    Fail,
    /// Runs once and prints the summary.
    Oneshot {
        /// done, failed, bad, ami or hang.
        outcome: String,
        /// The deadline, in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        deadline_ms: u64,
    },
    /// Prints `waiting` once the handlers are in, waits for the signal, then hangs.
    Wait,
}

impl process::Cli for Cli {
    fn log_args(&self) -> &LogArgs {
        &self.log
    }
}

#[derive(Debug)]
struct Layer(String, Option<Box<Layer>>);

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Layer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.1.as_deref().map(|l| l as _)
    }
}

#[derive(Debug, serde::Serialize)]
struct Summary {
    steps: u32,
}

async fn run(cli: Cli, process: Process) -> Result<ExitStatus, Failure> {
    match cli.command {
        Command::Fail => {
            let root = Layer("connection refused".into(), None);
            let middle = Layer(
                "client error: connection refused".into(),
                Some(Box::new(root)),
            );
            Err(Layer(
                "connecting to the API".into(),
                Some(Box::new(middle)),
            ))?
        }
        Command::Oneshot {
            outcome,
            deadline_ms,
        } => {
            let work = async move {
                match outcome.as_str() {
                    "done" => Finished::Done(Summary { steps: 3 }),
                    "failed" => Finished::Failed {
                        summary: Some(Summary { steps: 1 }),
                        error: "step 2 refused".into(),
                    },
                    "bad" => Finished::BadConfiguration("no cluster name".into()),
                    "ami" => Finished::Other {
                        outcome: "ami_build",
                        status: ExitStatus::new(3),
                        summary: Summary { steps: 0 },
                    },
                    _ => std::future::pending().await,
                }
            };
            tracing::info!("working");
            let deadline = Duration::from_millis(deadline_ms);
            Ok(run_once(deadline, &process.shutdown, work).await)
        }
        Command::Wait => {
            println!("waiting");
            process.shutdown.cancelled().await;
            tracing::info!("shutting down slowly");
            std::future::pending().await
        }
    }
}

fn main() -> std::process::ExitCode {
    process::main(Options::new("probe").current_thread(), run)
}
