//! The routelb API: custom resources in `routelb.io/v1alpha1` and the Service annotations we
//! read and write. Types only; validation of values lives in [`values`].

pub mod address_runs;
pub mod rollout;
pub mod values;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use rollout::{RoutingRollout, RoutingRolloutSpec, RoutingRolloutStatus};

pub const GROUP: &str = "routelb.io";
/// The `loadBalancerClass` routelb serves by default.
pub const DEFAULT_LB_CLASS: &str = "routelb.io/lb";

/// Service annotations, input.
pub mod annotations {
    /// Name of the pool to allocate from.
    pub const POOL: &str = "routelb.io/pool";
    /// Requested addresses, comma separated, at most one per family.
    pub const ADDRESSES: &str = "routelb.io/addresses";
    /// Services in one namespace with the same key may share an address.
    pub const SHARING_KEY: &str = "routelb.io/sharing-key";
    /// `"true"`: the Service's sharing key is shared with Services of other namespaces that
    /// say the same, from a pool with `spec.allocation.shareAcrossNamespaces`.
    pub const SHARE_ACROSS_NAMESPACES: &str = "routelb.io/share-across-namespaces";
    /// Per-service BGP communities; honoured only where a RoutingPolicy allows them.
    pub const BGP_COMMUNITIES: &str = "routelb.io/bgp-communities";
    /// Per-service BGP large communities (`global:local1:local2`, comma separated).
    pub const BGP_LARGE_COMMUNITIES: &str = "routelb.io/bgp-large-communities";
    /// Per-service BGP local preference, replacing the policy's.
    pub const BGP_LOCAL_PREFERENCE: &str = "routelb.io/bgp-local-preference";
    /// Per-service BGP MED, replacing the policy's.
    pub const BGP_MED: &str = "routelb.io/bgp-med";
    /// Per-service AS-path prepend count (0 for none), replacing the policy's.
    pub const BGP_AS_PATH_PREPEND: &str = "routelb.io/bgp-as-path-prepend";
    /// Per-service OSPF external metric, replacing the policy's.
    pub const OSPF_METRIC: &str = "routelb.io/ospf-metric";
    /// Per-service IS-IS metric, replacing the policy's.
    pub const ISIS_METRIC: &str = "routelb.io/isis-metric";
    /// Output: the per-service attribute requests no policy grants, and why (absent if none).
    pub const REFUSED_ATTRIBUTES: &str = "routelb.io/refused-attributes";
    /// Output: the pool the addresses came from.
    pub const POOL_USED: &str = "routelb.io/pool-used";
    /// Output: why the service has no address (absent when it has one).
    pub const ALLOCATION_ERROR: &str = "routelb.io/allocation-error";
    /// Output: something worth knowing although the service has its address (absent if none).
    pub const ALLOCATION_WARNING: &str = "routelb.io/allocation-warning";
    /// Output: which nodes announce the service, and on which interface.
    pub const ANNOUNCING: &str = "routelb.io/announcing";
    pub const WITHDRAW_WHEN_NO_ENDPOINTS: &str = "routelb.io/withdraw-when-no-endpoints";
}

/// Whether a pool's addresses live in a node subnet (one elected node answers ARP/NDP) or are
/// routed to every eligible node through the routing daemon.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    #[default]
    Routed,
    Local,
}

