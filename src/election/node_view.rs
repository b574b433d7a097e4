//! The election as one node needs it (pure): which of each Service's addresses this node
//! holds, whether any node holds one, and, when none does, which node reports why. It equals
//! the full election ([`super::elect_each`]) projected onto the node ([`NodeView::of`]; a
//! property test holds them equal) without its cost at scale: the full election ranks every
//! announcing node for every routed address (5,000 hashes and a sort per address in a cluster
//! of 5,000) and scans every member's subnets for every local one. Here a routed address costs
//! a lookup, a local one the ranks of the nodes on its subnets, found through an index, and
//! the reporter is ranked only for the Services nobody holds.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::ranks::Ranks;
use super::{Candidate, Member, Needs, local_sharers, rank};
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
    /// The full election's decision as `node` sees it: the oracle of the property test.
    #[cfg(test)]
    pub fn of(d: &super::Decision, node: &str) -> NodeView {
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

/// Local addresses' ranks kept across elections ([`Ranks`]), valid for one member list: the
/// elections among other lists (fast failover's view) rank afresh.
pub struct Kept<'a> {
    pub members: &'a [Member],
    pub ranks: &'a mut Ranks,
}

/// [`super::elect_each`] as `node` sees it: one view per candidate, in order.
pub fn elect_for<'m>(
    node: &str,
    candidates: &[Candidate],
    members_for: impl Fn(&Candidate) -> &'m [Member],
    lb_interface: &str,
    mut kept: Option<Kept>,
) -> Vec<NodeView> {
    let local = local_sharers(candidates);
    if let Some(k) = kept.as_mut() {
        k.ranks.update(k.members);
    }
    // One index per distinct member list (all members, and fast failover's view).
    let mut indexes: HashMap<*const Member, Index<'m>> = HashMap::new();
    let mut ranked: HashSet<IpAddr> = HashSet::new();
    let views = candidates
        .iter()
        .map(|c| {
            let members = members_for(c);
            let index = indexes
                .entry(members.as_ptr())
                .or_insert_with(|| Index::new(members));
            let ranks = kept
                .as_mut()
                .filter(|k| k.members.as_ptr() == members.as_ptr())
                .map(|k| &mut *k.ranks);
            if ranks.is_some() && c.mode == PoolMode::Local {
                ranked.extend(&c.service.addresses);
            }
            let ask = Ask {
                node,
                index,
                lb_interface,
            };
            view(&ask, c, ranks, |a| Needs {
                endpoints_of: local.get(&a).map_or(&[], Vec::as_slice),
            })
        })
        .collect();
    if let Some(k) = kept {
        k.ranks.keep_only(&ranked);
    }
    views
}

/// What every address's election looks at.
struct Ask<'a, 'm> {
    node: &'a str,
    index: &'a Index<'m>,
    lb_interface: &'a str,
}

/// The live members, indexed for the questions the election asks.
struct Index<'m> {
    members: &'m [Member],
    by_node: HashMap<&'m str, &'m Member>,
    /// Each distinct subnet (truncated), with the members having it (indexes into
    /// `members`).
    subnets: HashMap<IpNet, Vec<usize>>,
    /// The prefix lengths of those subnets: an address's subnets are found by masking it to
    /// each, not by testing every subnet.
    lengths: BTreeSet<(bool, u8)>,
    /// Per routed pool, how many members announce it.
    announcing: HashMap<&'m str, usize>,
}

impl<'m> Index<'m> {
    fn new(members: &'m [Member]) -> Index<'m> {
        let mut by_subnet: HashMap<IpNet, Vec<usize>> = HashMap::new();
        let mut announcing: HashMap<&str, usize> = HashMap::new();
        for (i, m) in members.iter().enumerate() {
            for (_, subnet) in &m.subnets {
                by_subnet.entry(subnet.trunc()).or_default().push(i);
            }
            for p in &m.routed_pools {
                *announcing.entry(p.as_str()).or_default() += 1;
            }
        }
        Index {
            members,
            by_node: members.iter().map(|m| (m.node.as_str(), m)).collect(),
            lengths: by_subnet
                .keys()
                .map(|n| (n.addr().is_ipv4(), n.prefix_len()))
                .collect(),
            subnets: by_subnet,
            announcing,
        }
    }

    /// The members of each subnet holding `address`.
    fn holding(&self, address: IpAddr) -> impl Iterator<Item = &Vec<usize>> {
        self.lengths
            .iter()
            .filter(move |(v4, _)| *v4 == address.is_ipv4())
            .filter_map(move |(_, len)| {
                let net = IpNet::new(address, *len).ok()?.trunc();
                self.subnets.get(&net)
            })
    }

    /// Whether some member has a subnet holding `address`.
    fn has_able(&self, address: IpAddr) -> bool {
        self.holding(address).any(|holders| !holders.is_empty())
    }

    /// The members with a subnet holding `address`, each once.
    fn able(&self, address: IpAddr) -> Vec<&'m Member> {
        let mut seen = HashSet::new();
        self.holding(address)
            .flat_map(|holders| holders.iter().copied())
            .filter(|i| seen.insert(*i))
            .map(|i| &self.members[i])
            .collect()
    }
}

