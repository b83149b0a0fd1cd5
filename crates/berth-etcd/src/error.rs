//! etcd-client's errors as berth-core's, by gRPC status code (never by message text).

use berth_core::Error;
use tonic::Code;

/// Whether the member could not be reached or could not answer in time (so another
/// member may answer): transport failures, `Unavailable`, `DeadlineExceeded`.
pub fn is_unreachable(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => matches!(
            status.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
        ),
        _ => false,
    }
}

/// Maps an etcd-client error of `operation` onto [`Error`].
///
/// etcd answers "unhealthy cluster" and "no leader" with `Unavailable`, a timed-out
/// proposal with `DeadlineExceeded`/`Unavailable` (retryable); a refused membership
/// change (not enough started members, a learner not in sync, a peer URL in use)
/// with `FailedPrecondition` ([`Error::Conflict`]).
pub fn from_etcd(operation: &str, error: etcd_client::Error) -> Error {
    let message = error.to_string();
    match error {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
            Error::Unavailable {
                operation: operation.to_owned(),
                message,
            }
        }
        etcd_client::Error::InvalidArgs(_)
        | etcd_client::Error::InvalidUri(_)
        | etcd_client::Error::EndpointError(_) => Error::invalid(format!("{operation}: {message}")),
        etcd_client::Error::GRpcStatus(status) => match status.code() {
            Code::Unavailable | Code::Cancelled | Code::Unknown | Code::Aborted => {
                Error::Unavailable {
                    operation: operation.to_owned(),
                    message,
                }
            }
            Code::DeadlineExceeded => Error::Unavailable {
                operation: operation.to_owned(),
                message,
            },
            Code::ResourceExhausted => Error::Throttled {
                operation: operation.to_owned(),
                message,
            },
            Code::PermissionDenied | Code::Unauthenticated => Error::AccessDenied {
                action: format!("etcd:{operation}"),
                message,
            },
            Code::NotFound => Error::not_found(format!("{operation}: {message}")),
            Code::FailedPrecondition | Code::AlreadyExists => {
                Error::conflict(format!("{operation}: {message}"))
            }
            Code::InvalidArgument | Code::OutOfRange => {
                Error::invalid(format!("{operation}: {message}"))
            }
            _ => Error::Provider {
                operation: operation.to_owned(),
                message,
                retryable: false,
            },
        },
        _ => Error::Provider {
            operation: operation.to_owned(),
            message,
            retryable: false,
        },
    }
}

/// A refused membership change may succeed once the cluster settles (members
/// connected, a learner caught up): retryable, within the caller's deadline.
pub(crate) fn membership_change(error: Error) -> Error {
    match error {
        Error::Conflict { what } => Error::Provider {
            operation: "membership change".to_owned(),
            message: what,
            retryable: true,
        },
        other => other,
    }
}
