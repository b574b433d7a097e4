//! The test API server started by `integration/k8s/control-plane.sh up` (KUBECONFIG must point
//! at it): a client, the CRDs, namespaces and names. The objects tests create are in
//! `objects.rs`.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::lock;
use super::wait;

/// A client for the test API server, with the CRDs installed, routelb's namespaces present and
/// what earlier runs left behind removed. Only with the API server's lock held (see
/// [`lock::api_server`]): what this removes, and the allocator every such test starts, are
/// cluster-wide.
pub async fn client(_held: &lock::Held) -> Client {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: start the test API server with `eval \"$(integration/k8s/control-plane.sh up | tail -1)\"`"
    );
    let client = Client::try_default().await.expect("kubeconfig loads");
    install_crds(&client).await;
    ensure_namespace(&client, "routelb-system", &[]).await;
    // Where allocators started without --node-lease-namespace look for node Leases.
    ensure_namespace(&client, routelb::membership::DEFAULT_NAMESPACE, &[]).await;
    remove_leftovers(&client).await;
    client
}

/// Services and pools of earlier runs (named by [`unique`]) would hold addresses in the
/// ranges this run's tests expect, so they go first.
async fn remove_leftovers(client: &Client) {
    let is_test_name = |n: &str| {
        let parts: Vec<&str> = n.split('-').collect();
        parts.len() >= 3
            && parts[1].chars().all(|c| c.is_ascii_digit())
            && parts[2].chars().all(|c| c.is_ascii_hexdigit())
    };
    let services: Api<Service> = Api::all(client.clone());
    for s in services
        .list(&ListParams::default())
        .await
        .expect("list services")
        .items
    {
        let ns = s.namespace().unwrap_or_default();
        if is_test_name(&ns) {
            let api: Api<Service> = Api::namespaced(client.clone(), &ns);
            let _ = api.delete(&s.name_any(), &DeleteParams::default()).await;
        }
    }
    let pools: Api<routelb::api::AddressPool> = Api::all(client.clone());
    for p in pools
        .list(&ListParams::default())
        .await
        .expect("list pools")
        .items
    {
        if is_test_name(&p.name_any()) {
            let _ = pools.delete(&p.name_any(), &DeleteParams::default()).await;
        }
    }
}

/// Applies routelb's CRDs and waits until the API server serves them.
async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in routelb::crdgen::all() {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply("routelb-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
        wait::up_to(Duration::from_secs(20))
            .until(|| async {
                let c = api.get(&name).await.ok()?;
                let established = c
                    .status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                established.then_some(())
            })
            .await
            .unwrap_or_else(|| panic!("CRD {name} not established"));
    }
}

pub async fn ensure_namespace(client: &Client, name: &str, labels: &[(&str, &str)]) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": { "name": name, "labels": labels.iter().cloned().collect::<std::collections::BTreeMap<_, _>>() }
    }))
    .unwrap();
    api.patch(
        name,
        &PatchParams::apply("routelb-tests").force(),
        &Patch::Apply(&ns),
    )
    .await
    .expect("namespace");
}

/// A fresh name for one test's namespace or cluster-wide objects: `PREFIX-PID-NANOS`
/// (namespaces are never deleted: v1.20 without controllers would leave them Terminating
/// forever).
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{:x}", std::process::id(), nanos)
}
