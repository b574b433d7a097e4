//! The views from hand-made snapshots: problems first, each problem's reason where the
//! cluster keeps it, and the chain of `why` stopping at the first broken link.

use serde_json::json;

use super::*;

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn svc(name: &str, ann: serde_json::Value, ips: &[&str]) -> Service {
    let ingress: Vec<_> = ips.iter().map(|i| json!({ "ip": i })).collect();
    serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": "shop", "annotations": ann },
        "spec": { "type": "LoadBalancer", "ports": [{ "port": 80 }] },
        "status": { "loadBalancer": { "ingress": ingress } },
    }))
    .unwrap()
}

fn pool(
    name: &str,
    mode: &str,
    labels: serde_json::Value,
    status: serde_json::Value,
) -> AddressPool {
    serde_json::from_value(json!({
        "apiVersion": "routelb.io/v1alpha1", "kind": "AddressPool",
        "metadata": { "name": name, "labels": labels },
        "spec": { "addresses": ["203.0.113.0/30"], "mode": mode },
        "status": status,
    }))
    .unwrap()
}

fn policy(name: &str, selector: serde_json::Value) -> RoutingPolicy {
    serde_json::from_value(json!({
        "apiVersion": "routelb.io/v1alpha1", "kind": "RoutingPolicy",
        "metadata": { "name": name },
        "spec": { "protocols": ["bgp"], "poolSelector": selector },
    }))
    .unwrap()
}

fn node_state(name: &str, status: serde_json::Value) -> NodeState {
    serde_json::from_value(json!({
        "apiVersion": "routelb.io/v1alpha1", "kind": "NodeState",
        "metadata": { "name": name }, "spec": {}, "status": status,
    }))
    .unwrap()
}

fn node(name: &str) -> Node {
    serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap()
}

fn lease(node: &str, renewed_secs_ago: i64) -> Lease {
    let renew = Timestamp::from_second(now().as_second() - renewed_secs_ago).unwrap();
    serde_json::from_value(json!({
        "metadata": { "name": crate::membership::lease_name(node), "namespace": "routelb-node-lease" },
        "spec": { "holderIdentity": node, "renewTime": renew.to_string(), "leaseDurationSeconds": 6 },
    }))
    .unwrap()
}

fn cond(type_: &str, status: &str, message: &str) -> serde_json::Value {
    json!({ "type": type_, "status": status, "reason": "R", "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z" })
}

fn peer(p: &str, up: bool, missing: &[&str]) -> serde_json::Value {
    json!({ "protocol": "bgp", "peer": p, "family": "ipv4", "up": up,
            "advertised": 1, "missing": missing.len(), "missingPrefixes": missing })
}

/// Web announced by n1 to one of its two peers; api not announced (n2's daemon advertises
/// it to nobody); full has no address; local announced on a local pool.
fn cluster() -> Snapshot {
    let ready = cond("Ready", "True", "ok");
    Snapshot {
        services: vec![
            svc(
                "web",
                json!({ "routelb.io/pool-used": "edge", "routelb.io/announcing": "n1/kube-lb0" }),
                &["203.0.113.1"],
            ),
            svc(
                "api",
                json!({ "routelb.io/pool-used": "edge" }),
                &["203.0.113.2"],
            ),
            svc(
                "full",
                json!({ "routelb.io/pool": "edge", "routelb.io/allocation-error": "pool edge is exhausted (ipv4)" }),
                &[],
            ),
            svc(
                "local",
                json!({ "routelb.io/pool-used": "lan", "routelb.io/announcing": "n2/eth0" }),
                &["10.0.0.50"],
            ),
        ],
        pools: vec![
            pool(
                "edge",
                "routed",
                json!({ "announce": "bgp" }),
                json!({ "ipv4": { "allocated": 2, "available": 0 }, "conditions": [cond("Ready", "True", "ok")] }),
            ),
            pool(
                "lan",
                "local",
                json!({}),
                json!({ "ipv4": { "allocated": 1, "available": 99 }, "conditions": [cond("Ready", "True", "ok")] }),
            ),
        ],
        policies: vec![policy(
            "bgp-edge",
            json!({ "matchLabels": { "announce": "bgp" } }),
        )],
        node_states: vec![
            node_state(
                "n1",
                json!({ "daemon": "frr", "addressCount": 1, "conditions": [ready],
                        "interfaces": [{ "interface": "kube-lb0", "addresses": ["203.0.113.1/32"] }],
                        "routing": { "summary": "1/2", "sessionsUp": 1, "sessionsTotal": 2, "sessions": [] },
                        "advertisement": { "peers": [peer("neighbor 10.0.0.1", true, &[]),
                                                     peer("neighbor 10.0.0.2", false, &[])],
                                           "unadvertised": [] } }),
            ),
            node_state(
                "n2",
                json!({ "daemon": "frr", "addressCount": 2,
                        "conditions": [cond("Ready", "False", "see the other conditions"),
                                       cond("DaemonConfigured", "False", "vtysh refused line 3"),
                                       cond("Advertised", "False", "route-map EDGE-OUT denies it")],
                        "lastApply": { "result": "Refused", "time": "2026-01-01T00:00:00Z", "message": "line 3" },
                        "interfaces": [{ "interface": "kube-lb0", "addresses": ["203.0.113.2/32"] },
                                       { "interface": "eth0", "addresses": ["10.0.0.50/24"] }],
                        "advertisement": { "peers": [peer("neighbor 10.0.0.1", true, &["203.0.113.2/32"])],
                                           "unadvertised": ["203.0.113.2/32"] } }),
            ),
        ],
        nodes: Some(vec![node("n1"), node("n2"), node("n3")]),
        leases: Some(vec![lease("n1", 1), lease("n2", 2), lease("n3", 60)]),
        events: Vec::new(),
        class: crate::api::DEFAULT_LB_CLASS.into(),
        require_class: false,
        now: now(),
    }
}

