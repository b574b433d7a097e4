//! The allocator's watch caches: what it reads of the cluster.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Service};
use kube::api::PartialObjectMeta;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio::sync::Notify;

use super::Config;
use crate::api::{AddressPool, NodeState, RoutingPolicy, RoutingRollout};
use crate::membership;
use crate::watch::{cache, keep};

/// The watch caches.
pub struct Caches {
    pub services: Store<Service>,
    pub pools: Store<AddressPool>,
    pub policies: Store<RoutingPolicy>,
    /// Metadata only: namespace labels are all the selectors need.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub node_states: Store<NodeState>,
    pub node_leases: Store<Lease>,
    /// The RoutingRollout it drives, its revisions, the templates ConfigMap they carry (when
    /// configured) and node labels (for the canary's node selector; metadata only).
    pub rollouts: Store<RoutingRollout>,
    pub revisions: Store<ControllerRevision>,
    pub templates: Option<Store<ConfigMap>>,
    pub nodes: Store<PartialObjectMeta<Node>>,
    /// Any change but a node Lease renewal.
    pub changed: Arc<Notify>,
    /// Node lease renewals arrive every renew period from every node: they wake the loop only
    /// to see whether somebody died, not for a pass each.
    pub leases_changed: Arc<Notify>,
    /// NodeState reports: every node reports each routed Service change in its own time, so
    /// they make at most one pass per [`crate::coalesce::NODE_STATES`].
    pub node_states_changed: Arc<Notify>,
}

impl Caches {
    pub fn start(client: &Client, cfg: &Config) -> Caches {
        let changed = Arc::new(Notify::new());
        let leases_changed = Arc::new(Notify::new());
        let node_states_changed = Arc::new(Notify::new());
        let all = watcher::Config::default;
        Caches {
            services: cache(
                Api::all(client.clone()),
                crate::watch::busy(),
                "services",
                crate::watch::slim_service,
                changed.clone(),
            ),
            pools: cache(
                Api::all(client.clone()),
                all(),
                "addresspools",
                keep,
                changed.clone(),
            ),
            policies: cache(
                Api::all(client.clone()),
                all(),
                "routingpolicies",
                keep,
                changed.clone(),
            ),
            namespaces: cache(
                Api::all(client.clone()),
                all(),
                "namespaces",
                keep,
                changed.clone(),
            ),
            node_states: cache(
                Api::all(client.clone()),
                crate::watch::busy(),
                "nodestates",
                |n: &mut NodeState| n.managed_fields_mut().clear(),
                node_states_changed.clone(),
            ),
            node_leases: cache(
                Api::namespaced(client.clone(), &cfg.node_lease_namespace),
                membership::lease_watch(),
                "node leases",
                keep,
                leases_changed.clone(),
            ),
            rollouts: crate::watch::rollout_cache(client, &cfg.rollout, changed.clone()),
            revisions: crate::watch::revision_cache(client, &cfg.rollout, changed.clone()),
            templates: cfg.templates_configmap.as_ref().map(|name| {
                cache(
                    Api::namespaced(client.clone(), &cfg.rollout.namespace),
                    all().fields(&format!("metadata.name={name}")),
                    "templates configmap",
                    |c: &mut ConfigMap| c.managed_fields_mut().clear(),
                    changed.clone(),
                )
            }),
            nodes: cache(
                Api::all(client.clone()),
                all(),
                "nodes",
                keep,
                changed.clone(),
            ),
            changed,
            leases_changed,
            node_states_changed,
        }
    }

    pub async fn wait_until_ready(&self) -> anyhow::Result<()> {
        self.services.wait_until_ready().await?;
        self.pools.wait_until_ready().await?;
        self.policies.wait_until_ready().await?;
        self.node_states.wait_until_ready().await?;
        self.node_leases.wait_until_ready().await?;
        self.namespaces.wait_until_ready().await?;
        self.rollouts.wait_until_ready().await?;
        self.revisions.wait_until_ready().await?;
        self.nodes.wait_until_ready().await?;
        if let Some(t) = &self.templates {
            t.wait_until_ready().await?;
        }
        Ok(())
    }
}
