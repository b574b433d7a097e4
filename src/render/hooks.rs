//! Hooks into the base's own outbound route-maps (`spec.bgp.outboundRouteMaps`): for each
//! route-map a policy names, one permit entry per exported pool list and family, numbered
//! inside [`HOOK_SEQ`] by a hash of the list's name, so a pool that comes or goes adds or
//! removes its own entries and renumbers no other.

use std::collections::{BTreeMap, BTreeSet};

use super::lists::{PoolLists, fnv1a};
use super::model::{BaseRouteMap, HOOK_SEQ, HookEntry, Instances, Problem, RouteMapHook};
use super::policy::Rule;

/// What one route-map receives: (list name, family) → source, before numbering.
type Wanted = BTreeMap<(String, &'static str), String>;

/// The hooks the BGP `rules` ask for, into route-maps the base has; the others reported.
pub(super) fn hooks(
    rules: &[Rule],
    lists: &PoolLists,
    instances: &Instances,
    problems: &mut Vec<Problem>,
) -> Vec<RouteMapHook> {
    let mut wanted: BTreeMap<String, Wanted> = BTreeMap::new();
    for rule in rules {
        let Some(bgp) = &rule.policy.spec.bgp else {
            continue;
        };
        // Without its BGP instance a rule exports nothing (reported as InstanceMissing).
        if !instances.bgp.iter().any(|i| i.vrf == bgp.vrf) {
            continue;
        }
        let names: BTreeSet<&String> = bgp.outbound_route_maps.iter().collect();
        for name in names {
            let Some(base) = instances.route_maps.get(name) else {
                problems.push(missing(&rule.name, name));
                continue;
            };
            if let Some(p) = unusable(&rule.name, name, base) {
                let refused = p.reason == "RouteMapSeqConflict";
                problems.push(p);
                if refused {
                    continue;
                }
            }
            let into = wanted.entry(name.clone()).or_default();
            for list in lists.of_rule(rule) {
                for (family, has) in [("V4", !list.v4.is_empty()), ("V6", !list.v6.is_empty())] {
                    if has {
                        into.entry((list.frr_name.clone(), family))
                            .or_insert_with(|| list.source.clone());
                    }
                }
            }
        }
    }
    wanted
        .into_iter()
        .filter(|(_, w)| !w.is_empty())
        .map(|(route_map, w)| number(route_map, w, problems))
        .collect()
}

fn missing(policy: &str, name: &str) -> Problem {
    Problem::hook(
        policy,
        "RouteMapMissing",
        format!(
            "spec.bgp.outboundRouteMaps names route-map {name}, which the daemon's configuration does not have; routelb creates none (a name the base does not have is most likely a typo) and adds its entries once the base has it; BIRD has no route-maps: call routelb_export_bgp() from the export filter instead"
        ),
    )
}

/// Why routelb's entries in `base` would not work as asked: base entries in the reserved
/// range (refused: routelb would take them over), or a catch-all deny before it (reported,
/// still hooked: the team may move it).
fn unusable(policy: &str, name: &str, base: &BaseRouteMap) -> Option<Problem> {
    let (first, last) = (HOOK_SEQ.start(), HOOK_SEQ.end());
    if let Some(seq) = base.in_reserved.first() {
        return Some(Problem::hook(
            policy,
            "RouteMapSeqConflict",
            format!(
                "route-map {name} has its own entry {seq} in {first}-{last}, the sequence numbers routelb reserves for its entries; renumber it and routelb hooks in"
            ),
        ));
    }
    match base.catch_all_deny {
        Some(seq) if seq < *first => Some(Problem::hook(
            policy,
            "RouteMapShadowed",
            format!(
                "route-map {name} denies every route at entry {seq}, before routelb's entries at {first}-{last}: the pools are not sent; move that deny above {last}"
            ),
        )),
        _ => None,
    }
}

/// Numbers one route-map's entries: each at the slot a hash of its list and family picks in
/// [`HOOK_SEQ`], the rare collision taking the next free slot (in name order, so the same
/// lists always get the same numbers).
fn number(route_map: String, wanted: Wanted, problems: &mut Vec<Problem>) -> RouteMapHook {
    let (first, last) = (*HOOK_SEQ.start(), *HOOK_SEQ.end());
    let width = last - first + 1;
    let total = wanted.len();
    let mut used = BTreeSet::new();
    let mut entries = Vec::new();
    for ((frr_list, family), source) in wanted {
        if used.len() as u32 == width {
            problems.push(Problem {
                policy: None,
                reason: "RouteMapHookFull",
                message: format!(
                    "route-map {route_map} would need {total} routelb entries, but {first}-{last} holds {width}: the remaining pool lists are not hooked"
                ),
            });
            break;
        }
        let mut slot = (fnv1a(&format!("{frr_list}-{family}")) % u64::from(width)) as u32;
        while !used.insert(slot) {
            slot = (slot + 1) % width;
        }
        entries.push(HookEntry {
            seq: first + slot,
            family: family.to_string(),
            frr_list,
            source,
        });
    }
    entries.sort_by_key(|e| e.seq);
    RouteMapHook { route_map, entries }
}