/// What n1's daemon advertises to each peer.
fn n1_peers(s: &mut Snapshot) -> &mut Vec<crate::api::PeerAdvertisement> {
    let st = s.node_states[0].status.as_mut().unwrap();
    &mut st.advertisement.as_mut().unwrap().peers
}

#[test]
fn status_puts_problems_first_with_their_reasons() {
    let rows = status(&cluster(), None);
    let order: Vec<(&str, Health)> = rows.iter().map(|r| (r.name.as_str(), r.health)).collect();
    assert_eq!(
        order,
        [
            ("api", Health::Error),
            ("full", Health::Error),
            ("local", Health::Ok),
            ("web", Health::Ok)
        ]
    );
    let api = &rows[0];
    let problem = api.problem.as_deref().unwrap();
    assert!(
        problem.contains("n2 holds it but its daemon advertises it to no peer")
            && problem.contains("route-map EDGE-OUT denies it"),
        "{problem}"
    );
    assert_eq!(
        rows[1].problem.as_deref(),
        Some("no address: pool edge is exhausted (ipv4)")
    );
    let web = &rows[3];
    assert_eq!(
        web.peers,
        ["n1 → neighbor 10.0.0.1"],
        "the down peer gets nothing"
    );
    assert_eq!(web.mode.as_deref(), Some("routed"));
    assert!(rows[2].peers.is_empty(), "a local pool has no peers");
}

#[test]
fn a_node_reporting_on_a_service_says_why_first() {
    let mut s = cluster();
    s.node_states[0].status.as_mut().unwrap().not_announced = vec![crate::api::ServiceNote {
        service: "shop/api".into(),
        reason: "no node is eligible: every node is draining".into(),
    }];
    let rows = status(&s, Some("shop"));
    assert_eq!(
        rows[0].problem.as_deref(),
        Some("not announced: no node is eligible: every node is draining")
    );
    assert!(status(&s, Some("elsewhere")).is_empty());
}

#[test]
fn announced_to_no_up_peer_is_a_warning_once_verified() {
    let mut s = cluster();
    for p in n1_peers(&mut s) {
        p.up = false;
    }
    let web = status(&s, None)
        .into_iter()
        .find(|r| r.name == "web")
        .unwrap();
    assert_eq!(web.health, Health::Warning);
    // Not verified yet: nothing to say about peers.
    s.node_states[0].status.as_mut().unwrap().advertisement = None;
    let web = status(&s, None)
        .into_iter()
        .find(|r| r.name == "web")
        .unwrap();
    assert_eq!(web.health, Health::Ok);
}

#[test]
fn services_of_another_class_are_not_listed() {
    let mut s = cluster();
    s.services[0].spec.as_mut().unwrap().load_balancer_class = Some("other.io/lb".into());
    assert!(status(&s, None).iter().all(|r| r.name != "web"));
    let w = why(&s, "shop", "web");
    assert_eq!(w.health, Health::Error);
    assert!(w.verdict.contains("another controller"), "{}", w.verdict);
}

