//! Tests of [`crate::render::services`]: which services get their own list, what is refused.

use serde_json::json;

use super::{aggregated, asking, labelled, policy, pool, service, with_communities};
use crate::api::{AddressPool, Protocol, RoutingPolicy, annotations};
use crate::render::policy::resolve;
use crate::render::services::{ServiceList, service_lists};
use crate::service::ServiceAddresses;

fn pools() -> Vec<AddressPool> {
    vec![
        labelled(
            pool("web", &["10.0.0.0/24", "2001:db8::/120"]),
            &[("bgp", "yes")],
        ),
        labelled(
            aggregated(pool("agg", &["10.1.0.0/24"]), 24),
            &[("bgp", "yes")],
        ),
        pool("quiet", &["10.2.0.0/24"]),
    ]
}

/// `b-open` exports `web` and `agg` through BGP and lets services add 64512:100-199; `igp`
/// exports every pool, through OSPF only.
fn policies() -> Vec<RoutingPolicy> {
    vec![
        policy(
            "b-open",
            json!({
                "protocols": ["bgp"],
                "poolSelector": {"matchLabels": {"bgp": "yes"}},
                "serviceOverrides": {"bgpCommunities": ["64512:100-64512:199"]},
            }),
        ),
        policy("igp", json!({"protocols": ["ospf"]})),
    ]
}

fn run(policies: &[RoutingPolicy], services: &[ServiceAddresses]) -> Vec<ServiceList> {
    let pools = pools();
    let r = resolve(&pools, policies, None);
    service_lists(&r, services)
}

fn communities(s: &ServiceList) -> Vec<String> {
    s.entries[0]
        .accepted
        .communities
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn allowed_communities_give_a_service_its_own_list() {
    let svc = with_communities(
        service("prod", "api", "web", &["10.0.0.7", "2001:db8::7"]),
        "64512:150, 64512:120,64512:150",
    );
    let lists = run(&policies(), &[svc]);
    assert_eq!(lists.len(), 1);
    let s = &lists[0];
    assert_eq!(s.list.frr_name, "ROUTELB-SVC-prod.api");
    assert_eq!(s.entries.len(), 1);
    assert_eq!(
        (s.entries[0].protocol, s.entries[0].rule),
        (Protocol::Bgp, 0)
    );
    assert_eq!((s.list.v4.len(), s.list.v6.len()), (1, 1));
    assert_eq!(
        communities(s),
        ["64512:120", "64512:150"],
        "sorted, once each"
    );
}

#[test]
fn the_first_policy_by_name_exporting_the_pool_decides() {
    // `a-strict` exports every pool and allows no community.
    let mut with_strict = policies();
    with_strict.push(policy("a-strict", json!({"protocols": ["bgp"]})));
    let svc = with_communities(service("prod", "api", "web", &["10.0.0.7"]), "64512:150");
    assert!(run(&with_strict, &[svc]).is_empty());
}

#[test]
fn refused_communities_are_left_out_and_the_rest_kept() {
    let svc = with_communities(
        service("prod", "api", "web", &["10.0.0.7"]),
        "64512:150,64512:300,nope",
    );
    assert_eq!(communities(&run(&policies(), &[svc])[0]), ["64512:150"]);
}

#[test]
fn aggregated_pools_unadmitted_services_and_bad_names_get_no_list() {
    let unadmitted = ServiceAddresses {
        admitted: false,
        ..with_communities(service("prod", "late", "web", &["10.0.0.8"]), "64512:150")
    };
    let services = [
        with_communities(service("prod", "agg", "agg", &["10.1.0.1"]), "64512:150"),
        unadmitted,
        with_communities(service("Prod", "api", "web", &["10.0.0.9"]), "64512:150"),
    ];
    assert!(run(&policies(), &services).is_empty());
}

#[test]
fn nothing_without_a_policy_for_the_pool() {
    let services = [
        // No BGP policy exports `quiet`; `gone` is no pool in use.
        with_communities(service("prod", "a", "quiet", &["10.2.0.1"]), "64512:150"),
        with_communities(service("prod", "b", "gone", &["10.9.0.1"]), "64512:150"),
        // No annotation: nothing to decide.
        service("prod", "c", "web", &["10.0.0.3"]),
    ];
    assert!(run(&policies(), &services).is_empty());
}

#[test]
fn each_protocol_s_grants_give_entries_of_their_own() {
    let mut ps = policies();
    ps[1] = policy(
        "igp",
        json!({
            "protocols": ["ospf", "isis"],
            "serviceOverrides": {"grants": [{
                "namespaces": ["prod"],
                "ospfMetric": {"min": 10, "max": 100},
            }]},
        }),
    );
    let svc = asking(
        service("prod", "api", "web", &["10.0.0.7"]),
        &[
            (annotations::OSPF_METRIC, "50"),
            (annotations::ISIS_METRIC, "50"),
            (annotations::BGP_MED, "7"),
        ],
    );
    let lists = run(&ps, std::slice::from_ref(&svc));
    assert_eq!(lists.len(), 1);
    let entries: Vec<(Protocol, usize, Option<u32>)> = lists[0]
        .entries
        .iter()
        .map(|e| (e.protocol, e.rule, e.accepted.metric))
        .collect();
    // IS-IS is granted nothing; b-open grants no MED.
    assert_eq!(entries, [(Protocol::Ospf, 0, Some(50))]);
    // Another namespace is not granted the metric.
    let mut other = svc;
    other.key.namespace = "dev".into();
    other.attributes.namespace = "dev".into();
    assert!(run(&ps, &[other]).is_empty());
}
