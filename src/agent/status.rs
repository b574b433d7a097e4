//! What the agent reports (pure): the `NodeState` status of its node.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{ApplyResult, InterfaceAddresses, NodeStateStatus, ServiceNote};
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
}

pub fn node_status(r: &NodeReport, old: &[Condition], now: &Time) -> NodeStateStatus {
    let interfaces: Vec<InterfaceAddresses> = r
        .held
        .iter()
        .filter(|(_, a)| !a.is_empty())
        .map(|(iface, addrs)| InterfaceAddresses {
            interface: iface.clone(),
            addresses: addrs
                .iter()
                .map(|(ip, len)| format!("{ip}/{len}"))
                .collect(),
        })
        .collect();
    let address_count = r.held.values().map(|a| a.len() as u32).sum();
    // Prefixes on the load-balancer interface reach the daemon as connected routes.
    let announced_prefixes = r
        .held
        .get(r.lb_interface)
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
        .unwrap_or_default();

    let (fragment_hash, last_apply, applied_ok, apply_msg) = match r.last_apply {
        None => (
            None,
            None,
            false,
            "the daemon has not been configured yet".to_string(),
        ),
        Some(a) => {
            let (hash, result, ok, message) = match a {
                LastApply::Applied { hash } => (Some(hash), "Applied", true, None),
                LastApply::Unchanged { hash } => (Some(hash), "Unchanged", true, None),
                LastApply::Refused { hash, message } => {
                    (Some(hash), "Refused", false, Some(message.clone()))
                }
                LastApply::Failed { message } => (None, "Failed", false, Some(message.clone())),
            };
            let msg = match &message {
                Some(m) => format!("{result}: {m}"),
                None => format!("fragment {} is in place", hash.cloned().unwrap_or_default()),
            };
            (
                hash.cloned(),
                Some(ApplyResult {
                    result: result.into(),
                    time: r.last_apply_time.unwrap_or("unknown").into(),
                    message,
                }),
                ok,
                msg,
            )
        }
    };
    let addresses_ok = r.address_errors.is_empty();
    let mut conditions = vec![
        condition(
            "AddressesConverged",
            addresses_ok,
            if addresses_ok {
                "Converged"
            } else {
                "AddressError"
            },
            if addresses_ok {
                format!("{address_count} addresses held as planned")
            } else {
                r.address_errors.join("; ")
            },
            None,
            old,
            now,
        ),
        condition(
            "DaemonConfigured",
            applied_ok,
            if applied_ok { "Applied" } else { "NotApplied" },
            apply_msg,
            None,
            old,
            now,
        ),
        condition(
            "RoutingProblems",
            !r.problems.is_empty(),
            if r.problems.is_empty() {
                "None"
            } else {
                "Problems"
            },
            if r.problems.is_empty() {
                "every policy for this node can be honoured".into()
            } else {
                r.problems.join("; ")
            },
            None,
            old,
            now,
        ),
    ];
    let ready = addresses_ok && applied_ok;
    conditions.insert(
        0,
        condition(
            "Ready",
            ready,
            if ready { "Converged" } else { "NotConverged" },
            if ready {
                "addresses and daemon configuration are as planned".into()
            } else {
                "see the other conditions".into()
            },
            None,
            old,
            now,
        ),
    );
    NodeStateStatus {
        daemon: Some(r.daemon.to_string()),
        interfaces,
        address_count,
        announced_prefixes,
        fragment_hash,
        last_apply,
        not_announced: r.not_announced.to_vec(),
        conditions,
    }
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
                },
                &s.conditions,
                &now(),
            )
        ));
    }
}
