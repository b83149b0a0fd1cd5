//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use berth_runtime::LogArgs;
use clap::{Parser, Subcommand};

use crate::config::Module;

/// One-shot node setup at boot: hostname, DNS record, certificates, etcd membership.
///
/// Logs go to stderr, one JSON summary to stdout. Exit codes: 0 done, 1 failed
/// (systemd may retry), 2 bad configuration, 3 this instance is an AMI build
/// (nothing done).
///
/// `berth-bootstrap iam-policy [-c FILE] [--skip-*] [--region R] [--account-id ID]`
/// prints the least-privilege IAM policy for the modules this configuration runs.
#[derive(Debug, Clone, Parser)]
#[command(name = "berth-bootstrap", version = berth_runtime::LONG_VERSION)]
pub struct Cli {
    /// What to do; without a command, every configured module runs.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The YAML configuration (NodeReg's keys), merged over the defaults.
    #[arg(
        short = 'c',
        long = "config",
        global = true,
        env = "BERTH_BOOTSTRAP_CONFIG"
    )]
    pub config: Option<PathBuf>,

    /// Print every change that would be made; change nothing (same as `plan`).
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// Skip the hostname module.
    #[arg(long, global = true)]
    pub skip_hostname: bool,
    /// Skip the DNS module.
    #[arg(long, global = true)]
    pub skip_dns: bool,
    /// Skip the certificates module.
    #[arg(long, global = true)]
    pub skip_certificates: bool,
    /// Skip the etcd module.
    #[arg(long, global = true)]
    pub skip_etcd: bool,

    /// Give up (exit 1) if the run has not finished after this long.
    #[arg(long, global = true, default_value = "10m", value_parser = humantime::parse_duration)]
    pub deadline: Duration,

    /// Logging on stderr (`--log-format text|json`, `--log-level`).
    #[command(flatten)]
    pub log: LogArgs,
}

/// The subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run every configured module (the default).
    Run,
    /// Re-issue node certificates that are due (for a systemd timer), then run the
    /// reload command if one was replaced.
    RenewCerts,
    /// Print every change the default run would make; change nothing.
    Plan,
    /// After etcd started from the drop-in: promote this node's etcd learner to a
    /// voter once it is in sync (`etcd.learner: true`; for a unit ordered after
    /// `etcd.service`). Only the etcd module runs.
    PromoteLearner,
}

impl berth_runtime::process::Cli for Cli {
    fn log_args(&self) -> &LogArgs {
        &self.log
    }
}

impl Cli {
    /// The command, `run` when none was given.
    pub fn command(&self) -> Command {
        self.command.unwrap_or(Command::Run)
    }

    /// Whether nothing may be changed.
    pub fn dry_run(&self) -> bool {
        self.dry_run || self.command() == Command::Plan
    }

    /// Whether a `--skip-<module>` flag names `module`.
    pub fn skips(&self, module: Module) -> bool {
        match module {
            Module::Hostname => self.skip_hostname,
            Module::Dns => self.skip_dns,
            Module::Certificates => self.skip_certificates,
            Module::Etcd => self.skip_etcd,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_work_before_and_after_the_subcommand() {
        let cli = Cli::parse_from(["b", "-c", "/x.yaml", "plan", "--skip-etcd"]);
        assert_eq!(cli.command(), Command::Plan);
        assert!(cli.dry_run());
        assert!(cli.skips(Module::Etcd));
        assert!(!cli.skips(Module::Dns));
        assert_eq!(cli.config, Some(PathBuf::from("/x.yaml")));
        let cli = Cli::parse_from(["b", "--config", "/y.yaml", "--dry-run"]);
        assert_eq!(cli.command(), Command::Run);
        assert!(cli.dry_run());
        assert_eq!(
            Cli::parse_from(["b", "renew-certs"]).command(),
            Command::RenewCerts
        );
        assert_eq!(
            Cli::parse_from(["b", "promote-learner"]).command(),
            Command::PromoteLearner
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        <Cli as CommandFactory>::command().debug_assert();
    }
}
