//! What the agent reports (pure): the `NodeState` status of its node.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{
    AdvertisementStatus, ApplyResult, InterfaceAddresses, NodeStateStatus, PeerAdvertisement,
    RoutingSession, RoutingStatus, ServiceNote,
};
use crate::daemon::advertised::{NAMED_MISSING, Verification};
use crate::daemon::applier::LastApply;
use crate::daemon::health::{Tracked, Tracker};
use crate::node::IfAddress;
use crate::status::condition;

/// What the node status is made of.
pub struct NodeReport<'a> {
    pub daemon: &'a str,
    /// routelb's addresses per interface, as converged.
    pub held: &'a BTreeMap<String, BTreeSet<IfAddress>>,
    pub lb_interface: &'a str,
    /// Addresses that could not be put on an interface, with why.
    pub address_errors: &'a [String],
    pub last_apply: Option<&'a LastApply>,
    /// When the last apply attempt ended (RFC 3339).
    pub last_apply_time: Option<&'a str>,
    /// Routing problems on this node (policies that cannot be honoured here).
    pub problems: &'a [String],
    pub not_announced: &'a [ServiceNote],
    /// The last verification of what the daemon advertises, once there is one.
    pub advertised: Option<&'a Verification>,
    /// The daemon's sessions, once looked at.
    pub routing: Option<&'a Tracker>,
    pub drain: &'a super::drain::Phase,
}

/// How many sessions NodeState lists; the counts cover the rest.
pub const LISTED_SESSIONS: usize = 32;
/// How many down sessions the `SessionsUp` condition names.
const NAMED_DOWN: usize = 3;

pub fn node_status(r: &NodeReport, old: &[Condition], now: &Time) -> NodeStateStatus {
    let address_count = r.held.values().map(|a| a.len() as u32).sum();
    let apply = apply_state(r.last_apply, r.last_apply_time);
    let advertised = r.advertised.map(|v| {
        let d = &v.verdict;
        ("Advertised", d.ok, d.reason, d.message.clone())
    });
    let sessions = r.routing.map(sessions_condition);
    let conditions = node_conditions(r, address_count, &apply)
        .into_iter()
        .chain(advertised)
        .chain(sessions)
        .chain(std::iter::once(super::drain::condition(r.drain)))
        .map(|(type_, ok, reason, message)| condition(type_, ok, reason, message, None, old, now))
        .collect();
    NodeStateStatus {
        daemon: Some(r.daemon.to_string()),
        interfaces: interfaces(r.held),
        address_count,
        announced_prefixes: announced_prefixes(r.held, r.lb_interface),
        fragment_hash: apply.fragment_hash,
        last_apply: apply.last_apply,
        not_announced: r.not_announced.to_vec(),
        advertisement: r.advertised.map(advertisement),
        conditions,
        last_drift_repair: None,
        routing: r.routing.map(routing),
        revision: None,
        pending_revision: None,
        fast_failover: None,
    }
}

/// The sessions as NodeState shows them: those down first, then in key order, at most
/// [`LISTED_SESSIONS`].
pub fn routing(tracker: &Tracker) -> RoutingStatus {
    let (up, total) = tracker.counts();
    let mut listed: Vec<&Tracked> = tracker.sessions().collect();
    listed.sort_by_key(|t| t.session.up);
    RoutingStatus {
        summary: format!("{up}/{total}"),
        sessions_up: up as u32,
        sessions_total: total as u32,
        sessions: listed
            .into_iter()
            .take(LISTED_SESSIONS)
            .map(routing_session)
            .collect(),
        unknown: tracker
            .unknown()
            .iter()
            .map(|k| k.name().to_string())
            .collect(),
    }
}

fn routing_session(t: &Tracked) -> RoutingSession {
    let s = &t.session;
    RoutingSession {
        protocol: s.key.kind.name().into(),
        instance: s.key.instance.clone(),
        peer: s.key.peer.clone(),
        interface: s.key.interface.clone(),
        address: s.address.clone(),
        state: s.state.clone(),
        up: s.up,
        since: humantime::format_rfc3339_seconds(t.since).to_string(),
        received_prefixes: s.received,
        sent_prefixes: s.sent,
        bfd: s.bfd.clone(),
        detail: s.detail.clone(),
    }
}

