//! Tests of [`crate::render::bgp`]: targets per VRF, attributes, entry numbering.

use serde_json::{Value, json};

use super::{all_instances, labelled, policy, pool, service, with_communities};
use crate::api::{AddressPool, Protocol, RoutingPolicy};
use crate::render::bgp::targets;
use crate::render::lists::pool_lists;
use crate::render::model::{BgpInstance, Problem, Target};
use crate::render::policy::resolve;
use crate::render::services::service_lists;
use crate::service::ServiceAddresses;

fn pools() -> Vec<AddressPool> {
    vec![
        labelled(pool("a", &["10.0.0.0/24"]), &[("name", "a")]),
        labelled(pool("b", &["2001:db8::/120"]), &[("name", "b")]),
    ]
}

/// A BGP policy exporting the pools named `pools`, with `bgp` attributes.
fn bgp_policy(name: &str, pools: &[&str], bgp: Value) -> RoutingPolicy {
    policy(
        name,
        json!({
            "protocols": ["bgp"],
            "poolSelector": {"matchExpressions": [{"key": "name", "operator": "In", "values": pools}]},
            "bgp": bgp,
            "serviceOverrides": {"bgpCommunities": ["64512:100-64512:199"]},
        }),
    )
}

fn run(
    policies: &[RoutingPolicy],
    services: &[ServiceAddresses],
    instances: &[BgpInstance],
) -> (Vec<Target>, Vec<Problem>) {
    let pools = pools();
    let r = resolve(&pools, policies, None);
    let lists = pool_lists(&r);
    let mut problems = vec![];
    let services = service_lists(&r, services);
    let (t, _) = targets(
        r.rules(Protocol::Bgp),
        &lists,
        &services,
        instances,
        &mut problems,
        |_, _, _| (vec![], vec![]),
    );
    (t, problems)
}

/// (seq, list, source) of each entry.
fn entries(t: &Target) -> Vec<(u32, &str, &str)> {
    t.entries
        .iter()
        .map(|e| (e.seq, e.frr_list.as_str(), e.source.as_str()))
        .collect()
}

#[test]
fn one_target_per_vrf_with_an_instance_and_a_word_for_the_others() {
    let policies = [
        bgp_policy("blue", &["a"], json!({"vrf": "blue"})),
        bgp_policy("main", &["a"], json!({})),
        bgp_policy("red", &["b"], json!({"vrf": "red"})),
    ];
    let (t, problems) = run(&policies, &[], &all_instances().bgp);
    let got: Vec<_> = t
        .iter()
        .map(|t| (t.route_map.as_str(), t.asn, t.vrf.as_deref(), t.v4, t.v6))
        .collect();
    assert_eq!(
        got,
        [
            ("ROUTELB-BGP", Some(64512), None, true, false),
            ("ROUTELB-BGP-red", Some(64513), Some("red"), false, true),
        ]
    );
    assert_eq!(
        problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "RoutingPolicy blue: InstanceMissing: exports through BGP in VRF blue, but the daemon's configuration has no such instance; add it to the base configuration"
        ]
    );
    let (t, problems) = run(&policies[1..2], &[], &[]);
    assert!(t.is_empty());
    assert!(problems[0].message.starts_with("exports through BGP, "));
}

#[test]
fn entries_carry_the_policy_attributes_and_the_local_as_prepended() {
    let p = bgp_policy(
        "main",
        &["a"],
        json!({
            "communities": ["64512:2", "64512:1", "64512:2"],
            "largeCommunities": ["64512:1:2"],
            "localPreference": 200,
            "med": 10,
            "asPathPrepend": 2,
        }),
    );
    let (t, _) = run(&[p], &[], &all_instances().bgp);
    let e = &t[0].entries[0];
    let communities: Vec<(u16, u16)> = e.communities.iter().map(|c| (c.asn, c.value)).collect();
    assert_eq!(communities, [(64512, 1), (64512, 2)], "sorted, once each");
    let large = &e.large_communities[0];
    assert_eq!((large.global, large.local1, large.local2), (64512, 1, 2));
    assert_eq!((e.local_preference, e.med), (Some(200), Some(10)));
    assert_eq!(e.prepend, [64512, 64512]);
    assert_eq!((e.metric, e.metric_type), (None, None));
    assert!(e.bird_list.starts_with("ROUTELB_POOL_a_"));
    assert_eq!((e.has_v4, e.has_v6), (true, false));
}

#[test]
fn services_come_first_from_10_then_pools_from_50000_per_vrf() {
    let policies = [
        bgp_policy("one", &["a"], json!({"communities": ["64512:1"]})),
        bgp_policy("red", &["b"], json!({"vrf": "red"})),
        bgp_policy("two", &["a", "b"], json!({})),
    ];
    let services = [
        with_communities(service("prod", "api", "a", &["10.0.0.1"]), "64512:150"),
        with_communities(service("prod", "web", "a", &["10.0.0.2"]), "64512:160"),
        with_communities(service("prod", "v6", "b", &["2001:db8::6"]), "64512:170"),
    ];
    let (t, problems) = run(&policies, &services, &all_instances().bgp);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        entries(&t[0]),
        [
            (10, "ROUTELB-SVC-prod.api", "service prod/api (policy one)"),
            (20, "ROUTELB-SVC-prod.web", "service prod/web (policy one)"),
            (50000, "ROUTELB-POOL-a", "policy one"),
            (50010, "ROUTELB-POOL-a", "policy two"),
            (50020, "ROUTELB-POOL-b", "policy two"),
        ]
    );
    // The service adds its community to its policy's.
    let c: Vec<u16> = t[0].entries[0]
        .communities
        .iter()
        .map(|c| c.value)
        .collect();
    assert_eq!(c, [1, 150]);
    // `red` is the first policy by name exporting `b`, so the IPv6 service is in VRF red.
    assert_eq!(
        entries(&t[1]),
        [
            (10, "ROUTELB-SVC-prod.v6", "service prod/v6 (policy red)"),
            (50000, "ROUTELB-POOL-b", "policy red"),
        ]
    );
}
