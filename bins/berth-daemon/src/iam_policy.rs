//! `berth-daemon iam-policy [FLAGS]`: prints the least-privilege IAM policy for the
//! daemon's usual flags. With static rules only (`--config`), registration is scoped to
//! the rules' target groups; with Cast.ai (`CLUSTER_ID`), groups are learnt at run time,
//! so to any group of the account and region. With `--gc-ip-targets`, deregistration
//! (only) is allowed in any group too: the sidecars' groups are not in its configuration.
//! Notice mode makes no AWS call: nothing is printed on stdout (no policy to attach)
//! and stderr says why.

use std::process::ExitCode;

use berth_aws::iam::{modes, Scope, Statement};
use berth_core::domain::TargetGroupRef;
use clap::Parser;

use crate::cli::{Cli, Mode};
use crate::static_config::StaticConfig;

/// The subcommand's name, as the first argument.
pub const SUBCOMMAND: &str = "iam-policy";

/// `berth-daemon iam-policy`: the daemon's flags, plus the account of the ARNs.
#[derive(Debug, Parser)]
#[command(
    name = "berth-daemon iam-policy",
    bin_name = "berth-daemon iam-policy",
    about = "Prints the least-privilege IAM policy (JSON) for the daemon's usual flags."
)]
struct IamPolicyCli {
    #[command(flatten)]
    daemon: Cli,

    /// The AWS account id in the printed ARNs (`*` when unset).
    #[arg(long, env = "AWS_ACCOUNT_ID", value_name = "ID")]
    account_id: Option<String>,
}

/// What `iam-policy --mode notice` says (on stderr; stdout stays empty).
pub const NO_POLICY: &str = "berth-daemon iam-policy: --mode notice makes no AWS API call \
                             (it reads IMDS and patches its own Node): it needs no IAM \
                             permission, attach no policy";

/// Whether the command line (program name first) asks for the policy.
pub fn requested(argv: &[std::ffi::OsString]) -> bool {
    argv.get(1).is_some_and(|arg| arg == SUBCOMMAND)
}

/// Prints the policy for `argv` (program name, `iam-policy`, flags); the exit code.
pub fn main(mut argv: Vec<std::ffi::OsString>) -> ExitCode {
    argv.remove(1);
    let cli = match IamPolicyCli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if cli.daemon.mode == Mode::Notice {
        eprintln!("{NO_POLICY}");
        return ExitCode::SUCCESS;
    }
    match policy_json(&cli.daemon, cli.account_id.as_deref()) {
        Ok(json) => {
            print!("{json}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("berth-daemon iam-policy: {message}");
            ExitCode::from(2)
        }
    }
}

/// The policy document for these flags.
fn policy_json(cli: &Cli, account_id: Option<&str>) -> Result<String, String> {
    let scope = Scope::new(cli.region.as_deref(), account_id);
    let static_groups = match &cli.config {
        Some(path) => {
            let config = StaticConfig::load(path).map_err(|e| e.to_string())?;
            config
                .rules
                .iter()
                .flat_map(|rule| rule.target_groups.iter().map(|b| b.group.clone()))
                .collect()
        }
        None => Vec::new(),
    };
    let groups: Option<Vec<TargetGroupRef>> = if cli.cluster_id.is_some() {
        None
    } else if cli.config.is_some() {
        Some(static_groups)
    } else {
        return Err(
            "no source of target groups: set --config (static rules) and/or CLUSTER_ID (Cast.ai)"
                .into(),
        );
    };
    let mut policy = modes::daemon(&scope, groups.as_deref());
    if cli.gc_ip_targets && groups.is_some() {
        // The sidecars' groups are not in the daemon's configuration: IP target GC may
        // deregister (never register) in any group of the account and region.
        policy.statements.push(Statement::allow(
            "BerthDaemonIpTargetGcDeregister",
            ["elasticloadbalancing:DeregisterTargets"],
            [scope.arn("elasticloadbalancing", "targetgroup/*/*")],
        ));
    }
    Ok(policy.to_json())
}
