//! Prefix lists: a pool's blocks or a service's addresses as prefix matches, named for FRR and
//! BIRD, with sequence numbers that no other prefix can change, split when long.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::ops::Range;

use sha2::{Digest, Sha256};

use super::model::{PrefixList, PrefixMatch};
use super::policy::{Resolved, RoutedPool, Rule};
use crate::api::Aggregation;
use crate::ipam::{Addr, Family, Pool, to_cidrs};

impl PrefixMatch {
    pub(super) fn new(prefix: String, len: u8, min_len: u8, max_len: u8) -> PrefixMatch {
        PrefixMatch {
            prefix,
            len,
            min_len,
            max_len,
            seq: 0,
        }
    }

    /// A hash of what the entry matches: stable across runs and versions (FNV-1a of
    /// `"<prefix> <min_len> <max_len>"`, hashed as written, without building the text).
    pub(super) fn stable_hash(&self) -> u64 {
        use std::fmt::Write;
        let mut h = Fnv1a::default();
        write!(h, "{} {} {}", self.prefix, self.min_len, self.max_len)
            .expect("hashing never fails");
        h.0
    }
}

/// FNV-1a over what is written to it.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl std::fmt::Write for Fnv1a {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 = s.bytes().fold(self.0, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Ok(())
    }
}

/// FNV-1a of `key`: stable across runs, platforms and versions, unlike `std`'s hasher.
pub(super) fn fnv1a(key: &str) -> u64 {
    let mut h = Fnv1a::default();
    std::fmt::Write::write_str(&mut h, key).expect("hashing never fails");
    h.0
}

/// Pool prefix lists longer than this are split into several, by a hash of each prefix: FRR
/// checks every entry of a list for a duplicate each time one is added, so long lists make
/// loads slow. Loading 5,000 entries on the test machine: one list, 150 s of daemon CPU;
/// 32 lists of 156, 5.3 s; 79 lists of 64, 2.5 s; a single added line costs the same (20–28
/// ms, FRR's commit) from 32 lists up.
pub const LIST_SPLIT_ABOVE: usize = 64;

/// Gives every match its stable sequence number ([`PrefixMatch::seq`]); the rare collision
/// takes the next free number, in list order.
pub(super) fn number(matches: &mut [PrefixMatch]) {
    for m in matches.iter_mut() {
        m.seq = seq_of(m.stable_hash());
    }
    settle_collisions(matches);
}

/// The sequence number a match with this [`PrefixMatch::stable_hash`] asks for.
fn seq_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

/// Moves each match whose asked-for number is taken (or 0: FRR's numbers run from 1 to
/// 4294967295) to the next free one, in list order.
fn settle_collisions(matches: &mut [PrefixMatch]) {
    let mut used = BTreeSet::new();
    for m in matches.iter_mut() {
        let mut seq = m.seq;
        while seq == 0 || !used.insert(seq) {
            seq = seq.wrapping_add(1);
        }
        m.seq = seq;
    }
}

/// A pool's list, numbered, and split by prefix hash into a power-of-two number of lists when
/// a family has more than [`LIST_SPLIT_ABOVE`] entries. A power of two: when the pool grows
/// past the next one, each list splits in two and only half its entries move.
pub(super) fn split(list: PrefixList) -> Vec<PrefixList> {
    let largest = list.v4.len().max(list.v6.len());
    let parts = if largest <= LIST_SPLIT_ABOVE {
        1
    } else {
        largest.div_ceil(LIST_SPLIT_ABOVE).next_power_of_two()
    };
    // `_` cannot occur in a Kubernetes name: no other pool's list is called this.
    let part_name = |base: &str, i: usize| match parts {
        1 => base.to_string(),
        _ => format!("{base}_{}", i + 1),
    };
    let mut out: Vec<PrefixList> = (0..parts)
        .map(|i| PrefixList {
            frr_name: part_name(&list.frr_name, i),
            bird_name: part_name(&list.bird_name, i),
            source: match parts {
                1 => list.source.clone(),
                _ => format!("{} (part {} of {parts})", list.source, i + 1),
            },
            v4: vec![],
            v6: vec![],
        })
        .collect();
    // One hash per match gives both its part and the number it asks for.
    let place = |mut m: PrefixMatch| {
        let hash = m.stable_hash();
        m.seq = seq_of(hash);
        ((hash % parts as u64) as usize, m)
    };
    for (part, m) in list.v4.into_iter().map(place) {
        out[part].v4.push(m);
    }
    for (part, m) in list.v6.into_iter().map(place) {
        out[part].v6.push(m);
    }
    for part in &mut out {
        settle_collisions(&mut part.v4);
        settle_collisions(&mut part.v6);
    }
    if parts > 1 {
        out.retain(|p| !p.v4.is_empty() || !p.v6.is_empty());
    }
    out
}

/// BIRD's longest symbol (`SYM_MAX_LEN` in BIRD's conf.h): a longer one fails the whole
/// configuration ("Symbol too long"), so no change to any pool could apply.
pub const BIRD_SYMBOL_MAX: usize = 64;

/// Room left in an identifier for what splitting and templates append: `_<part>` (up to five
/// digits) and `_V4`/`_V6`.
const BIRD_SUFFIX_ROOM: usize = 9;

fn short_hash(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    format!("{:02x}{:02x}{:02x}", d[0], d[1], d[2])
}

