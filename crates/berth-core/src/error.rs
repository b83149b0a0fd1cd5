//! The one error type of berth-core, shared by every provider trait.
//!
//! Adapters translate their service's errors into these variants; the engine decides
//! from them alone whether a change is retried.

use std::time::Duration;

/// Result alias used across berth.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while observing or changing the world.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The service asked us to slow down. Retryable.
    #[error("{operation} was throttled: {message}")]
    Throttled {
        /// The API operation, e.g. `RegisterTargets`.
        operation: String,
        /// The service's message.
        message: String,
    },
    /// The service failed (5xx) or the connection broke. Retryable.
    #[error("{operation} failed on the service side: {message}")]
    Unavailable {
        /// The API operation.
        operation: String,
        /// What the service or transport said.
        message: String,
    },
    /// The call did not finish in time. Retryable.
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// The API operation.
        operation: String,
        /// How long we waited.
        after: Duration,
    },
    /// The credentials lack a permission. Never retried: it names the IAM action to grant.
    #[error("access denied: the IAM action {action} was refused ({message})")]
    AccessDenied {
        /// The IAM action that was refused, e.g. `elasticloadbalancing:RegisterTargets`.
        action: String,
        /// The service's message.
        message: String,
    },
    /// A thing that was named does not exist (a target group, an instance, a zone).
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// A condition did not hold: a conditional write lost a race, an address is
    /// already associated, a record belongs to someone else.
    #[error("conflict: {what}")]
    Conflict {
        /// What conflicted.
        what: String,
    },
    /// What berth was asked to write belongs to someone else (a DNS name under another
    /// owner's marker, or with records and no marker): berth never overwrites it.
    /// Never retried.
    #[error("{what} exists and berth does not own it ({held_by}); left unchanged")]
    NotOwned {
        /// What was refused, e.g. `the DNS name node-1.example.com.`.
        what: String,
        /// Who holds it: `owner berth/prod/lambda`, or `no berth ownership marker`.
        held_by: String,
    },
    /// The request or the input was invalid. Never retried.
    #[error("invalid: {0}")]
    Invalid(String),
    /// No free address is left in the pool.
    #[error("pool exhausted: no free Elastic IP carries the tags {pool}")]
    PoolExhausted {
        /// The pool's tag filter, printed.
        pool: String,
    },
    /// Any other failure of a provider.
    #[error("{operation} failed: {message}")]
    Provider {
        /// The API operation.
        operation: String,
        /// What went wrong.
        message: String,
        /// Whether trying again may help.
        retryable: bool,
    },
}

impl Error {
    /// Whether the engine may try the same call again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Throttled { .. } | Error::Unavailable { .. } | Error::Timeout { .. } => true,
            Error::Provider { retryable, .. } => *retryable,
            Error::AccessDenied { .. }
            | Error::NotFound { .. }
            | Error::Conflict { .. }
            | Error::NotOwned { .. }
            | Error::Invalid(_)
            | Error::PoolExhausted { .. } => false,
        }
    }

    /// Whether the service throttled the call (the engine backs off harder).
    pub fn is_throttling(&self) -> bool {
        matches!(self, Error::Throttled { .. })
    }

    /// Shorthand for [`Error::Conflict`].
    pub fn conflict(what: impl Into<String>) -> Self {
        Error::Conflict { what: what.into() }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(what: impl Into<String>) -> Self {
        Error::Invalid(what.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_classification() {
        let throttled = Error::Throttled {
            operation: "RegisterTargets".into(),
            message: "Rate exceeded".into(),
        };
        assert!(throttled.is_retryable());
        assert!(throttled.is_throttling());
        let denied = Error::AccessDenied {
            action: "elasticloadbalancing:RegisterTargets".into(),
            message: "no".into(),
        };
        assert!(!denied.is_retryable());
        assert!(denied
            .to_string()
            .contains("elasticloadbalancing:RegisterTargets"));
        assert!(!Error::invalid("bad port").is_retryable());
        assert!(!Error::conflict("taken").is_retryable());
    }
}
