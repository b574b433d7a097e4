//! What an end-to-end test sets up on the test API server around a lab cluster: a namespace
//! (also holding the node Leases), a routed and a local pool inside the lab's ranges, a
//! policy announcing the routed pool, an allocator, and agents on every node.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use routelb::api::{AddressPool, NodeState, NodeStateStatus, RoutingPolicy};
use serde_json::json;

use super::allocator::Allocator;
use super::api::{self, unique};
use super::cluster::{Agent, Cluster};
use super::objects::{self, create_service, service};
use super::{lock, wait};

/// What one test sets up in the cluster: a namespace (also holding the node Leases), a routed
/// and a local pool inside the lab's ranges, a policy announcing the routed pool, and an
/// allocator.
pub struct Setup {
    pub client: Client,
    pub ns: String,
    pub routed: String,
    pub local: String,
    pub policy: String,
    pub allocator: Allocator,
}

impl Setup {
    pub async fn new(api_server: &lock::Held, c: &Cluster, proto: &str) -> Setup {
        Setup::with_allocator(api_server, c, proto, |_| vec![]).await
    }

    /// [`Setup::new`], the allocator given more flags, made from the test's namespace.
    pub async fn with_allocator(
        api_server: &lock::Held,
        c: &Cluster,
        proto: &str,
        flags: impl Fn(&str) -> Vec<String>,
    ) -> Setup {
        let client = api::client(api_server).await;
        let ns = unique("agent");
        api::ensure_namespace(&client, &ns, &[]).await;
        let x = c.index();
        let routed = unique("rt");
        let local = unique("lan");
        let policy = unique("pol");
        let pools: Api<AddressPool> = Api::all(client.clone());
        for (name, mode, addresses) in [
            (
                &routed,
                "routed",
                json!([format!("198.18.{x}.0/27"), format!("2001:db8:78:{x}::/123")]),
            ),
            (
                &local,
                "local",
                json!([
                    format!("10.78.{x}.100-10.78.{x}.131"),
                    format!("fd00:78:{x}::100-fd00:78:{x}::13f")
                ]),
            ),
        ] {
            let pool: AddressPool = serde_json::from_value(json!({
                "apiVersion": "routelb.io/v1alpha1", "kind": "AddressPool",
                "metadata": { "name": name, "labels": { "routelb-test": ns } },
                "spec": { "addresses": addresses, "mode": mode },
            }))
            .unwrap();
            pools.create(&PostParams::default(), &pool).await.unwrap();
        }
        let policies: Api<RoutingPolicy> = Api::all(client.clone());
        let p: RoutingPolicy = serde_json::from_value(json!({
            "apiVersion": "routelb.io/v1alpha1", "kind": "RoutingPolicy",
            "metadata": { "name": policy },
            "spec": { "poolSelector": { "matchLabels": { "routelb-test": ns } }, "protocols": [proto] },
        }))
        .unwrap();
        policies.create(&PostParams::default(), &p).await.unwrap();
        let mut allocator_flags = vec!["--node-lease-namespace".to_string(), ns.clone()];
        allocator_flags.extend(flags(&ns));
        let allocator_flags: Vec<&str> = allocator_flags.iter().map(String::as_str).collect();
        let allocator = Allocator::start(&unique("alloc"), "alloc", &allocator_flags);
        Setup {
            client,
            ns,
            routed,
            local,
            policy,
            allocator,
        }
    }

