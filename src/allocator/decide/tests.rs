//! The allocator's decisions: read-your-writes, the failover grace, statuses, and properties
//! (a pass on its own writes changes nothing; the order of the caches does not matter).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proptest::prelude::*;
use serde_json::json;

use super::*;

fn served() -> Served {
    Served {
        class: crate::api::DEFAULT_LB_CLASS.into(),
        require_class: false,
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap())
}

fn service(name: &str, uid: &str, rv: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": "default", "uid": uid, "resourceVersion": rv,
                      "creationTimestamp": "2026-01-01T00:00:00Z" },
        "spec": { "type": "LoadBalancer", "ports": [ { "port": 80, "protocol": "TCP" } ] },
    }))
    .unwrap()
}

fn pool(name: &str, addresses: &[&str]) -> Arc<AddressPool> {
    Arc::new(AddressPool::new(
        name,
        serde_json::from_value(json!({ "addresses": addresses })).unwrap(),
    ))
}

/// What the API server would hold after the writes.
fn apply(svc: &Service, change: &ServiceChange) -> Service {
    let mut s = svc.clone();
    if let Some(ips) = &change.ingress {
        s.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    ips.iter()
                        .map(|ip| LoadBalancerIngress {
                            ip: Some(ip.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        });
    }
    let ann = s.metadata.annotations.get_or_insert_default();
    for (k, v) in &change.annotations {
        match v {
            Some(v) => ann.insert(k.to_string(), v.clone()),
            None => ann.remove(*k),
        };
    }
    s
}

/// One pass: IPAM and the Service writes.
fn pass(
    services: &[Service],
    pools: &[Arc<AddressPool>],
    grace: &mut Grace,
    at: Instant,
) -> ServiceWrites {
    pass_seeing(services, pools, grace, at, &[])
}

/// [`pass`] with these NodeStates, all of live nodes.
fn pass_seeing(
    services: &[Service],
    pools: &[Arc<AddressPool>],
    grace: &mut Grace,
    at: Instant,
    states: &[crate::api::NodeState],
) -> ServiceWrites {
    let live: BTreeSet<String> = states.iter().map(|s| s.name_any()).collect();
    let states: Vec<Arc<crate::api::NodeState>> = states.iter().cloned().map(Arc::new).collect();
    let (pool_inputs, requests) = ipam_input(&served(), services, pools, &BTreeMap::new());
    let outcome = ipam::allocate(&pool_inputs, &requests);
    let judge = crate::render::attributes::Judge::new(&[], &[]);
    let grants = Grants {
        judge,
        namespace_labels: &BTreeMap::new(),
    };
    service_writes(
        &served(),
        services,
        &outcome,
        &grants,
        NodesSeen {
            states: &states,
            live: &live,
        },
        grace,
        at,
    )
}

#[test]
fn our_writes_win_until_the_cache_catches_up() {
    let cached = service("a", "u1", "1");
    let mut ours = cached.clone();
    ours.metadata.annotations =
        Some([("routelb.io/pool-used".to_string(), "p".to_string())].into());
    let mut written = Written::default();
    written.0.insert("u1".into(), ("1".into(), ours.clone()));
    let view = overlay(&[Arc::new(cached.clone())], &mut written);
    assert_eq!(
        view,
        [ours],
        "the cache still shows the version we wrote over"
    );
    let caught_up = service("a", "u1", "2");
    let view = overlay(&[Arc::new(caught_up.clone())], &mut written);
    assert_eq!(view, [caught_up]);
    assert!(written.0.is_empty(), "forgotten once the cache moved on");
    written.0.insert("gone".into(), ("1".into(), cached));
    overlay(&[], &mut written);
    assert!(written.0.is_empty(), "a deleted Service is forgotten");
}

#[test]
fn a_failover_gap_reads_as_a_move_within_the_grace() {
    let mut svc = service("a", "u1", "1");
    svc.metadata.annotations = Some(
        [
            ("routelb.io/pool-used".to_string(), "p".to_string()),
            (
                "routelb.io/announcing".to_string(),
                "n1/kube-lb0".to_string(),
            ),
        ]
        .into(),
    );
    svc = apply(
        &svc,
        &ServiceChange {
            ingress: Some(vec!["10.0.0.0".parse().unwrap()]),
            ..Default::default()
        },
    );
    let pools = [pool("p", &["10.0.0.0/30"])];
    let mut grace = Grace::default();
    let t0 = Instant::now();
    // Nobody holds it (no NodeState): within the grace, the annotation stays.
    let w = pass(std::slice::from_ref(&svc), &pools, &mut grace, t0);
    assert!(
        w.writes.is_empty(),
        "{:?}",
        w.writes.iter().map(|(_, c)| c).collect::<Vec<_>>()
    );
    assert_eq!(w.wake_at, Some(t0 + UNANNOUNCED_GRACE));
    // Still nobody when it ends: now it is said.
    let w = pass(
        std::slice::from_ref(&svc),
        &pools,
        &mut grace,
        t0 + UNANNOUNCED_GRACE,
    );
    assert_eq!(w.writes.len(), 1);
    assert_eq!(w.writes[0].1.annotations[annotations::ANNOUNCING], None);
    assert!(w.wake_at.is_none());
}

#[test]
fn nodes_joining_the_announcing_set_are_written_once_settled() {
    let ip = "10.0.0.0";
    let holding = |node: &str| -> crate::api::NodeState {
        serde_json::from_value(json!({
            "apiVersion": "routelb.io/v1alpha1", "kind": "NodeState",
            "metadata": { "name": node }, "spec": {},
            "status": { "interfaces": [{ "interface": "kube-lb0", "addresses": [format!("{ip}/32")] }] },
        }))
        .unwrap()
    };
    let mut svc = service("a", "u1", "1");
    svc.metadata.annotations = Some([("routelb.io/pool-used".to_string(), "p".to_string())].into());
    svc = apply(
        &svc,
        &ServiceChange {
            ingress: Some(vec![ip.parse().unwrap()]),
            ..Default::default()
        },
    );
    let pools = [pool("p", &["10.0.0.0/30"])];
    let mut grace = Grace::default();
    let t0 = Instant::now();
    // The first node: announced at once.
    let w = pass_seeing(
        std::slice::from_ref(&svc),
        &pools,
        &mut grace,
        t0,
        &[holding("n1")],
    );
    assert_eq!(w.writes.len(), 1);
    assert_eq!(w.writes[0].1.events[0].reason, "Announcing");
    svc = apply(&svc, &w.writes[0].1);
    // The others report one after the other: nothing written until the set settles.
    let two = [holding("n1"), holding("n2")];
    let w = pass_seeing(std::slice::from_ref(&svc), &pools, &mut grace, t0, &two);
    assert!(w.writes.is_empty());
    assert_eq!(w.wake_at, Some(t0 + ANNOUNCERS_SETTLE));
    let three = [holding("n1"), holding("n2"), holding("n3")];
    let half = t0 + ANNOUNCERS_SETTLE / 2;
    let w = pass_seeing(std::slice::from_ref(&svc), &pools, &mut grace, half, &three);
    assert!(w.writes.is_empty(), "settling counts from the first change");
    let w = pass_seeing(
        std::slice::from_ref(&svc),
        &pools,
        &mut grace,
        t0 + ANNOUNCERS_SETTLE,
        &three,
    );
    assert_eq!(w.writes.len(), 1, "one write for the three nodes");
    let change = &w.writes[0].1;
    assert_eq!(
        change.annotations[annotations::ANNOUNCING].as_deref(),
        Some("n1/kube-lb0,n2/kube-lb0,n3/kube-lb0")
    );
    assert_eq!(change.events.len(), 1);
    // A move (no node stays) is not held back.
    svc = apply(&svc, change);
    let w = pass_seeing(
        std::slice::from_ref(&svc),
        &pools,
        &mut grace,
        t0 + ANNOUNCERS_SETTLE,
        &[holding("n4")],
    );
    assert_eq!(w.writes.len(), 1);
    assert_eq!(w.writes[0].1.events[0].reason, "AnnouncementMoved");
}

#[test]
fn policy_writes_keep_the_conditions_agents_own() {
    let mut policy = RoutingPolicy::new(
        "p",
        serde_json::from_value(json!({ "protocols": ["bgp"] })).unwrap(),
    );
    let first = policy_writes(&[Arc::new(policy.clone())], &now());
    assert_eq!(first.len(), 1);
    let mut status = first[0].status.clone();
    status.conditions.push(crate::status::condition(
        "InstanceMissing",
        true,
        "NoInstance",
        "node n1 has no router bgp".into(),
        None,
        &[],
        &now(),
    ));
    policy.status = Some(status);
    let again = policy_writes(&[Arc::new(policy.clone())], &now());
    assert!(again.is_empty(), "nothing changed: nothing to write");
    policy.spec.protocols.clear();
    let invalid = policy_writes(&[Arc::new(policy)], &now());
    assert!(
        invalid[0]
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == "InstanceMissing")
    );
    assert_eq!(invalid[0].events[0].reason, "InvalidPolicy");
}

