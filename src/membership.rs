//! Which nodes are alive, from per-node Leases (pure apart from [`lease_object`]'s shape).
//!
//! Each agent renews a `coordination.k8s.io/v1` Lease named after its node and writes into it
//! what the election needs to know of the node: the subnets it can hold local addresses in
//! (with their interfaces) and the routed pools it announces. Liveness is judged on the local
//! clock from when a renewal was *seen*, never by comparing another machine's timestamps, so
//! clock skew between nodes does not matter. An API outage must not withdraw anything: see
//! [`Liveness`].

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::ResourceExt;
use serde_json::json;

use crate::election::Member;

pub const LEASE_PREFIX: &str = "routelb-node-";
/// Where node Leases live by default: a namespace of their own (as Kubernetes keeps the
/// kubelets' in `kube-node-lease`), so that the agents' Lease rights reach nothing in
/// `routelb-system`, the allocator's leader Lease least of all (see deploy/README.md, RBAC).
pub const DEFAULT_NAMESPACE: &str = "routelb-node-lease";
pub const LEASE_LABEL: &str = "routelb.io/node-lease";

/// The watcher configuration that sees every node's Lease (and nothing else) in a namespace.
pub fn lease_watch() -> kube::runtime::watcher::Config {
    crate::watch::busy().labels(&format!("{LEASE_LABEL}=true"))
}
pub const SUBNETS: &str = "routelb.io/subnets";
pub const ROUTED_POOLS: &str = "routelb.io/routed-pools";
/// The node's own addresses on its subnets (fast failover's BFD peers).
pub const ADDRESSES: &str = "routelb.io/addresses";
/// Present ("true") while the node is cut off from its fast-failover peers.
pub const CUT_OFF: &str = "routelb.io/cut-off";
/// The precise lease duration (the Lease's own field has whole seconds only).
pub const DURATION: &str = "routelb.io/lease-duration";

pub fn lease_name(node: &str) -> String {
    format!("{LEASE_PREFIX}{node}")
}

/// The Lease this agent applies on every renewal.
pub fn lease_object(
    me: &Member,
    namespace: &str,
    duration: Duration,
    renew_time: std::time::SystemTime,
) -> serde_json::Value {
    let subnets: Vec<String> = me
        .subnets
        .iter()
        .map(|(iface, net)| format!("{iface}={net}"))
        .collect();
    let pools: Vec<&str> = me.routed_pools.iter().map(String::as_str).collect();
    let addresses: Vec<String> = me.addresses.iter().map(IpAddr::to_string).collect();
    let mut annotations = json!({
        SUBNETS: subnets.join(","),
        ROUTED_POOLS: pools.join(","),
        ADDRESSES: addresses.join(","),
        DURATION: humantime::format_duration(duration).to_string(),
    });
    if me.cut_off {
        annotations[CUT_OFF] = json!("true");
    }
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": lease_name(&me.node),
            "namespace": namespace,
            "labels": { LEASE_LABEL: "true", "app.kubernetes.io/managed-by": "routelb" },
            "annotations": annotations,
        },
        "spec": {
            "holderIdentity": me.node,
            "leaseDurationSeconds": duration.as_secs_f64().ceil().max(1.0) as i32,
            "renewTime": humantime::format_rfc3339_micros(renew_time).to_string(),
        },
    })
}

