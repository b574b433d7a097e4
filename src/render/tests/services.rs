//! Tests of [`crate::render::services`]: which services get their own list, what is refused.

use serde_json::json;

use super::{aggregated, labelled, policy, pool, service, with_communities};
use crate::api::{AddressPool, RoutingPolicy};
use crate::render::model::Problem;
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

fn run(
    policies: &[RoutingPolicy],
    services: &[ServiceAddresses],
) -> (Vec<ServiceList>, Vec<Problem>) {
    let pools = pools();
    let r = resolve(&pools, policies, None);
    let mut problems = vec![];
    let lists = service_lists(&r, services, &mut problems);
    (lists, problems)
}

fn messages(problems: &[Problem]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

#[test]
fn allowed_communities_give_a_service_its_own_list() {
    let svc = with_communities(
        service("prod", "api", "web", &["10.0.0.7", "2001:db8::7"]),
        "64512:150, 64512:120,64512:150",
    );
    let (lists, problems) = run(&policies(), &[svc]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(lists.len(), 1);
    let s = &lists[0];
    assert_eq!(
        (s.rule, s.list.frr_name.as_str()),
        (0, "ROUTELB-SVC-prod.api")
    );
    assert_eq!((s.list.v4.len(), s.list.v6.len()), (1, 1));
    let communities: Vec<String> = s
        .communities
        .iter()
        .map(|c| format!("{}:{}", c.0, c.1))
        .collect();
    assert_eq!(communities, ["64512:120", "64512:150"], "sorted, once each");
}

#[test]
fn the_first_bgp_policy_by_name_exporting_the_pool_decides() {
    // `a-strict` exports every pool and allows no community.
    let mut with_strict = policies();
    with_strict.push(policy("a-strict", json!({"protocols": ["bgp"]})));
    let svc = with_communities(service("prod", "api", "web", &["10.0.0.7"]), "64512:150");
    let (lists, problems) = run(&with_strict, &[svc]);
    assert!(lists.is_empty());
    assert_eq!(
        messages(&problems),
        [
            "RoutingPolicy a-strict: ServiceAttributeRefused: service prod/api: community 64512:150 is not allowed by the routing policy"
        ]
    );
}

#[test]
fn refused_communities_are_reported_and_the_rest_kept() {
    let svc = with_communities(
        service("prod", "api", "web", &["10.0.0.7"]),
        "64512:150,64512:300,nope",
    );
    let (lists, problems) = run(&policies(), &[svc]);
    assert_eq!(lists[0].communities.len(), 1);
    assert_eq!(problems.len(), 2);
    for p in &problems {
        assert_eq!(
            (p.policy.as_deref(), p.reason),
            (Some("b-open"), "ServiceAttributeRefused")
        );
    }
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
    let (lists, problems) = run(&policies(), &services);
    assert!(lists.is_empty());
    let got: Vec<(Option<&str>, &str)> = problems
        .iter()
        .map(|p| (p.policy.as_deref(), p.message.as_str()))
        .collect();
    // Sorted by namespace and name: "Prod" < "prod".
    assert_eq!(
        got,
        [
            (
                Some("b-open"),
                "service \"Prod/api\": not a valid Kubernetes namespace/name"
            ),
            (
                Some("b-open"),
                "service prod/agg: per-service communities do not apply to aggregated pool agg"
            ),
            (
                None,
                "service prod/late: pool web does not admit it, so its per-service attributes are not honoured"
            ),
        ]
    );
}

#[test]
fn nothing_without_a_bgp_policy_for_the_pool() {
    let services = [
        // No BGP policy exports `quiet`; `gone` is no pool in use.
        with_communities(service("prod", "a", "quiet", &["10.2.0.1"]), "64512:150"),
        with_communities(service("prod", "b", "gone", &["10.9.0.1"]), "64512:150"),
        // No annotation: nothing to decide.
        service("prod", "c", "web", &["10.0.0.3"]),
    ];
    assert!(run(&policies(), &services).0.is_empty());
    // Without any BGP policy even an unadmitted service is not worth a word.
    let unadmitted = ServiceAddresses {
        admitted: false,
        ..with_communities(service("prod", "late", "web", &["10.0.0.8"]), "64512:150")
    };
    let (lists, problems) = run(&policies()[1..], &[unadmitted]);
    assert!(lists.is_empty() && problems.is_empty());
}
