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
    /// `live`, `expired` (the agent stopped renewing its Lease), `none` (no Lease: no agent
    /// ran here, or it stopped and removed it) or `unknown` (the Leases could not be read).
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
    let mut names: BTreeSet<String> = s.nodes.iter().flatten().map(|n| n.name_any()).collect();
    names.extend(s.node_states.iter().map(|n| n.name_any()));
    names.extend(agents.iter().flat_map(|a| a.keys().cloned()));
    let states: BTreeMap<String, &NodeStateStatus> = s
        .node_states
        .iter()
        .filter_map(|n| Some((n.name_any(), n.status.as_ref()?)))
        .collect();
    let existing: Option<BTreeSet<String>> = s
        .nodes
        .as_ref()
        .map(|nodes| nodes.iter().map(|n| n.name_any()).collect());
    let mut rows: Vec<NodeRow> = names
        .into_iter()
        .map(|name| {
            let agent = match &agents {
                None => Agent::Unknown,
                Some(a) => match a.get(&name) {
                    Some(true) => Agent::Live,
                    Some(false) => Agent::Expired,
                    None => Agent::None,
                },
            };
            let node_exists = existing.as_ref().map(|e| e.contains(&name));
            node_row(&name, states.get(&name).copied(), agent, node_exists)
        })
        .collect();
    rows.sort_by(|a, b| (a.health, &a.name).cmp(&(b.health, &b.name)));
    rows
}

/// What a node's Lease says of its agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Agent {
    Live,
    Expired,
    None,
    /// The Leases could not be read.
    Unknown,
}

/// `node_exists` is `None` when the Nodes could not be read.
fn node_row(
    name: &str,
    status: Option<&NodeStateStatus>,
    agent: Agent,
    node_exists: Option<bool>,
) -> NodeRow {
    let mut problems: Vec<String> = Vec::new();
    match (agent, status) {
        (Agent::Expired, _) => {
            problems.push("the agent stopped renewing its Lease: its NodeState is stale".into())
        }
        (Agent::Live, None) => problems.push("no NodeState: the agent has not reported yet".into()),
        (Agent::None, Some(_)) => problems.push(
            "no agent Lease: the NodeState is from an agent that stopped (or was removed)".into(),
        ),
        _ => {}
    }
    if node_exists == Some(false) {
        problems.push("no such Node: left over from a deleted node".into());
    }
    if let Some(st) = status {
        problems.extend(condition_problems(&st.conditions));
    }
    let draining = status
        .and_then(|st| st.conditions.iter().find(|c| c.type_ == "Draining"))
        .filter(|c| c.status == "True")
        .map(|c| c.message.clone());
    // A deleted node's Lease and NodeState linger (nothing owns them): worth a look, no alarm.
    let gone = node_exists == Some(false);
    let health = if !gone && (agent == Agent::Expired || status.is_some_and(|st| !ready(st))) {
        Health::Error
    } else if problems.is_empty() {
        Health::Ok
    } else {
        Health::Warning
    };
    NodeRow {
        name: name.to_string(),
        health,
        agent: match agent {
            Agent::Live => "live",
            Agent::Expired => "expired",
            Agent::None => "none",
            Agent::Unknown => "unknown",
        }
        .into(),
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

/// Whether each node's agent is alive, by node name, from its Lease; `None` when the Leases
/// could not be read.
fn agent_states(s: &Snapshot) -> Option<BTreeMap<String, bool>> {
    let leases = s.leases.as_ref()?;
    Some(
        leases
            .iter()
            .filter_map(|l| {
                let node = crate::membership::member_of(l)?.node;
                let renewed = l.spec.as_ref()?.renew_time.as_ref()?.0;
                let duration = crate::membership::duration_of(l)?;
                // `now` is the server's Date: whole seconds
                let deadline = renewed.as_millisecond() + duration.as_millis() as i64 + 1000;
                Some((node, s.now.as_millisecond() <= deadline))
            })
            .collect(),
    )
}
