//! What operators look at (pure): the rows of `kubectl routelb status`, `nodes` and `pools`,
//! and the chain of reasons of `kubectl routelb why`, joined from one [`Snapshot`] of the
//! cluster. Reading the snapshot and printing are the plugin's shell ([`crate::plugin`]);
//! human tables are drawn by [`table`].

pub mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use crate::api::{
    AddressPool, ApplyResult, FamilyCounts, NodeState, NodeStateStatus, PoolMode, RoutingPolicy,
    annotations,
};
use crate::ipam;

/// Everything the views join, read at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub services: Vec<Service>,
    pub pools: Vec<AddressPool>,
    pub policies: Vec<RoutingPolicy>,
    pub node_states: Vec<NodeState>,
    pub nodes: Vec<Node>,
    /// The agents' node Leases: whether an agent is alive.
    pub leases: Vec<Lease>,
    /// Events about the Service `why` explains (none for the other views).
    pub events: Vec<Event>,
    /// The `spec.loadBalancerClass` routelb serves, and whether class-less Services are left out.
    pub class: String,
    pub require_class: bool,
    pub now: Timestamp,
}

/// How a row reads: problems sort first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Error,
    Warning,
    Ok,
}

impl Health {
    pub fn mark(self) -> &'static str {
        match self {
            Health::Error => "ERROR",
            Health::Warning => "WARN",
            Health::Ok => "ok",
        }
    }
}

// ------------------------------------------------------------------------------ status --

/// One Service: where it is announced, to whom, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRow {
    pub namespace: String,
    pub name: String,
    pub health: Health,
    pub addresses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// `routed` or `local`, from the pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `node/interface`, as the allocator last saw them hold the addresses.
    pub announced_by: Vec<String>,
    /// `node → peer` for each up peer that gets the addresses (routed pools, once the agent
    /// verified what its daemon advertises).
    pub peers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The served Services in `namespace` (all with `None`), problems first.
pub fn status(s: &Snapshot, namespace: Option<&str>) -> Vec<ServiceRow> {
    let mut rows: Vec<ServiceRow> = s
        .services
        .iter()
        .filter(|svc| namespace.is_none_or(|n| svc.namespace().as_deref() == Some(n)))
        .filter(|svc| ipam::managed(svc, &s.class, s.require_class))
        .map(|svc| service_row(s, svc))
        .collect();
    rows.sort_by(|a, b| (a.health, &a.namespace, &a.name).cmp(&(b.health, &b.namespace, &b.name)));
    rows
}

fn service_row(s: &Snapshot, svc: &Service) -> ServiceRow {
    let ann = svc.annotations();
    let ips = ipam::ingress_ips(svc);
    let pool = ann.get(annotations::POOL_USED).cloned();
    let pool_object = pool.as_ref().and_then(|p| find_pool(s, p));
    let announced_by = split_list(ann.get(annotations::ANNOUNCING));
    let routed = pool_object.is_none_or(|p| p.spec.mode == PoolMode::Routed);
    let peers = if routed {
        receiving_peers(s, &announced_by, &ips)
    } else {
        Vec::new()
    };
    let (health, problem) = service_problem(s, svc, &ips, &announced_by, routed, &peers);
    ServiceRow {
        namespace: svc.namespace().unwrap_or_default(),
        name: svc.name_any(),
        health,
        addresses: ips.iter().map(IpAddr::to_string).collect(),
        pool,
        mode: pool_object.map(|p| mode_name(p.spec.mode).to_string()),
        announced_by,
        peers: peers.into_iter().map(|p| p.label()).collect(),
        problem,
    }
}

fn service_problem(
    s: &Snapshot,
    svc: &Service,
    ips: &[IpAddr],
    announced_by: &[String],
    routed: bool,
    peers: &[PeerOf],
) -> (Health, Option<String>) {
    let ann = svc.annotations();
    if let Some(e) = ann.get(annotations::ALLOCATION_ERROR) {
        return (Health::Error, Some(format!("no address: {e}")));
    }
    if ips.is_empty() {
        return (
            Health::Warning,
            Some("no address yet: is the allocator running and leading?".into()),
        );
    }
    if announced_by.is_empty() {
        return (
            Health::Error,
            Some(format!(
                "not announced: {}",
                not_announced_reason(s, svc, ips)
            )),
        );
    }
    if let Some(w) = ann.get(annotations::ALLOCATION_WARNING) {
        return (Health::Warning, Some(w.clone()));
    }
    if routed && peers.is_empty() && verified(s, announced_by) {
        return (
            Health::Warning,
            Some("announced, but no up peer of the announcing nodes gets it".into()),
        );
    }
    (Health::Ok, None)
}

