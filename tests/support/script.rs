//! The lab scripts (integration/lab/lab.sh, cluster.sh) from Rust: running them, and reading
//! the `KEY=value` lines their `up` and `env` print.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use super::files::root;

/// `bash integration/lab/SCRIPT ARGS...`, its output captured.
pub fn run(script: &str, args: &[&str]) -> Output {
    let path: PathBuf = root().join("integration/lab").join(script);
    Command::new("bash")
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// [`run`], panicking with the script's stderr when it fails.
pub fn run_ok(script: &str, args: &[&str]) -> Output {
    let out = run(script, args);
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The variables in `KEY=value` lines. Values are shell-quoted with `printf %q`, which for
/// what the scripts print is plain text or single quotes around it.
pub fn variables(stdout: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}
