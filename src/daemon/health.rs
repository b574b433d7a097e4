//! Routing health (pure): the sessions and adjacencies the daemon keeps — BGP peers, OSPF and
//! OSPFv3 neighbours, IS-IS adjacencies, RIP sources, BFD sessions — as the daemon itself
//! reports them ([`parse`]), and what changed since the last look ([`Tracker`]): the
//! transitions that become Events, a session that went up and down between two looks, and
//! the adjacencies that vanished (an OSPF neighbour lost is not listed as down, it is gone).
//! The queries are in [`super::observe::health`].

pub mod parse;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use crate::status::EventSpec;

/// What kind of session or adjacency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Bgp,
    Ospf,
    Ospf6,
    Isis,
    Rip,
    Ripng,
    Bfd,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Bgp => "bgp",
            Kind::Ospf => "ospf",
            Kind::Ospf6 => "ospf6",
            Kind::Isis => "isis",
            Kind::Rip => "rip",
            Kind::Ripng => "ripng",
            Kind::Bfd => "bfd",
        }
    }

    /// How a person calls it, for Events and logs.
    fn label(self) -> &'static str {
        match self {
            Kind::Bgp => "BGP session",
            Kind::Ospf => "OSPF adjacency",
            Kind::Ospf6 => "OSPFv3 adjacency",
            Kind::Isis => "IS-IS adjacency",
            Kind::Rip => "RIP neighbour",
            Kind::Ripng => "RIPng neighbour",
            Kind::Bfd => "BFD session",
        }
    }
}

/// What names one session across looks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionKey {
    pub kind: Kind,
    /// FRR: the VRF (`None` for the default one). BIRD: the protocol's name (`rtr4`, `ospf4`).
    pub instance: Option<String>,
    /// BGP: the neighbor as configured (an address, or the interface of an unnumbered
    /// session). OSPF: the neighbour's router ID. IS-IS: its system ID (or hostname) and
    /// level. RIP, BFD: the neighbour's address.
    pub peer: String,
    pub interface: Option<String>,
}

impl std::fmt::Display for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.label(), self.peer)?;
        if let Some(i) = &self.interface
            && i != &self.peer
        {
            write!(f, " on {i}")?;
        }
        match &self.instance {
            Some(v) => write!(f, " ({v})"),
            None => Ok(()),
        }
    }
}

/// When a session entered its state, as the daemon tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Since {
    /// This long ago (FRR's uptime counters).
    Ago(Duration),
    /// A time stamp in the daemon's own format (BIRD's `Since` column): only compared.
    Mark(String),
}

/// One session or adjacency, as the daemon reports it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub key: SessionKey,
    /// The state as the daemon names it: `Established`, `Active`, `Full/DR`, `2-Way`, `Up`.
    pub state: String,
    /// Established (BGP), Full or 2-Way (OSPF), Up (IS-IS, BFD), heard within the timeout
    /// (RIP).
    pub up: bool,
    pub since: Option<Since>,
    /// The neighbour's address where the key does not give it (OSPF, BIRD's BGP): to find
    /// the BFD session that watches it.
    pub address: Option<String>,
    /// Prefixes received from and sent to the peer (BGP), routes heard (RIP).
    pub received: Option<u64>,
    pub sent: Option<u64>,
    /// Times the session dropped since the daemon started (FRR's BGP counter).
    pub drops: Option<u64>,
    /// The state of the BFD session that watches it (`up`, `down`, `init`).
    pub bfd: Option<String>,
    /// Why it is down, when the daemon says (BIRD's last error).
    pub detail: Option<String>,
}

impl Session {
    pub fn new(key: SessionKey, state: impl Into<String>, up: bool) -> Session {
        Session {
            key,
            state: state.into(),
            up,
            since: None,
            address: None,
            received: None,
            sent: None,
            drops: None,
            bfd: None,
            detail: None,
        }
    }
}

/// One look at the daemon: its sessions, and the kinds it could not be asked about (their
/// sessions are kept as they were rather than judged gone).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Look {
    pub sessions: Vec<Session>,
    pub unknown: BTreeSet<Kind>,
}

