use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::{Error, Result};

/// Injected failures and per-operation call counts, shared by clones.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<FaultState>>,
}

#[derive(Debug, Default)]
struct FaultState {
    queued: HashMap<String, VecDeque<Error>>,
    calls: HashMap<String, u64>,
}

impl Faults {
    /// The next `times` calls of `operation` fail with `error`.
    pub fn fail(&self, operation: &str, error: Error, times: usize) {
        let mut s = self.inner.lock().expect("poisoned");
        let q = s.queued.entry(operation.to_owned()).or_default();
        q.extend(std::iter::repeat_n(error, times));
    }

    /// Drops the failures still queued for `operation`.
    pub fn clear(&self, operation: &str) {
        self.inner
            .lock()
            .expect("poisoned")
            .queued
            .remove(operation);
    }

    /// How many times `operation` was called (failed calls included).
    pub fn calls(&self, operation: &str) -> u64 {
        self.inner
            .lock()
            .expect("poisoned")
            .calls
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Calls per operation, every operation called so far.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        let s = self.inner.lock().expect("poisoned");
        s.calls.iter().map(|(op, n)| (op.clone(), *n)).collect()
    }

    /// Calls of every operation.
    pub fn total_calls(&self) -> u64 {
        self.inner.lock().expect("poisoned").calls.values().sum()
    }

    /// Counts a call and returns the injected failure, if one is queued.
    pub fn enter(&self, operation: &str) -> Result<()> {
        let mut s = self.inner.lock().expect("poisoned");
        *s.calls.entry(operation.to_owned()).or_default() += 1;
        match s.queued.get_mut(operation).and_then(VecDeque::pop_front) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
