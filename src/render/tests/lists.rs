//! Tests of [`crate::render::lists`]: sequence numbers and splitting.

use std::collections::BTreeSet;

use crate::render::lists::{LIST_SPLIT_ABOVE, split};
use crate::render::model::{PrefixList, PrefixMatch};

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

fn lines(parts: &[PrefixList]) -> BTreeSet<String> {
    parts
        .iter()
        .flat_map(|p| {
            p.v4.iter()
                .map(|m| format!("{} {} {}", p.frr_name, m.seq, m.prefix))
        })
        .collect()
}

#[test]
fn one_more_prefix_is_one_more_line() {
    let before = split(list(hosts(100)));
    let mut more = hosts(100);
    more.insert(3, PrefixMatch::new("10.99.0.1/32".into(), 32, 32, 32));
    let after = split(list(more));
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].frr_name, "ROUTELB-POOL-big");
    let (b, a) = (lines(&before), lines(&after));
    assert_eq!(a.difference(&b).count(), 1, "only the new prefix is new");
    assert_eq!(b.difference(&a).count(), 0, "nothing else moved");
    let seqs: BTreeSet<u32> = after[0].v4.iter().map(|m| m.seq).collect();
    assert_eq!(seqs.len(), 101, "sequence numbers are unique");
    assert!(!seqs.contains(&0));
}

#[test]
fn long_lists_split_in_a_power_of_two_by_prefix() {
    let parts = split(list(hosts(5000)));
    // 5,000 / 256 → 20 → 32 lists of about 156.
    assert_eq!(parts.len(), 32);
    assert!(parts.iter().all(|p| p.v4.len() <= LIST_SPLIT_ABOVE));
    assert_eq!(parts.iter().map(|p| p.v4.len()).sum::<usize>(), 5000);
    assert_eq!(parts[0].frr_name, "ROUTELB-POOL-big_1");
    assert_eq!(parts[31].bird_name, "ROUTELB_POOL_big_abcdef_32");
    assert_eq!(parts[0].source, "pool big (part 1 of 32)");
    // A new prefix lands in one list and changes one line there.
    let mut more = hosts(5000);
    more.push(PrefixMatch::new("10.250.0.1/32".into(), 32, 32, 32));
    let after = split(list(more));
    assert_eq!(lines(&after).difference(&lines(&parts)).count(), 1);
    assert_eq!(lines(&parts).difference(&lines(&after)).count(), 0);
}
