//! berth-core's normal dependencies are exactly [`CORE_DEPENDENCIES`] (plus the optional
//! [`CORE_OPTIONAL_DEPENDENCIES`]), and `docs/ARCHITECTURE.md` says so in the sentence
//! [`sentence`] renders.

use std::collections::BTreeSet;

/// berth-core's normal, non-optional dependencies: no I/O crate among them.
pub(crate) const CORE_DEPENDENCIES: &[&str] = &[
    "async-trait",
    "fastrand",
    "futures",
    "serde",
    "thiserror",
    "tokio",
    "tracing",
];

/// berth-core's optional dependencies (behind `test-util`).
pub(crate) const CORE_OPTIONAL_DEPENDENCIES: &[&str] = &["mockall"];

/// The sentence `docs/ARCHITECTURE.md` must contain (whitespace-insensitive).
pub(crate) fn sentence() -> String {
    format!(
        "berth-core's normal dependencies are exactly {} (plus {}, optional, behind the `test-util` feature).",
        list(CORE_DEPENDENCIES),
        list(CORE_OPTIONAL_DEPENDENCIES)
    )
}

/// `a`, `a and b`, `a, b and c`, each in backquotes.
fn list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// The `[dependencies]` of a Cargo.toml: (required, optional) names.
pub(crate) fn declared(manifest: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut required = BTreeSet::new();
    let mut optional = BTreeSet::new();
    let mut in_section = false;
    let mut current: Option<(String, String)> = None;
    let mut flush = |entry: Option<(String, String)>| {
        if let Some((name, spec)) = entry {
            if spec.contains("optional = true") || spec.contains("optional=true") {
                optional.insert(name);
            } else {
                required.insert(name);
            }
        }
    };
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            flush(current.take());
            in_section = line == "[dependencies]";
            continue;
        }
        if !in_section || line.is_empty() {
            continue;
        }
        let key = line
            .split('=')
            .next()
            .unwrap_or("")
            .trim()
            .trim_end_matches(".workspace")
            .trim_matches('"');
        let open_table = current
            .as_ref()
            .is_some_and(|(_, spec)| spec.matches('{').count() > spec.matches('}').count());
        let is_key = !open_table
            && line.contains('=')
            && !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if is_key {
            flush(current.take());
            current = Some((key.to_owned(), line.to_owned()));
        } else if let Some((_, spec)) = current.as_mut() {
            // A multi-line inline table continues the previous key.
            spec.push(' ');
            spec.push_str(line);
        }
    }
    flush(current.take());
    (required, optional)
}

/// What is wrong with berth-core's manifest and the architecture document, if anything.
pub(crate) fn check(manifest: &str, architecture: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let (required, optional) = declared(manifest);
    let compare = |kind: &str, found: &BTreeSet<String>, want: &[&str], out: &mut Vec<String>| {
        let want: BTreeSet<String> = want.iter().map(|s| (*s).to_owned()).collect();
        for extra in found.difference(&want) {
            out.push(format!(
                "berth-core has the {kind} dependency `{extra}`, which is not in the list \
                 (xtask/src/layering/core_deps.rs and docs/ARCHITECTURE.md)"
            ));
        }
        for missing in want.difference(found) {
            out.push(format!(
                "berth-core no longer has the {kind} dependency `{missing}`: remove it from the list"
            ));
        }
    };
    compare("normal", &required, CORE_DEPENDENCIES, &mut problems);
    compare(
        "optional",
        &optional,
        CORE_OPTIONAL_DEPENDENCIES,
        &mut problems,
    );
    let squeeze = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let sentence = sentence();
    if !squeeze(architecture).contains(&squeeze(&sentence)) {
        problems.push(format!(
            "docs/ARCHITECTURE.md must say, as the code has it: \"{sentence}\""
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
[package]
name = "berth-core"

[dependencies]
async-trait.workspace = true
thiserror.workspace = true
tracing.workspace = true
serde.workspace = true
fastrand.workspace = true
futures.workspace = true
# Only timers.
tokio = { workspace = true, features = ["time", "sync"] }
mockall = { workspace = true, optional = true }

[dev-dependencies]
proptest.workspace = true

[features]
test-util = ["dep:mockall"]
"#;

    fn doc() -> String {
        // Wrapped as Markdown would be.
        sentence().replace(" are ", "\n  are ")
    }

    #[test]
    fn the_listed_dependencies_and_the_sentence_pass() {
        assert_eq!(check(MANIFEST, &doc()), Vec::<String>::new());
        assert_eq!(
            sentence(),
            "berth-core's normal dependencies are exactly `async-trait`, `fastrand`, `futures`, \
             `serde`, `thiserror`, `tokio` and `tracing` (plus `mockall`, optional, behind the \
             `test-util` feature)."
        );
    }

    #[test]
    fn a_new_dependency_is_refused() {
        let manifest = MANIFEST.replace(
            "[dev-dependencies]",
            "reqwest = { version = \"0.12\",\n  default-features = false }\n\n[dev-dependencies]",
        );
        let problems = check(&manifest, &doc());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("`reqwest`"), "{problems:?}");
    }

    #[test]
    fn a_dependency_made_required_or_removed_is_reported() {
        let manifest = MANIFEST
            .replace(
                "mockall = { workspace = true, optional = true }",
                "mockall.workspace = true",
            )
            .replace("serde.workspace = true\n", "");
        let problems = check(&manifest, &doc());
        assert!(problems
            .iter()
            .any(|p| p.contains("normal dependency `mockall`")));
        assert!(problems
            .iter()
            .any(|p| p.contains("no longer has the normal dependency `serde`")));
        assert!(problems
            .iter()
            .any(|p| p.contains("optional dependency `mockall`")));
    }

    #[test]
    fn the_document_must_carry_the_list() {
        let problems = check(MANIFEST, "berth-core depends on tokio only.");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("docs/ARCHITECTURE.md"));
    }

    #[test]
    fn the_real_manifest_matches() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let manifest = std::fs::read_to_string(root.join("crates/berth-core/Cargo.toml")).unwrap();
        let architecture = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
        assert_eq!(check(&manifest, &architecture), Vec::<String>::new());
    }
}
