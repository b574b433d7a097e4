//! Tests of [`crate::render::lists`]: matches, sequence numbers, splitting, names.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::json;

use super::{aggregated, policy, pool};
use crate::render::lists::{
    BIRD_SYMBOL_MAX, LIST_SPLIT_ABOVE, bird_ident, matches_of, number, pool_lists, service_list,
    split,
};
use crate::render::model::{PrefixList, PrefixMatch};
use crate::render::policy::resolve;

fn host(i: u32) -> PrefixMatch {
    let [_, a, b, c] = (0x0a00_0000 + i).to_be_bytes();
    PrefixMatch::new(format!("10.{a}.{b}.{c}/32"), 32, 32, 32)
}

fn hosts(n: usize) -> Vec<PrefixMatch> {
    (0..n)
        .map(|i| PrefixMatch::new(format!("10.{}.{}.1/32", i / 250, i % 250), 32, 32, 32))
        .collect()
}

fn list(v4: Vec<PrefixMatch>) -> PrefixList {
    PrefixList {
        frr_name: "ROUTELB-POOL-big".into(),
        bird_name: "ROUTELB_POOL_big_abcdef".into(),
        source: "pool big".into(),
        v4,
        v6: vec![],
    }
}

/// What FRR gets: one line per entry, by list, sequence number and prefix.
fn lines(parts: &[PrefixList]) -> BTreeSet<String> {
    parts
        .iter()
        .flat_map(|p| {
            p.v4.iter()
                .map(|m| format!("{} {} {}", p.frr_name, m.seq, m.prefix))
        })
        .collect()
}

/// (prefix, min, max) of each match.
fn spans(ms: &[PrefixMatch]) -> Vec<(&str, u8, u8)> {
    ms.iter()
        .map(|m| (m.prefix.as_str(), m.min_len, m.max_len))
        .collect()
}

#[test]
fn ranges_become_the_fewest_blocks_and_host_routes_match_down_to_one_address() {
    let p = crate::ipam::Pool::from_spec(
        "p",
        &pool("p", &["10.0.0.1-10.0.0.6", "2001:db8::/126"]).spec,
    )
    .unwrap();
    let (v4, v6) = matches_of(&p, None);
    assert_eq!(
        spans(&v4),
        [
            ("10.0.0.1/32", 32, 32),
            ("10.0.0.2/31", 31, 32),
            ("10.0.0.4/31", 31, 32),
            ("10.0.0.6/32", 32, 32)
        ]
    );
    assert_eq!(spans(&v6), [("2001:db8::/126", 126, 128)]);
    assert!(v4.iter().chain(&v6).all(|m| m.seq == 0), "numbered later");
}

#[test]
fn aggregated_pools_match_exactly_the_aggregate_length() {
    let spec = aggregated(pool("p", &["10.0.0.0/24", "10.0.1.0/26"]), 26).spec;
    let p = crate::ipam::Pool::from_spec("p", &spec).unwrap();
    let (v4, _) = matches_of(&p, spec.aggregation.as_ref());
    assert_eq!(
        spans(&v4),
        [("10.0.0.0/24", 26, 26), ("10.0.1.0/26", 26, 26)]
    );
}

#[test]
fn one_more_prefix_is_one_more_line() {
    let before = split(list(hosts(60)));
    let mut more = hosts(60);
    more.insert(3, PrefixMatch::new("10.99.0.1/32".into(), 32, 32, 32));
    let after = split(list(more));
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].frr_name, "ROUTELB-POOL-big");
    let (b, a) = (lines(&before), lines(&after));
    assert_eq!(a.difference(&b).count(), 1, "only the new prefix is new");
    assert_eq!(b.difference(&a).count(), 0, "nothing else moved");
    let seqs: BTreeSet<u32> = after[0].v4.iter().map(|m| m.seq).collect();
    assert_eq!(seqs.len(), 61, "sequence numbers are unique");
    assert!(!seqs.contains(&0));
}

#[test]
fn long_lists_split_in_a_power_of_two_by_prefix() {
    let parts = split(list(hosts(5000)));
    // 5,000 / 64 → 79 → 128 lists of about 39.
    assert_eq!(parts.len(), 128);
    assert!(parts.iter().all(|p| p.v4.len() <= LIST_SPLIT_ABOVE));
    assert_eq!(parts.iter().map(|p| p.v4.len()).sum::<usize>(), 5000);
    assert_eq!(parts[0].frr_name, "ROUTELB-POOL-big_1");
    assert_eq!(parts[127].bird_name, "ROUTELB_POOL_big_abcdef_128");
    assert_eq!(parts[0].source, "pool big (part 1 of 128)");
    // A new prefix lands in one list and changes one line there.
    let mut more = hosts(5000);
    more.push(PrefixMatch::new("10.250.0.1/32".into(), 32, 32, 32));
    let after = split(list(more));
    assert_eq!(lines(&after).difference(&lines(&parts)).count(), 1);
    assert_eq!(lines(&parts).difference(&lines(&after)).count(), 0);
}

