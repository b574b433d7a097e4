//! Drift: noticing, cheaply and within a second, that another tool (frr-reload.py of its own
//! file, confd, a person at vtysh) removed or changed routelb's objects in an FRR daemon.
//!
//! Reading `show running-config` is what costs at scale (about 40 ms of a daemon's CPU at 5,000
//! prefixes, per daemon). The probe instead asks each daemon a few small show commands, and
//! compares their answers with the objects that daemon should hold ([`Owned`], its share):
//! - `show ip prefix-list summary` / `show ipv6 prefix-list summary`: per list, the entry count
//!   and the first and last sequence numbers (0.2 ms at 5,000 entries);
//! - `show route-map NAME`, per route-map holding an owned entry (routelb's own, or a base
//!   route-map routelb inserts entries into): each entry's description, match, set, call and
//!   exit-policy lines;
//! - `show route-map-unused`: a route-map an owned `redistribute … route-map` line uses is never
//!   listed there while the line exists.
//!
//! Pure: the driver runs [`commands`] and hands the answers to [`compare`]. A finding names what
//! was lost or changed; the driver then reads the full configuration and repairs.
//!
//! Not seen by the probe (the resync's full read catches them): a prefix-list entry rewritten in
//! place with the same sequence number, and one of several redistribute lines that share a
//! route-map while another still uses it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::frr_config::{Owned, PREFIX};

pub const PREFIX_SUMMARY_V4: &str = "show ip prefix-list summary";
pub const PREFIX_SUMMARY_V6: &str = "show ipv6 prefix-list summary";
pub const UNUSED_ROUTE_MAPS: &str = "show route-map-unused";

/// Something of routelb's that a daemon no longer holds as it should.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub daemon: String,
    /// The object, as configuration: `ip prefix-list ROUTELB-POOL-a-V4`,
    /// `route-map ROUTELB-BGP-V4 permit 50000`, `router bgp 64512 / … / redistribute connected`.
    pub object: String,
    pub change: Change,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// The object is gone.
    Lost,
    /// It is there, but not as routelb left it (what differs).
    Changed(String),
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.change {
            Change::Lost => write!(f, "{}: {} lost", self.daemon, self.object),
            Change::Changed(how) => write!(f, "{}: {} changed ({how})", self.daemon, self.object),
        }
    }
}

/// Findings as one line per object, the daemons that lost it named together
/// (`ip prefix-list ROUTELB-POOL-a-V4 lost (bgpd, zebra)`); beyond `max` lines, the rest is
/// counted. For Events, logs and NodeState, which must stay readable when everything was lost.
pub fn describe(findings: &[Finding], max: usize) -> Vec<String> {
    let mut by_object: BTreeMap<(&str, &Change), Vec<&str>> = BTreeMap::new();
    for f in findings {
        by_object
            .entry((f.object.as_str(), &f.change))
            .or_default()
            .push(f.daemon.as_str());
    }
    let mut out: Vec<String> = by_object
        .iter()
        .take(max)
        .map(|((object, change), daemons)| {
            let what = match change {
                Change::Lost => "lost".to_string(),
                Change::Changed(how) => format!("changed: {how}"),
            };
            format!("{object} {what} ({})", daemons.join(", "))
        })
        .collect();
    if by_object.len() > max {
        out.push(format!("… and {} more", by_object.len() - max));
    }
    out
}

/// A prefix list as `show ip prefix-list summary` describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListSummary {
    pub count: u64,
    pub first: u64,
    pub last: u64,
}

/// What the probe compares a daemon's answers with: its share of the owned objects, in the
/// shape the show commands describe them. Computed once per apply, not once per probe.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// `ip prefix-list NAME` → count and sequence range.
    lists: BTreeMap<String, ListSummary>,
    /// `route-map NAME permit N` → the lines `show route-map` shows, sorted.
    route_maps: BTreeMap<String, Vec<String>>,
    /// Each redistribute line (with its context, as the finding names it) and its route-map.
    redistribute: Vec<(String, String)>,
}

