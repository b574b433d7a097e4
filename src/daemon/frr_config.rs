//! FRR configuration text as a tree, the objects routelb owns in it, and the commands that turn
//! one set of owned objects into another. Pure: the driver feeds it `show running-config`.

use std::collections::{BTreeMap, BTreeSet};

use crate::render::model::{BgpInstance, Instances};

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

/// The objects routelb owns, keyed so two sets can be compared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owned {
    /// `ip prefix-list NAME seq N` / `ipv6 ...` → whole line.
    pub prefix_entries: BTreeMap<String, String>,
    /// `route-map NAME permit N` → its lines.
    pub route_maps: BTreeMap<String, Vec<String>>,
    /// (context path, `redistribute <source> [level]`) → whole line.
    pub redistribute: BTreeMap<(Vec<String>, String), String>,
}

pub const PREFIX: &str = "ROUTELB-";

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
            o.prefix_entries.insert(key, n.line.clone());
        } else if n.line.starts_with("route-map ")
            && n.line
                .split_whitespace()
                .nth(1)
                .is_some_and(|name| name.starts_with(PREFIX))
        {
            o.route_maps.insert(
                n.line.clone(),
                n.children.iter().map(|c| c.line.clone()).collect(),
            );
        } else if n.line.starts_with("router ") {
            let mut path = vec![n.line.clone()];
            walk(&n.children, &mut path, &mut o);
        }
    }
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
    tree.iter()
        .map(|n| {
            let mut s = String::new();
            write_node(n, 0, &|_, _| true, &mut s);
            s
        })
        .collect()
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
    inst
}

/// vtysh commands, from configuration mode, that turn `running` into `desired`. Each inner list
/// starts at the top level of configuration mode. Order: stop redistributing what goes away,
/// add prefix lists, then route-maps, then new redistribute lines, and remove prefix lists last,
/// so nothing is ever referenced before it exists or after it is gone.
pub fn diff(running: &Owned, desired: &Owned) -> Vec<Vec<String>> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    let redistribute_group = |path: &[String], line: String| {
        let mut g: Vec<String> = path.to_vec();
        g.push(line);
        g
    };
    // 1. Redistribute lines that go away entirely.
    for (key, line) in &running.redistribute {
        if !desired.redistribute.contains_key(key) {
            groups.push(redistribute_group(&key.0, format!("no {line}")));
        }
    }
    // 2. Prefix-list entries: changed ones are removed first (FRR refuses a second rule at the
    //    same sequence number), then new and changed ones added.
    let mut changed_prefix = BTreeSet::new();
    for (key, line) in &desired.prefix_entries {
        match running.prefix_entries.get(key) {
            Some(old) if old == line => {}
            Some(old) => {
                groups.push(vec![format!("no {old}")]);
                changed_prefix.insert(key.clone());
            }
            None => {}
        }
    }
    for (key, line) in &desired.prefix_entries {
        if running.prefix_entries.get(key) != Some(line) {
            groups.push(vec![line.clone()]);
        }
    }
    // 3. Route-map entries: new, changed (line by line), removed.
    for (head, lines) in &desired.route_maps {
        match running.route_maps.get(head) {
            Some(old) if old == lines => {}
            Some(old) => {
                let mut g = vec![head.clone()];
                for l in old.iter().filter(|l| !lines.contains(l)) {
                    g.push(format!("no {l}"));
                }
                for l in lines.iter().filter(|l| !old.contains(l)) {
                    g.push(l.clone());
                }
                groups.push(g);
            }
            None => {
                let mut g = vec![head.clone()];
                g.extend(lines.iter().cloned());
                groups.push(g);
            }
        }
    }
    // 4. Redistribute lines that are new or point at another route-map (a new line replaces).
    for (key, line) in &desired.redistribute {
        if running.redistribute.get(key) != Some(line) {
            groups.push(redistribute_group(&key.0, line.clone()));
        }
    }
    // 5. Route-maps and prefix-list entries no longer wanted.
    for head in running.route_maps.keys() {
        if !desired.route_maps.contains_key(head) {
            groups.push(vec![format!("no {head}")]);
        }
    }
    for (key, line) in &running.prefix_entries {
        if !desired.prefix_entries.contains_key(key) && !changed_prefix.contains(key) {
            groups.push(vec![format!("no {line}")]);
        }
    }
    groups
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
    let tree = parse(&body);
    let not_owned = |n: &Node, depth: usize| {
        let owned_line = redistribute_key(&n.line).is_some() || prefix_key(&n.line).is_some();
        let owned_map = depth == 0
            && n.line.starts_with("route-map ")
            && n.line
                .split_whitespace()
                .nth(1)
                .is_some_and(|name| name.starts_with(PREFIX));
        !(owned_line || owned_map)
    };
    for n in &tree {
        write_node(n, 0, &not_owned, &mut out);
    }
    out.push_str(fragment);
    out
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
        let cmds = diff(&running, &desired);
        let flat: Vec<String> = cmds.iter().map(|g| g.join(" / ")).collect();
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
