//! Generated files kept in the repository (example IAM policies): a test regenerates
//! the text and fails when the committed file differs; `BERTH_BLESS=1` rewrites it.

use std::path::Path;

/// Set to `1` to rewrite committed generated files instead of failing on a difference.
pub const BLESS: &str = "BERTH_BLESS";

/// Asserts that the file at `path` holds exactly `generated`; with `BERTH_BLESS=1`,
/// writes `generated` there instead.
pub fn assert_file(path: &Path, generated: &str) {
    if std::env::var(BLESS).is_ok_and(|v| v == "1") {
        std::fs::write(path, generated)
            .unwrap_or_else(|e| panic!("could not write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("could not read {}: {e}", path.display()));
    assert!(
        committed == generated,
        "{} has drifted from what generates it; run the test again with {BLESS}=1 to \
         regenerate it, and review the difference.\n--- committed\n{committed}\n--- generated\n{generated}",
        path.display()
    );
}