impl Expected {
    pub fn of(owned: &Owned) -> Expected {
        Expected {
            lists: expected_lists(owned),
            route_maps: owned
                .route_maps
                .iter()
                .map(|(head, lines)| {
                    let shown = lines.iter().filter(|l| shown(l)).cloned().collect();
                    (head.clone(), shown)
                })
                .collect(),
            redistribute: owned
                .redistribute
                .iter()
                .filter_map(|((path, _), line)| {
                    let map = line.split_whitespace().skip_while(|w| *w != "route-map");
                    let map = map.clone().nth(1)?.to_string();
                    let mut object = path.join(" / ");
                    object.push_str(" / ");
                    object.push_str(line);
                    Some((object, map))
                })
                .collect(),
        }
    }

    /// The route-maps holding owned entries, by name.
    fn route_map_names(&self) -> BTreeSet<&str> {
        self.route_maps
            .keys()
            .filter_map(|head| head.split_whitespace().nth(1))
            .collect()
    }
}

/// How much a probe asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// The prefix-list summaries only: what another tool's reload removes first, at a third
    /// of the cost (at 5,000 entries in 128 lists, 0.15 ms of bgpd's CPU of about 0.4 ms).
    Lists,
    /// Also the route-maps and the redistribute lines.
    Everything,
}

/// A probe's findings, and whether it asked everything: a probe of the lists alone that
/// found nothing says nothing of the route-maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub findings: Vec<Finding>,
    pub complete: bool,
}

/// The show commands that probe a daemon expected to hold `expected`, in a fixed order.
pub fn commands(expected: &Expected, depth: Depth) -> Vec<String> {
    let mut out = Vec::new();
    if expected.lists.keys().any(|l| l.starts_with("ip ")) {
        out.push(PREFIX_SUMMARY_V4.to_string());
    }
    if expected.lists.keys().any(|l| l.starts_with("ipv6 ")) {
        out.push(PREFIX_SUMMARY_V6.to_string());
    }
    if depth == Depth::Lists {
        return out;
    }
    out.extend(
        expected
            .route_map_names()
            .into_iter()
            .map(|n| format!("show route-map {n}")),
    );
    if !expected.redistribute.is_empty() {
        out.push(UNUSED_ROUTE_MAPS.to_string());
    }
    out
}

/// What `daemon`, expected to hold `expected`, lost or changed according to its answers to
/// [`commands`] (command → output). A command without an answer proves nothing.
pub fn compare(
    daemon: &str,
    expected: &Expected,
    answers: &BTreeMap<String, String>,
) -> Vec<Finding> {
    let finding = |object: String, change: Change| Finding {
        daemon: daemon.to_string(),
        object,
        change,
    };
    let mut out = Vec::new();
    let mut observed_lists = BTreeMap::new();
    for (command, afi) in [(PREFIX_SUMMARY_V4, "ip"), (PREFIX_SUMMARY_V6, "ipv6")] {
        if let Some(text) = answers.get(command) {
            observed_lists.extend(prefix_summary(afi, text));
        }
    }
    let lists = &expected.lists;
    for (list, want) in lists {
        if !answers.contains_key(summary_command(list)) {
            continue;
        }
        match observed_lists.get(list) {
            None => out.push(finding(list.clone(), Change::Lost)),
            Some(have) if have != want => out.push(finding(
                list.clone(),
                Change::Changed(list_change(want, have)),
            )),
            Some(_) => {}
        }
    }
    for list in observed_lists.keys() {
        let owned = list
            .split_whitespace()
            .nth(2)
            .is_some_and(|n| n.starts_with(PREFIX));
        if owned && !lists.contains_key(list) {
            out.push(finding(
                list.clone(),
                Change::Changed("not routelb's".into()),
            ));
        }
    }
    for name in expected.route_map_names() {
        if let Some(text) = answers.get(&format!("show route-map {name}")) {
            out.extend(
                route_map_findings(name, expected, &route_map(text))
                    .into_iter()
                    .map(|(o, c)| finding(o, c)),
            );
        }
    }
    if let Some(text) = answers.get(UNUSED_ROUTE_MAPS) {
        let unused = unused_route_maps(text);
        for (object, map) in &expected.redistribute {
            if unused.contains(map) {
                out.push(finding(object.clone(), Change::Lost));
            }
        }
    }
    out.sort();
    out
}

