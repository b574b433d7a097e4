//! Tests of [`crate::render::policy`]: which policies apply, which pools they export.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::json;

use super::{arb_world, labelled, policy, pool, reordered};
use crate::api::{AddressPool, PoolMode, Protocol, RoutingPolicy};
use crate::render::policy::{Resolved, resolve};

fn zone(z: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("zone".to_string(), z.to_string())])
}

/// Per protocol, the policy names and the names of the pools each exports.
type Summary = Vec<(Protocol, String, Vec<String>)>;

fn summary(r: &Resolved) -> Summary {
    r.rules
        .iter()
        .flat_map(|(proto, rules)| {
            rules.iter().map(move |rule| {
                let pools = rule.pools.iter().map(|&i| r.pools[i].name.clone());
                (*proto, rule.name.clone(), pools.collect())
            })
        })
        .collect()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn pool_selectors_pick_pools_by_label_and_protocols_share_them() {
    let pools = [
        labelled(pool("web", &["10.0.0.0/24"]), &[("tier", "front")]),
        labelled(pool("db", &["10.1.0.0/24"]), &[("tier", "back")]),
    ];
    let policies = [
        policy("all", json!({"protocols": ["ospf"]})),
        policy(
            "front",
            json!({"protocols": ["rip", "bgp", "bgp"], "poolSelector": {"matchLabels": {"tier": "front"}}}),
        ),
    ];
    let r = resolve(&pools, &policies, None);
    assert_eq!(
        summary(&r),
        [
            (Protocol::Bgp, "front".into(), names(&["web"])),
            (Protocol::Ospf, "all".into(), names(&["db", "web"])),
            (Protocol::Rip, "front".into(), names(&["web"])),
        ]
    );
    assert!(r.rules(Protocol::Isis).is_empty());
    assert_eq!(
        r.exported_pools,
        BTreeSet::from(["db".into(), "web".into()])
    );
    assert!(r.problems.is_empty());
}

#[test]
fn only_valid_routed_pools_with_kubernetes_names_are_in_use() {
    let mut local = pool("local", &["192.168.1.0/28"]);
    local.spec.mode = PoolMode::Local;
    let pools = [
        pool("ok", &["10.0.0.0/24"]),
        pool("broken", &["10.0.0.0/33"]),
        pool("Not_DNS", &["10.2.0.0/24"]),
        local,
    ];
    let policies = [policy("p", json!({"protocols": ["bgp"]}))];
    let r = resolve(&pools, &policies, None);
    let in_use: Vec<&str> = r.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(in_use, ["ok"]);
    assert_eq!(r.exported_pools, BTreeSet::from(["ok".into()]));
}

#[test]
fn node_selectors_apply_only_when_rendering_for_a_node() {
    let pools = [pool("web", &["10.0.0.0/24"])];
    let policies = [policy(
        "east",
        json!({"protocols": ["bgp"], "nodeSelector": {"matchLabels": {"zone": "east"}}}),
    )];
    assert_eq!(
        resolve(&pools, &policies, Some(&zone("east")))
            .exported_pools
            .len(),
        1
    );
    let west = resolve(&pools, &policies, Some(&zone("west")));
    assert!(west.rules.is_empty() && west.exported_pools.is_empty());
    // Any node: the selector is not a reason to leave the policy out.
    assert_eq!(resolve(&pools, &policies, None).exported_pools.len(), 1);
}

#[test]
fn invalid_policies_are_reported_and_skipped_as_a_whole() {
    let pools = [pool("web", &["10.0.0.0/24"])];
    let policies = [
        policy("empty", json!({"protocols": []})),
        policy(
            "bad-selector",
            json!({"protocols": ["bgp"], "poolSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}),
        ),
        policy(
            "two-faults",
            json!({"protocols": ["bgp"], "bgp": {"communities": ["x"], "asPathPrepend": 11}}),
        ),
        policy("good", json!({"protocols": ["ospf"]})),
    ];
    let r = resolve(&pools, &policies, None);
    let problems: Vec<(&str, &str)> = r
        .problems
        .iter()
        .map(|p| (p.policy.as_deref().unwrap(), p.reason))
        .collect();
    // By policy name, whatever the input order.
    assert_eq!(
        problems,
        [
            ("bad-selector", "Invalid"),
            ("empty", "Invalid"),
            ("two-faults", "Invalid")
        ]
    );
    assert!(r.problems[0].message.starts_with("spec.poolSelector: "));
    assert_eq!(
        r.problems[2].message.matches("; ").count(),
        1,
        "both faults listed"
    );
    assert_eq!(
        summary(&r),
        [(Protocol::Ospf, "good".into(), names(&["web"]))]
    );
}

fn resolve_world(
    pools: &[AddressPool],
    policies: &[RoutingPolicy],
    labels: &Option<BTreeMap<String, String>>,
) -> (Summary, BTreeSet<String>) {
    let r = resolve(pools, policies, labels.as_ref());
    (summary(&r), r.exported_pools)
}

proptest! {
    #[test]
    fn the_order_of_pools_and_policies_does_not_matter(w in arb_world(), seed in any::<u64>()) {
        let labels = w.node.as_ref().map(|_| w.node_labels.clone());
        prop_assert_eq!(
            resolve_world(&w.pools, &w.policies, &labels),
            resolve_world(&reordered(&w.pools, seed), &reordered(&w.policies, seed / 3), &labels)
        );
    }

    #[test]
    fn exported_pools_are_exactly_the_pools_rules_export(w in arb_world()) {
        let r = resolve(&w.pools, &w.policies, w.node.as_ref().map(|_| &w.node_labels));
        let from_rules: BTreeSet<String> =
            summary(&r).into_iter().flat_map(|(_, _, p)| p).collect();
        prop_assert_eq!(&r.exported_pools, &from_rules);
        prop_assert_eq!(&w.build().exported_pools, &from_rules);
    }
}
