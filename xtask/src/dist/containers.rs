//! The Containerfiles under `containers/`: one per deployable binary (every released
//! one but berth-lambda, which ships as a zip), the binary only, on distroless, non-root.

use super::parse_metadata;
use crate::process;

/// Binaries that ship without an image.
const NO_IMAGE: &[&str] = &["berth-lambda"];

#[test]
fn every_deployable_binary_has_a_minimal_non_root_containerfile() {
    let root = crate::workspace_root().unwrap();
    let metadata =
        process::cargo_stdout(&root, &["metadata", "--no-deps", "--format-version", "1"]).unwrap();
    let workspace = parse_metadata(&metadata).unwrap();
    let mut checked = 0;
    for package in &workspace.bin_packages {
        if NO_IMAGE.contains(&package.name.as_str()) {
            continue;
        }
        let name = &package.name;
        let path = root
            .join("containers")
            .join(format!("{name}.Containerfile"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (every deployable binary has one)", path.display())
        });
        let code: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert_eq!(
            code,
            [
                "FROM gcr.io/distroless/cc-debian12:nonroot".to_owned(),
                format!("COPY --chmod=0755 {name} /usr/local/bin/{name}"),
                "USER 65532:65532".to_owned(),
                format!("ENTRYPOINT [\"/usr/local/bin/{name}\"]"),
            ],
            "{}",
            path.display()
        );
        assert!(
            text.contains(&format!("ghcr.io/berth-rs/{name}")),
            "{}: names its image",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} Containerfiles checked");
}
