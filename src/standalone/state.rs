//! Standalone mode's state file: which Service holds which addresses (what Service status holds
//! in a cluster), and each pool's and policy's last valid definition, so a restart renumbers
//! nothing and a bad edit withdraws nothing even across restarts.
//!
//! The file is the only record of who has which address, so it is never guessed at: one that
//! cannot be read is refused with the reason, never replaced. Writes are durable (see
//! [`crate::files`]), and a lock beside it keeps a second routelb from sharing it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kube::ResourceExt;
use serde::{Deserialize, Serialize};

use crate::api::{AddressPool, RoutingPolicy};
use crate::files::FileError;
use crate::ipam::{Addr, Pool};
use crate::last_valid::{LastValidPolicies, LastValidPools};

/// The version this build writes.
pub const VERSION: u32 = 2;

pub use crate::offline::{Held, HeldAddresses};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    pub services: Held,
    pub pools: LastValidPools,
    pub policies: LastValidPolicies,
}

/// The file as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    #[serde(default)]
    services: Held,
    #[serde(default)]
    pools: BTreeMap<String, AddressPool>,
    #[serde(default)]
    policies: BTreeMap<String, RoutingPolicy>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "state file {path}: {reason}. It records which Service holds which address, so routelb \
         will not guess and will not overwrite it: restore it (or fix it by hand), or move it \
         away to start afresh (Services may then get other addresses)"
    )]
    Unreadable { path: PathBuf, reason: String },
    #[error(
        "state file {}: another routelb ({holder}) is using it; two would hand out the same addresses",
        path.display()
    )]
    Locked { path: PathBuf, holder: String },
    #[error("{0}")]
    File(#[from] FileError),
}

impl State {
    /// Reads the file's text: this version's format, or version 1's (a bare map of services).
    /// Anything else, an empty file included (what a crash can leave), is an error.
    pub fn parse(text: &str) -> Result<State, String> {
        if text.trim().is_empty() {
            return Err("the file is empty".into());
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))?;
        if value.get("version").is_none() {
            let services: Held = serde_json::from_value(value)
                .map_err(|e| format!("neither version {VERSION} nor version 1 ({e})"))?;
            return Ok(State {
                services,
                ..State::default()
            });
        }
        let file: File =
            serde_json::from_value(value).map_err(|e| format!("not a state file ({e})"))?;
        if file.version != VERSION {
            return Err(format!(
                "version {} is not one this routelb reads ({VERSION})",
                file.version
            ));
        }
        Ok(State {
            services: file.services,
            pools: crate::last_valid::LastValid(file.pools),
            policies: crate::last_valid::LastValid(file.policies),
        })
    }

    pub fn to_json(&self) -> String {
        let file = File {
            version: VERSION,
            services: self.services.clone(),
            pools: self.pools.0.clone(),
            policies: self.policies.0.clone(),
        };
        serde_json::to_string_pretty(&file).expect("serializes") + "\n"
    }

    /// The entries IPAM may trust. An entry is honoured when a pool in use (`pools`: as they
    /// are, or their last valid definitions) holds its addresses, or when the pool it was
    /// recorded with is known — in use, or in the directory but invalid — since a live Service
    /// is never renumbered because its pool was edited (IPAM keeps such an address and says
    /// so, as in a cluster). An entry naming a pool nobody knows, for an address no pool
    /// holds — a hand edit, a file from elsewhere — is dropped with a message, never placed.
    pub fn trusted(&self, pools: &[AddressPool], known: &[String]) -> (Held, Vec<String>) {
        let parsed: Vec<Pool> = pools
            .iter()
            .filter_map(|p| Pool::from_spec(&p.name_any(), &p.spec).ok())
            .collect();
        let mut kept = Held::new();
        let mut notes = Vec::new();
        for (key, held) in &self.services {
            let in_a_pool = held
                .addresses
                .iter()
                .all(|a| parsed.iter().any(|p| p.contains(Addr::from(*a))));
            if in_a_pool || known.contains(&held.pool) {
                kept.insert(key.clone(), held.clone());
            } else {
                let shown: Vec<String> = held.addresses.iter().map(|a| a.to_string()).collect();
                notes.push(format!(
                    "state file: {key} held {} from pool {}, which does not exist and no pool holds it; ignored",
                    shown.join(", "),
                    crate::api::values::shown(&held.pool),
                ));
            }
        }
        (kept, notes)
    }
}