#[test]
fn nodes_show_expired_agents_refused_applies_and_drains() {
    let mut s = cluster();
    s.node_states[0]
        .status
        .as_mut()
        .unwrap()
        .conditions
        .push(serde_json::from_value(cond("Draining", "True", "cordoned")).unwrap());
    let rows = nodes(&s);
    let by_name = |n: &str| rows.iter().find(|r| r.name == n).unwrap();
    assert_eq!(rows[0].health, Health::Error);
    let n2 = by_name("n2");
    assert_eq!(n2.health, Health::Error);
    assert!(
        n2.problems
            .iter()
            .any(|p| p == "DaemonConfigured: vtysh refused line 3"),
        "{:?}",
        n2.problems
    );
    assert_eq!(n2.last_apply.as_ref().unwrap().result, "Refused");
    let n3 = by_name("n3");
    assert_eq!((n3.agent.as_str(), n3.health), ("expired", Health::Error));
    let n1 = by_name("n1");
    assert_eq!((n1.agent.as_str(), n1.health), ("live", Health::Ok));
    assert_eq!(n1.draining.as_deref(), Some("cordoned"));
    assert_eq!(n1.sessions.as_deref(), Some("1/2"));
    assert_eq!(n1.addresses, ["203.0.113.1/32 (kube-lb0)"]);
}

#[test]
fn a_node_without_an_agent_is_no_problem_but_a_nodestate_without_node_is() {
    let mut s = cluster();
    s.nodes.as_mut().unwrap().push(node("control-plane"));
    s.node_states
        .push(node_state("deleted", json!({ "conditions": [] })));
    let rows = nodes(&s);
    let cp = rows.iter().find(|r| r.name == "control-plane").unwrap();
    assert_eq!((cp.agent.as_str(), cp.health), ("none", Health::Ok));
    let gone = rows.iter().find(|r| r.name == "deleted").unwrap();
    assert_eq!(gone.health, Health::Warning);
}

#[test]
fn pools_show_usage_and_who_waits() {
    let rows = pools(&cluster());
    assert_eq!(rows.len(), 2);
    let edge = &rows[0];
    assert_eq!((edge.name.as_str(), edge.family.as_str()), ("edge", "ipv4"));
    assert_eq!(edge.used_percent, 100.0);
    assert_eq!(edge.waiting_services, 1);
    assert_eq!(
        edge.health,
        Health::Error,
        "full, and a Service waits for it"
    );
    assert_eq!(rows[1].health, Health::Ok);
    assert_eq!(bar(100.0, 10), "[##########]");
    assert_eq!(bar(1.0, 10), "[..........]");
    assert_eq!(bar(55.0, 10), "[######....]");
}

#[test]
fn an_invalid_pool_is_an_error_with_its_condition() {
    let mut s = cluster();
    s.pools[1].status.as_mut().unwrap().conditions =
        vec![serde_json::from_value(cond("Ready", "False", "addresses[0]: not a CIDR")).unwrap()];
    let lan = pools(&s).into_iter().find(|r| r.name == "lan").unwrap();
    assert_eq!(lan.health, Health::Error);
    assert_eq!(
        lan.problem.as_deref(),
        Some("Ready: addresses[0]: not a CIDR")
    );
}

#[test]
fn why_follows_the_chain_to_the_peers() {
    let w = why(&cluster(), "shop", "web");
    assert_eq!(w.health, Health::Ok);
    let whats: Vec<&str> = w.steps.iter().map(|s| s.what.as_str()).collect();
    assert_eq!(
        whats,
        ["service", "address", "pool", "policy", "nodes", "peers"]
    );
    assert_eq!(w.steps[3].fact, "exported by bgp-edge (bgp)");
    assert_eq!(w.verdict, "sent to n1 → neighbor 10.0.0.1");
}

