//! Errors of setting the client up. Calls return [`berth_core::Error`].

/// What can go wrong before the first request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is missing or malformed (the message names it).
    #[error("invalid Cast.ai configuration: {0}")]
    Config(String),
    /// The TLS stack could not be set up (e.g. no root certificates).
    #[error("cannot set up TLS for the Cast.ai client: {0}")]
    Tls(String),
}

impl From<Error> for berth_core::Error {
    fn from(e: Error) -> Self {
        berth_core::Error::invalid(e.to_string())
    }
}
