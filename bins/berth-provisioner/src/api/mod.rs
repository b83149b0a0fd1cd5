//! The HTTP API: the seed's endpoints (unchanged bodies) and the `/v1` resource API,
//! with its OpenAPI 3 document generated from these handlers.

mod model;
mod seed;
mod v1;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{require_bearer, TokenFile};
use crate::metrics::{record_request, ProvisionerMetrics};
use crate::problem::Problem;
use crate::store::{Store, StoreError};

/// Shared by every handler.
pub(crate) type AppState = Arc<Store>;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "berth-provisioner",
        description = "Provisions EKS clusters with Terraform runs as Kubernetes Jobs.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(crate::problem::Problem, crate::problem::FieldError))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(seed::health))
        .routes(routes!(seed::test_cluster))
        .routes(routes!(seed::provision_cluster))
        .routes(routes!(seed::cluster_status))
        .routes(routes!(seed::cluster_logs))
        .routes(routes!(seed::destroy_cluster))
        .routes(routes!(seed::cleanup_cluster))
        .routes(routes!(v1::put_cluster, v1::get_cluster))
        .routes(routes!(v1::list_clusters))
        .routes(routes!(v1::create_run))
        .routes(routes!(v1::get_run))
        .routes(routes!(v1::run_logs))
        .routes(routes!(v1::cancel_run))
}

/// The OpenAPI document, pretty JSON (as served and as committed).
pub(crate) fn openapi_json() -> String {
    let (_, api) = documented().split_for_parts();
    api.to_pretty_json()
        .unwrap_or_else(|e| unreachable!("the OpenAPI document always serializes: {e}"))
}

/// The whole application.
pub(crate) fn router(
    store: AppState,
    tokens: Arc<TokenFile>,
    metrics: ProvisionerMetrics,
) -> axum::Router {
    let (router, api) = documented().split_for_parts();
    let spec = api
        .to_pretty_json()
        .unwrap_or_else(|e| unreachable!("the OpenAPI document always serializes: {e}"));
    router
        .route(
            "/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        spec,
                    )
                }
            }),
        )
        .fallback(|| async { Problem::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
        .layer(axum::middleware::from_fn_with_state(tokens, require_bearer))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            record_request,
        ))
        .with_state(store)
}

impl IntoResponse for StoreError {
    fn into_response(self) -> Response {
        problem(self).into_response()
    }
}

pub(crate) fn problem(e: StoreError) -> Problem {
    match e {
        StoreError::Held(run) => Problem::run_active(&run),
        StoreError::NotFound(what) => Problem::not_found(what),
        StoreError::Conflict(why) => Problem::conflict(why),
        StoreError::Kube(e) => {
            tracing::warn!(error = %e, "a Kubernetes call failed");
            Problem::upstream(format!("Kubernetes call failed: {e}"))
        }
    }
}

/// `200`/`201` with a JSON body.
fn json<T: serde::Serialize>(status: StatusCode, body: T) -> Response {
    (status, Json(body)).into_response()
}
