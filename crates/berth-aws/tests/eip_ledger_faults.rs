//! `Ec2Addresses` and `DynamoLedger` through faults moto cannot produce — throttling,
//! 5xx, connection resets, refused permissions — injected by berth-testing's
//! `FaultProxy` between the SDK and moto. Fixtures are created on moto directly.
#![cfg(all(feature = "ec2", feature = "dynamodb"))]

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_ec2::types::DomainType;
use berth_aws::dynamodb::DynamoLedger;
use berth_aws::ec2::{Ec2Addresses, Ec2Instances};
use berth_aws::CallCounter;
use berth_core::domain::{
    AllocationId, AssociationTarget, InstanceId, LedgerRecord, Owner, WriteCondition,
};
use berth_core::engine::{retry, Caller, RetryPolicy};
use berth_core::provider::{Addresses, Instances, Ledger};
use berth_core::Error;
use berth_testing::{sdk_config, Fault, FaultProxy, MotoServer, Rule};

const TABLE: &str = "berth-ledger";

fn fast_sdk_retries(config: &SdkConfig, attempts: u32) -> SdkConfig {
    let retry = RetryConfig::adaptive()
        .with_max_attempts(attempts)
        .with_initial_backoff(Duration::from_millis(5))
        .with_max_backoff(Duration::from_millis(40));
    config.to_builder().retry_config(retry).build()
}

fn no_sdk_retries(config: &SdkConfig) -> SdkConfig {
    config
        .to_builder()
        .retry_config(RetryConfig::disabled())
        .build()
}

fn fast_engine_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        budget: Duration::from_secs(20),
    }
}

/// An instance and a free Elastic IP on moto; returns (instance id, allocation id).
async fn instance_and_address(direct: &SdkConfig) -> (String, String) {
    let ec2 = aws_sdk_ec2::Client::new(direct);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .unwrap()
        .vpc_id()
        .unwrap()
        .to_owned();
    let subnet = ec2
        .create_subnet()
        .vpc_id(vpc)
        .cidr_block("10.0.1.0/24")
        .send()
        .await
        .unwrap()
        .subnet()
        .unwrap()
        .subnet_id()
        .unwrap()
        .to_owned();
    let instance = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .min_count(1)
        .max_count(1)
        .subnet_id(subnet)
        .send()
        .await
        .unwrap()
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_owned();
    let allocation = ec2
        .allocate_address()
        .domain(DomainType::Vpc)
        .send()
        .await
        .unwrap()
        .allocation_id()
        .unwrap()
        .to_owned();
    (instance, allocation)
}

async fn raw_association(direct: &SdkConfig, allocation: &str) -> Option<(String, String)> {
    let address = aws_sdk_ec2::Client::new(direct)
        .describe_addresses()
        .allocation_ids(allocation)
        .send()
        .await
        .unwrap()
        .addresses()[0]
        .clone();
    let association = address.association_id().filter(|a| !a.is_empty())?;
    Some((
        association.to_owned(),
        address
            .network_interface_id()
            .unwrap_or_default()
            .to_owned(),
    ))
}

async fn create_table(direct: &SdkConfig) {
    aws_sdk_dynamodb::Client::new(direct)
        .create_table()
        .table_name(TABLE)
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
        .unwrap();
}

fn claim(key: &str, instance: &str) -> LedgerRecord {
    LedgerRecord::new(key, Owner::new("berth/test/lambda").unwrap()).with("instance", instance)
}

