//! The election as one node needs it (pure): which of each Service's addresses this node
//! holds, whether any node holds one, and, when none does, which node reports why. It equals
//! the full election ([`super::elect_each`]) projected onto the node ([`NodeView::of`]; a
//! property test holds them equal) without its cost at scale: the full election ranks every
//! announcing node for every routed address (5,000 hashes and a sort per address in a cluster
//! of 5,000) and scans every member's subnets for every local one. Here a routed address costs
//! a lookup, a local one the ranks of the nodes on its subnets, found through an index, and
//! the reporter is ranked only for the Services nobody holds.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

use super::{Candidate, Decision, Member, Needs, local_sharers, rank};
use crate::api::PoolMode;
use crate::ipam::ServiceKey;

/// One Service's election, as one node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    pub key: ServiceKey,
    /// The addresses this node holds, each with its interface.
    pub here: Vec<(IpAddr, String)>,
    /// Whether any node holds any of the Service's addresses.
    pub announced: bool,
    /// Why addresses are not held, if some are not ([`Decision::unheld_reason`]).
    pub unheld: Option<String>,
    /// When nobody holds any address: the node that reports why.
    pub reporter: Option<String>,
}

impl NodeView {
    /// The full election's decision as `node` sees it.
    pub fn of(d: &Decision, node: &str) -> NodeView {
        let here = d
            .placements
            .iter()
            .filter_map(|p| {
                let h = p.holders.iter().find(|h| h.node == node)?;
                Some((p.address, h.interface.clone()))
            })
            .collect();
        let announced = d.placements.iter().any(|p| !p.holders.is_empty());
        NodeView {
            key: d.key.clone(),
            here,
            announced,
            unheld: d.unheld_reason(),
            reporter: if announced { None } else { d.reporter.clone() },
        }
    }

    pub fn held(&self) -> bool {
        !self.here.is_empty()
    }
}

/// [`super::elect_each`] as `node` sees it: one view per candidate, in order.
pub fn elect_for<'m>(
    node: &str,
    candidates: &[Candidate],
    members_for: impl Fn(&Candidate) -> &'m [Member],
    lb_interface: &str,
) -> Vec<NodeView> {
    let local = local_sharers(candidates);
    // One index per distinct member list (all members, and fast failover's view).
    let mut indexes: HashMap<*const Member, Index<'m>> = HashMap::new();
    candidates
        .iter()
        .map(|c| {
            let members = members_for(c);
            let index = indexes
                .entry(members.as_ptr())
                .or_insert_with(|| Index::new(members));
            view(node, c, index, lb_interface, |a| Needs {
                endpoints_of: local.get(&a).map_or(&[], Vec::as_slice),
            })
        })
        .collect()
}

/// A member having a subnet: its index, the subnet's position among its subnets, and the
/// interface carrying it.
type OnSubnet<'m> = (usize, usize, &'m str);

/// The live members, indexed for the questions the election asks.
struct Index<'m> {
    members: &'m [Member],
    by_node: HashMap<&'m str, &'m Member>,
    /// Each distinct subnet, with the members having it.
    subnets: Vec<(IpNet, Vec<OnSubnet<'m>>)>,
    /// Per routed pool, how many members announce it.
    announcing: HashMap<&'m str, usize>,
}

