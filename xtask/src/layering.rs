//! The layering check:
//!
//! 1. `berth-core` does no I/O and depends on no AWS, kube or HTTP crate: it reads
//!    `cargo tree -p berth-core -e normal --prefix none` twice, with default features and
//!    with `--features test-util` (which adds mockall, allowed), for every target
//!    platform, and fails if any crate in it is forbidden (see [`is_forbidden`]);
//! 2. berth-core's direct dependencies are exactly the list in [`core_deps`], which
//!    `docs/ARCHITECTURE.md` repeats;
//! 3. binaries are wiring ([`bins`]): no planner, engine retry or waiter calls, no HTTP
//!    server, metrics registry, tracing subscriber or signal handling of their own.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::process;

mod bins;
mod core_deps;

/// The crate whose dependency tree is checked.
const CORE: &str = "berth-core";

/// Feature sets checked: default features, and the `test-util` feature downstream tests enable.
const FEATURE_SETS: &[&[&str]] = &[&[], &["--features", "test-util"]];

/// Runs every check against the workspace in `root`; any violation fails it.
pub(crate) fn run(root: &Path) -> Result<()> {
    let failures: Vec<String> = [run_tree(root), run_core_deps(root), run_binary_rules(root)]
        .into_iter()
        .filter_map(|result| result.err().map(|e| format!("{e:#}")))
        .collect();
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}

fn run_core_deps(root: &Path) -> Result<()> {
    let read = |path: &str| {
        std::fs::read_to_string(root.join(path))
            .with_context(|| format!("layering: cannot read {path}"))
    };
    let problems = core_deps::check(
        &read("crates/berth-core/Cargo.toml")?,
        &read("docs/ARCHITECTURE.md")?,
    );
    if problems.is_empty() {
        println!("layering: berth-core's dependencies are the documented list: clean");
        return Ok(());
    }
    bail!("layering: {}", problems.join("\n  "))
}

fn run_binary_rules(root: &Path) -> Result<()> {
    let violations = bins::check(root).context("layering: cannot read bins/*/src")?;
    if violations.is_empty() {
        println!("layering: binaries are wiring only: clean");
        return Ok(());
    }
    let listed: Vec<String> = violations.iter().map(ToString::to_string).collect();
    let text = format!(
        "binaries must only parse, wire and translate outcomes ({} violations):\n  {}",
        violations.len(),
        listed.join("\n  ")
    );
    bail!("layering: {text}")
}

fn run_tree(root: &Path) -> Result<()> {
    let mut failures = Vec::new();
    for features in FEATURE_SETS {
        let mut args = vec![
            "tree", "-p", CORE, "-e", "normal", "--prefix", "none", "--target", "all",
        ];
        args.extend_from_slice(features);
        let shown = process::display(&args);
        let tree = process::cargo_stdout(root, &args)?;
        if tree.trim().is_empty() {
            bail!("layering: `{shown}` printed nothing; is {CORE} a workspace member?");
        }
        let forbidden = forbidden_crates(&tree);
        if forbidden.is_empty() {
            println!("layering: `{shown}`: clean");
        } else {
            failures.push(format!("`{shown}`:\n    {}", forbidden.join("\n    ")));
        }
    }
    if !failures.is_empty() {
        bail!(
            "layering: {CORE} must not depend on AWS, kube or HTTP crates \
             (docs/ARCHITECTURE.md: berth-core does no I/O); found in\n  {}\n\
             Run `cargo tree -p {CORE} -e normal -i <crate>` to see which dependency brings it in.",
            failures.join("\n  ")
        );
    }
    Ok(())
}

/// The forbidden crates named in the output of `cargo tree` (any `--prefix`), as
/// `name version`, sorted and without duplicates. Empty when the tree is clean.
pub(crate) fn forbidden_crates(tree_output: &str) -> Vec<String> {
    let mut found = BTreeSet::new();
    for line in tree_output.lines() {
        // With `--prefix indent` or `depth` a line starts with `├── ` or a number: skip to the name.
        let line = line.trim_start_matches(|c: char| !c.is_ascii_alphabetic());
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else {
            continue;
        };
        if is_forbidden(name) {
            match words.next() {
                Some(version) => found.insert(format!("{name} {version}")),
                None => found.insert(name.to_owned()),
            };
        }
    }
    found.into_iter().collect()
}

