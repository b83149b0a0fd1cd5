//! Run logs: the runner appends its output as ConfigMaps `<run>-log-<seq>` (binary
//! data, in order), which outlive the Job and its pod; the API serves them the same way
//! while the run is live and after, by byte offset.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ListParams;

use super::{Result, Store, OBJECT, RUN};

/// A slice of a run's log.
pub(crate) struct LogSlice {
    /// The bytes from the offset asked for.
    pub(crate) bytes: Vec<u8>,
    /// The offset after them.
    pub(crate) next_offset: u64,
}

impl Store {
    /// The run's log from byte `offset`, at most `limit` bytes.
    pub(crate) async fn log(&self, run: &str, offset: u64, limit: usize) -> Result<LogSlice> {
        let mut chunks = self
            .api::<ConfigMap>()
            .list(&ListParams::default().labels(&format!("{RUN}={run},{OBJECT}=log")))
            .await?
            .items;
        chunks.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let mut bytes = Vec::new();
        let mut position = 0u64;
        for chunk in &chunks {
            let Some(data) = chunk.binary_data.as_ref().and_then(|d| d.get("log")) else {
                continue;
            };
            let data = &data.0;
            let end = position + data.len() as u64;
            if end > offset && bytes.len() < limit {
                let start = offset.saturating_sub(position) as usize;
                let take = (data.len() - start).min(limit - bytes.len());
                bytes.extend_from_slice(&data[start..start + take]);
            }
            position = end;
        }
        let next_offset = offset.min(position) + bytes.len() as u64;
        Ok(LogSlice { bytes, next_offset })
    }
}