#[test]
fn colliding_sequence_numbers_take_the_next_free_one() {
    // The same match twice hashes to the same number: the second takes the next one.
    let mut ms = vec![host(1), host(1), host(2)];
    number(&mut ms);
    assert_eq!(ms[1].seq, ms[0].seq.wrapping_add(1));
    assert_ne!(ms[2].seq, ms[0].seq);
}

#[test]
fn bird_identifiers_are_unique_and_fit_with_any_suffix() {
    let (a, b) = (
        bird_ident("ROUTELB_POOL", "a-b"),
        bird_ident("ROUTELB_POOL", "a.b"),
    );
    assert!(a.starts_with("ROUTELB_POOL_a_b_") && b.starts_with("ROUTELB_POOL_a_b_"));
    assert_ne!(a, b, "the hash keeps names apart that cleaning merges");
    let long = "x".repeat(253);
    let cut = [
        bird_ident("ROUTELB_SVC", &long),
        bird_ident("ROUTELB_SVC", &format!("{long}y")),
    ];
    assert_ne!(cut[0], cut[1]);
    for id in cut.iter().chain([&a, &b]) {
        assert!(format!("{id}_12345_V6").len() <= BIRD_SYMBOL_MAX, "{id}");
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    }
}

#[test]
fn a_service_list_holds_its_host_routes_numbered() {
    let addrs = ["10.0.0.5".parse().unwrap(), "2001:db8::5".parse().unwrap()];
    let l = service_list("prod", "api", &addrs);
    assert_eq!(l.frr_name, "ROUTELB-SVC-prod.api");
    assert!(l.bird_name.starts_with("ROUTELB_SVC_prod_api_"));
    assert_eq!(l.source, "service prod/api");
    assert_eq!(spans(&l.v4), [("10.0.0.5/32", 32, 32)]);
    assert_eq!(spans(&l.v6), [("2001:db8::5/128", 128, 128)]);
    assert!(l.v4[0].seq != 0 && l.v6[0].seq != 0);
}

#[test]
fn pool_lists_follow_the_rules_and_skip_pools_nobody_exports() {
    let pools = [
        pool("a", &["10.0.0.0/24"]),
        pool("b", &["10.1.0.0/24"]),
        pool("c", &["10.2.0.0/24"]),
    ];
    let policies = [
        policy(
            "ospf-a",
            json!({"protocols": ["ospf"], "poolSelector": {"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}}),
        ),
        policy(
            "bgp-b",
            json!({"protocols": ["bgp"], "poolSelector": {"matchLabels": {"never": "set"}}}),
        ),
    ];
    let r = resolve(&pools, &policies, None);
    let lists = pool_lists(&r);
    let rule = &r.rules(crate::api::Protocol::Ospf)[0];
    let exported: Vec<&str> = lists.of_rule(rule).map(|l| l.frr_name.as_str()).collect();
    assert_eq!(
        exported,
        ["ROUTELB-POOL-a", "ROUTELB-POOL-b", "ROUTELB-POOL-c"]
    );
    assert!(lists.of(7).is_empty());
    assert_eq!(lists.into_lists().len(), 3);
}

fn distinct_hosts() -> impl Strategy<Value = Vec<PrefixMatch>> {
    prop::collection::btree_set(0u32..1 << 20, 1..700)
        .prop_map(|set| set.into_iter().map(host).collect())
}

fn seq_of(parts: &[PrefixList]) -> Vec<(String, String, u32)> {
    let mut v: Vec<_> = parts
        .iter()
        .flat_map(|p| {
            p.v4.iter()
                .map(|m| (m.prefix.clone(), p.frr_name.clone(), m.seq))
        })
        .collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn numbers_are_unique_and_do_not_depend_on_order(ms in distinct_hosts(), seed in any::<u64>()) {
        // Without a collision of hashes; one is numbered in list order.
        let raw: BTreeSet<u64> = ms.iter().map(|m| m.stable_hash() >> 32).collect();
        prop_assume!(raw.len() == ms.len() && !raw.contains(&0));
        let parts = split(list(ms.clone()));
        for p in &parts {
            let seqs: BTreeSet<u32> = p.v4.iter().map(|m| m.seq).collect();
            prop_assert_eq!(seqs.len(), p.v4.len());
            prop_assert!(!seqs.contains(&0));
        }
        let mut reordered = ms;
        let turn = seed as usize % reordered.len();
        reordered.rotate_left(turn);
        reordered.reverse();
        prop_assert_eq!(seq_of(&parts), seq_of(&split(list(reordered))));
    }

    #[test]
    fn one_added_prefix_changes_one_line(ms in distinct_hosts(), extra in (1u32 << 20)..(1 << 21)) {
        let before = split(list(ms.clone()));
        let mut more = ms;
        more.push(host(extra));
        let after = split(list(more));
        let names = |p: &[PrefixList]| p.iter().map(|l| l.frr_name.clone()).collect::<Vec<_>>();
        // Unless the pool grows into more lists, which renames them all.
        prop_assume!(names(&before) == names(&after));
        prop_assert_eq!(lines(&after).difference(&lines(&before)).count(), 1);
        prop_assert_eq!(lines(&before).difference(&lines(&after)).count(), 0);
    }
}
