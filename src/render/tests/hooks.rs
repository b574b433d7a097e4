//! Tests of [`crate::render::hooks`]: entries in the base's route-maps, their numbering, and
//! the route-maps routelb refuses to hook into.

use serde_json::{Value, json};

use super::{all_instances, labelled, policy, pool};
use crate::api::{AddressPool, Protocol, RoutingPolicy};
use crate::render::hooks::hooks;
use crate::render::lists::pool_lists;
use crate::render::model::{BaseRouteMap, HOOK_SEQ, Instances, Problem, RouteMapHook};
use crate::render::policy::resolve;

fn pools() -> Vec<AddressPool> {
    vec![
        labelled(
            pool("a", &["10.0.0.0/24", "2001:db8::/120"]),
            &[("name", "a")],
        ),
        labelled(pool("b", &["10.1.0.0/24"]), &[("name", "b")]),
    ]
}

fn bgp_policy(name: &str, pools: &[&str], bgp: Value) -> RoutingPolicy {
    policy(
        name,
        json!({
            "protocols": ["bgp"],
            "poolSelector": {"matchExpressions": [{"key": "name", "operator": "In", "values": pools}]},
            "bgp": bgp,
        }),
    )
}

fn run(policies: &[RoutingPolicy], instances: &Instances) -> (Vec<RouteMapHook>, Vec<Problem>) {
    let pools = pools();
    let r = resolve(&pools, policies, None);
    let lists = pool_lists(&r);
    let mut problems = Vec::new();
    let h = hooks(r.rules(Protocol::Bgp), &lists, instances, &mut problems);
    (h, problems)
}

fn with_maps(maps: &[(&str, BaseRouteMap)]) -> Instances {
    Instances {
        route_maps: maps
            .iter()
            .map(|(n, m)| (n.to_string(), m.clone()))
            .collect(),
        ..all_instances()
    }
}

fn entries(h: &RouteMapHook) -> Vec<(String, String)> {
    h.entries
        .iter()
        .map(|e| (e.frr_list.clone(), e.family.clone()))
        .collect()
}

#[test]
fn one_permit_per_list_and_family_in_the_reserved_range() {
    let inst = with_maps(&[("peer-out", BaseRouteMap::default())]);
    let p = bgp_policy(
        "up",
        &["a", "b"],
        json!({"outboundRouteMaps": ["peer-out", "peer-out"], "communities": ["64512:1"]}),
    );
    let (h, problems) = run(&[p], &inst);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].route_map, "peer-out");
    let mut got = entries(&h[0]);
    got.sort();
    let want: Vec<(String, String)> = [
        ("ROUTELB-POOL-a", "V4"),
        ("ROUTELB-POOL-a", "V6"),
        ("ROUTELB-POOL-b", "V4"),
    ]
    .iter()
    .map(|(l, f)| (l.to_string(), f.to_string()))
    .collect();
    assert_eq!(got, want);
    assert!(h[0].entries.iter().all(|e| HOOK_SEQ.contains(&e.seq)));
    assert!(h[0].entries.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[test]
fn a_pool_coming_or_going_leaves_the_other_entries_numbered_as_they_were() {
    let inst = with_maps(&[("peer-out", BaseRouteMap::default())]);
    let hook = json!({"outboundRouteMaps": ["peer-out"]});
    let (both, _) = run(&[bgp_policy("up", &["a", "b"], hook.clone())], &inst);
    let (only_a, _) = run(&[bgp_policy("up", &["a"], hook)], &inst);
    for e in &only_a[0].entries {
        assert!(both[0].entries.contains(e), "{e:?} renumbered");
    }
    assert_eq!(both[0].entries.len(), only_a[0].entries.len() + 1);
}

#[test]
fn policies_naming_one_route_map_share_it_and_each_map_gets_its_pools() {
    let inst = with_maps(&[
        ("v4-out", BaseRouteMap::default()),
        ("v6-out", BaseRouteMap::default()),
    ]);
    let (h, problems) = run(
        &[
            bgp_policy(
                "x",
                &["a"],
                json!({"outboundRouteMaps": ["v4-out", "v6-out"]}),
            ),
            bgp_policy("y", &["b"], json!({"outboundRouteMaps": ["v4-out"]})),
        ],
        &inst,
    );
    assert!(problems.is_empty(), "{problems:?}");
    let names: Vec<&str> = h.iter().map(|h| h.route_map.as_str()).collect();
    assert_eq!(names, ["v4-out", "v6-out"]);
    assert_eq!(h[0].entries.len(), 3);
    assert_eq!(h[1].entries.len(), 2);
}

#[test]
fn missing_conflicting_and_shadowed_route_maps_are_reported() {
    let inst = with_maps(&[
        (
            "taken-out",
            BaseRouteMap {
                in_reserved: vec![64_500],
                ..Default::default()
            },
        ),
        (
            "denied-out",
            BaseRouteMap {
                catch_all_deny: Some(100),
                ..Default::default()
            },
        ),
        (
            "late-deny-out",
            BaseRouteMap {
                catch_all_deny: Some(65_535),
                ..Default::default()
            },
        ),
    ]);
    let p = bgp_policy(
        "up",
        &["b"],
        json!({"outboundRouteMaps": ["typo-out", "taken-out", "denied-out", "late-deny-out"]}),
    );
    let (h, problems) = run(&[p], &inst);
    let reasons: Vec<(&str, bool)> = problems
        .iter()
        .map(|p| (p.reason, p.policy.as_deref() == Some("up")))
        .collect();
    assert_eq!(
        reasons,
        [
            ("RouteMapShadowed", true),
            ("RouteMapSeqConflict", true),
            ("RouteMapMissing", true),
        ]
    );
    assert!(problems[0].message.contains("entry 100"), "{}", problems[0]);
    assert!(problems[1].message.contains("64500"), "{}", problems[1]);
    // A shadowed map is still hooked (the team may move its deny); the others are not.
    let names: Vec<&str> = h.iter().map(|h| h.route_map.as_str()).collect();
    assert_eq!(names, ["denied-out", "late-deny-out"]);
}

#[test]
fn no_hooks_without_the_bgp_instance_or_the_option() {
    let inst = Instances {
        bgp: vec![],
        ..with_maps(&[("peer-out", BaseRouteMap::default())])
    };
    let hook = json!({"outboundRouteMaps": ["peer-out"]});
    let (h, problems) = run(&[bgp_policy("up", &["a"], hook.clone())], &inst);
    assert!(h.is_empty() && problems.is_empty(), "{problems:?}");
    let all = with_maps(&[("peer-out", BaseRouteMap::default())]);
    let (h, _) = run(&[bgp_policy("up", &["a"], json!({}))], &all);
    assert!(h.is_empty());
}