#[test]
fn why_says_which_attributes_are_granted_and_which_refused() {
    let mut s = cluster();
    let asks = |extra: serde_json::Value| {
        let mut ann = json!({ "routelb.io/pool-used": "edge", "routelb.io/announcing": "n1/kube-lb0",
                              "routelb.io/bgp-med": "500" });
        ann.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        svc("web", ann, &["203.0.113.1"])
    };
    s.services[0] = asks(json!({}));
    let w = why(&s, "shop", "web");
    assert_eq!(w.health, Health::Ok);
    assert_eq!(w.steps[4].what, "attributes");
    assert_eq!(w.steps[4].fact, "granted: routelb.io/bgp-med=\"500\"");
    let refused = "routelb.io/bgp-med: 500 is outside what is granted to this Service (0-100) (policy bgp-edge)";
    s.services[0] = asks(json!({ "routelb.io/refused-attributes": refused }));
    let w = why(&s, "shop", "web");
    assert_eq!(w.health, Health::Warning);
    assert_eq!(w.verdict, format!("refused: {refused}"));
}

#[test]
fn why_names_the_first_broken_link() {
    let s = cluster();
    let full = why(&s, "shop", "full");
    assert_eq!(full.health, Health::Error);
    assert_eq!(full.verdict, "no address: pool edge is exhausted (ipv4)");
    let api = why(&s, "shop", "api");
    assert!(
        api.verdict.starts_with("not announced: n2 holds it"),
        "{}",
        api.verdict
    );
    let missing = why(&s, "shop", "nope");
    assert_eq!(missing.verdict, "no Service shop/nope");
}

#[test]
fn why_says_when_no_policy_exports_the_pool() {
    let mut s = cluster();
    s.policies.clear();
    let w = why(&s, "shop", "web");
    assert_eq!(w.health, Health::Error);
    assert!(
        w.verdict
            .starts_with("no valid RoutingPolicy exports pool edge"),
        "{}",
        w.verdict
    );
}

#[test]
fn why_lists_the_latest_warning_events() {
    let mut s = cluster();
    let ev = |reason: &str, secs_ago: i64| -> Event {
        let t = Timestamp::from_second(now().as_second() - secs_ago).unwrap();
        serde_json::from_value(json!({
            "metadata": { "name": format!("e-{reason}"), "namespace": "shop" },
            "involvedObject": { "kind": "Service", "name": "full", "namespace": "shop" },
            "type": "Warning", "reason": reason, "message": "m", "lastTimestamp": t.to_string(),
        }))
        .unwrap()
    };
    s.events = vec![ev("Old", 600), ev("AllocationFailed", 30)];
    let w = why(&s, "shop", "full");
    let events: Vec<&str> = w
        .steps
        .iter()
        .filter(|st| st.what == "event")
        .map(|st| st.fact.as_str())
        .collect();
    assert_eq!(events, ["30s ago: AllocationFailed m", "10m ago: Old m"]);
}

#[test]
fn a_nodestate_without_a_lease_is_from_an_agent_that_stopped() {
    let mut s = cluster();
    s.leases
        .as_mut()
        .unwrap()
        .retain(|l| !l.name_any().ends_with("n1"));
    let n1 = nodes(&s).into_iter().find(|r| r.name == "n1").unwrap();
    assert_eq!((n1.agent.as_str(), n1.health), ("none", Health::Warning));
    assert!(
        n1.problems[0].starts_with("no agent Lease"),
        "{:?}",
        n1.problems
    );
}

#[test]
fn what_could_not_be_read_is_unknown_not_a_problem() {
    let mut s = cluster();
    s.leases = None;
    s.nodes = None;
    let rows = nodes(&s);
    let n1 = rows.iter().find(|r| r.name == "n1").unwrap();
    assert_eq!((n1.agent.as_str(), n1.health), ("unknown", Health::Ok));
    assert!(rows.iter().all(|r| r.agent == "unknown"));
    assert!(
        rows.iter()
            .all(|r| !r.problems.iter().any(|p| p.contains("no such Node")))
    );
}

#[test]
fn a_dual_stack_service_missing_one_family_is_a_warning() {
    let mut s = cluster();
    let web = &mut s.services[0];
    web.status
        .as_mut()
        .unwrap()
        .load_balancer
        .as_mut()
        .unwrap()
        .ingress = Some(vec![
        serde_json::from_value(json!({ "ip": "203.0.113.1" })).unwrap(),
        serde_json::from_value(json!({ "ip": "2001:db8::1" })).unwrap(),
    ]);
    let row = status(&s, None)
        .into_iter()
        .find(|r| r.name == "web")
        .unwrap();
    assert_eq!(row.health, Health::Warning);
    assert_eq!(
        row.problem.as_deref(),
        Some("2001:db8::1 is held by none of the announcing nodes")
    );
    // Held, but n1 has no IPv6 peer: it reaches nobody.
    let st = s.node_states[0].status.as_mut().unwrap();
    st.interfaces[0].addresses.push("2001:db8::1/128".into());
    let row = status(&s, None)
        .into_iter()
        .find(|r| r.name == "web")
        .unwrap();
    assert_eq!(
        row.problem.as_deref(),
        Some("2001:db8::1 reaches no up peer of the announcing nodes")
    );
    let w = why(&s, "shop", "web");
    assert_eq!(w.health, Health::Warning);
    assert_eq!(
        w.verdict,
        "2001:db8::1 reaches no up peer (the announcing nodes' daemons have no ipv6 peer)"
    );
}

