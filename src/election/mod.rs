//! Election (pure): which live nodes hold each service address.
//!
//! - A **local** address (pool mode `local`) has exactly one holder: among the live nodes with
//!   a subnet holding the address (under `externalTrafficPolicy: Local`, only those with ready
//!   endpoints), the one ranking highest for the address. The rank is a hash of (node,
//!   address), so every agent reaches the same answer from the same facts with no
//!   coordination, Services sharing an address agree on its holder, addresses spread over
//!   nodes, and a node leaving moves only its own addresses.
//! - A **routed** address is held by every live node announcing its pool (a RoutingPolicy
//!   selects the pool for that node), or under `externalTrafficPolicy: Local` by those of them
//!   with ready endpoints; the upstream routers spread traffic over them (ECMP).
//! - An address shared (a sharing key) by Services under `externalTrafficPolicy: Local` is
//!   held only by nodes with a ready endpoint of *each* of them, whichever Service is elected:
//!   the address brings every sharing Service's traffic to its holders, and a node without a
//!   Local Service's endpoint would drop that Service's share. (MetalLB refuses such sharing
//!   unless the selectors match; here the Services may differ, and an address no node can
//!   serve for all of them is not announced, with that reason.)
//! - With `routelb.io/withdraw-when-no-endpoints`, a service with no ready endpoint anywhere
//!   is held by nobody, whatever its traffic policy.
//!
//! Each decision also names a *reporter*: the one node that writes the Service's
//! `routelb.io/announcing` annotation and its Events, so nodes do not race to write them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use sha2::{Digest, Sha256};

use crate::api::PoolMode;
use crate::ipam::ServiceKey;
use crate::service::ServiceAddresses;

mod node_view;
mod ranks;
pub use node_view::{Kept, NodeView, elect_for};
pub use ranks::Ranks;

/// A live node as its Lease describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Member {
    pub node: String,
    /// Subnets the node can hold local addresses in, each with the interface carrying it.
    pub subnets: Vec<(String, IpNet)>,
    /// Routed pools the node announces.
    pub routed_pools: BTreeSet<String>,
    /// The node's own addresses on those subnets, for the BFD sessions of fast failover
    /// ([`crate::failover`]); none from an agent that does not publish them.
    pub addresses: Vec<IpAddr>,
    /// The node says it is cut off from its fast-failover peers ([`crate::failover`]).
    pub cut_off: bool,
}

impl Member {
    /// The node's own address on its subnet holding `ip`, if it published one.
    pub fn address_in(&self, ip: IpAddr) -> Option<IpAddr> {
        let (_, subnet) = self.subnets.iter().find(|(_, s)| s.contains(&ip))?;
        self.addresses.iter().copied().find(|a| subnet.contains(a))
    }
}

/// Where a service's endpoints are ready.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Nodes with at least one ready endpoint.
    pub nodes: BTreeSet<String>,
    /// Whether any endpoint is ready (also those whose node is not known).
    pub any: bool,
    /// The ready endpoints' addresses on the node readiness was read for (its first address
    /// each), for `weightedEcmp`.
    pub here: BTreeSet<IpAddr>,
}

/// A service with an address, as the election needs it.
#[derive(Clone, Debug)]
pub struct Candidate<'a> {
    pub service: &'a ServiceAddresses,
    pub mode: PoolMode,
    /// `externalTrafficPolicy: Local`.
    pub local_traffic: bool,
    /// `routelb.io/withdraw-when-no-endpoints: "true"`.
    pub withdraw_without_endpoints: bool,
    pub endpoints: &'a Readiness,
}

/// One node holding an address, on which interface.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Holder {
    pub node: String,
    pub interface: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub address: IpAddr,
    /// Best ranked first. Empty when nobody holds the address; `unheld` says why.
    pub holders: Vec<Holder>,
    pub unheld: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub key: ServiceKey,
    pub pool: String,
    pub placements: Vec<Placement>,
    /// The node that reports this service's announcement state.
    pub reporter: Option<String>,
}

impl Decision {
    /// Whether `node` holds any of the service's addresses.
    pub fn held_by(&self, node: &str) -> bool {
        self.placements
            .iter()
            .any(|p| p.holders.iter().any(|h| h.node == node))
    }