/// `SessionsUp`: every session and adjacency the daemon keeps is up (true with none).
fn sessions_condition(t: &Tracker) -> (&'static str, bool, &'static str, String) {
    let (up, total) = t.counts();
    if up == total {
        return ("SessionsUp", true, "AllUp", format!("{up} of {total} up"));
    }
    let named: Vec<String> = t
        .sessions()
        .filter(|t| !t.session.up)
        .take(NAMED_DOWN)
        .map(|t| format!("{} ({})", t.session.key, t.session.state))
        .collect();
    let named = named.join(", ");
    let more = (total - up).saturating_sub(NAMED_DOWN);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    (
        "SessionsUp",
        false,
        "SessionsDown",
        format!("{up} of {total} up; down: {named}{more}"),
    )
}

/// The verification as NodeState shows it: counts per peer, a few missing prefixes named.
pub fn advertisement(v: &Verification) -> AdvertisementStatus {
    AdvertisementStatus {
        peers: v
            .peers
            .iter()
            .map(|r| PeerAdvertisement {
                protocol: r.exit.protocol.name().into(),
                vrf: r.exit.vrf.clone(),
                peer: r.exit.name.clone(),
                family: r.exit.family.name().into(),
                up: r.exit.up,
                advertised: r.advertised as u32,
                missing: r.missing.len() as u32,
                missing_prefixes: r
                    .missing
                    .iter()
                    .take(NAMED_MISSING)
                    .map(ToString::to_string)
                    .collect(),
                filters: r.exit.filters.clone(),
            })
            .collect(),
        unadvertised: v.unadvertised.keys().map(ToString::to_string).collect(),
    }
}

/// routelb's addresses per interface, in runs (`first-last/length`); interfaces without any
/// left out.
fn interfaces(held: &BTreeMap<String, BTreeSet<IfAddress>>) -> Vec<InterfaceAddresses> {
    held.iter()
        .filter(|(_, a)| !a.is_empty())
        .map(|(iface, addrs)| InterfaceAddresses {
            interface: iface.clone(),
            addresses: crate::api::address_runs::encode(addrs),
        })
        .collect()
}

/// The prefixes of the addresses on the load-balancer interface, sorted and distinct, in runs
/// like the addresses (only host routes can be consecutive): they reach the daemon as
/// connected routes.
fn announced_prefixes(
    held: &BTreeMap<String, BTreeSet<IfAddress>>,
    lb_interface: &str,
) -> Vec<String> {
    let networks: BTreeSet<IfAddress> = held
        .get(lb_interface)
        .into_iter()
        .flatten()
        .filter_map(|(ip, len)| ipnet::IpNet::new(*ip, *len).ok())
        .map(|n| (n.trunc().addr(), n.prefix_len()))
        .collect();
    crate::api::address_runs::encode(&networks)
}

/// What the last apply to the daemon means for the status.
struct ApplyState {
    /// The fragment in place, if one is.
    fragment_hash: Option<String>,
    last_apply: Option<ApplyResult>,
    ok: bool,
    /// The `DaemonConfigured` message.
    message: String,
}

fn apply_state(last: Option<&LastApply>, time: Option<&str>) -> ApplyState {
    let Some(a) = last else {
        return ApplyState {
            fragment_hash: None,
            last_apply: None,
            ok: false,
            message: "the daemon has not been configured yet".to_string(),
        };
    };
    let (hash, result, ok, message) = match a {
        LastApply::Applied { hash } => (Some(hash), "Applied", true, None),
        LastApply::Unchanged { hash } => (Some(hash), "Unchanged", true, None),
        LastApply::Refused { hash, message } => {
            (Some(hash), "Refused", false, Some(message.clone()))
        }
        LastApply::Failed { message } => (None, "Failed", false, Some(message.clone())),
    };
    let shown = match &message {
        Some(m) => format!("{result}: {m}"),
        None => format!("fragment {} is in place", hash.cloned().unwrap_or_default()),
    };
    ApplyState {
        fragment_hash: hash.cloned(),
        last_apply: Some(ApplyResult {
            result: result.into(),
            time: time.unwrap_or("unknown").into(),
            message,
        }),
        ok,
        message: shown,
    }
}

