//! The harness against a real moto server.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_elasticloadbalancingv2::error::ProvideErrorMetadata;
use aws_sdk_elasticloadbalancingv2::error::SdkError;
use aws_sdk_elasticloadbalancingv2::types::{TargetHealthStateEnum, TargetTypeEnum};
use berth_testing::{aws_env, sdk_config, Fault, FaultProxy, Match, MotoServer, Rule};

fn no_retries(endpoint: &str) -> aws_config::SdkConfig {
    sdk_config(endpoint)
        .to_builder()
        .retry_config(RetryConfig::disabled())
        .build()
}

fn fast_retries(endpoint: &str, attempts: u32) -> aws_config::SdkConfig {
    let retry = RetryConfig::standard()
        .with_max_attempts(attempts)
        .with_initial_backoff(Duration::from_millis(10))
        .with_max_backoff(Duration::from_millis(50));
    sdk_config(endpoint)
        .to_builder()
        .retry_config(retry)
        .build()
}

fn elb(config: &aws_config::SdkConfig) -> aws_sdk_elasticloadbalancingv2::Client {
    aws_sdk_elasticloadbalancingv2::Client::new(config)
}

fn dynamodb(config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("CreateTable");
}

/// A target group (of Lambda type: moto wants no VPC for it); returns its ARN.
async fn target_group(client: &aws_sdk_elasticloadbalancingv2::Client) -> String {
    let group = client
        .create_target_group()
        .name("berth-testing")
        .target_type(TargetTypeEnum::Lambda)
        .send()
        .await
        .expect("CreateTargetGroup");
    group.target_groups()[0]
        .target_group_arn()
        .expect("target group ARN")
        .to_owned()
}

fn port_of(endpoint: &str) -> u16 {
    endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("endpoint has a port")
}

