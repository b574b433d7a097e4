//! IGP targets: OSPF (v2 for IPv4, v3 for IPv6), IS-IS (per instance and level) and RIP (RIP
//! and RIPng). Their entries carry only a metric (and OSPF's metric type): BGP attributes do
//! not apply to them.

use super::lists::PoolLists;
use super::model::{
    Entry, Instances, Problem, RULE_SEQ_START, SERVICE_SEQ_START, Target, families,
};
use super::policy::Rule;
use super::services::ServiceList;
use crate::api::{IsisLevel, Protocol, RoutingPolicySpec};

/// What the IGP targets are built from: one protocol's rules, the pool lists, and the
/// services with entries of their own.
pub(super) struct IgpInput<'a> {
    pub rules: &'a [Rule<'a>],
    pub lists: &'a PoolLists,
    pub services: &'a [ServiceList],
}

/// The entries of the rules `chosen` (indexes into `rules`): the services' own first, from
/// [`SERVICE_SEQ_START`], then one per list the rules export, from [`RULE_SEQ_START`]. `set`
/// adds the protocol's attributes from the policy, then a service's granted metric replaces
/// the policy's.
fn entries(
    input: &IgpInput,
    protocol: Protocol,
    chosen: &[usize],
    set: impl Fn(&mut Entry, &RoutingPolicySpec),
) -> Vec<Entry> {
    let rules = input.rules;
    let own = input
        .services
        .iter()
        .flat_map(|s| s.of(protocol).map(move |e| (s, e)))
        .filter(|(_, e)| chosen.contains(&e.rule));
    let services = (SERVICE_SEQ_START..)
        .step_by(10)
        .zip(own)
        .map(|(seq, (s, e))| {
            let rule = &rules[e.rule];
            let source = format!("{} (policy {})", s.list.source, rule.name);
            let mut entry = Entry::new(&s.list, seq, source);
            set(&mut entry, &rule.policy.spec);
            entry.metric = e.accepted.metric.or(entry.metric);
            entry
        });
    let exported = chosen
        .iter()
        .flat_map(|&i| input.lists.of_rule(&rules[i]).map(move |l| (&rules[i], l)));
    let pools = (RULE_SEQ_START..)
        .step_by(10)
        .zip(exported)
        .map(|(seq, (rule, list))| {
            let mut e = Entry::new(list, seq, format!("policy {}", rule.name));
            set(&mut e, &rule.policy.spec);
            e
        });
    services.chain(pools).collect()
}

/// One target for OSPFv2 (the IPv4 side) and OSPFv3 (the IPv6 side).
pub(super) fn ospf(
    input: &IgpInput,
    instances: &Instances,
    problems: &mut Vec<Problem>,
) -> Option<Target> {
    let rules = input.rules;
    let all: Vec<usize> = (0..rules.len()).collect();
    let entries = entries(input, Protocol::Ospf, &all, |e, spec| {
        e.metric = spec.ospf.as_ref().and_then(|o| o.metric);
        e.metric_type = spec.ospf.as_ref().and_then(|o| o.metric_type);
    });
    dual_family_target(
        "ROUTELB-OSPF",
        entries,
        (instances.ospf, "OSPFv2 (IPv4)"),
        (instances.ospf6, "OSPFv3 (IPv6)"),
        &mut |what| missing(problems, rules, what),
    )
}

/// One target for RIP (the IPv4 side) and RIPng (the IPv6 side).
pub(super) fn rip(
    input: &IgpInput,
    instances: &Instances,
    problems: &mut Vec<Problem>,
) -> Option<Target> {
    let rules = input.rules;
    let all: Vec<usize> = (0..rules.len()).collect();
    let entries = entries(input, Protocol::Rip, &all, |e, spec| {
        e.metric = spec.rip.as_ref().and_then(|r| r.metric).map(u32::from);
    });
    dual_family_target(
        "ROUTELB-RIP",
        entries,
        (instances.rip, "RIP (IPv4)"),
        (instances.ripng, "RIPng (IPv6)"),
        &mut |what| missing(problems, rules, what),
    )
}

/// One target per IS-IS instance (`tags`) and level some rule exports into: level 1 for all
/// instances, then level 2.
pub(super) fn isis(input: &IgpInput, tags: &[String], problems: &mut Vec<Problem>) -> Vec<Target> {
    let rules = input.rules;
    if tags.is_empty() {
        missing(problems, rules, "IS-IS");
    }
    let mut out = Vec::new();
    for (level, name, suffix) in [
        (IsisLevel::Level1, "level-1", "L1"),
        (IsisLevel::Level2, "level-2", "L2"),
    ] {
        let at_level: Vec<usize> = (0..rules.len())
            .filter(|&i| {
                let r = &rules[i];
                let l = r.policy.spec.isis.as_ref().map(|i| i.level);
                let l = l.unwrap_or_default();
                l == level || l == IsisLevel::Level12
            })
            .collect();
        if at_level.is_empty() {
            continue;
        }
        let entries = entries(input, Protocol::Isis, &at_level, |e, spec| {
            e.metric = spec.isis.as_ref().and_then(|i| i.metric);
        });
        let (v4, v6) = families(&entries);
        out.extend(tags.iter().map(|tag| Target {
            route_map: format!("ROUTELB-ISIS-{suffix}"),
            asn: None,
            vrf: None,
            tag: Some(tag.clone()),
            level: Some(name.into()),
            v4,
            v6,
            entries: entries.clone(),
            weights: vec![],
        }));
    }
    out
}

fn missing(problems: &mut Vec<Problem>, rules: &[Rule], what: &str) {
    problems.extend(
        rules
            .iter()
            .map(|r| Problem::instance_missing(&r.name, what)),
    );
}

/// A target for a protocol whose IPv4 and IPv6 sides are separate instances (OSPFv2/v3,
/// RIP/RIPng); a family whose instance is missing is reported through `missing` and left out.
fn dual_family_target(
    route_map: &str,
    entries: Vec<Entry>,
    (v4_instance, v4_name): (bool, &str),
    (v6_instance, v6_name): (bool, &str),
    missing: &mut dyn FnMut(&str),
) -> Option<Target> {
    let (v4, v6) = families(&entries);
    if v4 && !v4_instance {
        missing(v4_name);
    }
    if v6 && !v6_instance {
        missing(v6_name);
    }
    let (v4, v6) = (v4 && v4_instance, v6 && v6_instance);
    (v4 || v6).then(|| Target {
        route_map: route_map.into(),
        asn: None,
        vrf: None,
        tag: None,
        level: None,
        v4,
        v6,
        entries,
        weights: vec![],
    })
}
