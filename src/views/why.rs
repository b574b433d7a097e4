//! `kubectl routelb why`: the chain of reasons from a Service to the routers.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Event, Service};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use super::pools::pool_problem;
use super::status::{PeerOf, announcing_nodes, not_announced_reason, receivers, verified};
use super::*;
use crate::api::{AddressPool, PoolMode, annotations, values};
use crate::attributes;
use crate::ipam;

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
    /// What is checked: `service`, `address`, `pool`, `policy`, `attributes`, `nodes`,
    /// `peers`, `event`.
    pub what: String,
    pub fact: String,
}

/// The `what` of the Service's Events, listed after the chain.
const EVENT: &str = "event";

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
    // Events are history (a failover long over leaves a Warning): shown, never the verdict.
    let chain = || steps.iter().filter(|st| st.what != EVENT);
    let worst = chain().map(|st| st.health).min().unwrap_or(Health::Ok);
    let verdict = chain()
        .find(|st| st.health == worst && worst != Health::Ok)
        .or_else(|| chain().next_back())
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
    let served = served_step(s, svc);
    let ok = served.health == Health::Ok;
    let mut steps = vec![served];
    if ok {
        address_steps(s, svc, &mut steps);
        push_events(s, svc, &mut steps);
    }
    steps
}

/// Whether routelb serves the Service at all: its type and class.
fn served_step(s: &Snapshot, svc: &Service) -> Step {
    let spec = svc.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() != Some("LoadBalancer") {
        let fact = format!(
            "type {}, not LoadBalancer: routelb gives addresses to LoadBalancer Services only",
            spec.type_.as_deref().unwrap_or("ClusterIP")
        );
        return step(Health::Error, "service", fact);
    }
    if !ipam::managed(svc, &s.class, s.require_class) {
        let fact = match spec.load_balancer_class.as_deref() {
            Some(c) => format!(
                "loadBalancerClass {c} is another controller's (routelb serves {})",
                s.class
            ),
            None => format!(
                "no loadBalancerClass, and routelb serves only {} (--require-class)",
                s.class
            ),
        };
        return step(Health::Error, "service", fact);
    }
    let class = spec
        .load_balancer_class
        .as_deref()
        .unwrap_or("none: the default");
    step(
        Health::Ok,
        "service",
        format!("type LoadBalancer, served by routelb (class {class})"),
    )
}

