//! `cargo xtask setup`: installs, pinned and only when missing, every peer the tests
//! need, so that `cargo xtask ci` (which runs this first) passes on a fresh Debian
//! machine that has only the Rust toolchain and Python.
//!
//! - Debian packages (protoc, the well-known .proto files, etcd 3.4, procps, openssl,
//!   curl): `apt-get install` when running as root; otherwise a message naming the one
//!   command that installs them.
//! - PyPI packages (moto's server, cfn-lint): `python3 -m pip install` at the pinned
//!   version when the installed one differs.
//! - cargo-deny: `cargo install --locked` at the pinned version.
//! - helm and kubernetes-validate: `.ci/install-chart-tools.sh`, pinned (see [`crate::helm`]).
//! - terraform: there is no package source for it here; it must already be installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::process;

/// moto's server, the AWS API stand-in the adapter and end-to-end tests talk to.
pub(crate) const MOTO: PypiPeer = PypiPeer {
    requirement: "moto[server]",
    distribution: "moto",
    version: "5.2.1",
    script: "moto_server",
};
/// cfn-lint, which checks `examples/lambda/template.yaml`.
pub(crate) const CFN_LINT: PypiPeer = PypiPeer {
    requirement: "cfn-lint",
    distribution: "cfn-lint",
    version: "1.51.0",
    script: "cfn-lint",
};
/// cargo-deny, CI's last step (builds in ~2 minutes on 2 cores).
pub(crate) const CARGO_DENY_VERSION: &str = "0.20.2";

/// A Python package from PyPI, pinned, and the console script the tests run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PypiPeer {
    requirement: &'static str,
    distribution: &'static str,
    version: &'static str,
    script: &'static str,
}

impl PypiPeer {
    fn pinned(&self) -> String {
        format!("{}=={}", self.requirement, self.version)
    }
}

/// How to tell that a Debian package is installed without asking dpkg (so the check
/// also works where the tool came from elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// An executable on `PATH`.
    Command(&'static str),
    /// A file.
    File(&'static str),
}

/// A Debian package a test needs, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DebianPeer {
    package: &'static str,
    probe: Probe,
    why: &'static str,
}

const DEBIAN: &[DebianPeer] = &[
    DebianPeer {
        package: "protobuf-compiler",
        probe: Probe::Command("protoc"),
        why: "etcd-client's build script compiles etcd's .proto files",
    },
    DebianPeer {
        package: "libprotobuf-dev",
        probe: Probe::File("/usr/include/google/protobuf/descriptor.proto"),
        why: "the well-known .proto files etcd's .proto files import",
    },
    DebianPeer {
        package: "etcd-server",
        probe: Probe::Command("etcd"),
        why: "berth-etcd's and berth-bootstrap's tests run a real etcd 3.4",
    },
    DebianPeer {
        package: "procps",
        probe: Probe::Command("kill"),
        why: "the end-to-end tests signal the binaries with kill(1)",
    },
    DebianPeer {
        package: "openssl",
        probe: Probe::Command("openssl"),
        why: "berth-bootstrap's tests check its certificate chain with `openssl verify`",
    },
    DebianPeer {
        package: "curl",
        probe: Probe::Command("curl"),
        why: "the provisioner's runner script talks to the Kubernetes API with curl",
    },
];

