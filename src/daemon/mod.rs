//! Daemon I/O: finding routing instances and applying fragments, for FRR and BIRD. The pure
//! parts (parsing configurations, diffing) live in `frr_config` and `bird_config`.

pub mod advertised;
pub mod applier;
pub mod bfd;
pub mod bird;
pub mod bird_config;
pub mod bird_ctl;
pub mod bird_daemon;
pub mod drift;
pub mod frr;
pub mod frr_config;
pub mod health;
pub mod observe;
pub mod restarts;
pub mod rip_withdraw;
pub mod session;
pub mod vty;

use std::time::Duration;

use crate::render::model::Instances;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The daemon's parser refused the fragment; nothing was applied.
    #[error("fragment refused by the daemon's parser: {0}")]
    Invalid(String),
    /// The daemon refused part of the change; the last good fragment stays.
    #[error("daemon rejected the change: {0}")]
    Rejected(String),
    #[error("daemon unreachable: {0}")]
    Unreachable(String),
    /// BIRD took the configuration, but routelb's include is not in it (another tool rewrote
    /// the base without the `include` line): nothing routelb exports is announced.
    #[error("BaseConfigNoInclude: {0}")]
    BaseConfigNoInclude(String),
    /// A file routelb writes for the daemon (BIRD's include, a parser's input) could not be.
    #[error("{0}")]
    File(#[from] crate::files::FileError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub changed: bool,
    /// Configuration lines sent (FRR) or reconfigurations (BIRD).
    pub commands: usize,
    pub elapsed: Duration,
}

/// How long reading a daemon's routing instances may take.
pub const INSTANCES_TIMEOUT: Duration = Duration::from_secs(10);

/// One of the two drivers.
#[derive(Clone, Debug)]
pub enum Driver {
    Frr(frr::FrrDriver),
    Bird(bird::BirdDriver),
}

impl Driver {
    /// Whether the daemon can keep BFD sessions: BIRD always, FRR only with bfdd running (its
    /// vty socket is there).
    pub fn runs_bfd(&self) -> bool {
        match self {
            Driver::Frr(d) => d.vty_dir().join("bfdd.vty").exists(),
            Driver::Bird(_) => true,
        }
    }

    /// The routing instances the daemon runs. A daemon that does not answer within
    /// [`INSTANCES_TIMEOUT`] counts as unreachable: a hung daemon must not hold up a pass.
    pub async fn instances(&self) -> Result<Instances, DaemonError> {
        let read = async {
            match self {
                Driver::Frr(d) => d.instances().await,
                Driver::Bird(d) => d.instances().await,
            }
        };
        tokio::time::timeout(INSTANCES_TIMEOUT, read)
            .await
            .map_err(|_| {
                DaemonError::Unreachable(format!(
                    "no answer within {INSTANCES_TIMEOUT:?} to reading its configuration"
                ))
            })?
    }

    pub async fn apply(&self, fragment: &str) -> Result<ApplyOutcome, DaemonError> {
        match self {
            Driver::Frr(d) => d.apply(fragment).await,
            Driver::Bird(d) => d.apply(fragment).await,
        }
    }

    /// Makes the next apply compare with what the daemon runs instead of what the driver
    /// remembers applying (BIRD's driver always compares).
    pub fn forget(&self) {
        if let Driver::Frr(d) = self {
            d.forget();
        }
    }

    /// What another tool removed or changed of routelb's objects since the last apply, by a
    /// cheap probe ([`drift`]); `None` when there is nothing to compare with. FRR only: BIRD's
    /// fragment is a file routelb owns.
    /// `everything`: the route-maps and redistribute lines too, whatever the probe's turn
    /// ([`frr::PROBE_EVERYTHING_EVERY`]).
    pub async fn probe(&self, everything: bool) -> Result<Option<drift::Probe>, DaemonError> {
        match self {
            Driver::Frr(d) => d.probe(everything).await,
            Driver::Bird(_) => Ok(None),
        }
    }

    /// Whether [`Self::probe`] can tell lost objects without a full read (FRR).
    pub fn has_probe(&self) -> bool {
        matches!(self, Driver::Frr(_))
    }

    /// The addresses announced now: a bulk repair restores what their routes need first.
    pub fn set_announced(&self, addresses: Vec<std::net::IpAddr>) {
        if let Driver::Frr(d) = self {
            d.set_announced(addresses);
        }
    }

    /// While set, a bulk repair sends only what the announced addresses need
    /// ([`frr::FrrDriver::set_urgent_only`]); BIRD has no bulk load.
    pub fn set_urgent_only(&self, urgent_only: bool) {
        if let Driver::Frr(d) = self {
            d.set_urgent_only(urgent_only);
        }
    }

    pub async fn in_sync(&self, fragment: &str) -> Result<bool, DaemonError> {
        match self {
            Driver::Frr(d) => d.in_sync(fragment).await,
            Driver::Bird(d) => d.in_sync(fragment).await,
        }
    }
}

/// A temporary file for a daemon's parser; see [`crate::files::temp_file`].
pub fn temp_file(prefix: &str, text: &str) -> Result<crate::files::TempFile, DaemonError> {
    Ok(crate::files::temp_file(prefix, text)?)
}
