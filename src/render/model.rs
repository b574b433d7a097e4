//! The data contract between routelb and its templates (version [`CONTRACT`]): built purely from
//! pools, policies, services and the routing instances found in the daemon. Every value here is
//! typed and validated; names are built only from Kubernetes object names (DNS-1123, so no
//! spaces, quotes, `!`, `{` or newlines) or sanitized further, so nothing a user writes can add
//! a line to the daemon's configuration. docs/templates.md documents every field.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::api::values::{self, Community, CommunityRange, LargeCommunity};
use crate::api::{AddressPool, IsisLevel, PoolMode, Protocol, RoutingPolicy};
use crate::ipam::{Addr, Family, Pool, to_cidrs};
use crate::service::ServiceAddresses;

/// The version of the data structure templates receive. Templates declare the version they
/// were written for in their first line: `{#- routelb-contract: 1 -#}`.
pub const CONTRACT: u32 = 1;

/// Routing instances found in the daemon's running configuration (the network team's base).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Instances {
    pub bgp: Vec<BgpInstance>,
    pub ospf: bool,
    pub ospf6: bool,
    pub isis: Vec<String>,
    pub rip: bool,
    pub ripng: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpInstance {
    pub asn: u32,
    pub vrf: Option<String>,
}

pub struct RenderInput<'a> {
    pub node: Option<&'a str>,
    pub node_labels: &'a BTreeMap<String, String>,
    pub lb_interface: &'a str,
    pub pools: &'a [AddressPool],
    pub policies: &'a [RoutingPolicy],
    pub services: &'a [ServiceAddresses],
    pub instances: &'a Instances,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FragmentData {
    pub contract: u32,
    pub generator: String,
    /// The node this fragment is for; empty when rendered for any node.
    pub node: String,
    pub lb_interface: String,
    /// Prefix lists for pools and for services with their own attributes.
    pub prefix_lists: Vec<PrefixList>,
    /// One target per BGP instance (default VRF, or a named VRF) routelb exports through.
    pub bgp: Vec<Target>,
    pub ospf: Option<Target>,
    /// One target per IS-IS instance and level.
    pub isis: Vec<Target>,
    pub rip: Option<Target>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PrefixList {
    /// FRR name without the `-V4`/`-V6` suffix, e.g. `ROUTELB-POOL-web`.
    pub frr_name: String,
    /// BIRD identifier without the `_V4`/`_V6` suffix, e.g. `ROUTELB_POOL_web_1a2b3c`.
    pub bird_name: String,
    /// `pool web` or `service default/api`, for comments.
    pub source: String,
    pub v4: Vec<PrefixMatch>,
    pub v6: Vec<PrefixMatch>,
}

/// Matches routes within `prefix` whose length is between `min_len` and `max_len`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PrefixMatch {
    pub prefix: String,
    pub len: u8,
    pub min_len: u8,
    pub max_len: u8,
    /// A sequence number for the entry, unique in its list and derived from the match itself,
    /// so adding or removing one prefix changes one line of the list, not the numbering of
    /// every entry after it.
    pub seq: u32,
}

impl PrefixMatch {
    fn new(prefix: String, len: u8, min_len: u8, max_len: u8) -> PrefixMatch {
        PrefixMatch {
            prefix,
            len,
            min_len,
            max_len,
            seq: 0,
        }
    }

    /// A hash of what the entry matches: stable across runs and versions (FNV-1a).
    fn stable_hash(&self) -> u64 {
        let key = format!("{} {} {}", self.prefix, self.min_len, self.max_len);
        key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }
}

/// Pool prefix lists longer than this are split into several, by a hash of each prefix: FRR
/// checks every entry of a list for a duplicate each time one is added, so a list of
/// thousands makes each change slow (35 ms at 5,000 entries on the test machine).
pub const LIST_SPLIT_ABOVE: usize = 256;

/// Gives every match its stable sequence number ([`PrefixMatch::seq`]); the rare collision
/// takes the next free number, in list order.
fn number(matches: &mut [PrefixMatch]) {
    let mut used = BTreeSet::new();
    for m in matches.iter_mut() {
        // FRR's sequence numbers run from 1 to 4294967295.
        let mut seq = (m.stable_hash() >> 32) as u32;
        while seq == 0 || !used.insert(seq) {
            seq = seq.wrapping_add(1);
        }
        m.seq = seq;
    }
}

