//! Which nodes are alive, from per-node Leases (pure apart from [`lease_object`]'s shape).
//!
//! Each agent renews a `coordination.k8s.io/v1` Lease named after its node and writes into it
//! what the election needs to know of the node: the subnets it can hold local addresses in
//! (with their interfaces) and the routed pools it announces. Liveness is judged on the local
//! clock from when a renewal was *seen*, never by comparing another machine's timestamps, so
//! clock skew between nodes does not matter.
//!
//! An API outage must not withdraw anything: while this agent cannot renew its own Lease it
//! cannot see anyone else's renewals either, so membership is frozen; after the API comes
//! back every node gets one full lease duration to renew before it is judged dead.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::ResourceExt;
use serde_json::json;

use crate::election::Member;

pub const LEASE_PREFIX: &str = "routelb-node-";
pub const LEASE_LABEL: &str = "routelb.io/node-lease";
pub const SUBNETS: &str = "routelb.io/subnets";
pub const ROUTED_POOLS: &str = "routelb.io/routed-pools";
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
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": lease_name(&me.node),
            "namespace": namespace,
            "labels": { LEASE_LABEL: "true", "app.kubernetes.io/managed-by": "routelb" },
            "annotations": {
                SUBNETS: subnets.join(","),
                ROUTED_POOLS: pools.join(","),
                DURATION: humantime::format_duration(duration).to_string(),
            },
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
    Some(Member {
        node,
        subnets,
        routed_pools,
    })
}

fn duration_of(lease: &Lease) -> Option<Duration> {
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

/// When each lease was last seen renewed, on this machine's clock.
#[derive(Debug, Default)]
pub struct Liveness {
    seen: HashMap<String, (Option<MicroTime>, Instant)>,
    /// Until then everyone counts as alive: the API came back after an outage, and nobody
    /// could renew during it.
    grace_until: Option<Instant>,
}

impl Liveness {
    /// Records renewals in the current set of leases.
    pub fn observe(&mut self, leases: &[Lease], now: Instant) {
        let names: BTreeSet<String> = leases.iter().map(|l| l.name_any()).collect();
        self.seen.retain(|n, _| names.contains(n));
        for l in leases {
            let marker = renew_marker(l).cloned();
            match self.seen.get_mut(&l.name_any()) {
                Some((m, at)) if *m != marker => {
                    *m = marker;
                    *at = now;
                }
                Some(_) => {}
                None => {
                    self.seen.insert(l.name_any(), (marker, now));
                }
            }
        }
    }

    /// The API answered again after an outage of this agent's own renewals.
    pub fn api_recovered(&mut self, now: Instant, longest_lease: Duration) {
        self.grace_until = Some(now + longest_lease);
    }

    /// The members whose lease is alive, by node name, with this node (`me`, always alive to
    /// itself) as it is now. Also returns when the next lease would expire, to wake up then.
    pub fn members(
        &self,
        leases: &[Lease],
        me: &Member,
        now: Instant,
    ) -> (Vec<Member>, Option<Instant>) {
        let in_grace = self.grace_until.is_some_and(|g| now < g);
        let mut out: BTreeMap<String, Member> = BTreeMap::new();
        let mut next_expiry: Option<Instant> = self.grace_until.filter(|_| in_grace);
        for l in leases {
            let Some(m) = member_of(l) else { continue };
            let Some((_, at)) = self.seen.get(&l.name_any()) else {
                continue;
            };
            let expires = *at + duration_of(l).unwrap_or(Duration::from_secs(15));
            if now < expires || in_grace {
                if now < expires {
                    next_expiry = Some(next_expiry.map_or(expires, |n| n.min(expires)));
                }
                out.insert(m.node.clone(), m);
            }
        }
        out.insert(me.node.clone(), me.clone());
        (out.into_values().collect(), next_expiry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(node: &str, renew: &str, subnets: &str, pools: &str, duration: &str) -> Lease {
        serde_json::from_value(json!({
            "metadata": {
                "name": lease_name(node),
                "namespace": "routelb-system",
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

    #[test]
    fn a_lease_dies_when_its_renewals_stop_being_seen() {
        let t0 = Instant::now();
        let mut live = Liveness::default();
        let a1 = lease("a", "2026-01-01T00:00:00.000000Z", "", "", "2s");
        live.observe(std::slice::from_ref(&a1), t0);
        let (m, next) = live.members(
            std::slice::from_ref(&a1),
            &me(),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(names(&m), ["a", "me"]);
        assert_eq!(next, Some(t0 + Duration::from_secs(2)));
        // No renewal seen for longer than its duration: gone.
        let (m, _) = live.members(
            std::slice::from_ref(&a1),
            &me(),
            t0 + Duration::from_secs(3),
        );
        assert_eq!(names(&m), ["me"]);
        // A renewal (a new renewTime) revives it, timed from when we saw it.
        let a2 = lease("a", "2026-01-01T00:00:05.000000Z", "", "", "2s");
        live.observe(std::slice::from_ref(&a2), t0 + Duration::from_secs(4));
        let (m, _) = live.members(
            std::slice::from_ref(&a2),
            &me(),
            t0 + Duration::from_secs(5),
        );
        assert_eq!(names(&m), ["a", "me"]);
        // The same renewTime seen again is not a renewal.
        live.observe(std::slice::from_ref(&a2), t0 + Duration::from_secs(5));
        let (m, _) = live.members(&[a2], &me(), t0 + Duration::from_millis(6100));
        assert_eq!(names(&m), ["me"]);
    }

    #[test]
    fn a_deleted_lease_is_gone_at_once() {
        let t0 = Instant::now();
        let mut live = Liveness::default();
        let a = lease("a", "2026-01-01T00:00:00.000000Z", "", "", "10s");
        live.observe(std::slice::from_ref(&a), t0);
        live.observe(&[], t0);
        let (m, _) = live.members(&[], &me(), t0);
        assert_eq!(names(&m), ["me"]);
    }

    #[test]
    fn after_an_api_outage_everyone_gets_a_grace_period() {
        let t0 = Instant::now();
        let mut live = Liveness::default();
        let a = lease("a", "2026-01-01T00:00:00.000000Z", "", "", "2s");
        live.observe(std::slice::from_ref(&a), t0);
        let back = t0 + Duration::from_secs(30);
        live.api_recovered(back, Duration::from_secs(2));
        let (m, next) = live.members(
            std::slice::from_ref(&a),
            &me(),
            back + Duration::from_secs(1),
        );
        assert_eq!(names(&m), ["a", "me"]);
        assert_eq!(next, Some(back + Duration::from_secs(2)));
        let (m, _) = live.members(&[a], &me(), back + Duration::from_secs(3));
        assert_eq!(names(&m), ["me"]);
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
