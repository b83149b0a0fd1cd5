//! `cargo xtask ci`: exactly what CI runs, in order, stopping at the first failure. It
//! first runs `cargo xtask setup` (installing what the tests need, only when missing), so
//! the README's test command works on a fresh machine and CI (`.ci/run`) is just this.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::{layering, process, setup};

/// One CI step.
enum Step {
    /// `cargo xtask setup`, run in-process.
    Setup,
    /// `cargo <args>`.
    Cargo(&'static [&'static str]),
    /// The layering check, run in-process.
    Layering,
    /// Another tool: program and arguments, run in the workspace root.
    Tool(&'static [&'static str]),
}

impl Step {
    fn title(&self) -> String {
        match self {
            Step::Setup => "cargo xtask setup".to_owned(),
            Step::Cargo(args) => process::display(args),
            Step::Layering => "cargo xtask layering".to_owned(),
            Step::Tool(words) => words.join(" "),
        }
    }

    fn run(&self, root: &Path) -> Result<()> {
        match self {
            Step::Setup => setup::run(root),
            // Incremental state is ~4 GB on a cold build that CI never reuses; a CI machine's
            // disk once ran out during the tests because of it.
            Step::Cargo(args) => process::run_command(
                process::cargo(root, args).env("CARGO_INCREMENTAL", "0"),
                &self.title(),
            ),
            Step::Layering => layering::run(root),
            Step::Tool(words) => {
                let (program, args) = words.split_first().context("empty tool step")?;
                setup::run_tool(Command::new(program).args(args).current_dir(root))
            }
        }
    }
}

const FMT: Step = Step::Cargo(&["fmt", "--all", "--", "--check"]);
const CLIPPY: Step = Step::Cargo(&[
    "clippy",
    "--workspace",
    "--all-targets",
    "--all-features",
    "--",
    "-D",
    "warnings",
]);
const TEST: Step = Step::Cargo(&["test", "--workspace", "--all-features"]);
/// Advisories are left out: their database is cloned from GitHub, which CI cannot reach.
const DENY: Step = Step::Cargo(&["deny", "check", "bans", "licenses", "sources"]);
/// The CloudFormation template berth-lambda ships.
const CFN_LINT: Step = Step::Tool(&["cfn-lint", "examples/lambda/template.yaml"]);

/// The steps, in order: set-up, then the cheap checks so a formatting slip fails in seconds.
fn steps(with_setup: bool) -> Vec<Step> {
    let mut steps = Vec::new();
    if with_setup {
        steps.push(Step::Setup);
    }
    steps.extend([FMT, CLIPPY, Step::Layering, CFN_LINT, TEST, DENY]);
    steps
}

/// Runs every step of CI in `root`; `with_setup: false` (`--no-setup`) skips the
/// installation, so a missing tool fails its own step.
pub(crate) fn run(root: &Path, with_setup: bool) -> Result<()> {
    let steps = steps(with_setup);
    let total = steps.len();
    let started = Instant::now();
    for (index, step) in steps.iter().enumerate() {
        let number = index + 1;
        let title = step.title();
        println!("==> ci [{number}/{total}] {title}");
        let step_started = Instant::now();
        step.run(root)
            .with_context(|| format!("ci: step {number}/{total} failed"))?;
        println!(
            "==> ci [{number}/{total}] {title}: ok ({:.0?})",
            step_started.elapsed()
        );
    }
    println!(
        "==> ci: all {total} steps passed in {:.0?}",
        started.elapsed()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titles(with_setup: bool) -> Vec<String> {
        steps(with_setup).iter().map(Step::title).collect()
    }

    #[test]
    fn steps_run_in_ci_order() {
        assert_eq!(
            titles(true),
            [
                "cargo xtask setup",
                "cargo fmt --all -- --check",
                "cargo clippy --workspace --all-targets --all-features -- -D warnings",
                "cargo xtask layering",
                "cfn-lint examples/lambda/template.yaml",
                "cargo test --workspace --all-features",
                "cargo deny check bans licenses sources",
            ]
        );
    }

    #[test]
    fn no_setup_leaves_only_the_installation_out() {
        let mut with = titles(true);
        with.remove(0);
        assert_eq!(titles(false), with);
    }
}
