//! Paths: the checkout, and scratch directories for one test.

use std::path::PathBuf;

/// The repository checkout (examples, templates, deploy manifests, integration scripts).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh, empty directory `routelb-NAME-PID` under the temp directory. The test removes it
/// when it is done (a failed test leaves it for a look).
#[allow(dead_code)] // tests that write files
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("routelb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}
