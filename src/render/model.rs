//! The data contract between routelb and its templates (version [`CONTRACT`]): the types
//! templates receive, what rendering reads, and the problems it reports. Every value here is
//! typed and validated; names are built only from Kubernetes object names (DNS-1123, so no
//! spaces, quotes, `!`, `{` or newlines) or sanitized further, so nothing a user writes can add
//! a line to the daemon's configuration. docs/templates.md documents every field.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

use crate::api::values;
use crate::api::{AddressPool, RoutingPolicy};
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
    /// The base's own route-maps (FRR), by name: what routelb may hook into
    /// (`spec.bgp.outboundRouteMaps`). routelb's own entries do not count.
    pub route_maps: BTreeMap<String, BaseRouteMap>,
    /// The base's own `redistribute connected` where routelb puts its own line, which FRR
    /// keeps only one of, by the name of routelb's route-map there (`ROUTELB-OSPF-V4`).
    pub redistributed: BTreeMap<String, BaseRedistribute>,
}

/// A base's `redistribute connected [metric M] [metric-type T] [route-map X]` (IS-IS: with
/// its family and level), which routelb's line replaces in FRR.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BaseRedistribute {
    /// The line as the base had it, to send back when routelb's line goes.
    pub line: String,
    pub route_map: Option<String>,
    pub metric: Option<u32>,
    pub metric_type: Option<u8>,
}

/// The sequence number of the last entry of routelb's redistribute route-maps, which passes
/// what the base itself redistributed ([`BaseFallback`]). FRR takes 1-65535.
pub const BASE_FALLBACK_SEQ: u32 = 65_535;

/// What marks the fallback entry's description, followed by the base's own line: the daemon
/// itself remembers what to restore once routelb's line has replaced the base's.
pub const BASE_FALLBACK_MARK: &str = "base: ";

/// The last entry of one of routelb's route-maps (`route-map <route_map> permit 65535`):
/// after routelb's own entries, it passes the routes the base's own `redistribute connected`
/// passed, with the attributes it gave them: the base's metric (and metric type), then
/// `call` of the base's route-map (whose deny denies, whose sets apply).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BaseFallback {
    /// routelb's route-map, with its `-V4`/`-V6` suffix.
    pub route_map: String,
    pub seq: u32,
    /// `base: <the base's line>`.
    pub description: String,
    pub call: Option<String>,
    pub metric: Option<u32>,
    pub metric_type: Option<u8>,
}

/// What routelb needs to know of one of the base's route-maps before it adds entries to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BaseRouteMap {
    /// The lowest sequence number of a `deny` entry without `match` lines: it denies every
    /// route, so entries after it are never reached.
    pub catch_all_deny: Option<u32>,
    /// The base's own entries inside [`HOOK_SEQ`], which routelb reserves for itself.
    pub in_reserved: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpInstance {
    pub asn: u32,
    pub vrf: Option<String>,
}

pub struct RenderInput<'a> {
    pub node: Option<&'a str>,
    /// Ready endpoints on this node per Service address whose Services are all
    /// `externalTrafficPolicy: Local` (for `weightedEcmp`); empty elsewhere.
    pub local_endpoints: &'a BTreeMap<IpAddr, u32>,
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
    /// Entries routelb adds to the base's own outbound route-maps
    /// (`spec.bgp.outboundRouteMaps`), by route-map name.
    pub route_map_hooks: Vec<RouteMapHook>,
    /// The last entry of routelb's route-maps where the base already redistributed connected
    /// routes: what the base's own line passed keeps passing, as it did.
    pub base_fallbacks: Vec<BaseFallback>,
    /// BFD sessions of fast failover (pools with `spec.fastFailover`): set by the agent from
    /// the live members, empty elsewhere.
    pub bfd: BfdData,
}

