//! Mapping the SDK's errors into [`berth_core::Error`].
//!
//! The engine decides from the core error alone whether to retry, so this mapping is
//! where "throttled", "the service is down" and "you lack a permission" are told
//! apart. The SDK has already retried transient failures by the time an error gets
//! here; the engine's own retries come on top.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use berth_core::Error;

/// Error codes by which AWS services say "slow down".
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceededException",
    "PriorRequestNotComplete",
    "SlowDown",
    "EC2ThrottledException",
    "BandwidthLimitExceeded",
];

/// Error codes by which the credentials are refused an action.
const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedException",
];

/// Error codes of a failure on the service side.
const UNAVAILABLE_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
];

/// Error codes of a lost condition.
const CONFLICT_CODES: &[&str] = &[
    "ConditionalCheckFailedException",
    "TransactionConflictException",
    "Resource.AlreadyAssociated",
];

/// Error codes of expired temporary credentials: the SDK's credentials cache fetches
/// new ones (IRSA, Pod Identity), so the next attempt may pass.
const EXPIRED_CREDENTIALS_CODES: &[&str] = &["ExpiredToken", "ExpiredTokenException"];

/// Error codes of a bad request that retrying cannot fix.
const INVALID_CODES: &[&str] = &[
    "ValidationError",
    "ValidationException",
    "InvalidInput",
    "InvalidChangeBatch",
    "InvalidTarget",
    "InvalidConfigurationRequest",
    "MissingParameter",
];

/// Translates an SDK error of `operation` (e.g. `RegisterTargets`) into berth's error.
/// `iam_action` (e.g. `elasticloadbalancing:RegisterTargets`) is the permission named
/// when the credentials are refused.
///
/// - throttling codes → [`Error::Throttled`];
/// - 5xx, service-failure codes, broken connections, timeouts, unreadable
///   answers → [`Error::Unavailable`] (retryable);
/// - `AccessDenied`, `AccessDeniedException`, `UnauthorizedOperation` →
///   [`Error::AccessDenied`] naming `iam_action`;
/// - `*NotFound*`, `NoSuch*` codes → [`Error::NotFound`];
/// - expired temporary credentials → [`Error::Provider`], retryable;
/// - conditional-check failures, `Resource.AlreadyAssociated` → [`Error::Conflict`];
/// - validation and `Invalid*` codes → [`Error::Invalid`];
/// - anything else → [`Error::Provider`], not retryable.
pub fn from_sdk<E>(operation: &str, iam_action: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let unavailable = |message: String| Error::Unavailable {
        operation: operation.to_owned(),
        message,
    };
    if let SdkError::ServiceError(service) = &err {
        let status = service.raw().status().as_u16();
        let code = service.err().code().unwrap_or_default();
        let message = service.err().message().unwrap_or_default().to_owned();
        return classify(operation, iam_action, status, code, message);
    }
    let text = chain(&err);
    match &err {
        SdkError::TimeoutError(_) => unavailable(format!("timed out: {text}")),
        SdkError::DispatchFailure(failure) if failure.is_user() => Error::Provider {
            operation: operation.to_owned(),
            message: format!("request could not be sent: {text}"),
            retryable: false,
        },
        SdkError::DispatchFailure(_) => unavailable(format!("request could not be sent: {text}")),
        SdkError::ResponseError(response) => unavailable(format!(
            "unreadable answer (HTTP {}): {text}",
            response.raw().status().as_u16()
        )),
        _ => Error::Provider {
            operation: operation.to_owned(),
            message: text,
            retryable: false,
        },
    }
}