/// An AddressPool: where Service addresses come from.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "routelb.io",
    version = "v1alpha1",
    kind = "AddressPool",
    plural = "addresspools",
    shortname = "lbpool",
    category = "routelb",
    status = "AddressPoolStatus",
    derive = "PartialEq",
    doc = "A pool of addresses for Services of type LoadBalancer.",
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Allocated","type":"string","jsonPath":".status.allocatedSummary"}"#,
    printcolumn = r#"{"name":"Available","type":"string","jsonPath":".status.availableSummary"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AddressPoolSpec {
    /// CIDRs (`192.0.2.0/24`, `2001:db8::/120`) and inclusive ranges (`192.0.2.10-192.0.2.20`);
    /// IPv4 and IPv6 may be mixed in one pool.
    pub addresses: Vec<String>,
    /// `routed` (default): announced by the routing daemon from `kube-lb0` on every eligible
    /// node. `local`: in a node subnet, held by one elected node.
    #[serde(default)]
    pub mode: PoolMode,
    /// Prefix length to announce per family, for aggregating routes (default: host routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<Aggregation>,
    /// Whether services without `routelb.io/pool` may get addresses from this pool.
    #[serde(default = "default_true")]
    pub auto_assign: bool,
    /// Never hand out IPv4 addresses ending in `.0` or `.255`.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    /// Which services this pool serves, and how it ranks against other pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation: Option<AllocationPolicy>,
    /// `local` pools only: an address moves from a failed holder in well under a second,
    /// detected by BFD sessions the nodes' routing daemons keep between its candidates; the
    /// Lease still decides in the end (docs/agent.md, "Fast failover"). Absent: failover
    /// waits for the holder's Lease to expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_failover: Option<FastFailover>,
}

/// BFD timers of a pool's fast failover.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FastFailover {
    /// BFD transmit and receive interval, in milliseconds (10-10000, default 50).
    #[serde(default = "default_bfd_interval")]
    #[schemars(range(min = 10, max = 10000))]
    pub interval_ms: u32,
    /// Intervals without a packet before a session is down (2-50, default 3): detection
    /// takes interval × multiplier.
    #[serde(default = "default_bfd_multiplier")]
    #[schemars(range(min = 2, max = 50))]
    pub detect_multiplier: u8,
}

impl Default for FastFailover {
    fn default() -> Self {
        FastFailover {
            interval_ms: default_bfd_interval(),
            detect_multiplier: default_bfd_multiplier(),
        }
    }
}

/// The BFD interval and multiplier of `spec.fastFailover` when the pool does not say.
pub const DEFAULT_BFD_INTERVAL_MS: u32 = 50;
pub const DEFAULT_BFD_MULTIPLIER: u8 = 3;

fn default_bfd_interval() -> u32 {
    DEFAULT_BFD_INTERVAL_MS
}

fn default_bfd_multiplier() -> u8 {
    DEFAULT_BFD_MULTIPLIER
}

