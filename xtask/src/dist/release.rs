//! `cargo xtask dist [--profile P] [NAME...]`: a release in `dist/`, made from scratch.
//!
//! - every released binary (`cargo build -p <one package>` each, so workspace feature
//!   unification cannot pull test fakes in; checked first, see [`super::features`]),
//!   stamped with the git revision (`BERTH_GIT_REVISION`), checked to print it in
//!   `--version`;
//! - `berth-lambda.zip` (when berth-lambda is built);
//! - `charts/<chart>-<version>.tgz`: every chart under `charts/` (`helm package`);
//! - `iam/<binary>.example.json`: the example IAM policies the binaries generate
//!   (`berth-<mode> iam-policy`; tests keep the committed ones equal);
//! - `sbom/<binary>.cdx.json`: a CycloneDX SBOM per binary;
//! - `SHA256SUMS` over all of the above.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::{features, sbom, sums, BinPackage, Workspace, DIST_DIR};
use crate::process;

/// The Lambda package, zipped as well as shipped as a binary.
const LAMBDA: &str = "berth-lambda";

/// The directory cargo puts a profile's artifacts in.
fn profile_dir(profile: &str) -> &str {
    match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    }
}

/// The revision to stamp: `BERTH_GIT_REVISION` if set (a build from a tarball sets it),
/// else git's `HEAD`, else none (the binaries then say `unknown`).
fn revision(root: &Path) -> Option<String> {
    if let Some(set) = std::env::var("BERTH_GIT_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
    {
        return Some(set);
    }
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|r| !r.is_empty())
}

fn create(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("could not copy {} to {}", from.display(), to.display()))
}

/// Builds the release of `selected` into `dist/`.
pub(super) fn run(
    root: &Path,
    workspace: &Workspace,
    selected: &[BinPackage],
    profile: &str,
) -> Result<()> {
    let dist = root.join(DIST_DIR);
    if dist.exists() {
        std::fs::remove_dir_all(&dist)
            .with_context(|| format!("could not empty {}", dist.display()))?;
    }
    let sbom_dir = dist.join("sbom");
    create(&sbom_dir)?;
    let revision = revision(root);
    let built = workspace.target_directory.join(profile_dir(profile));

    for package in selected {
        features::check(root, &package.name)?;
        let mut build = process::cargo(
            root,
            &["build", "--profile", profile, "--package", &package.name],
        );
        if let Some(revision) = &revision {
            build.env("BERTH_GIT_REVISION", revision);
        }
        let status = build.status().context("could not start cargo build")?;
        if !status.success() {
            bail!(
                "dist: `cargo build --profile {profile} -p {}` failed ({status})",
                package.name
            );
        }
        for bin in &package.bins {
            let file = format!("{bin}{}", std::env::consts::EXE_SUFFIX);
            let to = dist.join(&file);
            copy(&built.join(&file), &to)?;
            let version = check_version(&to, revision.as_deref())?;
            println!("dist: {} ({version})", to.display());
        }
        sbom::write(
            root,
            &package.name,
            &sbom_dir.join(format!("{}.cdx.json", package.name)),
        )?;
        if package.name == LAMBDA {
            let executable = std::fs::read(dist.join(LAMBDA))?;
            let zip = dist.join(format!("{LAMBDA}.zip"));
            crate::dist_lambda::write_zip(&zip, &executable)?;
            println!("dist: {}", zip.display());
        }
    }
    iam_policies(root, selected, &dist.join("iam"))?;
    charts(root, &dist.join("charts"))?;
    sums::write(&dist)
}

/// Runs `binary --version` and checks that it names the revision.
fn check_version(binary: &Path, revision: Option<&str>) -> Result<String> {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("could not run {} --version", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let expected = format!("(revision {})", revision.unwrap_or("unknown"));
    if !out.status.success() || !text.contains(&expected) {
        bail!(
            "dist: `{} --version` printed {text:?}, not the version with {expected}",
            binary.display()
        );
    }
    Ok(text)
}

/// The committed example policy of each selected binary: `examples/<mode>/iam-policy.json`.
fn iam_policies(root: &Path, selected: &[BinPackage], out: &Path) -> Result<()> {
    create(out)?;
    for package in selected {
        let mode = package.name.trim_start_matches("berth-");
        let example = root.join("examples").join(mode).join("iam-policy.json");
        if example.is_file() {
            let to = out.join(format!("{}.example.json", package.name));
            copy(&example, &to)?;
            println!("dist: {}", to.display());
        }
    }
    Ok(())
}

/// The charts under `charts/` (directories holding a `Chart.yaml`).
fn chart_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let charts = root.join("charts");
    if !charts.is_dir() {
        return Ok(Vec::new());
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&charts)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|dir| dir.join("Chart.yaml").is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// `helm package` of every chart into `out`.
fn charts(root: &Path, out: &Path) -> Result<()> {
    let dirs = chart_dirs(root)?;
    if dirs.is_empty() {
        return Ok(());
    }
    let helm = crate::helm::find().context(
        "dist: helm is missing, and the charts under charts/ are packaged with `helm package`: \
         run `cargo xtask setup` (it installs the pinned helm) or install Helm 3 on PATH",
    )?;
    create(out)?;
    for dir in dirs {
        crate::setup::run_tool(
            Command::new(&helm)
                .arg("package")
                .arg(&dir)
                .arg("--destination")
                .arg(out),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_map_to_cargos_directories() {
        assert_eq!(profile_dir("release"), "release");
        assert_eq!(profile_dir("dev"), "debug");
        assert_eq!(profile_dir("dist"), "dist");
    }

    #[test]
    fn the_workspaces_charts_are_found() {
        let root = crate::workspace_root().unwrap();
        let dirs = chart_dirs(&root).unwrap();
        for dir in &dirs {
            assert!(dir.join("Chart.yaml").is_file());
        }
        assert!(dirs.iter().all(|d| !d.ends_with("tests")), "{dirs:?}");
    }
}