/// Whether a crate name belongs to the AWS, kube or HTTP stacks that berth-core must not use.
fn is_forbidden(name: &str) -> bool {
    /// HTTP clients and protocol crates, matched by exact name.
    const HTTP: &[&str] = &["http", "h2", "ureq", "isahc", "attohttpc", "surf", "tonic"];
    let name = name.to_ascii_lowercase().replace('_', "-");
    name.starts_with("aws-")
        || ["kube", "k8s-", "hyper", "reqwest"]
            .iter()
            .any(|part| name.contains(part))
        || HTTP.contains(&name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "\
berth-core v0.1.0 (/work/main/crates/berth-core)
async-trait v0.1.89 (proc-macro)
proc-macro2 v1.0.101
unicode-ident v1.0.19
futures v0.3.31
futures-core v0.3.31
mockall v0.13.1
predicates v3.1.3
thiserror v2.0.16 (proc-macro)
tokio v1.47.1
pin-project-lite v0.2.16
tracing v0.1.41
fastrand v2.3.0
serde v1.0.228
";

    #[test]
    fn a_clean_tree_passes() {
        assert_eq!(forbidden_crates(CLEAN), Vec::<String>::new());
        assert_eq!(forbidden_crates(""), Vec::<String>::new());
    }

    #[test]
    fn an_aws_sdk_crate_is_flagged() {
        let tree = format!("{CLEAN}aws-sdk-ec2 v1.0.0\naws-smithy-runtime v1.9.2\n");
        assert_eq!(
            forbidden_crates(&tree),
            ["aws-sdk-ec2 v1.0.0", "aws-smithy-runtime v1.9.2"]
        );
    }

    #[test]
    fn kube_crates_are_flagged() {
        let tree = format!("{CLEAN}kube-client v1\nkube v2.0.1\nk8s-openapi v0.26.0\n");
        assert_eq!(
            forbidden_crates(&tree),
            ["k8s-openapi v0.26.0", "kube v2.0.1", "kube-client v1"]
        );
    }

    #[test]
    fn http_crates_are_flagged() {
        let tree =
            format!("{CLEAN}hyper v1.0.0\nhyper-util v0.1.17\nreqwest v0.12.23\nhttp v1.3.1\n");
        assert_eq!(
            forbidden_crates(&tree),
            [
                "http v1.3.1",
                "hyper v1.0.0",
                "hyper-util v0.1.17",
                "reqwest v0.12.23"
            ]
        );
    }

    #[test]
    fn duplicates_are_reported_once() {
        let tree = "hyper v1.0.0\nhyper v1.0.0 (*)\nhyper v1.0.0\n";
        assert_eq!(forbidden_crates(tree), ["hyper v1.0.0"]);
    }

    #[test]
    fn indented_trees_are_read_too() {
        let tree = "\
berth-core v0.1.0 (/work/main/crates/berth-core)
├── tokio v1.47.1
└── aws-config v1.8.6
    └── hyper v1.0.0
";
        assert_eq!(
            forbidden_crates(tree),
            ["aws-config v1.8.6", "hyper v1.0.0"]
        );
        let depth = "0berth-core v0.1.0\n1aws-types v1.3.8\n";
        assert_eq!(forbidden_crates(depth), ["aws-types v1.3.8"]);
    }

    #[test]
    fn names_are_matched_as_crate_names_not_substrings_of_paths() {
        // A workspace path that happens to contain a forbidden word is not a dependency.
        let tree = "berth-core v0.1.0 (/home/kube/hyper/berth-core)\nhttparse v1.10.1\n";
        assert_eq!(forbidden_crates(tree), Vec::<String>::new());
    }
}