/// Sets each session's `bfd` from the BFD session to the same neighbour; the BFD sessions
/// that watch none of them (another daemon's, or a bare `peer`) stay sessions of their own.
/// `same_instance`: FRR's BFD sessions carry the VRF of the session they watch; BIRD's carry
/// their own protocol's name.
pub fn attach_bfd(sessions: &mut Vec<Session>, bfd: Vec<Session>, same_instance: bool) {
    for b in bfd {
        let watched = sessions.iter_mut().find(|s| {
            let peer = s.address.as_deref().unwrap_or(&s.key.peer);
            let by_address = peer == b.key.peer;
            // An unnumbered BGP session is named by its interface; its BFD peer is the
            // neighbour's link-local address there.
            let by_interface = s.key.kind == Kind::Bgp
                && s.key.interface.is_some()
                && s.key.interface == b.key.interface;
            (by_address || by_interface)
                && (!same_instance || s.key.instance == b.key.instance)
                && s.bfd.is_none()
        });
        match watched {
            Some(s) => s.bfd = Some(b.state.to_lowercase()),
            None => sessions.push(b),
        }
    }
}

/// What happened to a session between two looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Up,
    Down,
    /// Up at both looks, but re-established in between.
    Flapped,
    /// No longer reported at all (an adjacency the neighbour's loss removed).
    Gone,
    BfdDown,
    BfdUp,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::Up => "up",
            Change::Down => "down",
            Change::Flapped => "flapped",
            Change::Gone => "gone",
            Change::BfdDown => "bfd_down",
            Change::BfdUp => "bfd_up",
        }
    }

    pub fn is_loss(self) -> bool {
        matches!(
            self,
            Change::Down | Change::Flapped | Change::Gone | Change::BfdDown
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub key: SessionKey,
    pub change: Change,
    /// The state before and after.
    pub was: String,
    pub now: String,
    pub detail: Option<String>,
}

/// A session as tracked: the daemon's last report, and since when (wall clock) it has been
/// in its state — a stable time, so that the status written from it changes only with the
/// state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    pub session: Session,
    pub since: SystemTime,
    /// When it stopped being reported; it is dropped [`GONE_KEPT`] later.
    pub gone: Option<SystemTime>,
}

/// How long a vanished session stays listed (down, state `gone`).
pub const GONE_KEPT: Duration = Duration::from_secs(15 * 60);

/// The state tracked across looks.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    sessions: BTreeMap<SessionKey, Tracked>,
    last_look: Option<SystemTime>,
    /// The kinds the last look could not ask about.
    unknown: BTreeSet<Kind>,
}

/// Slack on uptime comparisons: the daemon's counters and our clock are read at slightly
/// different moments.
const UPTIME_SLACK: Duration = Duration::from_secs(2);

impl Tracker {
    /// Takes a look taken at `now`; returns what changed since the previous one (nothing at
    /// the first look: what is down then is in the status, not an Event).
    pub fn look(&mut self, now: SystemTime, look: Look) -> Vec<Transition> {
        let first = self.last_look.is_none();
        let elapsed = self
            .last_look
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or_default();
        self.last_look = Some(now);
        self.unknown = look.unknown.clone();
        let mut out = vec![];
        let mut seen = BTreeSet::new();
        for s in look.sessions {
            seen.insert(s.key.clone());
            let entered = ago(&s).and_then(|a| now.checked_sub(a)).unwrap_or(now);
            match self.sessions.get_mut(&s.key) {
                None => {
                    if s.up && !first {
                        out.push(transition(&s.key, Change::Up, "absent", &s));
                    }
                    self.sessions.insert(
                        s.key.clone(),
                        Tracked {
                            session: s,
                            since: entered,
                            gone: None,
                        },
                    );
                }
                Some(t) => {
                    let change = change(&t.session, t.gone.is_some(), &s, elapsed);
                    out.extend(bfd_change(&t.session, &s));
                    if let Some(c) = change {
                        out.push(transition(&s.key, c, &t.session.state, &s));
                    }
                    // Up and down are changes; a gone session came back.
                    if change.is_some() || t.gone.is_some() {
                        t.since = entered;
                    }
                    t.session = s;
                    t.gone = None;
                }
            }
        }
        self.sessions.retain(|key, t| {
            if seen.contains(key) || look.unknown.contains(&key.kind) {
                return true;
            }
            match t.gone {
                Some(at) => now.duration_since(at).unwrap_or_default() < GONE_KEPT,
                None => {
                    if t.session.up {
                        let mut gone = t.session.clone();
                        gone.state = "gone".into();
                        out.push(transition(key, Change::Gone, &t.session.state, &gone));
                    }
                    t.gone = Some(now);
                    t.since = now;
                    t.session.up = false;
                    t.session.bfd = None;
                    t.session.state = "gone".into();
                    true
                }
            }
        });
        out
    }

