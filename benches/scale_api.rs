//! The load harness: routelb at N nodes and S Services on the real API server and etcd.
//!
//! N − 1 simulated nodes keep their node Leases (renewed every renew period, 2 s, as agents
//! do) and write their NodeStates as agents do (the routed pool's addresses, in runs, paced
//! by the cluster's write budget); one real agent runs on a lab node with FRR and an upstream
//! router, and one real allocator. S Services, each with an EndpointSlice, are created at a
//! bounded rate; then measured, per point:
//! - the burst: until every Service has its address, the agent holds them all and the router
//!   has the last; the allocator's and the agent's CPU for it;
//! - steady state: CPU, resident memory, API requests per second of each (the audit log);
//!   the simulated renewals achieved against those due;
//! - a single Service change (created, PROBES times): create → address in the Service's status
//!   → on the agent's interface → route at the router; the passes' time and CPU;
//! - a node dying (its Lease expires) and coming back: the agent's passes, the API writes.
//!
//! Needs root, FRR, and an API server with an audit log: `integration/scale/run.sh` starts
//! one and runs this (`cargo bench --bench scale_api`). Settings: SCALE_API_NODES (default
//! "100,1000"), SCALE_API_SERVICES ("1000,10000"), SCALE_API_RATE (Services created per
//! second, 200), SCALE_API_PROBES (5), SCALE_API_STEADY_S (30). Results: a table on stdout
//! and one JSON line per point in target/scale_api.jsonl (docs/scale.md).

#[path = "../tests/support"]
#[allow(dead_code)] // the helpers other tests use too
mod support {
    pub mod allocator;
    pub mod api;
    pub mod apiproxy;
    pub mod cluster;
    pub mod cpu;
    pub mod daemon;
    pub mod env;
    pub mod files;
    pub mod lock;
    pub mod objects;
    pub mod script;
    pub mod stats;
    pub mod wait;
}

mod scale_api {
    pub mod audit;
    pub mod measure;
    pub mod sample;
    pub mod sim;
}

use std::collections::{BTreeSet, HashMap};
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use scale_api::audit::{self, AuditLog};
use scale_api::measure::Process;
use scale_api::sample::Sample;
use scale_api::sim;
use serde_json::json;
use support::cluster::{Agent, Cluster};
use support::env::env_or;
use support::stats::{median, ms};
use support::{api, lock, objects, wait};

const LEASE_DURATION: Duration = Duration::from_secs(6);
const RENEW_PERIOD: Duration = Duration::from_secs(2);
/// The routed pool: room for 262,144 addresses, outside the lab's own ranges.
const POOL_RANGE: &str = "100.64.0.0/14";

fn list(var: &str, default: &str) -> Vec<usize> {
    env_or(var, default.to_string())
        .split(',')
        .map(|n| n.trim().parse().expect("a number"))
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let nodes = list("SCALE_API_NODES", "100,1000");
    let services = list("SCALE_API_SERVICES", "1000,10000");
    let held = lock::api_server();
    let c = Cluster::up("scale", 1, "bgp", "frr");
    let audit = AuditLog::new(std::path::PathBuf::from(
        std::env::var("SCALE_API_AUDIT_LOG")
            .unwrap_or_else(|_| "/tmp/routelb-scale-k8s/logs/audit.log".into()),
    ));
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/scale_api.jsonl"
        ))?;
    scale_api::sample::print_header();
    for &n in &nodes {
        for &s in &services {
            let point = run_point(&held, &c, &audit, n, s).await;
            point.print_row();
            writeln!(out, "{}", serde_json::to_string(&point)?)?;
        }
    }
    Ok(())
}

/// Everything one point sets up, torn down when it ends.
struct Point {
    client: Client,
    load: Client,
    ns: String,
    pool: String,
    allocator: Process,
    allocator_metrics: u16,
    agent: Agent,
    agent_pid: String,
    agent_ns: String,
    sims: sim::Nodes,
    assigned: Arc<Mutex<HashMap<String, Vec<IpAddr>>>>,
}

async fn run_point(
    held: &lock::Held,
    c: &Cluster,
    audit: &AuditLog,
    nodes: usize,
    services: usize,
) -> Sample {
    let p = Point::set_up(held, c, nodes).await;
    let mut sample = Sample::new(nodes, services);
    p.burst(c, audit, services, &mut sample).await;
    p.steady(audit, &mut sample).await;
    p.single_changes(c, &mut sample).await;
    p.node_dies_and_returns(audit, &mut sample).await;
    p.tear_down().await;
    sample
}

