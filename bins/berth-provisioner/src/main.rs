//! berth-provisioner: an HTTP API that provisions EKS clusters by running Terraform
//! in Kubernetes Jobs; a drop-in for the seed's FastAPI provisioner (same endpoints and
//! bodies) with a `/v1` resource API beside it.
//!
//! `main` parses flags and hands over to berth-runtime's process shell (logging,
//! signals, exit codes: 2 for bad flags or configuration, 1 for a runtime failure),
//! then wires the token file, the configuration and the Kubernetes client into the API
//! and serves it until the first SIGTERM/SIGINT.

mod api;
mod auth;
mod config;
mod metrics;
mod problem;
mod store;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use berth_runtime::api::ApiServer;
use berth_runtime::{process, ExitStatus, Failure, LogArgs, Process};
use clap::Parser;

/// Provisions EKS clusters with Terraform runs as Kubernetes Jobs.
#[derive(Debug, Parser)]
#[command(
    version = berth_runtime::LONG_VERSION,
    about,
    after_help = "berth-provisioner calls no AWS API itself, so it has no `iam-policy` \
                  subcommand: Terraform does, in the runner Jobs, with the runner's own credentials."
)]
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
    /// Address of berth-runtime's admin server (`/healthz`, `/readyz`, `/metrics`);
    /// none by default.
    #[arg(long, env = "BERTH_PROVISIONER_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// Print the OpenAPI document and exit.
    #[arg(long)]
    print_openapi: bool,
    #[command(flatten)]
    log: LogArgs,
}

impl process::Cli for Args {
    fn log_args(&self) -> &LogArgs {
        &self.log
    }
}

fn main() -> ExitCode {
    process::main(process::Options::new("provisioner"), run)
}

async fn run(args: Args, process: Process) -> Result<ExitStatus, Failure> {
    if args.print_openapi {
        println!("{}", api::openapi_json());
        return Ok(ExitStatus::SUCCESS);
    }
    let (config, tokens, namespace) = prepare(&args).map_err(Failure::usage)?;
    if let Some(admin) = args.admin_listen {
        let bound = process.serve_admin(admin).await?;
        tracing::info!(addr = %bound, "admin server listening");
    }
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes configuration (in-cluster or KUBECONFIG)")?;
    let metrics = metrics::ProvisionerMetrics::registered(&process.metrics);
    let store = store::Store::new(client, namespace.clone(), Arc::new(config), metrics.clone());
    tokio::spawn(metrics::watch_runs(
        store.clone(),
        metrics.clone(),
        process.shutdown.clone().cancelled_owned(),
    ));
    let app = api::router(Arc::new(store), Arc::new(tokens), metrics);
    let server = ApiServer::bind(args.listen).await?;
    let addr = server.local_addr();
    tracing::info!(%addr, namespace, "listening on {addr}");
    process.readiness.ready();
    server.serve(app, process.shutdown.clone()).await?;
    tracing::info!("stopped");
    Ok(ExitStatus::SUCCESS)
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Args;

    #[test]
    fn every_flag_has_its_environment_variable_and_the_seed_port_is_the_default() {
        let command = Args::command();
        let arg = |id: &str| {
            command
                .get_arguments()
                .find(|a| a.get_id() == id)
                .unwrap_or_else(|| panic!("flag {id}"))
        };
        for (id, env) in [
            ("listen", "BERTH_PROVISIONER_LISTEN"),
            ("namespace", "POD_NAMESPACE"),
            ("token_file", "BERTH_PROVISIONER_TOKEN_FILE"),
            ("config", "BERTH_PROVISIONER_CONFIG"),
            ("admin_listen", "BERTH_PROVISIONER_ADMIN_LISTEN"),
        ] {
            assert_eq!(
                arg(id).get_env().and_then(|e| e.to_str()),
                Some(env),
                "{id}"
            );
        }
        assert_eq!(arg("listen").get_default_values(), ["0.0.0.0:8080"]);
    }
}