/// The BFD sessions this node keeps for fast failover ([`crate::failover::peers`]), in the
/// shapes the templates want: FRR names a profile per timer set, BIRD sets timers per
/// interface.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct BfdData {
    pub peers: Vec<BfdPeerData>,
    /// One per distinct timer set: `ROUTELB-BFD-<interval>MS-X<multiplier>`.
    pub profiles: Vec<BfdTimerSet>,
    /// Per interface with peers, the fastest timers of its peers (named by the interface).
    pub interfaces: Vec<BfdTimerSet>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BfdPeerData {
    pub node: String,
    pub address: std::net::IpAddr,
    pub interface: String,
    /// 4 or 6.
    pub family: u8,
    /// The name of its FRR profile.
    pub profile: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct BfdTimerSet {
    pub name: String,
    pub interval_ms: u32,
    pub multiplier: u8,
}

impl BfdData {
    pub fn of(peers: &[crate::failover::BfdPeer]) -> BfdData {
        let profile = |t: &crate::failover::Timers| {
            format!("ROUTELB-BFD-{}MS-X{}", t.interval_ms, t.multiplier)
        };
        let mut profiles: Vec<BfdTimerSet> = Vec::new();
        let mut interfaces: Vec<BfdTimerSet> = Vec::new();
        for p in peers {
            let name = profile(&p.timers);
            if !profiles.iter().any(|s| s.name == name) {
                profiles.push(BfdTimerSet {
                    name,
                    interval_ms: p.timers.interval_ms,
                    multiplier: p.timers.multiplier,
                });
            }
            match interfaces.iter_mut().find(|i| i.name == p.interface) {
                Some(i) => {
                    i.interval_ms = i.interval_ms.min(p.timers.interval_ms);
                    i.multiplier = i.multiplier.min(p.timers.multiplier);
                }
                None => interfaces.push(BfdTimerSet {
                    name: p.interface.clone(),
                    interval_ms: p.timers.interval_ms,
                    multiplier: p.timers.multiplier,
                }),
            }
        }
        profiles.sort_by(|a, b| a.name.cmp(&b.name));
        interfaces.sort_by(|a, b| a.name.cmp(&b.name));
        BfdData {
            peers: peers
                .iter()
                .map(|p| BfdPeerData {
                    node: p.node.clone(),
                    address: p.address,
                    interface: p.interface.clone(),
                    family: if p.address.is_ipv4() { 4 } else { 6 },
                    profile: profile(&p.timers),
                })
                .collect(),
            profiles,
            interfaces,
        }
    }
}

impl FragmentData {
    /// The same data with no prefix lists: rendering serializes those one by one and keeps
    /// them ([`super::Templates::render`]).
    pub(crate) fn without_prefix_lists(&self) -> FragmentData {
        FragmentData {
            contract: self.contract,
            generator: self.generator.clone(),
            node: self.node.clone(),
            lb_interface: self.lb_interface.clone(),
            prefix_lists: Vec::new(),
            bgp: self.bgp.clone(),
            ospf: self.ospf.clone(),
            isis: self.isis.clone(),
            rip: self.rip.clone(),
            route_map_hooks: self.route_map_hooks.clone(),
            base_fallbacks: self.base_fallbacks.clone(),
            bfd: self.bfd.clone(),
        }
    }
}

/// One of the base's route-maps, with the permit entries routelb adds to it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RouteMapHook {
    /// The base's name for it, e.g. `172.30.0.1-out`.
    pub route_map: String,
    /// By sequence number, each in [`HOOK_SEQ`].
    pub entries: Vec<HookEntry>,
}

/// `route-map <hook> permit <seq>` matching one prefix list in one family. It sets nothing:
/// the route carries the policy's attributes from `redistribute`, and setting them again
/// here would prepend the AS path twice.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HookEntry {
    pub seq: u32,
    /// `V4` or `V6`.
    pub family: String,
    /// The PrefixList's FRR name, without the `-V4`/`-V6` suffix.
    pub frr_list: String,
    /// `pool web`, for the description.
    pub source: String,
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
    /// BGP with `weightedEcmp`: the link-bandwidth weights of this node's addresses.
    pub weights: Vec<super::weights::Weight>,
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

/// What [`super::build`] returns.
pub struct Built {
    pub data: FragmentData,
    pub problems: Vec<Problem>,
    /// Routed pools some valid policy exports from this node: the pools whose addresses this
    /// node puts on the load-balancer interface.
    pub exported_pools: BTreeSet<String>,
}

impl Problem {
    /// Something the base lacks that its own tool may add moments later (a routing instance,
    /// a route-map to hook into, which frr-k8s creates after its neighbor): worth reading the
    /// daemon again soon rather than at the next resync.
    pub fn waits_for_base(&self) -> bool {
        matches!(self.reason, "InstanceMissing" | "RouteMapMissing")
    }

    pub(super) fn invalid(policy: &str, message: String) -> Problem {
        Problem {
            policy: Some(policy.to_string()),
            reason: "Invalid",
            message,
        }
    }

    /// `what` names the protocol (and VRF or family) without an instance.
    pub(super) fn instance_missing(policy: &str, what: &str) -> Problem {
        Problem {
            policy: Some(policy.to_string()),
            reason: "InstanceMissing",
            message: format!(
                "exports through {what}, but the daemon's configuration has no such instance; add it to the base configuration"
            ),
        }
    }

    /// A route-map named in `spec.bgp.outboundRouteMaps` that routelb cannot hook into as
    /// asked; `reason` says why.
    pub(super) fn hook(policy: &str, reason: &'static str, message: String) -> Problem {
        Problem {
            policy: Some(policy.to_string()),
            reason,
            message,
        }
    }
}

impl Entry {
    /// An entry matching `list`, with no attributes yet.
    pub(super) fn new(list: &PrefixList, seq: u32, source: String) -> Entry {
        Entry {
            seq,
            frr_list: list.frr_name.clone(),
            bird_list: list.bird_name.clone(),
            has_v4: !list.v4.is_empty(),
            has_v6: !list.v6.is_empty(),
            source,
            communities: vec![],
            large_communities: vec![],
            local_preference: None,
            med: None,
            prepend: vec![],
            metric: None,
            metric_type: None,
        }
    }
}

/// Whether any of `entries` has IPv4 / IPv6 prefixes.
pub(super) fn families(entries: &[Entry]) -> (bool, bool) {
    (
        entries.iter().any(|e| e.has_v4),
        entries.iter().any(|e| e.has_v6),
    )
}

/// Route-map sequence numbers: per-service entries first, so their communities win.
pub(super) const SERVICE_SEQ_START: u32 = 10;
pub(super) const RULE_SEQ_START: u32 = 50_000;

/// The sequence numbers routelb reserves in the base's route-maps it hooks into: after the
/// entries generators and people number from 1 or 10 upwards, before the `deny 65535` (or
/// 65000-65535) catch-alls hand-written maps often end with. FRR takes 1-65535.
pub const HOOK_SEQ: std::ops::RangeInclusive<u32> = 64_000..=64_999;

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
