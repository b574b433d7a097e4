//! The agent's look at routing health (shell): with every verification, ask the daemon about
//! its sessions and adjacencies ([`crate::daemon::observe::health`]), track them
//! ([`crate::daemon::health::Tracker`]) and report: NodeState's `routing` and `SessionsUp`
//! condition, an Event per transition, metrics per session.

use std::collections::BTreeSet;

use super::pass::Agent;
use super::tasks::Write;
use crate::daemon::health::{self, Tracker};
use crate::daemon::observe;
use crate::metrics::{AgentMetrics, SessionLabels, SessionPrefixLabels, TransitionLabels};

/// What outlives one look.
#[derive(Debug, Default)]
pub struct State {
    pub tracker: Tracker,
    /// The sessions the metrics hold series for, to remove those no longer tracked.
    exported: BTreeSet<SessionLabels>,
}

impl Agent {
    /// Looks once; the status is reported by the caller.
    /// Looks once; true when the daemon answered.
    pub async fn look_at_routing(&mut self) -> bool {
        let state = &mut self.routing;
        let transitions = match observe::track(&self.cfg.driver, &mut state.tracker).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "could not ask the daemon about its sessions");
                return false;
            }
        };
        for t in &transitions {
            self.metrics
                .routing_session_transitions
                .get_or_create(&TransitionLabels {
                    protocol: t.key.kind.name().into(),
                    change: t.change.name().into(),
                })
                .inc();
        }
        for event in health::events(&transitions) {
            event.log();
            let _ = self.writes.send(Write::NodeEvent(event));
        }
        state.exported = export(&self.metrics, &state.tracker, &state.exported);
        true
    }
}

/// Sets each tracked session's series and removes those of sessions no longer tracked;
/// returns the label sets now exported.
fn export(
    m: &AgentMetrics,
    tracker: &Tracker,
    before: &BTreeSet<SessionLabels>,
) -> BTreeSet<SessionLabels> {
    let mut now = BTreeSet::new();
    for t in tracker.sessions() {
        let s = &t.session;
        let labels = SessionLabels {
            protocol: s.key.kind.name().into(),
            routing_instance: s.key.instance.clone().unwrap_or_default(),
            peer: s.key.peer.clone(),
            interface: s.key.interface.clone().unwrap_or_default(),
        };
        m.routing_session_up
            .get_or_create(&labels)
            .set(i64::from(s.up));
        for (direction, count) in [("received", s.received), ("sent", s.sent)] {
            let l = SessionPrefixLabels::new(&labels, direction);
            match count {
                Some(n) => {
                    m.routing_session_prefixes.get_or_create(&l).set(n as i64);
                }
                None => {
                    m.routing_session_prefixes.remove(&l);
                }
            }
        }
        now.insert(labels);
    }
    for gone in before.difference(&now) {
        m.routing_session_up.remove(gone);
        for direction in ["received", "sent"] {
            m.routing_session_prefixes
                .remove(&SessionPrefixLabels::new(gone, direction));
        }
    }
    now
}
