//! Tests of [`crate::attributes`] and [`crate::render::attributes`]: what a policy grants a Service, what the allocator
//! reports as refused, and that both agree.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;

use super::{aggregated, policy, pool};
use crate::api::{AddressPool, PoolMode, Protocol, RoutingPolicy, annotations};
use crate::attributes::{Refusal, Request, evaluate, summary};
use crate::render::attributes::Judge;

fn request(ns: &str, labels: &[(&str, &str)], asks: &[(&'static str, &str)]) -> Request {
    Request {
        asks: asks.iter().map(|(a, v)| (*a, v.to_string())).collect(),
        namespace: ns.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        namespace_labels: BTreeMap::from([("team".to_string(), "edge".to_string())]),
    }
}

/// `edge` grants every Service MEDs 0-100 and two grants: namespace `prod` local preferences
/// 100-200 and large communities 64512:1:*, Services labelled `tier: gold` prepends up to 3.
fn edge() -> RoutingPolicy {
    policy(
        "edge",
        json!({
            "protocols": ["bgp", "ospf"],
            "bgp": {"localPreference": 50, "med": 5, "asPathPrepend": 1},
            "serviceOverrides": {
                "bgpMed": {"min": 0, "max": 100},
                "grants": [
                    {
                        "namespaces": ["prod"],
                        "bgpLocalPreference": {"min": 100, "max": 200},
                        "bgpLargeCommunities": ["64512:1:0-64512:1:4294967295"],
                    },
                    {
                        "serviceSelector": {"matchLabels": {"tier": "gold"}},
                        "namespaceSelector": {"matchLabels": {"team": "edge"}},
                        "bgpAsPathPrepend": {"min": 0, "max": 3},
                        "ospfMetric": {"min": 10, "max": 20},
                    },
                ],
            },
        }),
    )
}

fn reasons(refused: &[Refusal]) -> Vec<String> {
    refused.iter().map(ToString::to_string).collect()
}

#[test]
fn grants_apply_by_namespace_and_labels() {
    let asks = [
        (annotations::BGP_MED, "70"),
        (annotations::BGP_LOCAL_PREFERENCE, "150"),
        (annotations::BGP_LARGE_COMMUNITIES, "64512:1:9, 64512:2:9"),
        (annotations::BGP_AS_PATH_PREPEND, "0"),
        (annotations::OSPF_METRIC, "15"),
    ];
    let gold_in_prod = request("prod", &[("tier", "gold")], &asks);
    let (got, refused) = evaluate(&gold_in_prod, Protocol::Bgp, &edge());
    assert_eq!(got.med, Some(70));
    assert_eq!(got.local_preference, Some(150));
    assert_eq!(
        got.as_path_prepend,
        Some(0),
        "0 replaces the policy's prepend"
    );
    assert_eq!(got.large_communities.len(), 1);
    assert_eq!(got.metric, None, "OSPF annotations are not read for BGP");
    assert_eq!(
        reasons(&refused),
        [
            "routelb.io/bgp-large-communities: large community 64512:2:9 is not allowed (policy edge)"
        ]
    );
    let (ospf, refused) = evaluate(&gold_in_prod, Protocol::Ospf, &edge());
    assert_eq!((ospf.metric, refused.len()), (Some(15), 0));

    // In another namespace, without the label: only what every Service is granted.
    let plain = request("dev", &[], &asks);
    let (got, refused) = evaluate(&plain, Protocol::Bgp, &edge());
    assert_eq!((got.med, got.local_preference), (Some(70), None));
    assert_eq!(
        reasons(&refused),
        [
            "routelb.io/bgp-as-path-prepend: not granted to this Service (policy edge)",
            "routelb.io/bgp-large-communities: large community 64512:1:9 is not allowed (policy edge)",
            "routelb.io/bgp-large-communities: large community 64512:2:9 is not allowed (policy edge)",
            "routelb.io/bgp-local-preference: not granted to this Service (policy edge)",
        ]
    );
}

#[test]
fn values_outside_the_ranges_or_not_numbers_are_refused() {
    let asks = [
        (annotations::BGP_MED, "101"),
        (annotations::BGP_LOCAL_PREFERENCE, "1e3"),
        (annotations::BGP_AS_PATH_PREPEND, "99999999999"),
    ];
    let (got, refused) = evaluate(&request("prod", &[], &asks), Protocol::Bgp, &edge());
    assert!(got.is_empty());
    assert_eq!(
        reasons(&refused),
        [
            "routelb.io/bgp-as-path-prepend: \"99999999999\" is not a number (policy edge)",
            "routelb.io/bgp-local-preference: \"1e3\" is not a number (policy edge)",
            "routelb.io/bgp-med: 101 is outside what is granted to this Service (0-100) (policy edge)",
        ]
    );
    // A value that could break a line out of the daemon's configuration is only echoed
    // quoted, and refused.
    let hostile = request(
        "prod",
        &[],
        &[(annotations::BGP_MED, "7\nexit\nrouter bgp 1")],
    );
    let (got, refused) = evaluate(&hostile, Protocol::Bgp, &edge());
    assert!(got.is_empty() && refused.len() == 1);
}

fn pools() -> Vec<AddressPool> {
    let mut local = pool("l2", &["192.168.1.0/24"]);
    local.spec.mode = PoolMode::Local;
    vec![
        pool("web", &["10.0.0.0/24"]),
        aggregated(pool("agg", &["10.1.0.0/24"]), 24),
        local,
    ]
}

#[test]
fn the_allocator_reports_what_no_node_renders() {
    let pools = pools();
    let policies = [edge()];
    let judge = Judge::new(&pools, &policies);
    let asks = [
        (annotations::BGP_MED, "500"),
        (annotations::ISIS_METRIC, "10"),
    ];
    let r = request("prod", &[], &asks);
    assert_eq!(
        reasons(&judge.refusals(&r, "web", true)),
        [
            "routelb.io/bgp-med: 500 is outside what is granted to this Service (0-100) (policy edge)",
            "routelb.io/isis-metric: no RoutingPolicy exports pool web through IS-IS",
        ]
    );
    for (pool, admitted, why) in [
        ("web", false, "pool web does not admit this Service"),
        ("agg", true, "pool agg announces aggregates"),
        ("l2", true, "pool l2 is a local pool"),
    ] {
        let refused = judge.refusals(&r, pool, admitted);
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(
            refused.iter().all(|x| x.why.starts_with(why)),
            "{refused:?}"
        );
    }
    assert!(
        judge
            .refusals(&request("prod", &[], &[]), "web", true)
            .is_empty()
    );
}

#[test]
fn every_policy_that_decides_on_some_node_judges() {
    // `a-rack1` decides on rack 1's nodes and grants nothing; `edge` (no node selector)
    // decides everywhere else; `z-late` is never first for `web`, so it never decides.
    let pools = pools();
    let policies = [
        policy(
            "a-rack1",
            json!({"protocols": ["bgp"], "nodeSelector": {"matchLabels": {"rack": "1"}}}),
        ),
        edge(),
        policy("z-late", json!({"protocols": ["bgp"]})),
    ];
    let judge = Judge::new(&pools, &policies);
    let r = request("prod", &[], &[(annotations::BGP_MED, "50")]);
    assert_eq!(
        reasons(&judge.refusals(&r, "web", true)),
        ["routelb.io/bgp-med: not granted to this Service (policy a-rack1)"]
    );
}

#[test]
fn the_summary_is_bounded() {
    let many: Vec<Refusal> = (0..100)
        .map(|i| Refusal {
            annotation: annotations::BGP_COMMUNITIES,
            why: format!("community 64512:{i} is not allowed (policy edge)"),
        })
        .collect();
    let s = summary(&many).unwrap();
    assert!(s.len() <= 1024 + 20, "{}", s.len());
    assert!(s.ends_with(" more"), "{s}");
    assert_eq!(summary(&[]), None);
}

proptest! {
    /// What the allocator refuses and what the renderer accepts split every request: a
    /// value is accepted by the deciding policy exactly when the allocator does not report it.
    #[test]
    fn accepted_and_refused_split_every_request(med in 0u32..300, pref in 0u32..300, gold: bool) {
        let labels: &[(&str, &str)] = if gold { &[("tier", "gold")] } else { &[] };
        let (m, p) = (med.to_string(), pref.to_string());
        let r = request("prod", labels, &[
            (annotations::BGP_MED, &m),
            (annotations::BGP_LOCAL_PREFERENCE, &p),
        ]);
        let pools = pools();
        let policies = [edge()];
        let (got, _) = evaluate(&r, Protocol::Bgp, &policies[0]);
        let refused = Judge::new(&pools, &policies).refusals(&r, "web", true);
        let refused_med = refused.iter().any(|x| x.annotation == annotations::BGP_MED);
        let refused_pref = refused.iter().any(|x| x.annotation == annotations::BGP_LOCAL_PREFERENCE);
        prop_assert_eq!(got.med.is_some(), !refused_med);
        prop_assert_eq!(got.local_preference.is_some(), !refused_pref);
        prop_assert_eq!(got.med.is_some(), med <= 100);
        prop_assert_eq!(got.local_preference.is_some(), (100..=200).contains(&pref));
    }
}
