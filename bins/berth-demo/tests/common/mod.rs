//! Running the compiled `berth-demo` and reading its final report.
#![allow(dead_code, unreachable_pub)]

use std::process::{Command, Output};

/// What a run printed.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Everything, for assertion messages.
    pub fn text(&self) -> String {
        format!(
            "exit code {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// The rows of a section of the report (after its title and column headers, up to
    /// the blank line), each row's cells joined by one space.
    pub fn section(&self, title: &str) -> Vec<String> {
        self.stdout
            .lines()
            .skip_while(|l| *l != title)
            .skip(2)
            .take_while(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    /// The count on the row of `name` in a section with two columns.
    pub fn count(&self, title: &str, name: &str) -> Option<u64> {
        self.section(title).iter().find_map(|row| {
            let (first, n) = row.rsplit_once(' ')?;
            (first == name).then(|| n.parse().ok()).flatten()
        })
    }

    /// Each `(name, least)`: the count on the row of `name` in section `title` is at
    /// least `least`.
    pub fn assert_counts_at_least(&self, title: &str, least: &[(&str, u64)]) {
        for &(name, least) in least {
            assert!(
                self.count(title, name) >= Some(least),
                "{name} in {title}: {}",
                self.text()
            );
        }
    }
}

/// Runs `berth-demo` with `args` (plain progress, default log level) to its exit.
pub fn demo(args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_berth-demo"))
        .args(["--progress", "plain"])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("BERTH_LOG_LEVEL")
        .env_remove("BERTH_DEMO_AWS_ENDPOINT")
        .output()
        .expect("run berth-demo");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}
