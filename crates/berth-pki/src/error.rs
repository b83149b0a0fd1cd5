/// Why a certificate operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused to make or sign something.
    #[error("{what}")]
    Generate {
        /// What was being made.
        what: String,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// Text that should have been a PEM certificate or key is not.
    #[error("{what} is not a valid PEM {kind}: {message}")]
    Parse {
        /// Where it came from.
        what: String,
        /// `certificate` or `private key`.
        kind: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A request berth cannot turn into a certificate.
    #[error("invalid certificate request: {0}")]
    Invalid(String),
}

/// This crate's results.
pub type Result<T, E = PkiError> = std::result::Result<T, E>;