/// A BIRD identifier from a Kubernetes name: `[A-Za-z0-9_]` only, made unique by a hash of the
/// original (so `a-b` and `a.b` do not collide), and short enough for BIRD with any suffix: a
/// name too long to fit is cut, and the cut one carries a longer hash of the whole name.
pub(super) fn bird_ident(prefix: &str, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let budget = BIRD_SYMBOL_MAX - BIRD_SUFFIX_ROOM;
    let whole = format!("{prefix}_{clean}_{}", short_hash(name));
    if whole.len() <= budget {
        return whole;
    }
    let d = Sha256::digest(name.as_bytes());
    let long_hash: String = d.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let keep = budget - prefix.len() - 2 - long_hash.len();
    format!("{prefix}_{}_{long_hash}", &clean[..keep])
}

/// The prefix matches (IPv4, IPv6) for a pool's blocks, unnumbered. A valid pool's aggregate
/// is never shorter than its blocks ([`Pool::from_spec`] refuses that), so every match stays
/// inside the pool.
pub(super) fn matches_of(
    pool: &Pool,
    agg: Option<&Aggregation>,
) -> (Vec<PrefixMatch>, Vec<PrefixMatch>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    // Blocks of two ranges can be the same prefix (a pool's ranges are merged when parsed,
    // but a Pool can be built otherwise); a set keeps the check linear in the pool.
    let mut seen = std::collections::HashSet::new();
    for r in &pool.ranges {
        let (bits, agg_len) = match r.family {
            Family::V4 => (32u8, agg.and_then(|a| a.ipv4).unwrap_or(32)),
            Family::V6 => (128u8, agg.and_then(|a| a.ipv6).unwrap_or(128)),
        };
        let list = if r.family == Family::V4 {
            &mut v4
        } else {
            &mut v6
        };
        for (value, len) in to_cidrs(r) {
            let prefix = IpAddr::from(Addr {
                family: r.family,
                value,
            });
            // Host routes: anything inside the block, down to single addresses. Aggregated: the
            // agent puts addresses on with the aggregate's length, so routes are exactly
            // `agg_len` long within the block.
            let (min_len, max_len) = if agg_len >= bits {
                (len, bits)
            } else {
                (agg_len.max(len), agg_len.max(len))
            };
            if seen.insert((prefix, len, min_len, max_len)) {
                list.push(PrefixMatch::new(
                    format!("{prefix}/{len}"),
                    len,
                    min_len,
                    max_len,
                ));
            }
        }
    }
    (v4, v6)
}

/// A pool's prefix lists (several when it is large), named after it.
fn pool_list(pool: &RoutedPool) -> Vec<PrefixList> {
    let name = &pool.name;
    let (v4, v6) = matches_of(&pool.parsed, pool.object.spec.aggregation.as_ref());
    split(PrefixList {
        frr_name: format!("ROUTELB-POOL-{name}"),
        bird_name: bird_ident("ROUTELB_POOL", name),
        source: format!("pool {name}"),
        v4,
        v6,
    })
}

/// The host routes of one service's addresses. `ns` must be a DNS-1123 label: with no dot in
/// it, `<ns>.<name>` names one service only.
pub(super) fn service_list(ns: &str, name: &str, addresses: &[IpAddr]) -> PrefixList {
    host_routes(
        format!("ROUTELB-SVC-{ns}.{name}"),
        bird_ident("ROUTELB_SVC", &format!("{ns}.{name}")),
        format!("service {ns}/{name}"),
        addresses,
    )
}

/// A list of `addresses` as host routes, numbered.
pub(super) fn host_routes<'a>(
    frr_name: String,
    bird_name: String,
    source: String,
    addresses: impl IntoIterator<Item = &'a IpAddr> + Clone,
) -> PrefixList {
    let host = |ip: &IpAddr| {
        let len = if ip.is_ipv4() { 32 } else { 128 };
        PrefixMatch::new(format!("{ip}/{len}"), len, len, len)
    };
    let of = |v4: bool| -> Vec<PrefixMatch> {
        let mut m: Vec<PrefixMatch> = addresses
            .clone()
            .into_iter()
            .filter(|a| a.is_ipv4() == v4)
            .map(host)
            .collect();
        number(&mut m);
        m
    };
    PrefixList {
        frr_name,
        bird_name,
        source,
        v4: of(true),
        v6: of(false),
    }
}

/// The lists of every exported pool, in the order rules first name the pools (protocol, then
/// policy, then pool name), each pool's lists side by side.
pub(super) struct PoolLists {
    lists: Vec<PrefixList>,
    of_pool: BTreeMap<usize, Range<usize>>,
}

impl PoolLists {
    /// The lists of pool `pool` (an index into [`Resolved::pools`]); empty if no rule exports it.
    pub(super) fn of(&self, pool: usize) -> &[PrefixList] {
        self.of_pool
            .get(&pool)
            .map_or(&[], |r| &self.lists[r.clone()])
    }

    /// The lists `rule` exports, pool by pool.
    pub(super) fn of_rule<'s>(&'s self, rule: &'s Rule) -> impl Iterator<Item = &'s PrefixList> {
        rule.pools.iter().flat_map(|&p| self.of(p))
    }

    pub(super) fn into_lists(self) -> Vec<PrefixList> {
        self.lists
    }
}

pub(super) fn pool_lists(resolved: &Resolved) -> PoolLists {
    let mut out = PoolLists {
        lists: Vec::new(),
        of_pool: BTreeMap::new(),
    };
    for rule in resolved.rules.values().flatten() {
        for &p in &rule.pools {
            if out.of_pool.contains_key(&p) {
                continue;
            }
            let start = out.lists.len();
            out.lists.extend(pool_list(&resolved.pools[p]));
            out.of_pool.insert(p, start..out.lists.len());
        }
    }
    out
}
