//! The command line: the seed's Go flags unchanged, berth's new ones, and an
//! environment variable for each. Turns `argv` into a checked [`Config`] or a one-line
//! usage error.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use berth_core::domain::{InstallationId, TargetGroupRef};
pub(crate) use berth_runtime::LogFormat;
use berth_runtime::{AwsArgs, LogArgs};
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};

use crate::duration::parse_go_duration;
use crate::goflags;
use crate::hook::Hook;

const AFTER_HELP: &str = "\
Flags may be written Go-style with one dash (-target-group-name web, -wait-in-service=false).
Durations use Go syntax: 300ms, 5s, 1m30s, 5m0s.
The target id defaults to $POD_IP (set it from the Downward API: fieldRef status.podIP).
AWS credentials, region and endpoints come from the standard chain (IRSA, EKS Pod Identity,
AWS_REGION, AWS_ENDPOINT_URL, ...).

`berth-sidecar iam-policy [FLAGS]` prints the least-privilege IAM policy for these flags'
target groups (ARNs in AWS_REGION and AWS_ACCOUNT_ID; `*` when unset) and exits.

Exit codes: 0 after a clean deregistration; 2 for bad usage; 1 for any other failure
(nothing is left registered); the post-deregister command's own non-zero exit code.
A second SIGTERM/SIGINT stops waiting for the drain (the post-deregister command still runs).";

#[derive(Debug, Parser)]
#[command(
    name = "berth-sidecar",
    version = berth_runtime::LONG_VERSION,
    about = "Registers this pod's IP in ELBv2 target groups while it lives, and deregisters \
             and drains it on SIGTERM/SIGINT.",
    after_help = AFTER_HELP
)]
struct Cli {
    /// Target group to register in, by name or ARN; repeat (or separate with commas) for several.
    #[arg(long = "target-group", env = "BERTH_TARGET_GROUP", value_name = "NAME|ARN",
          value_delimiter = ',', action = ArgAction::Append)]
    target_groups: Vec<String>,

    /// Which target group to use for registering and deregistering targets (seed flag; same as --target-group).
    #[arg(long, env = "BERTH_TARGET_GROUP_NAME", value_name = "NAME")]
    target_group_name: Option<String>,

    /// Target ID to use (the pod IP) [default: $POD_IP].
    #[arg(long, env = "BERTH_TARGET_ID", value_name = "IP")]
    target_id: Option<String>,

    /// Target port [default: the target group's port].
    #[arg(long, env = "BERTH_PORT")]
    port: Option<u16>,

    /// Availability Zone of the target, e.g. `all` for an IP outside the group's VPC.
    #[arg(long, env = "BERTH_AVAILABILITY_ZONE", value_name = "AZ")]
    availability_zone: Option<String>,

    /// Command to execute (with /bin/sh -c) before the target is registered; a failure prevents registration.
    #[arg(
        long,
        env = "BERTH_PRE_REGISTER_COMMAND",
        value_name = "COMMAND",
        allow_hyphen_values = true
    )]
    pre_register_command: Option<String>,

    /// How long to wait for the pre-register command to execute.
    #[arg(long, env = "BERTH_PRE_REGISTER_TIMEOUT", value_name = "DURATION",
          default_value = "5s", value_parser = parse_go_duration)]
    pre_register_timeout: Duration,

    /// Command to execute (with /bin/sh -c) after the target is deregistered and drained.
    #[arg(
        long,
        env = "BERTH_POST_DEREGISTER_COMMAND",
        value_name = "COMMAND",
        allow_hyphen_values = true
    )]
    post_deregister_command: Option<String>,

    /// How long to wait for the post-deregister command to execute.
    #[arg(long, env = "BERTH_POST_DEREGISTER_TIMEOUT", value_name = "DURATION",
          default_value = "5s", value_parser = parse_go_duration)]
    post_deregister_timeout: Duration,

    /// Whether to wait for the target to become healthy before /readyz answers 200 (Go syntax: -wait-in-service=false).
    #[arg(long, env = "BERTH_WAIT_IN_SERVICE", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_value = "true", default_missing_value = "true",
          action = ArgAction::Set, value_parser = goflags::parse_go_bool)]
    wait_in_service: bool,

    /// How long to wait for the target to become healthy.
    #[arg(long, env = "BERTH_WAIT_IN_SERVICE_TIMEOUT", value_name = "DURATION",
          default_value = "5m0s", value_parser = parse_go_duration)]
    wait_in_service_timeout: Duration,

    /// How long to wait for the target to leave `draining` after deregistration
    /// [default: the groups' deregistration delay, at most 5m0s].
    #[arg(long, env = "BERTH_DRAIN_TIMEOUT", value_name = "DURATION", value_parser = parse_go_duration)]
    drain_timeout: Option<Duration>,

    /// Address serving /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "BERTH_LISTEN",
        value_name = "ADDR",
        default_value = "0.0.0.0:8080"
    )]
    listen: SocketAddr,

    /// Resolve the groups and print what would be registered, change nothing, exit.
    #[arg(long, env = "BERTH_DRY_RUN")]
    dry_run: bool,

    /// Record each registration, with the pod's identity, in a ConfigMap of the pod's
    /// namespace, so that berth-daemon --gc-ip-targets removes the IP if the sidecar dies
    /// without deregistering [default: when POD_UID, POD_NAME and POD_NAMESPACE are set].
    #[arg(long, env = "BERTH_RECORD_REGISTRATION", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_missing_value = "true",
          action = ArgAction::Set, value_parser = goflags::parse_go_bool)]
    record_registration: Option<bool>,

    #[command(flatten)]
    log: LogArgs,

    #[command(flatten)]
    aws: AwsArgs,
}

