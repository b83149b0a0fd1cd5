//! The resource API: clusters with a desired spec, and their runs.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_core::plan::runs::{cluster_phase, Operation};

use super::model::{
    ClusterPage, ClusterQuery, ClusterView, LogQuery, RunRequest, RunView, SpecBody,
};
use super::{json, problem, AppState};
use crate::problem::{FieldError, Invalid, NotFound, Problem, RunActive};
use crate::store::StoreError;
use crate::validate;

fn check_name(name: &str) -> Result<(), Problem> {
    validate::cluster_name("name", name).map_err(|e| Problem::invalid(vec![e]))
}

async fn view(state: &AppState, name: &str) -> Result<ClusterView, Problem> {
    let spec = state.spec(name).await.map_err(problem)?;
    let runs = state.runs_of(name).await.map_err(problem)?;
    if spec.is_none() && runs.is_empty() {
        return Err(Problem::not_found(format!("cluster {name} not found")));
    }
    let history: Vec<_> = runs.iter().map(|r| (r.operation, r.state)).collect();
    Ok(ClusterView {
        name: name.to_owned(),
        spec: spec.as_ref().map(SpecBody::from),
        phase: cluster_phase(&history).as_str().to_owned(),
        latest_run: runs.first().map(RunView::from),
    })
}

/// Sets the cluster's desired spec and applies it. The same spec while its apply is
/// live answers that run (200); another live run is a 409.
#[utoipa::path(put, path = "/v1/clusters/{name}", tag = "clusters",
    params(("name" = String, Path, description = "The cluster name (DNS-1123 label, at most 63 characters)")),
    request_body = SpecBody,
    responses(
        (status = 201, description = "An apply run started", body = ClusterView),
        (status = 200, description = "The same spec is being applied", body = ClusterView),
        RunActive,
        Invalid,
    ))]
pub(crate) async fn put_cluster(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let spec = validate::v1_spec_request(&name, &body, state.config())?;
    let status = match state.start(&name, Operation::Apply, &spec, None).await {
        Ok(_) => StatusCode::CREATED,
        Err(StoreError::Held(run)) => {
            let holder = state.run(&run).await.map_err(problem)?;
            if holder.operation == Operation::Apply && holder.spec == spec {
                StatusCode::OK
            } else {
                return Err(Problem::run_active(&run));
            }
        }
        Err(e) => return Err(problem(e)),
    };
    if status == StatusCode::CREATED {
        state.put_spec(&name, &spec).await.map_err(problem)?;
    }
    Ok(json(status, view(&state, &name).await?))
}

/// The cluster's spec, phase and latest run.
#[utoipa::path(get, path = "/v1/clusters/{name}", tag = "clusters",
    params(("name" = String, Path, description = "The cluster name")),
    responses((status = 200, body = ClusterView), NotFound))]
pub(crate) async fn get_cluster(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    check_name(&name)?;
    Ok(json(StatusCode::OK, view(&state, &name).await?))
}

fn query_problem(e: &QueryRejection) -> Problem {
    Problem::bad_request(format!("invalid query: {}", e.body_text()))
}

/// Clusters with a stored spec, by name.
#[utoipa::path(get, path = "/v1/clusters", tag = "clusters",
    params(ClusterQuery),
    responses((status = 200, body = ClusterPage)))]
pub(crate) async fn list_clusters(
    State(state): State<AppState>,
    query: Result<Query<ClusterQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(query) = query.map_err(|e| query_problem(&e))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(Problem::invalid(vec![FieldError {
            field: "limit".into(),
            message: "must be between 1 and 500".into(),
        }]));
    }
    let (specs, more) = state
        .clusters(query.after.as_deref(), limit)
        .await
        .map_err(problem)?;
    let mut items = Vec::with_capacity(specs.len());
    for (name, _) in &specs {
        items.push(view(&state, name).await?);
    }
    let next_after = more.then(|| specs.last().map(|(n, _)| n.clone())).flatten();
    Ok(json(StatusCode::OK, ClusterPage { items, next_after }))
}

