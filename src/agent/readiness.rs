//! When the agent reports ready (pure). The pod's readiness paces a rolling update of the
//! DaemonSet: the next node's agent is stopped, and its routes withdrawn, once this one is
//! Ready. Ready after the first pass alone let a rollout withdraw the last node's routes
//! while the restarted node's daemon was still bringing its BGP session up: every address
//! went unreachable at the router for half a second (measured on the real cluster,
//! tests/real_cluster.rs). So ready means the daemon advertises what this node should, as
//! the first good verification shows. A node that cannot get there within [`GRACE`] (no peer
//! configured yet, a router down, a daemon that cannot be asked) is ready anyway, so that a
//! rollout is not held forever; its `Advertised` condition says why.

use std::time::Duration;

/// How long after start a node that does not advertise yet still counts as not ready.
pub const GRACE: Duration = Duration::from_secs(60);

/// What readiness is judged from.
#[derive(Clone, Copy, Debug)]
/// Judged only after a pass has completed.
pub struct Progress {
    /// The pass built no fragment: nothing for the daemon to advertise or to verify.
    pub nothing_to_advertise: bool,
    /// The last verification's verdict: every expected prefix reaches every peer that is up,
    /// and one is up. `None` before the first verification.
    pub advertised: Option<bool>,
    /// Since the agent started.
    pub since_start: Duration,
}

pub fn ready(p: Progress) -> bool {
    p.nothing_to_advertise || p.advertised == Some(true) || p.since_start >= GRACE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress() -> Progress {
        Progress {
            nothing_to_advertise: false,
            advertised: None,
            since_start: Duration::from_secs(3),
        }
    }

    #[test]
    fn ready_once_the_daemon_advertises() {
        assert!(!ready(progress()));
        assert!(!ready(Progress {
            advertised: Some(false),
            ..progress()
        }));
        assert!(ready(Progress {
            advertised: Some(true),
            ..progress()
        }));
    }

    #[test]
    fn ready_without_a_fragment_or_after_the_grace() {
        assert!(ready(Progress {
            nothing_to_advertise: true,
            ..progress()
        }));
        assert!(ready(Progress {
            advertised: Some(false),
            since_start: GRACE,
            ..progress()
        }));
    }
}