fn default_true() -> bool {
    true
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Aggregation {
    /// Prefix length announced for IPv4 addresses (0-32, default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 32))]
    pub ipv4: Option<u8>,
    /// Prefix length announced for IPv6 addresses (0-128, default 128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 128))]
    pub ipv6: Option<u8>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllocationPolicy {
    /// Among pools that match a service, the one with the highest priority is tried first
    /// (default 0; ties are broken by pool name).
    #[serde(default)]
    pub priority: i32,
    /// Only services in these namespaces (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Only services in namespaces whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Only services whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_selector: Option<LabelSelector>,
    /// Services of different namespaces may share an address from this pool, when each
    /// carries the same `routelb.io/sharing-key` and `routelb.io/share-across-namespaces:
    /// "true"` (default: sharing stays within a namespace).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub share_across_namespaces: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FamilyCounts {
    /// Addresses given to services.
    pub allocated: u64,
    /// Addresses still free (saturates at 2^63-1 for large IPv6 ranges).
    pub available: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddressPoolStatus {
    #[serde(default)]
    pub ipv4: FamilyCounts,
    #[serde(default)]
    pub ipv6: FamilyCounts,
    /// `v4/v6` allocated, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_summary: Option<String>,
    /// `v4/v6` available, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_summary: Option<String>,
    /// `Ready`, `Invalid` and `Overlapping`, each with a reason.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Routing protocols a policy can export pools through. Each covers both families where the
/// daemon can: `ospf` is OSPFv2 and OSPFv3, `rip` is RIP and RIPng.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Bgp,
    Ospf,
    Isis,
    Rip,
}

/// A RoutingPolicy: which pools are exported through which protocols, with which attributes.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "routelb.io",
    version = "v1alpha1",
    kind = "RoutingPolicy",
    plural = "routingpolicies",
    shortname = "lbpolicy",
    category = "routelb",
    status = "RoutingPolicyStatus",
    derive = "PartialEq",
    doc = "Which address pools are announced through which routing protocols, with which attributes.",
    printcolumn = r#"{"name":"Protocols","type":"string","jsonPath":".spec.protocols"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RoutingPolicySpec {
    /// Pools this policy exports, by label (empty: all pools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_selector: Option<LabelSelector>,
    /// Nodes this policy applies to, by label (empty: all nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    /// Protocols the selected pools are exported through.
    pub protocols: Vec<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpAttributes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ospf: Option<OspfAttributes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isis: Option<IsisAttributes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rip: Option<RipAttributes>,
    /// Which per-service annotations are honoured, within which bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_overrides: Option<ServiceOverrides>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpAttributes {
    /// Standard communities, `ASN:value` (each 0-65535).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
    /// Large communities, `global:local1:local2` (each 0-4294967295).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub large_communities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_preference: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub med: Option<u32>,
    /// How many times to prepend the local AS (1-10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub as_path_prepend: Option<u8>,
    /// Name of a VRF whose BGP instance exports the pools (it must exist in the base config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,
    /// Outbound route-maps the base configuration owns (as in `neighbor X route-map NAME out`)
    /// that routelb adds permit entries to, matching the pools' prefix lists, at sequence
    /// numbers 64000-64999 (reserved for routelb), so a base whose outbound policy permits only
    /// its own prefixes also sends the Service addresses. FRR only; each route-map must exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 63), regex(pattern = r"^[A-Za-z0-9._:-]+$"))
    )]
    pub outbound_route_maps: Vec<String>,
    /// Weighted ECMP for `externalTrafficPolicy: Local`: each node attaches the BGP
    /// link-bandwidth extended community to a Service address, proportional to its ready
    /// endpoints for it (1 Mbps per endpoint, in buckets), so that a router doing weighted
    /// multipath (FRR: by default) sends each node its share. Addresses shared with a Service
    /// under `externalTrafficPolicy: Cluster` are not weighted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub weighted_ecmp: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OspfAttributes {
    /// External metric (0-16777214).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 16777214))]
    pub metric: Option<u32>,
    /// External metric type, 1 or 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2))]
    pub metric_type: Option<u8>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum IsisLevel {
    #[serde(rename = "level-1")]
    Level1,
    #[default]
    #[serde(rename = "level-2")]
    Level2,
    #[serde(rename = "level-1-2")]
    Level12,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IsisAttributes {
    /// Level the routes are redistributed into.
    #[serde(default)]
    pub level: IsisLevel,
    /// Wide metric (0-16777215).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 16777215))]
    pub metric: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RipAttributes {
    /// Metric (1-16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16))]
    pub metric: Option<u8>,
}

/// What a policy lets the Services it exports ask for with annotations: `grants` to some of
/// them (by namespace or label), and, at this level, to every Service the pool admits. A
/// request is honoured when any grant that applies to the Service allows it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceOverrides {
    #[serde(flatten)]
    pub allowed: AttributeAllowance,
    /// Grants to the Services a namespace list and/or label selectors pick.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub grants: Vec<ServiceGrant>,
}

/// A grant to some Services: those in `namespaces` (empty: any) whose namespace and own labels
/// match the selectors (absent: any).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceGrant {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_selector: Option<LabelSelector>,
    #[serde(flatten)]
    pub allowed: AttributeAllowance,
}

/// The per-service attributes allowed, each within bounds. An attribute not named here is
/// not allowed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttributeAllowance {
    /// Ranges of standard communities a Service may add with `routelb.io/bgp-communities`,
    /// e.g. `65000:100-65000:199` or a single `65000:100`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bgp_communities: Vec<String>,
    /// Ranges of large communities a Service may add with `routelb.io/bgp-large-communities`,
    /// e.g. `64512:1:0-64512:1:99` or a single `64512:1:7`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bgp_large_communities: Vec<String>,
    /// Local preferences a Service may set with `routelb.io/bgp-local-preference`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_local_preference: Option<ValueRange>,
    /// MEDs a Service may set with `routelb.io/bgp-med`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_med: Option<ValueRange>,
    /// Prepend counts (0-10) a Service may set with `routelb.io/bgp-as-path-prepend`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_as_path_prepend: Option<ValueRange>,
    /// OSPF external metrics a Service may set with `routelb.io/ospf-metric`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ospf_metric: Option<ValueRange>,
    /// IS-IS metrics a Service may set with `routelb.io/isis-metric`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isis_metric: Option<ValueRange>,
}

