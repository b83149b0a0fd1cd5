//! Logs on stderr through `tracing`, as text or JSON lines, each carrying the `mode`.
//!
//! The filter is `--log-level` (`BERTH_LOG_LEVEL`) if given, else `RUST_LOG`, else
//! `info`. Text lines carry no ANSI colours (they end up in container logs).
//!
//! [`summary`] writes a structured record (nested objects included) as one line of
//! the same log: in JSON its fields are the line's own, beside `mode`, `timestamp`,
//! `level` and `message`; in text it is one compact JSON field `summary=`.

use std::fmt::{self, Write as _};

use serde::Serialize;
use serde_json::{Map, Value};
use tracing::{Event, Level, Subscriber};
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

/// The field that carries a [`summary`]'s JSON text.
const SUMMARY_FIELD: &str = "summary";

/// Keys every line has; a summary's own keys of these names are dropped.
const COMMON_KEYS: [&str; 4] = ["mode", "timestamp", "level", "message"];

/// Logs `record` as one line at `level` with `message`, through the subscriber
/// [`init`] installed (its writer, filter and format): in JSON the record's fields,
/// nested objects included, are fields of the line beside the common ones; in text
/// the record is one compact JSON field `summary={...}`. A record that is not a JSON
/// object is the line's `summary` field.
///
/// For a mode's one line per unit of work (the Lambda's per event): it carries the
/// same `mode`, `timestamp` and `level` as every other line.
pub fn summary(level: Level, message: &str, record: &impl Serialize) {
    let text = match serde_json::to_value(record) {
        Ok(Value::Object(mut fields)) => {
            for key in COMMON_KEYS {
                fields.remove(key);
            }
            Value::Object(fields).to_string()
        }
        Ok(other) => Value::Object(Map::from_iter([(SUMMARY_FIELD.to_owned(), other)])).to_string(),
        Err(e) => {
            tracing::error!(error = %e, "{message}: the summary could not be serialised");
            return;
        }
    };
    // `event!` needs a constant level.
    match level {
        Level::ERROR => tracing::error!(summary = %text, "{message}"),
        Level::WARN => tracing::warn!(summary = %text, "{message}"),
        Level::INFO => tracing::info!(summary = %text, "{message}"),
        Level::DEBUG => tracing::debug!(summary = %text, "{message}"),
        _ => tracing::trace!(summary = %text, "{message}"),
    }
}

/// Whether `event` was written by [`summary`].
fn is_summary(event: &Event<'_>) -> bool {
    event.metadata().target() == module_path!()
        && event.metadata().fields().field(SUMMARY_FIELD).is_some()
}

/// A [`summary`]'s JSON line: `mode`, the common fields, then the record's fields
/// (the JSON text of its `summary` field spliced in) and any other field.
fn summary_line(mode: &str, body: &str) -> Option<String> {
    let Ok(Value::Object(mut line)) = serde_json::from_str::<Value>(body) else {
        return None;
    };
    let Some(Value::String(text)) = line.remove(SUMMARY_FIELD) else {
        return None;
    };
    let Ok(Value::Object(record)) = serde_json::from_str::<Value>(&text) else {
        return None;
    };
    // `mode` and the common fields first, in this order; then the record's fields and
    // any other field of the line, each key once.
    let mut fields: Vec<(String, Value)> = vec![("mode".to_owned(), mode.into())];
    for key in &COMMON_KEYS[1..] {
        if let Some(value) = line.remove(*key) {
            fields.push(((*key).to_owned(), value));
        }
    }
    for (key, value) in record.into_iter().chain(line) {
        if !fields.iter().any(|(k, _)| *k == key) {
            fields.push((key, value));
        }
    }
    let mut text = String::from("{");
    for (i, (key, value)) in fields.into_iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&Value::String(key).to_string());
        text.push(':');
        text.push_str(&value.to_string());
    }
    text.push('}');
    Some(text)
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
        if self.json && is_summary(event) {
            if let Some(line) = summary_line(self.mode, body) {
                return writeln!(writer, "{line}");
            }
        }
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
        capture_with(json, || tracing::info!(group = "web", "registered"))
    }

    fn capture_with(json: bool, log: impl FnOnce()) -> String {
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
        log();
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

    #[derive(Serialize)]
    struct Handled {
        request_id: &'static str,
        level: &'static str,
        aws_calls_by_operation: std::collections::BTreeMap<&'static str, u32>,
    }

    fn handled() -> Handled {
        Handled {
            request_id: "r-1",
            level: "ignored: the line's own level wins",
            aws_calls_by_operation: [("PutItem", 2), ("AssociateAddress", 1)].into(),
        }
    }

    #[test]
    fn a_summary_is_one_json_line_with_nested_fields_and_the_common_ones() {
        let out = capture_with(true, || summary(Level::ERROR, "event handled", &handled()));
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            out.starts_with("{\"mode\":\"sidecar\",\"timestamp\":"),
            "{out}"
        );
        let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(value["mode"], "sidecar");
        assert_eq!(value["level"], "ERROR");
        assert_eq!(value["message"], "event handled");
        assert_eq!(value["request_id"], "r-1");
        assert_eq!(value["aws_calls_by_operation"]["PutItem"], 2, "{out}");
        assert!(value.get("summary").is_none(), "{out}");
        assert!(value["timestamp"].is_string(), "{out}");
    }

    #[test]
    fn a_summary_in_text_is_one_line_with_a_compact_json_field() {
        let out = capture_with(false, || summary(Level::INFO, "event handled", &handled()));
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            out.contains(
                "INFO event handled summary={\"aws_calls_by_operation\":{\"AssociateAddress\":1,\"PutItem\":2},\"request_id\":\"r-1\"} mode=sidecar"
            ),
            "{out}"
        );
    }

    #[test]
    fn a_summary_that_is_not_an_object_is_the_summary_field() {
        let out = capture_with(true, || summary(Level::INFO, "counted", &[1, 2]));
        let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(value["summary"], serde_json::json!([1, 2]), "{out}");
        // Another event's `summary` field is left as it is.
        let out = capture_with(true, || tracing::info!(summary = "{}", "plain"));
        let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(value["summary"], "{}", "{out}");
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
