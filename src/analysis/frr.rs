//! FRR: would the base configuration drop routelb's prefixes on their way out? Reads the
//! filtering objects of a parsed configuration ([`crate::daemon::frr_config::parse`]) and
//! evaluates them against the prefixes routelb exports, as FRR 8.4 does:
//! - route-maps (lib/routemap.c `route_map_apply_ext`): entries in sequence order; a permit
//!   entry that matches permits, unless `on-match next`/`continue`/`goto` go on or a `call`ed
//!   route-map denies; a deny entry that matches denies; a route no entry matches is denied;
//!   a route-map that does not exist denies everything;
//! - prefix-lists (lib/plist.c): the first matching entry by sequence decides, none denies;
//!   an existing list without entries permits; applied to a neighbor, a missing list denies,
//!   matched from a route-map, a missing list does not match;
//! - access-lists (lib/filter.c): the first matching entry decides, none (or no list) denies;
//! - bgpd (bgp_route.c): distribute-list, prefix-list and filter-list out, then route-map out;
//!   an eBGP neighbor without any of them gets nothing while `bgp ebgp-requires-policy` is in
//!   effect (the default from FRR 7.4 unless `frr defaults datacenter`, bgp_vty.c);
//! - ospfd (ospf_zebra.c `ospf_redistribute_check`): `distribute-list NAME out connected`
//!   filters redistributed connected routes through access-list NAME, and filters nothing
//!   while that list does not exist; ripd/ripngd likewise for `distribute-list … out`. isisd
//!   and ospf6d have no outbound distribute-list.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::{Export, Family, Finding, Protocol, some_prefixes};
use crate::daemon::frr_config::Node;

/// One entry of an `ip`/`ipv6 prefix-list`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PrefixEntry {
    seq: u64,
    permit: bool,
    net: IpNet,
    ge: Option<u8>,
    le: Option<u8>,
    text: String,
}