/// Why no node announces a Service: what the node reporting on it says, else what the
/// daemons of nodes that hold its addresses say, else that nobody holds them.
fn not_announced_reason(s: &Snapshot, svc: &Service, ips: &[IpAddr]) -> String {
    let key = format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any());
    let noted = s
        .node_states
        .iter()
        .filter_map(|n| n.status.as_ref())
        .flat_map(|st| &st.not_announced)
        .find(|n| n.service == key);
    if let Some(n) = noted {
        return n.reason.clone();
    }
    let silent: Vec<String> = s
        .node_states
        .iter()
        .filter_map(|n| Some((n.name_any(), n.status.as_ref()?)))
        .filter(|(_, st)| holds(st, ips) && unadvertised(st, ips))
        .map(|(node, st)| {
            format!(
                "{node} holds it but its daemon advertises it to no peer ({})",
                condition_message(&st.conditions, "Advertised")
            )
        })
        .collect();
    if !silent.is_empty() {
        return silent.join("; ");
    }
    "no live node holds its addresses".into()
}

/// One up peer of an announcing node that gets a Service's addresses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct PeerOf {
    node: String,
    peer: String,
}

impl PeerOf {
    fn label(&self) -> String {
        format!("{} → {}", self.node, self.peer)
    }
}

/// The up peers of the announcing nodes that get the addresses: those of the address's
/// family that do not list its prefix as missing.
fn receiving_peers(s: &Snapshot, announced_by: &[String], ips: &[IpAddr]) -> Vec<PeerOf> {
    let nodes: BTreeSet<&str> = announced_by
        .iter()
        .map(|a| a.split('/').next().unwrap_or(a))
        .collect();
    let mut out = BTreeSet::new();
    for st in &s.node_states {
        let node = st.name_any();
        let Some(adv) = st
            .status
            .as_ref()
            .filter(|_| nodes.contains(node.as_str()))
            .and_then(|st| st.advertisement.as_ref())
        else {
            continue;
        };
        for p in adv.peers.iter().filter(|p| p.up) {
            let gets = ips.iter().any(|ip| {
                family_name(ip) == p.family
                    && !p
                        .missing_prefixes
                        .iter()
                        .filter_map(|m| m.parse::<ipnet::IpNet>().ok())
                        .any(|m| m.contains(ip))
            });
            if gets {
                let peer = match &p.vrf {
                    Some(vrf) => format!("{} (vrf {vrf})", p.peer),
                    None => p.peer.clone(),
                };
                out.insert(PeerOf {
                    node: node.clone(),
                    peer,
                });
            }
        }
    }
    out.into_iter().collect()
}

/// Whether every announcing node's agent verified what its daemon advertises.
fn verified(s: &Snapshot, announced_by: &[String]) -> bool {
    announced_by.iter().all(|a| {
        let node = a.split('/').next().unwrap_or(a);
        s.node_states.iter().any(|st| {
            st.name_any() == node
                && st
                    .status
                    .as_ref()
                    .is_some_and(|x| x.advertisement.is_some())
        })
    })
}

// ------------------------------------------------------------------------------- nodes --

/// One node: its agent, what it holds, its daemon.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRow {
    pub name: String,
    pub health: Health,
    /// `live`, `expired` (the agent stopped renewing its Lease) or `none` (no agent ran here).
    pub agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon: Option<String>,
    pub addresses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_apply: Option<ApplyResult>,
    /// `up/total` sessions and adjacencies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<String>,
    /// Why the node is draining (cordoned, excluded, tainted, agent stopping), if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draining: Option<String>,
    pub problems: Vec<String>,
}

