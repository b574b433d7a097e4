//! Fast failover of local addresses through the routing daemon's BFD (pure; takes `now`).
//!
//! A pool with `spec.fastFailover` keeps BFD sessions between the candidates of each of its
//! local addresses: the holder and the next [`SUCCESSORS`] nodes ranked for it ([`peers`]),
//! rendered into the daemon's fragment. The agent reads the sessions' states every
//! [`poll_interval`] and the [`Detector`] turns them into two facts for the election of those
//! pools only ([`view`]):
//!
//! - **a peer failed**: its sessions were up and have all been down for [`guard`], and no
//!   renewal of its Lease has been seen since they went down (unless that renewal says the
//!   peer is cut off). Failed peers leave this node's view, so the next-ranked node takes their
//!   addresses at once instead of after the Lease duration. A renewal seen after the sessions
//!   went down proves the peer's agent alive and reaching the API while BFD cannot reach it:
//!   BFD and the Lease disagree, and the Lease wins.
//! - **this node is cut off**: the daemon has not answered for [`guard`], or at least two
//!   sessions were up and all of them are down. A node cut off holds none of these pools'
//!   addresses (it steps back at once) and says so in its Lease; it takes them again only
//!   after a session has been up for [`guard`].
//!
//! Releasing is immediate and acquiring waits [`guard`]: the two ends of a session see it go
//! down within about one transmit interval of each other (the side that still hears the
//! other learns from its next packet), and the releasing side's agent reads it within one
//! poll, so the node that steps back does so before the one that takes over. Sessions that
//! never came up (a peer whose daemon does not have this node as a BFD peer yet, or no
//! `bfdd`) mean nothing: fast failover simply does not cover that pair. docs/agent.md has the
//! split-brain cases.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::election::{Member, rank};

/// How many nodes after the holder of an address keep sessions with it (and with each other).
pub const SUCCESSORS: usize = 2;
/// At most this many BFD peers per node: beyond, the pairs ranked lowest go without.
pub const MAX_PEERS: usize = 16;

/// A pool's BFD timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Timers {
    /// Transmit and receive interval, milliseconds.
    pub interval_ms: u32,
    pub multiplier: u8,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            interval_ms: crate::api::DEFAULT_BFD_INTERVAL_MS,
            multiplier: crate::api::DEFAULT_BFD_MULTIPLIER,
        }
    }
}

impl From<&crate::api::FastFailover> for Timers {
    fn from(f: &crate::api::FastFailover) -> Self {
        Timers {
            interval_ms: f.interval_ms,
            multiplier: f.detect_multiplier,
        }
    }
}

impl Timers {
    pub fn interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.interval_ms))
    }

    /// How long a session takes to go down once the peer is silent.
    pub fn detection(&self) -> Duration {
        self.interval() * u32::from(self.multiplier)
    }

    /// The faster of two timer sets (a pair of nodes shares one session for every pool).
    fn faster(self, other: Timers) -> Timers {
        Timers {
            interval_ms: self.interval_ms.min(other.interval_ms),
            multiplier: self.multiplier.min(other.multiplier),
        }
    }
}

/// How often the agent reads the sessions' states: half an interval, within 20–100 ms.
pub fn poll_interval(timers: Timers) -> Duration {
    (timers.interval() / 2).clamp(Duration::from_millis(20), Duration::from_millis(100))
}

/// How long a change that lets this node take an address must last: the other end of a
/// session sees it within about one transmit interval (plus jitter), and its agent reads it
/// within one poll.
pub fn guard(timers: Timers) -> Duration {
    timers.interval() * 2 + poll_interval(timers)
}

/// A local address of a pool with fast failover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watched {
    pub address: IpAddr,
    pub timers: Timers,
}

/// A BFD session this node keeps, as the templates render it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct BfdPeer {
    pub node: String,
    /// The peer's address on the shared subnet.
    pub address: IpAddr,
    /// This node's interface on that subnet.
    pub interface: String,
    pub timers: Timers,
}