impl PrefixEntry {
    fn matches(&self, p: &IpNet) -> bool {
        if Family::of(&self.net) != Family::of(p)
            || p.prefix_len() < self.net.prefix_len()
            || !self.net.contains(&p.network())
        {
            return false;
        }
        if self.ge.is_none() && self.le.is_none() {
            return p.prefix_len() == self.net.prefix_len();
        }
        self.le.is_none_or(|le| p.prefix_len() <= le)
            && self.ge.is_none_or(|ge| p.prefix_len() >= ge)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum AclMatch {
    /// Zebra style: `10.0.0.0/8 [exact-match]`, `any`.
    Prefix {
        net: IpNet,
        exact: bool,
    },
    /// Cisco standard: `host A.B.C.D`, `A.B.C.D WILDCARD`.
    Wildcard {
        addr: u32,
        wildcard: u32,
    },
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct AclEntry {
    permit: bool,
    what: AclMatch,
    text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    Done,
    Next,
    Goto(u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct RouteMapEntry {
    seq: u32,
    permit: bool,
    matches: Vec<String>,
    exit: Exit,
    call: Option<String>,
}

/// The outbound filters of a neighbor (or peer-group) in one address family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct AfFilters {
    activate: Option<bool>,
    route_map: Option<String>,
    prefix_list: Option<String>,
    distribute_list: Option<String>,
    filter_list: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Peer {
    is_group: bool,
    group: Option<String>,
    remote_as: Option<String>,
    local_as: Option<u32>,
    interface: bool,
    shutdown: bool,
    af: [AfFilters; 2],
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct BgpRouter {
    asn: u32,
    vrf: Option<String>,
    ebgp_requires_policy: Option<bool>,
    no_default_v4: bool,
    default_v6: bool,
    /// `bgp confederation peers`: sessions to them are not eBGP to bgpd.
    confederation_peers: Vec<u32>,
    /// In configuration order.
    peers: Vec<(String, Peer)>,
}

/// Where a `distribute-list … out` of ospfd/ripd/ripngd applies.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Distribute {
    /// `router ospf`, `router rip`, `router ripng`, with the VRF.
    router: String,
    family: Family,
    list: String,
    prefix_list: bool,
    interface: Option<String>,
}

/// The filtering objects of an FRR configuration.
#[derive(Clone, Debug, Default)]
pub struct FrrBase {
    prefix_lists: BTreeMap<(Family, String), Vec<PrefixEntry>>,
    access_lists: BTreeMap<(Family, String), Vec<AclEntry>>,
    as_paths: BTreeMap<String, Vec<(bool, String)>>,
    route_maps: BTreeMap<String, Vec<RouteMapEntry>>,
    bgp: Vec<BgpRouter>,
    distribute: Vec<Distribute>,
    profile: Option<String>,
    version: Option<(u32, u32)>,
}

/// Reads the filtering objects of a parsed configuration.
pub fn read(tree: &[Node]) -> FrrBase {
    let mut base = FrrBase::default();
    for n in tree {
        let w: Vec<&str> = n.line.split_whitespace().collect();
        match w.as_slice() {
            ["frr", "defaults", profile, ..] => base.profile = Some(profile.to_string()),
            ["frr", "version", v, ..] => base.version = parse_version(v),
            ["ip", "prefix-list", name, rest @ ..] => base.add_prefix(Family::V4, name, rest),
            ["ipv6", "prefix-list", name, rest @ ..] => base.add_prefix(Family::V6, name, rest),
            ["access-list", name, rest @ ..] => base.add_access(Family::V4, name, rest),
            ["ipv6", "access-list", name, rest @ ..] => base.add_access(Family::V6, name, rest),
            ["bgp", "as-path", "access-list", name, rest @ ..] => base.add_as_path(name, rest),
            ["route-map", name, action, seq] => base.add_route_map(name, action, seq, &n.children),
            ["router", "bgp", asn, rest @ ..] => {
                if let Ok(asn) = asn.parse() {
                    base.bgp.push(read_bgp(asn, rest, &n.children));
                }
            }
            ["router", kind @ ("ospf" | "rip" | "ripng"), rest @ ..] => {
                base.distribute
                    .extend(read_distribute(kind, rest, &n.children));
            }
            _ => {}
        }
    }
    for entries in base.prefix_lists.values_mut() {
        entries.sort_by_key(|e| e.seq);
    }
    for entries in base.route_maps.values_mut() {
        entries.sort_by_key(|e| e.seq);
    }
    base
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()
        .and_then(|m| {
            m.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
        .unwrap_or(0);
    Some((major, minor))
}

/// `[seq N] permit|deny WORDS…`: the sequence number (if given), the action and the rest.
fn seq_action<'a>(rest: &'a [&'a str]) -> Option<(Option<u64>, bool, &'a [&'a str])> {
    let (seq, rest) = match rest {
        ["seq", n, rest @ ..] => (Some(n.parse().ok()?), rest),
        _ => (None, rest),
    };
    match rest {
        ["permit", rest @ ..] => Some((seq, true, rest)),
        ["deny", rest @ ..] => Some((seq, false, rest)),
        _ => None,
    }
}

impl FrrBase {
    fn add_prefix(&mut self, family: Family, name: &str, rest: &[&str]) {
        let list = self
            .prefix_lists
            .entry((family, name.to_string()))
            .or_default();
        // `description …` creates the list without entries.
        let Some((seq, permit, rest)) = seq_action(rest) else {
            return;
        };
        let (net, mut ge, mut le) = match rest.first() {
            Some(&"any") => (any_net(family), None, Some(max_len(family))),
            Some(p) => match p.parse::<IpNet>() {
                Ok(net) => (net, None, None),
                Err(_) => return,
            },
            None => return,
        };
        let mut words = rest[1..].iter();
        while let (Some(k), Some(v)) = (words.next(), words.next()) {
            match *k {
                "ge" => ge = v.parse().ok(),
                "le" => le = v.parse().ok(),
                _ => {}
            }
        }
        // FRR numbers entries without `seq` 5 past the last one.
        let seq = seq.unwrap_or_else(|| list.iter().map(|e| e.seq).max().unwrap_or(0) + 5);
        let text = format!(
            "seq {seq} {} {}",
            if permit { "permit" } else { "deny" },
            rest.join(" ")
        );
        list.push(PrefixEntry {
            seq,
            permit,
            net,
            ge,
            le,
            text,
        });
    }

    fn add_access(&mut self, family: Family, name: &str, rest: &[&str]) {
        let list = self
            .access_lists
            .entry((family, name.to_string()))
            .or_default();
        let Some((_, permit, rest)) = seq_action(rest) else {
            return;
        };
        let what = match rest {
            ["any"] => AclMatch::Prefix {
                net: any_net(family),
                exact: false,
            },
            [p] | [p, "exact-match"] if p.contains('/') => match p.parse() {
                Ok(net) => AclMatch::Prefix {
                    net,
                    exact: rest.len() == 2,
                },
                Err(_) => AclMatch::Unknown,
            },
            ["host", a] => wildcard(a, "0.0.0.0"),
            [a, w] => wildcard(a, w),
            _ => AclMatch::Unknown,
        };
        let text = format!(
            "{} {}",
            if permit { "permit" } else { "deny" },
            rest.join(" ")
        );
        list.push(AclEntry { permit, what, text });
    }

    fn add_as_path(&mut self, name: &str, rest: &[&str]) {
        let list = self.as_paths.entry(name.to_string()).or_default();
        if let Some((_, permit, regex)) = seq_action(rest) {
            list.push((permit, regex.join(" ")));
        }
    }

    fn add_route_map(&mut self, name: &str, action: &str, seq: &str, children: &[Node]) {
        let (Ok(seq), permit) = (seq.parse::<u32>(), action == "permit") else {
            return;
        };
        let entries = self.route_maps.entry(name.to_string()).or_default();
        let entry = match entries.iter().position(|e| e.seq == seq) {
            Some(i) => &mut entries[i],
            None => {
                entries.push(RouteMapEntry {
                    seq,
                    permit,
                    matches: vec![],
                    exit: Exit::Done,
                    call: None,
                });
                entries.last_mut().expect("just pushed")
            }
        };
        for c in children {
            let w: Vec<&str> = c.line.split_whitespace().collect();
            match w.as_slice() {
                ["match", ..] => entry.matches.push(c.line.clone()),
                ["on-match", "next"] | ["continue"] => entry.exit = Exit::Next,
                ["on-match", "goto", n] | ["continue", n] => {
                    entry.exit = n.parse().map(Exit::Goto).unwrap_or(Exit::Next)
                }
                ["call", target] => entry.call = Some(target.to_string()),
                _ => {}
            }
        }
    }
}

fn any_net(family: Family) -> IpNet {
    match family {
        Family::V4 => "0.0.0.0/0".parse().expect("valid"),
        Family::V6 => "::/0".parse().expect("valid"),
    }
}

fn max_len(family: Family) -> u8 {
    match family {
        Family::V4 => 32,
        Family::V6 => 128,
    }
}

fn wildcard(addr: &str, wildcard: &str) -> AclMatch {
    match (
        addr.parse::<std::net::Ipv4Addr>(),
        wildcard.parse::<std::net::Ipv4Addr>(),
    ) {
        (Ok(a), Ok(w)) => AclMatch::Wildcard {
            addr: u32::from(a),
            wildcard: u32::from(w),
        },
        _ => AclMatch::Unknown,
    }
}

fn family_of_af(line: &str) -> Option<Family> {
    match line.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["address-family", "ipv4"] | ["address-family", "ipv4", "unicast"] => Some(Family::V4),
        ["address-family", "ipv6"] | ["address-family", "ipv6", "unicast"] => Some(Family::V6),
        _ => None,
    }
}

fn read_bgp(asn: u32, rest: &[&str], children: &[Node]) -> BgpRouter {
    let mut r = BgpRouter {
        asn,
        vrf: match rest {
            ["vrf", v, ..] => Some(v.to_string()),
            _ => None,
        },
        ..Default::default()
    };
    for c in children {
        match c.line.as_str() {
            "no bgp ebgp-requires-policy" => r.ebgp_requires_policy = Some(false),
            "bgp ebgp-requires-policy" => r.ebgp_requires_policy = Some(true),
            "no bgp default ipv4-unicast" => r.no_default_v4 = true,
            "bgp default ipv6-unicast" => r.default_v6 = true,
            line if line.starts_with("bgp confederation peers ") => r.confederation_peers.extend(
                line.split_whitespace()
                    .skip(3)
                    .filter_map(|a| a.parse::<u32>().ok()),
            ),
            line if line.starts_with("address-family ") => {
                if let Some(family) = family_of_af(line) {
                    for l in &c.children {
                        r.af_line(family, &l.line);
                    }
                }
            }
            // Outside any address-family: IPv4 unicast, as FRR reads older configurations.
            line => {
                if !r.session_line(line) {
                    r.af_line(Family::V4, line);
                }
            }
        }
    }
    r
}

impl BgpRouter {
    fn peer(&mut self, name: &str) -> &mut Peer {
        let i = match self.peers.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.peers.push((name.to_string(), Peer::default()));
                self.peers.len() - 1
            }
        };
        &mut self.peers[i].1
    }

    /// A neighbor's session line (`remote-as`, `peer-group`, `interface`, `local-as`); false
    /// when the line is not one.
    fn session_line(&mut self, line: &str) -> bool {
        let w: Vec<&str> = line.split_whitespace().collect();
        let (name, rest) = match w.as_slice() {
            ["neighbor", name, rest @ ..] => (*name, rest),
            _ => return false,
        };
        let rest = match rest {
            ["interface", "v6only", rest @ ..] | ["interface", rest @ ..] => {
                self.peer(name).interface = true;
                rest
            }
            _ => rest,
        };
        let peer = self.peer(name);
        match rest {
            [] => {}
            ["peer-group"] => peer.is_group = true,
            ["peer-group", group] => peer.group = Some(group.to_string()),
            ["remote-as", asn, ..] => peer.remote_as = Some(asn.to_string()),
            ["local-as", asn, ..] => peer.local_as = asn.parse().ok(),
            ["shutdown", ..] => peer.shutdown = true,
            _ => return !is_af_line(rest),
        }
        true
    }

    fn af_line(&mut self, family: Family, line: &str) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let (name, rest, negated) = match w.as_slice() {
            ["no", "neighbor", name, rest @ ..] => (*name, rest, true),
            ["neighbor", name, rest @ ..] => (*name, rest, false),
            _ => return,
        };
        let af = &mut self.peer(name).af[family as usize];
        match (rest, negated) {
            (["activate"], negated) => af.activate = Some(!negated),
            (["route-map", m, "out"], false) => af.route_map = Some(m.to_string()),
            (["prefix-list", m, "out"], false) => af.prefix_list = Some(m.to_string()),
            (["distribute-list", m, "out"], false) => af.distribute_list = Some(m.to_string()),
            (["filter-list", m, "out"], false) => af.filter_list = Some(m.to_string()),
            _ => {}
        }
    }
}

fn is_af_line(rest: &[&str]) -> bool {
    matches!(
        rest,
        ["activate"]
            | ["route-map", _, _]
            | ["prefix-list", _, _]
            | ["distribute-list", _, _]
            | ["filter-list", _, _]
    )
}

fn read_distribute(kind: &str, rest: &[&str], children: &[Node]) -> Vec<Distribute> {
    let router = match rest {
        ["vrf", v, ..] => format!("router {kind} vrf {v}"),
        _ => format!("router {kind}"),
    };
    let family = if kind == "ripng" {
        Family::V6
    } else {
        Family::V4
    };
    let mut out = Vec::new();
    for c in children {
        let w: Vec<&str> = c.line.split_whitespace().collect();
        let w = match (kind, w.as_slice()) {
            ("ripng", ["ipv6", "distribute-list", rest @ ..]) => rest.to_vec(),
            ("ospf" | "rip", ["distribute-list", rest @ ..]) => rest.to_vec(),
            _ => continue,
        };
        let (prefix_list, w) = match w.as_slice() {
            ["prefix", rest @ ..] => (true, rest.to_vec()),
            _ => (false, w),
        };
        let d = |list: &str, interface: Option<&str>| Distribute {
            router: router.clone(),
            family,
            list: list.to_string(),
            prefix_list,
            interface: interface.map(str::to_string),
        };
        match (kind, w.as_slice()) {
            ("ospf", [list, "out", "connected"]) => out.push(d(list, None)),
            ("rip" | "ripng", [list, "out"]) => out.push(d(list, None)),
            ("rip" | "ripng", [list, "out", ifname]) => out.push(d(list, Some(ifname))),
            _ => {}
        }
    }
    out
}

/// What a filter does with one route.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    Permit,
    Deny(String),
    Unknown(String),
}

/// Whether a route-map entry's `match` clauses hold.
enum Match {
    Yes,
    No(String),
    Unknown(String),
}

impl FrrBase {
    /// A prefix-list applied to a route. `missing` is what a list that does not exist does.
    fn prefix_list(&self, family: Family, name: &str, p: &IpNet, missing: Verdict) -> Verdict {
        let Some(list) = self.prefix_lists.get(&(family, name.to_string())) else {
            return missing;
        };
        let what = format!("{} prefix-list {name}", family_word(family));
        if list.is_empty() {
            return Verdict::Permit;
        }
        match list.iter().find(|e| e.matches(p)) {
            Some(e) if e.permit => Verdict::Permit,
            Some(e) => Verdict::Deny(format!("{what} {}", e.text)),
            None => Verdict::Deny(format!("{what} has no entry for it")),
        }
    }

    fn access_list(&self, family: Family, name: &str, p: &IpNet, missing: Verdict) -> Verdict {
        let Some(list) = self.access_lists.get(&(family, name.to_string())) else {
            return missing;
        };
        let what = format!("access-list {name}");
        for e in list {
            let hit = match &e.what {
                AclMatch::Prefix { net, exact } => {
                    Family::of(net) == Family::of(p)
                        && net.contains(&p.network())
                        && p.prefix_len() >= net.prefix_len()
                        && (!exact || p.prefix_len() == net.prefix_len())
                }
                AclMatch::Wildcard { addr, wildcard } => match p.network() {
                    IpAddr::V4(a) => u32::from(a) & !wildcard == *addr,
                    IpAddr::V6(_) => false,
                },
                AclMatch::Unknown => {
                    return Verdict::Unknown(format!(
                        "{what} `{}` cannot be evaluated here",
                        e.text
                    ));
                }
            };
            if hit {
                return match e.permit {
                    true => Verdict::Permit,
                    false => Verdict::Deny(format!("{what} `{}`", e.text)),
                };
            }
        }
        Verdict::Deny(format!("{what} has no entry for it"))
    }

    /// An AS-path access-list applied to a route this node originates: its AS path is empty
    /// when bgpd filters it (the local AS is prepended later, on the wire).
    fn as_path_list(&self, name: &str) -> Verdict {
        let Some(list) = self.as_paths.get(name) else {
            return Verdict::Deny(format!(
                "as-path access-list {name} does not exist, and FRR denies every route through a missing one"
            ));
        };
        for (permit, regex) in list {
            match matches_empty(regex) {
                Some(true) if *permit => return Verdict::Permit,
                Some(true) => {
                    return Verdict::Deny(format!(
                        "as-path access-list {name} `deny {regex}` matches the empty AS path of routes this node originates"
                    ));
                }
                Some(false) => {}
                None => {
                    return Verdict::Unknown(format!(
                        "cannot tell whether as-path access-list {name} `{regex}` matches an empty AS path"
                    ));
                }
            }
        }
        Verdict::Deny(format!(
            "as-path access-list {name} has no entry matching the empty AS path of routes this node originates (`permit ^$` would)"
        ))
    }
}

fn family_word(family: Family) -> &'static str {
    match family {
        Family::V4 => "ip",
        Family::V6 => "ipv6",
    }
}

/// Whether an AS-path regular expression (POSIX extended, `_` for a delimiter) matches the
/// empty AS path; None when it uses what this reader does not know.
fn matches_empty(regex: &str) -> Option<bool> {
    let chars: Vec<char> = regex.chars().collect();
    let mut pos = 0;
    let nullable = alternation(&chars, &mut pos)?;
    (pos == chars.len()).then_some(nullable)
}

/// Nullability of `a|b|…` at `pos`.
fn alternation(c: &[char], pos: &mut usize) -> Option<bool> {
    let mut any = sequence(c, pos)?;
    while c.get(*pos) == Some(&'|') {
        *pos += 1;
        any |= sequence(c, pos)?;
    }
    Some(any)
}

/// Nullability of a sequence of atoms with quantifiers at `pos`.
fn sequence(c: &[char], pos: &mut usize) -> Option<bool> {
    let mut all = true;
    while let Some(&ch) = c.get(*pos) {
        let atom = match ch {
            '|' | ')' => break,
            // Anchors, and `_` (start, end, or a delimiter) all match the empty path.
            '^' | '$' | '_' => {
                *pos += 1;
                true
            }
            '(' => {
                *pos += 1;
                let inner = alternation(c, pos)?;
                (c.get(*pos) == Some(&')')).then_some(())?;
                *pos += 1;
                inner
            }
            '[' => {
                let end = c[*pos..].iter().skip(2).position(|&x| x == ']')? + *pos + 2;
                *pos = end + 1;
                false
            }
            '\\' => {
                *pos += 2;
                false
            }
            '{' | '*' | '+' | '?' => return None,
            _ => {
                *pos += 1;
                false
            }
        };
        let quantified = match c.get(*pos) {
            Some('*') | Some('?') => {
                *pos += 1;
                true
            }
            Some('+') => {
                *pos += 1;
                atom
            }
            Some('{') => {
                let end = c[*pos..].iter().position(|&x| x == '}')? + *pos;
                let min: String = c[*pos + 1..end]
                    .iter()
                    .take_while(|x| x.is_ascii_digit())
                    .collect();
                *pos = end + 1;
                atom || min.parse::<u32>().ok()? == 0
            }
            _ => atom,
        };
        all &= quantified;
    }
    Some(all)
}

/// How deep `call`s nest before FRR gives up (RMAP_RECURSION_LIMIT).
const CALL_DEPTH: usize = 10;

impl FrrBase {
    /// A route-map applied to a route, as `route_map_apply_ext` does; route-maps named in
    /// `hooked` hold routelb's permit entries and permit its prefixes.
    fn route_map(&self, name: &str, p: &IpNet, hooked: &BTreeSet<String>, depth: usize) -> Verdict {
        if hooked.contains(name) {
            return Verdict::Permit;
        }
        let Some(entries) = self.route_maps.get(name) else {
            return Verdict::Deny(format!(
                "route-map {name} does not exist, and FRR denies every route through a route-map that does not exist"
            ));
        };
        if depth > CALL_DEPTH {
            return Verdict::Unknown(format!("route-map {name}: calls nest too deep"));
        }
        let mut trace: Vec<String> = Vec::new();
        let mut permitted = true;
        let mut i = 0;
        while let Some(e) = entries.get(i) {
            let action = if e.permit { "permit" } else { "deny" };
            match self.entry_matches(e, p) {
                Match::Unknown(why) => {
                    return Verdict::Unknown(format!(
                        "route-map {name} entry {} {action}: {why}",
                        e.seq
                    ));
                }
                Match::No(why) => {
                    permitted = false;
                    trace.push(format!("entry {} {action} does not match: {why}", e.seq));
                    i += 1;
                    continue;
                }
                Match::Yes if !e.permit => {
                    trace.push(format!("entry {} deny matches", e.seq));
                    return Verdict::Deny(trace.join("; "));
                }
                Match::Yes => {}
            }
            permitted = true;
            if let Some(target) = &e.call {
                match self.route_map(target, p, hooked, depth + 1) {
                    Verdict::Permit => {}
                    Verdict::Deny(why) => {
                        trace.push(format!("entry {} calls route-map {target}: {why}", e.seq));
                        return Verdict::Deny(trace.join("; "));
                    }
                    unknown => return unknown,
                }
            }
            match e.exit {
                Exit::Done => return Verdict::Permit,
                Exit::Next => i += 1,
                Exit::Goto(n) => {
                    i += 1;
                    while entries.get(i).is_some_and(|x| x.seq < n) {
                        i += 1;
                    }
                }
            }
        }
        if permitted {
            return Verdict::Permit;
        }
        trace.push("then implicit deny".into());
        Verdict::Deny(trace.join("; "))
    }

    /// Whether every `match` of an entry holds for the route.
    fn entry_matches(&self, e: &RouteMapEntry, p: &IpNet) -> Match {
        let family = Family::of(p);
        for m in &e.matches {
            let w: Vec<&str> = m.split_whitespace().collect();
            let (list_family, verdict) = match w.as_slice() {
                ["match", "ip", "address", "prefix-list", list] => (
                    Family::V4,
                    self.prefix_list(Family::V4, list, p, missing_list("prefix-list", list)),
                ),
                ["match", "ipv6", "address", "prefix-list", list] => (
                    Family::V6,
                    self.prefix_list(Family::V6, list, p, missing_list("prefix-list", list)),
                ),
                ["match", "ip", "address", list] => (
                    Family::V4,
                    self.access_list(Family::V4, list, p, missing_list("access-list", list)),
                ),
                ["match", "ipv6", "address", list] => (
                    Family::V6,
                    self.access_list(Family::V6, list, p, missing_list("access-list", list)),
                ),
                _ => {
                    return Match::Unknown(format!("`{m}` cannot be evaluated here"));
                }
            };
            // A list of one family never matches a route of the other (but an empty one).
            let empty = w.get(3) == Some(&"prefix-list")
                && self
                    .prefix_lists
                    .get(&(list_family, w[w.len() - 1].to_string()))
                    .is_some_and(|l| l.is_empty());
            if list_family != family && !empty {
                return Match::No(format!(
                    "`{m}` does not match an {} route",
                    if family == Family::V4 { "IPv4" } else { "IPv6" }
                ));
            }
            match verdict {
                Verdict::Permit => {}
                Verdict::Deny(why) => return Match::No(why),
                Verdict::Unknown(why) => return Match::Unknown(why),
            }
        }
        Match::Yes
    }
}

fn missing_list(kind: &str, name: &str) -> Verdict {
    Verdict::Deny(format!("{kind} {name} does not exist"))
}

/// The findings for an FRR base: `exports` from [`super::exports`]; `hooked` names the base's
/// route-maps into which routelb inserts its own permit entries (they permit its prefixes).
pub fn check(tree: &[Node], exports: &[Export], hooked: &BTreeSet<String>) -> Vec<Finding> {
    let base = read(tree);
    let mut out = redistribution_findings(tree, exports);
    for e in exports {
        match &e.protocol {
            Protocol::Bgp { vrf } => {
                for r in base.bgp.iter().filter(|r| &r.vrf == vrf) {
                    out.extend(base.check_bgp(r, e, hooked));
                }
            }
            Protocol::Ospf => out.extend(base.check_distribute("router ospf", e)),
            Protocol::Rip => {
                out.extend(base.check_distribute("router rip", e));
                out.extend(base.check_distribute("router ripng", e));
            }
            // isisd has no outbound distribute-list: what it redistributes it floods.
            Protocol::Isis { .. } => {}
        }
    }
    out
}

/// A neighbor's settings with its peer-group's filled in.
struct Effective<'a> {
    name: &'a str,
    peer: &'a Peer,
    group: Option<(&'a str, &'a Peer)>,
}

impl Effective<'_> {
    /// A filter of the neighbor or, failing that, of its peer-group: (name, `from peer-group`
    /// note).
    fn filter(
        &self,
        family: Family,
        get: fn(&AfFilters) -> &Option<String>,
    ) -> Option<(String, String)> {
        if let Some(n) = get(&self.peer.af[family as usize]) {
            return Some((n.clone(), String::new()));
        }
        let (g, peer) = self.group?;
        get(&peer.af[family as usize])
            .clone()
            .map(|n| (n, format!(" (from peer-group {g})")))
    }