/// The node's conditions as (type, status, reason, message), in the order they are written.
/// Every message is non-empty: old API servers read "" as absent, and it is required.
fn node_conditions(
    r: &NodeReport,
    address_count: u32,
    apply: &ApplyState,
) -> [(&'static str, bool, &'static str, String); 4] {
    let addresses_ok = r.address_errors.is_empty();
    let ready = addresses_ok && apply.ok;
    [
        if ready {
            (
                "Ready",
                true,
                "Converged",
                "addresses and daemon configuration are as planned".into(),
            )
        } else {
            (
                "Ready",
                false,
                "NotConverged",
                "see the other conditions".into(),
            )
        },
        if addresses_ok {
            (
                "AddressesConverged",
                true,
                "Converged",
                format!("{address_count} addresses held as planned"),
            )
        } else {
            (
                "AddressesConverged",
                false,
                "AddressError",
                r.address_errors.join("; "),
            )
        },
        if apply.ok {
            ("DaemonConfigured", true, "Applied", apply.message.clone())
        } else {
            (
                "DaemonConfigured",
                false,
                "NotApplied",
                apply.message.clone(),
            )
        },
        if r.problems.is_empty() {
            (
                "RoutingProblems",
                false,
                "None",
                "every policy for this node can be honoured".into(),
            )
        } else {
            ("RoutingProblems", true, "Problems", r.problems.join("; "))
        },
    ]
}

/// Whether two statuses differ in anything but condition timestamps.
pub fn status_differs(a: &NodeStateStatus, b: &NodeStateStatus) -> bool {
    let strip = |s: &NodeStateStatus| NodeStateStatus {
        conditions: vec![],
        last_apply: s.last_apply.as_ref().map(|l| ApplyResult {
            time: String::new(),
            ..l.clone()
        }),
        ..s.clone()
    };
    strip(a) != strip(b) || crate::status::conditions_differ(&a.conditions, &b.conditions)
}

