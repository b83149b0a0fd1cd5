//! A chart's README values table, generated from the `# --` comments of its
//! `values.yaml` (the helm-docs convention): the comment documents the key below it,
//! and continues on the following `#` lines.

/// The line before the generated table in a chart's README.
pub const START: &str = "<!-- values: generated from values.yaml by charts/tests; do not edit -->";
/// The line after it.
pub const END: &str = "<!-- end of values -->";

/// One documented key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `serviceAccount.annotations`.
    pub key: String,
    /// The default as written in values.yaml (`{}`, `node`); empty for a block.
    pub default: String,
    /// The comment.
    pub description: String,
}

/// The documented keys of a values.yaml, and the keys with an inline value (leaves)
/// that have no comment.
pub fn entries(values_yaml: &str) -> (Vec<Entry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut undocumented = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut comment: Option<String> = None;
    // Lines indented deeper than this belong to a block value (a list, a documented map).
    let mut block: Option<usize> = None;
    for line in values_yaml.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(depth) = block {
            if indent > depth {
                continue;
            }
            block = None;
        }
        if let Some(text) = trimmed.strip_prefix("# --") {
            comment = Some(text.trim().to_owned());
            continue;
        }
        if let Some(text) = trimmed.strip_prefix('#') {
            if let Some(c) = comment.as_mut() {
                c.push(' ');
                c.push_str(text.trim());
            }
            continue;
        }
        let Some((key, value)) = trimmed.split_once(':') else {
            comment = None;
            continue;
        };
        if trimmed.starts_with('-') {
            comment = None;
            continue;
        }
        path.retain(|(depth, _)| *depth < indent);
        path.push((indent, key.trim().to_owned()));
        let full = path
            .iter()
            .map(|(_, k)| k.as_str())
            .collect::<Vec<_>>()
            .join(".");
        let value = value.trim();
        match comment.take() {
            Some(description) => {
                if value.is_empty() {
                    // A documented block: its content is the default, not more keys.
                    block = Some(indent);
                }
                entries.push(Entry {
                    key: full,
                    default: value.to_owned(),
                    description,
                });
            }
            None if !value.is_empty() => undocumented.push(full),
            None => {}
        }
    }
    (entries, undocumented)
}

/// The Markdown table of `entries`.
pub fn table(entries: &[Entry]) -> String {
    let mut out = String::from("| Key | Default | Description |\n|---|---|---|\n");
    for e in entries {
        let default = if e.default.is_empty() {
            "see values.yaml".to_owned()
        } else {
            format!("`{}`", e.default.replace('|', "\\|"))
        };
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            e.key,
            default,
            e.description.replace('|', "\\|")
        ));
    }
    out
}

/// `readme` with the text between [`START`] and [`END`] replaced by `table`.
///
/// # Panics
/// When the markers are missing.
pub fn with_table(readme: &str, table: &str) -> String {
    let start = readme
        .find(START)
        .unwrap_or_else(|| panic!("the README has no line `{START}`"));
    let end = readme
        .find(END)
        .unwrap_or_else(|| panic!("the README has no line `{END}`"));
    format!("{}{START}\n{table}{}", &readme[..start], &readme[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_comments_and_blocks() {
        let yaml = "# header, not a key comment\n\n# -- The mode.\n# Two lines.\nmode: node\nimage:\n  # -- Repo.\n  repository: x\n  tag: \"\"\n# -- Resources.\nresources:\n  limits:\n    memory: 1Mi\nlist:\n  - a: 1\n";
        let (entries, undocumented) = entries(yaml);
        let keys: Vec<_> = entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["mode", "image.repository", "resources"]);
        assert_eq!(entries[0].description, "The mode. Two lines.");
        assert_eq!(entries[2].default, "");
        assert_eq!(undocumented, ["image.tag"]);
        let readme = format!("# x\n{START}\nold\n{END}\nrest\n");
        let new = with_table(&readme, &table(&entries[..1]));
        assert_eq!(
            new,
            format!("# x\n{START}\n| Key | Default | Description |\n|---|---|---|\n| `mode` | `node` | The mode. Two lines. |\n{END}\nrest\n")
        );
    }
}
