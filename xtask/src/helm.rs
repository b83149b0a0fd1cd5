//! helm, for the chart tests and `cargo xtask dist`'s `helm package`.
//!
//! Only checked here: the charts' own installer (pinned, from a release archive) belongs
//! with the charts and replaces the body of [`ensure`] when it lands.

use std::path::Path;

use anyhow::{bail, Result};

use crate::setup::find_on_path;

/// Makes sure `helm` is on `PATH` when the workspace has charts (`charts/`).
pub(crate) fn ensure(root: &Path) -> Result<()> {
    if !root.join("charts").is_dir() {
        println!("no charts/ yet: helm is not needed");
        return Ok(());
    }
    if find_on_path("helm").is_none() {
        bail!("helm is missing: the chart tests and `cargo xtask dist` run `helm`; install Helm 3 and put it on PATH");
    }
    Ok(())
}
