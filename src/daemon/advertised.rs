//! What really leaves the node (pure): the daemon's own answers — FRR's per-neighbor
//! advertised routes and self-originated external LSAs, BIRD's `show route export` — parsed
//! into [`Exit`]s, and the verdict on this node's prefixes: which peer gets which, which
//! reach no peer, and why (the outbound filter in the way). The queries themselves are in
//! [`super::observe`].

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use serde_json::Value;

use crate::render::model::{FragmentData, PrefixList, Target};
use crate::status::EventSpec;

/// How many missing prefixes a peer's report names; the counts cover the rest.
pub const NAMED_MISSING: usize = 5;

pub use crate::family::Family;

/// The routing protocols routelb exports through (the targets of [`FragmentData`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    Bgp,
    Ospf,
    Isis,
    Rip,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Bgp => "bgp",
            Protocol::Ospf => "ospf",
            Protocol::Isis => "isis",
            Protocol::Rip => "rip",
        }
    }
}

/// One way out of the node for one family: a BGP neighbor, an OSPF process's external
/// LSAs, an IS-IS LSP, a RIP process, a BIRD protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    pub protocol: Protocol,
    pub vrf: Option<String>,
    /// `neighbor 10.0.0.2`, `neighbor eth0 (peer-group FABRIC)`, `router ospf`, `protocol rtr4`.
    pub name: String,
    pub family: Family,
    /// A BGP session that is not Established advertises nothing, through no filter's fault.
    pub up: bool,
    pub advertised: BTreeSet<IpNet>,
    /// The outbound filters towards this exit, as configured: `route-map peer-out`.
    pub filters: Vec<String>,
}

/// This node's prefixes each protocol (and BGP VRF) should carry, from the fragment's targets.
pub type Expected = BTreeMap<(Protocol, Option<String>), BTreeSet<IpNet>>;

/// The prefixes of `node` (the load-balancer interface's) that the fragment exports through
/// each of its targets.
pub fn expected(data: &FragmentData, node: &BTreeSet<IpNet>) -> Expected {
    let targets = data
        .bgp
        .iter()
        .map(|t| (Protocol::Bgp, t))
        .chain(data.ospf.iter().map(|t| (Protocol::Ospf, t)))
        .chain(data.isis.iter().map(|t| (Protocol::Isis, t)))
        .chain(data.rip.iter().map(|t| (Protocol::Rip, t)));
    let mut out = Expected::new();
    for (protocol, t) in targets {
        let covered: BTreeSet<IpNet> = node
            .iter()
            .filter(|n| exports(t, &data.prefix_lists, n))
            .copied()
            .collect();
        if !covered.is_empty() {
            out.entry((protocol, t.vrf.clone()))
                .or_default()
                .extend(covered);
        }
    }
    out
}

/// Whether a target's entries match `net`.
fn exports(t: &Target, lists: &[PrefixList], net: &IpNet) -> bool {
    let v4 = matches!(net, IpNet::V4(_));
    if (v4 && !t.v4) || (!v4 && !t.v6) {
        return false;
    }
    t.entries.iter().any(|e| {
        lists
            .iter()
            .filter(|l| l.frr_name == e.frr_list)
            .flat_map(|l| if v4 { &l.v4 } else { &l.v6 })
            .any(|m| {
                m.prefix.parse::<IpNet>().is_ok_and(|p| p.contains(net))
                    && (m.min_len..=m.max_len).contains(&net.prefix_len())
            })
    })
}

/// One exit's share of the verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerReport {
    pub exit: Exit,
    pub advertised: usize,
    pub missing: BTreeSet<IpNet>,
}

/// The condition `Advertised`, as (status, reason, message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    pub peers: Vec<PeerReport>,
    /// Prefixes that reach no peer, with why.
    pub unadvertised: BTreeMap<IpNet, String>,
    pub verdict: Verdict,
}

/// `expected` without the protocols that could not be asked about.
pub fn only_verified(expected: Expected, unverified: &BTreeSet<Protocol>) -> Expected {
    expected
        .into_iter()
        .filter(|((p, _), _)| !unverified.contains(p))
        .collect()
}

