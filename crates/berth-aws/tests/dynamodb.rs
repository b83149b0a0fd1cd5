//! `DynamoLedger` against a real moto server: conditions are enforced by the service.
#![cfg(feature = "dynamodb")]

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use berth_aws::dynamodb::DynamoLedger;
use berth_aws::CallCounter;
use berth_core::domain::{AttributeEquals, LedgerRecord, Owner, WriteCondition};
use berth_core::provider::Ledger;
use berth_core::Error;
use berth_testing::{sdk_config, MotoServer};

const TABLE: &str = "berth-ledger";
const KEY: &str = "pk";

async fn table(moto: &MotoServer) -> (Client, aws_config::SdkConfig) {
    let config = sdk_config(&moto.endpoint());
    let client = Client::new(&config);
    client
        .create_table()
        .table_name(TABLE)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(KEY)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(KEY)
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("CreateTable");
    (client, config)
}

async fn raw_item(client: &Client, key: &str) -> Option<HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(TABLE)
        .key(KEY, AttributeValue::S(key.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item()
        .cloned()
}

/// Every operation the ledger called is in the IAM action list.
fn assert_declared(counter: &CallCounter) {
    assert!(counter.total() > 0);
    for operation in counter.snapshot().keys() {
        assert!(
            berth_aws::iam::iam_action("dynamodb", operation).is_some(),
            "{operation} is missing from the dynamodb IAM actions"
        );
    }
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.into())
}

fn owner(id: &str) -> Owner {
    Owner::new(id).unwrap()
}

fn claim(key: &str, instance: &str) -> LedgerRecord {
    LedgerRecord::new(key, owner("berth/test/lambda"))
        .with("state", "bound")
        .with("instance", instance)
}

fn conflict<T>(result: &berth_core::Result<T>) -> bool {
    matches!(result, Err(Error::Conflict { .. }))
}

#[tokio::test]
async fn put_absent_claims_once_and_stores_top_level_attributes() {
    let moto = MotoServer::isolated().await;
    let (client, config) = table(&moto).await;
    let counter = CallCounter::new();
    let ledger = DynamoLedger::new(&config, counter.clone(), TABLE, KEY);

    let stored = ledger
        .put(claim("eipalloc-1", "i-1"), WriteCondition::Absent)
        .await
        .unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(counter.get("PutItem"), 1);

    let item = raw_item(&client, "eipalloc-1").await.expect("row written");
    assert_eq!(item.get(KEY), Some(&s("eipalloc-1")));
    assert_eq!(item.get("owner"), Some(&s("berth/test/lambda")));
    assert_eq!(item.get("version"), Some(&AttributeValue::N("1".into())));
    assert_eq!(item.get("state"), Some(&s("bound")));
    assert_eq!(item.get("instance"), Some(&s("i-1")));
    assert_eq!(item.len(), 5);

    // A second first-claim loses and changes nothing (seed 002 used attribute_exists
    // and failed every new item instead).
    let second = ledger
        .put(claim("eipalloc-1", "i-2"), WriteCondition::Absent)
        .await;
    assert!(conflict(&second), "{second:?}");
    let item = raw_item(&client, "eipalloc-1").await.unwrap();
    assert_eq!(item.get("instance"), Some(&s("i-1")));
    assert_eq!(item.get("version"), Some(&AttributeValue::N("1".into())));
}

#[tokio::test]
async fn get_reads_rows_written_by_the_sdk() {
    let moto = MotoServer::isolated().await;
    let (client, config) = table(&moto).await;
    client
        .put_item()
        .table_name(TABLE)
        .item(KEY, s("dns/node-1.example.com"))
        .item("owner", s("berth/prod/bootstrap"))
        .item("version", AttributeValue::N("7".into()))
        .item("record", s("10.0.0.1"))
        .item("expires_at", AttributeValue::N("1700000000".into()))
        .send()
        .await
        .expect("PutItem");

    let counter = CallCounter::new();
    let ledger = DynamoLedger::new(&config, counter.clone(), TABLE, KEY);
    let record = ledger
        .get("dns/node-1.example.com")
        .await
        .unwrap()
        .expect("row");
    assert_eq!(record.key, "dns/node-1.example.com");
    assert_eq!(record.owner, owner("berth/prod/bootstrap"));
    assert_eq!(record.version, 7);
    assert_eq!(record.get("record"), Some("10.0.0.1"));
    assert_eq!(record.get("expires_at"), Some("1700000000"));
    assert_eq!(record.attributes.len(), 2);

    assert_eq!(ledger.get("dns/absent").await.unwrap(), None);
    assert_eq!(counter.get("GetItem"), 2);
    assert_declared(&counter);
}

