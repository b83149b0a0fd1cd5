//! The crate's one error type.

use std::net::SocketAddr;

/// What can go wrong in the process shell.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The admin server could not listen.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The SIGTERM/SIGINT handlers could not be installed.
    #[error("cannot install the SIGTERM/SIGINT handlers")]
    Signals(#[source] std::io::Error),
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    AsyncRuntime(#[source] std::io::Error),
    /// A mode's HTTP API server failed while serving.
    #[error("the HTTP API server failed")]
    Serve(#[source] std::io::Error),
    /// `--log-level` (or `RUST_LOG`) is not a valid filter.
    #[error("invalid log filter {filter:?}")]
    LogFilter {
        /// The filter given.
        filter: String,
        /// Why it is invalid.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber is already installed.
    #[error("logging is already initialised")]
    LoggingAlreadySet,
    /// The controller loop's trigger stream ended: nothing can wake it any more.
    #[error("the controller's trigger stream ended")]
    TriggersEnded,
}
