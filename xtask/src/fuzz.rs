//! `cargo xtask fuzz [TARGET] [--time SECONDS]`: runs the cargo-fuzz targets of
//! `fuzz/` (one parser of outside input each), every target or one, each for a given
//! time, from its committed seed corpus `fuzz/corpus/<target>/`.
//!
//! Needs a nightly toolchain and `cargo install cargo-fuzz`; not part of `cargo xtask
//! ci` (CI runs the same parsers as property tests on stable, `tests/hostile_input.rs`).
//! A crash leaves its input in `fuzz/artifacts/<target>/` and fails the command.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;

/// The targets, in `fuzz/Cargo.toml`'s order (a test keeps the two in step).
pub(crate) const TARGETS: &[&str] = &[
    "lambda_event",
    "daemon_rules",
    "bootstrap_config",
    "castai_node_configuration",
    "go_duration",
    "sidecar_flags",
    "provisioner_names",
    "sidecar_args",
    "provisioner_bodies",
    "imds_answers",
];

#[derive(Debug, Args)]
pub(crate) struct FuzzArgs {
    /// One target (default: each in turn). One of: lambda_event, daemon_rules,
    /// bootstrap_config, castai_node_configuration, go_duration, sidecar_flags,
    /// provisioner_names, sidecar_args, provisioner_bodies, imds_answers.
    target: Option<String>,
    /// Seconds to run each target.
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Where the instrumented build goes (it uses other RUSTFLAGS than the normal build,
    /// so it never shares the normal target directory).
    #[arg(long, value_name = "DIR")]
    target_dir: Option<PathBuf>,
}

pub(crate) fn run(root: &Path, args: FuzzArgs) -> Result<()> {
    let targets: Vec<&str> = match &args.target {
        Some(t) if TARGETS.contains(&t.as_str()) => vec![t.as_str()],
        Some(t) => bail!(
            "unknown fuzz target {t:?}; the targets are {}",
            TARGETS.join(", ")
        ),
        None => TARGETS.to_vec(),
    };
    let fuzz_dir = root.join("fuzz");
    let target_dir = args
        .target_dir
        .clone()
        .unwrap_or_else(|| fuzz_dir.join("target"));
    for target in targets {
        eprintln!("fuzz: {target} for {} s", args.time);
        let status = Command::new("rustup")
            .args(["run", "nightly", "cargo", "fuzz", "run", "-O", target])
            .arg(fuzz_dir.join("corpus").join(target))
            .arg("--")
            .arg(format!("-max_total_time={}", args.time))
            .env("CARGO_TARGET_DIR", &target_dir)
            // Set when run by `cargo xtask`: they would pin the stable toolchain.
            .env_remove("CARGO")
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTC")
            .current_dir(&fuzz_dir)
            .status()
            .context("could not start `rustup run nightly cargo fuzz` (install a nightly toolchain and `cargo install cargo-fuzz`)")?;
        if !status.success() {
            bail!(
                "fuzz target {target} failed ({status}); its input is in fuzz/artifacts/{target}/"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_targets_are_those_of_fuzz_cargo_toml_each_with_a_seed_corpus() {
        let root = crate::workspace_root().unwrap();
        let manifest = std::fs::read_to_string(root.join("fuzz/Cargo.toml")).unwrap();
        let declared: Vec<&str> = manifest
            .split("[[bin]]")
            .skip(1)
            .filter_map(|bin| bin.lines().find_map(|l| l.strip_prefix("name = ")))
            .map(|name| name.trim_matches('"'))
            .collect();
        assert_eq!(declared, TARGETS);
        for target in TARGETS {
            let seeds = std::fs::read_dir(root.join("fuzz/corpus").join(target))
                .unwrap_or_else(|e| panic!("fuzz/corpus/{target}: {e}"))
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("seed-"))
                .count();
            assert!(seeds > 0, "fuzz/corpus/{target} has no seed-* input");
            assert!(
                root.join("fuzz/fuzz_targets")
                    .join(format!("{target}.rs"))
                    .is_file(),
                "{target}"
            );
        }
    }
}
