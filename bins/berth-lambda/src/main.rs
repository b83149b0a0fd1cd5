//! berth-lambda: gives every matching EC2 instance an Elastic IP from a tagged pool,
//! a Route53 record and a DynamoDB ledger row when it starts running, and releases
//! them when it terminates (or stops, if configured). Runs on AWS Lambda
//! (`provided.al2023`) behind an EventBridge rule for "EC2 Instance State-change
//! Notification" events. Configuration: see `docs/lambda.md`.

mod config;
mod event;
mod handler;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

use crate::handler::Handler;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("berth-lambda: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
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
                    .handle(event.payload, &event.context.request_id)
                    .await
            }
        });
        lambda_runtime::run(service)
            .await
            .map_err(|e| anyhow!("the Lambda runtime loop stopped: {e}"))
    })
}
