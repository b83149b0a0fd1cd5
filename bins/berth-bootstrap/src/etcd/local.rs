//! This node's own disk: etcd's write-ahead log and the drop-in file.

use std::io;
use std::path::Path;

use crate::files::{read_if_exists, write_atomic, PUBLIC};

/// Whether etcd's data dir holds a write-ahead log (`member/wal/*.wal`): etcd ran here
/// before, so this boot is a restart.
pub fn has_wal(data_dir: &Path) -> io::Result<bool> {
    let wal = data_dir.join("member").join("wal");
    let entries = match std::fs::read_dir(&wal) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    for entry in entries {
        if entry?.path().extension().is_some_and(|ext| ext == "wal") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What writing the drop-in did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropInWrite {
    /// The file already held these bytes: not rewritten.
    Unchanged,
    /// Written atomically.
    Written,
    /// Dry run: it would have been written.
    WouldWrite,
}

/// Writes the drop-in atomically (temporary file + rename), unless it already holds
/// exactly `contents`.
pub fn write_drop_in(path: &Path, contents: &str, dry_run: bool) -> io::Result<DropInWrite> {
    if read_if_exists(path)?.as_deref() == Some(contents.as_bytes()) {
        return Ok(DropInWrite::Unchanged);
    }
    if dry_run {
        return Ok(DropInWrite::WouldWrite);
    }
    write_atomic(path, contents.as_bytes(), PUBLIC)?;
    Ok(DropInWrite::Written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wal_file_makes_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!has_wal(dir.path()).unwrap());
        let wal = dir.path().join("member/wal");
        std::fs::create_dir_all(&wal).unwrap();
        assert!(!has_wal(dir.path()).unwrap(), "an empty wal dir is no WAL");
        std::fs::write(wal.join("0000000000000000-0000000000000000.wal"), b"x").unwrap();
        assert!(has_wal(dir.path()).unwrap());
    }

    #[test]
    fn the_drop_in_is_written_once_and_not_in_a_dry_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd.service.d/70-initial-cluster.conf");
        assert_eq!(
            write_drop_in(&path, "[Service]\n", true).unwrap(),
            DropInWrite::WouldWrite
        );
        assert!(!path.exists());
        assert_eq!(
            write_drop_in(&path, "[Service]\n", false).unwrap(),
            DropInWrite::Written
        );
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert_eq!(
            write_drop_in(&path, "[Service]\n", false).unwrap(),
            DropInWrite::Unchanged
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );
    }
}
