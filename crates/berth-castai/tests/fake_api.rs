//! CastAiClient against FakeCastAi: the real HTTP exchange on loopback.

use std::sync::Arc;
use std::time::Duration;

use berth_castai::fake::{FakeCastAi, Fault};
use berth_castai::{ApiKey, CastAiClient, CastAiConfig};
use berth_core::domain::{TargetGroupArn, TargetGroupRef};
use berth_core::provider::{GroupBinding, NodeConfigurations};
use berth_core::Error;

const CLUSTER: &str = "0b2f6b29-6a4c-4d84-9a55-5c0d2c9e0a11";
const KEY: &str = "test-api-key-123";
const A: &str = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/1a2b";
const B: &str = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/api/3c4d";

fn binding(arn: &str, port: Option<u16>) -> GroupBinding {
    GroupBinding {
        group: TargetGroupRef::Arn(TargetGroupArn::new(arn).unwrap()),
        port,
    }
}

fn fake() -> FakeCastAi {
    FakeCastAi::start(CLUSTER, KEY).expect("start fake Cast.ai")
}

fn client(config: CastAiConfig) -> CastAiClient {
    CastAiClient::new(config).expect("build client")
}

#[tokio::test]
async fn reads_target_groups_null_ports_and_the_legacy_field() {
    let fake = fake();
    fake.set_eks(
        "cfg-1",
        serde_json::json!({
            "targetGroups": [{"arn": A, "port": 8080}, {"arn": B, "port": null}],
            "targetGroup": {"arn": A, "port": 8080}
        }),
    );
    fake.set_legacy_target_group("cfg-legacy", B, Some(443));
    let client = client(fake.config());

    let groups = client.target_groups("cfg-1").await.unwrap();
    // United, deduplicated, sorted by ARN.
    assert_eq!(groups, vec![binding(B, None), binding(A, Some(8080))]);
    let legacy = client.target_groups("cfg-legacy").await.unwrap();
    assert_eq!(legacy, vec![binding(B, Some(443))]);
    let cfg = client.node_configuration("cfg-1").await.unwrap();
    assert_eq!(cfg.name.as_deref(), Some("config-cfg-1"));
    assert_eq!(fake.refused_keys(), 0);
}

#[tokio::test]
async fn a_refused_key_is_a_clear_non_retryable_error() {
    let fake = fake();
    fake.set_target_groups("cfg-1", &[(A, Some(80))]);
    let mut config = fake.config();
    config.api_key = ApiKey::new("wrong-key").unwrap();
    let client = client(config);
    let err = client.target_groups("cfg-1").await.unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("refused the API key"), "{err}");
    assert!(
        !err.to_string().contains("wrong-key"),
        "the key leaked: {err}"
    );
    assert_eq!(fake.refused_keys(), 1);

    let fake_403 = fake;
    fake_403.fail_next(1, Fault::Status(403));
    let right = self::client(fake_403.config());
    let err = right.target_groups("cfg-1").await.unwrap_err();
    assert!(!err.is_retryable() && err.to_string().contains("refused the API key"));
}