    /// The `routelb.io/announcing` value: `node/interface` for every holder, comma-separated,
    /// in a stable order; empty when nobody announces the service.
    pub fn announcing(&self) -> String {
        let set: BTreeSet<String> = self
            .placements
            .iter()
            .flat_map(|p| &p.holders)
            .map(|h| format!("{}/{}", h.node, h.interface))
            .collect();
        set.into_iter().collect::<Vec<_>>().join(",")
    }

    /// Why some address is not announced, if one is not.
    pub fn unheld_reason(&self) -> Option<String> {
        let reasons: BTreeSet<&str> = self
            .placements
            .iter()
            .filter_map(|p| p.unheld.as_deref())
            .collect();
        (!reasons.is_empty()).then(|| reasons.into_iter().collect::<Vec<_>>().join("; "))
    }
}

/// The rank of a node for a subject (a service's `namespace/name`, or a local address): the
/// first 8 bytes of SHA-256 over both. Stable across processes, versions and architectures,
/// unlike std's hasher.
pub fn rank(node: &str, subject: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update([0]);
    h.update(subject.as_bytes());
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

fn ranked<'m>(members: impl Iterator<Item = &'m Member>, subject: &str) -> Vec<&'m Member> {
    let mut v: Vec<&Member> = members.collect();
    // One hash per node; ties (equal hashes) are broken by name so the order is total.
    v.sort_by_cached_key(|m| (std::cmp::Reverse(rank(&m.node, subject)), m.node.clone()));
    v
}

pub fn elect(candidates: &[Candidate], members: &[Member], lb_interface: &str) -> Vec<Decision> {
    elect_each(candidates, |_| members, lb_interface)
}

/// [`elect`], each candidate among the members `members_for` gives it (fast failover elects
/// its pools' addresses among the members this node's BFD sessions leave).
pub fn elect_each<'m>(
    candidates: &[Candidate],
    members_for: impl Fn(&Candidate) -> &'m [Member],
    lb_interface: &str,
) -> Vec<Decision> {
    let local = local_sharers(candidates);
    candidates
        .iter()
        .map(|c| decide(c, members_for(c), lb_interface, &local))
        .collect()
}

/// Per address, the endpoints of the `externalTrafficPolicy: Local` Services that have it. A
/// node may hold an address only with a ready endpoint of each of them: the address (one
/// route, one ARP answer) brings every sharing Service's traffic to its holders, and a Local
/// Service's traffic is dropped on a node without its endpoints. Services sharing an address
/// therefore agree on its holders.
fn local_sharers<'a>(candidates: &[Candidate<'a>]) -> BTreeMap<IpAddr, Vec<&'a Readiness>> {
    let mut out: BTreeMap<IpAddr, Vec<&'a Readiness>> = BTreeMap::new();
    for c in candidates.iter().filter(|c| c.local_traffic) {
        for a in &c.service.addresses {
            out.entry(*a).or_default().push(c.endpoints);
        }
    }
    out
}

fn decide(
    c: &Candidate,
    members: &[Member],
    lb_interface: &str,
    local: &BTreeMap<IpAddr, Vec<&Readiness>>,
) -> Decision {
    let key = &c.service.key;
    let placements: Vec<Placement> = c
        .service
        .addresses
        .iter()
        .map(|&address| {
            let needs = Needs {
                endpoints_of: local.get(&address).map_or(&[], Vec::as_slice),
            };
            place(c, address, members, lb_interface, &needs)
        })
        .collect();
    let reporter = reporter(&placements, members, key);
    Decision {
        key: key.clone(),
        pool: c.service.pool.clone(),
        placements,
        reporter,
    }
}

/// Who holds one of the service's addresses, or why nobody does.
fn place(
    c: &Candidate,
    address: IpAddr,
    members: &[Member],
    lb_interface: &str,
    needs: &Needs,
) -> Placement {
    let holders = if c.withdraw_without_endpoints && !c.endpoints.any {
        Err("no ready endpoints".to_string())
    } else {
        match c.mode {
            PoolMode::Local => local_holder(c, address, members, needs).map(|h| vec![h]),
            PoolMode::Routed => routed_holders(c, address, members, lb_interface, needs),
        }
    };
    match holders {
        Ok(holders) => Placement {
            address,
            holders,
            unheld: None,
        },
        Err(why) => Placement {
            address,
            holders: vec![],
            unheld: Some(why),
        },
    }
}

/// What a node needs to hold an address, as far as endpoints go: a ready endpoint of each
/// `externalTrafficPolicy: Local` Service with the address ([`local_sharers`]).
struct Needs<'a> {
    endpoints_of: &'a [&'a Readiness],
}