/// A pool's list, numbered, and split by prefix hash into a power-of-two number of lists when
/// a family has more than [`LIST_SPLIT_ABOVE`] entries. A power of two: when the pool grows
/// past the next one, each list splits in two and only half its entries move.
fn split(list: PrefixList) -> Vec<PrefixList> {
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
    let part_of = |m: &PrefixMatch| (m.stable_hash() % parts as u64) as usize;
    for m in list.v4 {
        out[part_of(&m)].v4.push(m);
    }
    for m in list.v6 {
        out[part_of(&m)].v6.push(m);
    }
    for part in &mut out {
        number(&mut part.v4);
        number(&mut part.v6);
    }
    if parts > 1 {
        out.retain(|p| !p.v4.is_empty() || !p.v6.is_empty());
    }
    out
}

/// A routing instance to hook into, with the route-map entries (FRR) or filter branches
/// (BIRD) that decide what it exports.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Target {
    /// FRR route-map name without the `-V4`/`-V6` suffix.
    pub route_map: String,
    /// BGP: the instance's AS number and VRF.
    pub asn: Option<u32>,
    pub vrf: Option<String>,
    /// IS-IS: the instance's area tag and the level (`level-1` or `level-2`).
    pub tag: Option<String>,
    pub level: Option<String>,
    /// Whether the instance carries IPv4 / IPv6 and any entry has prefixes of that family.
    pub v4: bool,
    pub v6: bool,
    pub entries: Vec<Entry>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Entry {
    pub seq: u32,
    pub frr_list: String,
    pub bird_list: String,
    pub has_v4: bool,
    pub has_v6: bool,
    /// `policy NAME` or `service NS/NAME (policy NAME)`.
    pub source: String,
    pub communities: Vec<CommunityData>,
    pub large_communities: Vec<LargeCommunityData>,
    pub local_preference: Option<u32>,
    pub med: Option<u32>,
    /// The AS numbers to prepend (the local AS, repeated).
    pub prepend: Vec<u32>,
    /// OSPF / IS-IS / RIP metric.
    pub metric: Option<u32>,
    /// OSPF external metric type, 1 or 2.
    pub metric_type: Option<u8>,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct CommunityData {
    pub asn: u16,
    pub value: u16,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct LargeCommunityData {
    pub global: u32,
    pub local1: u32,
    pub local2: u32,
}

/// Something a user should know: a policy that cannot be honoured, or a protocol without an
/// instance. `policy` names the RoutingPolicy concerned, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub policy: Option<String>,
    pub reason: &'static str,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(policy) = &self.policy {
            write!(f, "RoutingPolicy {policy}: ")?;
        }
        write!(f, "{}: {}", self.reason, self.message)
    }
}

pub struct Built {
    pub data: FragmentData,
    pub problems: Vec<Problem>,
    /// Routed pools some valid policy exports from this node: the pools whose addresses this
    /// node puts on the load-balancer interface.
    pub exported_pools: BTreeSet<String>,
}

const SERVICE_SEQ_START: u32 = 10;
const RULE_SEQ_START: u32 = 50_000;

fn short_hash(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    format!("{:02x}{:02x}{:02x}", d[0], d[1], d[2])
}

/// BIRD's longest symbol (`SYM_MAX_LEN` in BIRD's conf.h): a longer one fails the whole
/// configuration ("Symbol too long"), so no change to any pool could apply.
pub const BIRD_SYMBOL_MAX: usize = 64;

/// Room left in an identifier for what splitting and templates append: `_<part>` (up to five
/// digits) and `_V4`/`_V6`.
const BIRD_SUFFIX_ROOM: usize = 9;

