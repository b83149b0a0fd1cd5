//! etcd membership (issue 12, module 5). This file is the interface the binary calls;
//! the membership logic itself is built in its own work stream and replaces the body
//! of [`run`].

use anyhow::anyhow;
use serde::Serialize;

use crate::context::EtcdRun;

/// What the etcd module did, serialised into the run's JSON summary under `etcd`.
#[derive(Debug, Clone, Serialize)]
pub struct EtcdSummary {
    /// Each change made, or planned in a dry run.
    pub changes: Vec<String>,
}

/// Joins, restarts or creates the cluster for this instance and writes the drop-in.
/// A [`crate::config::ConfigError`] in the error's chain exits 2, any other error 1.
pub async fn run(input: EtcdRun<'_>) -> anyhow::Result<EtcdSummary> {
    Err(anyhow!(
        "etcd membership is not part of this build yet (drop-in {}); \
         run without it: --skip-etcd or `modules:`",
        input.settings.drop_in_file.display()
    ))
}