impl Needs<'_> {
    fn met_by(&self, m: &Member) -> bool {
        self.endpoints_of.iter().all(|r| r.nodes.contains(&m.node))
    }

    /// Why no node meets them: `what` names the nodes looked at.
    fn unmet(&self, address: IpAddr, what: &str) -> String {
        if self.endpoints_of.len() > 1 {
            format!(
                "no {what} has a ready endpoint of each of the {} Services sharing {address} (externalTrafficPolicy: Local)",
                self.endpoints_of.len()
            )
        } else {
            format!("no {what} has a ready endpoint (externalTrafficPolicy: Local)")
        }
    }
}

/// The one holder of a local address: among the live nodes with a subnet holding it (and an
/// endpoint, if need be), the one ranking highest for the address, on that subnet's interface.
fn local_holder(
    c: &Candidate,
    address: IpAddr,
    members: &[Member],
    needs: &Needs,
) -> Result<Holder, String> {
    let pool = &c.service.pool;
    let able: Vec<(&Member, &String)> = members
        .iter()
        .filter_map(|m| {
            m.subnets
                .iter()
                .find(|(_, s)| s.contains(&address))
                .map(|(i, _)| (m, i))
        })
        .collect();
    if able.is_empty() {
        return Err(format!(
            "no live node has a subnet holding {address} (local pool {pool})"
        ));
    }
    // Ranked by the address, not the service: Services sharing an address (a sharing key)
    // must elect the same holder.
    let eligible = ranked(
        able.iter().map(|(m, _)| *m).filter(|m| needs.met_by(m)),
        &address.to_string(),
    );
    let Some(winner) = eligible.first() else {
        return Err(needs.unmet(address, &format!("node on the subnet of {address}")));
    };
    let interface = able
        .iter()
        .find(|(m, _)| m.node == winner.node)
        .map(|(_, i)| (*i).clone())
        .expect("the winner is able");
    Ok(Holder {
        node: winner.node.clone(),
        interface,
    })
}

/// The holders of a routed address: every live node announcing its pool (with an endpoint,
/// if need be), ranked for the service, on the load-balancer interface.
fn routed_holders(
    c: &Candidate,
    address: IpAddr,
    members: &[Member],
    lb_interface: &str,
    needs: &Needs,
) -> Result<Vec<Holder>, String> {
    let pool = &c.service.pool;
    let announcing: Vec<&Member> = members
        .iter()
        .filter(|m| m.routed_pools.contains(pool))
        .collect();
    if announcing.is_empty() {
        return Err(format!(
            "no live node announces pool {pool} (no RoutingPolicy selects it for any node)"
        ));
    }
    let holders: Vec<Holder> = ranked(
        announcing.into_iter().filter(|m| needs.met_by(m)),
        &c.service.key.to_string(),
    )
    .into_iter()
    .map(|m| Holder {
        node: m.node.clone(),
        interface: lb_interface.to_string(),
    })
    .collect();
    if holders.is_empty() {
        return Err(needs.unmet(address, "node announcing the pool"));
    }
    Ok(holders)
}

