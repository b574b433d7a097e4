//! Waiting for kube-proxy before a node starts announcing a Service (pure; takes `now`).
//!
//! kube-proxy programs a change up to its `--iptables-min-sync-period` (1 s by default) plus
//! the sync itself after the API server has it, and routelb learns of it at the same moment.
//! A node that announces a new Service before its kube-proxy has the rules draws connections
//! that kube-proxy refuses (a Service without endpoints yet: REJECT) or drops
//! (`externalTrafficPolicy: Local` with no local endpoint yet); the real cluster showed both.
//! So a node waits `grace` after a Service appeared, and after its endpoints became ready
//! (any, or for `Local` one on this node), before it starts announcing it. What a node
//! announces is never withdrawn for this, and withdrawals are never delayed. Services already
//! there when the agent starts count as settled: a restarted agent announces at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::ipam::ServiceKey;

pub struct ProxyGrace {
    grace: Duration,
    /// Per Service: whether it is ready here, and since when it has been (or since it
    /// appeared, while it is not).
    services: BTreeMap<ServiceKey, (bool, Instant)>,
    /// Whether the first observation (the agent's start) was made.
    primed: bool,
}

/// Services this node must not start announcing yet.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Waiting {
    pub services: BTreeSet<ServiceKey>,
    /// When the first of them may be announced, from `now`.
    pub next: Option<Duration>,
}

impl ProxyGrace {
    pub fn new(grace: Duration) -> Self {
        ProxyGrace {
            grace,
            services: BTreeMap::new(),
            primed: false,
        }
    }

    /// Records the Services there are and whether each is ready here (with a ready endpoint,
    /// on this node under `externalTrafficPolicy: Local`).
    pub fn observe(
        &mut self,
        now: Instant,
        ready_here: impl IntoIterator<Item = (ServiceKey, bool)>,
    ) {
        let settled = now.checked_sub(self.grace).unwrap_or(now);
        let mut seen = BTreeMap::new();
        for (key, ready) in ready_here {
            let since = match self.services.get(&key) {
                None if !self.primed => settled,
                None => now,
                Some(&(was_ready, since)) if was_ready || !ready => since,
                Some(_) => now,
            };
            seen.insert(key, (ready, since));
        }
        self.services = seen;
        self.primed = true;
    }

    /// The Services still within their grace, as of `now`.
    pub fn waiting(&self, now: Instant) -> Waiting {
        let mut w = Waiting::default();
        for (key, &(_, since)) in &self.services {
            let ends = since + self.grace;
            if ends > now {
                w.services.insert(key.clone());
                let left = ends - now;
                w.next = Some(w.next.map_or(left, |n: Duration| n.min(left)));
            }
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_millis(1500);

    fn key(name: &str) -> ServiceKey {
        ServiceKey::new("default", name)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn services_there_at_start_are_settled() {
        let t0 = Instant::now();
        let mut g = ProxyGrace::new(GRACE);
        g.observe(t0, [(key("web"), true), (key("db"), false)]);
        assert_eq!(g.waiting(t0), Waiting::default());
    }

    #[test]
    fn a_new_service_waits_the_grace_from_when_it_appeared() {
        let t0 = Instant::now();
        let mut g = ProxyGrace::new(GRACE);
        g.observe(t0, [(key("web"), true)]);
        g.observe(t0 + ms(100), [(key("web"), true), (key("new"), true)]);
        let w = g.waiting(t0 + ms(600));
        assert_eq!(w.services, BTreeSet::from([key("new")]));
        assert_eq!(w.next, Some(ms(1000)));
        assert_eq!(g.waiting(t0 + ms(1600)), Waiting::default());
    }

    #[test]
    fn endpoints_turning_ready_start_the_grace_again() {
        let t0 = Instant::now();
        let mut g = ProxyGrace::new(GRACE);
        g.observe(t0, [(key("web"), true)]);
        g.observe(t0 + ms(10_000), [(key("web"), false)]);
        assert_eq!(
            g.waiting(t0 + ms(10_000)),
            Waiting::default(),
            "not ready: nothing to wait for"
        );
        g.observe(t0 + ms(20_000), [(key("web"), false)]);
        g.observe(t0 + ms(30_000), [(key("web"), true)]);
        assert_eq!(g.waiting(t0 + ms(30_100)).next, Some(ms(1400)));
        g.observe(t0 + ms(30_200), [(key("web"), true)]);
        assert_eq!(
            g.waiting(t0 + ms(30_200)).next,
            Some(ms(1300)),
            "staying ready does not restart it"
        );
    }

    #[test]
    fn a_service_that_goes_and_comes_back_is_new() {
        let t0 = Instant::now();
        let mut g = ProxyGrace::new(GRACE);
        g.observe(t0, [(key("web"), true)]);
        g.observe(t0 + ms(100), []);
        g.observe(t0 + ms(200), [(key("web"), true)]);
        assert_eq!(g.waiting(t0 + ms(200)).next, Some(GRACE));
    }

    #[test]
    fn no_grace_holds_nothing_back() {
        let t0 = Instant::now();
        let mut g = ProxyGrace::new(Duration::ZERO);
        g.observe(t0, []);
        g.observe(t0, [(key("new"), true)]);
        assert_eq!(g.waiting(t0), Waiting::default());
    }
}