fn answers(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

fn wait_until_closed(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !answers(port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[tokio::test]
async fn moto_starts_and_reset_deletes_everything() {
    let moto = MotoServer::isolated().await;
    assert!(moto.endpoint().starts_with("http://127.0.0.1:"));
    let client = dynamodb(&sdk_config(&moto.endpoint()));
    assert!(
        client
            .list_tables()
            .send()
            .await
            .unwrap()
            .table_names()
            .is_empty(),
        "isolated() resets"
    );

    create_table(&client, "ledger").await;
    assert_eq!(
        client.list_tables().send().await.unwrap().table_names(),
        ["ledger"]
    );
    moto.reset();
    assert!(client
        .list_tables()
        .send()
        .await
        .unwrap()
        .table_names()
        .is_empty());
}

#[test]
fn isolated_blocking_works_in_sync_tests() {
    let moto = MotoServer::isolated_blocking();
    assert_eq!(moto.port(), MotoServer::shared().port());
    assert!(answers(moto.port()));
}

#[test]
fn aws_env_points_children_at_the_endpoint() {
    let env = aws_env("http://127.0.0.1:1234");
    let get = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("AWS_ENDPOINT_URL"), Some("http://127.0.0.1:1234"));
    assert_eq!(get("AWS_ACCESS_KEY_ID"), Some("testing"));
    assert_eq!(get("AWS_SECRET_ACCESS_KEY"), Some("testing"));
    assert_eq!(get("AWS_REGION"), Some("us-east-1"));
    assert_eq!(get("AWS_EC2_METADATA_DISABLED"), Some("true"));
}

#[tokio::test]
async fn proxy_forwards_sdk_calls_and_counts_them() {
    let moto = MotoServer::isolated().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let client = dynamodb(&no_retries(&proxy.endpoint()));

    create_table(&client, "ledger").await;
    client
        .put_item()
        .table_name("ledger")
        .item("pk", AttributeValue::S("eipalloc-1".into()))
        .item("owner", AttributeValue::S("i-1".into()))
        .send()
        .await
        .expect("PutItem through the proxy");
    let item = client
        .get_item()
        .table_name("ledger")
        .key("pk", AttributeValue::S("eipalloc-1".into()))
        .send()
        .await
        .expect("GetItem through the proxy");
    assert_eq!(
        item.item().and_then(|i| i.get("owner")),
        Some(&AttributeValue::S("i-1".into()))
    );

    assert_eq!(proxy.count("CreateTable"), 1);
    assert_eq!(proxy.count("PutItem"), 1);
    assert_eq!(proxy.count("GetItem"), 1);
    assert_eq!(proxy.total(), 3);
    assert_eq!(proxy.operations(), ["CreateTable", "PutItem", "GetItem"]);

    let elb = elb(&no_retries(&proxy.endpoint()));
    let arn = target_group(&elb).await;
    let health = elb
        .describe_target_health()
        .target_group_arn(arn)
        .send()
        .await
        .unwrap();
    assert!(health.target_health_descriptions().is_empty());
    assert_eq!(proxy.count("CreateTargetGroup"), 1);
    assert_eq!(proxy.count("DescribeTargetHealth"), 1);

    proxy.reset_counts();
    assert_eq!(proxy.total(), 0);
}

#[tokio::test]
async fn throttle_rule_is_seen_by_the_sdk_as_throttling() {
    let moto = MotoServer::isolated().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let elb = elb(&no_retries(&proxy.endpoint()));
    let arn = target_group(&elb).await;

    let rule = proxy.add(Rule::new("DescribeTargetHealth", Fault::Throttle).times(1));
    let err = elb
        .describe_target_health()
        .target_group_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("Throttling"), "{err:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    // The rule is spent: the next call goes through.
    elb.describe_target_health()
        .target_group_arn(&arn)
        .send()
        .await
        .expect("second call");
    assert_eq!(proxy.fired(rule), 1);
    assert_eq!(proxy.count("DescribeTargetHealth"), 2);
    // Only the forwarded call reached moto; its body names the group.
    let bodies = proxy.forwarded_bodies("DescribeTargetHealth");
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(bodies[0].contains("TargetGroupArn="), "{bodies:?}");

    // JSON protocol.
    let ddb = dynamodb(&no_retries(&proxy.endpoint()));
    proxy.add(Rule::new("ListTables", Fault::Throttle).times(1));
    let err = ddb.list_tables().send().await.unwrap_err();
    assert_eq!(err.code(), Some("ThrottlingException"), "{err:?}");
}

#[tokio::test]
async fn sdk_retries_through_throttling_and_server_errors() {
    let moto = MotoServer::isolated().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let elb = elb(&fast_retries(&proxy.endpoint(), 4));
    let arn = target_group(&elb).await;

    proxy.add(Rule::new("DescribeTargetHealth", Fault::Throttle).times(2));
    proxy.add(Rule::new("DescribeTargetHealth", Fault::ServerError { status: 503 }).times(1));
    elb.describe_target_health()
        .target_group_arn(&arn)
        .send()
        .await
        .expect("retried to success");
    assert_eq!(proxy.count("DescribeTargetHealth"), 4);
}

#[tokio::test]
async fn server_error_rule_answers_with_the_status() {
    let moto = MotoServer::isolated().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let elb = elb(&no_retries(&proxy.endpoint()));
    proxy.add(Rule::new("DescribeTargetGroups", Fault::ServerError { status: 500 }).times(1));
    proxy.add(Rule::new("DescribeTargetGroups", Fault::ServerError { status: 503 }).times(1));

    let err = elb.describe_target_groups().send().await.unwrap_err();
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(500),
        "{err:?}"
    );
    assert_eq!(err.code(), Some("InternalFailure"));
    let err = elb.describe_target_groups().send().await.unwrap_err();
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(503),
        "{err:?}"
    );
    assert_eq!(err.code(), Some("ServiceUnavailable"));
    elb.describe_target_groups()
        .send()
        .await
        .expect("rules spent");
    assert_eq!(proxy.count("DescribeTargetGroups"), 3);

    let ddb = dynamodb(&no_retries(&proxy.endpoint()));
    proxy.add(
        Rule::matching(
            Match::Service("dynamodb".into()),
            Fault::ServerError { status: 500 },
        )
        .times(1),
    );
    let err = ddb.list_tables().send().await.unwrap_err();
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(500),
        "{err:?}"
    );
}

