//! FRR: the commands routelb's driver would send ([`frr_config::diff`]), grouped by object,
//! and where the daemon's configuration uses each object (route-maps through the prefix-lists
//! they match and the route-maps that call them; `redistribute`, `neighbor … route-map … in|out`
//! in each router).

use std::collections::{BTreeMap, BTreeSet};

use super::{Effect, Step};
use crate::daemon::frr_config::{self, Change, Node};

/// Where a route-map is used.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Use {
    /// `redistribute … route-map` (or another use by a router) in a router of this kind.
    Router { kind: RouterKind, scope: String },
    /// `neighbor PEER route-map MAP in|out` in BGP.
    Neighbor {
        scope: String,
        peer: String,
        inbound: bool,
        soft: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum RouterKind {
    Bgp,
    Ospf,
    Isis,
    Rip,
    Other,
}

impl RouterKind {
    fn of(router_line: &str) -> RouterKind {
        match router_line.split_whitespace().nth(1) {
            Some("bgp") => RouterKind::Bgp,
            Some("ospf" | "ospf6") => RouterKind::Ospf,
            Some("isis") => RouterKind::Isis,
            Some("rip" | "ripng") => RouterKind::Rip,
            _ => RouterKind::Other,
        }
    }
}

/// Who uses which route-map and prefix-list, in one configuration.
#[derive(Debug, Default)]
struct Uses {
    maps: BTreeMap<String, BTreeSet<Use>>,
    /// prefix-list → route-maps matching it.
    lists: BTreeMap<String, BTreeSet<String>>,
    /// route-map → route-maps that `call` it.
    callers: BTreeMap<String, BTreeSet<String>>,
}

impl Uses {
    fn read(tree: &[Node]) -> Uses {
        let mut uses = Uses::default();
        for n in tree {
            let words: Vec<&str> = n.line.split_whitespace().collect();
            match words.as_slice() {
                ["route-map", name, _, _] => uses.read_route_map(name, &n.children),
                ["router", ..] => uses.read_router(n),
                _ => {}
            }
        }
        uses
    }

    fn read_route_map(&mut self, name: &str, children: &[Node]) {
        for c in children {
            let w: Vec<&str> = c.line.split_whitespace().collect();
            match w.as_slice() {
                ["match", "ip" | "ipv6", "address", "prefix-list", list] => {
                    self.lists
                        .entry(list.to_string())
                        .or_default()
                        .insert(name.to_string());
                }
                ["call", callee] => {
                    self.callers
                        .entry(callee.to_string())
                        .or_default()
                        .insert(name.to_string());
                }
                _ => {}
            }
        }
    }

    fn read_router(&mut self, router: &Node) {
        let kind = RouterKind::of(&router.line);
        let groups: BTreeMap<&str, &str> = router
            .children
            .iter()
            .filter_map(
                |c| match c.line.split_whitespace().collect::<Vec<_>>()[..] {
                    ["neighbor", peer, "peer-group", group] => Some((peer, group)),
                    _ => None,
                },
            )
            .collect();
        // Lines outside any address-family are ipv4 unicast's (FRR's old syntax).
        let router_soft = soft_peers(&router.children);
        let soft = |own: BTreeSet<&str>, ipv4: bool| -> BTreeSet<String> {
            let mut all = own;
            if ipv4 {
                all.extend(&router_soft);
            }
            let peers: Vec<&str> = groups.keys().copied().collect();
            for peer in peers {
                if all.contains(groups[peer]) {
                    all.insert(peer);
                }
            }
            all.into_iter().map(str::to_string).collect()
        };
        let at_router = soft(BTreeSet::new(), true);
        self.read_context(kind, &router.line, "", &router.children, &at_router);
        for af in router
            .children
            .iter()
            .filter(|c| c.line.starts_with("address-family"))
        {
            let family = af.line.trim_start_matches("address-family ").to_string();
            let in_af = soft(soft_peers(&af.children), family == "ipv4 unicast");
            self.read_context(kind, &router.line, &family, &af.children, &in_af);
        }
    }

    fn read_context(
        &mut self,
        kind: RouterKind,
        router: &str,
        family: &str,
        lines: &[Node],
        soft: &BTreeSet<String>,
    ) {
        let scope = match family {
            "" if kind == RouterKind::Bgp => format!("{router}, ipv4 unicast"),
            "" => router.to_string(),
            f => format!("{router}, {f}"),
        };
        for l in lines {
            let w: Vec<&str> = l.line.split_whitespace().collect();
            let (map, usage) = match w.as_slice() {
                ["neighbor", peer, "route-map", map, dir @ ("in" | "out")] => (
                    *map,
                    Use::Neighbor {
                        scope: scope.clone(),
                        peer: peer.to_string(),
                        inbound: *dir == "in",
                        soft: soft.contains(*peer),
                    },
                ),
                ["neighbor", ..] => continue,
                _ => match w.iter().position(|x| *x == "route-map") {
                    Some(at) if at + 1 < w.len() => (
                        w[at + 1],
                        Use::Router {
                            kind,
                            scope: scope.clone(),
                        },
                    ),
                    _ => continue,
                },
            };
            self.maps.entry(map.to_string()).or_default().insert(usage);
        }
    }

    /// The route-maps a change to `map` reaches: itself and, through `call`, its callers.
    fn reached(&self, map: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![map.to_string()];
        while let Some(m) = todo.pop() {
            if seen.insert(m.clone()) {
                todo.extend(self.callers.get(&m).into_iter().flatten().cloned());
            }
        }
        seen
    }

    fn effects_of_map(&self, map: &str) -> BTreeSet<Effect> {
        self.reached(map)
            .iter()
            .flat_map(|m| self.maps.get(m).into_iter().flatten())
            .map(effect)
            .collect()
    }

    fn effects_of_list(&self, list: &str) -> BTreeSet<Effect> {
        self.lists
            .get(list)
            .into_iter()
            .flatten()
            .flat_map(|m| self.effects_of_map(m))
            .collect()
    }
}

/// The peers (or peer-groups) with `soft-reconfiguration inbound` among these lines.
fn soft_peers(lines: &[Node]) -> BTreeSet<&str> {
    lines
        .iter()
        .filter_map(
            |l| match l.line.split_whitespace().collect::<Vec<_>>()[..] {
                ["neighbor", peer, "soft-reconfiguration", "inbound"] => Some(peer),
                _ => None,
            },
        )
        .collect()
}

fn effect(u: &Use) -> Effect {
    match u {
        Use::Router { kind, scope } => router_effect(*kind, scope),
        Use::Neighbor {
            scope,
            peer,
            inbound: false,
            ..
        } => Effect::BgpOutbound {
            scope: scope.clone(),
            peer: peer.clone(),
        },
        Use::Neighbor {
            scope, peer, soft, ..
        } => Effect::BgpInbound {
            scope: scope.clone(),
            peer: peer.clone(),
            route_refresh: !soft,
        },
    }
}

fn router_effect(kind: RouterKind, scope: &str) -> Effect {
    let scope = scope.to_string();
    match kind {
        RouterKind::Bgp => Effect::BgpRedistribution { scope },
        RouterKind::Ospf => Effect::OspfExternal { scope },
        RouterKind::Isis => Effect::IsisLsp { scope },
        RouterKind::Rip => Effect::RipUpdate { scope },
        RouterKind::Other => Effect::Unused,
    }
}

/// What changes when the daemon running `running` (its whole configuration, routelb's
/// objects included) gets `fragment`.
pub fn plan(running: &str, fragment: &str) -> Vec<Step> {
    let running_tree = frr_config::parse(running);
    let fragment_tree = frr_config::parse(fragment);
    let changes = frr_config::diff(
        &frr_config::owned(&running_tree),
        &frr_config::owned(&fragment_tree),
    );
    // Uses as they are before and after: a route-map leaving still had its users.
    let mut uses = Uses::read(&running_tree);
    let after = Uses::read(&fragment_tree);
    for (map, u) in after.maps {
        uses.maps.entry(map).or_default().extend(u);
    }
    for (list, m) in after.lists {
        uses.lists.entry(list).or_default().extend(m);
    }
    for (callee, c) in after.callers {
        uses.callers.entry(callee).or_default().extend(c);
    }
    let mut steps: Vec<Step> = Vec::new();
    for change in &changes {
        let (object, effects) = classify(change, &uses);
        let lines = lines(change);
        match steps.last_mut() {
            Some(last) if last.object == object => last.lines.extend(lines),
            _ => steps.push(Step::new(object, lines, effects)),
        }
    }
    steps
}

/// The commands of a change as they are sent: context lines, then its lines indented.
fn lines(change: &Change) -> Vec<String> {
    let depth = change.context.len();
    change
        .context
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{}{c}", " ".repeat(i)))
        .chain(
            change
                .lines
                .iter()
                .map(|l| format!("{}{l}", " ".repeat(depth))),
        )
        .collect()
}

/// The object a change is to, and what that does.
fn classify(change: &Change, uses: &Uses) -> (String, BTreeSet<Effect>) {
    if let Some(head) = change
        .context
        .first()
        .filter(|h| h.starts_with("route-map "))
    {
        let name = head.split_whitespace().nth(1).unwrap_or_default();
        return (format!("route-map {name}"), uses.effects_of_map(name));
    }
    if let Some(router) = change.context.first().filter(|h| h.starts_with("router ")) {
        let family = change
            .context
            .get(1)
            .map(|af| af.trim_start_matches("address-family ").to_string());
        let kind = RouterKind::of(router);
        let scope = match family {
            Some(f) => format!("{router}, {f}"),
            None if kind == RouterKind::Bgp => format!("{router}, ipv4 unicast"),
            None => router.clone(),
        };
        return (
            format!("{scope}: redistribute"),
            BTreeSet::from([router_effect(kind, &scope)]),
        );
    }
    let line = change.lines.first().map(String::as_str).unwrap_or_default();
    let line = line.strip_prefix("no ").unwrap_or(line);
    let w: Vec<&str> = line.split_whitespace().collect();
    match w.as_slice() {
        [family @ ("ip" | "ipv6"), "prefix-list", name, ..] => (
            format!("{family} prefix-list {name}"),
            uses.effects_of_list(name),
        ),
        ["route-map", name, ..] => (format!("route-map {name}"), uses.effects_of_map(name)),
        _ => (line.to_string(), BTreeSet::new()),
    }
}