impl<'m> Index<'m> {
    fn new(members: &'m [Member]) -> Index<'m> {
        let mut by_subnet: HashMap<IpNet, Vec<OnSubnet<'m>>> = HashMap::new();
        let mut announcing: HashMap<&str, usize> = HashMap::new();
        for (i, m) in members.iter().enumerate() {
            for (pos, (iface, subnet)) in m.subnets.iter().enumerate() {
                by_subnet
                    .entry(*subnet)
                    .or_default()
                    .push((i, pos, iface.as_str()));
            }
            for p in &m.routed_pools {
                *announcing.entry(p.as_str()).or_default() += 1;
            }
        }
        Index {
            members,
            by_node: members.iter().map(|m| (m.node.as_str(), m)).collect(),
            subnets: by_subnet.into_iter().collect(),
            announcing,
        }
    }

    /// The members with a subnet holding `address`, each with the interface of its first such
    /// subnet, as the full election finds them.
    fn able(&self, address: IpAddr) -> Vec<(&'m Member, &'m str)> {
        let mut first: HashMap<usize, (usize, &'m str)> = HashMap::new();
        for (subnet, holders) in &self.subnets {
            if !subnet.contains(&address) {
                continue;
            }
            for &(i, pos, iface) in holders {
                let e = first.entry(i).or_insert((pos, iface));
                if pos < e.0 {
                    *e = (pos, iface);
                }
            }
        }
        first
            .into_iter()
            .map(|(i, (_, iface))| (&self.members[i], iface))
            .collect()
    }
}

/// The best-ranked of `members` for `subject`: highest rank, ties to the smallest name, as
/// [`super::ranked`] orders them.
fn best<'a>(members: impl Iterator<Item = &'a Member>, subject: &str) -> Option<&'a Member> {
    members.min_by_key(|m| (std::cmp::Reverse(rank(&m.node, subject)), m.node.as_str()))
}

fn view<'n>(
    node: &str,
    c: &Candidate,
    index: &Index,
    lb_interface: &str,
    needs_of: impl Fn(IpAddr) -> Needs<'n>,
) -> NodeView {
    let mut here = Vec::new();
    let mut announced = false;
    let mut reasons = BTreeSet::new();
    for &address in &c.service.addresses {
        let needs = needs_of(address);
        let held = if c.withdraw_without_endpoints && !c.endpoints.any {
            Err("no ready endpoints".to_string())
        } else {
            match c.mode {
                PoolMode::Local => local(c, node, address, index, &needs),
                PoolMode::Routed => routed(c, node, address, index, lb_interface, &needs),
            }
        };
        match held {
            Ok(mine) => {
                announced = true;
                here.extend(mine.map(|iface| (address, iface)));
            }
            Err(why) => {
                reasons.insert(why);
            }
        }
    }
    let reporter = (!announced)
        .then(|| best(index.members.iter(), &c.service.key.to_string()))
        .flatten()
        .map(|m| m.node.clone());
    NodeView {
        key: c.service.key.clone(),
        here,
        announced,
        unheld: (!reasons.is_empty()).then(|| reasons.into_iter().collect::<Vec<_>>().join("; ")),
        reporter,
    }
}

/// A local address: held by someone (and here, with this interface, if this node wins), or
/// why nobody holds it.
fn local(
    c: &Candidate,
    node: &str,
    address: IpAddr,
    index: &Index,
    needs: &Needs,
) -> Result<Option<String>, String> {
    let able = index.able(address);
    if able.is_empty() {
        return Err(format!(
            "no live node has a subnet holding {address} (local pool {})",
            c.service.pool
        ));
    }
    // Ranked by the address, not the service: Services sharing it elect the same holder.
    let winner = best(
        able.iter().map(|(m, _)| *m).filter(|m| needs.met_by(m)),
        &address.to_string(),
    )
    .ok_or_else(|| needs.unmet(address, &format!("node on the subnet of {address}")))?;
    Ok((winner.node == node)
        .then(|| able.iter().find(|(m, _)| m.node == node))
        .flatten()
        .map(|(_, iface)| iface.to_string()))
}

