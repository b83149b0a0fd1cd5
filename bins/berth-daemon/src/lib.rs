//! berth-daemon: keeps every Kubernetes node's EC2 instance in its ALB/NLB target
//! groups, from Cast.ai node configurations and/or static rules, deregistering (and
//! waiting out the drain) when a node is cordoned, excluded, disrupted, long NotReady,
//! no longer matching or deleted. Node mode (DaemonSet) handles its own node; cluster
//! mode (Deployment) handles all nodes while it holds a Lease.
//!
//! The binary is wiring: the rules are in `berth_core::plan::desire_nodes`, the
//! planning in `berth_core::plan::plan_membership`, the apply in `berth_core::Engine`.
#![warn(missing_docs)]

pub mod cli;
pub mod events;
pub mod http;
pub mod metrics;
pub mod reconcile;
pub mod resolve;
pub mod run;
pub mod static_config;

use clap::Parser as _;

/// Parses the command line, runs the daemon and returns the process exit code: 0 on a
/// clean stop, 1 on failure (the error chain is printed), 2 on bad usage.
pub fn main_exit_code() -> i32 {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version exit 0; usage errors exit 2.
        Err(e) => e.exit(),
    };
    if let Err(message) = cli.validate() {
        eprintln!("berth-daemon: {message}");
        return 2;
    }
    if let Err(e) = berth_runtime::logging::init(&cli.log_args(), "daemon") {
        eprintln!("berth-daemon: {e}");
        return 2;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth-daemon: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(run::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth-daemon: error: {e:#}");
            1
        }
    }
}
