//! The agent's decisions: examples, then properties over generated clusters (idempotence,
//! order independence, one holder per local address, a failover moves only what it must).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::render::model::BgpInstance;

/// No Service has ready endpoints (placement takes readiness separately).
static NO_READINESS: BTreeMap<ServiceKey, Readiness> = BTreeMap::new();

fn id(node: &str) -> Identity {
    Identity {
        node: node.into(),
        lb_interface: "kube-lb0".into(),
        class: crate::api::DEFAULT_LB_CLASS.into(),
        require_class: false,
    }
}

fn service(v: serde_json::Value) -> Service {
    serde_json::from_value(v).unwrap()
}

fn lb(name: &str, ns: &str, pool: &str, ip: &str) -> Arc<Service> {
    Arc::new(service(json!({
        "metadata": { "name": name, "namespace": ns, "annotations": { annotations::POOL_USED: pool } },
        "spec": { "type": "LoadBalancer" },
        "status": { "loadBalancer": { "ingress": [ { "ip": ip } ] } },
    })))
}

fn pool(name: &str, mode: &str, addresses: &[&str], namespaces: &[&str]) -> AddressPool {
    AddressPool::new(
        name,
        serde_json::from_value(json!({
            "addresses": addresses, "mode": mode,
            "allocation": { "namespaces": namespaces },
        }))
        .unwrap(),
    )
}

fn policy() -> RoutingPolicy {
    RoutingPolicy::new(
        "all",
        serde_json::from_value(json!({ "protocols": ["bgp"] })).unwrap(),
    )
}

fn nic(name: &str, subnet: &str) -> NodeInterface {
    NodeInterface {
        name: name.into(),
        index: 2,
        subnets: vec![subnet.parse().unwrap()],
        addresses: vec![],
        up: true,
        mac: None,
    }
}

fn instances() -> Instances {
    Instances {
        bgp: vec![BgpInstance {
            asn: 64512,
            vrf: None,
        }],
        ..Default::default()
    }
}