/// The pool asked for, the address, the pool it came from and, once it has one, who
/// announces it.
fn address_steps(s: &Snapshot, svc: &Service, steps: &mut Vec<Step>) {
    let ann = svc.annotations();
    if let Some(requested) = ann.get(annotations::POOL) {
        steps.push(pool_step(s, requested, "requested pool"));
    }
    if let Some(e) = ann.get(annotations::ALLOCATION_ERROR) {
        steps.push(step(Health::Error, "address", format!("no address: {e}")));
        if s.pools.is_empty() {
            let fact = "there is no AddressPool at all".into();
            steps.push(step(Health::Error, "pool", fact));
        }
        return;
    }
    let ips = ipam::ingress_ips(svc);
    if ips.is_empty() {
        let fact = "no address yet, and no error: is the allocator running and leading?";
        steps.push(step(Health::Warning, "address", fact.into()));
        return;
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
    let used = ann.get(annotations::POOL_USED);
    if let Some(p) = used {
        steps.push(pool_step(s, p, "from pool"));
    }
    let pool = used.and_then(|p| find_pool(s, p));
    let routed = pool.is_none_or(|p| p.spec.mode == PoolMode::Routed);
    if routed && let Some(p) = pool {
        steps.push(policy_step(s, p));
    }
    steps.extend(attributes_step(svc));
    announce_steps(s, svc, &ips, routed, steps);
}

/// What the Service asks of its routes ([`attributes::ANNOTATIONS`]) and what the allocator
/// found refused; nothing when it asks nothing.
fn attributes_step(svc: &Service) -> Option<Step> {
    let ann = svc.annotations();
    if let Some(refused) = ann.get(annotations::REFUSED_ATTRIBUTES) {
        let fact = format!("refused: {refused}");
        return Some(step(Health::Warning, "attributes", fact));
    }
    let asked: Vec<String> = attributes::ANNOTATIONS
        .iter()
        .filter_map(|(a, _)| ann.get(*a).map(|v| format!("{a}={}", values::shown(v))))
        .collect();
    (!asked.is_empty()).then(|| {
        step(
            Health::Ok,
            "attributes",
            format!("granted: {}", asked.join(", ")),
        )
    })
}

/// Which nodes announce the addresses and, for a routed pool, which peers get them.
fn announce_steps(
    s: &Snapshot,
    svc: &Service,
    ips: &[IpAddr],
    routed: bool,
    steps: &mut Vec<Step>,
) {
    let announced_by = announced_by(s, svc, ips);
    if announced_by.is_empty() {
        let fact = format!("not announced: {}", not_announced_reason(s, svc, ips));
        steps.push(step(Health::Error, "nodes", fact));
        return;
    }
    let fact = format!("announced by {}", announcers_text(&announced_by));
    steps.push(step(Health::Ok, "nodes", fact));
    if routed {
        steps.push(peers_step(s, &announced_by, ips));
    }
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
    if !verified(s, announced_by) {
        let fact = "not verified yet at the announcing nodes' daemons".into();
        return step(Health::Ok, "peers", fact);
    }
    let mut missing = Vec::new();
    let mut sent = BTreeSet::new();
    for ip in ips {
        let peers = receivers(s, announced_by, ip);
        if peers.is_empty() {
            missing.push(format!(
                "{ip} reaches no up peer ({})",
                peers_of_family(s, announced_by, ip)
            ));
        }
        sent.extend(peers.iter().map(PeerOf::label));
    }
    if missing.is_empty() {
        let listed: Vec<String> = sent.into_iter().collect();
        return step(
            Health::Ok,
            "peers",
            format!("sent to {}", listed.join(", ")),
        );
    }
    step(Health::Warning, "peers", missing.join("; "))
}

/// The announcing nodes' peers of `ip`'s family, each down or filtering it.
fn peers_of_family(s: &Snapshot, announced_by: &[String], ip: &IpAddr) -> String {
    let nodes = announcing_nodes(announced_by);
    let listed: Vec<String> = s
        .node_states
        .iter()
        .filter(|st| nodes.contains(st.name_any().as_str()))
        .filter_map(|st| Some((st.name_any(), st.status.as_ref()?.advertisement.as_ref()?)))
        .flat_map(|(node, adv)| {
            adv.peers
                .iter()
                .filter(|p| p.family == family_name(ip))
                .map(move |p| {
                    let why = if p.up { "filters it" } else { "down" };
                    format!("{node} → {}: {why}", p.peer)
                })
        })
        .collect();
    if listed.is_empty() {
        format!(
            "the announcing nodes' daemons have no {} peer",
            family_name(ip)
        )
    } else {
        listed.join(", ")
    }
}

/// The Service's latest warning Events, newest first (at most 5).
fn push_events(s: &Snapshot, svc: &Service, steps: &mut Vec<Step>) {
    let uid = svc.metadata.uid.as_deref();
    let mut warnings: Vec<&Event> = s
        .events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        // a deleted Service of the same name had its own
        .filter(|e| {
            uid.is_none()
                || e.involved_object
                    .uid
                    .as_deref()
                    .is_none_or(|u| Some(u) == uid)
        })
        .collect();
    warnings.sort_by_key(|e| std::cmp::Reverse(event_time(e)));
    for e in warnings.into_iter().take(5) {
        let age = event_time(e)
            .map(|t| format!("{} ago: ", age(s.now, t)))
            .unwrap_or_default();
        steps.push(step(
            Health::Warning,
            EVENT,
            format!(
                "{age}{} {}",
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("")
            ),
        ));
    }
}

/// When it last happened: a repeated Event (events.k8s.io, as kube's recorder writes them)
/// keeps its first time and counts repeats in its series.
fn event_time(e: &Event) -> Option<Timestamp> {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref())
        .map(|t| t.0)
        .or_else(|| e.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}