/// `expected` without `prefixes` (not judged this time).
pub fn without(expected: &Expected, prefixes: &BTreeSet<IpNet>) -> Expected {
    expected
        .iter()
        .map(|(k, v)| (k.clone(), v.difference(prefixes).copied().collect()))
        .filter(|(_, v): &(_, BTreeSet<IpNet>)| !v.is_empty())
        .collect()
}

/// Every expected prefix some exit of its protocol and family does not advertise (or that has
/// no exit at all): what a verification would call missing.
pub fn missing(expected: &Expected, exits: &[Exit]) -> BTreeSet<IpNet> {
    let mut out = BTreeSet::new();
    for ((protocol, vrf), prefixes) in expected {
        for p in prefixes {
            let mut ways = exits_for(exits, *protocol, vrf, Family::of(p)).peekable();
            if ways.peek().is_none() {
                out.insert(*p);
            }
            if ways.any(|e| !e.up || !e.advertised.contains(p)) {
                out.insert(*p);
            }
        }
    }
    out
}

fn exits_for<'a>(
    exits: &'a [Exit],
    protocol: Protocol,
    vrf: &'a Option<String>,
    family: Family,
) -> impl Iterator<Item = &'a Exit> + 'a {
    exits
        .iter()
        .filter(move |e| e.protocol == protocol && &e.vrf == vrf && e.family == family)
}

/// The verdict on `expected` given what the exits advertise. A prefix is advertised when at
/// least one up exit of its protocol and family carries it; the condition is False as soon
/// as one up exit misses one (a second uplink that drops the Services is half the redundancy
/// gone), naming the exit and its outbound filter.
pub fn verify(expected: &Expected, exits: &[Exit]) -> Verification {
    let mut peers = vec![];
    let mut unadvertised = BTreeMap::new();
    let mut no_peer = vec![];
    for ((protocol, vrf), prefixes) in expected {
        for family in [Family::V4, Family::V6] {
            let wanted: BTreeSet<IpNet> = prefixes
                .iter()
                .filter(|p| Family::of(p) == family)
                .copied()
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let reports: Vec<PeerReport> = exits_for(exits, *protocol, vrf, family)
                .map(|e| report(e, &wanted))
                .collect();
            let up = reports.iter().filter(|r| r.exit.up).count();
            if up == 0 {
                no_peer.push(where_(*protocol, vrf, family));
            }
            for p in &wanted {
                let reached = reports
                    .iter()
                    .any(|r| r.exit.up && r.exit.advertised.contains(p));
                if !reached {
                    unadvertised.insert(*p, why_missing(&reports, p, *protocol, vrf, family));
                }
            }
            peers.extend(reports);
        }
    }
    let verdict = verdict(&peers, &no_peer, expected);
    Verification {
        peers,
        unadvertised,
        verdict,
    }
}

fn report(e: &Exit, wanted: &BTreeSet<IpNet>) -> PeerReport {
    let missing: BTreeSet<IpNet> = wanted.difference(&e.advertised).copied().collect();
    PeerReport {
        exit: e.clone(),
        advertised: wanted.len() - missing.len(),
        missing,
    }
}

fn where_(protocol: Protocol, vrf: &Option<String>, family: Family) -> String {
    match vrf {
        Some(v) => format!("{} vrf {v} {}", protocol.name(), family.name()),
        None => format!("{} {}", protocol.name(), family.name()),
    }
}

/// Why `p` reaches no exit: the first up exit's filter, else that none is up.
fn why_missing(
    reports: &[PeerReport],
    p: &IpNet,
    protocol: Protocol,
    vrf: &Option<String>,
    family: Family,
) -> String {
    match reports.iter().find(|r| r.exit.up) {
        Some(r) => problem(&r.exit, std::slice::from_ref(p), 1).1,
        None => format!("no {} peer is up", where_(protocol, vrf, family)),
    }
}