/// The node that reports the service: its best-ranked holder, else the live node ranking
/// highest for the service, so someone says why it is not announced.
fn reporter(placements: &[Placement], members: &[Member], key: &ServiceKey) -> Option<String> {
    placements
        .iter()
        .find_map(|p| p.holders.first())
        .map(|h| h.node.clone())
        .or_else(|| {
            ranked(members.iter(), &key.to_string())
                .first()
                .map(|m| m.node.clone())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn member(node: &str, subnets: &[(&str, &str)], pools: &[&str]) -> Member {
        Member {
            node: node.into(),
            subnets: subnets
                .iter()
                .map(|(i, s)| (i.to_string(), s.parse().unwrap()))
                .collect(),
            routed_pools: pools.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }
    }

    fn svc(name: &str, pool: &str, ips: &[&str]) -> ServiceAddresses {
        ServiceAddresses {
            key: ServiceKey::new("default", name),
            pool: pool.into(),
            addresses: ips.iter().map(|i| i.parse().unwrap()).collect(),
            attributes: Default::default(),
            admitted: true,
        }
    }

    fn ready(nodes: &[&str]) -> Readiness {
        Readiness {
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            any: !nodes.is_empty(),
            ..Default::default()
        }
    }

    fn cand<'a>(s: &'a ServiceAddresses, mode: PoolMode, r: &'a Readiness) -> Candidate<'a> {
        Candidate {
            service: s,
            mode,
            local_traffic: false,
            withdraw_without_endpoints: false,
            endpoints: r,
        }
    }

    fn lan() -> Vec<Member> {
        vec![
            member(
                "a",
                &[("eth0", "10.0.0.0/24"), ("eth0", "fd00::/64")],
                &["r"],
            ),
            member(
                "b",
                &[("eth1", "10.0.0.0/24"), ("eth1", "fd00::/64")],
                &["r"],
            ),
            member("c", &[("eth0", "10.0.0.0/24")], &[]),
            member("d", &[("eth0", "192.168.1.0/24")], &["r"]),
        ]
    }

    fn holders(p: &Placement) -> Vec<&str> {
        p.holders.iter().map(|h| h.node.as_str()).collect()
    }

    #[test]
    fn local_address_has_one_holder_on_its_subnet_and_all_agree() {
        let s = svc("web", "lan", &["10.0.0.50"]);
        let r = Readiness::default();
        let mut members = lan();
        let d = elect(&[cand(&s, PoolMode::Local, &r)], &members, "kube-lb0");
        let p = &d[0].placements[0];
        assert_eq!(p.holders.len(), 1);
        assert!(["a", "b", "c"].contains(&p.holders[0].node.as_str()));
        // The same facts in another order give the same answer.
        members.reverse();
        let again = elect(&[cand(&s, PoolMode::Local, &r)], &members, "kube-lb0");
        assert_eq!(d, again);
        assert_eq!(d[0].reporter.as_deref(), Some(p.holders[0].node.as_str()));
    }

    #[test]
    fn local_holder_uses_its_own_interface() {
        let s = svc("web", "lan", &["10.0.0.50", "fd00::50"]);
        let r = Readiness::default();
        // Only a and b have both subnets.
        let members: Vec<Member> = lan().into_iter().filter(|m| m.node != "c").collect();
        let d = &elect(&[cand(&s, PoolMode::Local, &r)], &members, "kube-lb0")[0];
        for p in &d.placements {
            assert_eq!(p.holders.len(), 1);
            let h = &p.holders[0];
            assert_eq!(h.interface, if h.node == "a" { "eth0" } else { "eth1" });
        }
        assert!(d.announcing().contains("/eth"));
    }

    #[test]
    fn services_sharing_a_local_address_elect_the_same_holder() {
        let r = Readiness::default();
        let services: Vec<ServiceAddresses> = (0..50)
            .map(|i| svc(&format!("s{i}"), "lan", &["10.0.0.77"]))
            .collect();
        let cands: Vec<Candidate> = services
            .iter()
            .map(|s| cand(s, PoolMode::Local, &r))
            .collect();
        let ds = elect(&cands, &lan(), "kube-lb0");
        let holders: BTreeSet<&str> = ds
            .iter()
            .map(|d| d.placements[0].holders[0].node.as_str())
            .collect();
        assert_eq!(holders.len(), 1, "{holders:?}");
    }

    #[test]
    fn losing_a_node_moves_only_its_services() {
        let services: Vec<ServiceAddresses> = (0..200)
            .map(|i| svc(&format!("s{i}"), "lan", &[&format!("10.0.0.{}", i + 1)]))
            .collect();
        let r = Readiness::default();
        let cands: Vec<Candidate> = services
            .iter()
            .map(|s| cand(s, PoolMode::Local, &r))
            .collect();
        let all = lan();
        let before = elect(&cands, &all, "kube-lb0");
        let per_node = |ds: &[Decision], n: &str| ds.iter().filter(|d| d.held_by(n)).count();
        // Spread: each of the three able nodes gets a fair share.
        for n in ["a", "b", "c"] {
            assert!(per_node(&before, n) > 40, "{n}: {}", per_node(&before, n));
        }
        let without_b: Vec<Member> = all.iter().filter(|m| m.node != "b").cloned().collect();
        let after = elect(&cands, &without_b, "kube-lb0");
        for (x, y) in before.iter().zip(&after) {
            if !x.held_by("b") {
                assert_eq!(x.placements, y.placements, "{} moved needlessly", x.key);
            } else {
                assert!(!y.held_by("b"));
                assert_eq!(y.placements[0].holders.len(), 1);
            }
        }
    }

    #[test]
    fn local_without_able_node_says_why() {
        let s = svc("web", "lan", &["172.16.0.1"]);
        let r = Readiness::default();
        let d = &elect(&[cand(&s, PoolMode::Local, &r)], &lan(), "kube-lb0")[0];
        assert!(d.placements[0].holders.is_empty());
        assert!(d.unheld_reason().unwrap().contains("subnet"));
        assert_eq!(d.announcing(), "");
        // Someone still reports it.
        assert!(d.reporter.is_some());
    }

    #[test]
    fn external_traffic_local_follows_ready_endpoints() {
        let s = svc("web", "lan", &["10.0.0.50"]);
        let r = ready(&["c", "d"]);
        let mut c = cand(&s, PoolMode::Local, &r);
        c.local_traffic = true;
        let d = &elect(std::slice::from_ref(&c), &lan(), "kube-lb0")[0];
        // d has an endpoint but no subnet for the address: only c can hold it.
        assert_eq!(holders(&d.placements[0]), ["c"]);

        let none = ready(&["d"]);
        c.endpoints = &none;
        let d = &elect(&[c], &lan(), "kube-lb0")[0];
        assert!(d.placements[0].holders.is_empty());
        assert!(d.unheld_reason().unwrap().contains("ready endpoint"));
    }

    #[test]
    fn routed_goes_to_every_announcing_node_or_those_with_endpoints() {
        let s = svc("web", "r", &["203.0.113.5", "2001:db8::5"]);
        let r = ready(&["b", "c"]);
        let mut c = cand(&s, PoolMode::Routed, &r);
        let d = &elect(std::slice::from_ref(&c), &lan(), "kube-lb0")[0];
        let mut h = holders(&d.placements[0]);
        h.sort();
        assert_eq!(h, ["a", "b", "d"]);
        assert!(
            d.placements[0]
                .holders
                .iter()
                .all(|h| h.interface == "kube-lb0")
        );
        assert_eq!(d.announcing(), "a/kube-lb0,b/kube-lb0,d/kube-lb0");
        assert_eq!(
            d.reporter.as_deref(),
            Some(d.placements[0].holders[0].node.as_str())
        );

        c.local_traffic = true;
        let d = &elect(&[c], &lan(), "kube-lb0")[0];
        // c has endpoints but announces no routed pool.
        assert_eq!(holders(&d.placements[1]), ["b"]);
    }

    /// A routed address shared by Services under `externalTrafficPolicy: Local` goes only to
    /// nodes with endpoints of each of them, whichever Service is elected (a Cluster Service
    /// sharing it too); a local one gets the same holder from each. Nobody, with a reason
    /// naming the sharing, when no node has them all.
    #[test]
    fn a_shared_address_goes_only_where_every_local_service_has_endpoints() {
        let web = svc("web", "r", &["203.0.113.5"]);
        let dns = svc("dns", "r", &["203.0.113.5"]);
        let ops = svc("ops", "r", &["203.0.113.5"]);
        let (on_ab, on_bd, anywhere) = (ready(&["a", "b"]), ready(&["b", "d"]), ready(&["a"]));
        let mut c_web = cand(&web, PoolMode::Routed, &on_ab);
        let mut c_dns = cand(&dns, PoolMode::Routed, &on_bd);
        let c_ops = cand(&ops, PoolMode::Routed, &anywhere);
        (c_web.local_traffic, c_dns.local_traffic) = (true, true);
        let ds = elect(&[c_web.clone(), c_dns.clone(), c_ops], &lan(), "kube-lb0");
        for d in &ds {
            assert_eq!(holders(&d.placements[0]), ["b"], "{}", d.key);
        }
        // Alone, each would go wherever it has endpoints.
        let alone = &elect(std::slice::from_ref(&c_web), &lan(), "kube-lb0")[0];
        assert_eq!(holders(&alone.placements[0]).len(), 2);

        let on_d = ready(&["d"]);
        c_dns.endpoints = &on_d;
        let ds = elect(&[c_web.clone(), c_dns], &lan(), "kube-lb0");
        for d in &ds {
            assert!(d.placements[0].holders.is_empty(), "{}", d.key);
            assert_eq!(
                d.unheld_reason().as_deref(),
                Some(
                    "no node announcing the pool has a ready endpoint of each of the 2 Services sharing 203.0.113.5 (externalTrafficPolicy: Local)"
                )
            );
        }

        // A local address: one holder, the same for both, with endpoints of both.
        let lan_web = svc("web", "lan", &["10.0.0.60"]);
        let lan_dns = svc("dns", "lan", &["10.0.0.60"]);
        let (on_abc, on_c) = (ready(&["a", "b", "c"]), ready(&["c"]));
        let mut l_web = cand(&lan_web, PoolMode::Local, &on_abc);
        let mut l_dns = cand(&lan_dns, PoolMode::Local, &on_c);
        (l_web.local_traffic, l_dns.local_traffic) = (true, true);
        for d in elect(&[l_web, l_dns], &lan(), "kube-lb0") {
            assert_eq!(holders(&d.placements[0]), ["c"], "{}", d.key);
        }
    }

    #[test]
    fn routed_pool_nobody_announces() {
        let s = svc("web", "other", &["203.0.113.5"]);
        let r = ready(&["a"]);
        let d = &elect(&[cand(&s, PoolMode::Routed, &r)], &lan(), "kube-lb0")[0];
        assert!(d.unheld_reason().unwrap().contains("RoutingPolicy"));
    }

    #[test]
    fn withdraw_when_no_endpoints_applies_to_cluster_policy_too() {
        let s = svc("web", "r", &["203.0.113.5"]);
        let empty = Readiness::default();
        let mut c = cand(&s, PoolMode::Routed, &empty);
        c.withdraw_without_endpoints = true;
        let d = &elect(std::slice::from_ref(&c), &lan(), "kube-lb0")[0];
        assert!(d.placements[0].holders.is_empty());
        assert_eq!(d.unheld_reason().unwrap(), "no ready endpoints");
        // An endpoint on a node without an agent still counts as "some endpoint is ready".
        let elsewhere = Readiness {
            nodes: ["z".to_string()].into(),
            any: true,
            ..Default::default()
        };
        c.endpoints = &elsewhere;
        let d = &elect(&[c], &lan(), "kube-lb0")[0];
        assert_eq!(d.placements[0].holders.len(), 3);
    }

    #[test]
    fn rank_is_stable() {
        // Pinned so that a change of hash (which would move every local address in a cluster
        // during an upgrade) cannot slip in unnoticed.
        assert_eq!(rank("node-1", "default/web"), rank("node-1", "default/web"));
        assert_ne!(rank("node-1", "default/web"), rank("node-2", "default/web"));
        assert_eq!(
            format!("{:016x}", rank("node-1", "default/web")),
            PINNED_RANK
        );
    }

    const PINNED_RANK: &str = "c7c6dd002dc3ac95";

    #[test]
    fn unheld_services_are_reported_by_the_node_ranking_highest_for_them() {
        let members = lan();
        let key = ServiceKey::new("default", "web");
        let nobody = Placement {
            address: "10.9.0.1".parse().unwrap(),
            holders: vec![],
            unheld: Some("no ready endpoints".into()),
        };
        let best = ranked(members.iter(), "default/web")[0].node.clone();
        assert_eq!(
            reporter(std::slice::from_ref(&nobody), &members, &key),
            Some(best)
        );
        // A holder reports, whoever ranks highest.
        let held = Placement {
            holders: vec![Holder {
                node: "d".into(),
                interface: "kube-lb0".into(),
            }],
            unheld: None,
            ..nobody.clone()
        };
        assert_eq!(
            reporter(&[nobody, held], &members, &key).as_deref(),
            Some("d")
        );
        assert_eq!(reporter(&[], &[], &key), None);
    }

    const NO_NEEDS: Needs = Needs { endpoints_of: &[] };

    #[test]
    fn no_endpoints_withdraws_before_the_mode_is_looked_at() {
        let s = svc("web", "nowhere", &["192.0.2.1"]);
        let none = ready(&[]);
        let mut c = cand(&s, PoolMode::Local, &none);
        c.withdraw_without_endpoints = true;
        let p = place(&c, s.addresses[0], &lan(), "kube-lb0", &NO_NEEDS);
        assert_eq!(p.unheld.as_deref(), Some("no ready endpoints"));
        c.withdraw_without_endpoints = false;
        let p = place(&c, s.addresses[0], &lan(), "kube-lb0", &NO_NEEDS);
        assert_eq!(
            p.unheld.as_deref(),
            Some("no live node has a subnet holding 192.0.2.1 (local pool nowhere)")
        );
    }
}
