//! Command-line arguments every berth binary flattens into its own (`#[command(flatten)]`).

use std::time::Duration;

use clap::{Args, ValueEnum};

/// How logs are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `--log-format` and `--log-level`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct LogArgs {
    /// Log format on stderr.
    #[arg(
        long = "log-format",
        env = "BERTH_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub format: LogFormat,

    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives
    /// (`info,berth_core=debug`) [default: $RUST_LOG, else info].
    #[arg(long = "log-level", env = "BERTH_LOG_LEVEL", value_name = "FILTER")]
    pub level: Option<String>,
}

/// The AWS settings every binary that calls AWS shares.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct AwsArgs {
    /// Most AWS API calls per second the engine sends (its calls are spaced by 1/N
    /// seconds; the SDK's own retries come on top); 0 = unlimited.
    #[arg(
        long = "aws-max-rps",
        env = "BERTH_AWS_MAX_RPS",
        value_name = "N",
        default_value_t = 0.0
    )]
    pub max_rps: f64,

    /// The identity of this installation of berth, written into every ownership marker
    /// and ledger row it creates. It does not change when a table or a cluster is renamed;
    /// two installations sharing an account must use different ids.
    #[arg(
        long = "installation-id",
        env = "BERTH_INSTALLATION_ID",
        value_name = "ID",
        default_value = "default"
    )]
    pub installation_id: String,
}

impl Default for AwsArgs {
    fn default() -> Self {
        AwsArgs {
            max_rps: 0.0,
            installation_id: "default".to_owned(),
        }
    }
}

impl AwsArgs {
    /// The engine's minimum interval between two calls
    /// (`berth_core::engine::ApplyOptions::min_call_interval`): zero when unlimited
    /// (0, negative or not a number).
    pub fn min_call_interval(&self) -> Duration {
        if self.max_rps.is_finite() && self.max_rps > 0.0 {
            Duration::from_secs_f64(1.0 / self.max_rps)
        } else {
            Duration::ZERO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        aws: AwsArgs,
    }

    #[test]
    fn defaults_and_flags() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.log.format, LogFormat::Text);
        assert_eq!(cli.aws.min_call_interval(), Duration::ZERO);
        assert_eq!(cli.aws.installation_id, "default");
        let cli = Cli::try_parse_from([
            "x",
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "--aws-max-rps",
            "4",
            "--installation-id",
            "prod-eu",
        ])
        .unwrap();
        assert_eq!(cli.log.format, LogFormat::Json);
        assert_eq!(cli.log.level.as_deref(), Some("debug"));
        assert_eq!(cli.aws.min_call_interval(), Duration::from_millis(250));
        assert_eq!(cli.aws.installation_id, "prod-eu");
        assert!(Cli::try_parse_from(["x", "--log-format", "xml"]).is_err());
    }
}