#[tokio::test]
async fn an_unknown_configuration_is_not_found() {
    let fake = fake();
    let client = client(fake.config());
    let err = client.target_groups("missing").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn one_request_per_configuration_while_fresh_even_concurrently() {
    let fake = fake();
    fake.set_target_groups("cfg-1", &[(A, Some(80))]);
    fake.set_target_groups("cfg-2", &[(B, None)]);
    let client = Arc::new(client(fake.config()));
    let lookups = (0..20).map(|i| {
        let client = client.clone();
        async move {
            let id = if i % 2 == 0 { "cfg-1" } else { "cfg-2" };
            client.target_groups(id).await
        }
    });
    for result in futures_join_all(lookups).await {
        result.unwrap();
    }
    assert_eq!(fake.requests_for("cfg-1"), 1);
    assert_eq!(fake.requests_for("cfg-2"), 1);

    client.forget("cfg-1");
    client.target_groups("cfg-1").await.unwrap();
    assert_eq!(fake.requests_for("cfg-1"), 2);
}

#[tokio::test]
async fn an_outage_serves_the_last_known_configuration_and_backs_off() {
    let fake = fake();
    fake.set_target_groups("cfg-1", &[(A, Some(80)), (B, None)]);
    let mut config = fake.config();
    config.cache_ttl = Duration::ZERO; // every lookup asks
                                       // Pauses long enough that a loaded machine stays inside them between two lookups:
                                       // each sleep below must end inside a pause or after it, with margin.
    config.backoff_initial = Duration::from_millis(900);
    config.backoff_max = Duration::from_secs(10);
    let client = client(config);
    let good = client.target_groups("cfg-1").await.unwrap();
    assert_eq!(fake.requests_for("cfg-1"), 1);

    fake.set_outage(Some(Fault::Status(500)));
    assert_eq!(client.target_groups("cfg-1").await.unwrap(), good);
    assert_eq!(fake.requests_for("cfg-1"), 2);
    // Backing off: the next lookups are served without asking.
    for _ in 0..5 {
        assert_eq!(client.target_groups("cfg-1").await.unwrap(), good);
    }
    assert_eq!(fake.requests_for("cfg-1"), 2);

    // The backoff doubles while the outage lasts.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(client.target_groups("cfg-1").await.unwrap(), good);
    assert_eq!(fake.requests_for("cfg-1"), 3);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(client.target_groups("cfg-1").await.unwrap(), good);
    assert_eq!(fake.requests_for("cfg-1"), 3, "second pause is 1.8 s");

    // Recovery: the new configuration is picked up once the pause is over.
    fake.set_outage(None);
    fake.set_target_groups("cfg-1", &[(B, Some(9000))]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        client.target_groups("cfg-1").await.unwrap(),
        vec![binding(B, Some(9000))]
    );
    assert_eq!(fake.requests_for("cfg-1"), 4);
}

#[tokio::test]
async fn an_outage_with_nothing_cached_is_a_retryable_error_never_an_empty_list() {
    let fake = fake();
    fake.set_target_groups("cfg-1", &[(A, Some(80))]);
    let mut config = fake.config();
    // A pause a loaded machine cannot overrun between two lookups.
    config.backoff_initial = Duration::from_millis(500);
    config.backoff_max = Duration::from_secs(10);
    let client = client(config);
    fake.fail_next(2, Fault::Status(503));
    let err = client.target_groups("cfg-1").await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    // Still backing off (500 ms): the same error, no request.
    let again = client.target_groups("cfg-1").await.unwrap_err();
    assert!(again.is_retryable());
    assert_eq!(fake.requests_for("cfg-1"), 1);

    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(client.target_groups("cfg-1").await.is_err()); // second scripted 503
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        client.target_groups("cfg-1").await.unwrap(),
        vec![binding(A, Some(80))]
    );
}

#[tokio::test]
async fn a_slow_answer_times_out_and_falls_back() {
    let fake = fake();
    fake.set_target_groups("cfg-1", &[(A, Some(80))]);
    let mut config = fake.config();
    config.timeout = Duration::from_millis(200);
    config.cache_ttl = Duration::ZERO;
    let client = client(config);

    fake.fail_next(1, Fault::Delay(Duration::from_secs(2)));
    let started = std::time::Instant::now();
    let err = client.target_groups("cfg-1").await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(1));

    tokio::time::sleep(Duration::from_millis(80)).await;
    let good = client.target_groups("cfg-1").await.unwrap();
    fake.fail_next(1, Fault::Delay(Duration::from_secs(2)));
    assert_eq!(client.target_groups("cfg-1").await.unwrap(), good);
}

#[tokio::test]
async fn throttling_is_retryable_and_honours_retry_after() {
    let fake = fake();
    fake.set_target_groups("cfg-1", &[(A, Some(80))]);
    let client = client(fake.config());
    fake.fail_next(1, Fault::Status(429));
    let err = client.target_groups("cfg-1").await.unwrap_err();
    assert!(err.is_throttling(), "{err:?}");
    // Retry-After: 1 outweighs the 50 ms backoff.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(client.target_groups("cfg-1").await.is_err());
    assert_eq!(fake.requests_for("cfg-1"), 1);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(client.target_groups("cfg-1").await.is_ok());
}

#[tokio::test]
async fn an_unreachable_api_is_unavailable() {
    let fake = fake();
    let config = fake.config();
    drop(fake);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let client = client(config);
    let err = client.target_groups("cfg-1").await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[test]
fn bad_settings_are_refused_up_front() {
    let key = ApiKey::new("k").unwrap();
    let mut config = CastAiConfig::new("c", key.clone());
    config.base_url = "ftp://example.com".into();
    assert!(CastAiClient::new(config).is_err());
    let config = CastAiConfig::new("", key);
    assert!(CastAiClient::new(config).is_err());
}

/// `futures::future::join_all` without the dependency.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}
