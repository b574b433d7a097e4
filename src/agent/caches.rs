//! The agent's watch caches: what it reads of the cluster. Every change but a node Lease
//! renewal wakes a pass (`changed`); renewals wake only a membership check (`leases_changed`),
//! since every node renews every renew period.

use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PartialObjectMeta};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio::sync::Notify;

use super::Config;
use crate::api::{AddressPool, RoutingPolicy, RoutingRollout};
use crate::membership;
use crate::watch::{cache, cache_with, keep};
use k8s_openapi::api::apps::v1::ControllerRevision;

pub struct Caches {
    pub services: Store<Service>,
    pub slices: Store<DynamicObject>,
    pub pools: Store<AddressPool>,
    pub policies: Store<RoutingPolicy>,
    pub leases: Store<Lease>,
    pub nodes: Store<Node>,
    /// Metadata only: namespace labels decide which pools admit a Service.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// The RoutingRollout followed, and its revisions.
    pub rollouts: Store<RoutingRollout>,
    pub revisions: Store<ControllerRevision>,
    pub changed: Arc<Notify>,
    pub leases_changed: Arc<Notify>,
}

impl Caches {
    pub async fn start(client: &Client, cfg: &Config) -> anyhow::Result<Caches> {
        let changed = Arc::new(Notify::new());
        let leases_changed = Arc::new(Notify::new());
        let slice_resource = slice_resource(client).await?;
        tracing::info!(version = %slice_resource.version, "reading EndpointSlices");
        let all = watcher::Config::default;
        Ok(Caches {
            services: cache(
                Api::all(client.clone()),
                crate::watch::busy(),
                "services",
                crate::watch::slim_service,
                changed.clone(),
            ),
            slices: cache_with(
                Api::<DynamicObject>::all_with(client.clone(), &slice_resource),
                slice_resource.clone(),
                crate::watch::busy(),
                "endpointslices",
                super::endpoints::slim,
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
            leases: cache(
                Api::namespaced(client.clone(), &cfg.lease_namespace),
                membership::lease_watch(),
                "leases",
                keep,
                leases_changed.clone(),
            ),
            nodes: cache(
                Api::all(client.clone()),
                all().fields(&format!("metadata.name={}", cfg.node)),
                "node",
                |n: &mut Node| {
                    n.managed_fields_mut().clear();
                    n.status = None;
                },
                changed.clone(),
            ),
            namespaces: cache(
                Api::all(client.clone()),
                all(),
                "namespaces",
                keep,
                changed.clone(),
            ),
            rollouts: crate::watch::rollout_cache(client, &cfg.rollout, changed.clone()),
            revisions: crate::watch::revision_cache(client, &cfg.rollout, changed.clone()),
            changed,
            leases_changed,
        })
    }

    pub async fn wait_until_ready(&self) -> anyhow::Result<()> {
        self.namespaces.wait_until_ready().await?;
        self.services.wait_until_ready().await?;
        self.slices.wait_until_ready().await?;
        self.pools.wait_until_ready().await?;
        self.policies.wait_until_ready().await?;
        self.leases.wait_until_ready().await?;
        self.nodes.wait_until_ready().await?;
        // Before the first pass: an agent that rendered the live policies before it knew the
        // rollout would apply an edit its node is not allowed yet.
        self.rollouts.wait_until_ready().await?;
        self.revisions.wait_until_ready().await?;
        Ok(())
    }

    /// This node's labels, for policies' node selectors.
    pub fn node_labels(&self, node: &str) -> std::collections::BTreeMap<String, String> {
        self.nodes
            .state()
            .iter()
            .find(|n| n.name_any() == node)
            .map(|n| n.labels().clone())
            .unwrap_or_default()
    }
}

/// The EndpointSlice resource in the newest version the server serves (v1, or v1beta1 before
/// Kubernetes 1.21).
pub async fn slice_resource(client: &Client) -> anyhow::Result<ApiResource> {
    for version in ["v1", "v1beta1"] {
        let gv = format!("discovery.k8s.io/{version}");
        if let Ok(list) = client.list_api_group_resources(&gv).await
            && list.resources.iter().any(|r| r.kind == "EndpointSlice")
        {
            let gvk = GroupVersionKind::gvk("discovery.k8s.io", version, "EndpointSlice");
            return Ok(ApiResource::from_gvk_with_plural(&gvk, "endpointslices"));
        }
    }
    anyhow::bail!("the API server serves EndpointSlices neither as discovery.k8s.io/v1 nor v1beta1")
}