#[test]
fn service_input_reads_addresses_pool_and_traffic_policy() {
    let s = service(json!({
        "metadata": { "name": "web", "namespace": "default", "annotations": {
            annotations::POOL_USED: "p", annotations::WITHDRAW_WHEN_NO_ENDPOINTS: "true" } },
        "spec": { "type": "LoadBalancer", "externalTrafficPolicy": "Local" },
        "status": { "loadBalancer": { "ingress": [ { "ip": "203.0.113.5" } ] } },
    }));
    let i = service_input(&s, &id("n1"), &Labels::new()).unwrap();
    assert_eq!(i.addresses.pool, "p");
    assert_eq!(
        i.addresses.addresses,
        ["203.0.113.5".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(i.local_traffic && i.withdraw_without_endpoints);

    // Another class, no address yet, or not a LoadBalancer: not ours to announce.
    for v in [
        json!({ "metadata": { "name": "x", "namespace": "d", "annotations": { annotations::POOL_USED: "p" } },
                "spec": { "type": "LoadBalancer", "loadBalancerClass": "other" },
                "status": { "loadBalancer": { "ingress": [ { "ip": "203.0.113.5" } ] } } }),
        json!({ "metadata": { "name": "x", "namespace": "d", "annotations": { annotations::POOL_USED: "p" } },
                "spec": { "type": "LoadBalancer" } }),
        json!({ "metadata": { "name": "x", "namespace": "d", "annotations": { annotations::POOL_USED: "p" } },
                "spec": { "type": "ClusterIP" },
                "status": { "loadBalancer": { "ingress": [ { "ip": "203.0.113.5" } ] } } }),
    ] {
        assert!(service_input(&service(v), &id("n1"), &Labels::new()).is_none());
    }
}

#[test]
fn pool_used_is_checked_against_the_pools() {
    let parsed = |p: &AddressPool| ipam::Pool::from_spec(&p.name_any(), &p.spec).unwrap();
    let pools = [
        parsed(&pool("premium", "routed", &["203.0.113.0/28"], &["gold"])),
        parsed(&pool("standard", "routed", &["203.0.113.0/28"], &[])),
    ];
    let s = lb("web", "tenant", "premium", "203.0.113.5");
    let mut inputs = [service_input(&s, &id("n1"), &Labels::new()).unwrap()];
    attribute_pools(&mut inputs, &pools);
    assert_eq!(inputs[0].addresses.pool, "standard");
    assert!(inputs[0].addresses.admitted);
    // Only premium holds it: kept and announced from premium, granted nothing.
    attribute_pools(&mut inputs, &pools[..1]);
    assert_eq!(inputs[0].addresses.pool, "premium");
    assert!(!inputs[0].addresses.admitted);
}

#[test]
fn the_node_offers_subnets_of_interfaces_that_are_up() {
    let mut down = nic("eth1", "10.1.0.0/24");
    down.up = false;
    let facts = [
        nic("eth0", "10.0.0.0/24"),
        down,
        nic("kube-lb0", "10.2.0.0/24"),
    ];
    let me = member(&id("n1"), &facts, BTreeSet::new());
    assert_eq!(
        me.subnets,
        vec![("eth0".to_string(), "10.0.0.0/24".parse().unwrap())]
    );
}

#[test]
fn without_instances_nothing_is_reported_missing_but_exports_are_known() {
    let r = resolved_on_routed_pool(&[lb("web", "default", "web", "203.0.113.1")]);
    assert!(r.built.problems.is_empty(), "{:?}", r.built.problems);
    assert!(!r.instances_missing);
    assert!(r.me.routed_pools.contains("web"));
}

#[test]
fn a_route_map_to_hook_into_is_looked_for_again_like_an_instance() {
    let services = [lb("web", "default", "web", "203.0.113.1")];
    let pools = [pool("web", "routed", &["203.0.113.0/28"], &[])];
    let policies = [RoutingPolicy::new(
        "hooked",
        serde_json::from_value(json!({
            "protocols": ["bgp"],
            "bgp": {"outboundRouteMaps": ["peer-out"]},
        }))
        .unwrap(),
    )];
    let no_ns = BTreeMap::new();
    let no_labels = Labels::new();
    let without_map = instances();
    let with_map = Instances {
        route_maps: [("peer-out".to_string(), Default::default())].into(),
        ..instances()
    };
    let snapshot = |inst| Snapshot {
        readiness: &NO_READINESS,
        services: &services,
        pools: &pools,
        policies: &policies,
        namespace_labels: &no_ns,
        node_labels: &no_labels,
        facts: &[],
        instances: inst,
    };
    let r = resolve(
        &id("n1"),
        &snapshot(Some(&without_map)),
        &mut Memory::default(),
    );
    assert!(r.instances_missing);
    assert_eq!(r.built.problems[0].reason, "RouteMapMissing");
    let r = resolve(
        &id("n1"),
        &snapshot(Some(&with_map)),
        &mut Memory::default(),
    );
    assert!(!r.instances_missing && r.built.problems.is_empty());
    assert_eq!(r.built.data.route_map_hooks[0].route_map, "peer-out");
    // Instances not read yet: nothing is missing, only unknown.
    let r = resolve(&id("n1"), &snapshot(None), &mut Memory::default());
    assert!(!r.instances_missing && r.built.problems.is_empty());
}

#[test]
fn each_event_goes_out_once() {
    let services = [lb("web", "default", "web", "203.0.113.1")];
    let pools = [pool("web", "routed", &["203.0.113.0/28"], &[])];
    let policies = [policy()];
    let no_ns = BTreeMap::new();
    let missing = Instances::default();
    let snapshot = Snapshot {
        readiness: &NO_READINESS,
        services: &services,
        pools: &pools,
        policies: &policies,
        namespace_labels: &no_ns,
        node_labels: &Labels::new(),
        facts: &[],
        instances: Some(&missing),
    };
    let me = id("n1");
    let r = resolve(&me, &snapshot, &mut Memory::default());
    let p = place_alone(&me, &r, &HeldBack::nothing());
    let errors = ["kube-lb0: boom".to_string()];
    let first = report(&me, &Reported::default(), &r, &p, &errors, []);
    assert_eq!(first.policy_events.len(), 1, "InstanceMissing, once");
    assert_eq!(first.policy_events[0].1.reason, "InstanceMissing");
    assert_eq!(first.service_events.len(), 1);
    assert_eq!(first.service_events[0].1.reason, "AnnounceFailed");
    let again = report(&me, &first.reported, &r, &p, &errors, []);
    assert!(again.policy_events.is_empty() && again.service_events.is_empty());
    assert_eq!(again.problems, first.problems);
}

/// A generated cluster: nodes on one LAN, a local and a routed pool, Services in both.
#[derive(Clone, Debug)]
struct World {
    nodes: Vec<String>,
    services: Vec<Arc<Service>>,
}

fn world() -> impl Strategy<Value = World> {
    (2usize..6, prop::collection::btree_set(0u8..64, 1..20)).prop_map(|(n, hosts)| {
        let nodes: Vec<String> = (0..n).map(|i| format!("node-{i}")).collect();
        let services = hosts
            .iter()
            .map(|h| {
                let (pool, ip) = if h % 2 == 0 {
                    ("lan", format!("10.0.0.{}", 100 + h))
                } else {
                    ("web", format!("203.0.113.{h}"))
                };
                lb(&format!("s{h}"), "default", pool, &ip)
            })
            .collect();
        World { nodes, services }
    })
}

fn pools() -> Vec<AddressPool> {
    vec![
        pool("lan", "local", &["10.0.0.100-10.0.0.200"], &[]),
        pool("web", "routed", &["203.0.113.0/26"], &[]),
    ]
}

/// Each node's view: resolve, then place among `alive`; what each node would hold.
fn holdings(
    w: &World,
    alive: &[String],
    pools: &[AddressPool],
    services: &[Arc<Service>],
) -> BTreeMap<String, Plan> {
    let facts = [nic("eth0", "10.0.0.0/24")];
    let inst = instances();
    let no_ns = BTreeMap::new();
    let labels = Labels::new();
    let policies = [policy()];
    let members: Vec<Member> = alive
        .iter()
        .map(|n| {
            let s = Snapshot {
                readiness: &NO_READINESS,
                services,
                pools,
                policies: &policies,
                namespace_labels: &no_ns,
                node_labels: &labels,
                facts: &facts,
                instances: Some(&inst),
            };
            resolve(&id(n), &s, &mut Memory::default()).me
        })
        .collect();
    let _ = w;
    alive
        .iter()
        .map(|n| {
            let s = Snapshot {
                readiness: &NO_READINESS,
                services,
                pools,
                policies: &policies,
                namespace_labels: &no_ns,
                node_labels: &labels,
                facts: &facts,
                instances: Some(&inst),
            };
            let r = resolve(&id(n), &s, &mut Memory::default());
            (
                n.clone(),
                place(
                    &id(n),
                    &r,
                    &Members::plain(&members),
                    &mut Ranks::default(),
                    &BTreeMap::new(),
                    &facts,
                    &HeldBack::nothing(),
                )
                .plan,
            )
        })
        .collect()
}

fn local_holders(h: &BTreeMap<String, Plan>) -> BTreeMap<std::net::IpAddr, Vec<String>> {
    let mut out: BTreeMap<std::net::IpAddr, Vec<String>> = BTreeMap::new();
    for (node, plan) in h {
        for (ip, _) in plan.interfaces.get("eth0").into_iter().flatten() {
            out.entry(*ip).or_default().push(node.clone());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_local_address_has_exactly_one_holder_and_routed_ones_all(w in world()) {
        let h = holdings(&w, &w.nodes, &pools(), &w.services);
        let locals = local_holders(&h);
        let wanted_local = w.services.iter().filter(|s| s.annotations()[annotations::POOL_USED] == "lan").count();
        prop_assert_eq!(locals.len(), wanted_local);
        for (ip, holders) in &locals {
            prop_assert_eq!(holders.len(), 1, "{} held by {:?}", ip, holders);
        }
        let routed = w.services.len() - wanted_local;
        for plan in h.values() {
            prop_assert_eq!(plan.interfaces.get("kube-lb0").map_or(0, |a| a.len()), routed);
        }
    }

    #[test]
    fn decisions_do_not_depend_on_order_and_a_second_pass_changes_nothing(w in world()) {
        let forward = holdings(&w, &w.nodes, &pools(), &w.services);
        let mut services = w.services.clone();
        services.reverse();
        let mut p = pools();
        p.reverse();
        let mut nodes = w.nodes.clone();
        nodes.reverse();
        prop_assert_eq!(&holdings(&w, &nodes, &p, &services), &forward);
        prop_assert_eq!(&holdings(&w, &w.nodes, &pools(), &w.services), &forward);
    }

    #[test]
    fn a_failover_moves_only_the_dead_nodes_addresses(w in world(), dead in 0usize..6) {
        let dead = w.nodes[dead % w.nodes.len()].clone();
        let before = local_holders(&holdings(&w, &w.nodes, &pools(), &w.services));
        let alive: Vec<String> = w.nodes.iter().filter(|n| **n != dead).cloned().collect();
        let after = local_holders(&holdings(&w, &alive, &pools(), &w.services));
        for (ip, holders) in &before {
            if holders[0] != dead {
                prop_assert_eq!(&after[ip], holders, "{} moved although its holder lives", ip);
            } else {
                prop_assert!(after[ip][0] != dead);
            }
        }
    }
}

/// Step 2 with this node the only member, no endpoints and no interfaces.
fn place_alone(me: &Identity, r: &Resolved, held_back: &HeldBack) -> Placement {
    place(
        me,
        r,
        &Members::plain(std::slice::from_ref(&r.me)),
        &mut Ranks::default(),
        &BTreeMap::new(),
        &[],
        held_back,
    )
}

/// Step 1 for node n1 with `services` on the routed pool `web` and one BGP policy, and no
/// daemon instances read.
fn resolved_on_routed_pool(services: &[Arc<Service>]) -> Resolved {
    let pools = [pool("web", "routed", &["203.0.113.0/28"], &[])];
    let policies = [policy()];
    let no_ns = BTreeMap::new();
    let snapshot = Snapshot {
        readiness: &NO_READINESS,
        services,
        pools: &pools,
        policies: &policies,
        namespace_labels: &no_ns,
        node_labels: &Labels::new(),
        facts: &[],
        instances: None,
    };
    resolve(&id("n1"), &snapshot, &mut Memory::default())
}

#[test]
fn a_held_back_service_is_not_started_but_what_is_announced_stays() {
    let r = resolved_on_routed_pool(&[
        lb("web", "default", "web", "203.0.113.1"),
        lb("new", "default", "web", "203.0.113.2"),
    ]);
    let me = id("n1");
    let on_lb = |held_back: &HeldBack| -> Vec<String> {
        let p = place_alone(&me, &r, held_back);
        p.plan
            .interfaces
            .get("kube-lb0")
            .into_iter()
            .flatten()
            .map(|(ip, _)| ip.to_string())
            .collect()
    };
    assert_eq!(on_lb(&HeldBack::nothing()), ["203.0.113.1", "203.0.113.2"]);
    let both: BTreeSet<ServiceKey> = [
        ServiceKey::new("default", "web"),
        ServiceKey::new("default", "new"),
    ]
    .into();
    let announced: BTreeSet<IpAddr> = ["203.0.113.1".parse().unwrap()].into();
    let held_back = HeldBack {
        services: &both,
        announced: &announced,
    };
    assert_eq!(
        on_lb(&held_back),
        ["203.0.113.1"],
        "the new one waits; the announced one is not withdrawn"
    );
}

#[test]
fn ready_here_means_a_local_endpoint_under_local_traffic() {
    let mut local = service(json!({
        "metadata": { "name": "loc", "namespace": "default", "annotations": { annotations::POOL_USED: "web" } },
        "spec": { "type": "LoadBalancer", "externalTrafficPolicy": "Local" },
        "status": { "loadBalancer": { "ingress": [ { "ip": "203.0.113.3" } ] } },
    }));
    local.metadata.uid = Some("u".into());
    let r = resolved_on_routed_pool(&[lb("web", "default", "web", "203.0.113.1"), Arc::new(local)]);
    let elsewhere = Readiness {
        nodes: ["n2".to_string()].into(),
        any: true,
        ..Default::default()
    };
    let readiness: BTreeMap<ServiceKey, Readiness> = [
        (ServiceKey::new("default", "web"), elsewhere.clone()),
        (ServiceKey::new("default", "loc"), elsewhere),
    ]
    .into();
    let ready: BTreeMap<ServiceKey, bool> =
        ready_here(&id("n1"), &r, &readiness).into_iter().collect();
    assert!(ready[&ServiceKey::new("default", "web")]);
    assert!(!ready[&ServiceKey::new("default", "loc")]);
}

/// `weightedEcmp`'s counts: a Local Service's ready endpoints on this node, in the address's
/// family; a shared address weighs the union of its Services' endpoints (the same pod behind
/// two Services counts once); an address shared with a Cluster Service is not weighted.
#[test]
fn local_endpoints_count_the_union_in_the_address_family() {
    let input = |name: &str, ips: &[&str], local: bool| {
        let mut s = (*lb(name, "default", "a", ips[0])).clone();
        s.spec.as_mut().unwrap().external_traffic_policy =
            Some(if local { "Local" } else { "Cluster" }.into());
        let mut i = service_input(&s, &id("n1"), &Labels::new()).unwrap();
        i.addresses.addresses = ips.iter().map(|a| a.parse().unwrap()).collect();
        i
    };
    let ready = |eps: &[&str]| Readiness {
        nodes: ["n1".to_string()].into(),
        any: true,
        here: eps.iter().map(|a| a.parse().unwrap()).collect(),
    };
    let readiness: BTreeMap<ServiceKey, Readiness> = [
        ("web", ready(&["10.244.0.1", "10.244.0.2", "fd00::1"])),
        ("web-udp", ready(&["10.244.0.2", "10.244.0.3"])),
        ("api", ready(&["10.244.0.9"])),
        ("mixed", ready(&["10.244.0.4"])),
        ("v6only", ready(&["10.244.0.5", "10.244.0.6"])),
    ]
    .into_iter()
    .map(|(n, r)| (ServiceKey::new("default", n), r))
    .collect();
    let inputs = [
        input("web", &["203.0.113.1", "2001:db8::1"], true),
        input("web-udp", &["203.0.113.1"], true),
        input("api", &["203.0.113.2"], false),
        input("mixed", &["203.0.113.2"], true),
        input("v6only", &["2001:db8::6"], true),
        input("idle", &["203.0.113.9"], true),
    ];
    let got: Vec<(String, u32)> = local_endpoints(&inputs, &readiness)
        .into_iter()
        .map(|(a, n)| (a.to_string(), n))
        .collect();
    let want = [
        // web ∪ web-udp: .1 .2 .3 (IPv4 endpoints only)
        ("203.0.113.1", 3),
        // one IPv6 endpoint
        ("2001:db8::1", 1),
        // no endpoint of its family: all of them
        ("2001:db8::6", 2),
    ];
    let want: Vec<(String, u32)> = want.iter().map(|(a, n)| (a.to_string(), *n)).collect();
    assert_eq!(got, want);
}
