//! Work that a stream of events asks for, done at most once per interval (pure; takes `now`).
//!
//! Node Lease renewals arrive from every node every renew period (2,500 per second at 5,000
//! nodes and 2 s), and reading who is alive walks every Lease: done per event, that is
//! quadratic in the cluster's size (measured: 16 % of a core for an agent and 31 % for the
//! allocator at 1,000 nodes). Done at most every [`LEASES`], it is linear, and nobody is
//! judged alive or dead more than that late. NodeState reports from every node after a
//! routed Service change likewise wake the allocator at most every [`NODE_STATES`].

use std::time::{Duration, Instant};

/// How often node Leases are read at most.
pub const LEASES: Duration = Duration::from_millis(100);
/// How often the allocator passes for NodeState reports alone at most.
pub const NODE_STATES: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub struct Coalesce {
    interval: Duration,
    last: Option<Instant>,
    due: Option<Instant>,
}

impl Coalesce {
    pub fn new(interval: Duration) -> Coalesce {
        Coalesce {
            interval,
            last: None,
            due: None,
        }
    }

    /// An event asked for the work: it is due now, or an interval after it was last done.
    pub fn ask(&mut self, now: Instant) {
        if self.due.is_none() {
            self.due = Some(self.last.map_or(now, |l| now.max(l + self.interval)));
        }
    }

    /// When the work is due, if it was asked for.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// The work is being done now (whether asked for or not).
    pub fn done(&mut self, now: Instant) {
        self.last = Some(now);
        self.due = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_in_an_interval_make_one_piece_of_work() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut c = Coalesce::new(ms(100));
        assert_eq!(c.due(), None);
        c.ask(t0);
        assert_eq!(c.due(), Some(t0), "the first at once");
        c.done(t0);
        for i in 1..50 {
            c.ask(t0 + ms(i));
        }
        assert_eq!(c.due(), Some(t0 + ms(100)), "the next an interval later");
        c.done(t0 + ms(100));
        c.ask(t0 + ms(500));
        assert_eq!(
            c.due(),
            Some(t0 + ms(500)),
            "after a quiet interval, at once"
        );
    }
}