#[tokio::test]
async fn engine_associates_and_disassociates_through_throttling_errors_and_resets() {
    let moto = MotoServer::isolated().await;
    let direct = sdk_config(&moto.endpoint());
    let (instance_id, allocation) = instance_and_address(&direct).await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    // Two SDK attempts per engine attempt, so the faults reach the engine too.
    let config = fast_sdk_retries(&sdk_config(&proxy.endpoint()), 2);
    let counter = CallCounter::new();
    let instances = Ec2Instances::new(&config, counter.clone());
    let addresses = Arc::new(Ec2Addresses::new(&config, counter.clone()));

    let instance = instances
        .describe(&[InstanceId::new(&instance_id).unwrap()])
        .await
        .unwrap()
        .remove(0);
    let primary = instance.primary_interface().unwrap().clone();
    for rule in [
        Rule::new("AssociateAddress", Fault::Throttle).times(2),
        Rule::new("AssociateAddress", Fault::ServerError { status: 503 }).times(1),
        Rule::new("AssociateAddress", Fault::Reset).times(1),
        Rule::new("DisassociateAddress", Fault::ServerError { status: 500 }).times(2),
        Rule::new("DisassociateAddress", Fault::Reset).times(1),
    ] {
        proxy.add(rule);
    }
    // Every workflow calls its providers through the engine's caller.
    let caller = Caller::new(fast_engine_retries(), Duration::ZERO);

    let target = AssociationTarget {
        instance_id: instance.id.clone(),
        network_interface_id: primary.id.clone(),
        private_ip: primary.private_ip,
    };
    let allocation_id = AllocationId(allocation.clone());
    let associated = caller
        .call("AssociateAddress", || {
            addresses.associate(&allocation_id, &target)
        })
        .await;
    let tally = caller.tally().operations["AssociateAddress"];
    assert!(associated.is_ok(), "{associated:?}");
    assert!(tally.attempts > 1, "the engine retried: {tally:?}");
    assert_eq!(proxy.count("AssociateAddress"), 5, "4 faults, then through");
    assert_eq!(counter.get("AssociateAddress"), 5, "every attempt counted");
    let (association_id, eni) = raw_association(&direct, &allocation)
        .await
        .expect("associated");
    assert_eq!(eni, primary.id);

    let disassociated = caller
        .call("DisassociateAddress", || {
            addresses.disassociate(&association_id)
        })
        .await;
    assert!(disassociated.is_ok(), "{disassociated:?}");
    assert_eq!(proxy.count("DisassociateAddress"), 4);
    assert_eq!(raw_association(&direct, &allocation).await, None);
}

#[tokio::test]
async fn ledger_writes_retry_through_throttling_but_a_lost_condition_is_final() {
    let moto = MotoServer::isolated().await;
    let direct = sdk_config(&moto.endpoint());
    create_table(&direct).await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let counter = CallCounter::new();
    let ledger = DynamoLedger::new(
        &no_sdk_retries(&sdk_config(&proxy.endpoint())),
        counter.clone(),
        TABLE,
        "pk",
    );

    // Without SDK retries, throttling reaches the caller as a retryable `Throttled`.
    proxy.add(Rule::new("PutItem", Fault::Throttle).times(1));
    let err = ledger
        .put(claim("eipalloc-1", "i-1"), WriteCondition::Absent)
        .await
        .unwrap_err();
    assert!(err.is_throttling() && err.is_retryable(), "{err:?}");

    // The engine's retry converges through throttling, 5xx and a reset.
    proxy.add(Rule::new("PutItem", Fault::Throttle).times(2));
    proxy.add(Rule::new("PutItem", Fault::ServerError { status: 500 }).times(1));
    proxy.add(Rule::new("PutItem", Fault::Reset).times(1));
    let (stored, attempts) = retry(&fast_engine_retries(), || {
        ledger.put(claim("eipalloc-1", "i-1"), WriteCondition::Absent)
    })
    .await;
    assert_eq!(stored.unwrap().version, 1);
    assert_eq!(attempts, 5);

    // A lost condition is not retried: one attempt, `Conflict`.
    let (lost, attempts) = retry(&fast_engine_retries(), || {
        ledger.put(claim("eipalloc-1", "i-2"), WriteCondition::Absent)
    })
    .await;
    assert!(matches!(lost, Err(Error::Conflict { .. })), "{lost:?}");
    assert_eq!(attempts, 1);
    assert_eq!(
        ledger
            .get("eipalloc-1")
            .await
            .unwrap()
            .unwrap()
            .get("instance"),
        Some("i-1")
    );
    assert_eq!(counter.get("PutItem"), 7);
}

