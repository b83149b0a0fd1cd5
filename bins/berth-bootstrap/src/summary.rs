//! The JSON summary printed on stdout: what each module did (or would do).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// What one module did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModuleReport {
    /// `changed`, `unchanged`, `planned` (dry run with changes), `skipped`.
    pub status: &'static str,
    /// Each change made (or, in a dry run, that would be made), in order.
    pub changes: Vec<String>,
    /// Why the module did not run, when skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Module-specific facts (the hostname, the FQDN, certificate dates, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, Value>,
    #[serde(skip)]
    dry_run: bool,
}

impl ModuleReport {
    /// An empty report: `unchanged` until a change is recorded.
    pub fn new(dry_run: bool) -> Self {
        ModuleReport {
            status: "unchanged",
            changes: Vec::new(),
            reason: None,
            details: BTreeMap::new(),
            dry_run,
        }
    }

    /// A module that did not run.
    pub fn skipped(reason: impl Into<String>) -> Self {
        ModuleReport {
            status: "skipped",
            reason: Some(reason.into()),
            ..ModuleReport::new(false)
        }
    }

    /// Records a change (made, or planned in a dry run).
    pub fn change(&mut self, change: String) {
        tracing::info!(dry_run = self.dry_run, "{change}");
        self.changes.push(change);
        self.status = if self.dry_run { "planned" } else { "changed" };
    }

    /// Records a fact for the summary.
    pub fn detail(&mut self, key: &str, value: impl Serialize) {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.details.insert(key.to_owned(), value);
    }
}

/// What the run did: the `summary` of berth-runtime's one-shot report on stdout
/// (`{"outcome": ..., "exit_code": ..., "elapsed_seconds": ..., "summary": {...},
/// "error": ...}`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `run`, `renew-certs` or `plan`.
    pub command: &'static str,
    /// Nothing was changed.
    pub dry_run: bool,
    /// This instance, once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<Value>,
    /// Per module that ran (or was planned), by name.
    pub modules: BTreeMap<String, Value>,
    /// AWS calls per operation.
    pub aws_calls: BTreeMap<String, u64>,
}
