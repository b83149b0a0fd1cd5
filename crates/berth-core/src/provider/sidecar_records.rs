//! berth-sidecar's registration records and the pods they name, for IP target GC
//! (berth-kube keeps them in ConfigMaps and asks the Kubernetes API about pods).

use std::sync::Arc;

use async_trait::async_trait;

use super::TargetOwnership;
use crate::plan::{PodIdentity, SidecarRecord};
use crate::Result;

/// The sidecars' registration records of one owner, and the truth about their pods.
#[async_trait]
pub trait SidecarRecords: Send + Sync {
    /// Every record of the owner collected (records that cannot be read are left out).
    async fn list(&self) -> Result<Vec<SidecarRecord>>;
    /// The ownership store of one record: the engine releases targets from it after
    /// deregistering them (and it is deleted once empty).
    fn store(&self, record: &SidecarRecord) -> Arc<dyn TargetOwnership>;
    /// Deletes a record that holds no target (if unchanged since read).
    async fn delete_if_empty(&self, record: &SidecarRecord) -> Result<()>;
    /// Whether `pod` still runs, asked of the source of truth, not a cache: what GC
    /// checks before it removes anything.
    async fn still_running(&self, pod: &PodIdentity) -> Result<bool>;
}