/// Whether a new status must go out at once rather than in the node's next slot
/// ([`super::status_pace`]): a condition turned or came or went, a Service's report
/// (`notAnnounced`, one reporting node per Service) changed, or what a rollout, drift repair
/// or fast failover waits on did. Address lists, counts and per-peer figures, which every
/// node changes with every routed Service, wait for the slot.
pub fn urgent(old: &NodeStateStatus, new: &NodeStateStatus) -> bool {
    let turned = |c: &[Condition]| -> BTreeSet<(String, String)> {
        c.iter()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect()
    };
    turned(&old.conditions) != turned(&new.conditions)
        || old.not_announced != new.not_announced
        || old.revision != new.revision
        || old.pending_revision != new.pending_revision
        || old.fast_failover != new.fast_failover
        || old.last_drift_repair != new.last_drift_repair
        || old.last_apply.as_ref().map(|a| &a.result) != new.last_apply.as_ref().map(|a| &a.result)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report with nothing to say but the addresses held.
    fn plain<'a>(
        daemon: &'a str,
        held: &'a BTreeMap<String, BTreeSet<IfAddress>>,
    ) -> NodeReport<'a> {
        NodeReport {
            daemon,
            held,
            lb_interface: "kube-lb0",
            address_errors: &[],
            last_apply: None,
            last_apply_time: None,
            problems: &[],
            not_announced: &[],
            advertised: None,
            routing: None,
            drain: &super::super::drain::Phase::Serving,
        }
    }

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap())
    }

    #[test]
    fn node_status_lists_addresses_prefixes_and_conditions() {
        let mut held = BTreeMap::new();
        held.insert(
            "kube-lb0".to_string(),
            [
                ("203.0.113.5".parse().unwrap(), 32),
                ("203.0.113.6".parse().unwrap(), 32),
                ("198.51.100.7".parse().unwrap(), 24),
            ]
            .into(),
        );
        held.insert(
            "eth0".to_string(),
            [("10.0.0.5".parse().unwrap(), 24)].into(),
        );
        held.insert("eth1".to_string(), BTreeSet::new());
        let apply = LastApply::Refused {
            hash: "abc".into(),
            message: "unknown command".into(),
        };
        let s = node_status(
            &NodeReport {
                last_apply: Some(&apply),
                last_apply_time: Some("2026-11-27T00:00:00Z"),
                problems: &["InstanceMissing: no router ospf".into()],
                ..plain("frr", &held)
            },
            &[],
            &now(),
        );
        assert_eq!(s.address_count, 4);
        assert_eq!(s.interfaces.len(), 2);
        assert_eq!(
            s.interfaces[1].addresses,
            ["198.51.100.7/24", "203.0.113.5-203.0.113.6/32"]
        );
        assert_eq!(
            s.announced_prefixes,
            ["198.51.100.0/24", "203.0.113.5-203.0.113.6/32"]
        );
        assert_eq!(s.fragment_hash.as_deref(), Some("abc"));
        let cond = |t: &str| s.conditions.iter().find(|c| c.type_ == t).unwrap().clone();
        assert_eq!(cond("Ready").status, "False");
        assert_eq!(cond("AddressesConverged").status, "True");
        assert_eq!(cond("DaemonConfigured").status, "False");
        assert!(cond("DaemonConfigured").message.contains("unknown command"));
        assert_eq!(cond("RoutingProblems").status, "True");
        // Every message is non-empty (old API servers read "" as absent, and it is required).
        assert!(s.conditions.iter().all(|c| !c.message.is_empty()));
        assert!(!status_differs(
            &s,
            &node_status(
                &NodeReport {
                    last_apply: Some(&apply),
                    last_apply_time: Some("2026-11-27T00:00:01Z"),
                    problems: &["InstanceMissing: no router ospf".into()],
                    ..plain("frr", &held)
                },
                &s.conditions,
                &now(),
            )
        ));
    }

    #[test]
    fn address_churn_waits_for_the_slot_and_a_turned_condition_does_not() {
        let report = |held: &BTreeMap<String, BTreeSet<IfAddress>>, errors: &[String]| {
            node_status(
                &NodeReport {
                    address_errors: errors,
                    ..plain("frr", held)
                },
                &[],
                &now(),
            )
        };
        let one: BTreeMap<String, BTreeSet<IfAddress>> = [(
            "kube-lb0".to_string(),
            [("203.0.113.5".parse().unwrap(), 32)].into(),
        )]
        .into();
        let mut two = one.clone();
        two.get_mut("kube-lb0")
            .unwrap()
            .insert(("203.0.113.9".parse().unwrap(), 32));
        let (a, b) = (report(&one, &[]), report(&two, &[]));
        assert!(status_differs(&a, &b));
        assert!(!urgent(&a, &b), "a routed Service more is routine");
        let failed = report(&one, &["kube-lb0: permission denied".into()]);
        assert!(urgent(&a, &failed), "AddressesConverged turned False");
        let mut reported = a.clone();
        reported.not_announced.push(crate::api::ServiceNote {
            service: "shop/web".into(),
            reason: "no ready endpoints".into(),
        });
        assert!(urgent(&a, &reported));
    }

    #[test]
    fn the_last_apply_tells_the_fragment_in_place_and_why_not() {
        let none = apply_state(None, None);
        assert_eq!(
            (none.fragment_hash, none.last_apply, none.ok),
            (None, None, false)
        );
        assert_eq!(none.message, "the daemon has not been configured yet");

        let applied = apply_state(Some(&LastApply::Unchanged { hash: "abc".into() }), None);
        assert_eq!(applied.fragment_hash.as_deref(), Some("abc"));
        assert!(applied.ok);
        assert_eq!(applied.message, "fragment abc is in place");
        assert_eq!(
            applied.last_apply,
            Some(ApplyResult {
                result: "Unchanged".into(),
                time: "unknown".into(),
                message: None,
            })
        );

        let failed = apply_state(
            Some(&LastApply::Failed {
                message: "vtysh: connection refused".into(),
            }),
            Some("2026-11-27T00:00:00Z"),
        );
        assert_eq!((failed.fragment_hash, failed.ok), (None, false));
        assert_eq!(failed.message, "Failed: vtysh: connection refused");
        let last = failed.last_apply.unwrap();
        assert_eq!(
            (last.result.as_str(), last.time.as_str()),
            ("Failed", "2026-11-27T00:00:00Z")
        );
    }

    #[test]
    fn a_converged_node_is_ready() {
        let held = BTreeMap::new();
        let report = plain("bird", &held);
        let applied = apply_state(Some(&LastApply::Applied { hash: "h".into() }), None);
        let table = node_conditions(&report, 2, &applied);
        let summary: Vec<_> = table
            .iter()
            .map(|(t, ok, reason, _)| (*t, *ok, *reason))
            .collect();
        assert_eq!(
            summary,
            [
                ("Ready", true, "Converged"),
                ("AddressesConverged", true, "Converged"),
                ("DaemonConfigured", true, "Applied"),
                ("RoutingProblems", false, "None"),
            ]
        );
        assert_eq!(table[1].3, "2 addresses held as planned");
        // Not configured yet: not ready, and the daemon condition says why.
        let table = node_conditions(&report, 2, &apply_state(None, None));
        assert_eq!(&table[0].0, &"Ready");
        assert!(!table[0].1);
        assert_eq!(table[2].2, "NotApplied");
    }

    use crate::daemon::health::Kind;

    fn tracker_with(sessions: &[(&str, bool)], unknown: &[Kind]) -> Tracker {
        use crate::daemon::health::{Look, Session, SessionKey};
        let mut t = Tracker::default();
        let t0 = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let sessions = sessions
            .iter()
            .map(|(peer, up)| {
                let key = SessionKey {
                    kind: Kind::Bgp,
                    instance: None,
                    peer: peer.to_string(),
                    interface: None,
                };
                Session::new(key, if *up { "Established" } else { "Active" }, *up)
            })
            .collect();
        t.look(
            t0,
            Look {
                sessions,
                unknown: unknown.iter().copied().collect(),
            },
        );
        t
    }

    #[test]
    fn routing_lists_sessions_down_first_within_the_bound() {
        let peers: Vec<(String, bool)> = (0..40)
            .map(|i| (format!("10.0.0.{i:02}"), i % 10 != 7))
            .collect();
        let peers: Vec<(&str, bool)> = peers.iter().map(|(p, u)| (p.as_str(), *u)).collect();
        let t = tracker_with(&peers, &[Kind::Ospf]);
        let r = routing(&t);
        assert_eq!(r.summary, "36/40");
        assert_eq!((r.sessions_up, r.sessions_total), (36, 40));
        assert_eq!(r.sessions.len(), LISTED_SESSIONS);
        let first: Vec<(&str, bool)> = r.sessions[..5]
            .iter()
            .map(|s| (s.peer.as_str(), s.up))
            .collect();
        assert_eq!(
            first,
            [
                ("10.0.0.07", false),
                ("10.0.0.17", false),
                ("10.0.0.27", false),
                ("10.0.0.37", false),
                ("10.0.0.00", true)
            ]
        );
        assert_eq!(r.sessions[0].since, "2027-01-15T08:00:00Z");
        assert_eq!(r.unknown, ["ospf"]);
        let (type_, ok, reason, message) = sessions_condition(&t);
        assert_eq!((type_, ok, reason), ("SessionsUp", false, "SessionsDown"));
        assert_eq!(
            message,
            "36 of 40 up; down: BGP session 10.0.0.07 (Active), BGP session 10.0.0.17 (Active), BGP session 10.0.0.27 (Active) and 1 more"
        );
        let t = tracker_with(&[("a", true)], &[]);
        assert_eq!(sessions_condition(&t).2, "AllUp");
    }
}