#[tokio::test]
async fn put_with_version_is_compare_and_swap() {
    let moto = MotoServer::isolated().await;
    let (client, config) = table(&moto).await;
    let ledger = DynamoLedger::new(&config, CallCounter::new(), TABLE, KEY);

    let v1 = ledger
        .put(claim("eipalloc-1", "i-1"), WriteCondition::Absent)
        .await
        .unwrap();
    let v2 = ledger
        .put(
            claim("eipalloc-1", "i-1").with("state", "released"),
            WriteCondition::Version(v1.version),
        )
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    let item = raw_item(&client, "eipalloc-1").await.unwrap();
    assert_eq!(item.get("state"), Some(&s("released")));
    assert_eq!(item.get("version"), Some(&AttributeValue::N("2".into())));

    // A stale version loses.
    let stale = ledger
        .put(claim("eipalloc-1", "i-9"), WriteCondition::Version(1))
        .await;
    assert!(conflict(&stale), "{stale:?}");
    // A version condition on an absent row loses too.
    let absent = ledger
        .put(claim("eipalloc-2", "i-9"), WriteCondition::Version(1))
        .await;
    assert!(conflict(&absent), "{absent:?}");
    assert_eq!(raw_item(&client, "eipalloc-2").await, None);
    let item = raw_item(&client, "eipalloc-1").await.unwrap();
    assert_eq!(item.get("instance"), Some(&s("i-1")));
}

#[tokio::test]
async fn put_always_replaces_the_row_and_bumps_the_version() {
    let moto = MotoServer::isolated().await;
    let (client, config) = table(&moto).await;
    let ledger = DynamoLedger::new(&config, CallCounter::new(), TABLE, KEY);

    let first = ledger
        .put(claim("eipalloc-1", "i-1"), WriteCondition::Always)
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    // Replaces: the `instance` attribute is gone afterwards.
    let replaced =
        LedgerRecord::new("eipalloc-1", owner("berth/test/lambda")).with("state", "free");
    let second = ledger.put(replaced, WriteCondition::Always).await.unwrap();
    assert_eq!(second.version, 2);
    let item = raw_item(&client, "eipalloc-1").await.unwrap();
    assert_eq!(item.get("state"), Some(&s("free")));
    assert_eq!(item.get("instance"), None);
    assert_eq!(item.get("version"), Some(&AttributeValue::N("2".into())));
}

#[tokio::test]
async fn reserved_attribute_names_are_refused() {
    let moto = MotoServer::isolated().await;
    let (client, config) = table(&moto).await;
    let ledger = DynamoLedger::new(&config, CallCounter::new(), TABLE, KEY);
    for name in ["owner", "version", KEY] {
        let record = claim("eipalloc-1", "i-1").with(name, "x");
        let err = ledger
            .put(record, WriteCondition::Always)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{name}: {err:?}");
    }
    assert_eq!(raw_item(&client, "eipalloc-1").await, None);
}

#[tokio::test]
async fn delete_honours_conditions_and_an_absent_row_is_success() {
    let moto = MotoServer::isolated().await;
    let (client, config) = table(&moto).await;
    let counter = CallCounter::new();
    let ledger = DynamoLedger::new(&config, counter.clone(), TABLE, KEY);
    let stored = ledger
        .put(claim("eipalloc-1", "i-1"), WriteCondition::Absent)
        .await
        .unwrap();

    let stale = ledger
        .delete("eipalloc-1", WriteCondition::Version(stored.version + 1))
        .await;
    assert!(conflict(&stale), "{stale:?}");
    assert!(raw_item(&client, "eipalloc-1").await.is_some());

    let present = ledger.delete("eipalloc-1", WriteCondition::Absent).await;
    assert!(conflict(&present), "{present:?}");
    assert!(raw_item(&client, "eipalloc-1").await.is_some());

    ledger
        .delete("eipalloc-1", WriteCondition::Version(stored.version))
        .await
        .unwrap();
    assert_eq!(raw_item(&client, "eipalloc-1").await, None);

    ledger
        .delete("eipalloc-1", WriteCondition::Always)
        .await
        .unwrap();
    assert_eq!(counter.get("DeleteItem"), 4);
    assert_declared(&counter);
}