    /// Agents on every node; `extra` flags for all of them. Returns once every agent's Lease
    /// exists and every agent sees every node (agents starting at the same moment each see
    /// themselves alone at first, and briefly act on that).
    pub async fn agents(&self, c: &Cluster, extra: &[&str]) -> Vec<Agent> {
        let agents: Vec<Agent> = (1..=c.nodes)
            .map(|i| Agent::start(c, i, &self.ns, extra))
            .collect();
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), &self.ns);
        wait::up_to(Duration::from_secs(30))
            .until(|| async {
                (leases.list(&Default::default()).await.ok()?.items.len() == c.nodes).then_some(())
            })
            .await
            .unwrap_or_else(|| panic!("not every agent wrote its lease\n{}", logs(&agents)));
        wait::up_to(Duration::from_secs(20))
            .until(|| async { agents.iter().all(|a| a.sees_every_node(c)).then_some(()) })
            .await
            .unwrap_or_else(|| panic!("the agents never all saw each other\n{}", logs(&agents)));
        agents
    }

    pub async fn service(&self, name: &str, pool: &str, spec: serde_json::Value) -> Vec<String> {
        create_service(
            &self.client,
            service(
                &self.ns,
                name,
                json!({ "metadata": { "annotations": { "routelb.io/pool": pool } }, "spec": spec }),
            ),
        )
        .await;
        let want = if spec.get("ipFamilyPolicy").is_some() {
            2
        } else {
            1
        };
        objects::wait_ips(&self.client, &self.ns, name, want).await
    }

    pub async fn delete_service(&self, name: &str) {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &self.ns);
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }

    pub async fn announcing(&self, name: &str) -> Option<String> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &self.ns);
        api.get(name)
            .await
            .ok()?
            .annotations()
            .get("routelb.io/announcing")
            .cloned()
    }

    pub async fn wait_announcing(&self, name: &str, pred: impl Fn(&str) -> bool) -> String {
        wait::up_to(Duration::from_secs(20))
            .until(|| async {
                let a = self.announcing(name).await.unwrap_or_default();
                pred(&a).then_some(a)
            })
            .await
            .unwrap_or_else(|| panic!("{name}: routelb.io/announcing never matched"))
            .value
    }

    /// An EndpointSlice for the service, in whichever version the server serves, with one
    /// endpoint per (node, ready).
    pub async fn endpoints(&self, svc: &str, endpoints: &[(String, bool)]) {
        let ar = routelb::agent::caches::slice_resource(&self.client)
            .await
            .unwrap();
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &self.ns, &ar);
        let eps: Vec<serde_json::Value> = endpoints
            .iter()
            .enumerate()
            .map(|(i, (node, ready))| {
                json!({
                    "addresses": [format!("10.244.0.{}", i + 1)],
                    "conditions": { "ready": ready },
                    "nodeName": node,
                    "topology": { "kubernetes.io/hostname": node },
                })
            })
            .collect();
        let slice = json!({
            "apiVersion": ar.api_version, "kind": "EndpointSlice",
            "metadata": { "name": format!("{svc}-1"), "namespace": self.ns,
                          "labels": { "kubernetes.io/service-name": svc } },
            "addressType": "IPv4",
            "endpoints": eps,
            "ports": [{ "port": 80, "protocol": "TCP", "name": "" }],
        });
        api.patch(
            &format!("{svc}-1"),
            &PatchParams::apply("routelb-tests").force(),
            &Patch::Apply(&slice),
        )
        .await
        .unwrap();
    }

    pub async fn node_state(&self, node: &str) -> Option<NodeState> {
        Api::<NodeState>::all(self.client.clone())
            .get(node)
            .await
            .ok()
    }

    /// Waits until the node's NodeState status satisfies `pred`; that status.
    pub async fn wait_node_state(
        &self,
        node: &str,
        pred: impl Fn(&NodeStateStatus) -> bool,
    ) -> Option<NodeStateStatus> {
        wait::up_to(Duration::from_secs(20))
            .until(|| async {
                let st = self.node_state(node).await?.status?;
                pred(&st).then_some(st)
            })
            .await
            .map(|w| w.value)
    }

    pub async fn cleanup(&self) {
        let _ = Api::<RoutingPolicy>::all(self.client.clone())
            .delete(&self.policy, &DeleteParams::default())
            .await;
        for p in [&self.routed, &self.local] {
            let _ = Api::<AddressPool>::all(self.client.clone())
                .delete(p, &DeleteParams::default())
                .await;
        }
    }
}

pub fn logs(agents: &[Agent]) -> String {
    agents
        .iter()
        .map(|a| format!("--- agent n{}\n{}", a.node, a.log_tail()))
        .collect::<Vec<_>>()
        .join("\n")
}
