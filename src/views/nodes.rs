//! `kubectl routelb nodes`: per node, its agent, what it holds and its daemon.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use serde::Serialize;

use super::*;
use crate::api::{ApplyResult, NodeStateStatus};

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
