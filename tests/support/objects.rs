//! The objects tests create on the test API server (Services, pools), and waits on them.

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::wait;

/// How long the waits below wait before they fail.
const WAIT: Duration = Duration::from_secs(20);

/// A LoadBalancer Service on port 80/TCP, with `extra` merged into it.
pub fn service(ns: &str, name: &str, extra: serde_json::Value) -> Service {
    let mut v = json!({
        "metadata": { "name": name, "namespace": ns },
        "spec": { "type": "LoadBalancer", "ports": [{ "port": 80, "protocol": "TCP" }] }
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

pub async fn create_service(client: &Client, svc: Service) -> Service {
    let api: Api<Service> = Api::namespaced(client.clone(), &svc.namespace().unwrap());
    api.create(&PostParams::default(), &svc)
        .await
        .unwrap_or_else(|e| panic!("creating {}: {e}", svc.name_any()))
}

/// Creates the pool afresh (deleting one of that name first).
#[allow(dead_code)] // allocator tests
pub async fn create_pool(client: &Client, name: &str, spec: serde_json::Value) {
    let api: Api<routelb::api::AddressPool> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
    wait::up_to(Duration::from_secs(10))
        .until(|| async { api.get_opt(name).await.ok()?.is_none().then_some(()) })
        .await;
    let pool: routelb::api::AddressPool =
        serde_json::from_value(json!({ "apiVersion": "routelb.io/v1alpha1", "kind": "AddressPool", "metadata": { "name": name }, "spec": spec }))
            .unwrap();
    api.create(&PostParams::default(), &pool)
        .await
        .unwrap_or_else(|e| panic!("creating pool {name}: {e}"));
}

#[allow(dead_code)] // allocator tests
pub async fn delete_pool(client: &Client, name: &str) {
    let api: Api<routelb::api::AddressPool> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
}

pub fn ingress_ips(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .map(|i| i.iter().filter_map(|x| x.ip.clone()).collect())
        .unwrap_or_default()
}

/// Waits until the service has `n` ingress addresses, and returns them.
pub async fn wait_ips(client: &Client, ns: &str, name: &str, n: usize) -> Vec<String> {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    wait::up_to(WAIT)
        .until(|| async {
            let ips = ingress_ips(&api.get(name).await.ok()?);
            (ips.len() == n).then_some(ips)
        })
        .await
        .unwrap_or_else(|| panic!("{ns}/{name} never got {n} address(es)"))
        .value
}

/// Waits until an annotation's value (`None`: absent) satisfies `pred`; the Service then.
#[allow(dead_code)] // agent and allocator tests
pub async fn wait_annotation(
    client: &Client,
    ns: &str,
    name: &str,
    key: &str,
    pred: impl Fn(Option<&String>) -> bool,
) -> Service {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    wait::up_to(WAIT)
        .until(|| async {
            let s = api.get(name).await.ok()?;
            pred(s.annotations().get(key)).then_some(s)
        })
        .await
        .unwrap_or_else(|| panic!("{ns}/{name}: annotation {key} never matched"))
        .value
}

/// Event reasons recorded for an object in a namespace.
pub async fn event_reasons(client: &Client, ns: &str, name: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let list = api.list(&ListParams::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

/// Waits for an Event with this reason about the object whose note contains `text`.
#[allow(dead_code)] // routing feature tests
pub async fn wait_event_saying(client: &Client, ns: &str, name: &str, reason: &str, text: &str) {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    wait::up_to(WAIT)
        .until(|| async {
            let list = api.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .any(|e| {
                    e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                        && e.reason.as_deref() == Some(reason)
                        && e.note.as_deref().is_some_and(|n| n.contains(text))
                })
                .then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("no {reason} event for {ns}/{name} saying {text:?}"));
}

/// Waits for an Event with this reason about the object.
#[allow(dead_code)] // agent and allocator tests
pub async fn wait_event(client: &Client, ns: &str, name: &str, reason: &str) {
    wait::up_to(WAIT)
        .until(|| async {
            event_reasons(client, ns, name)
                .await
                .iter()
                .any(|r| r == reason)
                .then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("no {reason} event for {ns}/{name}"));
}