fn summary_command(list_key: &str) -> &'static str {
    if list_key.starts_with("ipv6 ") {
        PREFIX_SUMMARY_V6
    } else {
        PREFIX_SUMMARY_V4
    }
}

fn list_change(want: &ListSummary, have: &ListSummary) -> String {
    if want.count != have.count {
        format!("{} of {} entries", have.count, want.count)
    } else {
        format!(
            "sequences {}-{}, expected {}-{}",
            have.first, have.last, want.first, want.last
        )
    }
}

/// Per owned prefix list (`ip prefix-list NAME`), its count and sequence range.
pub fn expected_lists(expected: &Owned) -> BTreeMap<String, ListSummary> {
    let mut out: BTreeMap<String, ListSummary> = BTreeMap::new();
    for key in expected.prefix_entries.keys() {
        // `ip prefix-list NAME seq N`
        let Some((list, seq)) = key.rsplit_once(" seq ") else {
            continue;
        };
        let Ok(seq) = seq.trim().parse::<u64>() else {
            continue;
        };
        let s = out.entry(list.to_string()).or_insert(ListSummary {
            count: 0,
            first: seq,
            last: seq,
        });
        s.count += 1;
        s.first = s.first.min(seq);
        s.last = s.last.max(seq);
    }
    out
}

/// Parses `show ip[v6] prefix-list summary`: `<DAEMON>: ip prefix-list NAME:` then
/// `count: N, range entries: R, sequences: A - B`.
pub fn prefix_summary(afi: &str, text: &str) -> BTreeMap<String, ListSummary> {
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(at) = t.find(&format!("{afi} prefix-list ")) {
            let name = t[at..]
                .split_whitespace()
                .nth(2)
                .map(|n| n.trim_end_matches(':'));
            current = name.map(|n| format!("{afi} prefix-list {n}"));
            continue;
        }
        let Some(list) = current.take() else { continue };
        let field = |name: &str| {
            t.split(',').find_map(|f| {
                f.trim()
                    .strip_prefix(name)
                    .map(str::trim)
                    .map(str::to_string)
            })
        };
        let count = field("count:").and_then(|c| c.parse().ok());
        let range = field("sequences:").and_then(|r| {
            let (a, b) = r.split_once('-')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        });
        if let (Some(count), Some((first, last))) = (count, range) {
            out.insert(list, ListSummary { count, first, last });
        }
    }
    out
}

/// Parses `show route-map NAME` into its entries (`route-map NAME permit 10`) and their lines
/// as configuration (`description …`, `match …`, `set …`, `call …`, `on-match …`), sorted as
/// [`Owned`] keeps them.
pub fn route_map(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut name: Option<String> = None;
    let mut entry: Option<String> = None;
    let mut section = "";
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("route-map: ") {
            name = rest.split_whitespace().next().map(str::to_string);
            entry = None;
        } else if let (Some(n), Some((action, seq))) = (&name, entry_line(t)) {
            let head = format!("route-map {n} {action} {seq}");
            out.entry(head.clone()).or_default();
            entry = Some(head);
        } else if t.ends_with(':') && entry.is_some() {
            section = match t {
                "Description:" => "description",
                "Match clauses:" => "match",
                "Set clauses:" => "set",
                "Call clause:" => "call",
                "Action:" => "action",
                _ => "",
            };
        } else if let (Some(head), false) = (&entry, t.is_empty()) {
            let config = match section {
                "description" | "match" | "set" => Some(format!("{section} {t}")),
                "call" => t.strip_prefix("Call ").map(|m| format!("call {m}")),
                "action" if t == "Continue to next entry" => Some("on-match next".into()),
                "action" => t
                    .strip_prefix("Goto ")
                    .map(|n| format!("on-match goto {n}")),
                _ => None,
            };
            if let Some(c) = config {
                out.get_mut(head).expect("entry recorded").push(c);
            }
        }
    }
    for lines in out.values_mut() {
        lines.sort();
    }
    out
}