    fn activated(&self, family: Family, router: &BgpRouter) -> bool {
        let own = self.peer.af[family as usize].activate;
        let group = self.group.and_then(|(_, g)| g.af[family as usize].activate);
        own.or(group).unwrap_or(match family {
            Family::V4 => !router.no_default_v4,
            Family::V6 => router.default_v6,
        })
    }

    /// Whether the session is eBGP; None when the remote AS is not configured.
    fn ebgp(&self, router: &BgpRouter) -> Option<bool> {
        let group = self.group.map(|(_, g)| g);
        let remote = self
            .peer
            .remote_as
            .as_deref()
            .or(group.and_then(|g| g.remote_as.as_deref()))?;
        let local = self
            .peer
            .local_as
            .or(group.and_then(|g| g.local_as))
            .unwrap_or(router.asn);
        match remote {
            "external" => Some(true),
            "internal" => Some(false),
            n => n
                .parse::<u32>()
                .ok()
                .map(|n| n != local && !router.confederation_peers.contains(&n)),
        }
    }

    /// The neighbor's own address family: None for an interface (unnumbered) neighbor.
    fn family(&self) -> Option<Family> {
        match self.name.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => Some(Family::V4),
            Ok(IpAddr::V6(_)) => Some(Family::V6),
            Err(_) => None,
        }
    }
}

