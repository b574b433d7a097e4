//! Shared harness for tests against the real API server started by
//! `integration/k8s/control-plane.sh up` (KUBECONFIG must point at it).

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

static SERIAL: Mutex<()> = Mutex::new(());

/// Allocator tests run one at a time: each allocator sees every Service in the cluster.
#[allow(clippy::await_holding_lock)] // holding it across awaits is the point
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub async fn client() -> Client {
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
        wait_for(Duration::from_secs(20), || async {
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

/// A fresh namespace name for one test (namespaces are never deleted: v1.20 without
/// controllers would leave them Terminating forever).
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{:x}", std::process::id(), nanos)
}

pub async fn wait_for<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `routelb allocator` process, killed when dropped.
pub struct Allocator {
    pub child: Child,
    pub metrics_port: u16,
    pub identity: String,
}

impl Allocator {
    pub fn start(lease: &str, identity: &str, extra: &[&str]) -> Allocator {
        let metrics_port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_routelb"))
            .args([
                "allocator",
                "--leader-election-lease",
                lease,
                "--identity",
                identity,
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
                "--lease-duration",
                "3s",
                "--renew-period",
                "500ms",
            ])
            .args(extra)
            .env("ROUTELB_LOG_LEVEL", "info,kube=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("routelb binary starts");
        Allocator {
            child,
            metrics_port,
            identity: identity.to_string(),
        }
    }

    pub async fn metrics(&self) -> String {
        http_get(self.metrics_port, "/metrics")
            .await
            .unwrap_or_default()
    }

    pub async fn is_leader(&self) -> bool {
        self.metrics()
            .await
            .lines()
            .any(|l| l == "routelb_is_leader 1")
    }

    pub fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    pub fn stop_gracefully(mut self) {
        self.signal("-TERM");
        let _ = self.child.wait();
    }

    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Allocator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny HTTP/1.0 GET, enough for /metrics and /readyz on loopback.
pub async fn http_get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.1 200").then(|| body.to_string()))
}

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

pub async fn create_pool(client: &Client, name: &str, spec: serde_json::Value) {
    let api: Api<routelb::api::AddressPool> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
    wait_for(Duration::from_secs(10), || async {
        api.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
    let pool: routelb::api::AddressPool =
        serde_json::from_value(json!({ "apiVersion": "routelb.io/v1alpha1", "kind": "AddressPool", "metadata": { "name": name }, "spec": spec }))
            .unwrap();
    api.create(&PostParams::default(), &pool)
        .await
        .unwrap_or_else(|e| panic!("creating pool {name}: {e}"));
}

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
    wait_for(Duration::from_secs(20), || async {
        let ips = ingress_ips(&api.get(name).await.ok()?);
        (ips.len() == n).then_some(ips)
    })
    .await
    .unwrap_or_else(|| panic!("{ns}/{name} never got {n} address(es)"))
}

/// Waits for an annotation to have a value (or to be absent with `None`).
pub async fn wait_annotation(
    client: &Client,
    ns: &str,
    name: &str,
    key: &str,
    pred: impl Fn(Option<&String>) -> bool,
) -> Service {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    wait_for(Duration::from_secs(20), || async {
        let s = api.get(name).await.ok()?;
        pred(s.annotations().get(key)).then_some(s)
    })
    .await
    .unwrap_or_else(|| panic!("{ns}/{name}: annotation {key} never matched"))
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

pub async fn wait_event(client: &Client, ns: &str, name: &str, reason: &str) {
    wait_for(Duration::from_secs(20), || async {
        event_reasons(client, ns, name)
            .await
            .iter()
            .any(|r| r == reason)
            .then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("no {reason} event for {ns}/{name}"));
}