/// The best-ranked of `members` for `subject`: highest rank, ties to the smallest name, as
/// [`super::ranked`] orders them.
fn best<'a>(members: impl Iterator<Item = &'a Member>, subject: &str) -> Option<&'a Member> {
    members.min_by_key(|m| (std::cmp::Reverse(rank(&m.node, subject)), m.node.as_str()))
}

fn view<'n>(
    ask: &Ask,
    c: &Candidate,
    mut ranks: Option<&mut Ranks>,
    needs_of: impl Fn(IpAddr) -> Needs<'n>,
) -> NodeView {
    let (node, index) = (ask.node, ask.index);
    let mut here = Vec::new();
    let mut announced = false;
    let mut reasons = BTreeSet::new();
    for &address in &c.service.addresses {
        let needs = needs_of(address);
        let held = if c.withdraw_without_endpoints && !c.endpoints.any {
            Err("no ready endpoints".to_string())
        } else {
            match c.mode {
                PoolMode::Local => local(c, node, address, index, ranks.as_deref_mut(), &needs),
                PoolMode::Routed => routed(c, node, address, index, ask.lb_interface, &needs),
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
    ranks: Option<&mut Ranks>,
    needs: &Needs,
) -> Result<Option<String>, String> {
    if !index.has_able(address) {
        return Err(format!(
            "no live node has a subnet holding {address} (local pool {})",
            c.service.pool
        ));
    }
    let meets = |n: &str| index.by_node.get(n).is_some_and(|m| needs.met_by(m));
    // The kept ranks, when they name the winner: the first kept node meeting the needs.
    let kept = ranks.and_then(|r| {
        let (first, complete) = r.best(address, || index.able(address));
        match first.iter().find(|(_, n)| meets(n)) {
            Some((_, n)) => Some(Some(n.clone())),
            None => complete.then_some(None),
        }
    });
    // Ranked by the address, not the service: Services sharing it elect the same holder.
    let winner = match kept {
        Some(w) => w,
        None => best(
            index.able(address).into_iter().filter(|m| needs.met_by(m)),
            &address.to_string(),
        )
        .map(|m| m.node.clone()),
    }
    .ok_or_else(|| needs.unmet(address, &format!("node on the subnet of {address}")))?;
    // This node's interface: that of its first subnet holding the address.
    Ok((winner == node)
        .then(|| index.by_node.get(node))
        .flatten()
        .and_then(|m| m.subnets.iter().find(|(_, s)| s.contains(&address)))
        .map(|(iface, _)| iface.clone()))
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
    use crate::election::tests::member;
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
                        .map(|(n, (subnets, pools))| member(n, &subnets, &pools))
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
            passes in prop::collection::vec(arb_members(), 1..5),
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
            // Each node keeps its ranks from pass to pass, as its agent does, while members
            // come and go and change subnets.
            let mut kept: HashMap<&str, Ranks> = HashMap::new();
            for (pass, members) in passes.iter().enumerate() {
                let full = elect_each(&candidates, |_| &members[..], "kube-lb0");
                for node in NODES.iter().chain(&["stranger"]) {
                    let projected: Vec<NodeView> =
                        full.iter().map(|d| NodeView::of(d, node)).collect();
                    let fresh = elect_for(node, &candidates, |_| &members[..], "kube-lb0", None);
                    prop_assert_eq!(&fresh, &projected, "node {}, pass {}", node, pass);
                    let ranks = kept.entry(node).or_default();
                    let with_kept = elect_for(
                        node,
                        &candidates,
                        |_| &members[..],
                        "kube-lb0",
                        Some(Kept { members, ranks }),
                    );
                    prop_assert_eq!(&with_kept, &projected, "node {}, pass {} (kept ranks)", node, pass);
                }
            }
        }
    }
}