/// The member a Lease describes; `None` if it is not a routelb node lease.
pub fn member_of(lease: &Lease) -> Option<Member> {
    let node = lease.name_any().strip_prefix(LEASE_PREFIX)?.to_string();
    let ann = lease.annotations();
    let subnets = ann
        .get(SUBNETS)
        .map(|s| {
            s.split(',')
                .filter_map(|e| {
                    let (iface, net) = e.split_once('=')?;
                    Some((iface.to_string(), net.parse::<IpNet>().ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    let routed_pools = ann
        .get(ROUTED_POOLS)
        .map(|s| {
            s.split(',')
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let addresses = ann
        .get(ADDRESSES)
        .map(|s| s.split(',').filter_map(|a| a.parse().ok()).collect())
        .unwrap_or_default();
    Some(Member {
        node,
        subnets,
        routed_pools,
        addresses,
        cut_off: ann.get(CUT_OFF).is_some_and(|v| v == "true"),
    })
}

/// How long a Lease lasts: its precise annotation, else its whole seconds.
pub fn duration_of(lease: &Lease) -> Option<Duration> {
    lease
        .annotations()
        .get(DURATION)
        .and_then(|d| humantime::parse_duration(d).ok())
        .or_else(|| {
            let secs = lease.spec.as_ref()?.lease_duration_seconds?;
            Some(Duration::from_secs(u64::try_from(secs).ok()?))
        })
}

fn renew_marker(lease: &Lease) -> Option<&MicroTime> {
    lease.spec.as_ref()?.renew_time.as_ref()
}

/// Whose renewals prove that the API server works (see [`Liveness`]).
#[derive(Debug)]
enum Clock {
    /// This node's own lease: a node judges peers only while its own renewals get through.
    Own(String),
    /// Any node's lease: for an observer that renews none (the allocator).
    AnyRenewal,
}

/// When each lease was last seen renewed, on this machine's clock, and what that says about
/// who is alive.
///
/// A peer is dead only when a renewal that proves the API works (this node's own, for an
/// agent) has come back through the watch later than the peer's deadline (its last seen
/// renewal plus its duration): the API server took writes and delivered watch events at a
/// moment when the peer should have renewed and did not. While this node cannot renew or
/// cannot watch (an API outage, a partition), those renewals stop arriving and nobody is
/// judged dead: membership freezes by itself. After such a gap everyone gets one more lease
/// duration, since nobody could renew during it.
#[derive(Debug)]
pub struct Liveness {
    clock: Clock,
    seen: HashMap<String, (Option<MicroTime>, Instant)>,
    /// The last renewal that proves the API works.
    proof: Option<Instant>,
    grace_until: Option<Instant>,
}

impl Liveness {
    /// For the agent of `node`.
    pub fn new(node: &str) -> Liveness {
        Self::with_clock(Clock::Own(lease_name(node)))
    }

    /// For an observer that holds no node lease: any node's renewal proves the API works.
    pub fn observer() -> Liveness {
        Self::with_clock(Clock::AnyRenewal)
    }

    fn with_clock(clock: Clock) -> Liveness {
        Liveness {
            clock,
            seen: HashMap::new(),
            proof: None,
            grace_until: None,
        }
    }

    /// Records renewals in the current set of leases.
    pub fn observe<L: Borrow<Lease>>(&mut self, leases: &[L], now: Instant) {
        let names: BTreeSet<String> = leases.iter().map(|l| l.borrow().name_any()).collect();
        self.seen.retain(|n, _| names.contains(n));
        for l in leases.iter().map(Borrow::borrow) {
            let name = l.name_any();
            let marker = renew_marker(l).cloned();
            let renewed = match self.seen.get_mut(&name) {
                Some((m, at)) if *m != marker => {
                    *m = marker;
                    *at = now;
                    true
                }
                Some(_) => false,
                None => {
                    self.seen.insert(name.clone(), (marker, now));
                    false
                }
            };
            let proves = match &self.clock {
                Clock::Own(own) => *own == name,
                Clock::AnyRenewal => member_of(l).is_some(),
            };
            if renewed && proves {
                let duration = duration_of(l).unwrap_or(DEFAULT_DURATION);
                if self.proof.is_some_and(|p| now.duration_since(p) > duration) {
                    // Renewals were not getting through: nobody could renew.
                    self.grace_until = Some(now + duration);
                }
                self.proof = Some(now);
            } else if proves && self.proof.is_none() {
                self.proof = Some(now);
            }
        }
    }

    fn alive(&self, lease: &Lease, now: Instant) -> bool {
        let Some((_, at)) = self.seen.get(&lease.name_any()) else {
            return false;
        };
        let deadline = *at + duration_of(lease).unwrap_or(DEFAULT_DURATION);
        let in_grace = self.grace_until.is_some_and(|g| now < g);
        in_grace || self.proof.is_none_or(|p| p <= deadline)
    }

    /// The members whose lease is alive, by node name, with this node (`me`, always alive to
    /// itself) as it is now.
    pub fn members<L: Borrow<Lease>>(
        &self,
        leases: &[L],
        me: &Member,
        now: Instant,
    ) -> Vec<Member> {
        let mut out: BTreeMap<String, Member> = BTreeMap::new();
        for l in leases.iter().map(Borrow::borrow) {
            if let Some(m) = member_of(l)
                && self.alive(l, now)
            {
                out.insert(m.node.clone(), m);
            }
        }
        out.insert(me.node.clone(), me.clone());
        out.into_values().collect()
    }

    /// When `node`'s Lease was last seen renewed, on this clock, and whether it says the node
    /// is cut off (for [`crate::failover::Detector::verdict`], which asks only about peers
    /// whose BFD sessions are down: no per-pass walk over every Lease).
    pub fn renewal_of<L: Borrow<Lease>>(
        &self,
        leases: &[L],
        node: &str,
    ) -> Option<(Instant, bool)> {
        let name = lease_name(node);
        let (_, at) = self.seen.get(&name)?;
        let lease = leases
            .iter()
            .map(Borrow::borrow)
            .find(|l| l.name_any() == name)?;
        let cut_off = lease
            .annotations()
            .get(CUT_OFF)
            .is_some_and(|v| v == "true");
        Some((*at, cut_off))
    }

    /// The names of the nodes whose lease is alive.
    pub fn live_nodes<L: Borrow<Lease>>(&self, leases: &[L], now: Instant) -> BTreeSet<String> {
        leases
            .iter()
            .map(Borrow::borrow)
            .filter(|l| self.alive(l, now))
            .filter_map(member_of)
            .map(|m| m.node)
            .collect()
    }
}

const DEFAULT_DURATION: Duration = Duration::from_secs(15);

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(node: &str, renew: &str, subnets: &str, pools: &str, duration: &str) -> Lease {
        serde_json::from_value(json!({
            "metadata": {
                "name": lease_name(node),
                "namespace": DEFAULT_NAMESPACE,
                "annotations": { SUBNETS: subnets, ROUTED_POOLS: pools, DURATION: duration },
            },
            "spec": { "holderIdentity": node, "renewTime": renew, "leaseDurationSeconds": 2 },
        }))
        .unwrap()
    }

    fn me() -> Member {
        Member {
            node: "me".into(),
            ..Default::default()
        }
    }

    fn names(ms: &[Member]) -> Vec<&str> {
        ms.iter().map(|m| m.node.as_str()).collect()
    }

    #[test]
    fn lease_round_trips_the_member() {
        let m = Member {
            node: "n1".into(),
            subnets: vec![
                ("eth0".into(), "10.0.0.0/24".parse().unwrap()),
                ("eth1".into(), "fd00::/64".parse().unwrap()),
            ],
            routed_pools: ["a".to_string(), "b".to_string()].into(),
            addresses: vec!["10.0.0.7".parse().unwrap(), "fd00::7".parse().unwrap()],
            cut_off: true,
        };
        let obj = lease_object(
            &m,
            "ns",
            Duration::from_millis(1500),
            std::time::SystemTime::now(),
        );
        let l: Lease = serde_json::from_value(obj).unwrap();
        assert_eq!(member_of(&l), Some(m));
        assert_eq!(duration_of(&l), Some(Duration::from_millis(1500)));
        assert_eq!(l.spec.unwrap().lease_duration_seconds, Some(2));
    }

    const T0: &str = "2026-01-01T00:00:00.000000Z";

    fn renewed(node: &str, secs: u32) -> Lease {
        lease(
            node,
            &format!("2026-01-01T00:00:{secs:02}.000000Z"),
            "",
            "",
            "2s",
        )
    }

    #[test]
    fn a_peer_dies_only_when_our_own_renewal_outlives_its_deadline() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut live = Liveness::new("me");
        live.observe(&[renewed("me", 0), renewed("a", 0)], t0);
        // Long past a's deadline, but no renewal of ours seen since: nobody is judged dead.
        assert_eq!(
            names(&live.members(&[renewed("me", 0), renewed("a", 0)], &me(), at(10_000))),
            ["a", "me"]
        );
        // Our renewal comes back at 1.5 s: a's deadline (2 s) has not passed.
        live.observe(&[renewed("me", 1), renewed("a", 0)], at(1500));
        assert_eq!(
            names(&live.members(&[renewed("me", 1), renewed("a", 0)], &me(), at(1500))),
            ["a", "me"]
        );
        // Our next renewal at 2.5 s: a missed its deadline while the API worked.
        live.observe(&[renewed("me", 2), renewed("a", 0)], at(2500));
        assert_eq!(
            names(&live.members(&[renewed("me", 2), renewed("a", 0)], &me(), at(2500))),
            ["me"]
        );
        // a renews again: alive.
        live.observe(&[renewed("me", 2), renewed("a", 3)], at(2600));
        assert_eq!(
            names(&live.members(&[renewed("me", 2), renewed("a", 3)], &me(), at(2600))),
            ["a", "me"]
        );
    }

    #[test]
    fn before_our_own_lease_is_seen_nobody_is_dead() {
        let t0 = Instant::now();
        let mut live = Liveness::new("me");
        let a = lease("a", T0, "", "", "2s");
        live.observe(std::slice::from_ref(&a), t0);
        let m = live.members(&[a], &me(), t0 + Duration::from_secs(60));
        assert_eq!(names(&m), ["a", "me"]);
    }

    #[test]
    fn a_deleted_lease_is_gone_at_once() {
        let t0 = Instant::now();
        let mut live = Liveness::new("me");
        let a = lease("a", T0, "", "", "10s");
        live.observe(std::slice::from_ref(&a), t0);
        live.observe::<Lease>(&[], t0);
        assert_eq!(names(&live.members::<Lease>(&[], &me(), t0)), ["me"]);
    }

    #[test]
    fn after_an_outage_everyone_gets_a_lease_duration() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut live = Liveness::new("me");
        live.observe(&[renewed("me", 0), renewed("a", 0)], t0);
        // 30 s without any renewal getting through, then ours arrives first.
        live.observe(&[renewed("me", 30), renewed("a", 0)], at(30_000));
        assert_eq!(
            names(&live.members(&[renewed("me", 30), renewed("a", 0)], &me(), at(30_000))),
            ["a", "me"]
        );
        // a renews within the grace period.
        live.observe(&[renewed("me", 31), renewed("a", 31)], at(31_000));
        assert_eq!(
            names(&live.members(&[renewed("me", 31), renewed("a", 31)], &me(), at(31_000))),
            ["a", "me"]
        );
        // b never came back: dead once the grace period is over and our renewals continue.
        let mut live = Liveness::new("me");
        live.observe(&[renewed("me", 0), renewed("b", 0)], t0);
        live.observe(&[renewed("me", 30), renewed("b", 0)], at(30_000));
        live.observe(&[renewed("me", 31), renewed("b", 0)], at(31_000));
        live.observe(&[renewed("me", 33), renewed("b", 0)], at(32_100));
        assert_eq!(
            names(&live.members(&[renewed("me", 33), renewed("b", 0)], &me(), at(32_100))),
            ["me"]
        );
    }

    #[test]
    fn an_observer_takes_any_renewal_as_proof() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut live = Liveness::observer();
        live.observe(&[renewed("a", 0), renewed("b", 0)], t0);
        live.observe(&[renewed("a", 1), renewed("b", 0)], at(1000));
        let both = |live: &Liveness, ls: &[Lease], t| {
            live.live_nodes(ls, t).into_iter().collect::<Vec<_>>()
        };
        assert_eq!(
            both(&live, &[renewed("a", 1), renewed("b", 0)], at(1000)),
            ["a", "b"]
        );
        // a keeps renewing past b's deadline: b is dead.
        live.observe(&[renewed("a", 2), renewed("b", 0)], at(2100));
        assert_eq!(
            both(&live, &[renewed("a", 2), renewed("b", 0)], at(2100)),
            ["a"]
        );
    }

    #[test]
    fn foreign_leases_and_bad_annotations_are_ignored() {
        let mut other = lease(
            "a",
            "2026-01-01T00:00:00.000000Z",
            "eth0=nonsense,eth0=10.0.0.0/8",
            "p",
            "2s",
        );
        assert_eq!(
            member_of(&other).unwrap().subnets,
            vec![("eth0".to_string(), "10.0.0.0/8".parse().unwrap())]
        );
        other.metadata.name = Some("kube-scheduler".into());
        assert_eq!(member_of(&other), None);
    }
}
