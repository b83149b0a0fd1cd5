//! `cargo xtask dist lambda`: berth-lambda packaged for AWS Lambda's `provided.al2023`
//! runtime, a zip with the executable at its root under the name `bootstrap`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

use crate::process;

/// The package and binary.
const PACKAGE: &str = "berth-lambda";
/// What Lambda runs in a custom runtime.
const ENTRY: &str = "bootstrap";

/// Builds `--release -p berth-lambda` for the host (x86_64 Linux; use an
/// `x86_64` function) and writes `dist/berth-lambda.zip`.
pub(crate) fn run(root: &Path) -> Result<()> {
    process::run_cargo(root, &["build", "--release", "--package", PACKAGE])?;
    let metadata =
        process::cargo_stdout(root, &["metadata", "--no-deps", "--format-version", "1"])?;
    let metadata: serde_json::Value =
        serde_json::from_str(&metadata).context("cargo metadata printed bad JSON")?;
    let target = metadata["target_directory"]
        .as_str()
        .context("cargo metadata: no target_directory")?;
    let binary = Path::new(target).join("release").join(PACKAGE);
    let executable =
        std::fs::read(&binary).with_context(|| format!("could not read {}", binary.display()))?;
    let dist = root.join(crate::dist::dist_dir());
    std::fs::create_dir_all(&dist)
        .with_context(|| format!("could not create {}", dist.display()))?;
    let out = dist.join(format!("{PACKAGE}.zip"));
    write_zip(&out, &executable)?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or_default();
    println!("dist: {} ({size} bytes, {ENTRY} inside)", out.display());
    Ok(())
}

/// A zip holding `bootstrap`, executable (mode 0755).
pub(crate) fn write_zip(out: &Path, executable: &[u8]) -> Result<()> {
    let file = std::fs::File::create(out)
        .with_context(|| format!("could not create {}", out.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(0o755);
    zip.start_file(ENTRY, options)
        .context("could not start the zip entry")?;
    zip.write_all(executable)
        .context("could not write bootstrap into the zip")?;
    zip.finish().context("could not finish the zip")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_zip_holds_an_executable_bootstrap() {
        let dir = std::env::temp_dir().join(format!("berth-dist-lambda-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("f.zip");
        write_zip(&out, b"#!/bin/sh\necho hi\n").unwrap();
        let mut archive = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
        assert_eq!(archive.len(), 1);
        let mut entry = archive.by_name(ENTRY).unwrap();
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
        assert_eq!(entry.compression(), CompressionMethod::Deflated);
        let mut body = String::new();
        entry.read_to_string(&mut body).unwrap();
        assert_eq!(body, "#!/bin/sh\necho hi\n");
        drop(entry);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