impl Point {
    async fn set_up(held: &lock::Held, c: &Cluster, nodes: usize) -> Point {
        let client = api::client(held).await;
        let load = load_client().await;
        let ns = api::unique("scale");
        api::ensure_namespace(&client, &ns, &[]).await;
        let pool = api::unique("scalepool");
        let policy = api::unique("scalepol");
        objects::create_pool(
            &client,
            &pool,
            json!({ "addresses": [POOL_RANGE], "mode": "routed",
                    "allocation": { "namespaces": [ns] } }),
        )
        .await;
        let pools: Api<routelb::api::AddressPool> = Api::all(client.clone());
        pools
            .patch(
                &pool,
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "labels": { "routelb-scale": ns } } })),
            )
            .await
            .expect("label the pool");
        let policies: Api<routelb::api::RoutingPolicy> = Api::all(client.clone());
        let rp: routelb::api::RoutingPolicy = serde_json::from_value(json!({
            "apiVersion": "routelb.io/v1alpha1", "kind": "RoutingPolicy",
            "metadata": { "name": policy },
            "spec": { "poolSelector": { "matchLabels": { "routelb-scale": ns } }, "protocols": ["bgp"] },
        }))
        .unwrap();
        policies
            .create(&PostParams::default(), &rp)
            .await
            .expect("the policy");
        let assigned = Arc::new(Mutex::new(HashMap::new()));
        let ips = Arc::new(sim::Held::default());
        watch_assigned(client.clone(), &ns, assigned.clone(), ips.clone()).await;
        let sims = sim::Nodes::start(
            load.clone(),
            nodes - 1,
            sim::Settings {
                namespace: ns.clone(),
                routed_pool: pool.clone(),
                lease_duration: LEASE_DURATION,
                renew_period: RENEW_PERIOD,
                cluster_nodes: nodes,
            },
            ips,
        )
        .await;
        let (allocator, allocator_metrics) = start_allocator(&ns);
        let agent = Agent::start(c, 1, &ns, &["--kube-proxy-grace", "0s"]);
        let agent_pid = agent.child.as_ref().expect("running").id().to_string();
        let p = Point {
            client,
            load,
            ns,
            pool,
            allocator,
            allocator_metrics,
            agent,
            agent_pid,
            agent_ns: c.node_var(1, "NS").to_string(),
            sims,
            assigned,
        };
        p.wait_agent_sees(nodes).await;
        p
    }

    async fn wait_agent_sees(&self, nodes: usize) {
        let line = format!("routelb_agent_live_nodes {nodes}");
        self.wait_agent_metric(&line, Duration::from_secs(120))
            .await;
    }

    /// Until the agent's metrics have `line` (checked every 250 ms), or panics after `within`.
    async fn wait_agent_metric(&self, line: &str, within: Duration) {
        wait::up_to(within)
            .every(Duration::from_millis(250))
            .until(|| async {
                self.agent_metrics()
                    .lines()
                    .any(|l| l == line)
                    .then_some(())
            })
            .await
            .unwrap_or_else(|| panic!("the agent never showed {line}\n{}", self.agent.log_tail()));
    }

    fn agent_metrics(&self) -> String {
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.agent_ns,
                "curl",
                "-fsS",
                "--max-time",
                "5",
            ])
            .arg("http://127.0.0.1:9091/metrics")
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The node's zebra (FRR started with `-N <namespace>`): it sees every address change.
    fn zebra(&self) -> Process {
        let out = std::process::Command::new("pgrep")
            .args(["-f", &format!("zebra -d -N {}( |$)", self.agent_ns)])
            .output()
            .expect("pgrep runs");
        let pid = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("0")
            .to_string();
        Process::of(&pid)
    }

    fn agent(&self) -> Process {
        Process::of(&self.agent_pid)
    }

    async fn tear_down(mut self) {
        self.sims.stop();
        self.agent.stop_gracefully();
        self.allocator.kill();
        let _ = (&self.client, &self.load, &self.ns, &self.pool);
    }
}

/// A client as the simulation's own user (`routelb-load`), which the audit log leaves out.
async fn load_client() -> Client {
    let mut config = kube::Config::infer().await.expect("kubeconfig");
    let dir = std::env::var("ROUTELB_K8S_STATE").unwrap_or("/tmp/routelb-scale-k8s".into());
    let token = std::fs::read_to_string(format!("{dir}/load.token")).expect("load.token");
    config.auth_info.token = Some(token.trim().to_string().into());
    config.auth_info.token_file = None;
    Client::try_from(config).expect("a client")
}

