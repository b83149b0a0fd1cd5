//! Tidy-style rules for binary crates (`bins/*/src`): a binary parses, wires and
//! translates outcomes; it does not decide, retry, wait, serve HTTP, keep a metrics
//! registry, install a subscriber or handle signals — berth-core and berth-runtime do.
//!
//! The rules read source text, not syntax trees: comments are skipped, and so is test
//! code (files named `tests.rs`, files under a `tests/` directory, and everything from a
//! `#[cfg(test)]` line onwards — test modules conventionally close a file).
//!
//! A line that must break a rule for a reason — berth-provisioner's API *is* an HTTP
//! server — says so in a comment on it or on the line above:
//! `// layering: allow(http-server): <why>`. Kinds: `http-server`, `registry`,
//! `subscriber`, `signals`, `planner`, `engine`.

use std::path::{Path, PathBuf};

/// A rule broken at one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// The file, relative to the workspace root.
    pub(crate) file: PathBuf,
    /// 1-based line.
    pub(crate) line: usize,
    /// What is wrong and what to use instead.
    pub(crate) message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

const HTTP_SERVER: &str = "an HTTP server: use berth_runtime's admin server (Process::serve_admin)";
const REGISTRY: &str = "a metrics registry: register in berth_runtime's (Process::metrics)";
const SUBSCRIBER: &str = "a tracing subscriber: berth_runtime sets up logging (LogArgs)";
const SIGNALS: &str = "signal handling: use berth_runtime's shutdown token (Process::shutdown)";

/// Text that may not appear in a binary's code: (text, rule kind, why).
const FORBIDDEN_TEXT: &[(&str, &str, &str)] = &[
    ("TcpListener", "http-server", HTTP_SERVER),
    ("serve_connection", "http-server", HTTP_SERVER),
    ("hyper::server", "http-server", HTTP_SERVER),
    ("hyper_util::server", "http-server", HTTP_SERVER),
    ("axum::serve", "http-server", HTTP_SERVER),
    ("Registry::default", "registry", REGISTRY),
    ("Registry::new", "registry", REGISTRY),
    ("Registry::with_prefix", "registry", REGISTRY),
    ("tracing_subscriber", "subscriber", SUBSCRIBER),
    ("set_global_default", "subscriber", SUBSCRIBER),
    ("tokio::signal", "signals", SIGNALS),
    ("ctrl_c(", "signals", SIGNALS),
];

/// The rule kinds allowed on each line (1-based) by a `layering: allow(kind)` comment at
/// its end or alone on the line above.
fn allowances(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(at) = line.find("layering: allow(") else {
            continue;
        };
        let rest = &line[at + "layering: allow(".len()..];
        let kind = rest.split(')').next().unwrap_or("").trim().to_owned();
        let comment_only = line.trim_start().starts_with("//");
        out.push((if comment_only { i + 2 } else { i + 1 }, kind));
    }
    out
}

/// The engine's building blocks a binary must not call: its operations call them.
const ENGINE_FUNCTIONS: &[&str] = &["retry", "wait_for_targets", "wait_dns_sync"];

/// Whether `name` is a planner: `plan_*` or `desire_*`.
fn is_planner(name: &str) -> bool {
    name.starts_with("plan_") || name.starts_with("desire_")
}

