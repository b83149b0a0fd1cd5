//! RFC 9457 problem details: every error the API answers is `application/problem+json`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

/// A problem (RFC 9457).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    /// A short summary of the kind.
    pub(crate) title: &'static str,
    /// The HTTP status.
    pub(crate) status: u16,
    /// What went wrong here.
    pub(crate) detail: String,
    /// For a 422: each invalid field and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) errors: Vec<FieldError>,
    /// For a 409: the run that holds the cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) active_run: Option<String>,
}

// The error answers of the OpenAPI document, shared by the handlers' `responses(...)`;
// handlers answer with [`Problem`] itself.

/// No such cluster or run.
#[derive(IntoResponses)]
#[response(status = 404, content_type = "application/problem+json")]
#[allow(dead_code)]
pub(crate) struct NotFound(Problem);

/// A run of this cluster is live (`active_run` names it).
#[derive(IntoResponses)]
#[response(status = 409, content_type = "application/problem+json")]
#[allow(dead_code)]
pub(crate) struct RunActive(Problem);

/// Invalid field(s), each named in `errors`; nothing was created.
#[derive(IntoResponses)]
#[response(status = 422, content_type = "application/problem+json")]
#[allow(dead_code)]
pub(crate) struct Invalid(Problem);

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct FieldError {
    /// The field's name (`cluster_name`, ...).
    pub(crate) field: String,
    /// Why it is invalid.
    pub(crate) message: String,
}

impl Problem {
    fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            kind,
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            active_run: None,
        }
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "https://berth.dev/problems/not-found",
            detail,
        )
    }

    pub(crate) fn invalid(errors: Vec<FieldError>) -> Self {
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let mut p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "https://berth.dev/problems/invalid-request",
            format!("invalid field(s): {}", fields.join(", ")),
        );
        p.errors = errors;
        p
    }

    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "https://berth.dev/problems/bad-request",
            detail,
        )
    }

    /// A 409 naming the run that holds the cluster.
    pub(crate) fn run_active(run: &str) -> Self {
        let mut p = Self::new(
            StatusCode::CONFLICT,
            "https://berth.dev/problems/run-active",
            format!("run {run} of this cluster is still active"),
        );
        p.active_run = Some(run.to_owned());
        p
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "https://berth.dev/problems/method-not-allowed",
            "this endpoint does not take that method",
        )
    }

    pub(crate) fn conflict(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "https://berth.dev/problems/conflict",
            detail,
        )
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "https://berth.dev/problems/unauthorized",
            "a valid bearer token is required",
        )
    }

    /// A failure talking to Kubernetes; the detail names the operation, not secrets.
    pub(crate) fn upstream(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "https://berth.dev/problems/kubernetes-unavailable",
            detail,
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"berth-provisioner\""),
            );
        }
        response
    }
}
