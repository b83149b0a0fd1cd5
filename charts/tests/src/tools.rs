//! Where the real tools are: `$BERTH_HELM` / `$BERTH_KUBERNETES_VALIDATE`, else `PATH`,
//! else the directory `.ci/install-chart-tools.sh` installs into
//! (`$BERTH_TOOLS_DIR/bin`, default `~/.cache/berth-tools/bin`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const INSTALL: &str =
    "run `.ci/install-chart-tools.sh` (installs helm 3.17 and kubernetes-validate, pinned)";

/// The `helm` binary.
///
/// # Panics
/// When there is none, or it is not Helm 3.
pub fn helm() -> PathBuf {
    let helm = find("BERTH_HELM", "helm");
    let out = run(Command::new(&helm).args(["version", "--template", "{{.Version}}"]));
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.starts_with("v3."),
        "{} is helm {version}, the charts are tested with Helm 3: {INSTALL}",
        helm.display()
    );
    helm
}

/// The `kubernetes-validate` command.
///
/// # Panics
/// When there is none.
pub fn kubernetes_validate() -> PathBuf {
    find("BERTH_KUBERNETES_VALIDATE", "kubernetes-validate")
}

fn find(variable: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let candidates = on_path
        .into_iter()
        .chain(tools_dir().map(|d| d.join("bin")));
    for dir in candidates {
        let path = dir.join(name);
        if is_executable(&path) {
            return path;
        }
    }
    panic!("{name} not found (${variable}, PATH, $BERTH_TOOLS_DIR/bin): {INSTALL}");
}

fn tools_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BERTH_TOOLS_DIR") {
        return Some(PathBuf::from(dir));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("berth-tools"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `command` and returns its output.
///
/// # Panics
/// When it cannot start or exits unsuccessfully: the message has its stderr.
pub fn run(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
