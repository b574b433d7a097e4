//! Which nodes announce each Service (pure): from the NodeStates of live nodes, the
//! `routelb.io/announcing` annotation (`node/interface`, comma-separated) and the Events when
//! announcing starts, moves or stops. The allocator is the only writer of Services; the agents
//! report what they hold in their NodeState, and the node that reports on a service nobody
//! announces says why there. A node that holds a routed address its daemon advertises to no
//! peer (NodeState `advertisement.unadvertised`, verified at the daemon) does not announce it.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use kube::ResourceExt;

use super::changes::ServiceChange;
use crate::api::address_runs::{AddressRun, decode};
use crate::api::{NodeState, NodeStateStatus, annotations};
use crate::status::EventSpec;

/// How many `node/interface` entries the annotation lists; beyond, it says
/// [`MANY_ANNOUNCERS`], which does not change as nodes come and go (a routed pool on 5,000
/// nodes would otherwise rewrite the annotation, ~100 KB, of every Service on each change).
pub const LISTED_ANNOUNCERS: usize = 16;
/// The annotation's value when more than [`LISTED_ANNOUNCERS`] nodes announce a Service.
pub const MANY_ANNOUNCERS: &str = "more than 16 nodes";

/// What live nodes hold and why services are not announced, by `namespace/name`.
///
/// Nodes that hold the same addresses on the same interface (every node announcing a routed
/// pool) make one group, so a pass costs one lookup per group, not per node, for each address.
#[derive(Debug, Default)]
pub struct Announcements {
    groups: Vec<Holding>,
    reasons: HashMap<String, String>,
}

/// What makes nodes one group: the interface, its address runs as written, the prefixes held
/// but not advertised and why.
type HoldingKey<'a> = (&'a str, &'a [String], Vec<ipnet::IpNet>, &'a str);

/// The nodes holding one list of address runs on one interface.
#[derive(Debug)]
struct Holding {
    /// Sorted by first address.
    runs: Vec<AddressRun>,
    /// Held but advertised to no peer (NodeState `advertisement.unadvertised`), and why.
    silent: Vec<ipnet::IpNet>,
    why_silent: String,
    /// `node/interface`.
    holders: BTreeSet<String>,
    /// `node`.
    nodes: BTreeSet<String>,
}

impl Holding {
    fn holds(&self, ip: IpAddr) -> bool {
        let after = self.runs.partition_point(|(first, _, _)| *first <= ip);
        after > 0 && ip <= self.runs[after - 1].1
    }

    fn silent_on(&self, ip: IpAddr) -> bool {
        self.silent.iter().any(|n| n.contains(&ip))
    }
}

impl Announcements {
    /// From the NodeStates of the nodes in `live` (a dead node's NodeState is stale).
    pub fn collect<'a>(
        states: impl IntoIterator<Item = &'a NodeState>,
        live: &BTreeSet<String>,
    ) -> Announcements {
        let mut a = Announcements::default();
        let mut index: HashMap<HoldingKey, usize> = HashMap::new();
        for st in states {
            let node = st.name_any();
            let Some(status) = st.status.as_ref().filter(|_| live.contains(&node)) else {
                continue;
            };
            let silent = unadvertised(status);
            let why = if silent.is_empty() {
                ""
            } else {
                why_unadvertised(status)
            };
            for iface in status.interfaces.iter().filter(|i| !i.addresses.is_empty()) {
                let key = (
                    iface.interface.as_str(),
                    iface.addresses.as_slice(),
                    silent.clone(),
                    why,
                );
                let at = *index.entry(key).or_insert_with(|| {
                    let mut runs: Vec<AddressRun> =
                        iface.addresses.iter().filter_map(|r| decode(r)).collect();
                    runs.sort();
                    a.groups.push(Holding {
                        runs,
                        silent: silent.clone(),
                        why_silent: why.to_string(),
                        holders: BTreeSet::new(),
                        nodes: BTreeSet::new(),
                    });
                    a.groups.len() - 1
                });
                let group = &mut a.groups[at];
                group.holders.insert(format!("{node}/{}", iface.interface));
                group.nodes.insert(node.clone());
            }
            for n in &status.not_announced {
                a.reasons.insert(n.service.clone(), n.reason.clone());
            }
        }
        a
    }

    /// Why no node announces `ips`: a holder's daemon advertises them to no peer, else none.
    fn silence(&self, ips: &[IpAddr]) -> Option<String> {
        let notes: BTreeSet<String> = self
            .groups
            .iter()
            .filter(|g| ips.iter().any(|ip| g.holds(*ip) && g.silent_on(*ip)))
            .flat_map(|g| g.nodes.iter().map(|n| format!("{n}: {}", g.why_silent)))
            .collect();
        (!notes.is_empty()).then(|| {
            let notes: Vec<String> = notes.into_iter().collect();
            format!("held but advertised to no peer: {}", notes.join("; "))
        })
    }

    /// The groups announcing any of `ips`: holding one, their daemons advertising it.
    fn announcing<'a, 'b>(
        &'a self,
        ips: &'b [IpAddr],
    ) -> impl Iterator<Item = &'a Holding> + use<'a, 'b> {
        self.groups
            .iter()
            .filter(|g| ips.iter().any(|ip| g.holds(*ip) && !g.silent_on(*ip)))
    }

    /// The `node/interface` entries announcing any of `ips`.
    pub fn announcers(&self, ips: &[IpAddr]) -> BTreeSet<&String> {
        self.announcing(ips).flat_map(|g| &g.holders).collect()
    }

    /// The annotation value for a service with these addresses: the announcing entries, or
    /// [`MANY_ANNOUNCERS`] beyond [`LISTED_ANNOUNCERS`]; empty when nobody holds one.
    /// A `node/interface` is in one group only, so the groups' holders are counted, not
    /// collected, until there are too many to list: collecting every holder of every Service
    /// made the allocator's pass grow with the nodes (320 ms at 1,000 nodes, 1,000 Services).
    pub fn value(&self, ips: &[IpAddr]) -> String {
        let mut listed: Vec<&String> = vec![];
        for g in self.announcing(ips) {
            if listed.len() + g.holders.len() > LISTED_ANNOUNCERS {
                return MANY_ANNOUNCERS.to_string();
            }
            listed.extend(&g.holders);
        }
        listed.sort();
        listed.into_iter().cloned().collect::<Vec<_>>().join(",")
    }
}

