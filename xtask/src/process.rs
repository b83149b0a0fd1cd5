//! Running cargo and other tools from the workspace root.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// The cargo that runs us (`$CARGO`), or `cargo` from `PATH`.
pub(crate) fn cargo_program() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}

/// A `cargo <args>` command run in `root`.
pub(crate) fn cargo(root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(cargo_program());
    cmd.args(args).current_dir(root);
    cmd
}

/// How a command reads in messages: `cargo fmt --all -- --check`.
pub(crate) fn display(args: &[&str]) -> String {
    let mut shown = String::from("cargo");
    for arg in args {
        shown.push(' ');
        shown.push_str(arg);
    }
    shown
}

/// Runs `cargo <args>` in `root` with inherited stdio; fails unless it exits 0.
pub(crate) fn run_cargo(root: &Path, args: &[&str]) -> Result<()> {
    run_command(&mut cargo(root, args), &display(args))
}

/// Runs `command` (read as `shown` in messages) with inherited stdio; fails unless it exits 0.
pub(crate) fn run_command(command: &mut Command, shown: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Runs `cargo <args>` in `root` and returns its stdout; stderr is passed through.
pub(crate) fn cargo_stdout(root: &Path, args: &[&str]) -> Result<String> {
    let shown = display(args);
    let output = cargo(root, args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !output.status.success() {
        bail!("`{shown}` failed ({})", output.status);
    }
    String::from_utf8(output.stdout).with_context(|| format!("`{shown}` printed invalid UTF-8"))
}

/// The stdout of `cargo <args>` if it succeeded, with stderr discarded (for probes).
pub(crate) fn cargo_stdout_quiet(root: &Path, args: &[&str]) -> Option<String> {
    stdout_quiet(&mut cargo(root, args))
}

/// The stdout of `command` if it succeeded, with no stdin and stderr discarded (for
/// probes).
pub(crate) fn stdout_quiet(command: &mut Command) -> Option<String> {
    let output = command
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_reads_like_a_shell_command() {
        assert_eq!(
            display(&["fmt", "--all", "--", "--check"]),
            "cargo fmt --all -- --check"
        );
    }

    #[test]
    fn a_missing_cargo_plugin_is_reported_missing() {
        let root = crate::workspace_root().unwrap();
        assert!(cargo_stdout_quiet(&root, &["berth-no-such-plugin", "--version"]).is_none());
    }
}
