//! A CycloneDX 1.5 SBOM (JSON) per released binary, written by xtask itself from
//! `cargo tree` (which resolves the package's own features, unlike the workspace-wide
//! `cargo metadata`): every crate compiled into the binary or into its build (build
//! scripts, proc-macros), its license expression and the dependency graph. No extra
//! tool to install.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::process;

/// One crate of the tree.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Crate {
    name: String,
    version: String,
    license: String,
}

impl Crate {
    fn bom_ref(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    fn component(&self, kind: &str) -> Value {
        let mut component = json!({
            "type": kind,
            "bom-ref": self.bom_ref(),
            "name": self.name,
            "version": self.version,
            "purl": format!("pkg:cargo/{}@{}", self.name, self.version),
        });
        if !self.license.is_empty() {
            component["licenses"] = json!([{ "expression": self.license }]);
        }
        component
    }
}

/// The tree: the root, every crate, and who depends on whom.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tree {
    root: Option<Crate>,
    crates: BTreeSet<Crate>,
    edges: BTreeMap<String, BTreeSet<String>>,
}

/// Parses one `{p}|{l}` line after its depth: `name vX.Y.Z [(path)|(proc-macro)] [(*)]|license`.
fn parse_crate(text: &str) -> Option<Crate> {
    let (package, license) = text.rsplit_once('|')?;
    let mut words = package.split_whitespace();
    let name = words.next()?.to_owned();
    let version = words.next()?.strip_prefix('v')?.to_owned();
    Some(Crate {
        name,
        version,
        license: license.trim().to_owned(),
    })
}

/// Reads `cargo tree --prefix depth --format '{p}|{l}'`.
fn parse_tree(text: &str) -> Tree {
    let mut tree = Tree::default();
    let mut stack: Vec<String> = Vec::new();
    for line in text.lines() {
        let digits: String = line.chars().take_while(char::is_ascii_digit).collect();
        let Ok(depth) = digits.parse::<usize>() else {
            continue;
        };
        let Some(krate) = parse_crate(&line[digits.len()..]) else {
            continue;
        };
        stack.truncate(depth);
        if let Some(parent) = stack.last() {
            tree.edges
                .entry(parent.clone())
                .or_default()
                .insert(krate.bom_ref());
        }
        stack.push(krate.bom_ref());
        if depth == 0 {
            tree.root = Some(krate);
        } else {
            tree.crates.insert(krate);
        }
    }
    tree
}

/// A deterministic serial number: a UUID (version 8, "custom") from a hash of the content.
fn serial(content: &str) -> String {
    let hex = super::sums::sha256_hex(content.as_bytes());
    let mut chars: Vec<char> = hex.chars().take(32).collect();
    chars[12] = '8';
    chars[16] = ['8', '9', 'a', 'b'][chars[16].to_digit(16).unwrap_or(0) as usize % 4];
    let s: String = chars.into_iter().collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &s[0..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}

/// The CycloneDX document of a tree.
fn document(tree: &Tree) -> Result<Value> {
    let root = tree.root.as_ref().context("cargo tree printed no root")?;
    let components: Vec<Value> = tree.crates.iter().map(|c| c.component("library")).collect();
    let dependencies: Vec<Value> = std::iter::once(root.bom_ref())
        .chain(tree.crates.iter().map(Crate::bom_ref))
        .map(|r| {
            let on: Vec<&String> = tree.edges.get(&r).into_iter().flatten().collect();
            json!({ "ref": r, "dependsOn": on })
        })
        .collect();
    let mut bom = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "tools": { "components": [{ "type": "application", "name": "cargo xtask dist" }] },
            "component": root.component("application"),
        },
        "components": components,
        "dependencies": dependencies,
    });
    bom["serialNumber"] = json!(serial(&bom.to_string()));
    Ok(bom)
}

/// Writes the SBOM of `package` to `out`.
pub(crate) fn write(root: &Path, package: &str, out: &Path) -> Result<()> {
    let text = process::cargo_stdout(
        root,
        &[
            "tree",
            "--package",
            package,
            "--edges",
            "normal,build",
            "--prefix",
            "depth",
            "--format",
            "{p}|{l}",
        ],
    )?;
    let tree = parse_tree(&text);
    let bom = document(&tree)?;
    let json = serde_json::to_string_pretty(&bom)? + "\n";
    std::fs::write(out, json).with_context(|| format!("could not write {}", out.display()))?;
    println!("dist: {} ({} components)", out.display(), tree.crates.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &str = "\
0berth-sidecar v0.1.0 (/w/bins/berth-sidecar)|Apache-2.0
1anyhow v1.0.104|MIT OR Apache-2.0
1async-trait v0.1.92 (proc-macro)|MIT OR Apache-2.0
2proc-macro2 v1.0.107|MIT OR Apache-2.0
1berth-core v0.1.0 (/w/crates/berth-core)|Apache-2.0
2async-trait v0.1.92 (proc-macro) (*)|MIT OR Apache-2.0
";

    #[test]
    fn the_tree_becomes_components_and_a_graph() {
        let tree = parse_tree(TREE);
        assert_eq!(tree.root.as_ref().unwrap().bom_ref(), "berth-sidecar@0.1.0");
        assert_eq!(tree.crates.len(), 4, "{tree:?}");
        assert_eq!(
            tree.edges["berth-core@0.1.0"],
            BTreeSet::from(["async-trait@0.1.92".to_owned()])
        );
        assert_eq!(tree.edges["berth-sidecar@0.1.0"].len(), 3);

        let bom = document(&tree).unwrap();
        assert_eq!(bom["bomFormat"], "CycloneDX");
        assert_eq!(bom["metadata"]["component"]["name"], "berth-sidecar");
        let anyhow = bom["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "anyhow")
            .unwrap();
        assert_eq!(anyhow["purl"], "pkg:cargo/anyhow@1.0.104");
        assert_eq!(anyhow["licenses"][0]["expression"], "MIT OR Apache-2.0");
        let serial = bom["serialNumber"].as_str().unwrap();
        assert_eq!(serial.len(), "urn:uuid:".len() + 36, "{serial}");
        assert_eq!(&serial[9 + 14..9 + 15], "8", "{serial}");
        // Deterministic: the same tree, the same document.
        assert_eq!(document(&parse_tree(TREE)).unwrap(), bom);
    }
}
