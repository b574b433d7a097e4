//! Weighted ECMP (`spec.bgp.weightedEcmp`): under `externalTrafficPolicy: Local` each node
//! attaches the BGP link-bandwidth extended community to a Service address, 1 Mbps per ready
//! local endpoint, so a router doing weighted multipath gives each node its share of the flows.
//!
//! Counts go into [`buckets`](bucket) first, so that endpoint churn on a large Service changes
//! the configuration only when the share moves by a step (at most 20 %), and addresses of one
//! weight share one prefix list: a node's weights are one route-map per instance and family
//! (`<route-map>-LBW-V4`), with an entry per weight in use, called first from routelb's
//! route-map. A weight change moves one address from one list to another.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::lists::{self, bird_ident};
use super::model::PrefixList;
use super::policy::{Resolved, Rule};
use crate::api::Protocol;
use crate::service::ServiceAddresses;

/// FRR's `set extcommunity bandwidth` takes 1-25600 (Mbps).
pub const MAX_MBPS: u32 = 25_600;

/// AS_TRANS: the link-bandwidth community has room for a 2-octet AS only (RFC 6793).
const AS_TRANS: u32 = 23_456;

/// The weight advertised for `endpoints` ready endpoints: exact up to 8, then the steps
/// 8, 10, 12, 14 × 2^k (each at most 25 % above the one before), rounded down; at most
/// [`MAX_MBPS`]. 0 for 0: such a node does not announce the address at all.
pub fn bucket(endpoints: u32) -> u32 {
    if endpoints <= 8 {
        return endpoints;
    }
    let n = u64::from(endpoints);
    let mut scale = 1;
    while n >= 16 * scale {
        scale *= 2;
    }
    let step = [14, 12, 10, 8]
        .into_iter()
        .find(|s| n >= s * scale)
        .unwrap_or(8);
    (step * scale).min(u64::from(MAX_MBPS)) as u32
}

/// The link-bandwidth extended community for `mbps` from `asn`, as BIRD's
/// `(generic, key, value)` wants it: type 0x00 (transitive: FRR and BIRD drop non-transitive
/// extended communities towards eBGP peers), subtype 0x04, the AS; then the bandwidth in bytes
/// per second as an IEEE-754 single.
pub fn bird_community(asn: u32, mbps: u32) -> (String, String) {
    let asn = if asn > u32::from(u16::MAX) {
        AS_TRANS
    } else {
        asn
    };
    let key = 0x0004_0000 | asn;
    let bytes_per_second = mbps as f32 * 125_000.0;
    (
        format!("0x{key:08X}"),
        format!("0x{:08X}", bytes_per_second.to_bits()),
    )
}

/// One weight in use on a BGP target: the addresses advertised with it.
#[derive(Clone, Debug, serde::Serialize, PartialEq)]
pub struct Weight {
    /// The bandwidth in Mbps, also the entry's sequence number.
    pub mbps: u32,
    pub frr_list: String,
    pub bird_list: String,
    pub has_v4: bool,
    pub has_v6: bool,
    /// BIRD: `bgp_ext_community.add((generic, bird_key, bird_value))`.
    pub bird_key: String,
    pub bird_value: String,
}

/// The weights of the rules in `in_vrf` (indexes into the BGP rules) with `weightedEcmp`,
/// for the BGP target whose route-map is `route_map`, and their lists. `endpoints`: the ready
/// endpoints on this node per address (addresses all of whose Services are Local).
pub(super) fn weights(
    resolved: &Resolved,
    in_vrf: &[usize],
    services: &[ServiceAddresses],
    endpoints: &BTreeMap<IpAddr, u32>,
    route_map: &str,
    asn: u32,
) -> (Vec<Weight>, Vec<PrefixList>) {
    let weighs = |r: &Rule| r.policy.spec.bgp.as_ref().is_some_and(|b| b.weighted_ecmp);
    let bgp = resolved.rules(Protocol::Bgp);
    if endpoints.is_empty() || !in_vrf.iter().any(|&i| weighs(&bgp[i])) {
        return (vec![], vec![]);
    }
    let mut by_weight: BTreeMap<u32, BTreeSet<IpAddr>> = BTreeMap::new();
    for svc in services {
        // The rule deciding the pool's attributes decides its weights, in this VRF.
        let decides = resolved
            .pools
            .iter()
            .position(|p| p.name == svc.pool)
            .and_then(|pool| resolved.rule_of(Protocol::Bgp, pool));
        if !decides.is_some_and(|(i, r)| in_vrf.contains(&i) && weighs(r)) {
            continue;
        }
        for a in &svc.addresses {
            let mbps = endpoints.get(a).copied().map_or(0, bucket);
            if mbps > 0 {
                by_weight.entry(mbps).or_default().insert(*a);
            }
        }
    }
    by_weight
        .into_iter()
        .map(|(mbps, addresses)| {
            let list = weight_list(route_map, mbps, &addresses);
            let (bird_key, bird_value) = bird_community(asn, mbps);
            let weight = Weight {
                mbps,
                frr_list: list.frr_name.clone(),
                bird_list: list.bird_name.clone(),
                has_v4: !list.v4.is_empty(),
                has_v6: !list.v6.is_empty(),
                bird_key,
                bird_value,
            };
            (weight, list)
        })
        .unzip()
}

fn weight_list(route_map: &str, mbps: u32, addresses: &BTreeSet<IpAddr>) -> PrefixList {
    lists::host_routes(
        format!("{route_map}-LBW-{mbps}"),
        bird_ident(
            "ROUTELB_LBW",
            &format!("{}-{mbps}", route_map.trim_start_matches("ROUTELB-")),
        ),
        format!("weight {mbps} (ready endpoints on this node)"),
        addresses,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_when_small_then_steps_of_at_most_a_quarter() {
        let got: Vec<u32> = (0..=40).map(bucket).collect();
        assert_eq!(&got[..=9], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 8]);
        assert_eq!(bucket(10), 10);
        assert_eq!(bucket(13), 12);
        assert_eq!(bucket(15), 14);
        assert_eq!(bucket(16), 16);
        assert_eq!(bucket(19), 16);
        assert_eq!(bucket(20), 20);
        assert_eq!(bucket(31), 28);
        assert_eq!(bucket(1000), 896);
        assert_eq!(bucket(u32::MAX), MAX_MBPS);
        // monotonic, never above the count, never more than 20 % below it
        let mut last = 0;
        for n in 1..100_000u32 {
            let b = bucket(n);
            assert!(b >= last && b <= n, "{n} -> {b}");
            assert!(b as f64 >= n as f64 * 0.8 || b == MAX_MBPS, "{n} -> {b}");
            last = b;
        }
        // few distinct values (8, then 4 per doubling up to the cap): the configuration
        // changes only at a step
        let distinct: BTreeSet<u32> = (1..100_000).map(bucket).collect();
        assert!(distinct.len() <= 8 + 4 * 12, "{}", distinct.len());
    }

    #[test]
    fn bird_community_matches_what_frr_reads_as_link_bandwidth() {
        // values FRR 8.4.4 showed as `LB:64512:<bytes/s>` in the lab
        assert_eq!(
            bird_community(64512, 1),
            ("0x0004FC00".into(), "0x47F42400".into())
        );
        assert_eq!(bird_community(64512, 3).1, "0x48B71B00");
        assert_eq!(bird_community(64512, 25_600).1, "0x4F3EBC20");
        assert_eq!(bird_community(4_200_000_000, 2).0, "0x00045BA0");
    }
}