/// An inclusive range of numbers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueRange {
    pub min: u32,
    pub max: u32,
}

impl ValueRange {
    pub fn contains(&self, v: u32) -> bool {
        (self.min..=self.max).contains(&v)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutingPolicyStatus {
    /// `Ready` (False with reason `Invalid` when a field does not parse). Problems only a node can
    /// see (`InstanceMissing`: a protocol with no instance in its daemon) are Events on the policy
    /// and the `RoutingProblems` condition of that node's NodeState.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Per-node state written by that node's agent. The spec is empty; everything is status.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "routelb.io",
    version = "v1alpha1",
    kind = "NodeState",
    plural = "nodestates",
    shortname = "lbnode",
    category = "routelb",
    status = "NodeStateStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "What the routelb agent on one node holds and announces. Named after the node.",
    printcolumn = r#"{"name":"Daemon","type":"string","jsonPath":".status.daemon"}"#,
    printcolumn = r#"{"name":"Addresses","type":"integer","jsonPath":".status.addressCount"}"#,
    printcolumn = r#"{"name":"Applied","type":"string","jsonPath":".status.lastApply.result"}"#,
    printcolumn = r#"{"name":"Sessions","type":"string","jsonPath":".status.routing.summary"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.revision.name","priority":1}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct NodeStateSpec {}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStateStatus {
    /// `frr` or `bird`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<String>,
    /// Addresses this node holds, per interface.
    #[serde(default)]
    pub interfaces: Vec<InterfaceAddresses>,
    #[serde(default)]
    pub address_count: u32,
    /// Prefixes on the load-balancer interface, which the daemon exports as connected routes
    /// where a policy's filters let them through.
    #[serde(default)]
    pub announced_prefixes: Vec<String>,
    /// The first 16 hex digits of the SHA-256 of the fragment last applied to the daemon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragment_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_apply: Option<ApplyResult>,
    /// Services that no node announces, with why, as seen by the node that reports on them
    /// (one node per service, chosen by the election). Always written, empty too: the status
    /// is merge-patched, and an absent list would keep the old reasons.
    #[serde(default)]
    pub not_announced: Vec<ServiceNote>,
    /// What the daemon really advertises, asked of it after every apply and periodically;
    /// absent until the first verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertisement: Option<AdvertisementStatus>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The last time routelb restored objects that another tool removed or changed in the
    /// daemon (FRR: found by the drift probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drift_repair: Option<DriftRepairStatus>,
    /// The routing sessions and adjacencies the daemon keeps, as last asked (every 10 s);
    /// absent until the first look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<RoutingStatus>,
    /// The routing revision (RoutingPolicies and templates, see `RoutingRollout`) the daemon
    /// has; absent while no rollout is followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<rollout::RevisionStatus>,
    /// What the daemon would change with the revision its rollout rolls out, before this node
    /// gets it; absent when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_revision: Option<rollout::PendingRevision>,
    /// Fast failover's BFD sessions from this node (local pools with `spec.fastFailover`);
    /// null while it keeps none (written as null, so that a merge patch clears it).
    #[serde(default)]
    pub fast_failover: Option<FastFailoverStatus>,
}

/// What fast failover sees from a node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FastFailoverStatus {
    /// The nodes this node keeps BFD sessions with.
    #[serde(default)]
    pub peers: Vec<FastFailoverPeer>,
    /// Peers judged failed: the next-ranked node takes their local addresses of these pools
    /// without waiting for their Lease. (Always written: an empty list clears the last one.)
    #[serde(default)]
    pub failed: Vec<String>,
    /// Every session lost (or the daemon silent): this node holds none of these pools'
    /// addresses until a session has been up again for the guard.
    #[serde(default)]
    pub cut_off: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FastFailoverPeer {
    pub node: String,
    /// Its addresses the sessions go to.
    pub addresses: Vec<String>,
    /// Whether a session to it is up.
    pub up: bool,
}

/// The daemon's sessions and adjacencies: BGP peers, OSPF/OSPFv3 neighbours, IS-IS
/// adjacencies, RIP sources, BFD sessions.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutingStatus {
    /// `up/total`, as `kubectl get nodestates` shows it.
    pub summary: String,
    pub sessions_up: u32,
    pub sessions_total: u32,
    /// The sessions, those down first, at most 32 (the counts cover every one). Always
    /// written, empty too: the status is merge-patched.
    #[serde(default)]
    pub sessions: Vec<RoutingSession>,
    /// Kinds of session the daemon could not be asked about at the last look (their entries
    /// are as they were before).
    #[serde(default)]
    pub unknown: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutingSession {
    /// `bgp`, `ospf`, `ospf6`, `isis`, `rip`, `ripng` or `bfd`.
    pub protocol: String,
    /// FRR: the VRF, absent for the default one; IS-IS: the area tag; BIRD: the protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// BGP: the neighbor as configured (BIRD: the protocol's name); OSPF: the neighbour's
    /// router ID; IS-IS: its system ID and level; RIP, BFD: its address.
    pub peer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// As the daemon names it (`Established`, `Active`, `Full/DR`, `Up`), or `gone` for an
    /// adjacency the daemon no longer reports (listed for 15 minutes).
    pub state: String,
    pub up: bool,
    /// Since when it is in this state (RFC 3339).
    pub since: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_prefixes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_prefixes: Option<u64>,
    /// The state of the BFD session that watches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<String>,
    /// Why it is down, when the daemon says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftRepairStatus {
    /// RFC 3339.
    pub time: String,
    /// What was lost or changed, per daemon and object
    /// (`bgpd: ip prefix-list ROUTELB-POOL-web-V4 lost`).
    pub lost: Vec<String>,
    /// Why restoring them failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// This node's prefixes as the daemon advertises them, per peer (BGP neighbor and family),
/// OSPF/IS-IS/RIP process or BIRD protocol.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdvertisementStatus {
    #[serde(default)]
    pub peers: Vec<PeerAdvertisement>,
    /// This node's prefixes that reach no peer at all: the node does not announce them.
    /// Always written, empty too: the status is merge-patched, and an absent list would keep
    /// the old one.
    #[serde(default)]
    pub unadvertised: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerAdvertisement {
    /// `bgp`, `ospf`, `isis` or `rip`.
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,
    /// `neighbor 10.0.0.2`, `neighbor eth0 (peer-group FABRIC)`, `router ospf`,
    /// `protocol rtr4` (BIRD).
    pub peer: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
    /// Whether the session is up (BGP Established); a peer that is down advertises nothing.
    pub up: bool,
    /// How many of this node's prefixes meant for this peer it gets, and how many it does not.
    pub advertised: u32,
    pub missing: u32,
    /// The first few missing prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_prefixes: Vec<String>,
    /// The outbound filters configured towards this peer (`route-map peer-out`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceNote {
    /// `namespace/name`
    pub service: String,
    pub reason: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceAddresses {
    pub interface: String,
    /// `address/length`, or a run of consecutive addresses of one length,
    /// `first-last/length` (a node holding a routed pool's addresses lists its runs).
    pub addresses: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResult {
    /// `Applied`, `Unchanged`, `Refused` or `Failed`.
    pub result: String,
    /// RFC 3339 time of the attempt.
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
