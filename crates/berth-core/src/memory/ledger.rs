use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::Faults;
use crate::domain::{LedgerRecord, Owner, WriteCondition};
use crate::provider::Ledger;
use crate::{Error, Result};

/// A ledger in memory, enforcing conditions as DynamoDB does.
#[derive(Default)]
pub struct MemoryLedger {
    rows: Mutex<BTreeMap<String, LedgerRecord>>,
    /// Fault injection and call counts (`GetItem`, `PutItem`, `DeleteItem`, `Scan`).
    pub faults: Faults,
}

impl MemoryLedger {
    /// Every row, for assertions.
    pub fn rows(&self) -> Vec<LedgerRecord> {
        self.rows
            .lock()
            .expect("poisoned")
            .values()
            .cloned()
            .collect()
    }
}

fn check(
    current: Option<&LedgerRecord>,
    key: &str,
    writer: Option<&Owner>,
    condition: &WriteCondition,
) -> Result<()> {
    if condition.holds(current, writer) {
        Ok(())
    } else {
        Err(Error::conflict(format!(
            "ledger row {key}: condition {condition:?} does not hold"
        )))
    }
}

#[async_trait]
impl Ledger for MemoryLedger {
    async fn get(&self, key: &str) -> Result<Option<LedgerRecord>> {
        self.faults.enter("GetItem")?;
        Ok(self.rows.lock().expect("poisoned").get(key).cloned())
    }

    async fn put(
        &self,
        mut record: LedgerRecord,
        condition: WriteCondition,
    ) -> Result<LedgerRecord> {
        self.faults.enter("PutItem")?;
        let mut rows = self.rows.lock().expect("poisoned");
        let current = rows.get(&record.key);
        check(current, &record.key, Some(&record.owner), &condition)?;
        record.version = current.map_or(1, |r| r.version + 1);
        rows.insert(record.key.clone(), record.clone());
        Ok(record)
    }

    async fn delete(&self, key: &str, condition: WriteCondition) -> Result<()> {
        self.faults.enter("DeleteItem")?;
        let mut rows = self.rows.lock().expect("poisoned");
        if let WriteCondition::AbsentOrAny(_) = condition {
            return Err(Error::invalid(
                "a ledger delete is conditioned on absence or a version, not on attributes",
            ));
        }
        check(rows.get(key), key, None, &condition)?;
        rows.remove(key);
        Ok(())
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<LedgerRecord>> {
        self.faults.enter("Scan")?;
        let rows = self.rows.lock().expect("poisoned");
        Ok(rows
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, r)| r.clone())
            .collect())
    }
}