/// (reason, message) for an up exit that misses `prefixes` (of which `count` in all).
fn problem(e: &Exit, prefixes: &[IpNet], count: usize) -> (&'static str, String) {
    let named: Vec<String> = prefixes.iter().map(IpNet::to_string).collect();
    let mut list = named.join(", ");
    if count > prefixes.len() {
        list.push_str(&format!(" and {} more", count - prefixes.len()));
    }
    let vrf = e
        .vrf
        .as_ref()
        .map(|v| format!(" (vrf {v})"))
        .unwrap_or_default();
    if e.filters.is_empty() {
        (
            "NotAdvertised",
            format!("{}{vrf} does not get {list}", e.name),
        )
    } else {
        (
            "FilteredByPeerPolicy",
            format!("{}{vrf} {} denies {list}", e.name, e.filters.join(", ")),
        )
    }
}

fn verdict(peers: &[PeerReport], no_peer: &[String], expected: &Expected) -> Verdict {
    let mut problems: Vec<(&'static str, String)> = peers
        .iter()
        .filter(|r| r.exit.up && !r.missing.is_empty())
        .map(|r| {
            let named: Vec<IpNet> = r.missing.iter().take(NAMED_MISSING).copied().collect();
            problem(&r.exit, &named, r.missing.len())
        })
        .collect();
    // A filter explains more than a bare absence: it comes first.
    problems.sort_by_key(|(reason, _)| *reason != "FilteredByPeerPolicy");
    problems.extend(
        no_peer
            .iter()
            .map(|w| ("NoPeer", format!("no {w} peer is up to advertise to"))),
    );
    if let Some((reason, _)) = problems.first() {
        let message: Vec<&str> = problems.iter().take(3).map(|(_, m)| m.as_str()).collect();
        let mut message = message.join("; ");
        if problems.len() > 3 {
            message.push_str(&format!("; and {} more", problems.len() - 3));
        }
        return Verdict {
            ok: false,
            reason,
            message,
        };
    }
    let prefixes: BTreeSet<&IpNet> = expected.values().flatten().collect();
    let up = peers.iter().filter(|r| r.exit.up).count();
    Verdict {
        ok: true,
        reason: "Advertised",
        message: if prefixes.is_empty() {
            "no routed prefix to advertise".into()
        } else {
            format!(
                "every one of {} prefixes reaches every peer ({up} up)",
                prefixes.len()
            )
        },
    }
}

/// The Event when the `Advertised` verdict changes (status or reason); the first verdict
/// is told only when it is bad.
pub fn event(before: Option<&Verdict>, now: &Verdict) -> Option<EventSpec> {
    let same = |b: &Verdict| (b.ok, b.reason) == (now.ok, now.reason);
    if before.is_some_and(same) || (before.is_none() && now.ok) {
        return None;
    }
    Some(EventSpec {
        warning: !now.ok,
        reason: now.reason,
        note: if now.ok {
            format!("every prefix reaches its peers again: {}", now.message)
        } else {
            now.message.clone()
        },
    })
}

/// A BGP neighbor as `show bgp vrf all neighbors json` describes it: per family it is active
/// in, its outbound filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpNeighbor {
    pub vrf: Option<String>,
    /// The neighbor as configured: an address, or an interface for an unnumbered session.
    pub neighbor: String,
    pub peer_group: Option<String>,
    pub established: bool,
    pub families: Vec<BgpFamily>,
}

/// A neighbor's share of one address family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpFamily {
    pub family: Family,
    /// The outbound filters, described (`route-map FABRIC-OUT`).
    pub filters: Vec<String>,
    /// Its update group and subgroup: neighbors in one subgroup get the same routes.
    pub subgroup: Option<(u64, u64)>,
}

impl BgpNeighbor {
    /// `neighbor eth0 (peer-group FABRIC)`.
    pub fn label(&self) -> String {
        match &self.peer_group {
            Some(g) => format!("neighbor {} (peer-group {g})", self.neighbor),
            None => format!("neighbor {}", self.neighbor),
        }
    }
}