fn start_allocator(ns: &str) -> (Process, u16) {
    let port = support::allocator::free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_routelb"))
        .args(["allocator", "--leader-election-lease"])
        .arg(api::unique("scalealloc"))
        .args(["--node-lease-namespace", ns])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .env("ROUTELB_LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the allocator starts");
    (Process::owned(child), port)
}

/// Follows the Services' addresses: per Service, and the set every simulated node holds.
async fn watch_assigned(
    client: Client,
    ns: &str,
    assigned: Arc<Mutex<HashMap<String, Vec<IpAddr>>>>,
    held: Arc<sim::Held>,
) {
    let api: Api<Service> = Api::namespaced(client, ns);
    let (listed, watching) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut listed = Some(listed);
        // Renewed every minute, as routelb's own busy watches are (watch::BUSY_WATCH_TIMEOUT_S):
        // under the burst the API server drops slow watchers and leaves them silent.
        let mut stream = std::pin::pin!(watcher(api, watcher::Config::default().timeout(60)));
        while let Some(Ok(event)) = stream.next().await {
            let (name, ips) = match event {
                watcher::Event::InitDone => {
                    if let Some(l) = listed.take() {
                        let _ = l.send(());
                    }
                    continue;
                }
                watcher::Event::Apply(s) | watcher::Event::InitApply(s) => {
                    (s.name_any(), routelb::ipam::ingress_ips(&s))
                }
                watcher::Event::Delete(s) => (s.name_any(), vec![]),
                watcher::Event::Init => continue,
            };
            let all: BTreeSet<(IpAddr, u8)> = {
                let mut a = assigned.lock().unwrap();
                a.insert(name, ips);
                a.values().flatten().map(|ip| (*ip, 32)).collect()
            };
            held.set(all);
        }
    });
    watching.await.expect("the Service watch lists");
}

/// A Service of the pool, with an EndpointSlice (one ready endpoint on a simulated node).
async fn create_service(client: &Client, ns: &str, pool: &str, name: &str, node: &str) {
    let svc = objects::service(
        ns,
        name,
        json!({ "metadata": { "annotations": { "routelb.io/pool": pool } },
                "spec": { "allocateLoadBalancerNodePorts": false } }),
    );
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    let pp = PostParams::default();
    retry(|| api.create(&pp, &svc)).await;
    let ar = routelb::agent::caches::slice_resource(client)
        .await
        .expect("EndpointSlices served");
    let slices: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let slice = json!({
        "apiVersion": ar.api_version, "kind": "EndpointSlice",
        "metadata": { "name": format!("{name}-1"), "namespace": ns,
                      "labels": { "kubernetes.io/service-name": name } },
        "addressType": "IPv4",
        "endpoints": [{ "addresses": ["10.244.0.1"], "conditions": { "ready": true },
                        "nodeName": node, "topology": { "kubernetes.io/hostname": node } }],
        "ports": [{ "port": 80, "protocol": "TCP", "name": "" }],
    });
    let slice: DynamicObject = serde_json::from_value(slice).unwrap();
    retry(|| slices.create(&pp, &slice)).await;
}

