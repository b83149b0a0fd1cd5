//! The seed's endpoints, with its request and response bodies, so its clients switch
//! without changes. Responses now come from the newest run of the cluster.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_core::plan::runs::{Operation, RunState};

use super::model::{
    Health, SeedCleanupResponse, SeedClusterRequest, SeedJobResponse, SeedLogsResponse,
    SeedStatusResponse,
};
use super::{json, problem, AppState};
use crate::problem::{Invalid, NotFound, Problem, RunActive};
use crate::store::Run;
use crate::validate;

/// Liveness; open without a token.
#[utoipa::path(get, path = "/health", tag = "seed", security(()),
    responses((status = 200, body = Health)))]
pub(crate) async fn health() -> Response {
    json(
        StatusCode::OK,
        Health {
            status: "healthy".into(),
        },
    )
}

async fn start(state: &AppState, body: &[u8], operation: Operation) -> Result<Response, Problem> {
    let (name, spec) = validate::seed_request(body, state.config())?;
    let (run, _) = state
        .start(&name, operation, &spec, None)
        .await
        .map_err(problem)?;
    if operation == Operation::Apply {
        state.put_spec(&name, &spec).await.map_err(problem)?;
    }
    let message = match operation {
        Operation::Plan => "Dry-run job created. Check status endpoint for progress.",
        _ => "Provisioning job created. Check status endpoint for progress.",
    };
    Ok(json(StatusCode::OK, job_response(&run, message)))
}

fn job_response(run: &Run, message: &str) -> SeedJobResponse {
    SeedJobResponse {
        cluster_name: run.cluster.clone(),
        job_name: run.id.clone(),
        status: "pending".into(),
        message: message.into(),
        created_at: run.created_at.clone(),
    }
}

/// A dry run: `terraform plan` only.
#[utoipa::path(post, path = "/clusters/test", tag = "seed",
    request_body = SeedClusterRequest,
    responses((status = 200, body = SeedJobResponse), RunActive, Invalid))]
pub(crate) async fn test_cluster(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, Problem> {
    start(&state, &body, Operation::Plan).await
}

/// Provisions (plan, then apply); stores the spec as the cluster's desired one.
#[utoipa::path(post, path = "/clusters/provision", tag = "seed",
    request_body = SeedClusterRequest,
    responses((status = 200, body = SeedJobResponse), RunActive, Invalid))]
pub(crate) async fn provision_cluster(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, Problem> {
    start(&state, &body, Operation::Apply).await
}

async fn newest_run(state: &AppState, name: &str) -> Result<Run, Problem> {
    validate::cluster_name("name", name).map_err(|e| Problem::invalid(vec![e]))?;
    let runs = state.runs_of(name).await.map_err(problem)?;
    runs.into_iter()
        .next()
        .ok_or_else(|| Problem::not_found(format!("cluster {name} has no run")))
}

/// The newest run of the cluster.
#[utoipa::path(get, path = "/clusters/{name}/status", tag = "seed",
    params(("name" = String, Path, description = "The cluster name")),
    responses((status = 200, body = SeedStatusResponse), NotFound))]
pub(crate) async fn cluster_status(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    let run = newest_run(&state, &name).await?;
    let (status, phase) = match run.state {
        RunState::Pending => ("pending", "Pending"),
        RunState::Planning | RunState::Planned | RunState::Applying => ("running", "Running"),
        RunState::Applied | RunState::PlannedAndFinished => ("completed", "Succeeded"),
        RunState::Errored | RunState::Canceled => ("failed", "Failed"),
    };
    let applied = run.operation == Operation::Apply && run.state == RunState::Applied;
    let region = &state.config().region;
    Ok(json(
        StatusCode::OK,
        SeedStatusResponse {
            cluster_name: name.clone(),
            job_name: run.id.clone(),
            status: status.into(),
            phase: phase.into(),
            message: run.message(),
            created_at: run.created_at.clone(),
            cluster_id: applied.then(|| name.clone()),
            kubeconfig_command: applied
                .then(|| format!("aws eks update-kubeconfig --region {region} --name {name}")),
        },
    ))
}

/// The log of the cluster's newest run (all of it; `/v1/runs/{id}/logs` pages).
#[utoipa::path(get, path = "/clusters/{name}/logs", tag = "seed",
    params(("name" = String, Path, description = "The cluster name")),
    responses((status = 200, body = SeedLogsResponse), NotFound))]
pub(crate) async fn cluster_logs(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    let run = newest_run(&state, &name).await?;
    let log = state.log(&run.id, 0, usize::MAX).await.map_err(problem)?;
    Ok(json(
        StatusCode::OK,
        SeedLogsResponse {
            cluster_name: name,
            job_name: run.id,
            logs: String::from_utf8_lossy(&log.bytes).into_owned(),
        },
    ))
}

/// Destroys the cluster (`terraform destroy`) with its stored spec.
#[utoipa::path(delete, path = "/clusters/{name}", tag = "seed",
    params(("name" = String, Path, description = "The cluster name")),
    responses((status = 200, body = SeedJobResponse), NotFound, RunActive))]
pub(crate) async fn destroy_cluster(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    validate::cluster_name("name", &name).map_err(|e| Problem::invalid(vec![e]))?;
    let spec = match state.spec(&name).await.map_err(problem)? {
        Some(spec) => spec,
        None => newest_run(&state, &name).await?.spec,
    };
    let (run, _) = state
        .start(&name, Operation::Destroy, &spec, None)
        .await
        .map_err(problem)?;
    Ok(json(
        StatusCode::OK,
        job_response(
            &run,
            "Destroy job created. Check status endpoint for progress.",
        ),
    ))
}

/// Deletes a destroyed cluster's state, locks, Jobs and records; refused (409) while
/// a run is live, unless the last destroy applied, or while the state holds resources.
#[utoipa::path(delete, path = "/clusters/{name}/cleanup", tag = "seed",
    params(("name" = String, Path, description = "The cluster name")),
    responses(
        (status = 200, body = SeedCleanupResponse),
        (status = 409, description = "The cluster is live or its state holds resources", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn cleanup_cluster(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    validate::cluster_name("name", &name).map_err(|e| Problem::invalid(vec![e]))?;
    let deleted = state.cleanup(&name).await.map_err(problem)?;
    Ok(json(
        StatusCode::OK,
        SeedCleanupResponse {
            message: format!("cleaned up {} object(s) of cluster {name}", deleted.len()),
            cluster_name: name,
            deleted,
        },
    ))
}
