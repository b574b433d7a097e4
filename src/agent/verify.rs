//! The agent's verification of what the daemon advertises (shell): after every pass that
//! may have changed something (a little later, for the daemon to converge) and every
//! [`PERIOD`], ask the daemon ([`crate::daemon::observe`]), judge
//! ([`crate::daemon::advertised`]), and report: NodeState's `advertisement` and `Advertised`
//! condition, an Event when the verdict changes.

use std::time::Duration;

use super::pass::Agent;
use super::tasks::Write;
use crate::daemon::advertised::{self, Verification};
use crate::daemon::observe::Verifier;

/// How often the daemon is asked when nothing changed.
pub const PERIOD: Duration = Duration::from_secs(10);
/// How long after a change it is asked: bgpd's route-map delay timer (1 s in the documented
/// base) and update coalescing come first.
pub const SETTLE: Duration = Duration::from_secs(2);
/// What outlives one verification.
#[derive(Debug, Default)]
pub struct State {
    pub last: Option<Verification>,
    verifier: Verifier,
    /// Quick rechecks made while waiting for the first good verdict; [`EARLY_RECHECKS`] once
    /// it came (or the grace is over): no more of them.
    early_rechecks: u32,
}

/// Until the first good verdict (the agent's readiness waits for it, see
/// [`super::readiness`]) the daemon is asked again every [`SETTLE`] rather than every
/// [`PERIOD`]: a sidecar daemon's sessions come up seconds after the first pass. For at most
/// the readiness grace, so that a node with no peer does not ask every 2 s forever.
const EARLY_RECHECKS: u32 = (super::readiness::GRACE.as_secs() / SETTLE.as_secs()) as u32;

impl Agent {
    /// Verifies once; returns whether the daemon answered, and when to verify again if a
    /// gap waits to be confirmed. The caller reports the status.
    pub async fn verify(&mut self) -> (bool, Option<Duration>) {
        let Some(data) = self.fragment_data.as_ref() else {
            return (false, None);
        };
        let prefixes = self.lb_prefixes();
        let driver = self.cfg.driver.clone();
        match self
            .verification
            .verifier
            .verify(&driver, data, &prefixes)
            .await
        {
            Ok((v, recheck)) => {
                let ok = v.verdict.ok;
                self.record(v);
                let early = &mut self.verification.early_rechecks;
                let early_recheck = !ok && *early < EARLY_RECHECKS;
                *early = if ok {
                    EARLY_RECHECKS
                } else {
                    (*early + 1).min(EARLY_RECHECKS)
                };
                (true, (recheck || early_recheck).then_some(SETTLE))
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not verify what the daemon advertises");
                (false, None)
            }
        }
    }

    fn record(&mut self, v: Verification) {
        let before = self.verification.last.as_ref().map(|l| &l.verdict);
        if let Some(event) = advertised::event(before, &v.verdict) {
            event.log();
            let _ = self.writes.send(Write::NodeEvent(event));
        }
        self.metrics
            .unadvertised_prefixes
            .set(v.unadvertised.len() as i64);
        self.verification.last = Some(v);
    }
}