/// Where bgpd applies an outbound filter, in its order (bgp_output_filter, then the
/// route-map in subgroup_announce_check).
#[derive(Clone, Copy)]
enum OutFilter {
    DistributeList,
    PrefixList,
    FilterList,
    RouteMap,
}

impl OutFilter {
    const ALL: [OutFilter; 4] = [
        OutFilter::DistributeList,
        OutFilter::PrefixList,
        OutFilter::FilterList,
        OutFilter::RouteMap,
    ];

    fn get(self) -> fn(&AfFilters) -> &Option<String> {
        match self {
            OutFilter::DistributeList => |a| &a.distribute_list,
            OutFilter::PrefixList => |a| &a.prefix_list,
            OutFilter::FilterList => |a| &a.filter_list,
            OutFilter::RouteMap => |a| &a.route_map,
        }
    }
}

impl FrrBase {
    fn check_bgp(&self, r: &BgpRouter, e: &Export, hooked: &BTreeSet<String>) -> Vec<Finding> {
        let mut out = Vec::new();
        let neighbors: Vec<Effective> = r
            .peers
            .iter()
            // A neighbor shut down sends nothing, by its operator's choice.
            .filter(|(_, p)| !p.is_group && !p.shutdown)
            .map(|(name, peer)| Effective {
                name,
                peer,
                group: peer.group.as_deref().and_then(|g| {
                    r.peers
                        .iter()
                        .find(|(n, p)| n == g && p.is_group)
                        .map(|(n, p)| (n.as_str(), p))
                }),
            })
            .collect();
        let vrf = r.vrf.as_deref().unwrap_or("default");
        for family in Family::BOTH {
            let prefixes = e.prefixes(family);
            if prefixes.is_empty() {
                continue;
            }
            let any_active = neighbors.iter().any(|n| n.activated(family, r));
            for n in &neighbors {
                let subject = match n.peer.interface {
                    true => format!("neighbor {} (interface, vrf {vrf})", n.name),
                    false => format!("neighbor {} (vrf {vrf})", n.name),
                };
                if !n.activated(family, r) {
                    if n.family().is_none_or(|f| f == family) || !any_active {
                        out.push(Finding::warning(
                            subject,
                            format!(
                                "not activated in address-family {} unicast: routelb's {} prefixes are not sent to it",
                                family.name(),
                                family.name().to_uppercase().replace("IPV", "IPv"),
                            ),
                        ));
                    }
                    continue;
                }
                out.extend(self.check_neighbor(r, n, &subject, family, prefixes, hooked));
            }
        }
        out
    }