/// The longest default drain wait: a group's deregistration delay can be an hour, and
/// the pod's termination grace period must cover the wait.
pub(crate) const DEFAULT_DRAIN_CAP: Duration = Duration::from_secs(300);

/// A checked command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// Groups, deduplicated, in the order given.
    pub(crate) groups: Vec<TargetGroupRef>,
    /// The target id (pod IP).
    pub(crate) target_id: String,
    /// Explicit target port.
    pub(crate) port: Option<u16>,
    /// Explicit Availability Zone.
    pub(crate) availability_zone: Option<String>,
    /// Run before registering.
    pub(crate) pre_register: Option<Hook>,
    /// Run after deregistering and draining.
    pub(crate) post_deregister: Option<Hook>,
    /// How long to wait for healthy targets; `None`: do not wait.
    pub(crate) wait_in_service: Option<Duration>,
    /// Explicit drain bound.
    pub(crate) drain_timeout: Option<Duration>,
    /// HTTP listen address.
    pub(crate) listen: SocketAddr,
    /// Change nothing.
    pub(crate) dry_run: bool,
    /// Log format.
    pub(crate) log_format: LogFormat,
    /// Log filter (`--log-level`).
    pub(crate) log_level: Option<String>,
    /// The engine's minimum interval between two AWS calls (`--aws-max-rps`).
    pub(crate) min_call_interval: Duration,
    /// `--installation-id`, checked like every binary's. With registration records
    /// the owner of the records is `berth/<installation>/sidecar`.
    pub(crate) installation_id: InstallationId,
    /// `--record-registration`: `None` decides from the pod identity variables.
    pub(crate) record_registration: Option<bool>,
}

impl Config {
    /// The logging flags, for berth-runtime.
    pub(crate) fn log_args(&self) -> LogArgs {
        LogArgs {
            format: self.log_format,
            level: self.log_level.clone(),
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// Run with this configuration.
    Run(Box<Config>),
    /// Print this (help or version) and exit 0.
    Print(String),
}

/// Parses `args` (program name first). `pod_ip` is `$POD_IP`, the target id's default.
/// A usage error is one line.
pub(crate) fn parse(
    args: impl IntoIterator<Item = OsString>,
    pod_ip: Option<String>,
) -> Result<Parsed, String> {
    let command = Cli::command();
    let takes_value = |name: &str| {
        command
            .get_arguments()
            .find(|a| a.get_long() == Some(name))
            .is_some_and(|a| {
                a.get_action().takes_values() && a.get_num_args().is_none_or(|n| n.min_values() > 0)
            })
    };
    let args = goflags::normalise(args, takes_value);
    let matches = match command.clone().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) if !e.use_stderr() => return Ok(Parsed::Print(e.render().to_string())),
        Err(e) => return Err(first_line(&e.render().to_string())),
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| first_line(&e.to_string()))?;
    check(cli, pod_ip).map(|c| Parsed::Run(Box::new(c)))
}

