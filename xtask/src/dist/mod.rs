//! `cargo xtask dist`: release artifacts in `dist/`.
//!
//! `cargo xtask dist [--profile P] [NAME...]` makes a release (see [`release`]) of the
//! packages under `bins/` (all released ones, or those named): binaries, the Lambda zip,
//! the charts, the IAM policies, SBOMs and `SHA256SUMS`. `dist bins` builds binaries
//! only; `dist lambda` the Lambda zip only.

#[cfg(test)]
mod containers;
mod features;
mod release;
mod sbom;
mod sums;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::process;

/// Where artifacts go, relative to the workspace root.
const DIST_DIR: &str = "dist";

/// [`DIST_DIR`], for the other `dist` kinds.
pub(crate) fn dist_dir() -> &'static str {
    DIST_DIR
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct DistArgs {
    #[command(subcommand)]
    kind: Option<DistKind>,
    /// Packages under bins/ to release (default: all released ones).
    #[arg(value_name = "NAME")]
    names: Vec<String>,
    /// The cargo profile to build with (`dev` for a quick trial of the whole release).
    #[arg(long, default_value = "release")]
    profile: String,
}

#[derive(Debug, Subcommand)]
enum DistKind {
    /// Release binaries of the packages under bins/ only, built together.
    Bins {
        /// Packages under bins/ to build (default: all released ones).
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },
    /// berth-lambda for the `provided.al2023` runtime: `dist/berth-lambda.zip` holding `bootstrap`.
    Lambda,
}

/// Runs `cargo xtask dist` in the workspace at `root`.
pub(crate) fn run(root: &Path, args: DistArgs) -> Result<()> {
    match args.kind {
        None => {
            let metadata =
                process::cargo_stdout(root, &["metadata", "--no-deps", "--format-version", "1"])?;
            let workspace = parse_metadata(&metadata)?;
            let selected = select(workspace.bin_packages.clone(), &args.names)?;
            release::run(root, &workspace, &selected, &args.profile)
        }
        Some(DistKind::Bins { names }) => bins(root, &names),
        Some(DistKind::Lambda) => crate::dist_lambda::run(root),
    }
}

/// A package under `bins/` and its binary targets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BinPackage {
    name: String,
    bins: Vec<String>,
}

/// What `cargo metadata` says about the workspace that `dist` needs.
#[derive(Debug)]
struct Workspace {
    target_directory: PathBuf,
    bin_packages: Vec<BinPackage>,
}

/// Builds `--release` binaries of the packages under `bins/` and copies them into `dist/`.
fn bins(root: &Path, names: &[String]) -> Result<()> {
    let metadata =
        process::cargo_stdout(root, &["metadata", "--no-deps", "--format-version", "1"])?;
    let workspace = parse_metadata(&metadata)?;
    let selected = select(workspace.bin_packages, names)?;
    if selected.is_empty() {
        println!("dist: there are no packages under bins/ yet; nothing to build");
        return Ok(());
    }

    let mut args = vec!["build", "--release"];
    for package in &selected {
        args.extend(["--package", package.name.as_str()]);
    }
    process::run_cargo(root, &args)?;

    let release = workspace.target_directory.join("release");
    let dist = root.join(DIST_DIR);
    std::fs::create_dir_all(&dist)
        .with_context(|| format!("could not create {}", dist.display()))?;
    for bin in selected.iter().flat_map(|package| &package.bins) {
        let file = format!("{bin}{}", std::env::consts::EXE_SUFFIX);
        let from = release.join(&file);
        let to = dist.join(&file);
        std::fs::copy(&from, &to)
            .with_context(|| format!("could not copy {} to {}", from.display(), to.display()))?;
        let size = std::fs::metadata(&to).map(|m| m.len()).unwrap_or_default();
        println!("dist: {} ({:.1} MiB)", to.display(), mebibytes(size));
    }
    Ok(())
}

#[allow(clippy::cast_precision_loss)] // a display figure
fn mebibytes(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Reads `cargo metadata --no-deps --format-version 1`: the target directory and the workspace
/// packages whose manifest is under `<workspace root>/bins/`, sorted by name, except those
/// marked `[package.metadata.berth] release = false`.
fn parse_metadata(json: &str) -> Result<Workspace> {
    let metadata: Value = serde_json::from_str(json).context("cargo metadata printed bad JSON")?;
    let str_field = |value: &Value, field: &str| -> Result<String> {
        value[field]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("cargo metadata: missing string field `{field}`"))
    };
    let workspace_root = PathBuf::from(str_field(&metadata, "workspace_root")?);
    let target_directory = PathBuf::from(str_field(&metadata, "target_directory")?);
    let bins_dir = workspace_root.join("bins");

    let packages = metadata["packages"]
        .as_array()
        .context("cargo metadata: missing `packages`")?;
    let mut bin_packages = Vec::new();
    for package in packages {
        let manifest_path = PathBuf::from(str_field(package, "manifest_path")?);
        // berth-demo carries test fakes: `[package.metadata.berth] release = false`
        // keeps it out of every release artifact.
        let released = package["metadata"]["berth"]["release"].as_bool() != Some(false);
        if !manifest_path.starts_with(&bins_dir) || !released {
            continue;
        }
        let bins = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|target| {
                target["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"))
            })
            .map(|target| str_field(target, "name"))
            .collect::<Result<Vec<_>>>()?;
        bin_packages.push(BinPackage {
            name: str_field(package, "name")?,
            bins,
        });
    }
    bin_packages.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Workspace {
        target_directory,
        bin_packages,
    })
}