fn services_strategy() -> impl Strategy<Value = Vec<Service>> {
    prop::collection::btree_set(0u16..200, 1..25).prop_map(|ids| {
        ids.iter()
            .map(|i| service(&format!("s{i}"), &format!("u{i}"), "1"))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_pass_on_its_own_writes_changes_nothing(services in services_strategy()) {
        let pools = [pool("a", &["10.0.0.0/28"]), pool("b", &["10.1.0.0/28"])];
        let mut grace = Grace::default();
        let t = Instant::now();
        let first = pass(&services, &pools, &mut grace, t);
        let mut after: BTreeMap<String, Service> =
            services.iter().map(|s| (s.name_any(), s.clone())).collect();
        for (svc, change) in &first.writes {
            after.insert(svc.name_any(), apply(svc, change));
        }
        let after: Vec<Service> = after.into_values().collect();
        let second = pass(&after, &pools, &mut grace, t + Duration::from_secs(1));
        prop_assert!(second.writes.is_empty(), "{:?}", second.writes.iter().map(|(s, c)| (s.name_any(), c.clone())).collect::<Vec<_>>());
    }

    #[test]
    fn the_order_of_the_caches_does_not_matter(services in services_strategy()) {
        let pools = [pool("a", &["10.0.0.0/28"]), pool("b", &["10.1.0.0/28"])];
        let t = Instant::now();
        let forward = pass(&services, &pools, &mut Grace::default(), t);
        let mut reversed = services.clone();
        reversed.reverse();
        let mut rpools = pools.to_vec();
        rpools.reverse();
        let backward = pass(&reversed, &rpools, &mut Grace::default(), t);
        let by_name = |w: &ServiceWrites| -> BTreeMap<String, ServiceChange> {
            w.writes.iter().map(|(s, c)| (s.name_any(), c.clone())).collect()
        };
        prop_assert_eq!(by_name(&forward), by_name(&backward));
    }
}

#[test]
fn the_tally_counts_each_served_service_as_it_is_once_written() {
    let pools = [pool("p", &["10.0.0.0/31"])];
    let mut grace = Grace::default();
    // Three services, two addresses: one gets none; nobody announces the other two yet.
    let services: Vec<Service> = (0..3)
        .map(|i| service(&format!("s{i}"), &format!("u{i}"), "1"))
        .collect();
    let w = pass(&services, &pools, &mut grace, Instant::now());
    assert_eq!(
        w.tally,
        ServiceTally {
            no_address: 1,
            not_announced: 2,
            announced: 0
        }
    );
    // As written, with one of them announced by a node: counted as announced.
    let mut written: Vec<Service> = w.writes.iter().map(|(s, c)| apply(s, c)).collect();
    let announced = written
        .iter_mut()
        .find(|s| !crate::ipam::ingress_ips(s).is_empty())
        .unwrap();
    announced
        .annotations_mut()
        .insert(annotations::ANNOUNCING.into(), "n1/kube-lb0".into());
    let w = pass(&written, &pools, &mut grace, Instant::now());
    assert_eq!(w.tally.announced, 1, "within its grace it still counts");
    assert_eq!(w.tally.no_address + w.tally.not_announced, 2);
    // Services routelb does not serve are not counted.
    let mut other = service("x", "ux", "1");
    other.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    let w = pass(&[other], &pools, &mut grace, Instant::now());
    assert_eq!(w.tally, ServiceTally::default());
}

#[test]
fn agents_of_deleted_nodes_are_not_counted_as_expired() {
    use k8s_openapi::api::coordination::v1::Lease;
    let lease = |node: &str| -> Lease {
        serde_json::from_value(json!({
            "metadata": { "name": crate::membership::lease_name(node), "namespace": "routelb-node-lease",
                          "labels": { "routelb.io/node-lease": "true" } },
            "spec": { "holderIdentity": node, "renewTime": "2026-01-01T00:00:00.000000Z",
                      "leaseDurationSeconds": 6 },
        }))
        .unwrap()
    };
    let leases = [lease("a"), lease("b"), lease("gone")];
    let live: BTreeSet<String> = ["a".to_string()].into();
    let nodes: BTreeSet<String> = ["a", "b", "never-ran-an-agent"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(agent_counts(&leases, &live, &nodes), (1, 1));
}
