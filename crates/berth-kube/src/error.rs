//! The one error type of berth-kube, and its translation into berth-core's.

/// What can go wrong talking to the Kubernetes API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An API call failed; `operation` says which (e.g. `replace Lease kube-system/berth`).
    #[error("Kubernetes API call {operation} failed: {source}")]
    Kube {
        /// What was being done.
        operation: String,
        /// kube-rs' error.
        #[source]
        source: kube::Error,
    },
    /// A watch (Nodes, Pods) failed; the watcher retries with backoff by itself.
    #[error("watching the Kubernetes API failed: {0}")]
    Watch(#[source] kube::runtime::watcher::Error),
    /// A stored object did not hold what berth expects (the message says what).
    #[error("invalid {0}")]
    Invalid(String),
    /// A compare-and-swap update kept losing to other writers.
    #[error("conflict: {0}")]
    Conflict(String),
}

impl Error {
    /// Wraps a kube-rs error with the operation it came from.
    pub fn kube(operation: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            operation: operation.into(),
            source,
        }
    }

    /// The API status code, when the server answered with one.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Error::Kube {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            _ => None,
        }
    }

    /// Whether trying again later may help (throttling, server errors, broken
    /// connections, conflicts).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Kube { source, .. } => match source {
                kube::Error::Api(status) => {
                    matches!(status.code, 409 | 429 | 500..=599) || status.code == 0
                }
                kube::Error::HyperError(_)
                | kube::Error::Service(_)
                | kube::Error::ReadEvents(_)
                | kube::Error::LinesCodecMaxLineLengthExceeded => true,
                _ => false,
            },
            Error::Conflict(_) | Error::Watch(_) => true,
            Error::Invalid(_) => false,
        }
    }
}

impl From<Error> for berth_core::Error {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match &e {
            Error::Kube {
                operation,
                source: kube::Error::Api(status),
            } => match status.code {
                429 => berth_core::Error::Throttled {
                    operation: operation.clone(),
                    message,
                },
                403 => berth_core::Error::AccessDenied {
                    // RBAC, not IAM: name the Kubernetes verb and resource instead.
                    action: format!("kubernetes: {operation}"),
                    message: status.message.clone(),
                },
                404 => berth_core::Error::not_found(operation.clone()),
                409 => berth_core::Error::conflict(message),
                500..=599 => berth_core::Error::Unavailable {
                    operation: operation.clone(),
                    message,
                },
                _ => berth_core::Error::Provider {
                    operation: operation.clone(),
                    message,
                    retryable: false,
                },
            },
            Error::Kube { operation, .. } => berth_core::Error::Provider {
                operation: operation.clone(),
                retryable: e.is_retryable(),
                message,
            },
            Error::Watch(_) => berth_core::Error::Unavailable {
                operation: "watch Nodes".into(),
                message,
            },
            Error::Invalid(what) => berth_core::Error::invalid(what.clone()),
            Error::Conflict(what) => berth_core::Error::conflict(what.clone()),
        }
    }
}
