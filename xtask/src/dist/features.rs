//! A production binary never carries test fakes: no berth crate's `test-util` feature
//! may be enabled in a released package's normal or build dependencies. Each package is
//! also built on its own (`cargo build -p`), so workspace feature unification cannot
//! enable it either.

use std::path::Path;

use anyhow::{bail, Result};

use crate::process;

/// The berth crates whose `test-util` feature the package's own tree enables.
pub(crate) fn test_util_in(tree: &str) -> Vec<String> {
    let mut found: Vec<String> = tree
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("berth-") && line.ends_with("feature \"test-util\""))
        .map(|line| {
            line.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Fails if `package`'s normal/build dependency tree enables a berth `test-util` feature.
pub(crate) fn check(root: &Path, package: &str) -> Result<()> {
    let tree = process::cargo_stdout(
        root,
        &[
            "tree",
            "--package",
            package,
            "--edges",
            "features,normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ],
    )?;
    let found = test_util_in(&tree);
    if !found.is_empty() {
        bail!(
            "dist: {package} would carry test fakes: its dependencies enable the `test-util` \
             feature of {} (move that to [dev-dependencies])",
            found.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_berth_test_util_features_count() {
        let tree = "berth-daemon v0.1.0 (/w/bins/berth-daemon)\n\
                    aws-smithy-types feature \"test-util\"\n\
                    berth-core feature \"default\"\n\
                    berth-core feature \"test-util\"\n\
                    berth-core feature \"test-util\"\n";
        assert_eq!(test_util_in(tree), ["berth-core"]);
        assert!(test_util_in("aws-smithy-types feature \"test-util\"").is_empty());
    }

    /// The real check over every released package (cargo tree resolves, it builds nothing).
    #[test]
    fn released_binaries_carry_no_test_fakes() {
        let root = crate::workspace_root().unwrap();
        let metadata =
            process::cargo_stdout(&root, &["metadata", "--no-deps", "--format-version", "1"])
                .unwrap();
        let workspace = super::super::parse_metadata(&metadata).unwrap();
        assert!(!workspace.bin_packages.is_empty());
        for package in &workspace.bin_packages {
            check(&root, &package.name).unwrap();
        }
        // And the check does catch a package that carries them (berth-demo, unreleased).
        assert!(check(&root, "berth-demo").is_err());
    }
}
