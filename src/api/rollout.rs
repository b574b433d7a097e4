//! `RoutingRollout`: how a change to the routing inputs every node renders from (RoutingPolicy
//! specs, the templates ConfigMap) reaches the nodes: a canary, then waves, each gated on the
//! routing health the nodes report. Spec written by people, status by the allocator.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The rollout strategy. Cluster-scoped; the allocator and agents follow the one named by
/// their `--rollout` flag (`default`).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "routelb.io",
    version = "v1alpha1",
    kind = "RoutingRollout",
    plural = "routingrollouts",
    shortname = "lbrollout",
    category = "routelb",
    status = "RoutingRolloutStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "How edits of RoutingPolicies and templates reach the nodes: canary, waves, health gates.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Stable","type":"string","jsonPath":".status.stableRevision"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".status.targetRevision"}"#,
    printcolumn = r#"{"name":"Updated","type":"string","jsonPath":".status.updated"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RoutingRolloutSpec {
    /// The first nodes to get a change.
    #[serde(default)]
    pub canary: Canary,
    /// Each following wave adds this share of the nodes (at least one node), 1-100.
    #[serde(default = "default_wave_percent")]
    #[schemars(range(min = 1, max = 100))]
    pub wave_percent: u32,
    /// How long a wave's nodes must stay healthy after applying before the next wave starts
    /// (`90s`, `5m`).
    #[serde(default = "default_soak")]
    pub soak: String,
    /// The share of a node's prefixes its peers may stop getting after a change (0-100)
    /// before the rollout halts. 0: any prefix lost halts it.
    #[serde(default)]
    #[schemars(range(max = 100))]
    pub max_prefix_drop_percent: u32,
    /// How long a wave's nodes have to apply the change before the rollout halts.
    #[serde(default = "default_progress_deadline")]
    pub progress_deadline: String,
    /// Holds the rollout where it is: no new wave starts (nodes already updated stay).
    #[serde(default)]
    pub paused: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Canary {
    /// How many nodes; the larger of this and `percent` counts.
    #[serde(default = "one")]
    pub nodes: u32,
    /// Share of the nodes, 0-100.
    #[serde(default)]
    #[schemars(range(max = 100))]
    pub percent: u32,
    /// Nodes picked first for the canary, by label; others fill up the count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
}

impl Default for Canary {
    fn default() -> Self {
        Canary {
            nodes: 1,
            percent: 0,
            node_selector: None,
        }
    }
}

fn one() -> u32 {
    1
}
fn default_wave_percent() -> u32 {
    25
}
fn default_soak() -> String {
    "60s".into()
}
fn default_progress_deadline() -> String {
    "5m".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutingRolloutStatus {
    /// `Complete` (every node on the stable revision), `Progressing`, `Paused` or `Halted`.
    /// (Optional, like every string here: Kubernetes 1.20 refuses an empty default.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The revision every node not updated renders from: the last one that completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// The revision being rolled out (or halted), absent when complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_revision: Option<String>,
    /// 1 for the canary, then one more per wave.
    #[serde(default)]
    pub wave: u32,
    /// Nodes allowed the target revision. Always written, empty too: the status is
    /// merge-patched.
    #[serde(default)]
    pub updated_nodes: Vec<String>,
    /// `updated/live nodes`, as `kubectl get routingrollouts` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// What the rollout waits for, or why it halted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The node whose health or failure halted the rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted_by: Option<String>,
    /// RFC 3339: when the target's rollout started, the current wave started, it halted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave_started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<String>,
}

/// What a node reports of the routing revision it renders from (`NodeState.status.revision`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionStatus {
    /// The revision the daemon has (or, with `error`, the one it could not get).
    pub name: String,
    /// RFC 3339: when the daemon accepted the fragment rendered from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
    /// Routing health just before it was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<HealthCounts>,
    /// Routing health at the latest look since it was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<HealthCounts>,
    /// Why it could not be rendered or applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The figures a rollout's health gate compares.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCounts {
    /// RFC 3339 time of the look.
    pub time: String,
    /// Sessions and adjacencies up, of all the daemon keeps.
    pub sessions_up: u32,
    pub sessions_total: u32,
    /// This node's prefixes its peers are sent, summed over peers, and those meant for a peer
    /// that it is not sent.
    pub advertised: u32,
    pub missing: u32,
}

/// What a node's daemon would change with the revision its rollout rolls out (or holds
/// paused), computed by its agent before it gets it (`NodeState.status.pendingRevision`):
/// what `routelb plan` shows for the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingRevision {
    pub name: String,
    /// `N change(s), M line(s); R session reset(s), F ROUTE-REFRESH(es)`.
    pub summary: String,
    /// The first changes (at most 24), each with its first lines (at most 12).
    #[serde(default)]
    pub steps: Vec<PlannedStep>,
    /// Why it could not be planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStep {
    pub object: String,
    pub lines: Vec<String>,
    /// Lines not listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_lines: u32,
    pub effects: Vec<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
