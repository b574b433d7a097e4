//! What the agent reports (pure): the `NodeState` status of its node.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{
    AdvertisementStatus, ApplyResult, InterfaceAddresses, NodeStateStatus, PeerAdvertisement,
    ServiceNote,
};
use crate::daemon::advertised::{NAMED_MISSING, Verification};
use crate::daemon::applier::LastApply;
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
}

pub fn node_status(r: &NodeReport, old: &[Condition], now: &Time) -> NodeStateStatus {
    let address_count = r.held.values().map(|a| a.len() as u32).sum();
    let apply = apply_state(r.last_apply, r.last_apply_time);
    let advertised = r.advertised.map(|v| {
        let d = &v.verdict;
        ("Advertised", d.ok, d.reason, d.message.clone())
    });
    let conditions = node_conditions(r, address_count, &apply)
        .into_iter()
        .chain(advertised)
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
    }
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

/// routelb's addresses per interface, as `address/length`; interfaces without any left out.
fn interfaces(held: &BTreeMap<String, BTreeSet<IfAddress>>) -> Vec<InterfaceAddresses> {
    held.iter()
        .filter(|(_, a)| !a.is_empty())
        .map(|(iface, addrs)| InterfaceAddresses {
            interface: iface.clone(),
            addresses: addrs
                .iter()
                .map(|(ip, len)| format!("{ip}/{len}"))
                .collect(),
        })
        .collect()
}

/// The prefixes of the addresses on the load-balancer interface, sorted and distinct: they
/// reach the daemon as connected routes.
fn announced_prefixes(
    held: &BTreeMap<String, BTreeSet<IfAddress>>,
    lb_interface: &str,
) -> Vec<String> {
    held.get(lb_interface)
        .map(|a| {
            a.iter()
                .map(|(ip, len)| {
                    ipnet::IpNet::new(*ip, *len)
                        .map(|n| n.trunc().to_string())
                        .unwrap_or_default()
                })
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        })
        .unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

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
                daemon: "frr",
                held: &held,
                lb_interface: "kube-lb0",
                address_errors: &[],
                last_apply: Some(&apply),
                last_apply_time: Some("2026-11-27T00:00:00Z"),
                problems: &["InstanceMissing: no router ospf".into()],
                not_announced: &[],
                advertised: None,
            },
            &[],
            &now(),
        );
        assert_eq!(s.address_count, 3);
        assert_eq!(s.interfaces.len(), 2);
        assert_eq!(s.announced_prefixes, ["198.51.100.0/24", "203.0.113.5/32"]);
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
                    daemon: "frr",
                    held: &held,
                    lb_interface: "kube-lb0",
                    address_errors: &[],
                    last_apply: Some(&apply),
                    last_apply_time: Some("2026-11-27T00:00:01Z"),
                    problems: &["InstanceMissing: no router ospf".into()],
                    not_announced: &[],
                    advertised: None,
                },
                &s.conditions,
                &now(),
            )
        ));
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
        let report = NodeReport {
            daemon: "bird",
            held: &held,
            lb_interface: "kube-lb0",
            address_errors: &[],
            last_apply: None,
            last_apply_time: None,
            problems: &[],
            not_announced: &[],
            advertised: None,
        };
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
}