/// The violations in one source file's `text`.
pub(crate) fn check_source(file: &Path, text: &str) -> Vec<Violation> {
    if is_test_file(file) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let allowed = allowances(text);
    let mut push = |line: usize, kind: &str, message: String| {
        if allowed.iter().any(|(l, k)| *l == line && k == kind) {
            return;
        }
        out.push(Violation {
            file: file.to_owned(),
            line,
            message,
        });
    };
    let lines = code_lines(text);
    for (number, code) in &lines {
        for (needle, kind, why) in FORBIDDEN_TEXT {
            if contains_token(code, needle) {
                push(*number, kind, format!("`{needle}`: {why}"));
            }
        }
        for name in words(code) {
            let path_call = |module: &str| {
                code.contains(&format!("{module}::{name}("))
                    || code.contains(&format!("{module}::{name}::<"))
            };
            if is_planner(name) && path_call("plan") {
                push(*number, "planner", planner_message(name));
            }
            if ENGINE_FUNCTIONS.contains(&name) && path_call("engine") {
                push(*number, "engine", engine_message(name));
            }
        }
    }
    for (number, statement) in use_statements(&lines) {
        let from_plan = statement.contains("plan::");
        let from_engine = statement.contains("engine::");
        if !statement.contains("berth_core") {
            continue;
        }
        for name in words(&statement) {
            if from_plan && is_planner(name) {
                push(number, "planner", planner_message(name));
            }
            if from_engine && ENGINE_FUNCTIONS.contains(&name) {
                push(number, "engine", engine_message(name));
            }
        }
    }
    out.sort_by_key(|v| v.line);
    out.dedup();
    out
}

fn planner_message(name: &str) -> String {
    format!("calls the planner `{name}`: planning belongs in a berth-core workflow")
}

fn engine_message(name: &str) -> String {
    format!("calls the engine's `{name}`: use an engine operation or a berth-core workflow")
}

fn is_test_file(file: &Path) -> bool {
    file.file_name().is_some_and(|n| n == "tests.rs")
        || file.components().any(|c| c.as_os_str() == "tests")
}

/// The code lines (1-based numbers) before the first `#[cfg(test)]`, comments removed.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_block_comment = false;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        let mut line = raw.to_owned();
        if in_block_comment {
            match line.find("*/") {
                Some(end) => {
                    line = line[end + 2..].to_owned();
                    in_block_comment = false;
                }
                None => continue,
            }
        }
        if let Some(start) = line.find("/*") {
            if !line[start..].contains("*/") {
                in_block_comment = true;
            }
            line.truncate(start);
        }
        if let Some(start) = line.find("//") {
            line.truncate(start);
        }
        if !line.trim().is_empty() {
            out.push((i + 1, line));
        }
    }
    out
}

/// `use` statements (possibly spanning lines), with the number of their first line.
fn use_statements(lines: &[(usize, String)]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (number, line) in lines {
        let trimmed = line.trim_start();
        let starts = trimmed.starts_with("use ")
            || trimmed.starts_with("pub use ")
            || trimmed.starts_with("pub(crate) use ");
        if current.is_none() && starts {
            current = Some((*number, String::new()));
        }
        if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push(' ');
            if line.contains(';') {
                out.extend(current.take());
            }
        }
    }
    out
}

/// Identifiers in `code`.
fn words(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// Whether `needle` occurs in `code` not as part of a longer identifier.
fn contains_token(code: &str, needle: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    code.match_indices(needle).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + needle.len()..].chars().next();
        let starts_ident = needle.starts_with(is_ident);
        let ends_ident = needle.ends_with(is_ident);
        let glued_before = starts_ident && before.is_some_and(is_ident);
        let glued_after = ends_ident && after.is_some_and(is_ident);
        !glued_before && !glued_after
    })
}

/// Every `.rs` file under `bins/*/src`, relative to `root`, sorted.
pub(crate) fn sources(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let bins = root.join("bins");
    for entry in std::fs::read_dir(&bins)? {
        let src = entry?.path().join("src");
        if src.is_dir() {
            collect(&src, &mut out)?;
        }
    }
    let mut relative: Vec<PathBuf> = out
        .into_iter()
        .map(|p| p.strip_prefix(root).map(Path::to_path_buf).unwrap_or(p))
        .collect();
    relative.sort();
    Ok(relative)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Every violation in the binaries under `root`.
pub(crate) fn check(root: &Path) -> std::io::Result<Vec<Violation>> {
    let mut out = Vec::new();
    for file in sources(root)? {
        let text = std::fs::read_to_string(root.join(&file))?;
        out.extend(check_source(&file, &text));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