    fn check_neighbor(
        &self,
        r: &BgpRouter,
        n: &Effective,
        subject: &str,
        family: Family,
        prefixes: &[IpNet],
        hooked: &BTreeSet<String>,
    ) -> Vec<Finding> {
        let filters: Vec<(OutFilter, String, String)> = OutFilter::ALL
            .iter()
            .filter_map(|f| {
                n.filter(family, f.get())
                    .map(|(name, from)| (*f, name, from))
            })
            .collect();
        if filters.is_empty() && n.ebgp(r) == Some(true) {
            let (required, why) = self.requires_policy(r);
            return match required {
                true => vec![Finding::error(
                    subject,
                    format!(
                        "eBGP neighbor without an outbound policy while `bgp ebgp-requires-policy` is in effect ({why}): FRR sends it nothing; add `no bgp ebgp-requires-policy` to router bgp {}, or an outbound route-map that permits routelb's prefixes",
                        r.asn
                    ),
                )],
                false => vec![],
            };
        }
        let mut out = Vec::new();
        for (kind, name, from) in filters {
            let mut denied = Vec::new();
            let mut first_why = None;
            for p in prefixes {
                match self.out_filter(kind, family, &name, p, hooked) {
                    Verdict::Permit => {}
                    Verdict::Deny(why) => {
                        denied.push(*p);
                        first_why.get_or_insert(why);
                    }
                    Verdict::Unknown(why) => {
                        out.push(Finding::warning(
                            subject,
                            format!(
                                "cannot tell whether {} {name}{from} permits {p}: {why}",
                                kind_word(kind)
                            ),
                        ));
                        break;
                    }
                }
            }
            if let Some(why) = first_why {
                out.push(Finding::error(
                    subject,
                    format!(
                        "{} {name}{from} denies {} ({why})",
                        kind_word(kind),
                        some_prefixes(&denied)
                    ),
                ));
            }
        }
        out
    }