/// A routed address: held by every live node announcing its pool that meets the needs.
fn routed(
    c: &Candidate,
    node: &str,
    address: IpAddr,
    index: &Index,
    lb_interface: &str,
    needs: &Needs,
) -> Result<Option<String>, String> {
    let pool = c.service.pool.as_str();
    if index.announcing.get(pool).copied().unwrap_or(0) == 0 {
        return Err(format!(
            "no live node announces pool {pool} (no RoutingPolicy selects it for any node)"
        ));
    }
    let holds = |m: &Member| m.routed_pools.contains(pool) && needs.met_by(m);
    let anyone = match needs.endpoints_of.first() {
        // Only nodes with an endpoint of the first sharer can meet the needs.
        Some(first) => first
            .nodes
            .iter()
            .filter_map(|n| index.by_node.get(n.as_str()))
            .any(|m| holds(m)),
        None => true,
    };
    if !anyone {
        return Err(needs.unmet(address, "node announcing the pool"));
    }
    let here = index.by_node.get(node).is_some_and(|m| holds(m));
    Ok(here.then(|| lb_interface.to_string()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::election::{Readiness, elect_each};
    use crate::service::ServiceAddresses;

    const NODES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
    const SUBNETS: [(&str, &str); 4] = [
        ("eth0", "10.0.0.0/24"),
        ("eth1", "10.0.0.0/16"),
        ("eth2", "10.1.0.0/24"),
        ("eth0", "fd00::/64"),
    ];
    const ADDRESSES: [&str; 5] = ["10.0.0.7", "10.0.9.7", "10.1.0.7", "fd00::7", "192.0.2.7"];

    fn arb_members() -> impl Strategy<Value = Vec<Member>> {
        prop::collection::vec(
            (
                prop::sample::subsequence(&SUBNETS[..], 0..=3),
                prop::sample::subsequence(&["r1", "r2"][..], 0..=2),
            ),
            NODES.len(),
        )
        .prop_flat_map(|specs| {
            (Just(specs), prop::sample::subsequence(&NODES[..], 0..=6)).prop_map(
                |(specs, alive)| {
                    alive
                        .iter()
                        .zip(specs)
                        .map(|(n, (subnets, pools))| Member {
                            node: n.to_string(),
                            subnets: subnets
                                .iter()
                                .map(|(i, s)| (i.to_string(), s.parse().unwrap()))
                                .collect(),
                            routed_pools: pools.iter().map(|p| p.to_string()).collect(),
                            ..Default::default()
                        })
                        .collect()
                },
            )
        })
    }

    /// (service index, pool, mode, addresses, local traffic, withdraw, ready nodes, any).
    type Spec = (
        usize,
        &'static str,
        bool,
        Vec<&'static str>,
        bool,
        bool,
        Vec<&'static str>,
        bool,
    );

    fn arb_services() -> impl Strategy<Value = Vec<Spec>> {
        prop::collection::vec(
            (
                0..20usize,
                prop::sample::select(&["r1", "r2", "r3"][..]),
                any::<bool>(),
                prop::sample::subsequence(&ADDRESSES[..], 1..=2),
                any::<bool>(),
                prop::bool::weighted(0.2),
                prop::sample::subsequence(&NODES[..], 0..=4),
                any::<bool>(),
            ),
            0..12,
        )
    }

    proptest! {
        /// The node's view equals the full election projected onto the node, for every node
        /// (members or not), whatever the members, modes, sharing and endpoints.
        #[test]
        fn a_node_s_view_is_the_full_election_projected(
            members in arb_members(),
            specs in arb_services(),
        ) {
            let services: Vec<(ServiceAddresses, PoolMode, bool, bool, Readiness)> = specs
                .iter()
                .map(|(i, pool, local, addrs, lt, wd, ready, any)| {
                    let svc = ServiceAddresses {
                        key: ServiceKey::new("ns", format!("s{i}")),
                        pool: pool.to_string(),
                        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
                        attributes: Default::default(),
                        admitted: true,
                    };
                    let mode = if *local { PoolMode::Local } else { PoolMode::Routed };
                    let r = Readiness {
                        nodes: ready.iter().map(|n| n.to_string()).collect(),
                        any: *any || !ready.is_empty(),
                        ..Default::default()
                    };
                    (svc, mode, *lt, *wd, r)
                })
                .collect();
            let candidates: Vec<Candidate> = services
                .iter()
                .map(|(svc, mode, lt, wd, r)| Candidate {
                    service: svc,
                    mode: *mode,
                    local_traffic: *lt,
                    withdraw_without_endpoints: *wd,
                    endpoints: r,
                })
                .collect();
            let full = elect_each(&candidates, |_| &members[..], "kube-lb0");
            for node in NODES.iter().chain(&["stranger"]) {
                let projected: Vec<NodeView> = full.iter().map(|d| NodeView::of(d, node)).collect();
                let direct = elect_for(node, &candidates, |_| &members[..], "kube-lb0");
                prop_assert_eq!(direct, projected, "node {}", node);
            }
        }
    }
}