/// Reads the state file; a missing one is an empty state (the first run).
pub fn load(path: &Path) -> Result<State, StateError> {
    match std::fs::read_to_string(path) {
        Ok(text) => State::parse(&text).map_err(|reason| StateError::Unreadable {
            path: path.to_path_buf(),
            reason,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(StateError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// Replaces the state file durably; only its owner reads it.
pub fn save(path: &Path, state: &State) -> Result<(), StateError> {
    Ok(crate::files::write_durably(path, &state.to_json(), 0o600)?)
}

/// An exclusive lock on `<state>.lock`, held while the value lives (the kernel drops it when
/// the process ends, however it ends).
pub struct Lock {
    _file: std::fs::File,
}

pub fn lock(state: &Path) -> Result<Lock, StateError> {
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = state.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    let path = state.with_file_name(name);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| FileError::new(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "pid unknown".to_string(),
                pid => format!("pid {}", pid.chars().take(20).collect::<String>()),
            };
            return Err(StateError::Locked {
                path: state.to_path_buf(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(FileError::new(&path, e).into()),
    }
    let pid = std::process::id().to_string();
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()));
    written.map_err(|e| FileError::new(&path, e))?;
    Ok(Lock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, addresses: &[&str]) -> AddressPool {
        AddressPool::new(
            name,
            serde_json::from_value(serde_json::json!({ "addresses": addresses })).unwrap(),
        )
    }

    fn held(pool: &str, ip: &str) -> HeldAddresses {
        HeldAddresses {
            pool: pool.into(),
            addresses: vec![ip.parse().unwrap()],
        }
    }

    #[test]
    fn unreadable_files_are_refused_with_the_reason() {
        let good = State {
            services: [("default/a".to_string(), held("p", "203.0.113.1"))].into(),
            pools: crate::last_valid::LastValid(
                [("p".to_string(), pool("p", &["203.0.113.0/28"]))].into(),
            ),
            policies: LastValidPolicies::default(),
        };
        let text = good.to_json();
        assert_eq!(State::parse(&text).unwrap(), good);
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("\n  \n", "empty"),
            (&text[..text.len() / 2], "not valid JSON"),
            ("\u{0}\u{1}garbage", "not valid JSON"),
            ("[1, 2, 3]", "neither version"),
            (r#"{"default/a": {"pool": "p"}}"#, "neither version"),
            (r#"{"version": 3, "services": {}}"#, "version 3"),
            (
                r#"{"version": 2, "services": {}, "extra": 1}"#,
                "not a state file",
            ),
            (
                r#"{"version": 2, "services": {"default/a": {"pool": "p", "addresses": ["x"]}}}"#,
                "not a state file",
            ),
        ];
        for (text, why) in cases {
            let e = State::parse(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn version_1_files_are_read() {
        let v1 = r#"{"default/a": {"pool": "p", "addresses": ["203.0.113.1"]}}"#;
        let s = State::parse(v1).unwrap();
        assert_eq!(s.services["default/a"], held("p", "203.0.113.1"));
        assert!(s.to_json().contains("\"version\": 2"));
    }

    #[test]
    fn entries_of_unknown_pools_no_pool_holds_are_dropped_with_a_note() {
        let state = State {
            services: [
                ("default/in".to_string(), held("p", "203.0.113.1")),
                ("default/moved".to_string(), held("gone", "203.0.113.2")),
                ("default/shrunk".to_string(), held("p", "203.0.113.200")),
                ("default/forged".to_string(), held("nosuch", "198.51.100.7")),
                ("default/unchecked".to_string(), held("broken", "192.0.2.1")),
            ]
            .into(),
            ..State::default()
        };
        let pools = [pool("p", &["203.0.113.0/28"])];
        let known = ["p".to_string(), "broken".to_string()];
        let (kept, notes) = state.trusted(&pools, &known);
        let keys: Vec<&str> = kept.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "default/in",
                "default/moved",
                "default/shrunk",
                "default/unchecked"
            ]
        );
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("default/forged") && notes[0].contains("198.51.100.7"));
    }

    #[test]
    fn a_second_holder_is_refused_and_the_state_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let first = lock(&path).unwrap();
        match lock(&path) {
            Err(StateError::Locked { holder, .. }) => {
                assert_eq!(holder, format!("pid {}", std::process::id()))
            }
            other => panic!("second lock: {:?}", other.err()),
        }
        drop(first);
        let _again = lock(&path).unwrap();

        assert_eq!(load(&path).unwrap(), State::default(), "missing: first run");
        let s = State {
            services: [("default/a".to_string(), held("p", "203.0.113.1"))].into(),
            ..State::default()
        };
        save(&path, &s).unwrap();
        assert_eq!(load(&path).unwrap(), s);
        std::fs::write(&path, "").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(
            e.contains("state.json") && e.contains("empty") && e.contains("will not guess"),
            "{e}"
        );
    }

    #[test]
    fn saving_never_writes_through_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("state.json");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        save(&path, &State::default()).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        // Nor through a symlink planted where the lock goes.
        let lock_path = dir.path().join("other.json.lock");
        std::os::unix::fs::symlink(&victim, &lock_path).unwrap();
        assert!(lock(&dir.path().join("other.json")).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }
}
