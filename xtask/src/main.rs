//! berth's developer tasks, run as `cargo xtask <command>` (see `.cargo/config.toml`).
//!
//! - `cargo xtask ci`: exactly what CI runs, in order, failing fast (after `setup`).
//! - `cargo xtask setup`: installs, pinned and only when missing, what the tests need.
//! - `cargo xtask layering`: checks that `berth-core` depends on no AWS, kube or HTTP crate
//!   and only on its documented dependencies, and that binaries are wiring only.
//! - `cargo xtask dist [--profile P] [NAME...]`: a release in `dist/` (binaries, Lambda zip,
//!   charts, IAM policies, SBOMs, `SHA256SUMS`).
//! - `cargo xtask fuzz [TARGET] [--time SECONDS]`: the cargo-fuzz targets of `fuzz/` (nightly).

mod ci;
mod dist;
mod dist_lambda;
mod fuzz;
mod helm;
mod layering;
mod process;
mod setup;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "berth's developer tasks",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run exactly what CI runs: set-up, fmt check, clippy -D warnings, the layering check,
    /// cfn-lint, tests, cargo deny.
    Ci {
        /// Skip `cargo xtask setup` (a missing tool then fails its own step).
        #[arg(long)]
        no_setup: bool,
    },
    /// Install, pinned and only when missing, every peer the tests need (Debian packages when
    /// root, moto and cfn-lint from PyPI, cargo-deny, helm); terraform must be installed.
    Setup,
    /// Fail if berth-core's normal dependency tree names an AWS, kube or HTTP crate, if its
    /// dependencies differ from the documented list, or if a binary does more than wiring.
    Layering,
    /// Build a release into dist/: binaries, the Lambda zip, charts, IAM policies, SBOMs, SHA256SUMS.
    Dist(dist::DistArgs),
    /// Run the cargo-fuzz targets of fuzz/ (nightly + cargo-fuzz), each for --time seconds.
    Fuzz(fuzz::FuzzArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole chain on one line: "ci: step 2/5 failed: `cargo ...` failed".
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let root = workspace_root()?;
    match cli.command {
        Command::Ci { no_setup } => ci::run(&root, !no_setup),
        Command::Setup => setup::run(&root),
        Command::Layering => layering::run(&root),
        Command::Dist(args) => dist::run(&root, args),
        Command::Fuzz(args) => fuzz::run(&root, args),
    }
}

/// The workspace root: the parent of this crate's manifest directory.
///
/// Read at run time (`cargo run` sets it) before the compile-time value: several
/// checkouts sharing one target directory share the uplifted `xtask` binary, and
/// the compile-time path would then name whichever checkout built it last.
fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let manifest_dir = manifest_dir.as_path();
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .with_context(|| format!("{} has no parent directory", manifest_dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let root = workspace_root().unwrap();
        assert!(root.join("Cargo.toml").is_file());
        assert!(root.join("xtask").is_dir());
    }
}
