//! Tests of [`crate::render::igp`]: OSPF, IS-IS and RIP targets.

use serde_json::json;

use super::{all_instances, policy, pool};
use crate::api::{Protocol, RoutingPolicy};
use crate::render::igp;
use crate::render::lists::{PoolLists, pool_lists};
use crate::render::model::{Instances, Problem, Target};
use crate::render::policy::{Resolved, resolve};

/// Resolves `policies` over a dual-stack pool `ds` and an IPv4 pool `v4`, and hands the result
/// and the pools' lists to `f`.
fn with_rules<T>(policies: &[RoutingPolicy], f: impl FnOnce(&Resolved, &PoolLists) -> T) -> T {
    let pools = [
        pool("ds", &["10.0.0.0/24", "2001:db8::/120"]),
        pool("v4", &["10.1.0.0/24"]),
    ];
    let r = resolve(&pools, policies, None);
    f(&r, &pool_lists(&r))
}

/// What the IGP targets of `protocol` are built from, with no service of its own.
fn input<'a>(r: &'a Resolved, lists: &'a PoolLists, protocol: Protocol) -> igp::IgpInput<'a> {
    igp::IgpInput {
        rules: r.rules(protocol),
        lists,
        services: &[],
    }
}

fn ospf(policies: &[RoutingPolicy], instances: &Instances) -> (Option<Target>, Vec<Problem>) {
    with_rules(policies, |r, lists| {
        let mut problems = vec![];
        let t = igp::ospf(&input(r, lists, Protocol::Ospf), instances, &mut problems);
        (t, problems)
    })
}

fn what_is_missing(problems: &[Problem]) -> Vec<(&str, &str)> {
    problems
        .iter()
        .map(|p| {
            let what = p.message.trim_start_matches("exports through ");
            (
                p.policy.as_deref().unwrap(),
                what.split(',').next().unwrap(),
            )
        })
        .collect()
}

#[test]
fn ospf_entries_carry_only_the_metric_whatever_bgp_says() {
    let p = policy(
        "igp",
        json!({
            "protocols": ["ospf", "bgp"],
            "ospf": {"metric": 20, "metricType": 1},
            "bgp": {"communities": ["64512:1"], "localPreference": 200, "med": 5, "asPathPrepend": 3},
        }),
    );
    let (t, problems) = ospf(&[p], &all_instances());
    let t = t.unwrap();
    assert!(problems.is_empty());
    assert_eq!(
        (t.route_map.as_str(), t.v4, t.v6),
        ("ROUTELB-OSPF", true, true)
    );
    assert_eq!(
        t.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [50000, 50010]
    );
    for e in &t.entries {
        assert_eq!((e.metric, e.metric_type), (Some(20), Some(1)));
        assert!(e.communities.is_empty() && e.prepend.is_empty());
        assert_eq!((e.local_preference, e.med), (None, None));
        assert_eq!(e.source, "policy igp");
    }
}

#[test]
fn a_family_without_its_instance_is_reported_and_left_out() {
    let policies = [
        policy("a", json!({"protocols": ["ospf"]})),
        policy("b", json!({"protocols": ["ospf"]})),
    ];
    let no_v3 = Instances {
        ospf6: false,
        ..all_instances()
    };
    let (t, problems) = ospf(&policies, &no_v3);
    assert_eq!((t.as_ref().unwrap().v4, t.unwrap().v6), (true, false));
    assert_eq!(
        what_is_missing(&problems),
        [("a", "OSPFv3 (IPv6)"), ("b", "OSPFv3 (IPv6)")]
    );
    // Neither side: no target, each side reported for each policy.
    let (t, problems) = ospf(&policies[..1], &Instances::default());
    assert!(t.is_none());
    assert_eq!(
        what_is_missing(&problems),
        [("a", "OSPFv2 (IPv4)"), ("a", "OSPFv3 (IPv6)")]
    );
    // No policy, nothing to say.
    assert_eq!(ospf(&[], &Instances::default()), (None, vec![]));
}

#[test]
fn rip_is_ripng_too_and_carries_its_metric() {
    let p = policy("r", json!({"protocols": ["rip"], "rip": {"metric": 3}}));
    let (t, problems) = with_rules(&[p], |r, lists| {
        let mut problems = vec![];
        let no_ripng = Instances {
            ripng: false,
            ..all_instances()
        };
        (
            igp::rip(&input(r, lists, Protocol::Rip), &no_ripng, &mut problems),
            problems,
        )
    });
    let t = t.unwrap();
    assert_eq!(
        (t.route_map.as_str(), t.v4, t.v6),
        ("ROUTELB-RIP", true, false)
    );
    assert!(
        t.entries
            .iter()
            .all(|e| e.metric == Some(3) && e.metric_type.is_none())
    );
    assert_eq!(what_is_missing(&problems), [("r", "RIPng (IPv6)")]);
}

fn isis(policies: &[RoutingPolicy], tags: &[&str]) -> (Vec<Target>, Vec<Problem>) {
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    with_rules(policies, |r, lists| {
        let mut problems = vec![];
        (
            igp::isis(&input(r, lists, Protocol::Isis), &tags, &mut problems),
            problems,
        )
    })
}

#[test]
fn isis_has_a_target_per_level_and_instance() {
    let policies = [
        policy(
            "both",
            json!({"protocols": ["isis"], "isis": {"level": "level-1-2", "metric": 12}}),
        ),
        policy(
            "l1",
            json!({"protocols": ["isis"], "isis": {"level": "level-1", "metric": 1}}),
        ),
        policy("plain", json!({"protocols": ["isis"]})),
    ];
    let (t, problems) = isis(&policies, &["core", "edge"]);
    assert!(problems.is_empty());
    let got: Vec<_> = t
        .iter()
        .map(|t| {
            (
                t.route_map.as_str(),
                t.tag.as_deref().unwrap(),
                t.level.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("ROUTELB-ISIS-L1", "core", "level-1"),
            ("ROUTELB-ISIS-L1", "edge", "level-1"),
            ("ROUTELB-ISIS-L2", "core", "level-2"),
            ("ROUTELB-ISIS-L2", "edge", "level-2"),
        ]
    );
    let sources = |t: &Target| {
        t.entries
            .iter()
            .map(|e| (e.seq, e.source.clone(), e.metric))
            .collect::<Vec<_>>()
    };
    let policy_entries =
        |name: &str, metric, seqs: [u32; 2]| seqs.map(|s| (s, format!("policy {name}"), metric));
    // Level 2 is the default level; each level numbers its entries from 50000.
    let l1: Vec<_> = [
        policy_entries("both", Some(12), [50000, 50010]),
        policy_entries("l1", Some(1), [50020, 50030]),
    ]
    .concat();
    let l2: Vec<_> = [
        policy_entries("both", Some(12), [50000, 50010]),
        policy_entries("plain", None, [50020, 50030]),
    ]
    .concat();
    assert_eq!(sources(&t[0]), l1);
    assert_eq!(sources(&t[2]), l2);
    assert_eq!(t[0].entries, t[1].entries);
    assert!(t.iter().all(|t| t.v4 && t.v6));
}

#[test]
fn isis_without_an_instance_is_reported_once_per_policy() {
    let policies = [
        policy(
            "a",
            json!({"protocols": ["isis"], "isis": {"level": "level-1-2"}}),
        ),
        policy("b", json!({"protocols": ["isis"]})),
    ];
    let (t, problems) = isis(&policies, &[]);
    assert!(t.is_empty());
    assert_eq!(what_is_missing(&problems), [("a", "IS-IS"), ("b", "IS-IS")]);
}
