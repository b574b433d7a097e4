//! End to end on the local API server: Service created → status.loadBalancer.ingress set.
//! Needs KUBECONFIG (integration/k8s/control-plane.sh up). Run: `cargo bench --bench allocator_e2e`.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, CustomResourceExt, ResourceExt};
use serde_json::json;

const SERVICES: usize = 200;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for (_, crd) in routelb::crdgen::all() {
        crds.patch(
            &crd.name_any(),
            &PatchParams::apply("bench").force(),
            &Patch::Apply(&crd),
        )
        .await?;
    }
    let _ = routelb::api::AddressPool::crd_name();
    let ns = format!(
        "bench-{}-{:x}",
        std::process::id(),
        Instant::now().elapsed().subsec_nanos() | 1
    );
    let nss: Api<Namespace> = Api::all(client.clone());
    for name in [
        ns.as_str(),
        "routelb-system",
        routelb::membership::DEFAULT_NAMESPACE,
    ] {
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        nss.patch(
            name,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(&n),
        )
        .await?;
    }
    let pools: Api<routelb::api::AddressPool> = Api::all(client.clone());
    let pool_name = format!("{ns}-pool");
    let pool: routelb::api::AddressPool = serde_json::from_value(json!({
        "apiVersion": "routelb.io/v1alpha1", "kind": "AddressPool",
        "metadata": {"name": pool_name},
        "spec": {"addresses": ["10.250.0.0/22"], "allocation": {"namespaces": [ns]}}
    }))?;
    pools.create(&PostParams::default(), &pool).await?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut alloc = Command::new(env!("CARGO_BIN_EXE_routelb"))
        .args([
            "allocator",
            "--leader-election-lease",
            &ns,
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env("ROUTELB_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Watch first, so every status update is seen the moment the API server sends it.
    let api: Api<Service> = Api::namespaced(client.clone(), &ns);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let watch_api = api.clone();
    tokio::spawn(async move {
        let mut stream =
            std::pin::pin!(watcher(watch_api, watcher::Config::default()).applied_objects());
        while let Some(Ok(svc)) = stream.next().await {
            let has_ip = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.as_ref())
                .is_some_and(|i| !i.is_empty());
            if has_ip {
                let _ = tx.send((svc.name_any(), Instant::now()));
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut created: HashMap<String, Instant> = HashMap::new();
    let mut latencies = Vec::new();
    for i in 0..SERVICES {
        let name = format!("s{i}");
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}
        }))?;
        let t = Instant::now();
        api.create(&PostParams::default(), &svc).await?;
        created.insert(name.clone(), t);
        // One at a time, as users create them: latency, not queueing, is what is measured.
        loop {
            let (n, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await?
                .expect("watch runs");
            if let Some(t0) = created.remove(&n) {
                latencies.push(at - t0);
                if n == name {
                    break;
                }
            }
        }
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1)].as_secs_f64()
            * 1e3
    };
    println!(
        "Service created -> status.loadBalancer.ingress, {} services one at a time: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );

    // Burst: 200 more created as fast as the client can, time until all have addresses.
    let t = Instant::now();
    let mut pending = std::collections::HashSet::new();
    for i in 0..SERVICES {
        let name = format!("b{i}");
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}
        }))?;
        api.create(&PostParams::default(), &svc).await?;
        pending.insert(name);
    }
    let created_all = t.elapsed();
    while !pending.is_empty() {
        let (n, _) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await?
            .expect("watch runs");
        pending.remove(&n);
    }
    println!(
        "Burst of {SERVICES} creates: last create returned after {:.0} ms, all addressed after {:.0} ms",
        created_all.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e3
    );

    let _ = alloc.kill();
    let _ = alloc.wait();
    for i in 0..SERVICES {
        let _ = api.delete(&format!("s{i}"), &DeleteParams::default()).await;
        let _ = api.delete(&format!("b{i}"), &DeleteParams::default()).await;
    }
    let _ = pools.delete(&pool_name, &DeleteParams::default()).await;
    Ok(())
}
