//! FRR configuration text as a tree, the objects routelb owns in it, and the commands that turn
//! one set of owned objects into another. Pure: the driver feeds it `show running-config`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::render::model::{
    BASE_FALLBACK_MARK, BASE_FALLBACK_SEQ, BaseRedistribute, BaseRouteMap, BgpInstance, HOOK_SEQ,
    Instances,
};

/// A configuration line and the lines nested under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub line: String,
    pub children: Vec<Node>,
}

/// Parses FRR configuration: nesting comes from indentation; comments, blank lines and the
/// `exit`/`exit-address-family`/`exit-vrf` markers are dropped.
pub fn parse(text: &str) -> Vec<Node> {
    let mut root: Vec<Node> = Vec::new();
    // Path of (indent, index) from the root to the last node seen.
    let mut stack: Vec<usize> = Vec::new();
    let mut indents: Vec<usize> = Vec::new();
    for raw in text.lines() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('!') || trimmed.starts_with('#') {
            continue;
        }
        if matches!(
            trimmed,
            "exit" | "exit-address-family" | "exit-vrf" | "end" | "quit"
        ) {
            continue;
        }
        let indent = raw.len() - raw.trim_start().len();
        while let Some(&top) = indents.last() {
            if top >= indent {
                indents.pop();
                stack.pop();
            } else {
                break;
            }
        }
        let mut level = &mut root;
        for &i in &stack {
            level = &mut level[i].children;
        }
        level.push(Node {
            line: trimmed.to_string(),
            children: vec![],
        });
        stack.push(level.len() - 1);
        indents.push(indent);
    }
    root
}

/// Merges the daemons' configurations into one, as vtysh's `show running-config` does: blocks
/// with the same first line (a `route-map` entry zebra and bgpd each hold part of, `router bgp`)
/// become one holding every line of each, without repeats.
pub fn merge(trees: Vec<Vec<Node>>) -> Vec<Node> {
    fn add(into: &mut Vec<Node>, n: Node) {
        match into.iter_mut().find(|m| m.line == n.line) {
            Some(m) => {
                for c in n.children {
                    add(&mut m.children, c);
                }
            }
            None => into.push(n),
        }
    }
    let mut out = Vec::new();
    for tree in trees {
        for n in tree {
            add(&mut out, n);
        }
    }
    out
}

/// The objects routelb owns, keyed so two sets can be compared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owned {
    /// `ip prefix-list NAME seq N` / `ipv6 ...` → whole line. Shared: a pass hands the same
    /// thousands of entries to each daemon's share and to what is known after the apply, and
    /// copying them per daemon cost more than the rest of the apply.
    pub prefix_entries: Arc<PrefixEntries>,
    /// `route-map NAME permit N` → its lines.
    pub route_maps: BTreeMap<String, Vec<String>>,
    /// (context path, `redistribute <source> [level]`) → whole line.
    pub redistribute: BTreeMap<(Vec<String>, String), String>,
    /// Blocks in `bfd` (fast failover): `profile ROUTELB-…` and the `peer …` blocks that use
    /// one → their lines, sorted.
    pub bfd: BTreeMap<String, Vec<String>>,
}

/// The `bfd` node, where bfdd keeps profiles and peers.
pub const BFD: &str = "bfd";

/// bfdd's settings at their defaults, which its running configuration leaves out.
const BFD_DEFAULTS: [&str; 3] = [
    "detect-multiplier 3",
    "receive-interval 300",
    "transmit-interval 300",
];

/// Whether a block inside `bfd` is routelb's: one of its profiles, or a peer using one.
fn is_owned_bfd_block(n: &Node) -> bool {
    let owned_profile = |line: &str| {
        line.strip_prefix("profile ")
            .is_some_and(|name| name.trim().starts_with(PREFIX))
    };
    owned_profile(&n.line)
        || (n.line.starts_with("peer ") && n.children.iter().any(|c| owned_profile(&c.line)))
}

/// Prefix-list entries by `ip prefix-list NAME seq N`, each with its whole line.
pub type PrefixEntries = BTreeMap<String, String>;

pub const PREFIX: &str = "ROUTELB-";

/// The kinds of command ([`kind`]) of routelb's prefix-list lines.
const PREFIX_LIST_KINDS: [&str; 2] = ["ip prefix-list", "ipv6 prefix-list"];

/// The name and sequence number of a `route-map NAME permit|deny SEQ` line, and whether it
/// permits.
fn route_map_head(line: &str) -> Option<(&str, bool, u32)> {
    match line.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["route-map", name, action @ ("permit" | "deny"), seq] => {
            Some((name, *action == "permit", seq.parse().ok()?))
        }
        _ => None,
    }
}

/// Whether a top-level route-map entry is routelb's: an entry of one of its own `ROUTELB-*`
/// maps, or one it added to a base map (`spec.bgp.outboundRouteMaps`): numbered in
/// [`HOOK_SEQ`] and marked as routelb's by a line naming a `ROUTELB-*` object or a
/// `description routelb_…` (as the template writes). The base's own entries, in any range,
/// are never routelb's.
pub fn is_owned_route_map(node: &Node) -> bool {
    let Some((name, _, seq)) = route_map_head(&node.line) else {
        // Another form of `route-map` line: routelb's when it names one of its maps.
        return node.line.starts_with("route-map ")
            && node
                .line
                .split_whitespace()
                .nth(1)
                .is_some_and(|name| name.starts_with(PREFIX));
    };
    if name.starts_with(PREFIX) {
        return true;
    }
    HOOK_SEQ.contains(&seq)
        && node.children.iter().any(|c| {
            c.line.starts_with("description routelb_")
                || c.line.split_whitespace().any(|w| w.starts_with(PREFIX))
        })
}