    fn out_filter(
        &self,
        kind: OutFilter,
        family: Family,
        name: &str,
        p: &IpNet,
        hooked: &BTreeSet<String>,
    ) -> Verdict {
        let missing = |what: &str| {
            Verdict::Deny(format!(
                "{what} {name} does not exist, and bgpd denies every route through a missing one"
            ))
        };
        match kind {
            OutFilter::DistributeList => self.access_list(family, name, p, missing("access-list")),
            OutFilter::PrefixList => self.prefix_list(family, name, p, missing("prefix-list")),
            OutFilter::FilterList => self.as_path_list(name),
            OutFilter::RouteMap => self.route_map(name, p, hooked, 0),
        }
    }

    /// Whether `bgp ebgp-requires-policy` is in effect in a router, and why.
    fn requires_policy(&self, r: &BgpRouter) -> (bool, String) {
        if let Some(explicit) = r.ebgp_requires_policy {
            return (explicit, "set in router bgp".into());
        }
        if self.profile.as_deref() == Some("datacenter") {
            return (false, "off with `frr defaults datacenter`".into());
        }
        if self.version.is_some_and(|v| v < (7, 4)) {
            return (false, "off for configurations of FRR before 7.4".into());
        }
        let profile = self.profile.as_deref().unwrap_or("traditional");
        (
            true,
            format!("FRR's default since 7.4 with `frr defaults {profile}`"),
        )
    }