    /// Every session tracked, in key order.
    pub fn sessions(&self) -> impl Iterator<Item = &Tracked> {
        self.sessions.values()
    }

    /// Whether there was a look yet.
    pub fn looked(&self) -> bool {
        self.last_look.is_some()
    }

    /// The kinds the last look could not ask about (their sessions are as before).
    pub fn unknown(&self) -> &BTreeSet<Kind> {
        &self.unknown
    }

    pub fn counts(&self) -> (usize, usize) {
        let up = self.sessions.values().filter(|t| t.session.up).count();
        (up, self.sessions.len())
    }
}

fn ago(s: &Session) -> Option<Duration> {
    match &s.since {
        Some(Since::Ago(d)) => Some(*d),
        _ => None,
    }
}

fn change(before: &Session, gone: bool, now: &Session, elapsed: Duration) -> Option<Change> {
    match (before.up && !gone, now.up) {
        (false, true) => Some(Change::Up),
        (true, false) => Some(Change::Down),
        (true, true) if reestablished(before, now, elapsed) => Some(Change::Flapped),
        _ => None,
    }
}

/// Up at both looks, but not the same session: its uptime is shorter than the time between
/// the looks, its daemon's stamp moved, or its drop counter rose.
fn reestablished(before: &Session, now: &Session, elapsed: Duration) -> bool {
    let uptime_reset = match (&before.since, &now.since) {
        (Some(Since::Ago(_)), Some(Since::Ago(b))) => *b + UPTIME_SLACK < elapsed,
        (Some(Since::Mark(a)), Some(Since::Mark(b))) => a != b,
        _ => false,
    };
    let dropped = matches!((before.drops, now.drops), (Some(a), Some(b)) if b > a);
    uptime_reset || dropped
}

fn bfd_change(before: &Session, now: &Session) -> Option<Transition> {
    let up = |s: &Session| s.bfd.as_deref() == Some("up");
    let change = match (&before.bfd, &now.bfd) {
        (Some(_), Some(_)) if up(before) && !up(now) => Change::BfdDown,
        (Some(_), Some(_)) if !up(before) && up(now) => Change::BfdUp,
        _ => return None,
    };
    Some(Transition {
        key: now.key.clone(),
        change,
        was: format!("BFD {}", before.bfd.as_deref().unwrap_or_default()),
        now: format!("BFD {}", now.bfd.as_deref().unwrap_or_default()),
        detail: None,
    })
}

fn transition(key: &SessionKey, change: Change, was: &str, now: &Session) -> Transition {
    Transition {
        key: key.clone(),
        change,
        was: was.to_string(),
        now: now.state.clone(),
        detail: now.detail.clone(),
    }
}

/// At most this many transitions of one look become Events of their own; the rest are
/// summed up in one (a fabric outage must not become a storm of Events).
pub const EVENTS_PER_LOOK: usize = 8;

/// The Events for one look's transitions.
pub fn events(transitions: &[Transition]) -> Vec<EventSpec> {
    let mut out: Vec<EventSpec> = transitions
        .iter()
        .take(EVENTS_PER_LOOK)
        .map(event)
        .collect();
    let rest = &transitions[transitions.len().min(EVENTS_PER_LOOK)..];
    if !rest.is_empty() {
        let lost = rest.iter().filter(|t| t.change.is_loss()).count();
        out.push(EventSpec {
            warning: lost > 0,
            reason: "RoutingSessionsChanged",
            note: format!(
                "{} more routing sessions changed ({lost} lost, {} up)",
                rest.len(),
                rest.len() - lost
            ),
        });
    }
    out
}

fn event(t: &Transition) -> EventSpec {
    let detail = t
        .detail
        .as_deref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default();
    let (reason, note) = match t.change {
        Change::Up => ("RoutingSessionUp", format!("{} is {}", t.key, t.now)),
        Change::Down => (
            "RoutingSessionDown",
            format!("{} is {}, was {}{detail}", t.key, t.now, t.was),
        ),
        Change::Flapped => (
            "RoutingSessionFlapped",
            format!("{} went down and up again since the last look", t.key),
        ),
        Change::Gone => (
            "RoutingSessionLost",
            format!("{} is gone, was {}", t.key, t.was),
        ),
        Change::BfdDown => ("BfdSessionDown", format!("{}: {}", t.key, t.now)),
        Change::BfdUp => ("BfdSessionUp", format!("{}: {}", t.key, t.now)),
    };
    EventSpec {
        warning: t.change.is_loss(),
        reason,
        note,
    }
}

#[cfg(test)]
mod tests;
