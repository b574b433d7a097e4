//! End to end on the local API server: Service created → status.loadBalancer.ingress set.
//! Needs KUBECONFIG (integration/k8s/control-plane.sh up). Run: `cargo bench --bench allocator_e2e`.

#[path = "../tests/support"]
mod support {
    pub mod allocator;
    pub mod api;
    pub mod lock;
    pub mod stats;
    pub mod wait;
}

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;
use support::allocator::{free_port, http_get};
use support::stats::{ms, percentile};
use support::{api, lock, wait};

const SERVICES: usize = 200;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let api_server = lock::api_server();
    let client = api::client(&api_server).await;
    let ns = api::unique("bench");
    api::ensure_namespace(&client, &ns, &[]).await;
    let pools: Api<routelb::api::AddressPool> = Api::all(client.clone());
    let pool_name = format!("{ns}-pool");
    let pool: routelb::api::AddressPool = serde_json::from_value(json!({
        "apiVersion": "routelb.io/v1alpha1", "kind": "AddressPool",
        "metadata": {"name": pool_name},
        "spec": {"addresses": ["10.250.0.0/22"], "allocation": {"namespaces": [ns]}}
    }))?;
    pools.create(&PostParams::default(), &pool).await?;

    let port = free_port();
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
    wait::up_to(Duration::from_secs(20))
        .until(|| async {
            let m = http_get(port, "/metrics").await?;
            m.lines().any(|l| l == "routelb_is_leader 1").then_some(())
        })
        .await
        .expect("the allocator leads");

    // Watch first, so every status update is seen the moment the API server sends it.
    let api: Api<Service> = Api::namespaced(client.clone(), &ns);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let (listed, watching) = tokio::sync::oneshot::channel();
    let watch_api = api.clone();
    tokio::spawn(async move {
        let mut listed = Some(listed);
        let mut stream = std::pin::pin!(watcher(watch_api, watcher::Config::default()));
        while let Some(Ok(event)) = stream.next().await {
            let svc = match event {
                watcher::Event::InitDone => {
                    if let Some(l) = listed.take() {
                        let _ = l.send(());
                    }
                    continue;
                }
                watcher::Event::Apply(s) | watcher::Event::InitApply(s) => s,
                _ => continue,
            };
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
    // The watch runs (its initial list is done) before anything is created.
    watching.await?;

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
    let pct = |p: f64| ms(percentile(&latencies, p));
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