/// ` permit, sequence 10 Invoked 0` → (`permit`, `10`).
fn entry_line(t: &str) -> Option<(&str, &str)> {
    let (action, rest) = t.split_once(", sequence ")?;
    matches!(action, "permit" | "deny").then_some(())?;
    Some((action, rest.split_whitespace().next()?))
}

/// The kinds of route-map line `show route-map` shows; others cannot be compared.
fn shown(line: &str) -> bool {
    ["description ", "match ", "set ", "call ", "on-match "]
        .iter()
        .any(|k| line.starts_with(k))
}

/// Findings for one route-map: owned entries gone or with other lines; in a route-map routelb
/// owns, also entries it does not know.
fn route_map_findings(
    name: &str,
    expected: &Expected,
    observed: &BTreeMap<String, Vec<String>>,
) -> Vec<(String, Change)> {
    let mut out = Vec::new();
    let mine = |head: &String| head.split_whitespace().nth(1) == Some(name);
    for (head, want) in expected.route_maps.iter().filter(|(h, _)| mine(h)) {
        let Some(have) = observed.get(head) else {
            out.push((head.clone(), Change::Lost));
            continue;
        };
        let lost: Vec<&str> = want
            .iter()
            .filter(|l| !have.contains(l))
            .map(String::as_str)
            .collect();
        let added: Vec<&str> = have
            .iter()
            .filter(|l| !want.contains(l))
            .map(String::as_str)
            .collect();
        if !lost.is_empty() || !added.is_empty() {
            let mut how = Vec::new();
            if !lost.is_empty() {
                how.push(format!("lost '{}'", lost.join("', '")));
            }
            if !added.is_empty() {
                how.push(format!("added '{}'", added.join("', '")));
            }
            out.push((head.clone(), Change::Changed(how.join("; "))));
        }
    }
    if name.starts_with(PREFIX) {
        for head in observed.keys() {
            if !expected.route_maps.contains_key(head) {
                out.push((head.clone(), Change::Changed("not routelb's".into())));
            }
        }
    }
    out
}

