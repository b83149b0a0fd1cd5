//! berth-lambda: gives every matching EC2 instance an Elastic IP from a tagged pool,
//! a Route53 record and a DynamoDB ledger row when it starts running, and releases
//! them when it terminates (or stops, if configured). Runs on AWS Lambda
//! (`provided.al2023`) behind an EventBridge rule for "EC2 Instance State-change
//! Notification" events. Configuration: see `docs/lambda.md`.

mod config;
mod event;
mod handler;
mod iam_policy;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use berth_runtime::{LogArgs, LogFormat};
use clap::Parser;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

use crate::handler::Handler;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(code) = iam_policy::command(&args) {
        return code;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("berth-lambda: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The function's logging settings, through berth-runtime's shared arguments but from
/// the environment only (Lambda passes no arguments): `BERTH_LOG_FORMAT` (`json`
/// unless set to `text`), `BERTH_LOG_LEVEL`, `RUST_LOG`.
#[derive(clap::Parser)]
struct Env {
    #[command(flatten)]
    log: LogArgs,
}

fn run() -> anyhow::Result<()> {
    let mut env = Env::try_parse_from(["berth-lambda"]).context("logging settings")?;
    // CloudWatch Logs reads JSON lines best: the function's default format.
    if std::env::var_os("BERTH_LOG_FORMAT").is_none() {
        env.log.format = LogFormat::Json;
    }
    berth_runtime::logging::init(&env.log, "lambda").context("logging")?;
    // One invocation at a time per process (Lambda's model): one thread is enough,
    // and it starts faster.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(async {
        let handler = Arc::new(Handler::from_env().await);
        let service = service_fn(move |event: LambdaEvent<Value>| {
            let handler = handler.clone();
            async move {
                handler
                    .handle(
                        event.payload,
                        &event.context.request_id,
                        event.context.deadline(),
                    )
                    .await
            }
        });
        lambda_runtime::run(service)
            .await
            .map_err(|e| anyhow!("the Lambda runtime loop stopped: {e}"))
    })
}