/// A BIRD identifier from a Kubernetes name: `[A-Za-z0-9_]` only, made unique by a hash of the
/// original (so `a-b` and `a.b` do not collide), and short enough for BIRD with any suffix: a
/// name too long to fit is cut, and the cut one carries a longer hash of the whole name.
fn bird_ident(prefix: &str, name: &str) -> String {
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

/// Kubernetes names are DNS-1123 already; anything else is refused rather than escaped.
fn dns_name(name: &str) -> Option<&str> {
    values::is_dns_name(name).then_some(name)
}

/// A namespace is a DNS-1123 label (no dots), so `<namespace>.<name>` names one Service only.
fn dns_label(name: &str) -> Option<&str> {
    values::is_dns_label(name).then_some(name)
}

/// The prefix matches for a pool's blocks. A valid pool's aggregate is never shorter than its
/// blocks ([`Pool::from_spec`] refuses that), so every match stays inside the pool.
fn matches_of(
    pool: &Pool,
    agg: Option<&crate::api::Aggregation>,
) -> (Vec<PrefixMatch>, Vec<PrefixMatch>) {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for r in &pool.ranges {
        let (bits, agg_len) = match r.family {
            Family::V4 => (32u8, agg.and_then(|a| a.ipv4).unwrap_or(32)),
            Family::V6 => (128u8, agg.and_then(|a| a.ipv6).unwrap_or(128)),
        };
        for (value, len) in to_cidrs(r) {
            let prefix = format!(
                "{}/{len}",
                IpAddr::from(Addr {
                    family: r.family,
                    value
                })
            );
            // Host routes: anything inside the block, down to single addresses. Aggregated: the
            // agent puts addresses on with the aggregate's length, so routes are exactly
            // `agg_len` long within the block.
            let (min_len, max_len) = if agg_len >= bits {
                (len, bits)
            } else {
                (agg_len.max(len), agg_len.max(len))
            };
            let m = PrefixMatch::new(prefix, len, min_len, max_len);
            let list = if r.family == Family::V4 {
                &mut v4
            } else {
                &mut v6
            };
            if !list.contains(&m) {
                list.push(m);
            }
        }
    }
    (v4, v6)
}

/// What one policy asks of one protocol.
struct Rule<'a> {
    policy: &'a RoutingPolicy,
    pools: Vec<usize>,
}

