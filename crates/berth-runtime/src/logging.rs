//! Logs on stderr through `tracing`, as text or JSON lines, each carrying the `mode`.
//!
//! The filter is `--log-level` (`BERTH_LOG_LEVEL`) if given, else `RUST_LOG`, else
//! `info`. Text lines carry no ANSI colours (they end up in container logs).

use std::fmt::{self, Write as _};

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::args::{LogArgs, LogFormat};
use crate::Error;

/// The filter `args` ask for.
pub fn filter(args: &LogArgs) -> Result<EnvFilter, Error> {
    let text = args
        .level
        .clone()
        .filter(|l| !l.trim().is_empty())
        .or_else(|| {
            std::env::var("RUST_LOG")
                .ok()
                .filter(|l| !l.trim().is_empty())
        })
        .unwrap_or_else(|| "info".to_owned());
    EnvFilter::try_new(&text).map_err(|source| Error::LogFilter {
        filter: text,
        source,
    })
}

/// Installs the global subscriber: stderr, `args`' format and filter, a `mode` field on
/// every line.
pub fn init(args: &LogArgs, mode: &'static str) -> Result<(), Error> {
    let filter = filter(args)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false);
    let result = match args.format {
        LogFormat::Text => builder
            .event_format(WithMode {
                inner: tracing_subscriber::fmt::format().with_target(false),
                mode,
                json: false,
            })
            .try_init(),
        LogFormat::Json => {
            let builder = builder.json().flatten_event(true);
            builder
                .event_format(WithMode {
                    inner: tracing_subscriber::fmt::format()
                        .json()
                        .flatten_event(true)
                        .with_target(false),
                    mode,
                    json: true,
                })
                .try_init()
        }
    };
    result.map_err(|_| Error::LoggingAlreadySet)
}

/// Adds `mode` to every event: a first `"mode"` key in JSON, ` mode=...` at the end of
/// a text line (a span would not follow spawned tasks).
struct WithMode<F> {
    inner: F,
    mode: &'static str,
    json: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithMode<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let body = line.strip_suffix('\n').unwrap_or(&line);
        if self.json {
            let mode = serde_json::to_string(self.mode).map_err(|_| fmt::Error)?;
            match body.strip_prefix('{') {
                Some(rest) if rest.starts_with('}') => writeln!(writer, "{{\"mode\":{mode}}}"),
                Some(rest) => writeln!(writer, "{{\"mode\":{mode},{rest}"),
                None => writeln!(writer, "{body}"),
            }
        } else {
            let mut out = String::with_capacity(body.len() + 16);
            out.push_str(body);
            write!(out, " mode={}", self.mode)?;
            writeln!(writer, "{out}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(json: bool) -> String {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let builder = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_ansi(false);
        let _guard = if json {
            let subscriber = builder
                .json()
                .event_format(WithMode {
                    inner: tracing_subscriber::fmt::format()
                        .json()
                        .flatten_event(true)
                        .with_target(false),
                    mode: "sidecar",
                    json: true,
                })
                .finish();
            tracing::subscriber::set_default(subscriber)
        } else {
            let subscriber = builder
                .event_format(WithMode {
                    inner: tracing_subscriber::fmt::format().with_target(false),
                    mode: "sidecar",
                    json: false,
                })
                .finish();
            tracing::subscriber::set_default(subscriber)
        };
        tracing::info!(group = "web", "registered");
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn json_lines_carry_the_mode_and_the_fields() {
        let line = capture(true);
        let value: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(value["mode"], "sidecar");
        assert_eq!(value["message"], "registered");
        assert_eq!(value["group"], "web");
        assert_eq!(value["level"], "INFO");
    }

    #[test]
    fn text_lines_end_with_the_mode() {
        let line = capture(false);
        assert!(
            line.contains("INFO registered group=\"web\" mode=sidecar\n"),
            "{line}"
        );
    }

    #[test]
    fn the_flag_wins_over_rust_log_and_a_bad_filter_is_refused() {
        let args = LogArgs {
            level: Some("debug".into()),
            ..LogArgs::default()
        };
        assert_eq!(filter(&args).unwrap().to_string(), "debug");
        let bad = LogArgs {
            level: Some("info,=[".into()),
            ..LogArgs::default()
        };
        assert!(matches!(filter(&bad), Err(Error::LogFilter { .. })));
    }
}
