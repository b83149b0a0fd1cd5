//! Shared SDK configuration: one [`SdkConfig`] per process, from which every adapter
//! builds its client.

use std::time::Duration;

use aws_config::retry::RetryConfig;
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
    /// Attempts per operation by the SDK's own (adaptive) retry, the first included.
    pub max_attempts: u32,
}

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions {
            region: None,
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(30),
            max_attempts: 5,
        }
    }
}

/// Loads the SDK configuration.
///
/// - Credentials: the standard chain — environment, web identity (IRSA), container
///   credentials (EKS Pod Identity, ECS), then IMDSv2 instance profile.
/// - Region: `options.region`, else the standard chain.
/// - Endpoints: `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` are read by
///   aws-config itself; this is how tests and local runs reach moto.
/// - Retries: adaptive mode (client-side rate limiting once throttled) with
///   `options.max_attempts`; timeouts from `options`.
pub async fn load_sdk_config(options: &AwsOptions) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config(options))
        .timeout_config(timeout_config(options));
    if let Some(region) = &options.region {
        loader = loader.region(Region::new(region.clone()));
    }
    loader.load().await
}

/// The retry configuration berth uses: adaptive, `options.max_attempts` attempts.
pub fn retry_config(options: &AwsOptions) -> RetryConfig {
    RetryConfig::adaptive().with_max_attempts(options.max_attempts.max(1))
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
    fn retries_are_adaptive_and_bounded() {
        let options = AwsOptions {
            max_attempts: 3,
            ..AwsOptions::default()
        };
        let retry = retry_config(&options);
        assert_eq!(retry.mode(), RetryMode::Adaptive);
        assert_eq!(retry.max_attempts(), 3);
        let zero = AwsOptions {
            max_attempts: 0,
            ..AwsOptions::default()
        };
        assert_eq!(retry_config(&zero).max_attempts(), 1);
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
