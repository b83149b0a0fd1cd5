//! The ledger over DynamoDB: [`DynamoLedger`] implements [`berth_core::provider::Ledger`].
//!
//! One item per row: the key in the table's hash key attribute, `owner` (string),
//! `version` (number) and every record attribute as a top-level string attribute.
//! Conditions are DynamoDB condition expressions, so a claim is decided by the
//! service: of many callers writing `Absent`, `Version(v)` or `AbsentOrAny(..)` (absent,
//! or ours with one of these attribute values), exactly one wins and the others get
//! [`Error::Conflict`].

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use berth_core::domain::{AttributeEquals, LedgerRecord, Owner, WriteCondition};
use berth_core::provider::Ledger;
use berth_core::{Error, Result};

use crate::error::from_sdk;
use crate::CallCounter;

/// The attribute holding the record's owner.
pub const OWNER_ATTRIBUTE: &str = "owner";
/// The attribute holding the record's version (a number).
pub const VERSION_ATTRIBUTE: &str = "version";

/// How often an unconditional write re-reads the version after losing a race.
const ALWAYS_WRITE_ATTEMPTS: usize = 5;

type Item = HashMap<String, AttributeValue>;

/// A [`Ledger`] in one DynamoDB table whose hash key is a string attribute.
#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
    key_attribute: String,
}

impl DynamoLedger {
    /// A ledger in `table`, whose hash key is the string attribute `key_attribute`,
    /// over `config`, counting its calls in `counter`.
    pub fn new(
        config: &SdkConfig,
        counter: CallCounter,
        table: impl Into<String>,
        key_attribute: impl Into<String>,
    ) -> Self {
        let config = aws_sdk_dynamodb::config::Builder::from(config)
            .interceptor(counter)
            .build();
        DynamoLedger {
            client: Client::from_conf(config),
            table: table.into(),
            key_attribute: key_attribute.into(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn to_item(&self, record: &LedgerRecord) -> Result<Item> {
        let mut item = Item::with_capacity(record.attributes.len() + 3);
        for (name, value) in &record.attributes {
            if self.is_reserved(name) {
                return Err(Error::invalid(format!(
                    "ledger row {}: attribute name {name:?} is reserved",
                    record.key
                )));
            }
            item.insert(name.clone(), AttributeValue::S(value.clone()));
        }
        item.insert(
            self.key_attribute.clone(),
            AttributeValue::S(record.key.clone()),
        );
        item.insert(
            OWNER_ATTRIBUTE.to_owned(),
            AttributeValue::S(record.owner.as_str().to_owned()),
        );
        item.insert(
            VERSION_ATTRIBUTE.to_owned(),
            AttributeValue::N(record.version.to_string()),
        );
        Ok(item)
    }

    fn record_of(&self, operation: &str, item: &Item) -> Result<LedgerRecord> {
        let invalid = |message: String| Error::Provider {
            operation: operation.to_owned(),
            message: format!("table {}: {message}", self.table),
            retryable: false,
        };
        let key = match item.get(&self.key_attribute) {
            Some(AttributeValue::S(key)) => key.clone(),
            _ => {
                return Err(invalid(format!(
                    "an item without string {}",
                    self.key_attribute
                )))
            }
        };
        let owner = match item.get(OWNER_ATTRIBUTE) {
            Some(AttributeValue::S(owner)) => Owner::new(owner.clone())?,
            _ => return Err(invalid(format!("item {key} has no string owner"))),
        };
        let version = match item.get(VERSION_ATTRIBUTE) {
            Some(AttributeValue::N(n)) => n
                .parse()
                .map_err(|_| invalid(format!("item {key} has version {n:?}")))?,
            _ => return Err(invalid(format!("item {key} has no numeric version"))),
        };
        let mut attributes = BTreeMap::new();
        for (name, value) in item {
            if self.is_reserved(name) {
                continue;
            }
            // Strings are ours; numbers may be added by operators (e.g. a TTL attribute).
            // Other types are not part of the ledger's model.
            match value {
                AttributeValue::S(s) | AttributeValue::N(s) => {
                    attributes.insert(name.clone(), s.clone());
                }
                _ => {}
            }
        }
        Ok(LedgerRecord {
            key,
            owner,
            attributes,
            version,
        })
    }

    /// The version a row has now, or `None` if it is absent.
    async fn current_version(&self, key: &str) -> Result<Option<u64>> {
        Ok(self.get(key).await?.map(|r| r.version))
    }

    /// One conditional `PutItem` of `record` at `version`, expecting the stored row to
    /// be absent (`previous` = `None`) or at version `previous`.
    async fn put_if(&self, record: &LedgerRecord, previous: Option<u64>) -> Result<LedgerRecord> {
        let mut stored = record.clone();
        stored.version = previous.map_or(1, |v| v + 1);
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.to_item(&stored)?));
        let request = match previous {
            None => request
                .condition_expression("attribute_not_exists(#key)")
                .expression_attribute_names("#key", &self.key_attribute),
            Some(v) => request
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", VERSION_ATTRIBUTE)
                .expression_attribute_values(":expected", AttributeValue::N(v.to_string())),
        };
        request.send().await.map_err(|e| {
            self.conflict_or(
                &record.key,
                previous,
                from_sdk("PutItem", "dynamodb:PutItem", e),
            )
        })?;
        Ok(stored)
    }

    /// One `PutItem` of `record` if the row is absent, or is `record`'s owner's and one
    /// of `any` holds: a claim decided by DynamoDB without reading the row first.
    ///
    /// `PutItem` cannot add one to a stored version it has not read, so this write
    /// stores the time in microseconds and is conditioned on it exceeding the stored
    /// version. Versions stay strictly increasing whoever wrote last (other writes
    /// add one); a clock behind the stored version only makes the claim lose, and
    /// the caller reads the row and writes by version.
    async fn put_claim(
        &self,
        record: &LedgerRecord,
        any: &[AttributeEquals],
    ) -> Result<LedgerRecord> {
        if any.is_empty() {
            return self.put_if(record, None).await;
        }
        let mut stored = record.clone();
        stored.version = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let mut clauses = Vec::with_capacity(any.len());
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.to_item(&stored)?))
            .expression_attribute_names("#key", &self.key_attribute)
            .expression_attribute_names("#owner", OWNER_ATTRIBUTE)
            .expression_attribute_names("#version", VERSION_ATTRIBUTE)
            .expression_attribute_values(
                ":owner",
                AttributeValue::S(record.owner.as_str().to_owned()),
            )
            .expression_attribute_values(":version", AttributeValue::N(stored.version.to_string()));
        for (i, clause) in any.iter().enumerate() {
            if self.is_reserved(&clause.name) {
                return Err(Error::invalid(format!(
                    "ledger row {}: a condition on the reserved attribute {:?}",
                    record.key, clause.name
                )));
            }
            clauses.push(format!("#c{i} = :c{i}"));
            request = request
                .expression_attribute_names(format!("#c{i}"), &clause.name)
                .expression_attribute_values(
                    format!(":c{i}"),
                    AttributeValue::S(clause.value.clone()),
                );
        }
        let condition = format!(
            "attribute_not_exists(#key) OR (#owner = :owner AND #version < :version AND ({}))",
            clauses.join(" OR ")
        );
        request
            .condition_expression(condition)
            .send()
            .await
            .map_err(|e| match from_sdk("PutItem", "dynamodb:PutItem", e) {
                Error::Conflict { .. } => Error::conflict(format!(
                    "ledger row {} in {} is another owner's or matches none of {}",
                    record.key,
                    self.table,
                    any.iter()
                        .map(|c| format!("{}={}", c.name, c.value))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                other => other,
            })?;
        Ok(stored)
    }

    fn is_reserved(&self, name: &str) -> bool {
        name == self.key_attribute || name == OWNER_ATTRIBUTE || name == VERSION_ATTRIBUTE
    }

    /// Names the row and the expectation in a failed condition.
    fn conflict_or(&self, key: &str, previous: Option<u64>, error: Error) -> Error {
        match error {
            Error::Conflict { .. } => Error::conflict(match previous {
                None => format!("ledger row {key} already exists in {}", self.table),
                Some(v) => format!(
                    "ledger row {key} in {} is no longer at version {v}",
                    self.table
                ),
            }),
            other => other,
        }
    }
}

#[async_trait]
impl Ledger for DynamoLedger {
    async fn get(&self, key: &str) -> Result<Option<LedgerRecord>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(&self.key_attribute, AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_sdk("GetItem", "dynamodb:GetItem", e))?;
        output
            .item()
            .map(|item| self.record_of("GetItem", item))
            .transpose()
    }