/// The neighbors in `show bgp vrf all neighbors json`.
pub fn parse_bgp_neighbors(json: &str) -> Result<Vec<BgpNeighbor>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("bgp neighbors: {e}"))?;
    let mut out = vec![];
    for (vrf, peers) in v.as_object().into_iter().flatten() {
        let vrf = (vrf != "default").then(|| vrf.clone());
        for (name, p) in peers.as_object().into_iter().flatten() {
            if !p.is_object() {
                continue; // vrfId, vrfName
            }
            out.push(BgpNeighbor {
                vrf: vrf.clone(),
                neighbor: name.clone(),
                peer_group: p["peerGroup"].as_str().map(str::to_string),
                established: p["bgpState"] == "Established",
                families: neighbor_families(&p["addressFamilyInfo"]),
            });
        }
    }
    Ok(out)
}

/// The unicast families a neighbor is active in, with the outbound filters of each.
fn neighbor_families(afi: &Value) -> Vec<BgpFamily> {
    const FILTERS: [(&str, &str); 4] = [
        ("routeMapForOutgoingAdvertisements", "route-map"),
        ("outgoingUpdatePrefixFilterList", "prefix-list"),
        ("outgoingUpdateNetworkFilterList", "distribute-list"),
        ("outgoingUpdateAsPathFilterList", "filter-list"),
    ];
    [("ipv4Unicast", Family::V4), ("ipv6Unicast", Family::V6)]
        .into_iter()
        .filter_map(|(key, family)| {
            let info = afi.get(key)?;
            let mut filters: Vec<String> = FILTERS
                .iter()
                .filter_map(|(field, kind)| {
                    let name = info[*field].as_str()?;
                    // An unconfigured filter is shown with a leading `*`.
                    Some(format!("{kind} {}", name.trim_start_matches('*')))
                })
                .collect();
            // FRR's default for eBGP: nothing goes out without an outbound policy.
            if info.get("outboundEbgpRequiresPolicy").is_some() {
                filters.push("bgp ebgp-requires-policy (no outbound policy)".into());
            }
            let subgroup = info["updateGroupId"]
                .as_u64()
                .zip(info["subGroupId"].as_u64());
            Some(BgpFamily {
                family,
                filters,
                subgroup,
            })
        })
        .collect()
}

/// Per update group and subgroup, the prefixes in `show bgp [vrf X] ipv4|ipv6 unicast
/// update-groups advertised-routes`: one answer for every neighbor of a subgroup, and a
/// fifth of the per-neighbor JSON's cost in bgpd (see docs/agent.md).
pub fn parse_bgp_update_groups(text: &str) -> BTreeMap<(u64, u64), BTreeSet<IpNet>> {
    let mut out: BTreeMap<(u64, u64), BTreeSet<IpNet>> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("update group ") {
            current = rest
                .split_once(", subgroup ")
                .and_then(|(g, s)| Some((g.trim().parse().ok()?, s.trim().parse().ok()?)));
            if let Some(k) = current {
                out.entry(k).or_default();
            }
            continue;
        }
        // A route: status codes (`*>`, `*=`, `s>`…) then the network, which may stand
        // alone on its line when it is long (the next hop wraps).
        let Some(k) = current else { continue };
        let mut words = line.split_whitespace();
        let (Some(codes), Some(net)) = (words.next(), words.next()) else {
            continue;
        };
        if (codes.contains('>') || codes.contains('=') || codes.contains('*'))
            && let Ok(net) = net.parse()
        {
            out.entry(k).or_default().insert(net);
        }
    }
    out
}

/// The prefixes in `show bgp … neighbors P advertised-routes json`.
pub fn parse_bgp_advertised(json: &str) -> Result<BTreeSet<IpNet>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("bgp advertised-routes: {e}"))?;
    Ok(v["advertisedRoutes"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.parse().ok())
        .collect())
}

/// The prefixes of this router's live AS-external LSAs in `show ip ospf database external
/// self-originate json` (a flushed LSA stays a while at MaxAge: it advertises nothing).
pub fn parse_ospf_external(json: &str) -> Result<BTreeSet<IpNet>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("ospf external LSAs: {e}"))?;
    Ok(v["AS External Link States"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, lsa)| lsa["lsaAge"].as_u64().is_some_and(|a| a < 3600))
        .filter_map(|(_, lsa)| {
            let id = lsa["linkStateId"].as_str()?;
            let len = lsa["networkMask"].as_u64()?;
            format!("{id}/{len}").parse().ok()
        })
        .collect())
}

