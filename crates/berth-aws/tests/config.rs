//! `load_sdk_config` reads the standard environment: credentials, region and the
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` overrides every berth binary
//! and test uses to reach moto. Alone in its test binary because it sets
//! process-wide environment variables.
#![cfg(all(feature = "elbv2", feature = "route53"))]

use std::time::Duration;

use aws_config::retry::RetryMode;
use berth_aws::config::{load_sdk_config, AwsOptions};
use berth_aws::elbv2::ElbTargetGroups;
use berth_aws::route53::Route53Zones;
use berth_aws::CallCounter;
use berth_core::domain::TargetGroupRef;
use berth_core::provider::TargetGroups;
use berth_core::Error;
use berth_testing::{aws_env, FaultProxy, MotoServer};

#[tokio::test]
async fn sdk_config_comes_from_the_environment_with_per_service_endpoints() {
    let moto = MotoServer::isolated().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    for (key, value) in aws_env(&moto.endpoint()) {
        std::env::set_var(key, value);
    }
    // Route53 alone goes through the proxy, which counts what reaches it.
    std::env::set_var("AWS_ENDPOINT_URL_ROUTE_53", proxy.endpoint());

    let options = AwsOptions {
        max_attempts: 4,
        connect_timeout: Duration::from_secs(2),
        ..AwsOptions::default()
    };
    let config = load_sdk_config(&options).await;
    assert_eq!(config.region().map(|r| r.as_ref()), Some("us-east-1"));
    let retry = config.retry_config().expect("retry config");
    assert_eq!(retry.mode(), RetryMode::Standard);
    assert_eq!(retry.max_attempts(), 4);
    let timeouts = config.timeout_config().expect("timeout config");
    assert_eq!(timeouts.connect_timeout(), Some(Duration::from_secs(2)));
    assert_eq!(
        timeouts.operation_timeout(),
        Some(options.operation_timeout)
    );

    let counter = CallCounter::new();
    let elb = ElbTargetGroups::new(&config, counter.clone());
    let err = elb
        .resolve(&TargetGroupRef::Name("absent".into()))
        .await
        .unwrap_err();
    // moto answered (credentials and region were accepted): the group is unknown.
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(counter.get("DescribeTargetGroups"), 1);
    assert_eq!(proxy.count("DescribeTargetGroups"), 0);

    let zones = Route53Zones::new(&config, counter.clone());
    let err = zones.find_zone("example.com").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(proxy.count("ListHostedZonesByName"), 1);

    // An explicit region wins over the environment.
    let pinned = load_sdk_config(&AwsOptions {
        region: Some("eu-west-1".into()),
        ..AwsOptions::default()
    })
    .await;
    assert_eq!(pinned.region().map(|r| r.as_ref()), Some("eu-west-1"));

    // AWS_RETRY_MODE and AWS_MAX_ATTEMPTS, the SDKs' standard variables, opt in to
    // adaptive retries.
    std::env::set_var("AWS_RETRY_MODE", "adaptive");
    std::env::set_var("AWS_MAX_ATTEMPTS", "6");
    let adaptive = load_sdk_config(&AwsOptions::default()).await;
    let retry = adaptive.retry_config().expect("retry config");
    assert_eq!(retry.mode(), RetryMode::Adaptive);
    assert_eq!(retry.max_attempts(), 6);
    std::env::remove_var("AWS_RETRY_MODE");
    std::env::remove_var("AWS_MAX_ATTEMPTS");
}