    /// ospfd, ripd and ripngd: their `distribute-list … out` against routelb's prefixes.
    fn check_distribute(&self, router: &str, e: &Export) -> Vec<Finding> {
        let mut out = Vec::new();
        for d in self
            .distribute
            .iter()
            .filter(|d| d.router.starts_with(router))
        {
            let router_kind = d.router.split_whitespace().nth(1).unwrap_or_default();
            if (router_kind == "ripng") != (router == "router ripng") {
                continue;
            }
            let subject = match &d.interface {
                Some(i) => format!("{} (interface {i})", d.router),
                None => d.router.clone(),
            };
            // Neither ospfd nor ripd filter through a list that does not exist.
            let verdicts = e.prefixes(d.family).iter().map(|p| {
                let v = match d.prefix_list {
                    true => self.prefix_list(d.family, &d.list, p, Verdict::Permit),
                    false => self.access_list(d.family, &d.list, p, Verdict::Permit),
                };
                (p, v)
            });
            let kind = if d.prefix_list {
                "prefix-list"
            } else {
                "access-list"
            };
            let mut denied = Vec::new();
            let mut first_why = None;
            for (p, v) in verdicts {
                match v {
                    Verdict::Permit => {}
                    Verdict::Deny(why) => {
                        denied.push(*p);
                        first_why.get_or_insert(why);
                    }
                    Verdict::Unknown(why) => out.push(Finding::warning(&subject, why)),
                }
            }
            if let Some(why) = first_why {
                out.push(Finding::error(
                    subject,
                    format!(
                        "distribute-list {} out ({kind}) denies {} ({why})",
                        d.list,
                        some_prefixes(&denied)
                    ),
                ));
            }
        }
        out
    }
}

fn kind_word(kind: OutFilter) -> &'static str {
    match kind {
        OutFilter::DistributeList => "distribute-list",
        OutFilter::PrefixList => "prefix-list",
        OutFilter::FilterList => "filter-list",
        OutFilter::RouteMap => "route-map",
    }
}

/// Parses a base configuration the way vtysh reads a file: by context, not indentation. Lines
/// written without indentation inside `router …`, `address-family …` or `route-map …` (FRR
/// accepts those files) are indented before [`crate::daemon::frr_config::parse`] reads them,
/// so no neighbor or entry is missed.
pub fn parse_base(text: &str) -> Vec<Node> {
    crate::daemon::frr_config::parse(&normalize(text))
}

/// Commands that leave any block (vtysh walks up to the node that has them).
const TOP_LEVEL: &[&str] = &[
    "router ",
    "route-map ",
    "interface ",
    "vrf ",
    "bfd",
    "line ",
    "key chain ",
    "segment-routing",
    "pbr-map ",
    "nexthop-group ",
    "ip prefix-list ",
    "ipv6 prefix-list ",
    "access-list ",
    "ipv6 access-list ",
    "ip route ",
    "ipv6 route ",
    "ip nht ",
    "ipv6 nht ",
    "ip forwarding",
    "ipv6 forwarding",
    "ip router-id",
    "bgp as-path ",
    "bgp community-list ",
    "bgp extcommunity-list ",
    "bgp large-community-list ",
    "hostname ",
    "log ",
    "frr ",
    "service ",
    "password ",
    "enable ",
    "debug ",
    "agentx",
    "end",
];

