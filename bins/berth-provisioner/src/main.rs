//! berth-provisioner: an HTTP API that provisions EKS clusters by running Terraform
//! in Kubernetes Jobs; a drop-in for the seed's FastAPI provisioner (same endpoints and
//! bodies) with a `/v1` resource API beside it.
//!
//! `main` parses flags, wires the token file, the configuration and the Kubernetes
//! client into the API, serves it until SIGTERM/SIGINT, and maps failures to exit
//! codes: 2 for bad flags or configuration, 1 for a runtime failure.

mod api;
mod auth;
mod config;
mod problem;
mod store;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;

/// Provisions EKS clusters with Terraform runs as Kubernetes Jobs.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to serve the API on.
    #[arg(long, env = "BERTH_PROVISIONER_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Namespace of the Jobs, Leases, records and state Secrets (the pod's own).
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: Option<String>,
    /// File of bearer tokens, one per line (mounted from a Secret; re-read on change).
    #[arg(long, env = "BERTH_PROVISIONER_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// The server configuration (YAML).
    #[arg(long, env = "BERTH_PROVISIONER_CONFIG")]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "BERTH_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Print the OpenAPI document and exit.
    #[arg(long)]
    print_openapi: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_openapi {
        println!("{}", api::openapi_json());
        return ExitCode::SUCCESS;
    }
    init_logging(&args.log_format);
    let prepared = prepare(&args);
    let (config, tokens, namespace) = match prepared {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "cannot start");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(serve(args.listen, config, tokens, namespace)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "the provisioner failed");
            ExitCode::from(1)
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.with_ansi(false).init();
    }
}

type Prepared = (config::ServerConfig, auth::TokenFile, String);

fn prepare(args: &Args) -> anyhow::Result<Prepared> {
    let config_path = args
        .config
        .clone()
        .context("--config (BERTH_PROVISIONER_CONFIG) is required")?;
    let config = config::ServerConfig::load(&config_path, std::env::vars())?;
    let token_path = args.token_file.clone().context(
        "--token-file (BERTH_PROVISIONER_TOKEN_FILE) is required: the API needs bearer tokens",
    )?;
    let tokens = auth::TokenFile::open(token_path).context("cannot read the token file")?;
    let namespace = args
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .context("--namespace (POD_NAMESPACE) is required")?;
    Ok((config, tokens, namespace))
}

async fn serve(
    listen: SocketAddr,
    config: config::ServerConfig,
    tokens: auth::TokenFile,
    namespace: String,
) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes configuration (in-cluster or KUBECONFIG)")?;
    let store = store::Store::new(client, namespace.clone(), Arc::new(config));
    let app = api::router(Arc::new(store), Arc::new(tokens));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, namespace, "listening on {addr}");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .context("the HTTP server failed")?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
