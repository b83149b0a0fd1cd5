//! The command line.

use std::time::Duration;

use berth_runtime::LogArgs;
use clap::{Parser, ValueEnum};

const ABOUT: &str = "berth's main job on your machine, with nothing to set up";

const LONG_ABOUT: &str = "\
berth's main job on your machine, with nothing to set up: the real berth-daemon \
controller (cluster mode, leader-elected, unchanged) keeps a fleet of Kubernetes nodes \
in their load-balancer target groups, while a short scenario happens to the fleet.

Everything it talks to runs inside this process: a Kubernetes API server (berth-kube's \
fake, speaking real list/watch to a real kube client) seeded with the nodes, a Cast.ai \
API (berth-castai's fake) serving node configurations, and in-memory AWS target groups \
(berth-core's, which drain deregistered targets for their deregistration delay). With \
--aws-endpoint, AWS is instead whatever answers at that URL (e.g. `moto_server`), \
reached through berth's real ELBv2 adapter; the demo first creates the estate it needs \
there (VPC, subnet, instances, target groups).

The scenario: six nodes join and are registered in their groups (four by a static rule, \
two by a Cast.ai node configuration); a target someone else registered is left alone; \
node-2 is cordoned and drained; node-4 is deleted; the Cast.ai configuration moves its \
nodes to another group. Each step waits for the state it expects to be observed in the \
target groups, never for a fixed time. At the end: every target group's targets with \
their states, the AWS calls berth made (by operation), the Kubernetes Events it \
recorded and the time each step took.

The narration is on stdout; logs (the daemon's included) go to stderr at `warn` unless \
--log-level or RUST_LOG asks for more. Exit codes: 0 every step was observed, 1 one was \
not (or the estate could not be created), 2 bad usage, 130 interrupted (the daemon is \
still stopped cleanly).";

/// `berth-demo`'s flags.
#[derive(Debug, Parser)]
#[command(
    name = "berth-demo",
    version = berth_runtime::LONG_VERSION,
    about = ABOUT,
    long_about = LONG_ABOUT
)]
pub(crate) struct Cli {
    /// Use the AWS API at this URL (e.g. `http://127.0.0.1:5000`, a `moto_server`)
    /// through berth's real ELBv2 adapter, with static test credentials, instead of
    /// in-memory AWS. The demo creates its estate there first.
    #[arg(long, value_name = "URL", env = "BERTH_DEMO_AWS_ENDPOINT")]
    pub(crate) aws_endpoint: Option<String>,

    /// The region used with --aws-endpoint.
    #[arg(long, value_name = "REGION", default_value = "us-east-1")]
    pub(crate) region: String,

    /// The target groups' deregistration delay: how long a deregistered target
    /// drains before it leaves its group (in-memory AWS; moto removes it at once).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub(crate) drain_delay: Duration,

    /// The daemon's periodic full pass (production default: 5 minutes). A Cast.ai
    /// configuration change is seen on the next one.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub(crate) resync: Duration,

    /// The longest one step may take before the demo gives up (exit 1).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) step_timeout: Duration,

    /// How progress is shown: `auto` is a live line on a terminal and plain lines
    /// otherwise.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) progress: Progress,

    /// Logs of the daemon and of the demo, on stderr.
    #[command(flatten)]
    pub(crate) log: LogArgs,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Progress {
    /// A live line when stdout is a terminal, plain lines otherwise.
    Auto,
    /// A live line, redrawn in place.
    Live,
    /// One line per change.
    Plain,
}

impl berth_runtime::process::Cli for Cli {
    fn log_args(&self) -> &LogArgs {
        &self.log
    }
}

impl Cli {
    /// The command line, with the log level at `warn` unless asked otherwise: the
    /// narration is on stdout, the daemon's own log would drown it.
    pub(crate) fn with_quiet_logs(mut self) -> Self {
        let rust_log = std::env::var("RUST_LOG").is_ok_and(|v| !v.trim().is_empty());
        if self.log.level.is_none() && !rust_log {
            self.log.level = Some("warn".to_owned());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["berth-demo"]).unwrap();
        assert_eq!(cli.aws_endpoint, None);
        assert_eq!(cli.drain_delay, Duration::from_secs(1));
        assert_eq!(cli.progress, Progress::Auto);
        let cli = Cli::try_parse_from([
            "berth-demo",
            "--aws-endpoint",
            "http://127.0.0.1:5000",
            "--drain-delay",
            "250ms",
            "--progress",
            "plain",
        ])
        .unwrap();
        assert_eq!(cli.aws_endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(cli.drain_delay, Duration::from_millis(250));
        assert_eq!(cli.progress, Progress::Plain);
        assert!(Cli::try_parse_from(["berth-demo", "--drain-delay", "soon"]).is_err());
    }
}
