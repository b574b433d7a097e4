//! BGP targets: one per VRF the rules name and the daemon has an instance for. Each lists the
//! per-service entries first, then every rule's pool lists, with the policy's BGP attributes.

use std::collections::BTreeMap;

use super::lists::PoolLists;
use super::model::{
    BgpInstance, CommunityData, Entry, LargeCommunityData, PrefixList, Problem, RULE_SEQ_START,
    SERVICE_SEQ_START, Target, families,
};
use super::policy::Rule;
use super::services::ServiceList;
use super::weights::Weight;
use crate::api::values::{Community, LargeCommunity};
use crate::api::{BgpAttributes, Protocol};
use crate::attributes::Accepted;

/// The BGP targets, by VRF (the default VRF first); rules naming a VRF without an instance
/// are reported, and export nothing. Each target gets the weights `weigh` finds for its rules
/// (indexes into `rules`), route-map and AS; the weights' prefix lists are returned beside.
pub(super) fn targets(
    rules: &[Rule],
    lists: &PoolLists,
    services: &[ServiceList],
    instances: &[BgpInstance],
    problems: &mut Vec<Problem>,
    weigh: impl Fn(&[usize], &str, u32) -> (Vec<Weight>, Vec<PrefixList>),
) -> (Vec<Target>, Vec<PrefixList>) {
    let mut by_vrf: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
    for (i, r) in rules.iter().enumerate() {
        by_vrf.entry(vrf_of(r)).or_default().push(i);
    }
    let mut out = Vec::new();
    let mut weight_lists = Vec::new();
    for (vrf, in_vrf) in by_vrf {
        let Some(instance) = instances.iter().find(|i| i.vrf == vrf) else {
            let what = match &vrf {
                Some(v) => format!("BGP in VRF {v}"),
                None => "BGP".into(),
            };
            problems.extend(
                in_vrf
                    .iter()
                    .map(|&i| Problem::instance_missing(&rules[i].name, &what)),
            );
            continue;
        };
        let mut entries = service_entries(rules, &in_vrf, services, instance.asn);
        entries.extend(pool_entries(rules, &in_vrf, lists, instance.asn));
        let mut target = target(instance, entries);
        let (weights, lists) = weigh(&in_vrf, &target.route_map, instance.asn);
        target.weights = weights;
        weight_lists.extend(lists);
        out.push(target);
    }
    (out, weight_lists)
}

fn vrf_of(rule: &Rule) -> Option<String> {
    rule.policy.spec.bgp.as_ref().and_then(|b| b.vrf.clone())
}

fn target(instance: &BgpInstance, entries: Vec<Entry>) -> Target {
    let (v4, v6) = families(&entries);
    Target {
        route_map: match &instance.vrf {
            Some(v) => format!("ROUTELB-BGP-{v}"),
            None => "ROUTELB-BGP".to_string(),
        },
        asn: Some(instance.asn),
        vrf: instance.vrf.clone(),
        tag: None,
        level: None,
        v4,
        v6,
        entries,
        weights: vec![],
    }
}

/// Entries for the services of the rules in `in_vrf` (indexes into `rules`), numbered from
/// [`SERVICE_SEQ_START`] in service order.
fn service_entries(
    rules: &[Rule],
    in_vrf: &[usize],
    services: &[ServiceList],
    asn: u32,
) -> Vec<Entry> {
    services
        .iter()
        .flat_map(|s| s.of(Protocol::Bgp).map(move |e| (s, e)))
        .filter(|(_, e)| in_vrf.contains(&e.rule))
        .enumerate()
        .map(|(n, (s, e))| {
            let rule = &rules[e.rule];
            let source = format!("{} (policy {})", s.list.source, rule.name);
            let seq = SERVICE_SEQ_START + 10 * n as u32;
            entry(rule, &s.list, seq, source, &e.accepted, asn)
        })
        .collect()
}

/// Entries for every list the rules in `in_vrf` export, numbered from [`RULE_SEQ_START`].
fn pool_entries(rules: &[Rule], in_vrf: &[usize], lists: &PoolLists, asn: u32) -> Vec<Entry> {
    let exported = in_vrf
        .iter()
        .flat_map(|&i| lists.of_rule(&rules[i]).map(move |l| (&rules[i], l)));
    (RULE_SEQ_START..)
        .step_by(10)
        .zip(exported)
        .map(|(seq, (rule, list))| {
            let source = format!("policy {}", rule.name);
            entry(rule, list, seq, source, &Accepted::default(), asn)
        })
        .collect()
}

/// An entry with the rule's BGP attributes and what a service was granted (`extra`): its
/// communities are added, its single values replace the policy's.
fn entry(
    rule: &Rule,
    list: &PrefixList,
    seq: u32,
    source: String,
    extra: &Accepted,
    asn: u32,
) -> Entry {
    let none = BgpAttributes::default();
    let bgp = rule.policy.spec.bgp.as_ref().unwrap_or(&none);
    // Valid policies' communities parse; the filter only keeps this total.
    let mut communities: Vec<Community> = bgp
        .communities
        .iter()
        .filter_map(|c| c.parse().ok())
        .chain(extra.communities.iter().copied())
        .collect();
    communities.sort();
    communities.dedup();
    let mut large: Vec<LargeCommunity> = bgp
        .large_communities
        .iter()
        .filter_map(|c| c.parse().ok())
        .chain(extra.large_communities.iter().copied())
        .collect();
    large.sort();
    large.dedup();
    Entry {
        communities: communities
            .iter()
            .map(|c| CommunityData {
                asn: c.0,
                value: c.1,
            })
            .collect(),
        large_communities: large
            .iter()
            .map(|c| LargeCommunityData {
                global: c.0,
                local1: c.1,
                local2: c.2,
            })
            .collect(),
        local_preference: extra.local_preference.or(bgp.local_preference),
        med: extra.med.or(bgp.med),
        prepend: vec![
            asn;
            extra
                .as_path_prepend
                .or(bgp.as_path_prepend)
                .map_or(0, usize::from)
        ],
        ..Entry::new(list, seq, source)
    }
}