/// Retries a create the API server refused for load (429, timeouts), not for a conflict.
async fn retry<T, F, Fut>(mut call: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    for _ in 0..20 {
        match call().await {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 409 => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    panic!("the API server kept refusing a create");
}

impl Point {
    /// S Services at SCALE_API_RATE per second, until the router has the last.
    async fn burst(&self, c: &Cluster, audit: &AuditLog, services: usize, s: &mut Sample) {
        let rate: f64 = env_or("SCALE_API_RATE", 200.0);
        let mark = audit.mark();
        let (alloc0, agent0) = (self.allocator.cpu_s(), self.agent().cpu_s());
        let start = Instant::now();
        let names: Vec<String> = (0..services).map(|i| format!("s{i:05}")).collect();
        futures::stream::iter(names.iter().enumerate())
            .for_each_concurrent(32, |(i, name)| {
                let node = &self.sims.names[i % self.sims.names.len().max(1)];
                async move {
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                    create_service(&self.load, &self.ns, &self.pool, name, node).await;
                }
            })
            .await;
        s.burst_created_s = start.elapsed().as_secs_f64();
        let all_assigned = wait::up_to(Duration::from_secs(1800))
            .every(Duration::from_millis(100))
            .until(|| async {
                let a = self.assigned.lock().unwrap();
                (a.values().filter(|v| !v.is_empty()).count() >= services).then_some(())
            })
            .await
            .expect("every Service gets an address");
        let _ = all_assigned;
        s.burst_assigned_s = start.elapsed().as_secs_f64();
        let held = format!("routelb_agent_addresses{{kind=\"routed\"}} {services}");
        self.wait_agent_metric(&held, Duration::from_secs(1800))
            .await;
        s.burst_on_agent_s = start.elapsed().as_secs_f64();
        let last = self.ip_of(&names[services - 1]);
        c.wait_nexthops(&format!("{last}/32"), 1, Duration::from_secs(600))
            .await
            .expect("the router has the last Service");
        s.burst_at_router_s = start.elapsed().as_secs_f64();
        s.burst_allocator_cpu_s = self.allocator.cpu_s() - alloc0;
        s.burst_agent_cpu_s = self.agent().cpu_s() - agent0;
        let r = audit.since(mark);
        s.burst_allocator_writes = audit::of(&r, "routelb-allocator").1;
        s.burst_agent_writes = audit::of(&r, "routelb-agent").1;
        s.burst_allocator_requests = audit::breakdown(&r, "routelb-allocator");
    }

    fn ip_of(&self, name: &str) -> IpAddr {
        self.assigned.lock().unwrap()[name][0]
    }

    /// SCALE_API_STEADY_S of nothing happening.
    async fn steady(&self, audit: &AuditLog, s: &mut Sample) {
        let window = Duration::from_secs(env_or("SCALE_API_STEADY_S", 30));
        // The burst's trailing writes (annotations, Events, decide::ANNOUNCERS_SETTLE) are not
        // steady state: wait until the allocator has made no pass for 5 s.
        self.wait_allocator_quiet(Duration::from_secs(5), Duration::from_secs(900))
            .await;
        let mark = audit.mark();
        let (alloc0, agent0) = (self.allocator.cpu_s(), self.agent().cpu_s());
        let zebra0 = self.zebra().cpu_s();
        let renewals0 = self
            .sims
            .counts
            .renewals
            .load(std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(window).await;
        let w = window.as_secs_f64();
        s.steady_allocator_cpu_pct = 100.0 * (self.allocator.cpu_s() - alloc0) / w;
        s.steady_agent_cpu_pct = 100.0 * (self.agent().cpu_s() - agent0) / w;
        s.steady_zebra_cpu_pct = 100.0 * (self.zebra().cpu_s() - zebra0) / w;
        s.allocator_rss_mb = self.allocator.rss_mb();
        s.agent_rss_mb = self.agent().rss_mb();
        let renewals = self
            .sims
            .counts
            .renewals
            .load(std::sync::atomic::Ordering::Relaxed);
        s.sim_renewals_per_s = (renewals - renewals0) as f64 / w;
        s.sim_renewals_due_per_s = self.sims.names.len() as f64 / RENEW_PERIOD.as_secs_f64();
        let r = audit.since(mark);
        let (all, writes) = audit::of(&r, "routelb-allocator");
        s.steady_allocator_req_per_s = (all as f64 / w, writes as f64 / w);
        let (all, writes) = audit::of(&r, "routelb-agent");
        s.steady_agent_req_per_s = (all as f64 / w, writes as f64 / w);
        s.steady_allocator_requests = audit::breakdown(&r, "routelb-allocator");
        s.steady_agent_requests = audit::breakdown(&r, "routelb-agent");
    }

    /// One Service created at a time: to its address, the agent's interface, the router.
    async fn single_changes(&self, c: &Cluster, s: &mut Sample) {
        let probes: usize = env_or("SCALE_API_PROBES", 5);
        let (mut assigned, mut on_agent, mut at_router) = (vec![], vec![], vec![]);
        let (mut alloc_cpu, mut agent_cpu, mut alloc_pass, mut agent_pass) =
            (vec![], vec![], vec![], vec![]);
        for i in 0..probes {
            let name = format!("probe-{i}");
            let (a0, g0) = (self.allocator.cpu_s(), self.agent().cpu_s());
            let (ap0, gp0) = (self.allocator_passes().await, self.agent_passes());
            let start = Instant::now();
            create_service(&self.load, &self.ns, &self.pool, &name, &self.sims.names[0]).await;
            let ip = wait::up_to(Duration::from_secs(60))
                .every(Duration::from_millis(2))
                .until(|| async {
                    self.assigned
                        .lock()
                        .unwrap()
                        .get(&name)
                        .and_then(|v| v.first().copied())
                })
                .await
                .expect("the probe gets an address")
                .value;
            assigned.push(start.elapsed());
            let dev = ["-o", "addr", "show", "dev", "kube-lb0", "to"];
            let prefix = format!("{ip}/32");
            wait::up_to(Duration::from_secs(60))
                .every(Duration::from_millis(5))
                .until_blocking(|| {
                    let args: Vec<&str> = dev.iter().copied().chain([prefix.as_str()]).collect();
                    (!c.ip_node(1, &args).trim().is_empty()).then_some(())
                })
                .expect("the agent holds the probe");
            on_agent.push(start.elapsed());
            c.wait_nexthops(&prefix, 1, Duration::from_secs(60))
                .await
                .expect("the router has the probe");
            at_router.push(start.elapsed());
            // What the change cost, once its passes are over, beyond the steady state's.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let took = start.elapsed().as_secs_f64();
            alloc_cpu.push(self.allocator.cpu_s() - a0 - s.steady_allocator_cpu_pct / 100.0 * took);
            agent_cpu.push(self.agent().cpu_s() - g0 - s.steady_agent_cpu_pct / 100.0 * took);
            alloc_pass.push(per_pass(ap0, self.allocator_passes().await));
            agent_pass.push(per_pass(gp0, self.agent_passes()));
        }
        s.change_assigned_ms = ms(median(&assigned));
        s.change_on_agent_ms = ms(median(&on_agent));
        s.change_at_router_ms = ms(median(&at_router));
        s.change_allocator_cpu_ms = 1000.0 * median(&alloc_cpu);
        s.change_agent_cpu_ms = 1000.0 * median(&agent_cpu);
        s.change_allocator_pass_ms = median(&alloc_pass);
        s.change_agent_pass_ms = median(&agent_pass);
    }

    /// Until the allocator has made no pass for `quiet` (at most `within`).
    async fn wait_allocator_quiet(&self, quiet: Duration, within: Duration) {
        let start = Instant::now();
        let mut last = (self.allocator_passes().await.1, Instant::now());
        while start.elapsed() < within && last.1.elapsed() < quiet {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let passes = self.allocator_passes().await.1;
            if passes != last.0 {
                last = (passes, Instant::now());
            }
        }
    }

    async fn allocator_passes(&self) -> (f64, f64) {
        let m = support::allocator::http_get(self.allocator_metrics, "/metrics")
            .await
            .unwrap_or_default();
        histogram(&m, "routelb_reconcile_duration_seconds")
    }

    fn agent_passes(&self) -> (f64, f64) {
        histogram(&self.agent_metrics(), "routelb_agent_pass_duration_seconds")
    }

    /// A simulated node stops renewing; its Lease expires; it renews again.
    async fn node_dies_and_returns(&self, audit: &AuditLog, s: &mut Sample) {
        let node = self.sims.names[0].clone();
        let nodes = self.sims.names.len() + 1;
        let mark = audit.mark();
        let steady = s.steady_agent_cpu_pct / 100.0;
        let (g0, gp0, t0) = (self.agent().cpu_s(), self.agent_passes(), Instant::now());
        self.sims.kill(&node);
        self.wait_agent_sees(nodes - 1).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        s.death_agent_cpu_ms =
            1000.0 * (self.agent().cpu_s() - g0 - steady * t0.elapsed().as_secs_f64());
        s.death_agent_pass_ms = per_pass(gp0, self.agent_passes());
        let r = audit.since(mark);
        s.death_allocator_writes = audit::of(&r, "routelb-allocator").1;
        s.death_agent_writes = audit::of(&r, "routelb-agent").1;
        let (g0, gp0, t0) = (self.agent().cpu_s(), self.agent_passes(), Instant::now());
        self.sims.revive(&node);
        self.wait_agent_sees(nodes).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        s.return_agent_cpu_ms =
            1000.0 * (self.agent().cpu_s() - g0 - steady * t0.elapsed().as_secs_f64());
        s.return_agent_pass_ms = per_pass(gp0, self.agent_passes());
    }
}

/// A histogram's (sum, count) in a Prometheus text exposition.
fn histogram(text: &str, name: &str) -> (f64, f64) {
    let value = |suffix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}_{suffix} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    (value("sum"), value("count"))
}

/// Milliseconds per pass between two readings of a pass histogram.
fn per_pass(before: (f64, f64), after: (f64, f64)) -> f64 {
    let passes = after.1 - before.1;
    if passes <= 0.0 {
        return 0.0;
    }
    1000.0 * (after.0 - before.0) / passes
}