#[tokio::test]
async fn reset_rule_closes_the_connection_without_an_answer() {
    let moto = MotoServer::isolated().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let elb = elb(&no_retries(&proxy.endpoint()));
    proxy.add(Rule::new("DescribeTargetGroups", Fault::Reset).times(1));

    let err = elb.describe_target_groups().send().await.unwrap_err();
    assert!(
        matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "expected a transport error, got {err:?}"
    );
    assert!(err.raw_response().is_none(), "no HTTP answer: {err:?}");
    elb.describe_target_groups()
        .send()
        .await
        .expect("rule spent");
    assert_eq!(proxy.count("DescribeTargetGroups"), 2);

    // The SDK's retry treats a reset connection as transient.
    let retrying = self::elb(&fast_retries(&proxy.endpoint(), 3));
    proxy.add(Rule::new("DescribeTargetGroups", Fault::Reset).times(2));
    retrying
        .describe_target_groups()
        .send()
        .await
        .expect("retried through resets");
    assert_eq!(proxy.count("DescribeTargetGroups"), 5);
}

#[tokio::test]
async fn respond_rule_fakes_states_moto_cannot_produce() {
    let moto = MotoServer::isolated().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let elb = elb(&no_retries(&proxy.endpoint()));
    let body = r#"<DescribeTargetHealthResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">
  <DescribeTargetHealthResult>
    <TargetHealthDescriptions>
      <member>
        <Target><Id>10.0.0.1</Id><Port>80</Port></Target>
        <TargetHealth><State>draining</State><Reason>Target.DeregistrationInProgress</Reason></TargetHealth>
      </member>
      <member>
        <Target><Id>10.0.0.2</Id><Port>80</Port></Target>
        <TargetHealth><State>initial</State><Reason>Elb.RegistrationInProgress</Reason></TargetHealth>
      </member>
    </TargetHealthDescriptions>
  </DescribeTargetHealthResult>
  <ResponseMetadata><RequestId>x</RequestId></ResponseMetadata>
</DescribeTargetHealthResponse>"#;
    proxy.add(Rule::new(
        "DescribeTargetHealth",
        Fault::Respond {
            status: 200,
            body: body.into(),
        },
    ));

    let health = elb
        .describe_target_health()
        .target_group_arn("arn:fake")
        .send()
        .await
        .unwrap();
    let states: Vec<_> = health
        .target_health_descriptions()
        .iter()
        .map(|d| d.target_health().and_then(|h| h.state()).cloned())
        .collect();
    assert_eq!(
        states,
        [
            Some(TargetHealthStateEnum::Draining),
            Some(TargetHealthStateEnum::Initial)
        ]
    );

    proxy.clear();
    let err = elb
        .describe_target_health()
        .target_group_arn("arn:fake")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.code().is_some(),
        "moto answers again once rules are cleared: {err:?}"
    );
}

#[tokio::test]
async fn delay_rule_adds_latency_then_forwards() {
    let moto = MotoServer::isolated().await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let elb = elb(&no_retries(&proxy.endpoint()));
    let rule = proxy.add(Rule::any(Fault::Delay(Duration::from_millis(300))).times(1));

    let started = Instant::now();
    elb.describe_target_groups()
        .send()
        .await
        .expect("delayed, then forwarded");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(proxy.fired(rule), 1);
    assert!(proxy.remove(rule));
    assert!(!proxy.remove(rule));
}

#[test]
fn private_server_stops_when_dropped() {
    let server = MotoServer::start().expect("moto starts");
    let port = server.port();
    assert!(answers(port));
    drop(server);
    assert!(
        wait_until_closed(port),
        "moto on port {port} still answers after drop"
    );
}

#[test]
fn moto_dies_with_the_test_process() {
    for mode in ["exit", "kill"] {
        let arg = if mode == "exit" { "exit" } else { "sleep" };
        let mut child = Command::new(env!("CARGO_BIN_EXE_moto-child"))
            .arg(arg)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run the moto-child binary");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let endpoint = stdout
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.split("MOTO_ENDPOINT=").nth(1).map(str::to_owned))
            .expect("child prints its moto endpoint");
        let port = port_of(&endpoint);
        if mode == "kill" {
            assert!(answers(port), "child's moto answers while the child runs");
            child.kill().unwrap(); // SIGKILL: no cleanup code runs at all
        }
        child.wait().unwrap();
        assert!(
            wait_until_closed(port),
            "{mode}: moto on port {port} outlived its test process"
        );
    }
}
