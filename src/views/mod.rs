//! What operators look at (pure): the rows of `kubectl routelb status`, `nodes` and `pools`,
//! and the chain of reasons of `kubectl routelb why`, joined from one [`Snapshot`] of the
//! cluster. Reading the snapshot and printing are the plugin's shell ([`crate::plugin`]);
//! human tables are drawn by [`table`].

mod nodes;
mod pools;
mod status;
pub mod table;
mod why;

pub use nodes::{NodeRow, nodes};
pub use pools::{NEARLY_FULL_PERCENT, PoolRow, bar, pools};
pub use status::{ServiceRow, status};
pub use why::{Step, Why, why};

use std::net::IpAddr;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Service};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use crate::allocator::announcing::{Announcements, LISTED_ANNOUNCERS, MANY_ANNOUNCERS};
use crate::api::{
    AddressPool, NodeState, NodeStateStatus, PoolMode, RoutingPolicy, address_runs, annotations,
};

/// Everything the views join, read at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub services: Vec<Service>,
    pub pools: Vec<AddressPool>,
    pub policies: Vec<RoutingPolicy>,
    pub node_states: Vec<NodeState>,
    /// `None` when they could not be read (RBAC): the views then say nothing about them.
    pub nodes: Option<Vec<Node>>,
    /// The agents' node Leases: whether an agent is alive. `None` when they could not be read.
    pub leases: Option<Vec<Lease>>,
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

/// The `node/interface` entries announcing a Service: its annotation, or, where that only
/// says [`MANY_ANNOUNCERS`], what the allocator reads from the NodeStates (the nodes holding
/// its addresses with their daemons advertising them).
fn announced_by(s: &Snapshot, svc: &Service, ips: &[IpAddr]) -> Vec<String> {
    let listed = split_list(svc.annotations().get(annotations::ANNOUNCING));
    if listed != [MANY_ANNOUNCERS] {
        return listed;
    }
    let reporting: std::collections::BTreeSet<String> =
        s.node_states.iter().map(|n| n.name_any()).collect();
    Announcements::collect(&s.node_states, &reporting)
        .announcers(ips)
        .into_iter()
        .cloned()
        .collect()
}

/// The announcing entries as a table or a sentence shows them: all up to
/// [`LISTED_ANNOUNCERS`], beyond that the first three and how many.
pub fn announcers_text(announced_by: &[String]) -> String {
    if announced_by.len() <= LISTED_ANNOUNCERS {
        return announced_by.join(",");
    }
    format!(
        "{},… ({} nodes)",
        announced_by[..3].join(","),
        announced_by.len()
    )
}

fn holds(st: &NodeStateStatus, ips: &[IpAddr]) -> bool {
    st.interfaces
        .iter()
        .flat_map(|i| &i.addresses)
        .any(|a| ips.iter().any(|ip| address_runs::contains(a, *ip)))
}

/// Whether the node's daemon advertises any of `ips` to no peer (as the allocator judges it).
fn unadvertised(st: &NodeStateStatus, ips: &[IpAddr]) -> bool {
    crate::allocator::announcing::unadvertised(st)
        .iter()
        .any(|n| ips.iter().any(|ip| n.contains(ip)))
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
