//! Every API request counted by method, route template and status (401s and 404s
//! included: this layer sits outside authentication and routing).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::ProvisionerMetrics;

/// Middleware: records the request once the handler answered.
pub(crate) async fn record_request(
    State(metrics): State<ProvisionerMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    // The template (`/v1/runs/{id}`), never the raw path: run ids and cluster names
    // would make a series each.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    metrics.request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