pub fn build(input: &RenderInput) -> Built {
    let mut problems = Vec::new();
    let mut prefix_lists: Vec<PrefixList> = Vec::new();

    // Routed pools that parse; their prefix lists, by pool name.
    let mut pools: Vec<(&AddressPool, Pool)> = Vec::new();
    let mut sorted: Vec<&AddressPool> = input.pools.iter().collect();
    sorted.sort_by_key(|p| p.name_any());
    for p in sorted {
        let name = p.name_any();
        if p.spec.mode != PoolMode::Routed {
            continue;
        }
        if dns_name(&name).is_none() {
            continue;
        }
        if let Ok(parsed) = Pool::from_spec(&name, &p.spec) {
            pools.push((p, parsed));
        }
    }

    let mut policies: Vec<&RoutingPolicy> = input.policies.iter().collect();
    policies.sort_by_key(|p| p.name_any());
    let mut rules: BTreeMap<Protocol, Vec<Rule>> = BTreeMap::new();
    for policy in policies {
        let pname = policy.name_any();
        if let Err(errs) = values::validate_policy(&policy.spec) {
            problems.push(Problem {
                policy: Some(pname.clone()),
                reason: "Invalid",
                message: errs.join("; "),
            });
            continue;
        }
        let selector = |what: &str,
                        s: &Option<
            k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
        >| {
            s.clone()
                .map(Selector::try_from)
                .transpose()
                .map_err(|e| format!("{what}: {e}"))
        };
        let (pool_sel, node_sel) = match (
            selector("spec.poolSelector", &policy.spec.pool_selector),
            selector("spec.nodeSelector", &policy.spec.node_selector),
        ) {
            (Ok(p), Ok(n)) => (p, n),
            (Err(e), _) | (_, Err(e)) => {
                problems.push(Problem {
                    policy: Some(pname.clone()),
                    reason: "Invalid",
                    message: e,
                });
                continue;
            }
        };
        if input.node.is_some()
            && node_sel
                .as_ref()
                .is_some_and(|s| !s.matches(input.node_labels))
        {
            continue;
        }
        let selected: Vec<usize> = pools
            .iter()
            .enumerate()
            .filter(|(_, (p, _))| pool_sel.as_ref().is_none_or(|s| s.matches(p.labels())))
            .map(|(i, _)| i)
            .collect();
        let mut protocols = policy.spec.protocols.clone();
        protocols.sort();
        protocols.dedup();
        for proto in protocols {
            rules.entry(proto).or_default().push(Rule {
                policy,
                pools: selected.clone(),
            });
        }
    }

    let exported_pools: BTreeSet<String> = rules
        .values()
        .flatten()
        .flat_map(|r| r.pools.iter().map(|&i| pools[i].0.name_any()))
        .collect();

    // Prefix lists for every pool some rule exports.
    let mut pool_lists: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for rule in rules.values().flatten() {
        for &i in &rule.pools {
            if pool_lists.contains_key(&i) {
                continue;
            }
            let (obj, parsed) = &pools[i];
            let name = obj.name_any();
            let (v4, v6) = matches_of(parsed, obj.spec.aggregation.as_ref());
            for part in split(PrefixList {
                frr_name: format!("ROUTELB-POOL-{name}"),
                bird_name: bird_ident("ROUTELB_POOL", &name),
                source: format!("pool {name}"),
                v4,
                v6,
            }) {
                pool_lists.entry(i).or_default().push(prefix_lists.len());
                prefix_lists.push(part);
            }
        }
    }

    let entry_for = |rule: &Rule,
                     list: &PrefixList,
                     seq: u32,
                     source: String,
                     extra: &[Community],
                     prepend_asn: Option<u32>| {
        let spec = &rule.policy.spec;
        let bgp = spec.bgp.clone().unwrap_or_default();
        let mut communities: Vec<Community> = bgp
            .communities
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect();
        communities.extend_from_slice(extra);
        communities.sort();
        communities.dedup();
        let large: Vec<LargeCommunity> = bgp
            .large_communities
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect();
        Entry {
            seq,
            frr_list: list.frr_name.clone(),
            bird_list: list.bird_name.clone(),
            has_v4: !list.v4.is_empty(),
            has_v6: !list.v6.is_empty(),
            source,
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
            local_preference: bgp.local_preference,
            med: bgp.med,
            prepend: match (bgp.as_path_prepend, prepend_asn) {
                (Some(n), Some(asn)) => vec![asn; n as usize],
                _ => vec![],
            },
            metric: None,
            metric_type: None,
        }
    };

    // Per-service lists, for services whose pool a BGP rule exports and whose communities the
    // rule's serviceOverrides allow.
    let mut service_entries: Vec<(usize, usize, Vec<Community>)> = Vec::new(); // (rule idx, list idx, communities)
    if let Some(bgp_rules) = rules.get(&Protocol::Bgp) {
        let mut services: Vec<&ServiceAddresses> = input
            .services
            .iter()
            .filter(|s| s.bgp_communities.is_some())
            .collect();
        services.sort_by(|a, b| a.key.cmp(&b.key));
        for svc in services {
            let Some(pi) = pools.iter().position(|(p, _)| p.name_any() == svc.pool) else {
                continue;
            };
            if !svc.admitted {
                problems.push(Problem {
                    policy: None,
                    reason: "ServiceAttributeRefused",
                    message: format!(
                        "service {}: pool {} does not admit it, so its per-service attributes are not honoured",
                        svc.key, svc.pool
                    ),
                });
                continue;
            }
            let Some((ri, rule)) = bgp_rules
                .iter()
                .enumerate()
                .find(|(_, r)| r.pools.contains(&pi))
            else {
                continue;
            };
            let allowed: Vec<CommunityRange> = rule
                .policy
                .spec
                .service_overrides
                .as_ref()
                .map(|o| {
                    o.bgp_communities
                        .iter()
                        .filter_map(|r| r.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            let (accepted, refused) =
                values::service_communities(svc.bgp_communities.as_deref().unwrap_or(""), &allowed);
            for r in refused {
                problems.push(Problem {
                    policy: Some(rule.policy.name_any()),
                    reason: "ServiceAttributeRefused",
                    message: format!("service {}: {r}", svc.key),
                });
            }
            if accepted.is_empty() {
                continue;
            }
            if pools[pi].0.spec.aggregation.is_some() {
                problems.push(Problem {
                    policy: Some(rule.policy.name_any()),
                    reason: "ServiceAttributeRefused",
                    message: format!(
                        "service {}: per-service communities do not apply to aggregated pool {}",
                        svc.key, svc.pool
                    ),
                });
                continue;
            }
            let (Some(ns), Some(name)) = (dns_label(&svc.key.namespace), dns_label(&svc.key.name))
            else {
                problems.push(Problem {
                    policy: Some(rule.policy.name_any()),
                    reason: "ServiceAttributeRefused",
                    message: format!(
                        "service {}: not a valid Kubernetes namespace/name",
                        values::shown(&svc.key.to_string())
                    ),
                });
                continue;
            };
            let host = |ip: &IpAddr| {
                let len = if ip.is_ipv4() { 32 } else { 128 };
                PrefixMatch::new(format!("{ip}/{len}"), len, len, len)
            };
            let list = PrefixList {
                frr_name: format!("ROUTELB-SVC-{ns}.{name}"),
                bird_name: bird_ident("ROUTELB_SVC", &format!("{ns}.{name}")),
                source: format!("service {ns}/{name}"),
                v4: svc
                    .addresses
                    .iter()
                    .filter(|a| a.is_ipv4())
                    .map(host)
                    .collect(),
                v6: svc
                    .addresses
                    .iter()
                    .filter(|a| a.is_ipv6())
                    .map(host)
                    .collect(),
            };
            let mut list = list;
            number(&mut list.v4);
            number(&mut list.v6);
            service_entries.push((ri, prefix_lists.len(), accepted));
            prefix_lists.push(list);
        }
    }

    let missing = |problems: &mut Vec<Problem>, rules: &[Rule], what: String| {
        for r in rules {
            problems.push(Problem {
                policy: Some(r.policy.name_any()),
                reason: "InstanceMissing",
                message: format!("exports through {what}, but the daemon's configuration has no such instance; add it to the base configuration"),
            });
        }
    };
    let families = |entries: &[Entry]| {
        (
            entries.iter().any(|e| e.has_v4),
            entries.iter().any(|e| e.has_v6),
        )
    };

    // BGP: one target per VRF the rules name.
    let mut bgp = Vec::new();
    if let Some(bgp_rules) = rules.get(&Protocol::Bgp) {
        let mut by_vrf: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
        for (i, r) in bgp_rules.iter().enumerate() {
            by_vrf
                .entry(r.policy.spec.bgp.as_ref().and_then(|b| b.vrf.clone()))
                .or_default()
                .push(i);
        }
        for (vrf, idxs) in by_vrf {
            let Some(inst) = input.instances.bgp.iter().find(|i| i.vrf == vrf) else {
                let group: Vec<Rule> = idxs
                    .iter()
                    .map(|&i| Rule {
                        policy: bgp_rules[i].policy,
                        pools: vec![],
                    })
                    .collect();
                missing(
                    &mut problems,
                    &group,
                    match &vrf {
                        Some(v) => format!("BGP in VRF {v}"),
                        None => "BGP".into(),
                    },
                );
                continue;
            };
            let mut entries = Vec::new();
            for (n, (ri, li, comms)) in service_entries
                .iter()
                .filter(|(ri, _, _)| idxs.contains(ri))
                .enumerate()
            {
                let rule = &bgp_rules[*ri];
                let source = format!(
                    "{} (policy {})",
                    prefix_lists[*li].source,
                    rule.policy.name_any()
                );
                entries.push(entry_for(
                    rule,
                    &prefix_lists[*li],
                    SERVICE_SEQ_START + 10 * n as u32,
                    source,
                    comms,
                    Some(inst.asn),
                ));
            }
            let mut seq = RULE_SEQ_START;
            for &ri in &idxs {
                let rule = &bgp_rules[ri];
                for li in rule.pools.iter().flat_map(|pi| &pool_lists[pi]) {
                    entries.push(entry_for(
                        rule,
                        &prefix_lists[*li],
                        seq,
                        format!("policy {}", rule.policy.name_any()),
                        &[],
                        Some(inst.asn),
                    ));
                    seq += 10;
                }
            }
            let (v4, v6) = families(&entries);
            let route_map = match &vrf {
                Some(v) => format!("ROUTELB-BGP-{v}"),
                None => "ROUTELB-BGP".to_string(),
            };
            bgp.push(Target {
                route_map,
                asn: Some(inst.asn),
                vrf,
                tag: None,
                level: None,
                v4,
                v6,
                entries,
            });
        }
    }

    let simple_entries = |rules: &[Rule], set: &dyn Fn(&mut Entry, &RoutingPolicy)| {
        let mut entries = Vec::new();
        let mut seq = RULE_SEQ_START;
        for rule in rules {
            for li in rule.pools.iter().flat_map(|pi| &pool_lists[pi]) {
                let mut e = entry_for(
                    rule,
                    &prefix_lists[*li],
                    seq,
                    format!("policy {}", rule.policy.name_any()),
                    &[],
                    None,
                );
                // BGP attributes do not apply to IGPs.
                e.communities.clear();
                e.large_communities.clear();
                e.local_preference = None;
                e.med = None;
                set(&mut e, rule.policy);
                entries.push(e);
                seq += 10;
            }
        }
        entries
    };

    let mut ospf = None;
    if let Some(r) = rules.get(&Protocol::Ospf) {
        let entries = simple_entries(r, &|e, p| {
            let o = p.spec.ospf.clone().unwrap_or_default();
            e.metric = o.metric;
            e.metric_type = o.metric_type;
        });
        ospf = dual_family_target(
            "ROUTELB-OSPF",
            entries,
            (input.instances.ospf, "OSPFv2 (IPv4)"),
            (input.instances.ospf6, "OSPFv3 (IPv6)"),
            &mut |what| missing(&mut problems, r, what),
        );
    }

    let mut isis = Vec::new();
    if let Some(r) = rules.get(&Protocol::Isis) {
        if input.instances.isis.is_empty() {
            missing(&mut problems, r, "IS-IS".into());
        }
        for (level, name) in [
            (IsisLevel::Level1, "level-1"),
            (IsisLevel::Level2, "level-2"),
        ] {
            let at_level: Vec<Rule> = r
                .iter()
                .filter(|rule| {
                    let l = rule.policy.spec.isis.clone().unwrap_or_default().level;
                    l == level || l == IsisLevel::Level12
                })
                .map(|rule| Rule {
                    policy: rule.policy,
                    pools: rule.pools.clone(),
                })
                .collect();
            if at_level.is_empty() {
                continue;
            }
            let entries = simple_entries(&at_level, &|e, p| {
                e.metric = p.spec.isis.clone().unwrap_or_default().metric
            });
            let (v4, v6) = families(&entries);
            for tag in &input.instances.isis {
                let suffix = if level == IsisLevel::Level1 {
                    "L1"
                } else {
                    "L2"
                };
                isis.push(Target {
                    route_map: format!("ROUTELB-ISIS-{suffix}"),
                    asn: None,
                    vrf: None,
                    tag: Some(tag.clone()),
                    level: Some(name.into()),
                    v4,
                    v6,
                    entries: entries.clone(),
                });
            }
        }
    }

    let mut rip = None;
    if let Some(r) = rules.get(&Protocol::Rip) {
        let entries = simple_entries(r, &|e, p| {
            e.metric = p.spec.rip.clone().unwrap_or_default().metric.map(u32::from)
        });
        rip = dual_family_target(
            "ROUTELB-RIP",
            entries,
            (input.instances.rip, "RIP (IPv4)"),
            (input.instances.ripng, "RIPng (IPv6)"),
            &mut |what| missing(&mut problems, r, what),
        );
    }

    let data = FragmentData {
        contract: CONTRACT,
        generator: format!("routelb {}", env!("CARGO_PKG_VERSION")),
        node: input
            .node
            .and_then(dns_name)
            .unwrap_or_default()
            .to_string(),
        lb_interface: input.lb_interface.to_string(),
        prefix_lists,
        bgp,
        ospf,
        isis,
        rip,
    };
    Built {
        data,
        problems,
        exported_pools,
    }
}

/// A target for a protocol whose IPv4 and IPv6 sides are separate instances (OSPFv2/v3,
/// RIP/RIPng); a family whose instance is missing is reported through `missing` and left out.
fn dual_family_target(
    route_map: &str,
    entries: Vec<Entry>,
    (v4_instance, v4_name): (bool, &str),
    (v6_instance, v6_name): (bool, &str),
    missing: &mut dyn FnMut(String),
) -> Option<Target> {
    let v4 = entries.iter().any(|e| e.has_v4);
    let v6 = entries.iter().any(|e| e.has_v6);
    if v4 && !v4_instance {
        missing(v4_name.into());
    }
    if v6 && !v6_instance {
        missing(v6_name.into());
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
    })
}

/// Interface names the kernel accepts and no daemon parser can misread.
pub fn validate_interface_name(name: &str) -> Result<(), String> {
    if values::is_ifname(name) {
        Ok(())
    } else {
        Err(format!(
            "interface name {name:?} must be 1-15 letters, digits, '-', '_' or '.'"
        ))
    }
}

#[cfg(test)]
mod list_tests {
    use super::*;

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
}