#[tokio::test]
async fn scan_returns_every_row_with_the_prefix() {
    let moto = MotoServer::isolated().await;
    let (client, config) = table(&moto).await;
    let counter = CallCounter::new();
    let ledger = DynamoLedger::new(&config, counter.clone(), TABLE, KEY);
    for key in ["eip/b", "eip/a", "dns/a", "eipx", "targets/arn"] {
        ledger
            .put(claim(key, "i-1"), WriteCondition::Absent)
            .await
            .unwrap();
    }
    // A row written by someone else is read too.
    client
        .put_item()
        .table_name(TABLE)
        .item(KEY, s("eip/c"))
        .item("owner", s("other"))
        .item("version", AttributeValue::N("3".into()))
        .send()
        .await
        .unwrap();

    let keys = |rows: Vec<LedgerRecord>| rows.into_iter().map(|r| r.key).collect::<Vec<_>>();
    assert_eq!(
        keys(ledger.scan("eip/").await.unwrap()),
        ["eip/a", "eip/b", "eip/c"]
    );
    assert_eq!(
        keys(ledger.scan("eip").await.unwrap()),
        ["eip/a", "eip/b", "eip/c", "eipx"]
    );
    assert_eq!(ledger.scan("").await.unwrap().len(), 6);
    assert!(ledger.scan("nothing/").await.unwrap().is_empty());
    let other = ledger.scan("eip/c").await.unwrap();
    assert_eq!(other[0].owner, owner("other"));
    assert_eq!(other[0].version, 3);
    assert_eq!(counter.get("Scan"), 5);
    assert_declared(&counter);
}

#[tokio::test]
async fn a_missing_table_is_not_found() {
    let moto = MotoServer::isolated().await;
    let config = sdk_config(&moto.endpoint());
    let ledger = DynamoLedger::new(&config, CallCounter::new(), "no-such-table", KEY);
    let err = ledger.get("x").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

/// Many callers compare-and-swap the same row at once: DynamoDB lets exactly one win.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_have_exactly_one_winner() {
    const CALLERS: usize = 12;
    let moto = MotoServer::isolated().await;
    let (client, config) = table(&moto).await;
    let ledger = Arc::new(DynamoLedger::new(&config, CallCounter::new(), TABLE, KEY));

    // A first claim on a fresh row, a compare-and-swap on the claimed row, and a
    // claim of a free row without reading it.
    for round in ["absent", "version", "free"] {
        let key = format!("eipalloc-{round}");
        let condition = match round {
            "absent" => WriteCondition::Absent,
            "version" => {
                let v = ledger
                    .put(claim(&key, "i-initial"), WriteCondition::Absent)
                    .await
                    .unwrap()
                    .version;
                WriteCondition::Version(v)
            }
            _ => {
                let free =
                    LedgerRecord::new(&key, owner("berth/test/lambda")).with("state", "free");
                ledger.put(free, WriteCondition::Absent).await.unwrap();
                WriteCondition::AbsentOrAny(vec![AttributeEquals::new("state", "free")])
            }
        };
        let barrier = Arc::new(tokio::sync::Barrier::new(CALLERS));
        let tasks: Vec<_> = (0..CALLERS)
            .map(|n| {
                let ledger = Arc::clone(&ledger);
                let barrier = Arc::clone(&barrier);
                let key = key.clone();
                let condition = condition.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let instance = format!("i-{n}");
                    (
                        instance.clone(),
                        ledger.put(claim(&key, &instance), condition).await,
                    )
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (instance, result) = task.await.unwrap();
            match result {
                Ok(stored) => winners.push((instance, stored.version)),
                Err(Error::Conflict { .. }) => {}
                Err(other) => panic!("{round}: unexpected error {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "{round}: winners {winners:?}");
        let (winner, version) = &winners[0];
        let item = raw_item(&client, &key).await.unwrap();
        assert_eq!(item.get("instance"), Some(&s(winner)), "{round}");
        assert_eq!(
            item.get("version"),
            Some(&AttributeValue::N(version.to_string())),
            "{round}"
        );
    }
}