/// Starts a run on the cluster's stored spec. An `Idempotency-Key` header makes a
/// retried request answer the run the first one started (200).
#[utoipa::path(post, path = "/v1/clusters/{name}/runs", tag = "runs",
    params(
        ("name" = String, Path, description = "The cluster name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeats of a request with the same key start one run"),
    ),
    request_body = RunRequest,
    responses(
        (status = 201, body = RunView),
        (status = 200, description = "The run this Idempotency-Key started", body = RunView),
        (status = 404, description = "The cluster has no spec", body = Problem, content_type = "application/problem+json"),
        RunActive,
        Invalid,
    ))]
pub(crate) async fn create_run(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    check_name(&name)?;
    let object = validate::object(&body)?;
    let operation = object
        .get("operation")
        .and_then(|v| v.as_str())
        .and_then(Operation::parse)
        .ok_or_else(|| {
            Problem::invalid(vec![FieldError {
                field: "operation".into(),
                message: "must be plan, apply or destroy".into(),
            }])
        })?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    Problem::invalid(vec![FieldError {
                        field: "Idempotency-Key".into(),
                        message: "must be 1 to 255 visible ASCII characters".into(),
                    }])
                })?,
        ),
    };
    let spec =
        state.spec(&name).await.map_err(problem)?.ok_or_else(|| {
            Problem::not_found(format!("cluster {name} has no spec; PUT it first"))
        })?;
    let (run, created) = state
        .start(&name, operation, &spec, key)
        .await
        .map_err(problem)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(status, RunView::from(&run)))
}

/// A run.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    responses((status = 200, body = RunView), NotFound))]
pub(crate) async fn get_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let run = state.run(&id).await.map_err(problem)?;
    Ok(json(StatusCode::OK, RunView::from(&run)))
}

/// Asks a live run to stop: terraform gets SIGINT and saves its state.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "The run id")),
    responses(
        (status = 202, body = RunView),
        NotFound,
        (status = 409, description = "The run has ended", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn cancel_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let run = state.cancel(&id).await.map_err(problem)?;
    Ok(json(StatusCode::ACCEPTED, RunView::from(&run)))
}

/// The run's log as plain text, from `offset`; `X-Next-Offset` says where the next
/// page starts. With `follow=true` the response streams until the run ends.
#[utoipa::path(get, path = "/v1/runs/{id}/logs", tag = "runs",
    params(("id" = String, Path, description = "The run id"), LogQuery),
    responses(
        (status = 200, description = "Log bytes", content_type = "text/plain",
            headers(("X-Next-Offset" = u64, description = "The offset after this page"))),
        NotFound,
    ))]
pub(crate) async fn run_logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(query) = query.map_err(|e| query_problem(&e))?;
    let run = state.run(&id).await.map_err(problem)?;
    let offset = query.offset.unwrap_or(0);
    let text = HeaderValue::from_static("text/plain; charset=utf-8");
    if query.follow.unwrap_or(false) {
        let stream = futures::stream::unfold(
            (state.clone(), id, offset, false),
            |(state, id, offset, ended)| async move {
                if ended {
                    return None;
                }
                loop {
                    // Read the state before the log: the runner writes its last chunk
                    // before its Job ends, so nothing is missed.
                    let finished = state
                        .run(&id)
                        .await
                        .map(|r| r.state.is_final())
                        .unwrap_or(true);
                    let slice = state.log(&id, offset, 1 << 20).await.ok()?;
                    if !slice.bytes.is_empty() {
                        let next = (state, id, slice.next_offset, false);
                        return Some((Ok::<_, Infallible>(Bytes::from(slice.bytes)), next));
                    }
                    if finished {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        );
        let mut response = Body::from_stream(stream).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, text);
        return Ok(response);
    }
    let slice = state
        .log(&run.id, offset, query.limit.unwrap_or(1 << 20).max(1))
        .await
        .map_err(problem)?;
    let mut response = (StatusCode::OK, slice.bytes).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, text);
    response
        .headers_mut()
        .insert("x-next-offset", HeaderValue::from(slice.next_offset));
    Ok(response)
}