/// The prefixes a node's daemon advertises to no peer, as last verified.
pub(crate) fn unadvertised(status: &NodeStateStatus) -> Vec<ipnet::IpNet> {
    status
        .advertisement
        .iter()
        .flat_map(|a| &a.unadvertised)
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The node's `Advertised` condition message.
pub(crate) fn why_unadvertised(status: &NodeStateStatus) -> &str {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Advertised")
        .map(|c| c.message.as_str())
        .unwrap_or("not advertised")
}

/// How the nodes announcing a Service changed, for `routelb_announcement_changes_total`:
/// `moved` when none of the nodes that announced it still does (a failover, a local
/// address handed over), `changed` when some stay (a node joined or left a routed ECMP set).
pub fn change_kind(before: &str, after: &str) -> &'static str {
    let nodes = |v: &str| -> BTreeSet<String> {
        v.split(',')
            .filter(|e| !e.is_empty())
            .map(|e| e.split('/').next().unwrap_or(e).to_string())
            .collect()
    };
    match (nodes(before), nodes(after)) {
        (b, _) if b.is_empty() => "started",
        (_, a) if a.is_empty() => "stopped",
        // Many nodes before or after: some stay (what is summarised is never all replaced).
        _ if before == MANY_ANNOUNCERS || after == MANY_ANNOUNCERS => "changed",
        (b, a) if b.is_disjoint(&a) => "moved",
        _ => "changed",
    }
}