/// The route-map names `show route-map-unused` lists.
pub fn unused_route_maps(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("route-map: "))
        .filter_map(|r| r.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Splits a daemon's changes for a bulk repair into what to send first and what may follow.
/// Loading thousands of prefix-list entries takes FRR seconds (about 1 ms per entry and daemon
/// at 5,000: half in the CLI, half in the commit); the Services' routes need only the entries
/// that cover the addresses announced now, the route-maps and the redistribute lines. Those
/// go first, in their order, and commit on their own; the other added entries follow (they
/// only let more through the lists the route-maps already match). Without at least
/// `min_later` such entries there is nothing worth splitting: everything goes first.
pub fn urgent_first(
    changes: &[crate::daemon::frr_config::Change],
    announced: &[std::net::IpAddr],
    min_later: usize,
) -> (
    Vec<crate::daemon::frr_config::Change>,
    Vec<crate::daemon::frr_config::Change>,
) {
    let deferrable = |c: &crate::daemon::frr_config::Change| {
        c.context.is_empty()
            && c.lines.len() == 1
            && added_entry_prefix(&c.lines[0])
                .is_some_and(|net| !announced.iter().any(|a| net.contains(a)))
    };
    let (later, first): (Vec<_>, Vec<_>) = changes.iter().cloned().partition(deferrable);
    if later.len() < min_later {
        return (changes.to_vec(), vec![]);
    }
    (first, later)
}

/// The prefix of an added permit entry (`ip prefix-list N seq 5 permit P [ge|le …]`). A deny
/// entry is never deferred: without it, more would pass than the fragment lets through.
fn added_entry_prefix(line: &str) -> Option<ipnet::IpNet> {
    let w: Vec<&str> = line.split_whitespace().collect();
    match w.as_slice() {
        [
            "ip" | "ipv6",
            "prefix-list",
            _,
            "seq",
            _,
            "permit",
            prefix,
            ..,
        ] => prefix.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::frr_config::{owned, parse};

    const FRAGMENT: &str = "ip prefix-list ROUTELB-POOL-a-V4 seq 5 permit 192.0.2.0/24 le 32
ip prefix-list ROUTELB-POOL-a-V4 seq 10 permit 198.51.100.0/24 le 32
ipv6 prefix-list ROUTELB-POOL-a-V6 seq 5 permit 2001:db8::/64 le 128
route-map ROUTELB-BGP-V4 permit 50000
 description policy_a
 match ip address prefix-list ROUTELB-POOL-a-V4
 set community 64512:100 additive
exit
router bgp 64512
 address-family ipv4 unicast
  redistribute connected route-map ROUTELB-BGP-V4
 exit-address-family
exit
";

    const SUMMARY_V4: &str = "Prefix-list with the last deletion/insertion: ROUTELB-POOL-a-V4
BGP: ip prefix-list ROUTELB-POOL-a-V4:
   count: 2, range entries: 0, sequences: 5 - 10
BGP: ip prefix-list TEAM:
   count: 1, range entries: 0, sequences: 5 - 5
";
    const SUMMARY_V6: &str = "Prefix-list with the last deletion/insertion: ROUTELB-POOL-a-V6
BGP: ipv6 prefix-list ROUTELB-POOL-a-V6:
   count: 1, range entries: 0, sequences: 5 - 5
";
    const ROUTELB_MAP: &str = "BGP:
route-map: ROUTELB-BGP-V4 Invoked: 2 Optimization: enabled Processed Change: false
 permit, sequence 50000 Invoked 0
  Description:
    policy_a
  Match clauses:
    ip address prefix-list ROUTELB-POOL-a-V4
  Set clauses:
    community 64512:100 additive
  Call clause:
  Action:
    Exit routemap
";
    const TEAM_MAP: &str = "BGP:
route-map: TEAM-OUT Invoked: 0 Optimization: enabled Processed Change: true
 permit, sequence 10 Invoked 0
  Match clauses:
    ip address prefix-list TEAM
  Set clauses:
    local-preference 200
  Call clause:
    Call OTHER
  Action:
    Continue to next entry
 permit, sequence 65000 Invoked 0
  Match clauses:
    ip address prefix-list ROUTELB-POOL-a-V4
  Set clauses:
  Call clause:
  Action:
    Exit routemap
";

    fn healthy() -> BTreeMap<String, String> {
        [
            (PREFIX_SUMMARY_V4, SUMMARY_V4),
            (PREFIX_SUMMARY_V6, SUMMARY_V6),
            ("show route-map ROUTELB-BGP-V4", ROUTELB_MAP),
            ("show route-map TEAM-OUT", TEAM_MAP),
            (UNUSED_ROUTE_MAPS, "\nBGP: None\n"),
        ]
        .map(|(c, o)| (c.to_string(), o.to_string()))
        .into()
    }

    /// The fragment's objects, and an entry routelb keeps in the team's route-map (helper
    /// "hook"'s outbound route-map entries, in their reserved sequence range).
    fn owned_objects() -> Owned {
        let mut o = owned(&parse(FRAGMENT));
        o.route_maps.insert(
            "route-map TEAM-OUT permit 65000".into(),
            vec!["match ip address prefix-list ROUTELB-POOL-a-V4".into()],
        );
        o
    }

    fn expected() -> Expected {
        Expected::of(&owned_objects())
    }

    fn named(findings: &[Finding]) -> Vec<String> {
        findings.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_probe_asks_only_what_the_objects_need() {
        assert_eq!(
            commands(&expected(), Depth::Everything),
            [
                PREFIX_SUMMARY_V4,
                PREFIX_SUMMARY_V6,
                "show route-map ROUTELB-BGP-V4",
                "show route-map TEAM-OUT",
                UNUSED_ROUTE_MAPS
            ]
        );
        assert_eq!(
            commands(&expected(), Depth::Lists),
            [PREFIX_SUMMARY_V4, PREFIX_SUMMARY_V6]
        );
        // zebra's share: no redistribute lines, no IPv6 lists.
        let zebra = owned(&parse(
            "ip prefix-list ROUTELB-POOL-a-V4 seq 5 permit 192.0.2.0/24\n",
        ));
        assert_eq!(
            commands(&Expected::of(&zebra), Depth::Everything),
            [PREFIX_SUMMARY_V4]
        );
        assert!(commands(&Expected::default(), Depth::Everything).is_empty());
    }

    #[test]
    fn a_daemon_holding_everything_has_no_findings() {
        assert_eq!(compare("bgpd", &expected(), &healthy()), []);
    }

    #[test]
    fn a_reload_of_the_base_alone_loses_everything_and_each_is_named() {
        // frr-reload.py of a file without routelb's objects: only the team's list and map stay.
        let mut answers = healthy();
        answers.insert(
            PREFIX_SUMMARY_V4.into(),
            "BGP: ip prefix-list TEAM:\n   count: 1, range entries: 0, sequences: 5 - 5\n".into(),
        );
        answers.insert(PREFIX_SUMMARY_V6.into(), String::new());
        answers.insert(
            "show route-map ROUTELB-BGP-V4".into(),
            "BGP:\nBGP: 'route-map ROUTELB-BGP-V4' not found\n".into(),
        );
        answers.insert(
            "show route-map TEAM-OUT".into(),
            TEAM_MAP
                .split(" permit, sequence 65000")
                .next()
                .unwrap()
                .into(),
        );
        assert_eq!(
            named(&compare("bgpd", &expected(), &answers)),
            [
                "bgpd: ip prefix-list ROUTELB-POOL-a-V4 lost",
                "bgpd: ipv6 prefix-list ROUTELB-POOL-a-V6 lost",
                "bgpd: route-map ROUTELB-BGP-V4 permit 50000 lost",
                "bgpd: route-map TEAM-OUT permit 65000 lost",
            ]
        );
    }

    #[test]
    fn a_removed_redistribute_line_shows_as_an_unused_route_map() {
        let mut answers = healthy();
        answers.insert(UNUSED_ROUTE_MAPS.into(), format!("\n{ROUTELB_MAP}"));
        assert_eq!(
            named(&compare("bgpd", &expected(), &answers)),
            [
                "bgpd: router bgp 64512 / address-family ipv4 unicast / redistribute connected route-map ROUTELB-BGP-V4 lost"
            ]
        );
    }

    #[test]
    fn entries_removed_or_edited_by_hand_are_changes() {
        let mut answers = healthy();
        answers.insert(
            PREFIX_SUMMARY_V4.into(),
            SUMMARY_V4.replace(
                "count: 2, range entries: 0, sequences: 5 - 10",
                "count: 1, range entries: 0, sequences: 5 - 5",
            ),
        );
        answers.insert(
            PREFIX_SUMMARY_V6.into(),
            format!(
                "{SUMMARY_V6}BGP: ipv6 prefix-list ROUTELB-STRAY-V6:\n   count: 1, range entries: 0, sequences: 5 - 5\n"
            ),
        );
        answers.insert(
            "show route-map ROUTELB-BGP-V4".into(),
            ROUTELB_MAP.replace("    community 64512:100 additive\n", "    metric 5\n")
                + " deny, sequence 60000 Invoked 0\n  Match clauses:\n  Set clauses:\n  Call clause:\n  Action:\n    Exit routemap\n",
        );
        assert_eq!(
            named(&compare("bgpd", &expected(), &answers)),
            [
                "bgpd: ip prefix-list ROUTELB-POOL-a-V4 changed (1 of 2 entries)",
                "bgpd: ipv6 prefix-list ROUTELB-STRAY-V6 changed (not routelb's)",
                "bgpd: route-map ROUTELB-BGP-V4 deny 60000 changed (not routelb's)",
                "bgpd: route-map ROUTELB-BGP-V4 permit 50000 changed (lost 'set community 64512:100 additive'; added 'set metric 5')",
            ]
        );
    }

    #[test]
    fn other_entries_of_a_base_route_map_are_not_routelbs_business() {
        let observed = route_map(TEAM_MAP);
        assert_eq!(
            observed["route-map TEAM-OUT permit 10"],
            [
                "call OTHER",
                "match ip address prefix-list TEAM",
                "on-match next",
                "set local-preference 200"
            ]
        );
        assert_eq!(compare("bgpd", &expected(), &healthy()), []);
    }

    #[test]
    fn descriptions_name_each_object_once_and_stay_short() {
        let lost = |daemon: &str, object: &str| Finding {
            daemon: daemon.into(),
            object: object.into(),
            change: Change::Lost,
        };
        let findings = [
            lost("bgpd", "ip prefix-list ROUTELB-POOL-a-V4"),
            lost("zebra", "ip prefix-list ROUTELB-POOL-a-V4"),
            lost("bgpd", "route-map ROUTELB-BGP-V4 permit 50000"),
            lost("bgpd", "route-map ROUTELB-BGP-V4 permit 50010"),
        ];
        assert_eq!(
            describe(&findings, 2),
            [
                "ip prefix-list ROUTELB-POOL-a-V4 lost (bgpd, zebra)",
                "route-map ROUTELB-BGP-V4 permit 50000 lost (bgpd)",
                "… and 1 more"
            ]
        );
    }

    #[test]
    fn a_command_without_an_answer_proves_nothing() {
        assert_eq!(compare("bgpd", &expected(), &BTreeMap::new()), []);
    }

    #[test]
    fn a_bulk_repair_sends_what_announced_addresses_need_first() {
        use crate::daemon::frr_config::diff;
        let mut text = String::from(FRAGMENT);
        for i in 0..60 {
            text.push_str(&format!(
                "ip prefix-list ROUTELB-POOL-b-V4 seq {} permit 10.0.{i}.1/32\n",
                100 + i
            ));
        }
        let desired = owned(&parse(&text));
        let lost = diff(&Owned::default(), &desired);
        let announced: Vec<std::net::IpAddr> = vec!["10.0.7.1".parse().unwrap()];
        let (first, later) = urgent_first(&lost, &announced, 50);
        let flat = |c: &[crate::daemon::frr_config::Change]| -> Vec<String> {
            c.iter().flat_map(|c| c.all_lines().cloned()).collect()
        };
        let first = flat(&first);
        // Pool b's 59 other entries and pool a's three: none covers 10.0.7.1.
        assert_eq!(later.len(), 62);
        assert!(
            first.contains(
                &"ip prefix-list ROUTELB-POOL-b-V4 seq 107 permit 10.0.7.1/32".to_string()
            )
        );
        assert!(first.contains(&"redistribute connected route-map ROUTELB-BGP-V4".to_string()));
        assert!(first.contains(&"route-map ROUTELB-BGP-V4 permit 50000".to_string()));
        let deny = crate::daemon::frr_config::Change {
            context: vec![],
            lines: vec!["ip prefix-list ROUTELB-POOL-b-V4 seq 1 deny 10.9.0.0/16".into()],
        };
        let with_deny = [lost.clone(), vec![deny.clone()]].concat();
        assert!(urgent_first(&with_deny, &announced, 50).0.contains(&deny));
        let (all, none) = urgent_first(&lost, &announced, 100);
        assert_eq!(
            (all, none),
            (lost, vec![]),
            "too few to be worth a second commit"
        );
    }

    #[test]
    fn summaries_parse_per_list() {
        let s = prefix_summary("ip", SUMMARY_V4);
        assert_eq!(
            s["ip prefix-list ROUTELB-POOL-a-V4"],
            ListSummary {
                count: 2,
                first: 5,
                last: 10
            }
        );
        assert_eq!(s.len(), 2);
        assert_eq!(
            expected_lists(&owned_objects())["ip prefix-list ROUTELB-POOL-a-V4"],
            s["ip prefix-list ROUTELB-POOL-a-V4"]
        );
    }
}