/// The prefixes of the live LSAs in `show ipv6 ospf6 database as-external self-originated
/// json`.
pub fn parse_ospf6_external(json: &str) -> Result<BTreeSet<IpNet>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("ospf6 external LSAs: {e}"))?;
    Ok(v["asScopedLinkStateDb"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|db| db["lsa"].as_array().into_iter().flatten())
        .filter(|lsa| lsa["age"].as_u64().is_some_and(|a| a < 3600))
        .filter_map(|lsa| lsa["payload"].as_str()?.parse().ok())
        .collect())
}

/// The `distribute-list NAME out connected` lines of `router ospf` (or `router ospf vrf X`)
/// in a running configuration, as filter descriptions.
pub fn ospf_distribute_lists(running: &str, router: &str) -> Vec<String> {
    let mut inside = false;
    let mut out = vec![];
    for line in running.lines() {
        if !line.starts_with(' ') {
            inside = line.trim() == router;
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if inside && matches!(words.as_slice(), ["distribute-list", _, "out", "connected"]) {
            out.push(format!("distribute-list {} out connected", words[1]));
        }
    }
    out
}

/// The routes in BIRD's `show route export <protocol>` (`show route … all` not needed): the
/// first word of each line that starts a route.
pub fn parse_bird_routes(text: &str) -> BTreeSet<IpNet> {
    text.lines()
        .filter(|l| !l.starts_with(char::is_whitespace))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// A BIRD protocol as `show protocols all` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BirdProtocol {
    pub name: String,
    pub protocol: Protocol,
    pub up: bool,
    /// The channels (`ipv4`, `ipv6`) with their export filter.
    pub channels: Vec<(Family, String)>,
}

/// The BGP, OSPF and RIP protocols in BIRD 2's `show protocols all`.
/// `family` is the daemon's family for BIRD 1.x, whose protocols have no channels (their
/// `Output filter:` is the protocol's own); `None` for BIRD 2.
pub fn parse_bird_protocols(text: &str, family: Option<Family>) -> Vec<BirdProtocol> {
    let mut out: Vec<BirdProtocol> = vec![];
    let mut channel: Option<Family> = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !line.starts_with(char::is_whitespace) {
            channel = family;
            let kind = match words.get(1).copied() {
                Some("BGP") => Some(Protocol::Bgp),
                Some("OSPF") => Some(Protocol::Ospf),
                Some("RIP") => Some(Protocol::Rip),
                _ => None,
            };
            if let (Some(protocol), Some(name)) = (kind, words.first()) {
                out.push(BirdProtocol {
                    name: name.to_string(),
                    protocol,
                    up: words.get(3) == Some(&"up"),
                    channels: vec![],
                });
            }
            continue;
        }
        match words.as_slice() {
            ["Channel", "ipv4"] => channel = Some(Family::V4),
            ["Channel", "ipv6"] => channel = Some(Family::V6),
            ["Channel", ..] => channel = None,
            ["Output", "filter:", filter @ ..] => {
                if let (Some(f), Some(p)) = (channel, out.last_mut()) {
                    p.channels.push((f, filter.join(" ")));
                }
            }
            _ => {}
        }
    }
    out
}

/// Per IS-IS area (`router isis TAG`), the prefixes this router's own LSPs (marked `*` in
/// `show isis database detail`) carry, by family.
pub fn parse_isis_own(text: &str) -> BTreeMap<String, BTreeSet<IpNet>> {
    let mut out: BTreeMap<String, BTreeSet<IpNet>> = BTreeMap::new();
    let (mut area, mut own) = (String::new(), false);
    for line in text.lines() {
        if let Some(a) = line.strip_prefix("Area ").and_then(|a| a.strip_suffix(':')) {
            area = a.to_string();
            continue;
        }
        if !line.starts_with(' ') {
            // An LSP header: `name.00-00   *   162 ...` for this router's own.
            own = line.split_whitespace().nth(1) == Some("*");
            continue;
        }
        let reach = line.split_once("Reachability: ").map(|(_, r)| r);
        if let (true, Some(r)) = (own, reach)
            && let Some(net) = r.split_whitespace().next().and_then(|n| n.parse().ok())
        {
            out.entry(area.clone()).or_default().insert(net);
        }
    }
    out
}

