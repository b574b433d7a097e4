//! The agent's verification of what the daemon advertises (shell): after every pass that
//! may have changed something (a little later, for the daemon to converge) and every
//! [`PERIOD`], ask the daemon ([`crate::daemon::observe`]), judge
//! ([`crate::daemon::advertised`]), and report: NodeState's `advertisement` and `Advertised`
//! condition, an Event when the verdict changes.

use std::collections::BTreeSet;
use std::time::Duration;

use ipnet::IpNet;

use super::pass::Agent;
use super::status;
use super::tasks::Write;
use crate::daemon::advertised::{self, Verification};
use crate::daemon::observe;

/// How often the daemon is asked when nothing changed.
pub const PERIOD: Duration = Duration::from_secs(10);
/// How long after a change it is asked: bgpd's route-map delay timer (1 s in the documented
/// base) and update coalescing come first.
pub const SETTLE: Duration = Duration::from_secs(2);
/// How long one verification may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What outlives one verification.
#[derive(Debug, Default)]
pub struct State {
    pub last: Option<Verification>,
    /// Prefixes missing at the previous verification. A gap seen for the first time may be
    /// the daemon still converging: it is judged only when the next one still sees it.
    suspects: BTreeSet<IpNet>,
}

impl Agent {
    /// Verifies once; returns when to verify again if a gap waits to be confirmed.
    pub async fn verify(&mut self) -> Option<Duration> {
        let data = self.fragment_data.as_ref()?;
        let expected = advertised::expected(data, &self.lb_prefixes());
        let driver = self.cfg.driver.clone();
        let observed =
            match tokio::time::timeout(TIMEOUT, observe::observe(&driver, &expected)).await {
                Ok(Ok(o)) => o,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not verify what the daemon advertises");
                    return None;
                }
                Err(_) => {
                    tracing::warn!("the daemon did not answer the verification in time");
                    return None;
                }
            };
        let expected = advertised::only_verified(expected, &observed.unverified);
        let mut exits = observed.exits;
        let missing = advertised::missing(&expected, &exits);
        let fresh: BTreeSet<IpNet> = missing
            .difference(&self.verification.suspects)
            .copied()
            .collect();
        self.verification.suspects = missing.clone();
        observe::explain(&driver, &mut exits, &missing).await;
        let v = advertised::verify(&advertised::without(&expected, &fresh), &exits);
        self.record(v);
        (!fresh.is_empty()).then_some(SETTLE)
    }

    fn record(&mut self, v: Verification) {
        let before = self.verification.last.as_ref().map(|l| &l.verdict);
        if let Some(event) = status::advertised_event(before, &v.verdict) {
            if event.warning {
                tracing::warn!(reason = event.reason, "{}", event.note);
            } else {
                tracing::info!(reason = event.reason, "{}", event.note);
            }
            let _ = self.writes.send(Write::NodeEvent(event));
        }
        self.verification.last = Some(v);
        self.report_node();
    }
}