    async fn put(&self, record: LedgerRecord, condition: WriteCondition) -> Result<LedgerRecord> {
        match condition {
            WriteCondition::Absent => self.put_if(&record, None).await,
            WriteCondition::Version(v) => self.put_if(&record, Some(v)).await,
            WriteCondition::AbsentOrAny(any) => self.put_claim(&record, &any).await,
            // The version must still grow by one, so read it and write conditionally;
            // a concurrent writer only makes us read again.
            WriteCondition::Always => {
                let mut last = None;
                for _ in 0..ALWAYS_WRITE_ATTEMPTS {
                    let previous = self.current_version(&record.key).await?;
                    match self.put_if(&record, previous).await {
                        Err(e @ Error::Conflict { .. }) => last = Some(e),
                        done => return done,
                    }
                }
                Err(last.unwrap_or_else(|| Error::conflict(format!("ledger row {}", record.key))))
            }
        }
    }

    async fn delete(&self, key: &str, condition: WriteCondition) -> Result<()> {
        let request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(&self.key_attribute, AttributeValue::S(key.to_owned()));
        let (request, previous) = match condition {
            WriteCondition::AbsentOrAny(_) => {
                return Err(Error::invalid(
                    "a ledger delete is conditioned on absence or a version, not on attributes",
                ))
            }
            WriteCondition::Always => (request, None),
            WriteCondition::Absent => (
                request
                    .condition_expression("attribute_not_exists(#key)")
                    .expression_attribute_names("#key", &self.key_attribute),
                None,
            ),
            WriteCondition::Version(v) => (
                request
                    .condition_expression("#version = :expected")
                    .expression_attribute_names("#version", VERSION_ATTRIBUTE)
                    .expression_attribute_values(":expected", AttributeValue::N(v.to_string())),
                Some(v),
            ),
        };
        request.send().await.map_err(|e| {
            self.conflict_or(
                key,
                previous,
                from_sdk("DeleteItem", "dynamodb:DeleteItem", e),
            )
        })?;
        Ok(())
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<LedgerRecord>> {
        let mut records = Vec::new();
        let mut start_key: Option<Item> = None;
        loop {
            let mut request = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start_key.take());
            if !prefix.is_empty() {
                request = request
                    .filter_expression("begins_with(#key, :prefix)")
                    .expression_attribute_names("#key", &self.key_attribute)
                    .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()));
            }
            let page = request
                .send()
                .await
                .map_err(|e| from_sdk("Scan", "dynamodb:Scan", e))?;
            for item in page.items() {
                records.push(self.record_of("Scan", item)?);
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start_key = Some(key.clone()),
                _ => break,
            }
        }
        records.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(records)
    }
}
