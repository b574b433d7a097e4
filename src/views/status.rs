//! `kubectl routelb status`: per Service, where it is announced, to whom, and what is wrong.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use serde::Serialize;

use super::*;
use crate::api::{PoolMode, annotations};
use crate::ipam;

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
    let announced_by = announced_by(s, svc, &ips);
    let routed = pool_object.is_none_or(|p| p.spec.mode == PoolMode::Routed);
    let peers = if routed {
        receiving_peers(s, &announced_by, &ips)
    } else {
        Vec::new()
    };
    let (health, problem) = service_problem(s, svc, &ips, &announced_by, routed);
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
    if let Some(r) = ann.get(annotations::REFUSED_ATTRIBUTES) {
        return (Health::Warning, Some(format!("refused attributes: {r}")));
    }
    let problems = address_problems(s, announced_by, ips, routed);
    if !problems.is_empty() {
        return (Health::Warning, Some(problems.join("; ")));
    }
    (Health::Ok, None)
}

/// Why no node announces a Service: what the node reporting on it says, else what the
/// daemons of nodes that hold its addresses say, else that nobody holds them.
pub(super) fn not_announced_reason(s: &Snapshot, svc: &Service, ips: &[IpAddr]) -> String {
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
                crate::allocator::announcing::why_unadvertised(st)
            )
        })
        .collect();
    if !silent.is_empty() {
        return silent.join("; ");
    }
    "no live node holds its addresses".into()
}

/// One up peer of an announcing node that gets a Service's address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct PeerOf {
    node: String,
    peer: String,
    /// The peer misses more prefixes than NodeState names, and this one is not named: it
    /// may not get it.
    unsure: bool,
}

impl PeerOf {
    pub(super) fn label(&self) -> String {
        let unsure = if self.unsure { " (unsure)" } else { "" };
        format!("{} → {}{unsure}", self.node, self.peer)
    }
}

/// The nodes of a `routelb.io/announcing` list.
pub(super) fn announcing_nodes(announced_by: &[String]) -> BTreeSet<&str> {
    announced_by
        .iter()
        .map(|a| a.split('/').next().unwrap_or(a))
        .collect()
}

/// The up peers of the announcing nodes that get `ip`: of its family, not listing its prefix
/// as missing.
pub(super) fn receivers(s: &Snapshot, announced_by: &[String], ip: &IpAddr) -> Vec<PeerOf> {
    let nodes = announcing_nodes(announced_by);
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
        for p in adv
            .peers
            .iter()
            .filter(|p| p.up && p.family == family_name(ip))
        {
            let named: Vec<ipnet::IpNet> = p
                .missing_prefixes
                .iter()
                .filter_map(|m| m.parse().ok())
                .collect();
            if named.iter().any(|m| m.contains(ip)) {
                continue;
            }
            let peer = match &p.vrf {
                Some(vrf) => format!("{} (vrf {vrf})", p.peer),
                None => p.peer.clone(),
            };
            out.insert(PeerOf {
                node: node.clone(),
                peer,
                unsure: p.missing as usize > named.len(),
            });
        }
    }
    out.into_iter().collect()
}

/// The peers that get any of the addresses.
pub(super) fn receiving_peers(
    s: &Snapshot,
    announced_by: &[String],
    ips: &[IpAddr],
) -> Vec<PeerOf> {
    let all: BTreeSet<PeerOf> = ips
        .iter()
        .flat_map(|ip| receivers(s, announced_by, ip))
        .collect();
    all.into_iter().collect()
}

/// What is wrong with each address of an announced Service: held by none of the announcing
/// nodes (dual-stack: one family lost), or, once verified, sent to no up peer.
fn address_problems(
    s: &Snapshot,
    announced_by: &[String],
    ips: &[IpAddr],
    routed: bool,
) -> Vec<String> {
    let nodes = announcing_nodes(announced_by);
    let states: Vec<&crate::api::NodeStateStatus> = s
        .node_states
        .iter()
        .filter(|st| nodes.contains(st.name_any().as_str()))
        .filter_map(|st| st.status.as_ref())
        .collect();
    let mut problems = Vec::new();
    for ip in ips {
        if !states.is_empty() && !states.iter().any(|st| holds(st, std::slice::from_ref(ip))) {
            problems.push(format!("{ip} is held by none of the announcing nodes"));
            continue;
        }
        if !routed || !verified(s, announced_by) {
            continue;
        }
        let peers = receivers(s, announced_by, ip);
        if peers.is_empty() {
            problems.push(format!("{ip} reaches no up peer of the announcing nodes"));
        } else if peers.iter().all(|p| p.unsure) {
            problems.push(format!(
                "{ip} may reach no peer: its peers miss more prefixes than NodeState names"
            ));
        }
    }
    problems
}

/// Whether every announcing node's agent verified what its daemon advertises.
pub(super) fn verified(s: &Snapshot, announced_by: &[String]) -> bool {
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