/// The peers this node (`me`) keeps: for every watched address it is a top candidate of
/// (holder or one of the next [`SUCCESSORS`], among the live members with a subnet holding
/// it), the other top candidates; one session per peer node and family, with the fastest
/// timers of the addresses that want it. Peers whose address on that subnet is not known (an
/// older agent) are left out. At most [`MAX_PEERS`] nodes, those of the best-ranked pairs
/// first.
pub fn peers(me: &str, members: &[Member], watched: &[Watched]) -> Vec<BfdPeer> {
    let Some(mine) = members.iter().find(|m| m.node == me) else {
        return vec![];
    };
    // (peer node, family) → (best position of the pair, session)
    let mut wanted: BTreeMap<(String, bool), (usize, BfdPeer)> = BTreeMap::new();
    for w in watched {
        let Some((interface, _)) = mine.subnets.iter().find(|(_, s)| s.contains(&w.address)) else {
            continue;
        };
        let subject = w.address.to_string();
        let mut able: Vec<&Member> = members
            .iter()
            .filter(|m| m.subnets.iter().any(|(_, s)| s.contains(&w.address)))
            .collect();
        able.sort_by_cached_key(|m| (std::cmp::Reverse(rank(&m.node, &subject)), m.node.clone()));
        let top = &able[..able.len().min(SUCCESSORS + 1)];
        let Some(my_place) = top.iter().position(|m| m.node == me) else {
            continue;
        };
        for (place, peer) in top.iter().enumerate().filter(|(_, m)| m.node != me) {
            let Some(address) = peer.address_in(w.address) else {
                continue;
            };
            let position = my_place.max(place);
            let key = (peer.node.clone(), address.is_ipv4());
            let session = BfdPeer {
                node: peer.node.clone(),
                address,
                interface: interface.clone(),
                timers: w.timers,
            };
            wanted
                .entry(key)
                .and_modify(|(best, s)| {
                    *best = (*best).min(position);
                    s.timers = s.timers.faster(w.timers);
                })
                .or_insert((position, session));
        }
    }
    let mut by_place: Vec<(usize, BfdPeer)> = wanted.into_values().collect();
    by_place.sort();
    let mut nodes: BTreeSet<String> = BTreeSet::new();
    let mut out: Vec<BfdPeer> = by_place
        .into_iter()
        .filter(|(_, p)| {
            nodes.contains(&p.node) || {
                let room = nodes.len() < MAX_PEERS;
                if room {
                    nodes.insert(p.node.clone());
                }
                room
            }
        })
        .map(|(_, p)| p)
        .collect();
    out.sort();
    out
}

/// One BFD session as the daemon reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionState {
    pub peer: IpAddr,
    pub up: bool,
}

/// What is known of one peer node's sessions.
#[derive(Clone, Debug)]
struct PeerTrack {
    /// Whether a session to it has been up since it became a peer.
    ever_up: bool,
    up: bool,
    /// Since when `up` has been what it is.
    since: Instant,
}

/// The fast-failover state of this node, kept across looks at the daemon.
#[derive(Debug, Default)]
pub struct Detector {
    peers: BTreeMap<String, PeerTrack>,
    /// Since when the daemon has not answered, while it does not.
    unanswered_since: Option<Instant>,
    /// Whether this node is cut off.
    cut_off: bool,
}

/// What the detector concludes at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Peers this node no longer counts for the pools with fast failover.
    pub failed: BTreeSet<String>,
    /// This node holds none of those pools' addresses.
    pub cut_off: bool,
    /// When the verdict may change with no new look (a guard running out), from `now`.
    pub next: Option<Duration>,
}