/// What kind of command a line is, to remember which daemons do not take which: its first two
/// words, `no ` dropped and routelb's names hidden (`route-map <name>`, `set community`,
/// `router bgp`, `ip prefix-list`).
pub fn kind(line: &str) -> String {
    let line = line.trim();
    let line = line.strip_prefix("no ").unwrap_or(line);
    // A route-map's name is hidden whoever named it: a daemon that refuses one route-map
    // refuses them all, routelb's and those of the base it hooks into.
    let route_map = line.starts_with("route-map ");
    line.split_whitespace()
        .take(2)
        .enumerate()
        .map(|(i, w)| {
            if w.starts_with(PREFIX) || (route_map && i == 1) {
                "<name>"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The daemon a `router <protocol> …` line belongs to, by FRR's naming: `router bgp` → bgpd,
/// `router ospf6` → ospf6d, `router openfabric` → fabricd.
pub fn router_daemon(line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    (words.next()? == "router").then_some(())?;
    Some(match words.next()? {
        "openfabric" => "fabricd".to_string(),
        protocol => format!("{protocol}d"),
    })
}

/// The kind of a line inside `context`: the context lines' kinds, then its own, joined by
/// ` > ` (`router bgp > address-family ipv4 > redistribute connected`).
pub fn kind_in(context: &[String], line: &str) -> String {
    context
        .iter()
        .map(|c| kind(c))
        .chain(std::iter::once(kind(line)))
        .collect::<Vec<_>>()
        .join(" > ")
}

/// The entries of `map` that `keep` keeps, copied.
fn kept<K: Ord + Clone, V: Clone>(
    map: &BTreeMap<K, V>,
    keep: impl Fn(&K, &V) -> bool,
) -> BTreeMap<K, V> {
    map.iter()
        .filter(|(k, v)| keep(k, v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Owned {
    /// What a daemon that does not take the `ignored` kinds of command holds of these objects.
    pub fn without(&self, ignored: &BTreeSet<String>) -> Owned {
        if ignored.is_empty() {
            return self.clone();
        }
        // A line is out when its own kind in context, or that of any enclosing line, is.
        let out = |context: &[String], line: &str| {
            (0..context.len()).any(|i| ignored.contains(&kind_in(&context[..i], &context[i])))
                || ignored.contains(&kind_in(context, line))
        };
        let prefix_entries = if PREFIX_LIST_KINDS.iter().any(|k| ignored.contains(*k)) {
            Arc::new(kept(&self.prefix_entries, |_, line| !out(&[], line)))
        } else {
            self.prefix_entries.clone()
        };
        Owned {
            prefix_entries,
            route_maps: self
                .route_maps
                .iter()
                .filter(|(head, _)| !out(&[], head))
                .map(|(head, lines)| {
                    let ctx = [head.clone()];
                    let kept = lines.iter().filter(|l| !out(&ctx, l)).cloned().collect();
                    (head.clone(), kept)
                })
                .collect(),
            redistribute: kept(&self.redistribute, |(path, _), line| !out(path, line)),
            bfd: kept(&self.bfd, |head, _| !out(&[BFD.to_string()], head)),
        }
    }

    /// What of these objects none of `holders` has: a prefix entry or a whole route-map entry
    /// (head and lines) that one of them holds as it is here is left out.
    pub fn beyond(&self, holders: &[&Owned]) -> Owned {
        let prefix_entries = if self.prefix_entries_held_by(holders) {
            Arc::default()
        } else {
            Arc::new(kept(&self.prefix_entries, |k, _| {
                !holders.iter().any(|h| h.prefix_entries.contains_key(k))
            }))
        };
        Owned {
            prefix_entries,
            route_maps: kept(&self.route_maps, |head, lines| {
                !holders
                    .iter()
                    .any(|h| h.route_maps.get(head) == Some(lines))
            }),
            redistribute: kept(&self.redistribute, |k, _| {
                !holders.iter().any(|h| h.redistribute.contains_key(k))
            }),
            bfd: kept(&self.bfd, |head, lines| {
                !holders.iter().any(|h| h.bfd.get(head) == Some(lines))
            }),
        }
    }

    /// Whether one of `holders` holds these very prefix entries (the same shared map): nothing
    /// to look up entry by entry.
    fn prefix_entries_held_by(&self, holders: &[&Owned]) -> bool {
        holders
            .iter()
            .any(|h| Arc::ptr_eq(&h.prefix_entries, &self.prefix_entries))
    }

    /// routelb's entries in the base's own route-maps (`spec.bgp.outboundRouteMaps`): route-map
    /// name → their sequence numbers. For probes that check them without reading the whole
    /// running configuration (`show route-map NAME`).
    pub fn hook_entries(&self) -> BTreeMap<String, BTreeSet<u32>> {
        let mut out: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
        for head in self.route_maps.keys() {
            if let Some((name, _, seq)) = route_map_head(head)
                && !name.starts_with(PREFIX)
            {
                out.entry(name.to_string()).or_default().insert(seq);
            }
        }
        out
    }

    /// The first of these objects that none of `holders` has, as a command: what no daemon
    /// would take.
    pub fn uncovered(&self, holders: &[&Owned]) -> Option<String> {
        let entries = (!self.prefix_entries_held_by(holders)).then_some(&*self.prefix_entries);
        for (key, line) in entries.into_iter().flatten() {
            if !holders.iter().any(|h| h.prefix_entries.contains_key(key)) {
                return Some(line.clone());
            }
        }
        for (head, lines) in &self.route_maps {
            for l in std::iter::once(head).chain(lines) {
                let held = holders.iter().any(|h| {
                    h.route_maps
                        .get(head)
                        .is_some_and(|ls| l == head || ls.contains(l))
                });
                if !held {
                    return Some(if l == head {
                        head.clone()
                    } else {
                        format!("{head} / {l}")
                    });
                }
            }
        }
        for ((path, key), line) in &self.redistribute {
            if !holders
                .iter()
                .any(|h| h.redistribute.contains_key(&(path.clone(), key.clone())))
            {
                return Some(format!("{} / {line}", path.join(" / ")));
            }
        }
        for head in self.bfd.keys() {
            if !holders.iter().any(|h| h.bfd.contains_key(head)) {
                return Some(format!("{BFD} / {head}"));
            }
        }
        None
    }
}

fn prefix_key(line: &str) -> Option<String> {
    let mut w = line.split_whitespace();
    let (afi, kw, name, seq, n) = (w.next()?, w.next()?, w.next()?, w.next()?, w.next()?);
    (matches!(afi, "ip" | "ipv6")
        && kw == "prefix-list"
        && name.starts_with(PREFIX)
        && seq == "seq")
        .then(|| format!("{afi} prefix-list {name} seq {n}"))
}

fn redistribute_key(line: &str) -> Option<String> {
    let (head, rm) = line.split_once(" route-map ")?;
    (line.starts_with("redistribute ") && rm.trim().starts_with(PREFIX))
        .then(|| head.trim().to_string())
}

/// Extracts the owned objects from a parsed configuration.
pub fn owned(tree: &[Node]) -> Owned {
    let mut o = Owned::default();
    let mut prefix_entries = PrefixEntries::new();
    fn walk(nodes: &[Node], path: &mut Vec<String>, o: &mut Owned) {
        for n in nodes {
            if let Some(key) = redistribute_key(&n.line) {
                o.redistribute.insert((path.clone(), key), n.line.clone());
            }
            if !n.children.is_empty() {
                path.push(n.line.clone());
                walk(&n.children, path, o);
                path.pop();
            }
        }
    }
    for n in tree {
        if let Some(key) = prefix_key(&n.line) {
            prefix_entries.insert(key, n.line.clone());
        } else if is_owned_route_map(n) {
            // Sorted: the daemon shows an entry's lines in the order they were added, and
            // their order means nothing.
            let mut lines: Vec<String> = n.children.iter().map(|c| c.line.clone()).collect();
            lines.sort();
            o.route_maps.insert(n.line.clone(), lines);
        } else if n.line.starts_with("router ") {
            let mut path = vec![n.line.clone()];
            walk(&n.children, &mut path, &mut o);
        } else if n.line == BFD {
            for b in n.children.iter().filter(|b| is_owned_bfd_block(b)) {
                // bfdd does not show a setting at its default: neither side keeps one.
                let mut lines: Vec<String> = b
                    .children
                    .iter()
                    .map(|c| c.line.clone())
                    .filter(|l| !BFD_DEFAULTS.contains(&l.as_str()))
                    .collect();
                lines.sort();
                o.bfd.insert(b.line.clone(), lines);
            }
        }
    }
    o.prefix_entries = Arc::new(prefix_entries);
    o
}

/// Writes a node back as configuration text, indented, blocks closed with `exit`.
fn write_node(n: &Node, depth: usize, keep: &dyn Fn(&Node, usize) -> bool, out: &mut String) {
    if !keep(n, depth) {
        return;
    }
    out.push_str(&" ".repeat(depth));
    out.push_str(&n.line);
    out.push('\n');
    if !n.children.is_empty() {
        for c in &n.children {
            write_node(c, depth + 1, keep, out);
        }
        out.push_str(&" ".repeat(depth));
        out.push_str(if n.line.starts_with("address-family") {
            "exit-address-family\n"
        } else {
            "exit\n"
        });
    }
}

/// A configuration split into independently valid pieces, each as configuration text: every
/// top-level line or block (a prefix-list line, a route-map entry, a router context).
pub fn units(tree: &[Node]) -> Vec<String> {
    tree.iter().map(unit).collect()
}

/// One piece of [`units`] as configuration text.
pub fn unit(n: &Node) -> String {
    let mut s = String::new();
    write_node(n, 0, &|_, _| true, &mut s);
    s
}

/// A hash of a unit's lines and their nesting, without writing it out: what tells a unit
/// seen before from a new one.
pub fn unit_hash(n: &Node) -> u64 {
    use std::hash::{Hash, Hasher};
    fn walk(n: &Node, depth: usize, h: &mut impl Hasher) {
        depth.hash(h);
        n.line.hash(h);
        n.children.len().hash(h);
        for c in &n.children {
            walk(c, depth + 1, h);
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    walk(n, 0, &mut h);
    h.finish()
}

/// The routing instances in a running configuration.
pub fn instances(tree: &[Node]) -> Instances {
    let mut inst = Instances::default();
    for n in tree {
        let w: Vec<&str> = n.line.split_whitespace().collect();
        match w.as_slice() {
            ["router", "bgp", asn, rest @ ..] => {
                if let Ok(asn) = asn.parse() {
                    let vrf = match rest {
                        ["vrf", v, ..] => Some(v.to_string()),
                        _ => None,
                    };
                    inst.bgp.push(BgpInstance { asn, vrf });
                }
            }
            ["router", "ospf", ..] => inst.ospf = true,
            ["router", "ospf6", ..] => inst.ospf6 = true,
            ["router", "isis", tag, ..] => inst.isis.push(tag.to_string()),
            ["router", "rip", ..] => inst.rip = true,
            ["router", "ripng", ..] => inst.ripng = true,
            _ => {}
        }
    }
    inst.route_maps = base_route_maps(tree);
    inst.redistributed = base_redistributions(tree);
    inst
}

/// The base's own `redistribute connected` lines where routelb puts its own, by the name of
/// routelb's route-map there. Where routelb's line has replaced the base's, the base's is the
/// one its route-map's fallback entry recorded.
pub fn base_redistributions(tree: &[Node]) -> BTreeMap<String, BaseRedistribute> {
    let mut out = BTreeMap::new();
    for n in tree {
        let Some((name, true, BASE_FALLBACK_SEQ)) = route_map_head(&n.line) else {
            continue;
        };
        if !name.starts_with(PREFIX) {
            continue;
        }
        let kept = n
            .children
            .iter()
            .find_map(|c| base_line_of_description(&c.line));
        if let Some(base) = kept.and_then(parse_base_redistribute) {
            out.insert(name.to_string(), base);
        }
    }
    fn walk(nodes: &[Node], path: &mut Vec<String>, out: &mut BTreeMap<String, BaseRedistribute>) {
        for n in nodes {
            if redistribute_key(&n.line).is_none()
                && let Some(name) = routelb_map_at(path, &n.line)
                && let Some(base) = parse_base_redistribute(&n.line)
            {
                out.insert(name, base);
            }
            if !n.children.is_empty() {
                path.push(n.line.clone());
                walk(&n.children, path, out);
                path.pop();
            }
        }
    }
    for n in tree.iter().filter(|n| n.line.starts_with("router ")) {
        walk(&n.children, &mut vec![n.line.clone()], &mut out);
    }
    out
}

/// The base's line a fallback entry's `description base: <line>` recorded.
fn base_line_of_description(line: &str) -> Option<&str> {
    line.strip_prefix("description ")?
        .strip_prefix(BASE_FALLBACK_MARK)
}

/// The name of routelb's route-map for a `redistribute … connected` line at `path` (the
/// enclosing `router …` and `address-family …` lines), where the templates put routelb's own
/// line; `None` anywhere else.
pub fn routelb_map_at(path: &[String], line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let router: Vec<&str> = path.first()?.split_whitespace().collect();
    let af = path.get(1).map(String::as_str);
    let (map, family) = match (router.as_slice(), af, words.as_slice()) {
        (["router", "bgp", _], Some(af), ["redistribute", "connected", ..]) if path.len() == 2 => {
            ("ROUTELB-BGP".to_string(), bgp_family(af)?)
        }
        (["router", "bgp", _, "vrf", vrf], Some(af), ["redistribute", "connected", ..])
            if path.len() == 2 =>
        {
            (format!("ROUTELB-BGP-{vrf}"), bgp_family(af)?)
        }
        (_, Some(_), _) => return None,
        (["router", "ospf"], None, ["redistribute", "connected", ..]) => {
            ("ROUTELB-OSPF".into(), "V4")
        }
        (["router", "ospf6"], None, ["redistribute", "connected", ..]) => {
            ("ROUTELB-OSPF".into(), "V6")
        }
        (["router", "rip"], None, ["redistribute", "connected", ..]) => {
            ("ROUTELB-RIP".into(), "V4")
        }
        (["router", "ripng"], None, ["redistribute", "connected", ..]) => {
            ("ROUTELB-RIP".into(), "V6")
        }
        (["router", "isis", _], None, ["redistribute", afi, "connected", level, ..]) => {
            let level = match *level {
                "level-1" => "L1",
                "level-2" => "L2",
                _ => return None,
            };
            let family = match *afi {
                "ipv4" => "V4",
                "ipv6" => "V6",
                _ => return None,
            };
            (format!("ROUTELB-ISIS-{level}"), family)
        }
        _ => return None,
    };
    Some(format!("{map}-{family}"))
}

fn bgp_family(af: &str) -> Option<&'static str> {
    match af {
        "address-family ipv4 unicast" => Some("V4"),
        "address-family ipv6 unicast" => Some("V6"),
        _ => None,
    }
}

/// A `redistribute [ipv4|ipv6] connected [level-N] [metric M] [metric-type T] [route-map X]`
/// line's options, in any order; `None` for another source or an option routelb cannot
/// reproduce in a route-map entry.
pub fn parse_base_redistribute(line: &str) -> Option<BaseRedistribute> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let options = match words.as_slice() {
        ["redistribute", "connected", rest @ ..] => rest,
        [
            "redistribute",
            "ipv4" | "ipv6",
            "connected",
            "level-1" | "level-2",
            rest @ ..,
        ] => rest,
        _ => return None,
    };
    let mut base = BaseRedistribute {
        line: words.join(" "),
        ..BaseRedistribute::default()
    };
    for pair in options.chunks(2) {
        match pair {
            ["metric", m] => base.metric = Some(m.parse().ok()?),
            ["metric-type", t] => base.metric_type = Some(t.parse().ok()?),
            ["route-map", name] => base.route_map = Some(name.to_string()),
            _ => return None,
        }
    }
    Some(base)
}

/// The base's own line that routelb's redistribute `line` replaced, as the fallback entry of
/// its route-map recorded it: what goes back when routelb's line goes.
pub fn replaced_base_line(
    route_maps: &BTreeMap<String, Vec<String>>,
    line: &str,
) -> Option<String> {
    let (_, rm) = line.split_once(" route-map ")?;
    let head = format!(
        "route-map {} permit {BASE_FALLBACK_SEQ}",
        rm.split_whitespace().next()?
    );
    route_maps
        .get(&head)?
        .iter()
        .find_map(|l| base_line_of_description(l))
        .map(String::from)
}

/// The base's own route-maps (routelb's entries left out), with what decides whether routelb
/// can hook into them: a catch-all deny, entries in routelb's reserved range.
pub fn base_route_maps(tree: &[Node]) -> BTreeMap<String, BaseRouteMap> {
    let mut maps: BTreeMap<String, BaseRouteMap> = BTreeMap::new();
    for n in tree.iter().filter(|n| !is_owned_route_map(n)) {
        let Some((name, permit, seq)) = route_map_head(&n.line) else {
            continue;
        };
        let map = maps.entry(name.to_string()).or_default();
        if !permit && !n.children.iter().any(|c| c.line.starts_with("match ")) {
            map.catch_all_deny = Some(map.catch_all_deny.map_or(seq, |s| s.min(seq)));
        }
        if HOOK_SEQ.contains(&seq) {
            map.in_reserved.push(seq);
        }
    }
    maps
}

/// One step of a change, sent from the top of configuration mode: enter each `context` line
/// (`route-map X permit 10`, `router bgp 64512`, `address-family ipv4 unicast`), then send
/// `lines` inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub context: Vec<String>,
    pub lines: Vec<String>,
}

impl Change {
    fn top(line: String) -> Change {
        Change {
            context: vec![],
            lines: vec![line],
        }
    }

    /// The context lines, then the lines: every command the step sends.
    pub fn all_lines(&self) -> impl Iterator<Item = &String> {
        self.context.iter().chain(&self.lines)
    }
}

/// The commands, from configuration mode, that turn `running` into `desired`. Order: stop
/// redistributing what goes away, update prefix lists, then route-maps, then new redistribute
/// lines, and remove whole prefix lists last, so nothing is referenced before it exists or
/// after it is gone.
pub fn diff(running: &Owned, desired: &Owned) -> Vec<Change> {
    let mut changes: Vec<Change> = Vec::new();
    let in_context = |path: &[String], line: String| Change {
        context: path.to_vec(),
        lines: vec![line],
    };
    // 1. Redistribute lines that go away entirely.
    changes.extend(redistribute_removals(running, desired));
    // 2. Prefix-list entries. First out: changed ones (FRR refuses a second rule at the same
    //    sequence number) and, in lists that stay, the ones no longer wanted: FRR silently
    //    ignores a prefix added while the list still holds it at another sequence number, so
    //    a prefix that moves must leave its old place first. Then new and changed ones go in.
    let entries = EntryChanges::of(&running.prefix_entries, &desired.prefix_entries);
    changes.extend(
        entries
            .out_first
            .iter()
            .map(|old| Change::top(format!("no {old}"))),
    );
    changes.extend(entries.new.iter().map(|line| Change::top(line.to_string())));
    // BFD profiles before the peers that use them.
    changes.extend(bfd_additions(running, desired, true));
    // 3. Route-map entries: new, changed (line by line), removed.
    for (head, lines) in &desired.route_maps {
        match running.route_maps.get(head) {
            Some(old) if old == lines => {}
            Some(old) => {
                let mut step = Change {
                    context: vec![head.clone()],
                    lines: vec![],
                };
                for l in old.iter().filter(|l| !lines.contains(l)) {
                    // A new `match … prefix-list` replaces the old one in place; removing the
                    // old first would leave a permit entry that matches everything meanwhile.
                    let replaced = l.starts_with("match ")
                        && lines.iter().any(|n| {
                            n.split_whitespace()
                                .take(4)
                                .eq(l.split_whitespace().take(4))
                        });
                    if !replaced {
                        step.lines.push(format!("no {l}"));
                    }
                }
                for l in lines.iter().filter(|l| !old.contains(l)) {
                    step.lines.push(l.clone());
                }
                changes.push(step);
            }
            None => changes.push(Change {
                context: vec![head.clone()],
                lines: lines.clone(),
            }),
        }
    }
    // 4. Redistribute lines that are new or point at another route-map (a new line replaces).
    for (key, line) in &desired.redistribute {
        if running.redistribute.get(key) != Some(line) {
            changes.push(in_context(&key.0, line.clone()));
        }
    }
    // 5. Route-maps and the entries of prefix lists no longer wanted at all.
    for head in running.route_maps.keys() {
        if !desired.route_maps.contains_key(head) {
            changes.push(Change::top(format!("no {head}")));
        }
    }
    changes.extend(
        entries
            .out_last
            .iter()
            .map(|old| Change::top(format!("no {old}"))),
    );
    // BFD peers, then the profiles no longer used.
    changes.extend(bfd_additions(running, desired, false));
    changes.extend(bfd_removals(running, desired, false));
    changes.extend(bfd_removals(running, desired, true));
    changes
}

/// routelb's BFD blocks of one sort (`profiles`, else peers) that are new or changed: each is
/// entered and its new lines set (a changed line replaces the old one in place: a peer's
/// `profile`, a profile's timers).
fn bfd_additions(running: &Owned, desired: &Owned, profiles: bool) -> Vec<Change> {
    desired
        .bfd
        .iter()
        .filter(|(head, _)| head.starts_with("profile ") == profiles)
        .filter_map(|(head, lines)| {
            let old = running.bfd.get(head);
            (old != Some(lines)).then(|| {
                let setting = |l: &String| l.split_whitespace().next().map(str::to_string);
                // A setting back at its default is a line gone: `no` it.
                let reset = old.into_iter().flatten().filter(|o| {
                    !lines.contains(o) && !lines.iter().any(|l| setting(l) == setting(o))
                });
                Change {
                    context: vec![BFD.to_string(), head.clone()],
                    lines: reset
                        .map(|o| format!("no {o}"))
                        .chain(
                            lines
                                .iter()
                                .filter(|l| old.is_none_or(|o| !o.contains(l)))
                                .cloned(),
                        )
                        .collect(),
                }
            })
        })
        .collect()
}

/// routelb's BFD blocks of one sort that are no longer wanted, removed in one step.
fn bfd_removals(running: &Owned, desired: &Owned, profiles: bool) -> Option<Change> {
    let gone: Vec<String> = running
        .bfd
        .keys()
        .filter(|h| h.starts_with("profile ") == profiles && !desired.bfd.contains_key(*h))
        .map(|h| format!("no {h}"))
        .collect();
    (!gone.is_empty()).then(|| Change {
        context: vec![BFD.to_string()],
        lines: gone,
    })
}

/// How one set of prefix entries becomes another ([`diff`]'s steps 2 and 5), found in one
/// walk over both (sorted by key) instead of a lookup per entry: at 5,000 entries the lookups
/// cost more than the rest of the pass's diff.
struct EntryChanges<'a> {
    /// Entries that change or leave a list that stays: out before anything goes in.
    out_first: Vec<&'a str>,
    /// New and changed entries.
    new: Vec<&'a str>,
    /// Entries of lists no longer wanted at all: out last.
    out_last: Vec<&'a str>,
}

impl<'a> EntryChanges<'a> {
    fn of(running: &'a Arc<PrefixEntries>, desired: &'a Arc<PrefixEntries>) -> EntryChanges<'a> {
        let mut c = EntryChanges {
            out_first: vec![],
            new: vec![],
            out_last: vec![],
        };
        // The same shared entries (what the last apply sent, unchanged since) need nothing.
        if Arc::ptr_eq(running, desired) {
            return c;
        }
        let mut staying_lists: Vec<&str> = desired.keys().map(|k| list_of(k)).collect();
        // Sorted already (a list's keys sort together, in the lists' order); sorted again
        // so the search does not depend on that.
        staying_lists.sort_unstable();
        staying_lists.dedup();
        let staying = |key: &str| staying_lists.binary_search(&list_of(key)).is_ok();
        let (mut old, mut want) = (running.iter().peekable(), desired.iter().peekable());
        loop {
            let order = match (old.peek(), want.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((ok, _)), Some((wk, _))) => ok.cmp(wk),
            };
            match order {
                std::cmp::Ordering::Less => {
                    let (key, line) = old.next().expect("peeked");
                    match staying(key) {
                        true => c.out_first.push(line),
                        false => c.out_last.push(line),
                    }
                }
                std::cmp::Ordering::Greater => c.new.push(want.next().expect("peeked").1),
                std::cmp::Ordering::Equal => {
                    let (_, held) = old.next().expect("peeked");
                    let (_, line) = want.next().expect("peeked");
                    if held != line {
                        c.out_first.push(held);
                        c.new.push(line);
                    }
                }
            }
        }
        c
    }
}

/// Redistribute lines that go away entirely: the base's own line comes back where routelb's
/// replaced it (before step 5 of [`diff`] removes the fallback entry that recorded it).
fn redistribute_removals(running: &Owned, desired: &Owned) -> Vec<Change> {
    let mut changes = Vec::new();
    for (key, line) in &running.redistribute {
        if !desired.redistribute.contains_key(key) {
            // In place: `no redistribute` would withdraw the base's own routes too. RIP and
            // RIPng need routelb's prefixes drained first (see `rip_withdraw`).
            let lines = match replaced_base_line(&running.route_maps, line) {
                Some(back) => vec![back],
                None => vec![format!("no {line}")],
            };
            changes.push(Change {
                context: key.0.clone(),
                lines,
            });
        }
    }
    changes
}

/// `ip prefix-list NAME` of a prefix-entry key `ip prefix-list NAME seq N`.
fn list_of(key: &str) -> &str {
    key.rsplitn(3, ' ').nth(2).unwrap_or(key)
}

/// The running configuration with the owned objects replaced by the fragment's: the full file
/// `frr-reload.py` wants.
pub fn full_config(running_text: &str, fragment: &str) -> String {
    let mut out = String::new();
    // `show running-config` starts with chatter that is not configuration.
    let body: String = running_text
        .lines()
        .filter(|l| {
            !matches!(
                l.trim(),
                "Building configuration..." | "Current configuration:"
            )
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let mut tree = parse(&body);
    let keeps = owned(&tree);
    let desired = owned(&parse(fragment));
    for n in tree.iter_mut().filter(|n| n.line.starts_with("router ")) {
        restore_replaced(n, &mut vec![], &keeps.route_maps, &desired);
    }
    let not_owned = |n: &Node, depth: usize| {
        let owned_line = redistribute_key(&n.line).is_some() || prefix_key(&n.line).is_some();
        let owned_map = depth == 0 && is_owned_route_map(n);
        // (a `bfd` block of the running part keeps the base's own profiles and peers)
        let owned_bfd = depth == 1 && is_owned_bfd_block(n);
        !(owned_line || owned_map || owned_bfd)
    };
    for n in &tree {
        write_node(n, 0, &not_owned, &mut out);
    }
    out.push_str(fragment);
    out
}

/// Turns routelb's redistribute lines under `node` that the fragment no longer has back into
/// the base's lines they replaced.
fn restore_replaced(
    node: &mut Node,
    path: &mut Vec<String>,
    route_maps: &BTreeMap<String, Vec<String>>,
    desired: &Owned,
) {
    path.push(node.line.clone());
    for c in &mut node.children {
        let gone = redistribute_key(&c.line)
            .is_some_and(|key| !desired.redistribute.contains_key(&(path.clone(), key)));
        if let Some(base) = gone
            .then(|| replaced_base_line(route_maps, &c.line))
            .flatten()
        {
            c.line = base;
        }
        restore_replaced(c, path, route_maps, desired);
    }
    path.pop();
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNNING: &str = "Building configuration...

Current configuration:
!
frr version 8.4.4
frr defaults traditional
hostname node
!
ip prefix-list ROUTELB-POOL-a-V4 seq 5 permit 203.0.113.0/24 le 32
ip prefix-list ROUTELB-POOL-old-V4 seq 5 permit 198.51.100.0/24 le 32
ip prefix-list TEAM seq 5 permit 10.0.0.0/8
!
route-map ROUTELB-BGP-V4 permit 50000
 match ip address prefix-list ROUTELB-POOL-a-V4
 set community 65000:1 additive
exit
!
route-map TEAM-OUT permit 10
exit
!
router bgp 64512
 bgp router-id 10.0.0.1
 neighbor 172.30.0.1 remote-as 64500
 !
 address-family ipv4 unicast
  redistribute connected route-map ROUTELB-BGP-V4
  neighbor 172.30.0.1 route-map TEAM-OUT out
 exit-address-family
exit
!
router bgp 64512 vrf red
exit
!
router ospf
 redistribute connected route-map ROUTELB-OSPF-V4
exit
router isis core
exit
";

    #[test]
    fn finds_owned_objects_and_instances() {
        let tree = parse(RUNNING);
        let o = owned(&tree);
        assert_eq!(o.prefix_entries.len(), 2);
        assert_eq!(
            o.route_maps["route-map ROUTELB-BGP-V4 permit 50000"].len(),
            2
        );
        assert_eq!(o.redistribute.len(), 2);
        let inst = instances(&tree);
        assert_eq!(
            inst.bgp,
            vec![
                BgpInstance {
                    asn: 64512,
                    vrf: None
                },
                BgpInstance {
                    asn: 64512,
                    vrf: Some("red".into())
                }
            ]
        );
        assert!(inst.ospf && !inst.ospf6 && !inst.rip);
        assert_eq!(inst.isis, ["core"]);
    }

    const BFD_RUNNING: &str = "bfd
 profile base-slow
  transmit-interval 900
 exit
 peer 192.0.2.1
 exit
 profile ROUTELB-BFD-50MS-X3
  detect-multiplier 3
  receive-interval 50
  transmit-interval 50
 exit
 peer 10.0.0.2 interface eth0
  profile ROUTELB-BFD-50MS-X3
 exit
 peer 10.0.0.3 interface eth0
  profile ROUTELB-BFD-50MS-X3
 exit
exit
";

    #[test]
    fn routelbs_bfd_profiles_and_peers_are_owned_and_the_bases_are_not() {
        let o = owned(&parse(BFD_RUNNING));
        let heads: Vec<&str> = o.bfd.keys().map(String::as_str).collect();
        assert_eq!(
            heads,
            [
                "peer 10.0.0.2 interface eth0",
                "peer 10.0.0.3 interface eth0",
                "profile ROUTELB-BFD-50MS-X3"
            ]
        );
        // frr-reload's file keeps the base's blocks, and the fragment brings routelb's
        let full = full_config(BFD_RUNNING, "");
        assert!(full.contains("profile base-slow") && full.contains("peer 192.0.2.1"));
        assert!(
            !full.contains("ROUTELB") && !full.contains("10.0.0.2"),
            "{full}"
        );
    }

    #[test]
    fn bfd_profiles_come_before_the_peers_that_use_them_and_leave_after() {
        let running = owned(&parse(BFD_RUNNING));
        let desired = owned(&parse(
            "bfd
 profile ROUTELB-BFD-30MS-X3
  detect-multiplier 3
  receive-interval 30
  transmit-interval 30
 exit
 peer 10.0.0.2 interface eth0
  profile ROUTELB-BFD-30MS-X3
 exit
 peer 10.0.0.4 interface eth0
  profile ROUTELB-BFD-30MS-X3
 exit
exit
",
        ));
        let steps: Vec<(Vec<String>, Vec<String>)> = diff(&running, &desired)
            .into_iter()
            .map(|c| (c.context, c.lines))
            .collect();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            steps,
            vec![
                (
                    s(&["bfd", "profile ROUTELB-BFD-30MS-X3"]),
                    // (multiplier 3 is bfdd's default: it shows no such line)
                    s(&["receive-interval 30", "transmit-interval 30"])
                ),
                (
                    s(&["bfd", "peer 10.0.0.2 interface eth0"]),
                    s(&["profile ROUTELB-BFD-30MS-X3"])
                ),
                (
                    s(&["bfd", "peer 10.0.0.4 interface eth0"]),
                    s(&["profile ROUTELB-BFD-30MS-X3"])
                ),
                (s(&["bfd"]), s(&["no peer 10.0.0.3 interface eth0"])),
                (s(&["bfd"]), s(&["no profile ROUTELB-BFD-50MS-X3"])),
            ]
        );
        assert!(diff(&desired, &desired).is_empty());
    }

    #[test]
    fn diff_sends_only_changes_in_a_safe_order() {
        let running = owned(&parse(RUNNING));
        let desired = owned(&parse(
            "ip prefix-list ROUTELB-POOL-a-V4 seq 5 permit 203.0.113.0/25 le 32
ip prefix-list ROUTELB-POOL-b-V4 seq 5 permit 192.0.2.0/24 le 32
route-map ROUTELB-BGP-V4 permit 50000
 match ip address prefix-list ROUTELB-POOL-a-V4
 set community 65000:2 additive
exit
route-map ROUTELB-BGP-V4 permit 50010
 match ip address prefix-list ROUTELB-POOL-b-V4
exit
router bgp 64512
 address-family ipv4 unicast
  redistribute connected route-map ROUTELB-BGP-V4
 exit-address-family
exit
",
        ));
        let flat: Vec<String> = flat(&diff(&running, &desired));
        assert_eq!(
            flat,
            [
                "router ospf / no redistribute connected route-map ROUTELB-OSPF-V4",
                "no ip prefix-list ROUTELB-POOL-a-V4 seq 5 permit 203.0.113.0/24 le 32",
                "ip prefix-list ROUTELB-POOL-a-V4 seq 5 permit 203.0.113.0/25 le 32",
                "ip prefix-list ROUTELB-POOL-b-V4 seq 5 permit 192.0.2.0/24 le 32",
                "route-map ROUTELB-BGP-V4 permit 50000 / no set community 65000:1 additive / set community 65000:2 additive",
                "route-map ROUTELB-BGP-V4 permit 50010 / match ip address prefix-list ROUTELB-POOL-b-V4",
                "no ip prefix-list ROUTELB-POOL-old-V4 seq 5 permit 198.51.100.0/24 le 32",
            ]
        );
        // Applying the same thing again is a no-op.
        assert!(diff(&desired, &desired).is_empty());
    }

    /// FRR's prefix-list semantics, enough for the property below: `no <line>` removes the
    /// entry at that key when the line matches; a line adds its entry unless the key is taken
    /// or the list already holds the prefix (FRR ignores both).
    fn apply_prefix_changes(held: &PrefixEntries, changes: &[Change]) -> PrefixEntries {
        let mut held = held.clone();
        for line in changes.iter().flat_map(|c| &c.lines) {
            let (removal, entry) = match line.strip_prefix("no ") {
                Some(rest) => (true, rest),
                None => (false, line.as_str()),
            };
            let key = prefix_key(entry).expect("a prefix-list line");
            let prefix = entry.rsplit(' ').next().unwrap();
            if removal {
                assert_eq!(
                    held.remove(&key).as_deref(),
                    Some(entry),
                    "removes what is held"
                );
            } else {
                let list = list_of(&key);
                let taken = held.iter().any(|(k, l)| {
                    k == &key || (list_of(k) == list && l.rsplit(' ').next() == Some(prefix))
                });
                assert!(!taken, "{line}: FRR would ignore it");
                held.insert(key, entry.to_string());
            }
        }
        held
    }

    proptest::proptest! {
        /// Whatever the two sets of entries (lists that stay, come and go; entries that move to
        /// another sequence number), the diff's prefix-list commands turn one into the other,
        /// as FRR applies them, and no list loses an entry it keeps.
        #[test]
        fn prefix_entry_changes_turn_running_into_desired(
            running in proptest::collection::btree_set((0u8..4, 0u8..12, 0u8..6), 0..40),
            desired in proptest::collection::btree_set((0u8..4, 0u8..12, 0u8..6), 0..40),
        ) {
            // (list, prefix, seq): one prefix per list at most, as routelb renders them.
            let entries = |set: &BTreeSet<(u8, u8, u8)>| {
                let mut seen = BTreeSet::new();
                let mut out = PrefixEntries::new();
                for &(list, prefix, seq) in set {
                    let key = format!("ip prefix-list ROUTELB-POOL-p{list}-V4 seq {seq}");
                    if seen.insert((list, prefix)) && !out.contains_key(&key) {
                        out.insert(key.clone(), format!("{key} permit 10.0.{prefix}.1/32"));
                    }
                }
                out
            };
            let (running, desired) = (entries(&running), entries(&desired));
            let owned_of = |e: &PrefixEntries| Owned {
                prefix_entries: Arc::new(e.clone()),
                ..Owned::default()
            };
            let changes = diff(&owned_of(&running), &owned_of(&desired));
            proptest::prop_assert_eq!(apply_prefix_changes(&running, &changes), desired);
        }
    }

    #[test]
    fn merging_daemons_joins_blocks_they_each_hold_part_of() {
        let zebra = parse(
            "hostname n1\nip prefix-list ROUTELB-POOL-a-V4 seq 5 permit 192.0.2.0/24\nroute-map ROUTELB-BGP-V4 permit 10\n match ip address prefix-list ROUTELB-POOL-a-V4\nexit\n",
        );
        let bgpd = parse(
            "hostname n1\nip prefix-list ROUTELB-POOL-a-V4 seq 5 permit 192.0.2.0/24\nroute-map ROUTELB-BGP-V4 permit 10\n match ip address prefix-list ROUTELB-POOL-a-V4\n set community 1:1 additive\nexit\nrouter bgp 64512\n address-family ipv4 unicast\n  redistribute connected route-map ROUTELB-BGP-V4\n exit-address-family\nexit\n",
        );
        let merged = merge(vec![bgpd.clone(), zebra]);
        assert_eq!(merged, bgpd, "zebra holds nothing bgpd does not");
        let o = owned(&merge(vec![
            parse("route-map ROUTELB-X permit 10\n set metric 5\nexit\n"),
            parse("route-map ROUTELB-X permit 10\n set community 1:1\nexit\n"),
        ]));
        assert_eq!(
            o.route_maps["route-map ROUTELB-X permit 10"],
            ["set community 1:1", "set metric 5"]
        );
    }

    #[test]
    fn daemons_hold_what_they_take() {
        let all = owned(&parse(
            "ip prefix-list ROUTELB-POOL-a-V4 seq 5 permit 192.0.2.0/24\nipv6 prefix-list ROUTELB-POOL-a-V6 seq 5 permit 2001:db8::/64\nroute-map ROUTELB-BGP-V4 permit 10\n match ip address prefix-list ROUTELB-POOL-a-V4\n set community 1:1 additive\nexit\nrouter bgp 64512\n address-family ipv4 unicast\n  redistribute connected route-map ROUTELB-BGP-V4\n exit-address-family\nexit\n",
        ));
        assert_eq!(kind("no set community 1:1 additive"), "set community");
        assert_eq!(
            router_daemon("router bgp 64512 vrf red").as_deref(),
            Some("bgpd")
        );
        assert_eq!(router_daemon("router ospf6").as_deref(), Some("ospf6d"));
        assert_eq!(router_daemon("route-map X permit 10"), None);
        assert_eq!(
            kind("route-map ROUTELB-BGP-V4 permit 10"),
            "route-map <name>"
        );
        // What zebra answered "unknown command" to.
        let zebra_ignores: BTreeSet<String> = ["router bgp", "route-map <name> > set community"]
            .map(String::from)
            .into();
        let zebra = all.without(&zebra_ignores);
        assert_eq!(zebra.prefix_entries.len(), 2);
        assert_eq!(
            zebra.route_maps["route-map ROUTELB-BGP-V4 permit 10"],
            ["match ip address prefix-list ROUTELB-POOL-a-V4"]
        );
        assert!(zebra.redistribute.is_empty());
        // ospfd: no IPv6 prefix lists, no BGP.
        let ospfd = all.without(
            &[
                "ipv6 prefix-list",
                "router bgp",
                "route-map <name> > set community",
            ]
            .map(String::from)
            .into(),
        );
        assert_eq!(
            all.uncovered(&[&zebra, &ospfd]),
            Some("route-map ROUTELB-BGP-V4 permit 10 / set community 1:1 additive".into())
        );
        let bgpd = all.without(&BTreeSet::new());
        assert_eq!(all.uncovered(&[&zebra, &bgpd]), None);
    }

    #[test]
    fn a_new_match_replaces_the_old_without_a_match_all_moment() {
        let entry = |list: &str| {
            owned(&parse(&format!(
                "route-map ROUTELB-BGP-V4 permit 10\n match ip address prefix-list {list}\n set community 1:1 additive\nexit\n"
            )))
        };
        assert_eq!(
            flat(&diff(
                &entry("ROUTELB-POOL-a-V4"),
                &entry("ROUTELB-POOL-b-V4")
            )),
            ["route-map ROUTELB-BGP-V4 permit 10 / match ip address prefix-list ROUTELB-POOL-b-V4"]
        );
    }

    fn flat(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| c.all_lines().cloned().collect::<Vec<_>>().join(" / "))
            .collect()
    }

    #[test]
    fn a_prefix_that_moves_leaves_its_old_place_first() {
        // b is removed from the middle: c moves from seq 15 to seq 10. FRR ignores "seq 10
        // permit c" while c is still at 15, so 15 must go before 10 is written.
        let list = |entries: &[&str]| {
            let text: String = entries
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    format!(
                        "ip prefix-list ROUTELB-POOL-a-V4 seq {} permit {p}\n",
                        (i + 1) * 5
                    )
                })
                .collect();
            owned(&parse(&text))
        };
        let running = list(&["192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"]);
        let desired = list(&["192.0.2.1/32", "192.0.2.3/32"]);
        assert_eq!(
            flat(&diff(&running, &desired)),
            [
                "no ip prefix-list ROUTELB-POOL-a-V4 seq 10 permit 192.0.2.2/32",
                "no ip prefix-list ROUTELB-POOL-a-V4 seq 15 permit 192.0.2.3/32",
                "ip prefix-list ROUTELB-POOL-a-V4 seq 10 permit 192.0.2.3/32",
            ]
        );
    }

    /// A base in frr-k8s's shape with routelb's entries in its outbound route-map.
    const HOOKED: &str = "ip prefix-list 10.0.0.1-pl-ipv4 seq 1 permit 198.18.10.1/32
ip prefix-list ROUTELB-POOL-a-V4 seq 5 permit 203.0.113.0/24 le 32
route-map 10.0.0.1-in deny 20
exit
route-map 10.0.0.1-out permit 1
 match ip address prefix-list 10.0.0.1-pl-ipv4
exit
route-map 10.0.0.1-out permit 64123
 description routelb_pool_a
 match ip address prefix-list ROUTELB-POOL-a-V4
exit
route-map 10.0.0.1-out permit 64900
 match ip address prefix-list TEAM-OWN
exit
route-map TEAM-NOTE permit 64124
 description routelb-like but the team's
exit
route-map 10.0.0.1-out deny 65535
exit
";

    #[test]
    fn hooked_entries_are_owned_and_the_bases_are_not() {
        let tree = parse(HOOKED);
        let o = owned(&tree);
        let heads: Vec<&str> = o.route_maps.keys().map(String::as_str).collect();
        assert_eq!(heads, ["route-map 10.0.0.1-out permit 64123"]);
        let maps = instances(&tree).route_maps;
        let names: Vec<&str> = maps.keys().map(String::as_str).collect();
        assert_eq!(names, ["10.0.0.1-in", "10.0.0.1-out", "TEAM-NOTE"]);
        assert_eq!(maps["10.0.0.1-in"].catch_all_deny, Some(20));
        // The team's own entry in the reserved range is reported, not taken over.
        assert_eq!(maps["10.0.0.1-out"].in_reserved, [64_900]);
        assert_eq!(maps["10.0.0.1-out"].catch_all_deny, Some(65_535));
        assert_eq!(maps["TEAM-NOTE"].in_reserved, [64_124]);
        assert_eq!(
            kind("route-map 10.0.0.1-out permit 64123"),
            "route-map <name>"
        );
        assert_eq!(
            o.hook_entries(),
            BTreeMap::from([("10.0.0.1-out".to_string(), BTreeSet::from([64_123]))])
        );
    }

    #[test]
    fn hooks_go_in_after_their_lists_and_out_before_them_leaving_the_base_alone() {
        let base_only = "ip prefix-list 10.0.0.1-pl-ipv4 seq 1 permit 198.18.10.1/32
route-map 10.0.0.1-out permit 1
 match ip address prefix-list 10.0.0.1-pl-ipv4
exit
";
        let running = owned(&parse(base_only));
        assert_eq!(running, Owned::default());
        let desired = owned(&parse(HOOKED));
        let added = flat(&diff(&running, &desired));
        assert_eq!(
            added,
            [
                "ip prefix-list ROUTELB-POOL-a-V4 seq 5 permit 203.0.113.0/24 le 32",
                "route-map 10.0.0.1-out permit 64123 / description routelb_pool_a / match ip address prefix-list ROUTELB-POOL-a-V4",
            ]
        );
        let removed = flat(&diff(&desired, &running));
        assert_eq!(
            removed,
            [
                "no route-map 10.0.0.1-out permit 64123",
                "no ip prefix-list ROUTELB-POOL-a-V4 seq 5 permit 203.0.113.0/24 le 32",
            ]
        );
        // frr-reload.py of the base file leaves the base's entries and drops routelb's: the
        // owned objects then differ from the fragment's, so a sync check sees the loss.
        assert_ne!(owned(&parse(base_only)), desired);
        // The full file for frr-reload.py keeps the base's entries and replaces routelb's.
        let full = full_config(HOOKED, "");
        assert!(full.contains("route-map 10.0.0.1-out permit 1\n"));
        assert!(full.contains("route-map 10.0.0.1-out permit 64900\n"));
        assert!(full.contains("route-map 10.0.0.1-out deny 65535\n"));
        assert!(!full.contains("64123"));
    }

    /// An OSPF base redistributing its loopback, BGP in a VRF with a route-map, IS-IS at
    /// level 2, RIP with a metric.
    const REDISTRIBUTING: &str = "router bgp 64512 vrf red
 address-family ipv4 unicast
  redistribute connected route-map LOOPBACKS
 exit-address-family
 address-family ipv6 unicast
  redistribute static
 exit-address-family
exit
router ospf
 redistribute connected metric 30 metric-type 1 route-map LOOPBACKS
exit
router isis core
 redistribute ipv6 connected level-2 metric 5
exit
router rip
 redistribute connected metric 3
exit
router ripng
 redistribute connected tag 7
exit
";

    #[test]
    fn reads_the_bases_own_redistribution_per_routelb_route_map() {
        let r = instances(&parse(REDISTRIBUTING)).redistributed;
        let names: Vec<&str> = r.keys().map(String::as_str).collect();
        // ripng: `tag` has no route-map equivalent routelb writes; it is left as it was.
        assert_eq!(
            names,
            [
                "ROUTELB-BGP-red-V4",
                "ROUTELB-ISIS-L2-V6",
                "ROUTELB-OSPF-V4",
                "ROUTELB-RIP-V4"
            ]
        );
        assert_eq!(
            r["ROUTELB-OSPF-V4"],
            BaseRedistribute {
                line: "redistribute connected metric 30 metric-type 1 route-map LOOPBACKS".into(),
                route_map: Some("LOOPBACKS".into()),
                metric: Some(30),
                metric_type: Some(1),
            }
        );
        assert_eq!(r["ROUTELB-ISIS-L2-V6"].metric, Some(5));
        assert_eq!(
            r["ROUTELB-BGP-red-V4"].route_map.as_deref(),
            Some("LOOPBACKS")
        );
        assert_eq!(parse_base_redistribute("redistribute static"), None);
        assert_eq!(
            routelb_map_at(&["router ospf 2".into()], "redistribute connected"),
            None,
            "routelb writes only into the default OSPF instance"
        );
    }

    /// The running configuration once routelb's line replaced the base's in `router ospf`.
    const REPLACED: &str = "ip prefix-list ROUTELB-POOL-a-V4 seq 5 permit 203.0.113.0/24 le 32
route-map ROUTELB-OSPF-V4 permit 50000
 match ip address prefix-list ROUTELB-POOL-a-V4
exit
route-map ROUTELB-OSPF-V4 permit 65535
 description base: redistribute connected metric 30 route-map LOOPBACKS
 set metric 30
 call LOOPBACKS
exit
router ospf
 redistribute connected route-map ROUTELB-OSPF-V4
exit
";

    #[test]
    fn a_replaced_base_line_is_read_from_the_fallback_entry() {
        let r = instances(&parse(REPLACED)).redistributed;
        assert_eq!(
            r["ROUTELB-OSPF-V4"].line,
            "redistribute connected metric 30 route-map LOOPBACKS"
        );
        assert_eq!(r["ROUTELB-OSPF-V4"].metric, Some(30));
        // Only routelb's own maps record it.
        let foreign = REPLACED.replace("ROUTELB-OSPF-V4 permit 65535", "TEAM permit 65535");
        assert!(!base_redistributions(&parse(&foreign)).contains_key("TEAM"));
    }

    #[test]
    fn the_fallback_exists_before_routelbs_line_and_the_base_line_returns_before_it_goes() {
        let base = owned(&parse(
            "router ospf\n redistribute connected metric 30 route-map LOOPBACKS\nexit\n",
        ));
        let with_routelb = owned(&parse(REPLACED));
        assert_eq!(
            flat(&diff(&base, &with_routelb)),
            [
                "ip prefix-list ROUTELB-POOL-a-V4 seq 5 permit 203.0.113.0/24 le 32",
                "route-map ROUTELB-OSPF-V4 permit 50000 / match ip address prefix-list ROUTELB-POOL-a-V4",
                "route-map ROUTELB-OSPF-V4 permit 65535 / call LOOPBACKS / description base: redistribute connected metric 30 route-map LOOPBACKS / set metric 30",
                "router ospf / redistribute connected route-map ROUTELB-OSPF-V4",
            ]
        );
        assert_eq!(
            flat(&diff(&with_routelb, &Owned::default())),
            [
                "router ospf / redistribute connected metric 30 route-map LOOPBACKS",
                "no route-map ROUTELB-OSPF-V4 permit 50000",
                "no route-map ROUTELB-OSPF-V4 permit 65535",
                "no ip prefix-list ROUTELB-POOL-a-V4 seq 5 permit 203.0.113.0/24 le 32",
            ]
        );
        // RIP alike, in place (`rip_withdraw` drains routelb's prefixes before).
        let rip = |text: &str| owned(&parse(&text.replace("router ospf", "router rip")));
        assert_eq!(
            flat(&diff(&rip(REPLACED), &Owned::default()))[0],
            "router rip / redistribute connected metric 30 route-map LOOPBACKS"
        );
        // Without a fallback entry (the base had no line), routelb's line just goes.
        let own_only = REPLACED
            .split("route-map ROUTELB-OSPF-V4 permit 65535")
            .next()
            .unwrap();
        let own_only = owned(&parse(&format!(
            "{own_only}router ospf\n redistribute connected route-map ROUTELB-OSPF-V4\nexit\n"
        )));
        assert_eq!(
            flat(&diff(&own_only, &Owned::default()))[0],
            "router ospf / no redistribute connected route-map ROUTELB-OSPF-V4"
        );
    }

    #[test]
    fn the_full_file_gives_the_base_line_back_when_the_fragment_drops_routelbs() {
        let full = full_config(REPLACED, "");
        assert!(
            full.contains("router ospf\n redistribute connected metric 30 route-map LOOPBACKS\n"),
            "{full}"
        );
        assert!(!full.contains("ROUTELB"));
        let fragment = "router ospf\n redistribute connected route-map ROUTELB-OSPF-V4\nexit\n";
        let full = full_config(REPLACED, fragment);
        assert!(!full.contains("LOOPBACKS\n"), "{full}");
        assert!(full.ends_with(fragment));
    }

    #[test]
    fn units_round_trip() {
        let tree = parse(RUNNING);
        let text: String = units(&tree).concat();
        assert_eq!(parse(&text), tree);
    }

    #[test]
    fn full_config_replaces_owned_objects_only() {
        let full = full_config(
            RUNNING,
            "ip prefix-list ROUTELB-POOL-z-V4 seq 5 permit 192.0.2.0/24 le 32\n",
        );
        assert!(full.contains("ip prefix-list TEAM seq 5"));
        assert!(!full.contains("Building configuration"));
        assert!(full.contains("neighbor 172.30.0.1 route-map TEAM-OUT out"));
        assert!(!full.contains("ROUTELB-POOL-a-V4"));
        assert!(!full.contains("ROUTELB-OSPF-V4"));
        assert!(full.ends_with("ROUTELB-POOL-z-V4 seq 5 permit 192.0.2.0/24 le 32\n"));
        assert_eq!(owned(&parse(&full)).prefix_entries.len(), 1);
    }
}