/// What to do about the missing Debian packages.
#[derive(Debug, PartialEq, Eq)]
enum DebianAction {
    /// Everything is there.
    Nothing,
    /// Run `apt-get install` with these packages.
    Install(Vec<&'static str>),
    /// Not root (or no apt-get): stop with this message.
    Tell(String),
}

fn the_install_command(packages: &[&str]) -> String {
    format!(
        "sudo apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    )
}

/// Decides, from what is missing and whether we may install it.
fn debian_action(missing: &[DebianPeer], root: bool, apt: bool) -> DebianAction {
    if missing.is_empty() {
        return DebianAction::Nothing;
    }
    let packages: Vec<&'static str> = missing.iter().map(|peer| peer.package).collect();
    if root && apt {
        return DebianAction::Install(packages);
    }
    let mut message = String::from("setup: the tests need Debian packages that are missing:\n");
    for peer in missing {
        message.push_str(&format!("  - {}: {}\n", peer.package, peer.why));
    }
    if apt {
        message.push_str(&format!(
            "install them with:\n  {}",
            the_install_command(&packages)
        ));
    } else {
        message.push_str(&format!(
            "this is not a Debian machine (no apt-get); on Debian they install with:\n  {}",
            the_install_command(&packages)
        ));
    }
    DebianAction::Tell(message)
}

/// Runs `cargo xtask setup` in `root`.
pub(crate) fn run(root: &Path) -> Result<()> {
    extend_path();
    let root_user = is_root();
    section("Debian packages");
    debian(root_user)?;
    section("PyPI packages");
    pypi(&MOTO, root_user)?;
    pypi(&CFN_LINT, root_user)?;
    section("cargo-deny");
    cargo_deny(root)?;
    section("helm");
    crate::helm::ensure(root)?;
    section("terraform");
    if find_on_path("terraform").is_none() {
        bail!(
            "setup: terraform is missing; berth-provisioner's tests run the real terraform \
             (1.11). There is no package source for it here: install it from \
             https://developer.hashicorp.com/terraform/install and put it on PATH"
        );
    }
    section("versions");
    versions(root);
    Ok(())
}

fn section(title: &str) {
    println!("==> setup: {title}");
}

/// Puts the directories installers write to on `PATH` for this process and its
/// children (cargo install's bin dir, pip's `--user` scripts dir), so a tool installed
/// a moment ago is found by the tests.
fn extend_path() {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".cargo")))
        .map(|dir| dir.join("bin"));
    let user_bin = home.map(|h| h.join(".local").join("bin"));
    let current = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&current).collect();
    for dir in [cargo_bin, user_bin].into_iter().flatten() {
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    if let Ok(path) = std::env::join_paths(dirs) {
        // xtask is single-threaded here: nothing else reads the environment meanwhile.
        std::env::set_var("PATH", path);
    }
}

/// The executable `name` on `PATH`.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Whether xtask runs as root (then it may install system packages).
pub(crate) fn is_root() -> bool {
    output_of("id", &["-u"]).is_some_and(|uid| uid.trim() == "0")
}

/// The trimmed stdout of a command that succeeded.
fn output_of(program: &str, args: &[&str]) -> Option<String> {
    process::stdout_quiet(Command::new(program).args(args)).map(|out| out.trim().to_owned())
}

fn present(probe: Probe) -> bool {
    match probe {
        Probe::Command(name) => find_on_path(name).is_some(),
        Probe::File(path) => Path::new(path).is_file(),
    }
}

fn debian(root_user: bool) -> Result<()> {
    let missing: Vec<DebianPeer> = DEBIAN
        .iter()
        .copied()
        .filter(|peer| !present(peer.probe))
        .collect();
    match debian_action(&missing, root_user, find_on_path("apt-get").is_some()) {
        DebianAction::Nothing => {
            println!("all present");
            Ok(())
        }
        DebianAction::Tell(message) => bail!("{message}"),
        DebianAction::Install(packages) => {
            println!("apt-get install {}", packages.join(" "));
            run_tool(
                Command::new("apt-get")
                    .args(["update", "-qq"])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )?;
            run_tool(
                Command::new("apt-get")
                    .args(["install", "-y", "-qq", "--no-install-recommends"])
                    .args(&packages)
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .stdout(Stdio::null()),
            )
        }
    }
}

/// The installed version of a Python distribution, if any.
fn pip_version(distribution: &str) -> Option<String> {
    let shown = output_of("python3", &["-m", "pip", "show", distribution])?;
    shown
        .lines()
        .find_map(|line| line.strip_prefix("Version: "))
        .map(|version| version.trim().to_owned())
}

fn pypi(peer: &PypiPeer, root_user: bool) -> Result<()> {
    let installed = pip_version(peer.distribution);
    if installed.as_deref() == Some(peer.version) && find_on_path(peer.script).is_some() {
        println!("{} {} already installed", peer.distribution, peer.version);
        return Ok(());
    }
    println!(
        "pip install {} (installed: {})",
        peer.pinned(),
        installed.as_deref().unwrap_or("none")
    );
    let mut pip = Command::new("python3");
    pip.args(["-m", "pip", "install", "--quiet"])
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1");
    if root_user {
        // A throwaway CI machine: Debian's python refuses system-wide installs (PEP 668).
        pip.env("PIP_BREAK_SYSTEM_PACKAGES", "1")
            .env("PIP_ROOT_USER_ACTION", "ignore");
    } else {
        pip.arg("--user");
    }
    pip.arg(peer.pinned());
    run_tool(&mut pip).with_context(|| {
        format!(
            "setup: could not install {0}; install it yourself (e.g. in a virtualenv on PATH): \
             python3 -m pip install '{0}'",
            peer.pinned()
        )
    })?;
    // pyenv-managed pythons put console scripts behind shims that need a rehash.
    if find_on_path("pyenv").is_some() {
        let _ = Command::new("pyenv").arg("rehash").status();
    }
    if find_on_path(peer.script).is_none() {
        bail!(
            "setup: {} is installed but `{}` is not on PATH; add pip's scripts directory to PATH",
            peer.pinned(),
            peer.script
        );
    }
    Ok(())
}