fn check(cli: Cli, pod_ip: Option<String>) -> Result<Config, String> {
    let mut groups: Vec<TargetGroupRef> = Vec::new();
    let named = cli.target_group_name.into_iter().chain(cli.target_groups);
    for text in named.filter(|t| !t.trim().is_empty()) {
        let group: TargetGroupRef = text.parse().map_err(|e| format!("error: {e}"))?;
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    if groups.is_empty() {
        return Err(
            "error: no target group given (use --target-group NAME|ARN, \
                    -target-group-name NAME or BERTH_TARGET_GROUP)"
                .to_owned(),
        );
    }
    if cli.port == Some(0) {
        return Err("error: --port must be between 1 and 65535".to_owned());
    }
    let target_id = cli
        .target_id
        .or(pod_ip)
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or("error: no target id: set POD_IP from the Downward API or pass -target-id")?;
    let hook = |command: Option<String>, timeout| {
        command
            .filter(|c| !c.trim().is_empty())
            .map(|command| Hook { command, timeout })
    };
    Ok(Config {
        groups,
        target_id,
        port: cli.port,
        availability_zone: cli.availability_zone.filter(|a| !a.trim().is_empty()),
        pre_register: hook(cli.pre_register_command, cli.pre_register_timeout),
        post_deregister: hook(cli.post_deregister_command, cli.post_deregister_timeout),
        wait_in_service: cli.wait_in_service.then_some(cli.wait_in_service_timeout),
        drain_timeout: cli.drain_timeout,
        listen: cli.listen,
        dry_run: cli.dry_run,
        log_format: cli.log.format,
        log_level: cli.log.level,
        min_call_interval: cli.aws.min_call_interval(),
        installation_id: InstallationId::new(&cli.aws.installation_id)
            .map_err(|e| format!("error: --installation-id: {e}"))?,
        record_registration: cli.record_registration,
    })
}

/// The drain bound: the explicit one, else the longest deregistration delay of the
/// groups, capped at [`DEFAULT_DRAIN_CAP`].
pub(crate) fn drain_bound(explicit: Option<Duration>, delays: &[Duration]) -> Duration {
    explicit.unwrap_or_else(|| {
        delays
            .iter()
            .max()
            .copied()
            .unwrap_or_default()
            .min(DEFAULT_DRAIN_CAP)
    })
}

/// clap's message without its usage and tip lines.
fn first_line(rendered: &str) -> String {
    let line = rendered.lines().next().unwrap_or("error: bad usage").trim();
    format!("{line} (see --help)")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api/0123456789abcdef";

    fn config(args: &[&str], pod_ip: Option<&str>) -> Result<Config, String> {
        let argv = std::iter::once("berth-sidecar")
            .chain(args.iter().copied())
            .map(OsString::from);
        match parse(argv, pod_ip.map(str::to_owned))? {
            Parsed::Run(c) => Ok(*c),
            Parsed::Print(p) => Err(format!("printed: {p}")),
        }
    }

    #[test]
    fn the_seeds_command_line_parses_unchanged() {
        let c = config(
            &[
                "-target-group-name",
                "web",
                "-target-id",
                "10.0.0.7",
                "-pre-register-command",
                "echo pre",
                "-pre-register-timeout",
                "1m30s",
                "-post-deregister-command=echo post",
                "-post-deregister-timeout",
                "300ms",
                "-wait-in-service=false",
                "-wait-in-service-timeout",
                "5m0s",
            ],
            None,
        )
        .unwrap();
        assert_eq!(c.groups, vec![TargetGroupRef::Name("web".into())]);
        assert_eq!(c.target_id, "10.0.0.7");
        let pre = c.pre_register.unwrap();
        assert_eq!(
            (pre.command.as_str(), pre.timeout),
            ("echo pre", Duration::from_secs(90))
        );
        let post = c.post_deregister.unwrap();
        assert_eq!(
            (post.command.as_str(), post.timeout),
            ("echo post", Duration::from_millis(300))
        );
        assert_eq!(c.wait_in_service, None);
    }

    #[test]
    fn defaults_match_the_seed() {
        let c = config(&["-target-group-name", "web"], Some("10.1.2.3")).unwrap();
        assert_eq!(c.target_id, "10.1.2.3");
        assert_eq!(c.wait_in_service, Some(Duration::from_secs(300)));
        assert_eq!(c.pre_register, None);
        assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.log_format, LogFormat::Text);
        assert!(!c.dry_run);
        // A bare Go boolean flag means true.
        let c = config(
            &["-target-group-name", "web", "-wait-in-service"],
            Some("1.2.3.4"),
        )
        .unwrap();
        assert_eq!(c.wait_in_service, Some(Duration::from_secs(300)));
    }

    #[test]
    fn several_groups_by_name_and_arn_deduplicated() {
        let c = config(
            &[
                "--target-group",
                "web",
                "--target-group",
                ARN,
                "--target-group=web,other",
                "-target-group-name",
                "first",
                "--port",
                "8443",
                "--availability-zone",
                "all",
                "--drain-timeout",
                "45s",
                "--listen",
                "127.0.0.1:9000",
                "--dry-run",
                "--log-format",
                "json",
            ],
            Some("10.0.0.1"),
        )
        .unwrap();
        let names: Vec<String> = c.groups.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["first", "web", ARN, "other"]);
        assert_eq!(c.port, Some(8443));
        assert_eq!(c.availability_zone.as_deref(), Some("all"));
        assert_eq!(c.drain_timeout, Some(Duration::from_secs(45)));
        assert_eq!(c.listen, "127.0.0.1:9000".parse().unwrap());
        assert!(c.dry_run);
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn bad_usage_is_one_line() {
        let cases: [(&[&str], &str); 7] = [
            (&["-target-group-name", "web", "-bogus"], "--bogus"),
            (
                &["-target-group-name", "web", "-pre-register-timeout", "5"],
                "\"5\"",
            ),
            (
                &["-target-group-name", "web", "-wait-in-service=maybe"],
                "maybe",
            ),
            (&["-target-id", "10.0.0.1"], "no target group"),
            (&["-target-group-name", "web"], "no target id"),
            (&["--target-group", "not_a valid name"], "neither"),
            (&["-target-group-name", "web", "--port", "0"], "--port"),
        ];
        for (args, needle) in cases {
            let err = config(args, None).expect_err(needle);
            assert!(!err.contains('\n'), "{err:?}");
            assert!(err.contains(needle), "{err:?} should mention {needle}");
        }
    }

    #[test]
    fn the_installation_id_is_checked_like_every_binarys() {
        let args = ["-target-group-name", "web", "-target-id", "10.0.0.1"];
        let c = config(&args, None).unwrap();
        assert_eq!(c.installation_id.as_str(), InstallationId::DEFAULT);
        let c = config(
            &[&args[..], &["--installation-id", "prod-eu"]].concat(),
            None,
        )
        .unwrap();
        assert_eq!(c.installation_id.as_str(), "prod-eu");
        let err = config(&[&args[..], &["--installation-id", "a/b"]].concat(), None).unwrap_err();
        assert!(!err.contains('\n'), "{err:?}");
        assert!(err.contains("--installation-id"), "{err:?}");
    }

    #[test]
    fn help_documents_every_environment_variable() {
        let help = match parse(["berth-sidecar", "-help"].map(OsString::from), None).unwrap() {
            Parsed::Print(help) => help,
            Parsed::Run(_) => panic!("-help should print help"),
        };
        for var in [
            "BERTH_TARGET_GROUP",
            "BERTH_TARGET_GROUP_NAME",
            "BERTH_TARGET_ID",
            "POD_IP",
            "BERTH_PORT",
            "BERTH_AVAILABILITY_ZONE",
            "BERTH_PRE_REGISTER_COMMAND",
            "BERTH_PRE_REGISTER_TIMEOUT",
            "BERTH_POST_DEREGISTER_COMMAND",
            "BERTH_POST_DEREGISTER_TIMEOUT",
            "BERTH_WAIT_IN_SERVICE",
            "BERTH_WAIT_IN_SERVICE_TIMEOUT",
            "BERTH_DRAIN_TIMEOUT",
            "BERTH_LISTEN",
            "BERTH_DRY_RUN",
            "BERTH_LOG_FORMAT",
        ] {
            assert!(help.contains(var), "--help does not mention {var}");
        }
        assert!(help.contains("5m0s"), "Go-formatted default shown");
    }

    #[test]
    fn drain_bound_defaults_to_the_longest_delay_capped() {
        let s = Duration::from_secs;
        assert_eq!(drain_bound(Some(s(7)), &[s(300)]), s(7));
        assert_eq!(drain_bound(None, &[s(30), s(60)]), s(60));
        assert_eq!(drain_bound(None, &[s(3600)]), DEFAULT_DRAIN_CAP);
        assert_eq!(drain_bound(None, &[]), Duration::ZERO);
    }
}
