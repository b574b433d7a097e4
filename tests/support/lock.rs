//! Serialisation across processes: `cargo test` runs test binaries one after the other but a
//! binary's tests in parallel, `cargo nextest` runs every test in a process of its own, and two
//! people may run the suite at once. A process-wide `Mutex` covers only the first case; an
//! exclusive `flock` on a file under the temp directory covers all of them, and the kernel
//! releases it when the holder exits, however it exits.

use std::fs::File;

/// An exclusive lock, held until dropped.
#[must_use = "the lock is released when this is dropped"]
pub struct Held {
    _file: File,
}

/// Takes the lock called `name`, waiting for whoever holds it.
pub fn exclusive(name: &str) -> Held {
    let path = std::env::temp_dir().join(format!("routelb-tests-{name}.lock"));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if file.try_lock().is_err() {
        eprintln!("waiting for {} (another test holds it)", path.display());
        file.lock()
            .unwrap_or_else(|e| panic!("locking {}: {e}", path.display()));
    }
    Held { _file: file }
}

/// For tests that use the test API server: each starts an allocator, which acts on every
/// Service and pool in the cluster, and `api::client` removes what earlier runs left behind.
/// Only one such test may run at a time, in any process.
#[allow(dead_code)] // API-server users
pub fn api_server() -> Held {
    exclusive("api-server")
}

/// The lab (lab.sh) or cluster (cluster.sh) called `name`: one user at a time, in any process
/// (the two scripts share the `NAME-rtr` namespace, so one lock name covers both).
#[allow(dead_code)] // lab and cluster users
pub fn lab(name: &str) -> Held {
    exclusive(&format!("lab-{name}"))
}
