//! Test support for berth's Helm charts: finds the real `helm` and
//! `kubernetes-validate` (installed pinned by `.ci/install-chart-tools.sh`), renders a
//! chart with an example values file into objects, and generates what must not drift
//! (each chart's README values table, the manifests under `examples/`); checks a
//! chart's RBAC against the requests a real run made ([`rbac`]).
//!
//! A missing tool is a test failure naming the command that installs it, never a skip.
//! Every function here panics with a message saying what failed: it only ever runs
//! inside tests.

pub mod pod;
pub mod rbac;
pub mod readme;
pub mod render;
pub mod tools;

use std::path::PathBuf;

/// The workspace root (this package is `charts/tests`).
///
/// Read at run time (cargo sets `CARGO_MANIFEST_DIR` for the tests it runs) before the
/// compile-time value: checkouts sharing a target directory share this test binary,
/// and the compile-time path would name whichever checkout built it last.
pub fn workspace_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// The directory of chart `name` (`berth-daemon`, `berth-provisioner`).
pub fn chart_dir(name: &str) -> PathBuf {
    workspace_root().join("charts").join(name)
}

/// Whether generated files should be rewritten instead of compared
/// (`BERTH_UPDATE_CHARTS=1`).
pub fn updating() -> bool {
    std::env::var_os("BERTH_UPDATE_CHARTS").is_some_and(|v| v == "1")
}

/// Compares `path` (relative to the workspace root) with `expected`, or rewrites it
/// when [`updating`].
///
/// # Panics
/// When the file differs and is not being updated: the message names the command that
/// regenerates it.
pub fn check_generated(path: &str, expected: &str) {
    let full = workspace_root().join(path);
    if updating() {
        std::fs::write(&full, expected).unwrap_or_else(|e| panic!("writing {path}: {e}"));
        return;
    }
    let actual = std::fs::read_to_string(&full).unwrap_or_default();
    if actual != expected {
        let line = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| actual.lines().count().min(expected.lines().count()));
        panic!(
            "{path} is out of date (first difference at line {}): regenerate it with \
             `BERTH_UPDATE_CHARTS=1 cargo test -p berth-charts`\n--- expected from line {0}:\n{}",
            line + 1,
            expected
                .lines()
                .skip(line)
                .take(8)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