#[test]
fn a_peer_missing_more_than_it_names_is_unsure() {
    let mut s = cluster();
    let peers = n1_peers(&mut s);
    peers[0].missing = 7;
    peers[0].missing_prefixes = (10..15).map(|i| format!("203.0.113.{i}/32")).collect();
    let row = status(&s, None)
        .into_iter()
        .find(|r| r.name == "web")
        .unwrap();
    assert_eq!(row.peers, ["n1 → neighbor 10.0.0.1 (unsure)"]);
    assert_eq!(row.health, Health::Warning);
}

#[test]
fn why_names_only_the_announcing_nodes_peers_of_the_family() {
    let mut s = cluster();
    for st in s.node_states.iter_mut().filter_map(|n| n.status.as_mut()) {
        if let Some(adv) = st.advertisement.as_mut() {
            for p in &mut adv.peers {
                p.up = false;
            }
        }
    }
    let w = why(&s, "shop", "web");
    let peers = w.steps.iter().find(|st| st.what == "peers").unwrap();
    assert_eq!(
        peers.fact,
        "203.0.113.1 reaches no up peer (n1 → neighbor 10.0.0.1: down, n1 → neighbor 10.0.0.2: down)"
    );
}

#[test]
fn old_warning_events_are_history_not_the_verdict() {
    let mut s = cluster();
    s.events =
        vec![serde_json::from_value(json!({
        "metadata": { "name": "e", "namespace": "shop" },
        "involvedObject": { "kind": "Service", "name": "web", "namespace": "shop" },
        "type": "Warning", "reason": "NotAnnounced", "message": "no node announces the service",
        "lastTimestamp": "2026-01-01T00:00:00Z",
    }))
    .unwrap()];
    let w = why(&s, "shop", "web");
    assert_eq!(w.health, Health::Ok);
    assert_eq!(w.verdict, "sent to n1 → neighbor 10.0.0.1");
    assert_eq!(w.steps.last().unwrap().what, "event");
}

#[test]
fn a_deleted_nodes_expired_lease_is_a_warning() {
    let mut s = cluster();
    s.nodes.as_mut().unwrap().retain(|n| n.name_any() != "n3");
    let n3 = nodes(&s).into_iter().find(|r| r.name == "n3").unwrap();
    assert_eq!((n3.agent.as_str(), n3.health), ("expired", Health::Warning));
}

#[test]
fn many_announcing_nodes_are_read_from_their_nodestates() {
    let mut s = cluster();
    let web = &mut s.services[0];
    web.metadata.annotations.as_mut().unwrap().insert(
        annotations::ANNOUNCING.into(),
        crate::allocator::announcing::MANY_ANNOUNCERS.into(),
    );
    // n1 and 19 more nodes hold the pool's addresses in one run; their daemons send it on.
    let held = s.node_states[0].status.as_mut().unwrap();
    held.interfaces[0].addresses = vec!["203.0.113.1-203.0.113.2/32".into()];
    let template = s.node_states[0].clone();
    for i in 0..19 {
        let mut n = template.clone();
        n.metadata.name = Some(format!("r{i:02}"));
        s.node_states.push(n);
    }
    let row = status(&s, None)
        .into_iter()
        .find(|r| r.name == "web")
        .unwrap();
    assert_eq!(row.announced_by.len(), 20);
    assert_eq!(row.health, Health::Ok, "{:?}", row.problem);
    assert_eq!(
        announcers_text(&row.announced_by),
        "n1/kube-lb0,r00/kube-lb0,r01/kube-lb0,… (20 nodes)"
    );
    let w = why(&s, "shop", "web");
    assert_eq!(
        w.steps[4].fact,
        "announced by n1/kube-lb0,r00/kube-lb0,r01/kube-lb0,… (20 nodes)"
    );
}
