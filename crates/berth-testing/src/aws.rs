//! Pointing AWS clients (in-process or child processes) at a test endpoint.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;

/// The region every test client uses.
pub const TEST_REGION: &str = "us-east-1";

/// Environment variables a child process (a berth binary under test) needs to
/// reach `endpoint` (moto, or a [`FaultProxy`](crate::FaultProxy) in front of
/// it) with static test credentials and without probing EC2 instance metadata.
///
/// ```no_run
/// # let endpoint = String::new();
/// let mut cmd = std::process::Command::new("berth-eip");
/// cmd.envs(berth_testing::aws_env(&endpoint));
/// ```
pub fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", TEST_REGION.to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
}

/// An [`SdkConfig`] that sends every service to `endpoint`, with static test
/// credentials, region [`TEST_REGION`] and the SDK's default (standard) retry
/// policy. Nothing is read from the environment or from `~/.aws`.
///
/// Adjust it with [`SdkConfig::to_builder`], e.g. to disable retries:
///
/// ```no_run
/// use aws_config::retry::RetryConfig;
/// # let endpoint = String::new();
/// let config = berth_testing::sdk_config(&endpoint)
///     .to_builder()
///     .retry_config(RetryConfig::disabled())
///     .build();
/// ```
pub fn sdk_config(endpoint: &str) -> SdkConfig {
    let credentials = Credentials::new("testing", "testing", None, None, "berth-testing");
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::from_static(TEST_REGION))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build()
}
