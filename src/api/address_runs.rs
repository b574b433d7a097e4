//! NodeState's address lists (pure): a node holding every address of a routed pool writes its
//! contiguous runs, `203.0.113.1-203.0.113.250/32`, not each address, so that its NodeState
//! stays small at 50,000 Services (a list of each address was 781 KiB, and etcd refuses an
//! object over 1.5 MiB). A lone address keeps its old form, `203.0.113.5/32`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `(first, last, prefix length)`, inclusive, one family.
pub type AddressRun = (IpAddr, IpAddr, u8);

/// The runs of `held`, sorted addresses with their prefix lengths: consecutive addresses of
/// one family and one length make one run.
pub fn encode<'a>(held: impl IntoIterator<Item = &'a (IpAddr, u8)>) -> Vec<String> {
    let mut runs: Vec<AddressRun> = Vec::new();
    for &(ip, len) in held {
        match runs.last_mut() {
            Some((_, last, l)) if *l == len && successor(*last) == Some(ip) => *last = ip,
            _ => runs.push((ip, ip, len)),
        }
    }
    runs.iter().map(|r| format(*r)).collect()
}

fn format((first, last, len): AddressRun) -> String {
    if first == last {
        format!("{first}/{len}")
    } else {
        format!("{first}-{last}/{len}")
    }
}

/// One entry of the list; `None` when it is not one (written by something else).
pub fn decode(entry: &str) -> Option<AddressRun> {
    let (span, len) = entry.split_once('/')?;
    let len: u8 = len.parse().ok()?;
    let (first, last) = match span.split_once('-') {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => {
            let ip: IpAddr = span.parse().ok()?;
            (ip, ip)
        }
    };
    (first.is_ipv4() == last.is_ipv4() && first <= last).then_some((first, last, len))
}

/// Whether an entry of the list holds `ip`.
pub fn contains(entry: &str, ip: IpAddr) -> bool {
    decode(entry).is_some_and(|(first, last, _)| first <= ip && ip <= last)
}

/// Every address an entry holds, in order, at most `limit` (a run of a /64 is not listed).
pub fn addresses(entry: &str, limit: usize) -> Vec<(IpAddr, u8)> {
    let Some((first, last, len)) = decode(entry) else {
        return Vec::new();
    };
    std::iter::successors(Some(first), |ip| successor(*ip).filter(|n| *n <= last))
        .take(limit)
        .map(|ip| (ip, len))
        .collect()
}

/// How many addresses an entry holds.
pub fn count(entry: &str) -> u128 {
    decode(entry).map_or(0, |(first, last, _)| number(last) - number(first) + 1)
}

fn number(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn successor(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(a) => u32::from(a)
            .checked_add(1)
            .map(|n| IpAddr::V4(Ipv4Addr::from(n))),
        IpAddr::V6(a) => u128::from(a)
            .checked_add(1)
            .map(|n| IpAddr::V6(Ipv6Addr::from(n))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn held(v: &[(&str, u8)]) -> BTreeSet<(IpAddr, u8)> {
        v.iter().map(|(ip, l)| (ip.parse().unwrap(), *l)).collect()
    }

    #[test]
    fn contiguous_addresses_of_one_length_make_one_run() {
        let h = held(&[
            ("203.0.113.1", 32),
            ("203.0.113.2", 32),
            ("203.0.113.3", 32),
            ("203.0.113.5", 32),
            ("203.0.113.6", 24),
            ("2001:db8::ffff", 128),
            ("2001:db8::1:0", 128),
        ]);
        assert_eq!(
            encode(&h),
            [
                "203.0.113.1-203.0.113.3/32",
                "203.0.113.5/32",
                "203.0.113.6/24",
                "2001:db8::ffff-2001:db8::1:0/128",
            ]
        );
    }

    #[test]
    fn entries_that_are_not_runs_are_refused() {
        for bad in [
            "203.0.113.9-203.0.113.1/32",
            "203.0.113.1-2001:db8::1/32",
            "203.0.113.1",
            "x/32",
            "203.0.113.1/x",
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        assert_eq!(count("10.0.0.0-10.0.255.255/32"), 65536);
        assert_eq!(addresses("10.0.0.0-10.0.255.255/32", 2).len(), 2);
    }

    proptest! {
        /// The runs hold exactly the addresses encoded: decoding them gives the set back, and
        /// no two runs could have been one.
        #[test]
        fn runs_hold_exactly_the_held_addresses(
            v4 in proptest::collection::btree_set((0u32..64, prop::sample::select(vec![24u8, 32])), 0..40),
            v6 in proptest::collection::btree_set(0u128..64, 0..40),
        ) {
            let mut h: BTreeSet<(IpAddr, u8)> = v4
                .iter()
                .map(|(n, l)| (IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + n)), *l))
                .collect();
            h.extend(v6.iter().map(|n| (IpAddr::V6(Ipv6Addr::from((0x2001_0db8u128 << 96) + n)), 128)));
            let runs = encode(&h);
            let back: BTreeSet<(IpAddr, u8)> =
                runs.iter().flat_map(|r| addresses(r, usize::MAX)).collect();
            prop_assert_eq!(&back, &h);
            prop_assert_eq!(runs.iter().map(|r| count(r)).sum::<u128>(), h.len() as u128);
            for (ip, _) in &h {
                prop_assert!(runs.iter().any(|r| contains(r, *ip)));
            }
            let decoded: Vec<AddressRun> = runs.iter().map(|r| decode(r).unwrap()).collect();
            for w in decoded.windows(2) {
                prop_assert!(!(w[0].2 == w[1].2 && successor(w[0].1) == Some(w[1].0)));
            }
        }
    }
}