fn cargo_deny(root: &Path) -> Result<()> {
    let wanted = format!("cargo-deny {CARGO_DENY_VERSION}");
    let installed = process::cargo_stdout_quiet(root, &["deny", "--version"]);
    if installed.as_deref().map(str::trim) == Some(wanted.as_str()) {
        println!("{wanted} already installed");
        return Ok(());
    }
    process::run_cargo(
        root,
        &[
            "install",
            "cargo-deny",
            "--version",
            CARGO_DENY_VERSION,
            "--locked",
            "--quiet",
        ],
    )
}

/// Runs a tool with inherited stdio; fails unless it exits 0.
pub(crate) fn run_tool(command: &mut Command) -> Result<()> {
    let shown = format!(
        "{} {}",
        command.get_program().to_string_lossy(),
        command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    process::run_command(command, &shown)
}

/// Prints the version of every tool CI uses, for the log.
fn versions(root: &Path) {
    let tools: &[(&str, &[&str])] = &[
        ("rustc", &["--version"]),
        ("protoc", &["--version"]),
        ("etcd", &["--version"]),
        ("python3", &["--version"]),
        ("cfn-lint", &["--version"]),
        ("terraform", &["version"]),
        ("helm", &["version", "--short"]),
        ("kubernetes-validate", &["--version"]),
    ];
    for (tool, args) in tools {
        let shown = output_of(tool, args)
            .and_then(|out| out.lines().next().map(str::to_owned))
            .unwrap_or_else(|| "(not installed)".to_owned());
        println!("{tool}: {shown}");
    }
    let moto = pip_version(MOTO.distribution).unwrap_or_else(|| "(not installed)".to_owned());
    println!("moto: {moto}");
    for sub in ["clippy", "fmt", "deny"] {
        let shown = process::cargo_stdout_quiet(root, &[sub, "--version"])
            .unwrap_or_else(|| "(not installed)".to_owned());
        println!("cargo {sub}: {}", shown.trim());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(package: &'static str) -> DebianPeer {
        *DEBIAN.iter().find(|p| p.package == package).unwrap()
    }

    #[test]
    fn nothing_missing_means_nothing_to_do() {
        assert_eq!(debian_action(&[], false, false), DebianAction::Nothing);
    }

    #[test]
    fn root_with_apt_installs_exactly_what_is_missing() {
        let missing = [peer("etcd-server"), peer("openssl")];
        assert_eq!(
            debian_action(&missing, true, true),
            DebianAction::Install(vec!["etcd-server", "openssl"])
        );
    }

    #[test]
    fn without_root_the_message_names_the_one_command() {
        let missing = [peer("protobuf-compiler"), peer("libprotobuf-dev")];
        let DebianAction::Tell(message) = debian_action(&missing, false, true) else {
            panic!("expected a message");
        };
        assert!(
            message.contains(
                "sudo apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev"
            ),
            "{message}"
        );
        assert!(message.contains("etcd-client"), "{message}");
        let DebianAction::Tell(message) = debian_action(&missing, true, false) else {
            panic!("expected a message");
        };
        assert!(message.contains("no apt-get"), "{message}");
    }

    #[test]
    fn every_test_peer_is_listed_once() {
        let packages: Vec<&str> = DEBIAN.iter().map(|p| p.package).collect();
        assert_eq!(
            packages,
            [
                "protobuf-compiler",
                "libprotobuf-dev",
                "etcd-server",
                "procps",
                "openssl",
                "curl"
            ]
        );
        assert_eq!(MOTO.pinned(), "moto[server]==5.2.1");
        assert_eq!(CFN_LINT.pinned(), "cfn-lint==1.51.0");
    }

    #[test]
    fn a_command_is_found_on_path_only_if_it_exists() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("berth-no-such-tool").is_none());
    }
}
