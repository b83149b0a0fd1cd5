//! The process shell end to end, through the `probe` example binary: exit codes,
//! `--version`, one error line, the one-shot summary on stdout, the second signal.

use std::io::{BufRead, BufReader, Lines, Read};
use std::path::PathBuf;
use std::process::{ChildStderr, Command, Output, Stdio};
use std::time::Duration;

/// `target/<profile>/examples/probe`, built by `cargo test` with the tests.
fn probe() -> Command {
    let mut path: PathBuf = std::env::current_exe().expect("test binary path");
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.push("examples");
    path.push("probe");
    assert!(
        path.exists(),
        "{} missing: build the examples",
        path.display()
    );
    let mut cmd = Command::new(path);
    cmd.env_remove("RUST_LOG")
        .env_remove("BERTH_LOG_FORMAT")
        .env_remove("BERTH_LOG_LEVEL");
    cmd
}

fn run(args: &[&str]) -> Output {
    probe().args(args).output().expect("probe runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_version_exit_0_and_bad_usage_exits_2() {
    let help = run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("--log-format"));
    let version = run(&["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(
        text(&version.stdout).trim(),
        format!("probe {}", berth_runtime::LONG_VERSION)
    );
    assert!(berth_runtime::LONG_VERSION.contains("(revision "));
    let bad = run(&["--bogus", "fail"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    let bad_filter = run(&["--log-level", "info,=[", "fail"]);
    assert_eq!(
        bad_filter.status.code(),
        Some(2),
        "{}",
        text(&bad_filter.stderr)
    );
}

#[test]
fn a_failure_prints_its_chain_once_and_exits_1() {
    let out = run(&["fail"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors,
        ["error: connecting to the API: client error: connection refused"],
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    let json = run(&["--log-format", "json", "fail"]);
    assert_eq!(json.status.code(), Some(1));
    let stderr = text(&json.stderr);
    let line = stderr.lines().last().expect("a log line");
    let value: serde_json::Value = serde_json::from_str(line).expect("JSON");
    assert_eq!(value["mode"], "probe");
    assert_eq!(
        value["error"],
        "connecting to the API: client error: connection refused"
    );
}

fn summary(out: &Output) -> serde_json::Value {
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one summary line on stdout: {stdout}");
    serde_json::from_str(lines[0]).expect("the summary is JSON")
}

#[test]
fn one_shot_writes_one_summary_and_maps_outcomes_to_codes() {
    for (outcome, code, name) in [
        ("done", 0, "done"),
        ("failed", 1, "failed"),
        ("bad", 2, "bad_configuration"),
        ("ami", 3, "ami_build"),
    ] {
        let out = run(&["--log-format", "json", "oneshot", outcome]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{outcome}: {}",
            text(&out.stderr)
        );
        let value = summary(&out);
        assert_eq!(value["outcome"], name);
        assert_eq!(value["exit_code"], code);
        // Logs stay on stderr, as JSON.
        for line in text(&out.stderr).lines() {
            serde_json::from_str::<serde_json::Value>(line).expect("JSON log line");
        }
    }
    let done = summary(&run(&["oneshot", "done"]));
    assert_eq!(done["summary"]["steps"], 3);
    let timed_out = run(&["oneshot", "hang", "--deadline-ms", "200"]);
    assert_eq!(timed_out.status.code(), Some(1));
    let value = summary(&timed_out);
    assert_eq!(value["outcome"], "timed_out");
    assert_eq!(value["summary"], serde_json::Value::Null);
}

fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Waits for the child's exit, killing it after a generous bound (a hang is a failure).
fn wait(child: &mut std::process::Child) -> Option<i32> {
    for _ in 0..600 {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the probe did not exit");
}

fn spawn(args: &[&str]) -> (std::process::Child, Lines<BufReader<ChildStderr>>) {
    let mut child = probe()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    (child, stderr)
}

/// Reads log lines until one contains `needle` (the handlers are installed before the
/// mode runs, so a line the mode logs means a signal is caught from then on).
fn until_logged(lines: &mut Lines<BufReader<ChildStderr>>, needle: &str) {
    for line in lines.by_ref() {
        if line.unwrap().contains(needle) {
            return;
        }
    }
    panic!("the probe ended without logging {needle:?}");
}

#[test]
fn the_first_signal_cancels_and_a_second_exits_130() {
    let (mut child, mut stderr) = spawn(&["wait"]);
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "waiting");
    kill(child.id(), "-TERM");
    // The mode saw the first signal and hangs: a second one must end it.
    until_logged(&mut stderr, "shutting down slowly");
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited on the first signal"
    );
    kill(child.id(), "-INT");
    assert_eq!(wait(&mut child), Some(130));
}

/// The handlers are in before the mode runs, and the debug line says when: a SIGTERM
/// sent as soon as it is logged — before the mode has printed anything — reaches the
/// mode (it shuts down) instead of killing the process.
#[test]
fn a_signal_right_after_the_handlers_are_logged_reaches_the_mode() {
    let (mut child, mut stderr) = spawn(&["--log-level", "debug", "wait"]);
    until_logged(
        &mut stderr,
        berth_runtime::process::SIGNAL_HANDLERS_INSTALLED,
    );
    kill(child.id(), "-TERM");
    until_logged(&mut stderr, "shutting down slowly");
    assert!(child.try_wait().unwrap().is_none(), "killed by the signal");
    kill(child.id(), "-INT");
    assert_eq!(wait(&mut child), Some(130));
}

#[test]
fn a_signal_cancels_a_one_shot_run() {
    let (mut child, mut stderr) = spawn(&["oneshot", "hang"]);
    until_logged(&mut stderr, "working");
    kill(child.id(), "-TERM");
    assert_eq!(wait(&mut child), Some(130));
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(value["outcome"], "cancelled");
}
