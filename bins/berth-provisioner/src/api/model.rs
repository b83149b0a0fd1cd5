//! The API's bodies, with their OpenAPI schemas.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::store::Run;
use crate::validate::ClusterSpec;

/// The seed's request body.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Documents the body; requests are checked field by field.
pub(crate) struct SeedClusterRequest {
    /// A DNS-1123 label of at most 63 characters.
    #[schema(example = "test-cluster-001")]
    pub(crate) cluster_name: String,
    /// One of the server's configured versions.
    #[schema(example = "1.33")]
    pub(crate) kubernetes_version: String,
    /// An EC2 instance type.
    #[schema(example = "m6gd.large")]
    pub(crate) instance_type: String,
    /// One of the server's configured IP families.
    #[schema(example = "ipv6")]
    pub(crate) ip_family: String,
}

/// The seed's answer to `POST /clusters/test`, `POST /clusters/provision` and
/// `DELETE /clusters/{name}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SeedJobResponse {
    pub(crate) cluster_name: String,
    /// The run's Job (named by the run id).
    pub(crate) job_name: String,
    pub(crate) status: String,
    pub(crate) message: String,
    pub(crate) created_at: String,
}

/// The seed's `GET /clusters/{name}/status` answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SeedStatusResponse {
    pub(crate) cluster_name: String,
    pub(crate) job_name: String,
    /// `pending`, `running`, `completed` or `failed`.
    pub(crate) status: String,
    /// `Pending`, `Running`, `Succeeded` or `Failed`.
    pub(crate) phase: String,
    pub(crate) message: Option<String>,
    pub(crate) created_at: String,
    /// Set once an apply succeeded.
    pub(crate) cluster_id: Option<String>,
    pub(crate) kubeconfig_command: Option<String>,
}

/// The seed's `GET /clusters/{name}/logs` answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SeedLogsResponse {
    pub(crate) cluster_name: String,
    pub(crate) job_name: String,
    pub(crate) logs: String,
}

/// The seed's `DELETE /clusters/{name}/cleanup` answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SeedCleanupResponse {
    pub(crate) cluster_name: String,
    pub(crate) message: String,
    /// What was deleted (`secret/...`, `job/...`).
    pub(crate) deleted: Vec<String>,
}

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    #[schema(example = "healthy")]
    pub(crate) status: String,
}

/// A cluster's desired spec.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub(crate) struct SpecBody {
    #[schema(example = "1.33")]
    pub(crate) kubernetes_version: String,
    #[schema(example = "m7i-flex.large")]
    pub(crate) instance_type: String,
    #[schema(example = "ipv4")]
    pub(crate) ip_family: String,
}

impl From<&ClusterSpec> for SpecBody {
    fn from(s: &ClusterSpec) -> Self {
        SpecBody {
            kubernetes_version: s.kubernetes_version.clone(),
            instance_type: s.instance_type.clone(),
            ip_family: s.ip_family.clone(),
        }
    }
}

/// A run.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RunView {
    /// The run id, also its Job's name.
    #[schema(example = "run-mhx0c2k1-3f2a")]
    pub(crate) id: String,
    pub(crate) cluster_name: String,
    /// `plan`, `apply` or `destroy`.
    pub(crate) operation: String,
    /// `pending`, `planning`, `planned`, `applying`, `applied`,
    /// `planned_and_finished`, `errored` or `canceled`.
    pub(crate) state: String,
    pub(crate) created_at: String,
    pub(crate) cancel_requested: bool,
    /// Managed resources in the state after the run, as the runner counted them.
    pub(crate) resources: Option<u64>,
    /// Set when terraform could not write its final state and left
    /// `errored.tfstate`: `pushed` (to the backend, again), `saved-in-secret`
    /// (Secret `<id>-errored-tfstate`: push it before anything else) or `lost`.
    pub(crate) errored_state: Option<String>,
    /// What went wrong, for a run that errored or was canceled.
    pub(crate) message: Option<String>,
    pub(crate) spec: SpecBody,
}

impl From<&Run> for RunView {
    fn from(r: &Run) -> Self {
        RunView {
            id: r.id.clone(),
            cluster_name: r.cluster.clone(),
            operation: r.operation.as_str().to_owned(),
            state: r.state.as_str().to_owned(),
            created_at: r.created_at.clone(),
            cancel_requested: r.cancel_requested,
            resources: r.resources,
            errored_state: r.errored_state.map(|e| e.as_str().to_owned()),
            message: r.message(),
            spec: SpecBody::from(&r.spec),
        }
    }
}

/// A cluster: its desired spec, its phase and its latest run.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ClusterView {
    pub(crate) name: String,
    pub(crate) spec: Option<SpecBody>,
    /// `defined`, `provisioning`, `ready`, `failed`, `destroying` or `destroyed`.
    pub(crate) phase: String,
    pub(crate) latest_run: Option<RunView>,
}

/// A page of clusters.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ClusterPage {
    pub(crate) items: Vec<ClusterView>,
    /// Pass as `after` for the next page; absent on the last one.
    pub(crate) next_after: Option<String>,
}

/// `POST /v1/clusters/{name}/runs`.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // Documents the body; requests are checked field by field.
pub(crate) struct RunRequest {
    /// `plan`, `apply` or `destroy`.
    #[schema(example = "apply")]
    pub(crate) operation: String,
}

/// Paging of `GET /v1/clusters`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ClusterQuery {
    /// Names after this one.
    pub(crate) after: Option<String>,
    /// At most this many (1..=500, default 100).
    pub(crate) limit: Option<usize>,
}

/// Paging of a run's log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogQuery {
    /// Byte offset to start from (the `X-Next-Offset` of the previous page).
    pub(crate) offset: Option<u64>,
    /// At most this many bytes (default 1 MiB).
    pub(crate) limit: Option<usize>,
    /// Keep the response open and stream the log until the run ends.
    pub(crate) follow: Option<bool>,
}