/// The redistributed routes (sub-code `(r)`) in `show ip rip` or `show ipv6 ripng`.
pub fn parse_rip_redistributed(text: &str) -> BTreeSet<IpNet> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let code = w.next()?;
            code.ends_with("(r)").then_some(())?;
            w.next()?.parse().ok()
        })
        .collect()
}

/// The outgoing distribute-lists in `show ip rip status` (`show ipv6 ripng status`): the one
/// for all interfaces and the per-interface ones, as (interface or `*`, list).
pub fn parse_rip_out_lists(status: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut outgoing = false;
    for line in status.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Outgoing update filter list for all interface is ") {
            outgoing = true;
            if rest != "not set" {
                out.push(("*".to_string(), rest.to_string()));
            }
        } else if t.starts_with("Incoming update filter list") {
            outgoing = false;
        } else if let (true, Some((iface, list))) = (outgoing, t.split_once(" filtered by ")) {
            if list != "nothing" {
                out.push((iface.to_string(), list.to_string()));
            }
        } else {
            outgoing = false;
        }
    }
    out
}

/// Whether the zebra-style access-list `name` (`access-list NAME [seq N] permit|deny
/// PREFIX [exact-match]|any`, `ipv6 access-list` alike) in `running` permits `net`. A list
/// that does not exist filters nothing, as in FRR; an existing one ends in an implicit deny.
pub fn access_list_permits(running: &str, name: &str, net: &IpNet) -> bool {
    let mut exists = false;
    for line in running.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let w: &[&str] = match w.as_slice() {
            ["ipv6", rest @ ..] => rest,
            all => all,
        };
        let w: Vec<&str> = match w {
            ["access-list", n, "seq", _, rest @ ..] if *n == name => rest.to_vec(),
            ["access-list", n, rest @ ..] if *n == name => rest.to_vec(),
            _ => continue,
        };
        exists = true;
        let matched = match w.as_slice() {
            [_, "any"] => true,
            [_, p, more @ ..] => p.parse::<IpNet>().is_ok_and(|p| {
                p.contains(net) && (more != ["exact-match"] || p.prefix_len() == net.prefix_len())
            }),
            _ => false,
        };
        if matched {
            return w[0] == "permit";
        }
    }
    !exists
}

/// What RIP/RIPng sends of its redistributed routes given its outgoing distribute-lists
/// (`(interface or *, list)`) and the access-lists in `running`: a route passes the list for
/// all interfaces, and at least one interface's own list when there are such. Also the
/// filters, described.
pub fn rip_sent(
    redistributed: &BTreeSet<IpNet>,
    lists: &[(String, String)],
    running: &str,
) -> (BTreeSet<IpNet>, Vec<String>) {
    let permits = |list: &str, n: &IpNet| access_list_permits(running, list, n);
    let per_iface: Vec<&(String, String)> = lists.iter().filter(|(i, _)| i != "*").collect();
    let sent = redistributed
        .iter()
        .filter(|n| {
            lists
                .iter()
                .filter(|(i, _)| i == "*")
                .all(|(_, l)| permits(l, n))
        })
        .filter(|n| per_iface.is_empty() || per_iface.iter().any(|(_, l)| permits(l, n)))
        .copied()
        .collect();
    let filters = lists
        .iter()
        .map(|(i, l)| match i.as_str() {
            "*" => format!("distribute-list {l} out"),
            _ => format!("distribute-list {l} out {i}"),
        })
        .collect();
    (sent, filters)
}

#[cfg(test)]
#[path = "advertised/tests.rs"]
mod tests;