impl Detector {
    /// Records a look at the daemon: the sessions it reports (`None`: it did not answer), for
    /// the peers this node keeps.
    pub fn observe(&mut self, now: Instant, peers: &[BfdPeer], look: Option<&[SessionState]>) {
        let nodes: BTreeSet<&str> = peers.iter().map(|p| p.node.as_str()).collect();
        self.peers.retain(|n, _| nodes.contains(n.as_str()));
        let Some(sessions) = look else {
            self.unanswered_since.get_or_insert(now);
            return;
        };
        self.unanswered_since = None;
        for node in nodes {
            let up = peers
                .iter()
                .filter(|p| p.node == node)
                .any(|p| sessions.iter().any(|s| s.peer == p.address && s.up));
            match self.peers.get_mut(node) {
                Some(t) if t.up == up => {}
                Some(t) => {
                    t.up = up;
                    t.since = now;
                    t.ever_up |= up;
                }
                None => {
                    self.peers.insert(
                        node.to_string(),
                        PeerTrack {
                            ever_up: up,
                            up,
                            since: now,
                        },
                    );
                }
            }
        }
    }

    /// The verdict at `now`. `renewal` gives a node's last Lease renewal as seen here (on this
    /// clock) and whether that Lease says it is cut off; it is asked only about peers whose
    /// sessions are down.
    pub fn verdict(
        &mut self,
        now: Instant,
        guard: Duration,
        renewal: impl Fn(&str) -> Option<(Instant, bool)>,
    ) -> Verdict {
        let mut next: Option<Duration> = None;
        let mut soon = |d: Duration| next = Some(next.map_or(d, |n| n.min(d)));
        let mut failed = BTreeSet::new();
        for (node, t) in &self.peers {
            if t.up || !t.ever_up {
                continue;
            }
            let down_for = now.saturating_duration_since(t.since);
            let proven_alive = renewal(node).is_some_and(|(at, cut_off)| at > t.since && !cut_off);
            if proven_alive {
                continue;
            }
            if down_for >= guard {
                failed.insert(node.clone());
            } else {
                soon(guard - down_for);
            }
        }
        let cut_off = self.cut_off_at(now, guard, &mut soon);
        Verdict {
            failed,
            cut_off,
            next,
        }
    }

    /// Whether this node is cut off: entered at once, left only after `guard` of a session up.
    fn cut_off_at(
        &mut self,
        now: Instant,
        guard: Duration,
        soon: &mut impl FnMut(Duration),
    ) -> bool {
        // A daemon that never had a session up says nothing by its silence (no bfdd, say).
        let had_sessions = self.peers.values().any(|t| t.ever_up);
        let silent = had_sessions
            && self
                .unanswered_since
                .is_some_and(|t| now.saturating_duration_since(t) >= guard);
        if let Some(t) = self.unanswered_since
            && had_sessions
            && !silent
        {
            soon(guard - now.saturating_duration_since(t));
        }
        let known: Vec<&PeerTrack> = self.peers.values().filter(|t| t.ever_up).collect();
        let all_lost = known.len() >= 2 && known.iter().all(|t| !t.up);
        let now_cut = silent || all_lost;
        self.cut_off = match (self.cut_off, now_cut) {
            (_, true) => true,
            (false, false) => false,
            // Leaving: a session up for `guard`; with no peer left to judge by, at once.
            (true, false) => {
                let up_for = self
                    .peers
                    .values()
                    .filter(|t| t.up)
                    .map(|t| now.saturating_duration_since(t.since))
                    .max();
                match up_for {
                    Some(d) if d >= guard => false,
                    Some(d) => {
                        soon(guard - d);
                        true
                    }
                    None => !known.is_empty(),
                }
            }
        };
        self.cut_off
    }

    /// Per peer node: whether its sessions are up (for status), in name order.
    pub fn sessions(&self) -> Vec<(String, bool)> {
        self.peers.iter().map(|(n, t)| (n.clone(), t.up)).collect()
    }
}

/// The members the election of fast-failover pools sees from this node (`me`): without the
/// failed peers, and without this node when it is cut off.
pub fn view(me: &str, members: &[Member], verdict: &Verdict) -> Vec<Member> {
    members
        .iter()
        .filter(|m| {
            if m.node == me {
                !verdict.cut_off
            } else {
                !verdict.failed.contains(&m.node)
            }
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests;
