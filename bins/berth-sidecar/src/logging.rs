//! Logs on stderr via `tracing`, as text or JSON lines; `RUST_LOG` filters (default `info`).

use tracing_subscriber::EnvFilter;

use crate::args::LogFormat;

/// Installs the global subscriber.
pub(crate) fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Text => builder.with_ansi(false).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
