//! `SHA256SUMS`: one `<hex>  <path>` line per file under `dist/` (the format
//! `sha256sum -c` reads), sorted by path.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// The file's name.
pub(crate) const FILE: &str = "SHA256SUMS";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The SHA-256 of `data`, in lowercase hex.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn files(dir: &Path, under: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("could not list {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            files(&path, under, out)?;
        } else if path.file_name().is_some_and(|name| name != FILE) {
            out.push(path.strip_prefix(under).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

/// The text of `SHA256SUMS` for the files under `dist`.
pub(crate) fn render(dist: &Path) -> Result<String> {
    let mut paths = Vec::new();
    files(dist, dist, &mut paths)?;
    paths.sort();
    let mut text = String::new();
    for path in paths {
        let data = std::fs::read(dist.join(&path))
            .with_context(|| format!("could not read {}", path.display()))?;
        let _ = writeln!(text, "{}  {}", sha256_hex(&data), path.display());
    }
    Ok(text)
}

/// Writes `dist/SHA256SUMS`.
pub(crate) fn write(dist: &Path) -> Result<()> {
    let text = render(dist)?;
    let out = dist.join(FILE);
    std::fs::write(&out, &text).with_context(|| format!("could not write {}", out.display()))?;
    println!("dist: {} ({} files)", out.display(), text.lines().count());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_cover_nested_files_sorted_and_not_themselves() {
        let dir = std::env::temp_dir().join(format!("berth-sums-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("charts")).unwrap();
        std::fs::write(dir.join("b"), "hello\n").unwrap();
        std::fs::write(dir.join("charts/a.tgz"), "").unwrap();
        std::fs::write(dir.join(FILE), "old").unwrap();
        let text = render(&dir).unwrap();
        assert_eq!(
            text,
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03  b\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  charts/a.tgz\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
