//! Shared SDK configuration: one [`SdkConfig`] per process, from which every adapter
//! builds its client.

use std::time::Duration;

use aws_config::retry::{RetryConfig, RetryMode};
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// How berth talks to AWS. Credentials, region and endpoints come from the standard
/// chains; these are the knobs berth sets on top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsOptions {
    /// The region, or `None` for the standard chain (`AWS_REGION`, profile, IMDS).
    pub region: Option<String>,
    /// Longest wait for a TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Longest wait for one operation, retries included.
    pub operation_timeout: Duration,
    /// Attempts per operation by the SDK's own retry, the first included
    /// (`AWS_MAX_ATTEMPTS` overrides it).
    pub max_attempts: u32,
    /// The SDK's retry mode: standard unless `AWS_RETRY_MODE=adaptive` opts in (see
    /// [`retry_config`] for why).
    pub retry_mode: RetryMode,
}

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions {
            region: None,
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(30),
            max_attempts: 3,
            retry_mode: RetryMode::Standard,
        }
    }
}

impl AwsOptions {
    /// These options with the standard AWS variables `AWS_RETRY_MODE` (`standard`,
    /// `adaptive`) and `AWS_MAX_ATTEMPTS` (at least 1) applied, read through `var`. A
    /// value that does not parse is ignored with a warning (the SDK's own defaults
    /// would reject it the same way).
    pub fn with_env(mut self, var: impl Fn(&str) -> Option<String>) -> AwsOptions {
        if let Some(mode) = var("AWS_RETRY_MODE") {
            match mode.parse::<RetryMode>() {
                Ok(mode) => self.retry_mode = mode,
                Err(e) => tracing::warn!(%e, "ignoring AWS_RETRY_MODE"),
            }
        }
        if let Some(attempts) = var("AWS_MAX_ATTEMPTS") {
            match attempts.trim().parse::<u32>() {
                Ok(n) if n >= 1 => self.max_attempts = n,
                _ => {
                    tracing::warn!(value = %attempts, "ignoring AWS_MAX_ATTEMPTS: not a whole number of at least 1")
                }
            }
        }
        self
    }
}

/// Loads the SDK configuration.
///
/// - Credentials: the standard chain — environment, web identity (IRSA), container
///   credentials (EKS Pod Identity, ECS), then IMDSv2 instance profile.
/// - Region: `options.region`, else the standard chain.
/// - Endpoints: `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` are read by
///   aws-config itself; this is how tests and local runs reach moto.
/// - Retries: [`retry_config`] of `options` with `AWS_RETRY_MODE` and
///   `AWS_MAX_ATTEMPTS` from the environment applied ([`AwsOptions::with_env`]);
///   timeouts from `options`.
pub async fn load_sdk_config(options: &AwsOptions) -> SdkConfig {
    let options = options.clone().with_env(|k| std::env::var(k).ok());
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config(&options))
        .timeout_config(timeout_config(&options));
    if let Some(region) = &options.region {
        loader = loader.region(Region::new(region.clone()));
    }
    loader.load().await
}

/// The retry configuration berth uses: `options.retry_mode` (standard by default),
/// `options.max_attempts` attempts.
///
/// Why standard and not adaptive: adaptive mode's client-side token bucket is shared
/// by every client of a service in the process, switches on at the first throttling
/// answer and never switches off. It then refills at a rate derived from the rate the
/// process was sending at — for the daemon, a burst every resync and nearly idle in
/// between, so the floor of 0.5 tokens/s — and a retry costs 5 tokens: each retry waits
/// ~10 s and a whole pass is paced at the floor rate long after AWS stopped throttling.
/// Measured (docs/benchmarks.md, "Faults and leader change at scale"; 1,000 nodes, a
/// fifth of the calls failing): a steady resync pass took 71–76 s in adaptive mode,
/// 7–10 s in standard mode; after a 20 s throttling burst the daemon converged 17.4 s
/// after it ended in adaptive mode, 3.7 s in standard mode. berth's
/// engine already retries every provider call with jittered exponential backoff that
/// doubles its ceiling when throttled, under a time budget, and spaces calls by
/// `--aws-max-rps`; the SDK's standard mode adds a few quick retries of transient
/// errors under its retry quota, and no pacing that outlives the throttling.
pub fn retry_config(options: &AwsOptions) -> RetryConfig {
    let attempts = options.max_attempts.max(1);
    match options.retry_mode {
        RetryMode::Adaptive => RetryConfig::adaptive().with_max_attempts(attempts),
        _ => RetryConfig::standard().with_max_attempts(attempts),
    }
}

/// The timeouts berth uses.
pub fn timeout_config(options: &AwsOptions) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(options.connect_timeout)
        .operation_timeout(options.operation_timeout)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::retry::RetryMode;

    #[test]
    fn retries_are_standard_and_bounded_by_default() {
        let retry = retry_config(&AwsOptions::default());
        assert_eq!(retry.mode(), RetryMode::Standard);
        assert_eq!(retry.max_attempts(), 3);
        assert_eq!(retry.max_backoff(), Duration::from_secs(20));
        let zero = AwsOptions {
            max_attempts: 0,
            ..AwsOptions::default()
        };
        assert_eq!(retry_config(&zero).max_attempts(), 1);
        let adaptive = AwsOptions {
            retry_mode: RetryMode::Adaptive,
            max_attempts: 5,
            ..AwsOptions::default()
        };
        let retry = retry_config(&adaptive);
        assert_eq!(retry.mode(), RetryMode::Adaptive);
        assert_eq!(retry.max_attempts(), 5);
    }

    #[test]
    fn the_standard_retry_variables_override_the_options() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let base = AwsOptions {
            max_attempts: 1,
            ..AwsOptions::default()
        };
        let opted_in = base.clone().with_env(env(&[
            ("AWS_RETRY_MODE", "Adaptive"),
            ("AWS_MAX_ATTEMPTS", "4"),
        ]));
        assert_eq!(opted_in.retry_mode, RetryMode::Adaptive);
        assert_eq!(opted_in.max_attempts, 4);
        assert_eq!(base.clone().with_env(env(&[])), base);
        let garbage = base.clone().with_env(env(&[
            ("AWS_RETRY_MODE", "eager"),
            ("AWS_MAX_ATTEMPTS", "0"),
        ]));
        assert_eq!(garbage, base, "unparsable values are ignored");
    }

    #[test]
    fn timeouts_come_from_the_options() {
        let options = AwsOptions::default();
        let timeouts = timeout_config(&options);
        assert_eq!(timeouts.connect_timeout(), Some(options.connect_timeout));
        assert_eq!(
            timeouts.operation_timeout(),
            Some(options.operation_timeout)
        );
    }
}
