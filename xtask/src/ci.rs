//! `cargo xtask ci`: exactly what CI runs, in order, stopping at the first failure.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::{layering, process};

/// Set to `1` to make a missing `cargo-deny` an error rather than a skipped step (CI sets it).
const REQUIRE_DENY: &str = "BERTH_REQUIRE_DENY";

/// One CI step.
enum Step {
    /// `cargo <args>`.
    Cargo(&'static [&'static str]),
    /// The layering check, run in-process.
    Layering,
}

impl Step {
    fn title(&self) -> String {
        match self {
            Step::Cargo(args) => process::display(args),
            Step::Layering => "cargo xtask layering".to_owned(),
        }
    }

    fn run(&self, root: &Path) -> Result<()> {
        match self {
            Step::Cargo(args) => process::run_cargo(root, args),
            Step::Layering => layering::run(root, layering::BINARY_RULES_IN_CI),
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

/// The steps, in order: the cheap checks first so a formatting slip fails in seconds.
fn steps(with_deny: bool) -> Vec<Step> {
    let mut steps = vec![FMT, CLIPPY, Step::Layering, TEST];
    if with_deny {
        steps.push(DENY);
    }
    steps
}

/// Runs every step of CI in `root`.
pub(crate) fn run(root: &Path) -> Result<()> {
    let with_deny = process::cargo_subcommand_installed(root, "deny");
    if !with_deny && deny_required() {
        bail!(
            "ci: {REQUIRE_DENY}=1 but cargo-deny is not installed \
             (install it with `cargo install cargo-deny --locked`)"
        );
    }
    let steps = steps(with_deny);
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
    if !with_deny {
        println!(
            "==> ci: skipped `cargo deny check bans licenses sources`: cargo-deny is not installed \
             (set {REQUIRE_DENY}=1 to make that an error)"
        );
    }
    println!(
        "==> ci: all {total} steps passed in {:.0?}",
        started.elapsed()
    );
    Ok(())
}

fn deny_required() -> bool {
    std::env::var(REQUIRE_DENY).is_ok_and(|value| value.trim() == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titles(with_deny: bool) -> Vec<String> {
        steps(with_deny).iter().map(Step::title).collect()
    }

    #[test]
    fn steps_run_in_ci_order() {
        assert_eq!(
            titles(true),
            [
                "cargo fmt --all -- --check",
                "cargo clippy --workspace --all-targets --all-features -- -D warnings",
                "cargo xtask layering",
                "cargo test --workspace --all-features",
                "cargo deny check bans licenses sources",
            ]
        );
    }

    #[test]
    fn deny_is_left_out_when_not_installed() {
        let titles = titles(false);
        assert_eq!(titles.len(), 4);
        assert!(!titles.iter().any(|title| title.contains("deny")));
    }
}
