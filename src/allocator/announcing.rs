//! Which nodes announce each Service (pure): from the NodeStates of live nodes, the
//! `routelb.io/announcing` annotation (`node/interface`, comma-separated) and the Events when
//! announcing starts, moves or stops. The allocator is the only writer of Services; the agents
//! report what they hold in their NodeState, and the node that reports on a service nobody
//! announces says why there.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use kube::ResourceExt;

use super::changes::ServiceChange;
use crate::api::{NodeState, annotations};
use crate::status::EventSpec;

/// What live nodes hold, by address, and why services are not announced, by `namespace/name`.
#[derive(Debug, Default)]
pub struct Announcements {
    by_address: HashMap<IpAddr, BTreeSet<String>>,
    reasons: HashMap<String, String>,
}

impl Announcements {
    /// From the NodeStates of the nodes in `live` (a dead node's NodeState is stale).
    pub fn collect<'a>(
        states: impl IntoIterator<Item = &'a NodeState>,
        live: &BTreeSet<String>,
    ) -> Announcements {
        let mut a = Announcements::default();
        for st in states {
            let node = st.name_any();
            let Some(status) = st.status.as_ref().filter(|_| live.contains(&node)) else {
                continue;
            };
            for iface in &status.interfaces {
                for addr in &iface.addresses {
                    let ip = addr.split('/').next().and_then(|i| i.parse().ok());
                    if let Some(ip) = ip {
                        a.by_address
                            .entry(ip)
                            .or_default()
                            .insert(format!("{node}/{}", iface.interface));
                    }
                }
            }
            for n in &status.not_announced {
                a.reasons.insert(n.service.clone(), n.reason.clone());
            }
        }
        a
    }

    /// The annotation value for a service with these addresses; empty when nobody holds one.
    pub fn value(&self, ips: &[IpAddr]) -> String {
        let set: BTreeSet<&String> = ips
            .iter()
            .filter_map(|ip| self.by_address.get(ip))
            .flatten()
            .collect();
        set.into_iter().cloned().collect::<Vec<_>>().join(",")
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
                seen.reasons
                    .get(key)
                    .map(String::as_str)
                    .unwrap_or("no live node holds its addresses")
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
    use crate::api::{InterfaceAddresses, NodeStateSpec, NodeStateStatus, ServiceNote};

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
}