/// Adds the announcing annotation and its Event to a service's change. `ips` are the
/// addresses the service has once `change` is written.
pub fn add_change(
    change: &mut ServiceChange,
    key: &str,
    before: Option<&str>,
    ips: &[IpAddr],
    seen: &Announcements,
) {
    let now = seen.value(ips);
    let before = before.unwrap_or("");
    if now == before {
        return;
    }
    let value = (!now.is_empty()).then(|| now.clone());
    if ips.is_empty() {
        // The address itself is gone; the release already says so.
        change.annotations.insert(annotations::ANNOUNCING, value);
        return;
    }
    let event = match (before.is_empty(), now.is_empty()) {
        (_, true) => EventSpec {
            warning: true,
            reason: "NotAnnounced",
            note: format!(
                "no node announces the service: {}",
                seen.silence(ips).unwrap_or_else(|| seen
                    .reasons
                    .get(key)
                    .cloned()
                    .unwrap_or_else(|| "no live node holds its addresses".into()))
            ),
        },
        (true, false) => EventSpec {
            warning: false,
            reason: "Announcing",
            note: format!("announced from {now}"),
        },
        (false, false) => EventSpec {
            warning: false,
            reason: "AnnouncementMoved",
            note: format!("announced from {now} (was {before})"),
        },
    };
    change.annotations.insert(annotations::ANNOUNCING, value);
    change.events.push(event);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AdvertisementStatus, InterfaceAddresses, NodeStateSpec, ServiceNote};

    fn state(node: &str, ifaces: &[(&str, &[&str])], notes: &[(&str, &str)]) -> NodeState {
        let mut s = NodeState::new(node, NodeStateSpec {});
        s.status = Some(NodeStateStatus {
            interfaces: ifaces
                .iter()
                .map(|(i, a)| InterfaceAddresses {
                    interface: i.to_string(),
                    addresses: a.iter().map(|x| x.to_string()).collect(),
                })
                .collect(),
            not_announced: notes
                .iter()
                .map(|(s, r)| ServiceNote {
                    service: s.to_string(),
                    reason: r.to_string(),
                })
                .collect(),
            ..Default::default()
        });
        s
    }

    fn ips(v: &[&str]) -> Vec<IpAddr> {
        v.iter().map(|i| i.parse().unwrap()).collect()
    }

    #[test]
    fn a_move_is_when_no_announcing_node_stays() {
        assert_eq!(change_kind("", "a/kube-lb0"), "started");
        assert_eq!(change_kind("a/eth0", "b/eth0"), "moved");
        assert_eq!(
            change_kind("a/kube-lb0,b/kube-lb0", "b/kube-lb0"),
            "changed"
        );
        assert_eq!(
            change_kind("b/kube-lb0", "a/kube-lb0,b/kube-lb0"),
            "changed"
        );
        assert_eq!(change_kind("a/kube-lb0", ""), "stopped");
    }

    #[test]
    fn live_nodes_holding_the_addresses() {
        let states = [
            state(
                "a",
                &[("kube-lb0", &["203.0.113.5/32", "2001:db8::5/128"])],
                &[],
            ),
            state(
                "b",
                &[
                    ("kube-lb0", &["203.0.113.5/32"]),
                    ("eth0", &["10.0.0.9/24"]),
                ],
                &[],
            ),
            state("dead", &[("kube-lb0", &["203.0.113.5/32"])], &[]),
        ];
        let live: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        let seen = Announcements::collect(&states, &live);
        assert_eq!(
            seen.value(&ips(&["203.0.113.5", "2001:db8::5"])),
            "a/kube-lb0,b/kube-lb0"
        );
        assert_eq!(seen.value(&ips(&["10.0.0.9"])), "b/eth0");
        assert_eq!(seen.value(&ips(&["10.9.9.9"])), "");
    }

    #[test]
    fn a_node_whose_daemon_advertises_an_address_to_no_peer_does_not_announce_it() {
        let mut filtered = state(
            "a",
            &[
                ("kube-lb0", &["203.0.113.5/32", "203.0.113.6/32"]),
                ("eth0", &["10.0.0.9/24"]),
            ],
            &[],
        );
        let status = filtered.status.as_mut().unwrap();
        status.advertisement = Some(AdvertisementStatus {
            peers: vec![],
            unadvertised: vec!["203.0.113.5/32".into()],
        });
        status.conditions = vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: "Advertised".into(),
            status: "False".into(),
            reason: "FilteredByPeerPolicy".into(),
            message: "neighbor 10.0.0.2 route-map peer-out denies 203.0.113.5/32".into(),
            observed_generation: None,
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
        }];
        let states = [
            filtered,
            state("b", &[("kube-lb0", &["203.0.113.5/32"])], &[]),
        ];
        let seen = Announcements::collect(&states, &["a".to_string()].into());
        assert_eq!(seen.value(&ips(&["203.0.113.5"])), "");
        // Its other routed address, and local ones (never in `unadvertised`), are unaffected.
        assert_eq!(seen.value(&ips(&["203.0.113.6"])), "a/kube-lb0");
        assert_eq!(seen.value(&ips(&["10.0.0.9"])), "a/eth0");
        let mut c = ServiceChange::default();
        add_change(
            &mut c,
            "ns/web",
            Some("a/kube-lb0"),
            &ips(&["203.0.113.5"]),
            &seen,
        );
        assert_eq!(c.annotations[annotations::ANNOUNCING], None);
        assert_eq!(c.events[0].reason, "NotAnnounced");
        assert_eq!(
            c.events[0].note,
            "no node announces the service: held but advertised to no peer: a: neighbor 10.0.0.2 route-map peer-out denies 203.0.113.5/32"
        );
        // Both nodes live: b still announces it.
        let seen = Announcements::collect(&states, &["a".to_string(), "b".to_string()].into());
        assert_eq!(seen.value(&ips(&["203.0.113.5"])), "b/kube-lb0");
    }

    #[test]
    fn runs_are_held_address_by_address_and_many_nodes_are_summarised() {
        let runs: &[&str] = &[
            "203.0.113.1-203.0.113.200/32",
            "2001:db8::1-2001:db8::9/128",
        ];
        let mut states: Vec<NodeState> = (0..LISTED_ANNOUNCERS)
            .map(|i| state(&format!("n{i:02}"), &[("kube-lb0", runs)], &[]))
            .collect();
        let live: BTreeSet<String> = (0..=LISTED_ANNOUNCERS)
            .map(|i| format!("n{i:02}"))
            .collect();
        let seen = Announcements::collect(&states, &live);
        // One group for the nodes holding the same runs.
        assert_eq!(seen.groups.len(), 1);
        assert_eq!(
            seen.announcers(&ips(&["203.0.113.200"])).len(),
            LISTED_ANNOUNCERS
        );
        assert_eq!(
            seen.announcers(&ips(&["2001:db8::9"])).len(),
            LISTED_ANNOUNCERS
        );
        for outside in ["203.0.113.0", "203.0.113.201", "2001:db8::a", "10.0.0.1"] {
            assert_eq!(seen.value(&ips(&[outside])), "", "{outside}");
        }
        states.push(state(
            &format!("n{LISTED_ANNOUNCERS:02}"),
            &[("kube-lb0", runs)],
            &[],
        ));
        let seen = Announcements::collect(&states, &live);
        assert_eq!(seen.value(&ips(&["203.0.113.7"])), MANY_ANNOUNCERS);
        assert_eq!(change_kind(MANY_ANNOUNCERS, "n00/kube-lb0"), "changed");
        assert_eq!(change_kind("n00/kube-lb0", MANY_ANNOUNCERS), "changed");
        assert_eq!(change_kind(MANY_ANNOUNCERS, ""), "stopped");
    }

    #[test]
    fn annotation_and_events_follow_changes() {
        let states = [
            state("a", &[("eth0", &["10.0.0.9/24"])], &[]),
            state("c", &[], &[("ns/idle", "no ready endpoints")]),
        ];
        let live: BTreeSet<String> = ["a".to_string(), "c".to_string()].into();
        let seen = Announcements::collect(&states, &live);
        let run = |key: &str, before: Option<&str>, addrs: &[&str]| {
            let mut c = ServiceChange::default();
            add_change(&mut c, key, before, &ips(addrs), &seen);
            c
        };
        let c = run("ns/web", None, &["10.0.0.9"]);
        assert_eq!(
            c.annotations[annotations::ANNOUNCING].as_deref(),
            Some("a/eth0")
        );
        assert_eq!(c.events[0].reason, "Announcing");
        assert!(run("ns/web", Some("a/eth0"), &["10.0.0.9"]).is_empty());
        let moved = run("ns/web", Some("b/eth0"), &["10.0.0.9"]);
        assert_eq!(moved.events[0].reason, "AnnouncementMoved");
        assert!(moved.events[0].note.contains("was b/eth0"));
        let idle = run("ns/idle", Some("a/eth0"), &["10.0.0.77"]);
        assert_eq!(idle.annotations[annotations::ANNOUNCING], None);
        assert!(idle.events[0].warning);
        assert!(
            idle.events[0].note.contains("no ready endpoints"),
            "{:?}",
            idle.events
        );
        // Never announced: nothing to say. Released: the annotation goes, silently.
        assert!(run("ns/idle", None, &["10.0.0.77"]).is_empty());
        let released = run("ns/web", Some("a/eth0"), &[]);
        assert_eq!(released.annotations[annotations::ANNOUNCING], None);
        assert!(released.events.is_empty());
    }

    proptest::proptest! {
        /// Counting the groups' holders gives the annotation collecting every holder gave.
        #[test]
        fn the_value_is_that_of_every_announcer(
            nodes in proptest::collection::vec((0usize..3, 0usize..2), 0..40),
            asked in proptest::collection::vec(0usize..3, 1..3),
        ) {
            let sets: [&[&str]; 3] = [
                &["203.0.113.1-203.0.113.9/32"],
                &["203.0.113.5-203.0.113.20/32"],
                &["198.51.100.1/32"],
            ];
            let probes = ["203.0.113.2", "203.0.113.15", "198.51.100.1"];
            let states: Vec<NodeState> = nodes
                .iter()
                .enumerate()
                .map(|(i, (set, iface))| {
                    state(&format!("n{i:02}"), &[(["kube-lb0", "eth0"][*iface], sets[*set])], &[])
                })
                .collect();
            let live: BTreeSet<String> = (0..nodes.len()).map(|i| format!("n{i:02}")).collect();
            let seen = Announcements::collect(&states, &live);
            let wanted = ips(&asked.iter().map(|i| probes[*i]).collect::<Vec<_>>());
            let every = seen.announcers(&wanted);
            let reference = if every.len() > LISTED_ANNOUNCERS {
                MANY_ANNOUNCERS.to_string()
            } else {
                every.into_iter().cloned().collect::<Vec<_>>().join(",")
            };
            proptest::prop_assert_eq!(seen.value(&wanted), reference);
        }
    }
}