/// Every node with an agent, a NodeState or a Node object, problems first.
pub fn nodes(s: &Snapshot) -> Vec<NodeRow> {
    let agents = agent_states(s);
    let mut names: BTreeSet<String> = s.nodes.iter().map(|n| n.name_any()).collect();
    names.extend(s.node_states.iter().map(|n| n.name_any()));
    names.extend(agents.keys().cloned());
    let mut rows: Vec<NodeRow> = names
        .into_iter()
        .map(|name| {
            let status = s
                .node_states
                .iter()
                .find(|n| n.name_any() == name)
                .and_then(|n| n.status.as_ref());
            let node_exists = s.nodes.iter().any(|n| n.name_any() == name);
            node_row(&name, status, agents.get(&name).copied(), node_exists)
        })
        .collect();
    rows.sort_by(|a, b| (a.health, &a.name).cmp(&(b.health, &b.name)));
    rows
}

fn node_row(
    name: &str,
    status: Option<&NodeStateStatus>,
    agent_live: Option<bool>,
    node_exists: bool,
) -> NodeRow {
    let mut problems = Vec::new();
    let agent = match agent_live {
        Some(true) => "live",
        Some(false) => {
            problems.push("the agent stopped renewing its Lease: its NodeState is stale".into());
            "expired"
        }
        None => "none",
    };
    if !node_exists {
        problems.push("no such Node: left over from a deleted node".into());
    }
    if agent_live.is_some() && status.is_none() {
        problems.push("no NodeState: the agent has not reported yet".into());
    }
    if let Some(st) = status {
        problems.extend(condition_problems(&st.conditions));
    }
    let draining = status
        .and_then(|st| st.conditions.iter().find(|c| c.type_ == "Draining"))
        .filter(|c| c.status == "True")
        .map(|c| c.message.clone());
    let health = if agent_live == Some(false) || status.is_some_and(|st| !ready(st)) {
        Health::Error
    } else if problems.is_empty() {
        Health::Ok
    } else {
        Health::Warning
    };
    NodeRow {
        name: name.to_string(),
        health,
        agent: agent.into(),
        daemon: status.and_then(|st| st.daemon.clone()),
        addresses: status
            .map(|st| {
                st.interfaces
                    .iter()
                    .flat_map(|i| {
                        i.addresses
                            .iter()
                            .map(move |a| format!("{a} ({})", i.interface))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        last_apply: status.and_then(|st| st.last_apply.clone()),
        sessions: status
            .and_then(|st| st.routing.as_ref())
            .map(|r| r.summary.clone()),
        draining,
        problems,
    }
}

fn ready(st: &NodeStateStatus) -> bool {
    st.conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .is_none_or(|c| c.status == "True")
}

/// The conditions that say something is wrong: those that should be true and are not, and
/// `RoutingProblems` when true.
fn condition_problems(conditions: &[Condition]) -> Vec<String> {
    conditions
        .iter()
        .filter(|c| match c.type_.as_str() {
            "RoutingProblems" => c.status == "True",
            // informational: the drain is shown on its own; Ready only sums the others
            "Draining" | "Ready" => false,
            _ => c.status != "True",
        })
        .map(|c| format!("{}: {}", c.type_, c.message))
        .collect()
}

/// Whether each node's agent is alive, by node name, from its Lease.
fn agent_states(s: &Snapshot) -> BTreeMap<String, bool> {
    s.leases
        .iter()
        .filter_map(|l| {
            let node = crate::membership::member_of(l)?.node;
            let spec = l.spec.as_ref()?;
            let renewed = spec.renew_time.as_ref()?.0;
            let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
            let live = s.now.as_second() <= renewed.as_second() + duration;
            Some((node, live))
        })
        .collect()
}

// ------------------------------------------------------------------------------- pools --

/// One pool and family: how full it is.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolRow {
    pub name: String,
    pub health: Health,
    pub mode: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
    pub allocated: u64,
    pub available: u64,
    /// Allocated out of allocated + available, in percent.
    pub used_percent: f64,
    /// Services that may use only this pool and got no address from it (its name in their
    /// `routelb.io/pool` annotation).
    pub waiting_services: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// How full a pool must be for its row to read as a warning.
pub const NEARLY_FULL_PERCENT: f64 = 90.0;

/// Each pool's families that hold addresses (both when it holds none, so it shows), sorted
/// by name.
pub fn pools(s: &Snapshot) -> Vec<PoolRow> {
    let mut rows = Vec::new();
    let mut sorted: Vec<&AddressPool> = s.pools.iter().collect();
    sorted.sort_by_key(|p| p.name_any());
    for pool in sorted {
        let problem = match &pool.status {
            None => Some("no status yet: is the allocator running and leading?".to_string()),
            Some(st) => pool_problem(&st.conditions),
        };
        let status = pool.status.clone().unwrap_or_default();
        let waiting = s
            .services
            .iter()
            .filter(|svc| {
                svc.annotations().get(annotations::POOL) == Some(&pool.name_any())
                    && svc
                        .annotations()
                        .contains_key(annotations::ALLOCATION_ERROR)
            })
            .count() as u32;
        let families: Vec<(&str, &FamilyCounts)> = [("ipv4", &status.ipv4), ("ipv6", &status.ipv6)]
            .into_iter()
            .filter(|(_, c)| c.allocated + c.available > 0)
            .collect();
        let families = if families.is_empty() {
            vec![("ipv4", &status.ipv4)]
        } else {
            families
        };
        for (family, counts) in families {
            let total = counts.allocated.saturating_add(counts.available);
            let used_percent = if total == 0 {
                0.0
            } else {
                counts.allocated as f64 * 100.0 / total as f64
            };
            let health = if problem.is_some() || (total == 0 && waiting > 0) {
                Health::Error
            } else if used_percent >= NEARLY_FULL_PERCENT || waiting > 0 {
                Health::Warning
            } else {
                Health::Ok
            };
            rows.push(PoolRow {
                name: pool.name_any(),
                health,
                mode: mode_name(pool.spec.mode).into(),
                family: family.into(),
                allocated: counts.allocated,
                available: counts.available,
                used_percent,
                waiting_services: waiting,
                problem: problem.clone(),
            });
        }
    }
    rows
}

fn pool_problem(conditions: &[Condition]) -> Option<String> {
    let bad: Vec<String> = conditions
        .iter()
        .filter(|c| match c.type_.as_str() {
            "Ready" => c.status != "True",
            "Invalid" | "Overlapping" => c.status == "True",
            _ => false,
        })
        .map(|c| format!("{}: {}", c.type_, c.message))
        .collect();
    (!bad.is_empty()).then(|| bad.join("; "))
}

/// `[#######...]` of `width` cells, `percent` of them full.
pub fn bar(percent: f64, width: usize) -> String {
    let full = ((percent / 100.0) * width as f64)
        .round()
        .clamp(0.0, width as f64) as usize;
    format!("[{}{}]", "#".repeat(full), ".".repeat(width - full))
}

// --------------------------------------------------------------------------------- why --

/// The chain of reasons for one Service, from its definition to the routers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Why {
    pub service: String,
    pub health: Health,
    /// The one-line answer: the first step that is not ok, or where it is announced.
    pub verdict: String,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    pub health: Health,
    /// What is checked: `service`, `address`, `pool`, `policy`, `nodes`, `peers`, `event`.
    pub what: String,
    pub fact: String,
}

fn step(health: Health, what: &str, fact: String) -> Step {
    Step {
        health,
        what: what.into(),
        fact,
    }
}

/// Why the Service `namespace/name` has or has not an address, and where it is announced.
pub fn why(s: &Snapshot, namespace: &str, name: &str) -> Why {
    let key = format!("{namespace}/{name}");
    let steps = match s
        .services
        .iter()
        .find(|svc| svc.namespace().as_deref() == Some(namespace) && svc.name_any() == name)
    {
        None => vec![step(Health::Error, "service", format!("no Service {key}"))],
        Some(svc) => why_steps(s, svc),
    };
    let worst = steps.iter().map(|st| st.health).min().unwrap_or(Health::Ok);
    let verdict = steps
        .iter()
        .find(|st| st.health == worst && worst != Health::Ok)
        .or_else(|| steps.iter().rev().find(|st| st.what != "event"))
        .map(|st| st.fact.clone())
        .unwrap_or_default();
    Why {
        service: key,
        health: worst,
        verdict,
        steps,
    }
}

fn why_steps(s: &Snapshot, svc: &Service) -> Vec<Step> {
    let mut steps = Vec::new();
    let spec = svc.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() != Some("LoadBalancer") {
        steps.push(step(
            Health::Error,
            "service",
            format!(
                "type {}, not LoadBalancer: routelb gives addresses to LoadBalancer Services only",
                spec.type_.as_deref().unwrap_or("ClusterIP")
            ),
        ));
        return steps;
    }
    if !ipam::managed(svc, &s.class, s.require_class) {
        let why = match spec.load_balancer_class.as_deref() {
            Some(c) => format!(
                "loadBalancerClass {c} is another controller's (routelb serves {})",
                s.class
            ),
            None => format!(
                "no loadBalancerClass, and routelb serves only {} (--require-class)",
                s.class
            ),
        };
        steps.push(step(Health::Error, "service", why));
        return steps;
    }
    steps.push(step(
        Health::Ok,
        "service",
        format!(
            "type LoadBalancer, served by routelb (class {})",
            spec.load_balancer_class
                .as_deref()
                .unwrap_or("none: the default")
        ),
    ));
    let ann = svc.annotations();
    let ips = ipam::ingress_ips(svc);
    if let Some(requested) = ann.get(annotations::POOL) {
        steps.push(pool_step(s, requested, "requested pool"));
    }
    if let Some(e) = ann.get(annotations::ALLOCATION_ERROR) {
        steps.push(step(Health::Error, "address", format!("no address: {e}")));
        if s.pools.is_empty() {
            steps.push(step(
                Health::Error,
                "pool",
                "there is no AddressPool at all".into(),
            ));
        }
        push_events(s, &mut steps);
        return steps;
    }
    if ips.is_empty() {
        steps.push(step(
            Health::Warning,
            "address",
            "no address yet, and no error: is the allocator running and leading?".into(),
        ));
        push_events(s, &mut steps);
        return steps;
    }
    let listed: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
    steps.push(step(
        Health::Ok,
        "address",
        format!("has {}", listed.join(", ")),
    ));
    if let Some(w) = ann.get(annotations::ALLOCATION_WARNING) {
        steps.push(step(Health::Warning, "address", w.clone()));
    }
    let pool = ann
        .get(annotations::POOL_USED)
        .and_then(|p| find_pool(s, p));
    if let Some(p) = ann.get(annotations::POOL_USED) {
        steps.push(pool_step(s, p, "from pool"));
    }
    let routed = pool.is_none_or(|p| p.spec.mode == PoolMode::Routed);
    if routed && let Some(p) = pool {
        steps.push(policy_step(s, p));
    }
    let announced_by = split_list(ann.get(annotations::ANNOUNCING));
    if announced_by.is_empty() {
        steps.push(step(
            Health::Error,
            "nodes",
            format!("not announced: {}", not_announced_reason(s, svc, &ips)),
        ));
    } else {
        steps.push(step(
            Health::Ok,
            "nodes",
            format!("announced by {}", announced_by.join(", ")),
        ));
        if routed {
            steps.push(peers_step(s, &announced_by, &ips));
        }
    }
    push_events(s, &mut steps);
    steps
}

fn pool_step(s: &Snapshot, name: &str, how: &str) -> Step {
    match find_pool(s, name) {
        None => step(
            Health::Error,
            "pool",
            format!("{how} {name} does not exist"),
        ),
        Some(p) => {
            let status = p.status.clone().unwrap_or_default();
            match pool_problem(&status.conditions) {
                Some(problem) => step(Health::Error, "pool", format!("{how} {name}: {problem}")),
                None => {
                    let usage: Vec<String> = [("ipv4", &status.ipv4), ("ipv6", &status.ipv6)]
                        .into_iter()
                        .filter(|(_, c)| c.allocated + c.available > 0)
                        .map(|(f, c)| format!("{f} {} used, {} free", c.allocated, c.available))
                        .collect();
                    step(
                        Health::Ok,
                        "pool",
                        format!(
                            "{how} {name} ({}): {}",
                            mode_name(p.spec.mode),
                            if usage.is_empty() {
                                "no addresses".into()
                            } else {
                                usage.join(", ")
                            }
                        ),
                    )
                }
            }
        }
    }
}

/// Which RoutingPolicies export a routed pool, through which protocols.
fn policy_step(s: &Snapshot, pool: &AddressPool) -> Step {
    let resolved = crate::render::policy::resolve(&s.pools, &s.policies, None);
    let name = pool.name_any();
    let exporting: Vec<String> = resolved
        .rules
        .iter()
        .flat_map(|(proto, rules)| {
            rules
                .iter()
                .filter(|r| r.pools.iter().any(|&i| resolved.pools[i].name == name))
                .map(move |r| format!("{} ({})", r.name, format!("{proto:?}").to_lowercase()))
        })
        .collect();
    if exporting.is_empty() {
        let invalid: Vec<String> = resolved.problems.iter().map(|p| p.to_string()).collect();
        let more = if invalid.is_empty() {
            String::new()
        } else {
            format!(" (invalid policies: {})", invalid.join("; "))
        };
        step(
            Health::Error,
            "policy",
            format!(
                "no valid RoutingPolicy exports pool {name}: no daemon announces its addresses{more}"
            ),
        )
    } else {
        step(
            Health::Ok,
            "policy",
            format!("exported by {}", exporting.join(", ")),
        )
    }
}

fn peers_step(s: &Snapshot, announced_by: &[String], ips: &[IpAddr]) -> Step {
    let peers = receiving_peers(s, announced_by, ips);
    if !peers.is_empty() {
        let listed: Vec<String> = peers.iter().map(PeerOf::label).collect();
        return step(
            Health::Ok,
            "peers",
            format!("sent to {}", listed.join(", ")),
        );
    }
    if !verified(s, announced_by) {
        return step(
            Health::Ok,
            "peers",
            "not verified yet at the announcing nodes' daemons".into(),
        );
    }
    let down: Vec<String> = s
        .node_states
        .iter()
        .filter_map(|st| Some((st.name_any(), st.status.as_ref()?.advertisement.as_ref()?)))
        .flat_map(|(node, adv)| {
            adv.peers.iter().map(move |p| {
                format!(
                    "{node} → {} ({})",
                    p.peer,
                    if p.up { "filtered" } else { "down" }
                )
            })
        })
        .collect();
    step(
        Health::Warning,
        "peers",
        if down.is_empty() {
            "the announcing nodes' daemons have no peer".into()
        } else {
            format!("no up peer gets it: {}", down.join(", "))
        },
    )
}

/// The Service's latest warning Events, newest first (at most 5).
fn push_events(s: &Snapshot, steps: &mut Vec<Step>) {
    let mut warnings: Vec<&Event> = s
        .events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .collect();
    warnings.sort_by_key(|e| std::cmp::Reverse(event_time(e)));
    for e in warnings.into_iter().take(5) {
        let age = event_time(e)
            .map(|t| format!("{} ago: ", age(s.now, t)))
            .unwrap_or_default();
        steps.push(step(
            Health::Warning,
            "event",
            format!(
                "{age}{} {}",
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("")
            ),
        ));
    }
}

fn event_time(e: &Event) -> Option<Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

// ------------------------------------------------------------------------------ shared --

fn find_pool<'a>(s: &'a Snapshot, name: &str) -> Option<&'a AddressPool> {
    s.pools.iter().find(|p| p.name_any() == name)
}

fn mode_name(mode: PoolMode) -> &'static str {
    match mode {
        PoolMode::Routed => "routed",
        PoolMode::Local => "local",
    }
}

fn family_name(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "ipv4" } else { "ipv6" }
}

fn split_list(v: Option<&String>) -> Vec<String> {
    v.map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect()
    })
    .unwrap_or_default()
}

fn holds(st: &NodeStateStatus, ips: &[IpAddr]) -> bool {
    st.interfaces.iter().flat_map(|i| &i.addresses).any(|a| {
        a.split('/')
            .next()
            .and_then(|a| a.parse::<IpAddr>().ok())
            .is_some_and(|a| ips.contains(&a))
    })
}

fn unadvertised(st: &NodeStateStatus, ips: &[IpAddr]) -> bool {
    st.advertisement
        .iter()
        .flat_map(|a| &a.unadvertised)
        .any(|p| {
            p.parse::<ipnet::IpNet>()
                .is_ok_and(|n| ips.iter().any(|ip| n.contains(ip)))
        })
}

fn condition_message(conditions: &[Condition], type_: &str) -> String {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.message.clone())
        .unwrap_or_else(|| "no reason given".into())
}

/// `42s`, `5m`, `3h`, `2d`: how long ago, as kubectl prints ages.
pub fn age(now: Timestamp, then: Timestamp) -> String {
    let secs = (now.as_second() - then.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests;