fn normalize(text: &str) -> String {
    // (inside a block, and which: `router bgp`, `router ripng`…), inside an address-family.
    let mut block: Option<String> = None;
    let mut in_af = false;
    let mut out = String::with_capacity(text.len());
    for raw in text.lines() {
        let line = raw.trim();
        let indented = raw.len() > raw.trim_start().len();
        if indented || line.is_empty() || line.starts_with('!') || line.starts_with('#') {
            out.push_str(raw);
            out.push('\n');
            continue;
        }
        let child_ipv6 = block.as_deref() == Some("router ripng") && line.starts_with("ipv6 ");
        match line {
            "exit-address-family" => in_af = false,
            "exit" if in_af => in_af = false,
            "exit" => block = None,
            _ if !child_ipv6 && TOP_LEVEL.iter().any(|t| line.starts_with(t)) => {
                in_af = false;
                let opens = [
                    "router ",
                    "route-map ",
                    "interface ",
                    "vrf ",
                    "bfd",
                    "key chain ",
                ];
                block = opens.iter().any(|o| line.starts_with(o)).then(|| {
                    line.split_whitespace()
                        .take(2)
                        .collect::<Vec<_>>()
                        .join(" ")
                });
                out.push_str(line);
            }
            _ if block.is_some() => {
                let depth = if in_af { 2 } else { 1 };
                out.push_str(&" ".repeat(depth));
                out.push_str(line);
                in_af |= line.starts_with("address-family ");
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// A `redistribute connected` line of the base's own in a router (and address family) that
/// routelb also redistributes connected routes from.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Redistribution {
    /// `router bgp 64512`, `router ospf`…, as written.
    router: String,
    family: Family,
    line: String,
}

fn redistributions(tree: &[Node]) -> Vec<Redistribution> {
    let mut out = Vec::new();
    let mut add = |router: &str, family: Family, n: &Node| {
        let w: Vec<&str> = n.line.split_whitespace().collect();
        let connected = matches!(
            w.as_slice(),
            ["redistribute", "connected", ..] | ["redistribute", "ipv4" | "ipv6", "connected", ..]
        );
        if connected && !n.line.contains(crate::daemon::frr_config::PREFIX) {
            out.push(Redistribution {
                router: router.to_string(),
                family,
                line: n.line.clone(),
            });
        }
    };
    for r in tree.iter().filter(|n| n.line.starts_with("router ")) {
        let kind = r.line.split_whitespace().nth(1).unwrap_or_default();
        for c in &r.children {
            match (kind, family_of_af(&c.line)) {
                ("bgp", Some(family)) => c.children.iter().for_each(|l| add(&r.line, family, l)),
                ("bgp" | "ospf" | "rip", None) => add(&r.line, Family::V4, c),
                ("ospf6" | "ripng", None) => add(&r.line, Family::V6, c),
                ("isis", None) => {
                    let family = if c.line.contains(" ipv6 ") {
                        Family::V6
                    } else {
                        Family::V4
                    };
                    add(&r.line, family, c)
                }
                _ => {}
            }
        }
    }
    out
}

/// Whether routelb's redistribution for `e` lands in this router: the routers it writes to.
fn routelb_redistributes(e: &Export, router: &str, family: Family) -> bool {
    let w: Vec<&str> = router.split_whitespace().collect();
    match (&e.protocol, w.as_slice()) {
        (Protocol::Bgp { vrf }, ["router", "bgp", _, rest @ ..]) => {
            let theirs = match rest {
                ["vrf", v, ..] => Some(*v),
                _ => None,
            };
            theirs == vrf.as_deref()
        }
        (Protocol::Ospf, ["router", "ospf", ..]) => family == Family::V4,
        (Protocol::Ospf, ["router", "ospf6", ..]) => family == Family::V6,
        (Protocol::Rip, ["router", "rip", ..]) => family == Family::V4,
        (Protocol::Rip, ["router", "ripng", ..]) => family == Family::V6,
        (Protocol::Isis { tag }, ["router", "isis", t, ..]) => t == tag,
        _ => false,
    }
}

/// The base's own `redistribute connected` where routelb writes its own: FRR keeps one per
/// source, so routelb's replaces it. routelb's route-map then ends with an entry that passes
/// what the base's line passed, as it did, and gives the line back when routelb's goes
/// ([`crate::render::fallback`]): nothing is lost, nothing to report. A line with an option
/// no route-map entry reproduces (`tag`, a route-map's `on-match`…) is reported.
fn redistribution_findings(tree: &[Node], exports: &[Export]) -> Vec<Finding> {
    let mut out = Vec::new();
    for r in redistributions(tree) {
        let clash = exports.iter().any(|e| {
            !e.prefixes(r.family).is_empty() && routelb_redistributes(e, &r.router, r.family)
        });
        let kept = crate::daemon::frr_config::parse_base_redistribute(&r.line).is_some();
        if clash && !kept {
            out.push(Finding::warning(
                format!("{} ({} unicast)", r.router, r.family.name()),
                format!(
                    "the base's `{}` is replaced by routelb's `redistribute connected route-map ROUTELB-…` (FRR keeps one per source), and routelb's route-map cannot reproduce its options (it does for `metric`, `metric-type` and `route-map`): the base's own connected routes then pass routelb's route-map, which permits the pools only; drop the other options or announce those routes with `network` lines",
                    r.line
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
pub(super) mod tests_api {
    pub fn matches_empty(regex: &str) -> Option<bool> {
        super::matches_empty(regex)
    }
}
