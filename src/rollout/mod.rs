//! Staged rollout of routing changes (pure). What every node renders from besides Services and
//! pools — the RoutingPolicy specs and the templates — is snapshotted into an immutable
//! *revision* (a ControllerRevision the allocator writes, named after a hash of its content).
//! The allocator moves a `RoutingRollout` from the stable revision to a new one node by node
//! ([`step`]); each agent renders from the revision its node is allowed ([`revision_for`]),
//! so an edit reaches a canary first and, should its routing health regress, no other node.

pub mod step;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::{RoutingPolicy, RoutingPolicySpec, RoutingRolloutStatus};

/// Which RoutingRollout a role follows, and where its revisions live.
#[derive(Clone, Debug)]
pub struct Follow {
    pub name: String,
    pub namespace: String,
}

/// Label on a rollout's ControllerRevisions; its value is the rollout's name.
pub const REVISION_LABEL: &str = "routelb.io/routing-rollout";

/// What one revision holds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    /// Every RoutingPolicy's spec, by name.
    pub policies: BTreeMap<String, RoutingPolicySpec>,
    /// The templates ConfigMap's data (`frr.bgp.conf.tera`: text) when the allocator reads
    /// one; absent: each agent uses its own (directory or built in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<BTreeMap<String, String>>,
}

impl Content {
    pub fn new(policies: &[RoutingPolicy], templates: Option<BTreeMap<String, String>>) -> Self {
        Content {
            policies: policies
                .iter()
                .filter_map(|p| Some((p.metadata.name.clone()?, p.spec.clone())))
                .collect(),
            templates,
        }
    }

    /// The revision's name: the rollout's, and the first 10 hex digits of the SHA-256 of the
    /// content (serialized with sorted keys), so equal content always has the same name.
    pub fn revision_name(&self, rollout: &str) -> String {
        let json = serde_json::to_vec(self).expect("content always serializes");
        let digest = Sha256::digest(&json);
        let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
        format!("{rollout}-{hex}")
    }

    /// The policies as objects: the live object's metadata where one of the name exists (for
    /// Events), the revision's spec always.
    pub fn policies(&self, live: &[RoutingPolicy]) -> Vec<RoutingPolicy> {
        self.policies
            .iter()
            .map(|(name, spec)| {
                let mut p = live
                    .iter()
                    .find(|l| l.metadata.name.as_deref() == Some(name))
                    .cloned()
                    .unwrap_or_else(|| RoutingPolicy::new(name, spec.clone()));
                p.spec = spec.clone();
                p
            })
            .collect()
    }

    /// The templates of one daemon (`frr`, `bird`, `bird1`): file stem → text.
    pub fn templates_of(&self, daemon: &str) -> Option<BTreeMap<String, String>> {
        let prefix = format!("{daemon}.");
        self.templates.as_ref().map(|t| {
            t.iter()
                .filter_map(|(key, text)| {
                    let file = key.strip_prefix(&prefix)?.strip_suffix(".conf.tera")?;
                    Some((file.to_string(), text.clone()))
                })
                .collect()
        })
    }
}

/// The revision `node` renders from, given its rollout's status: the target once the node is
/// among the updated ones, the stable revision otherwise. None while the rollout has no stable
/// revision yet (or none is followed): the node renders from the live policies.
pub fn revision_for<'a>(node: &str, status: Option<&'a RoutingRolloutStatus>) -> Option<&'a str> {
    let status = status?;
    let stable = status.stable_revision.as_deref()?;
    match status.target_revision.as_deref() {
        Some(target) if status.updated_nodes.iter().any(|n| n == node) => Some(target),
        _ => Some(stable),
    }
}
