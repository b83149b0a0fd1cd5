//! `berth-bootstrap iam-policy [-c FILE] [--skip-*] [--region R] [--account-id ID]`:
//! prints the least-privilege IAM policy for the modules this configuration runs.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use berth_aws::iam::{modes, Scope};
use clap::Parser;

use crate::config::{Config, Module};

/// The subcommand's name, as the first argument.
pub const SUBCOMMAND: &str = "iam-policy";

/// The command line of `berth-bootstrap iam-policy`.
#[derive(Debug, Parser)]
#[command(
    name = "berth-bootstrap iam-policy",
    bin_name = "berth-bootstrap iam-policy",
    about = "Prints the least-privilege IAM policy (JSON) for the modules this configuration runs."
)]
struct IamPolicyCli {
    /// The YAML configuration (NodeReg's keys), merged over the defaults.
    #[arg(short = 'c', long = "config", env = "BERTH_BOOTSTRAP_CONFIG")]
    config: Option<PathBuf>,
    /// Leave out the hostname module.
    #[arg(long)]
    skip_hostname: bool,
    /// Leave out the DNS module.
    #[arg(long)]
    skip_dns: bool,
    /// Leave out the certificates module.
    #[arg(long)]
    skip_certificates: bool,
    /// Leave out the etcd module.
    #[arg(long)]
    skip_etcd: bool,
    /// The region in the printed ARNs (`*` when unset; at boot it comes from IMDS).
    #[arg(long, env = "AWS_REGION")]
    region: Option<String>,
    /// The AWS account id in the printed ARNs (`*` when unset).
    #[arg(long, env = "AWS_ACCOUNT_ID", value_name = "ID")]
    account_id: Option<String>,
}

/// Whether the command line (program name first) asks for the policy.
pub fn requested(argv: &[OsString]) -> bool {
    argv.get(1).is_some_and(|arg| arg == SUBCOMMAND)
}

/// Prints the policy for `argv` (program name, `iam-policy`, flags).
pub fn main(mut argv: Vec<OsString>) -> ExitCode {
    argv.remove(1);
    let cli = match IamPolicyCli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let config = match &cli.config {
        Some(path) => Config::load(path),
        None => Ok(Config::defaults()),
    };
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            eprintln!("berth-bootstrap iam-policy: {e}");
            return ExitCode::from(2);
        }
    };
    let scope = Scope::new(cli.region.as_deref(), cli.account_id.as_deref());
    print!(
        "{}",
        modes::bootstrap(&scope, &resources(&cli, &config)).to_json()
    );
    ExitCode::SUCCESS
}

/// What the modules that run name.
fn resources(cli: &IamPolicyCli, config: &Config) -> modes::BootstrapResources {
    let skipped = |module: Module| match module {
        Module::Hostname => cli.skip_hostname,
        Module::Dns => cli.skip_dns,
        Module::Certificates => cli.skip_certificates,
        Module::Etcd => cli.skip_etcd,
    };
    let runs = |module: Module| config.modules().contains(&module) && !skipped(module);
    modes::BootstrapResources {
        dns: runs(Module::Dns).then(|| config.hosted_zone.id.clone()),
        acm_pca_arn: config
            .certificates
            .acm_pca_arn
            .clone()
            .filter(|_| runs(Module::Certificates)),
        etcd: runs(Module::Etcd).then(|| config.etcd.marker_table.clone()),
    }
}