#[tokio::test]
async fn a_scan_answered_in_pages_is_followed_to_the_last_page() {
    let moto = MotoServer::isolated().await;
    let direct = sdk_config(&moto.endpoint());
    create_table(&direct).await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    let counter = CallCounter::new();
    let ledger = DynamoLedger::new(&sdk_config(&proxy.endpoint()), counter.clone(), TABLE, "pk");
    for n in 0..3 {
        ledger
            .put(
                claim(&format!("eipalloc-{n}"), "i-1"),
                WriteCondition::Absent,
            )
            .await
            .unwrap();
    }
    // moto answers a Scan in one page; DynamoDB stops a page at 1 MB. The first page
    // is DynamoDB's answer with a `LastEvaluatedKey`; the next request, which must
    // start after it, goes to moto.
    let first_page = proxy.add(
        Rule::new(
            "Scan",
            Fault::Respond {
                status: 200,
                body: "{\"Count\":1,\"ScannedCount\":1,\"Items\":[{\"pk\":{\"S\":\"eipalloc-0\"},\
                       \"owner\":{\"S\":\"berth/test/lambda\"},\"version\":{\"N\":\"1\"},\
                       \"instance\":{\"S\":\"i-1\"}}],\"LastEvaluatedKey\":{\"pk\":{\"S\":\"eipalloc-0\"}}}"
                    .into(),
            },
        )
        .times(1),
    );
    let rows = ledger.scan("eipalloc-").await.unwrap();
    assert_eq!(proxy.fired(first_page), 1);
    assert_eq!(counter.get("Scan"), 2, "one request per page");
    let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        ["eipalloc-0", "eipalloc-1", "eipalloc-2"],
        "each row once"
    );
}

/// EC2's answer when the role lacks a permission.
fn unauthorized_operation() -> Fault {
    Fault::Respond {
        status: 403,
        body: "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error>\
               <Code>UnauthorizedOperation</Code><Message>You are not authorized to perform \
               this operation.</Message></Error></Errors><RequestID>canned</RequestID></Response>"
            .into(),
    }
}

/// DynamoDB's answer when the role lacks `action`.
fn access_denied_exception(action: &str) -> Fault {
    Fault::Respond {
        status: 400,
        body: format!(
            "{{\"__type\":\"com.amazon.coral.service#AccessDeniedException\",\
             \"message\":\"User: arn:aws:sts::123456789012:assumed-role/berth/x is not \
             authorized to perform: {action}\"}}"
        ),
    }
}

#[tokio::test]
async fn refused_permissions_name_the_iam_action_and_are_not_retried() {
    let moto = MotoServer::isolated().await;
    let direct = sdk_config(&moto.endpoint());
    let (instance_id, allocation) = instance_and_address(&direct).await;
    create_table(&direct).await;
    let proxy = FaultProxy::start(&moto.endpoint()).await;
    // Default SDK retries: a refusal must not be retried by the SDK either.
    let config = fast_sdk_retries(&sdk_config(&proxy.endpoint()), 3);
    let counter = CallCounter::new();
    let instances = Ec2Instances::new(&config, counter.clone());
    let addresses = Ec2Addresses::new(&config, counter.clone());
    let ledger = DynamoLedger::new(&config, counter.clone(), TABLE, "pk");
    let instance = instances
        .describe(&[InstanceId::new(&instance_id).unwrap()])
        .await
        .unwrap()
        .remove(0);
    let primary = instance.primary_interface().unwrap();
    let target = AssociationTarget {
        instance_id: instance.id.clone(),
        network_interface_id: primary.id.clone(),
        private_ip: primary.private_ip,
    };

    proxy.add(Rule::new("AssociateAddress", unauthorized_operation()));
    proxy.add(Rule::new("DescribeInstances", unauthorized_operation()));
    proxy.add(Rule::new(
        "GetItem",
        access_denied_exception("dynamodb:GetItem"),
    ));
    proxy.add(Rule::new("Scan", access_denied_exception("dynamodb:Scan")));

    let denied = |err: Error, expected: &str| match err {
        Error::AccessDenied { action, .. } => assert_eq!(action, expected),
        other => panic!("expected AccessDenied for {expected}, got {other:?}"),
    };
    denied(
        addresses
            .associate(&AllocationId(allocation.clone()), &target)
            .await
            .unwrap_err(),
        "ec2:AssociateAddress",
    );
    denied(
        instances
            .describe(std::slice::from_ref(&instance.id))
            .await
            .unwrap_err(),
        "ec2:DescribeInstances",
    );
    denied(ledger.get("x").await.unwrap_err(), "dynamodb:GetItem");
    denied(ledger.scan("x").await.unwrap_err(), "dynamodb:Scan");

    assert_eq!(proxy.count("AssociateAddress"), 1);
    assert_eq!(proxy.count("GetItem"), 1);
    assert_eq!(proxy.count("Scan"), 1);
    assert_eq!(raw_association(&direct, &allocation).await, None);
}