/// Classifies a service error by its code, then by its HTTP status.
fn classify(operation: &str, iam_action: &str, status: u16, code: &str, message: String) -> Error {
    let operation = operation.to_owned();
    let described = || {
        if message.is_empty() {
            code.to_owned()
        } else {
            format!("{code}: {message}")
        }
    };
    if THROTTLING_CODES.contains(&code) || status == 429 {
        Error::Throttled {
            operation,
            message: described(),
        }
    } else if ACCESS_DENIED_CODES.contains(&code) {
        Error::AccessDenied {
            action: iam_action.to_owned(),
            message: described(),
        }
    } else if EXPIRED_CREDENTIALS_CODES.contains(&code) {
        Error::Provider {
            operation,
            message: described(),
            retryable: true,
        }
    } else if CONFLICT_CODES.contains(&code) {
        Error::Conflict {
            what: format!("{operation}: {}", described()),
        }
    } else if code.contains("NotFound") || code.starts_with("NoSuch") {
        Error::NotFound {
            what: format!("{operation}: {}", described()),
        }
    } else if INVALID_CODES.contains(&code) || code.starts_with("Invalid") {
        Error::Invalid(format!("{operation}: {}", described()))
    } else if UNAVAILABLE_CODES.contains(&code) || status >= 500 {
        Error::Unavailable {
            operation,
            message: format!("HTTP {status}: {}", described()),
        }
    } else {
        Error::Provider {
            operation,
            message: format!("HTTP {status}: {}", described()),
            retryable: false,
        }
    }
}

/// An error and its sources, on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service(status: u16, code: &str) -> Error {
        let meta = ErrorMetadata::builder()
            .code(code)
            .message("the message")
            .build();
        let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        from_sdk(
            "RegisterTargets",
            "elasticloadbalancing:RegisterTargets",
            SdkError::service_error(meta, raw),
        )
    }

    #[test]
    fn throttling_is_retryable_and_marked() {
        for code in ["Throttling", "ThrottlingException", "RequestLimitExceeded"] {
            let err = service(400, code);
            assert!(err.is_throttling(), "{code}: {err:?}");
            assert!(err.is_retryable());
        }
        assert!(service(429, "Whatever").is_throttling());
        assert!(service(400, "PriorRequestNotComplete").is_throttling());
    }

    #[test]
    fn access_denied_names_the_iam_action() {
        for code in [
            "AccessDenied",
            "AccessDeniedException",
            "UnauthorizedOperation",
        ] {
            match service(403, code) {
                Error::AccessDenied { action, message } => {
                    assert_eq!(action, "elasticloadbalancing:RegisterTargets");
                    assert!(message.contains("the message"));
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        assert!(!service(403, "AccessDenied").is_retryable());
    }

    #[test]
    fn server_errors_are_retryable() {
        assert!(matches!(
            service(500, "InternalFailure"),
            Error::Unavailable { .. }
        ));
        assert!(matches!(service(503, ""), Error::Unavailable { .. }));
        assert!(matches!(
            service(502, "Whatever"),
            Error::Unavailable { .. }
        ));
        assert!(service(503, "ServiceUnavailable").is_retryable());
    }

    #[test]
    fn client_errors_are_classified() {
        assert!(matches!(
            service(400, "TargetGroupNotFound"),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            service(400, "InvalidInstanceID.NotFound"),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            service(404, "NoSuchHostedZone"),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            service(400, "ConditionalCheckFailedException"),
            Error::Conflict { .. }
        ));
        assert!(matches!(
            service(400, "Resource.AlreadyAssociated"),
            Error::Conflict { .. }
        ));
        assert!(matches!(service(400, "ValidationError"), Error::Invalid(_)));
        assert!(matches!(
            service(400, "InvalidChangeBatch"),
            Error::Invalid(_)
        ));
        assert!(service(400, "ExpiredToken").is_retryable());
        let other = service(400, "SomethingElse");
        assert!(matches!(
            other,
            Error::Provider {
                retryable: false,
                ..
            }
        ));
    }

    #[test]
    fn transport_failures_are_retryable() {
        let reset: SdkError<ErrorMetadata, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io("connection reset".into()));
        let err = from_sdk(
            "RegisterTargets",
            "elasticloadbalancing:RegisterTargets",
            reset,
        );
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        let timeout: SdkError<ErrorMetadata, HttpResponse> = SdkError::timeout_error("too slow");
        assert!(from_sdk("GetChange", "route53:GetChange", timeout).is_retryable());
        let user: SdkError<ErrorMetadata, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::user("bad uri".into()));
        assert!(!from_sdk("GetChange", "route53:GetChange", user).is_retryable());
    }
}
