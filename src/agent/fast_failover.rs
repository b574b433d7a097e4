//! Fast failover in the agent ([`crate::failover`] decides): which BFD peers this node keeps,
//! how often the reader task looks at them, and the verdict each pass elects with. Pure but
//! for the clock and the channels to the reader task ([`super::tasks::watch_bfd`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use tokio::sync::watch;

use super::decide::Resolved;
use crate::api::{FastFailoverPeer, FastFailoverStatus, PoolMode};
use crate::election::Member;
use crate::failover::{self, BfdPeer, Detector, SessionState, Verdict, Watched};

/// What the reader task saw last: every BFD session the daemon reports, or `None` when the
/// daemon did not answer.
pub type BfdLook = Option<Vec<SessionState>>;

pub struct FastFailover {
    detector: Detector,
    looks: watch::Receiver<BfdLook>,
    /// How often the reader task looks; `None`: no peers, no looks.
    interval: watch::Sender<Option<Duration>>,
    last: Verdict,
    last_peers: Vec<BfdPeer>,
    /// What `last_peers` were computed from: a pass whose members and addresses did not change
    /// (most Service changes) does not rank every candidate again.
    peers_from: (Vec<Member>, Vec<Watched>),
}

/// This pass's share of fast failover.
#[derive(Debug, Default)]
pub struct Step {
    /// The sessions the fragment renders.
    pub peers: Vec<BfdPeer>,
    pub verdict: Verdict,
    /// The pools whose local addresses are elected with [`failover::view`].
    pub pools: BTreeSet<String>,
    /// Why fast failover does not work on this node, for `RoutingProblems`.
    pub problem: Option<String>,
}

/// The local addresses of the pools with `spec.fastFailover`, each with its pool's timers;
/// and those pools.
pub fn watched(r: &Resolved) -> (Vec<Watched>, BTreeSet<String>) {
    let fast: BTreeMap<String, failover::Timers> = r
        .pools
        .iter()
        .filter(|p| p.spec.mode == PoolMode::Local)
        .filter_map(|p| Some((p.name_any(), p.spec.fast_failover.as_ref()?.into())))
        .collect();
    let mut addresses: BTreeMap<IpAddr, failover::Timers> = BTreeMap::new();
    for i in &r.inputs {
        let Some(timers) = fast.get(&i.addresses.pool) else {
            continue;
        };
        for a in &i.addresses.addresses {
            addresses.insert(*a, *timers);
        }
    }
    let watched = addresses
        .into_iter()
        .map(|(address, timers)| Watched { address, timers })
        .collect();
    (watched, fast.into_keys().collect())
}

impl FastFailover {
    pub fn new(looks: watch::Receiver<BfdLook>, interval: watch::Sender<Option<Duration>>) -> Self {
        FastFailover {
            detector: Detector::default(),
            looks,
            interval,
            last: Verdict::default(),
            last_peers: vec![],
            peers_from: Default::default(),
        }
    }

    /// The peers, the verdict at `now` and the pools it applies to. `bfd_runs`: whether the
    /// daemon can keep BFD sessions at all (FRR without bfdd cannot): without, none are
    /// rendered and the problem says why. `renewal`: a node's last Lease renewal seen
    /// ([`crate::membership::Liveness::renewal_of`]). Both are asked only when needed.
    pub fn step(
        &mut self,
        node: &str,
        r: &Resolved,
        members: &[Member],
        renewal: impl Fn(&str) -> Option<(Instant, bool)>,
        bfd_runs: impl FnOnce() -> bool,
        now: Instant,
    ) -> Step {
        let (watched, pools) = watched(r);
        if watched.is_empty() {
            self.stand_down();
            return Step {
                pools,
                ..Default::default()
            };
        }
        if !bfd_runs() {
            self.stand_down();
            let names = pools.iter().cloned().collect::<Vec<_>>().join(", ");
            return Step {
                pools,
                problem: Some(format!(
                    "fast failover (pools {names}) needs the daemon's BFD (FRR: bfdd=yes in \
                     /etc/frr/daemons); this node keeps no BFD session and its local \
                     addresses of those pools fail over by Lease"
                )),
                ..Default::default()
            };
        }
        let peers = self.peers(node, members, watched).to_vec();
        let fastest = peers
            .iter()
            .map(|p| p.timers)
            .min_by_key(|t| (t.interval_ms, t.multiplier));
        let poll = fastest.map(failover::poll_interval);
        self.interval
            .send_if_modified(|i| std::mem::replace(i, poll) != poll);
        let look = self.looks.borrow().clone();
        self.detector.observe(now, &peers, look.as_deref());
        let guard = fastest.map(failover::guard).unwrap_or_default();
        let verdict = self.detector.verdict(now, guard, renewal);
        self.log_change(&verdict);
        let problem = (look.is_none() && !peers.is_empty())
            .then(|| "fast failover: the daemon does not answer about its BFD sessions".into());
        Step {
            peers,
            verdict,
            pools,
            problem,
        }
    }

    /// No BFD peer to keep: the reader stops, and what it and the detector knew is forgotten
    /// (sessions configured again later are judged afresh).
    fn stand_down(&mut self) {
        self.interval.send_if_modified(|i| i.take().is_some());
        self.detector = Detector::default();
        self.last = Verdict::default();
        self.last_peers.clear();
        self.peers_from = Default::default();
    }

    /// The peers for these members and addresses, computed again only when they changed.
    fn peers(&mut self, node: &str, members: &[Member], watched: Vec<Watched>) -> &[BfdPeer] {
        if self.peers_from.0 != members || self.peers_from.1 != watched {
            let peers = failover::peers(node, members, &watched);
            if peers != self.last_peers {
                let names: Vec<String> = peers
                    .iter()
                    .map(|p| format!("{}@{}", p.node, p.address))
                    .collect();
                tracing::info!(peers = ?names, addresses = watched.len(), "fast failover: BFD peers");
                self.last_peers = peers;
            }
            self.peers_from = (members.to_vec(), watched);
        }
        &self.last_peers
    }

    /// Whether the last verdict names a failed peer or this node cut off.
    pub fn judging(&self) -> bool {
        self.last.cut_off || !self.last.failed.is_empty()
    }

    fn log_change(&mut self, v: &Verdict) {
        if v.failed != self.last.failed {
            tracing::info!(failed = ?v.failed, "fast failover: peers whose BFD sessions are down");
        }
        if v.cut_off != self.last.cut_off {
            if v.cut_off {
                tracing::warn!(
                    "fast failover: every BFD session is down (or the daemon is silent): this \
                     node steps back from its fast-failover addresses"
                );
            } else {
                tracing::info!("fast failover: BFD sessions up again");
            }
        }
        self.last = v.clone();
    }

    /// What NodeState says of it; none while this node keeps no BFD peer.
    pub fn status(&self) -> Option<FastFailoverStatus> {
        if self.last_peers.is_empty() {
            return None;
        }
        let up: BTreeMap<String, bool> = self.detector.sessions().into_iter().collect();
        let mut peers: BTreeMap<&str, FastFailoverPeer> = BTreeMap::new();
        for p in &self.last_peers {
            let e = peers.entry(&p.node).or_insert_with(|| FastFailoverPeer {
                node: p.node.clone(),
                addresses: vec![],
                up: up.get(&p.node).copied().unwrap_or(false),
            });
            e.addresses.push(p.address.to_string());
        }
        Some(FastFailoverStatus {
            peers: peers.into_values().collect(),
            failed: self.last.failed.iter().cloned().collect(),
            cut_off: self.last.cut_off,
        })
    }
}