/// The packages named (all when `names` is empty); an unknown name is an error.
fn select(packages: Vec<BinPackage>, names: &[String]) -> Result<Vec<BinPackage>> {
    if names.is_empty() {
        return Ok(packages);
    }
    let unknown: Vec<&str> = names
        .iter()
        .filter(|name| !packages.iter().any(|package| &package.name == *name))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        bail!(
            "dist: no package under bins/ named {}; known: {}",
            unknown.join(", "),
            if known.is_empty() {
                "none yet".to_owned()
            } else {
                known.join(", ")
            }
        );
    }
    Ok(packages
        .into_iter()
        .filter(|package| names.contains(&package.name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    const METADATA: &str = r#"{
      "packages": [
        {"name": "berth-core", "manifest_path": "/w/crates/berth-core/Cargo.toml",
         "targets": [{"name": "berth_core", "kind": ["lib"]}]},
        {"name": "berth-sidecar", "manifest_path": "/w/bins/berth-sidecar/Cargo.toml",
         "targets": [{"name": "berth-sidecar", "kind": ["bin"]},
                     {"name": "it", "kind": ["test"]}]},
        {"name": "berth-daemon", "manifest_path": "/w/bins/berth-daemon/Cargo.toml",
         "targets": [{"name": "berth_daemon", "kind": ["lib"]},
                     {"name": "berth-daemon", "kind": ["bin"]}]},
        {"name": "berth-demo", "manifest_path": "/w/bins/berth-demo/Cargo.toml",
         "metadata": {"berth": {"release": false}},
         "targets": [{"name": "berth-demo", "kind": ["bin"]}]},
        {"name": "xtask", "manifest_path": "/w/xtask/Cargo.toml",
         "targets": [{"name": "xtask", "kind": ["bin"]}]}
      ],
      "workspace_root": "/w",
      "target_directory": "/w/target"
    }"#;

    fn package(name: &str) -> BinPackage {
        BinPackage {
            name: name.to_owned(),
            bins: vec![name.to_owned()],
        }
    }

    #[test]
    fn only_packages_under_bins_are_built_and_not_the_demo() {
        let workspace = parse_metadata(METADATA).unwrap();
        assert_eq!(workspace.target_directory, Path::new("/w/target"));
        assert_eq!(
            workspace.bin_packages,
            [package("berth-daemon"), package("berth-sidecar")]
        );
    }

    #[test]
    fn a_workspace_without_bins_has_nothing_to_build() {
        let json = r#"{"packages": [], "workspace_root": "/w", "target_directory": "/t"}"#;
        assert!(parse_metadata(json).unwrap().bin_packages.is_empty());
    }

    #[test]
    fn names_select_packages_and_unknown_names_fail() {
        let all = || parse_metadata(METADATA).unwrap().bin_packages;
        assert_eq!(select(all(), &[]).unwrap().len(), 2);
        assert_eq!(
            select(all(), &["berth-sidecar".to_owned()]).unwrap(),
            [package("berth-sidecar")]
        );
        let err = select(all(), &["berth-nope".to_owned()]).unwrap_err();
        assert!(err.to_string().contains("berth-nope"), "{err}");
    }

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        dist: DistArgs,
    }

    #[test]
    fn dist_takes_names_or_a_kind() {
        let names = Wrapper::try_parse_from(["dist", "berth-daemon", "berth-sidecar"]).unwrap();
        assert!(names.dist.kind.is_none());
        assert_eq!(names.dist.names, ["berth-daemon", "berth-sidecar"]);

        assert_eq!(names.dist.profile, "release");
        let trial = Wrapper::try_parse_from(["dist", "--profile", "dev", "berth-sidecar"]).unwrap();
        assert_eq!(trial.dist.profile, "dev");
        assert_eq!(trial.dist.names, ["berth-sidecar"]);

        let kind = Wrapper::try_parse_from(["dist", "bins", "berth-daemon"]).unwrap();
        assert!(
            matches!(kind.dist.kind, Some(DistKind::Bins { ref names }) if names == &["berth-daemon"])
        );
    }
}
