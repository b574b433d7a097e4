//! The simulated nodes: each keeps its node Lease as an agent does (the same object, renewed
//! every renew period, in its own phase) and writes its NodeState as an agent does (the
//! routed pool's addresses it holds, in runs, in its slot of the cluster's write budget).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use routelb::agent::status_pace;
use routelb::api::NodeState;
use routelb::election::Member;
use routelb::membership;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How often the simulation looks for what is due.
const TICK: Duration = Duration::from_millis(10);
/// Requests the simulation has in flight at most.
const IN_FLIGHT: usize = 64;

/// The addresses every simulated node holds (the routed pool's, as allocated), with a version
/// that changes with them.
#[derive(Default)]
pub struct Held {
    pub addresses: Mutex<BTreeSet<(IpAddr, u8)>>,
    pub version: AtomicU64,
}

impl Held {
    pub fn set(&self, addresses: BTreeSet<(IpAddr, u8)>) {
        let mut a = self.addresses.lock().unwrap();
        if *a != addresses {
            *a = addresses;
            self.version.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// What the simulation did: renewals and NodeState writes, and how late renewals ran.
#[derive(Default)]
pub struct Counts {
    pub renewals: AtomicU64,
    pub renewal_errors: AtomicU64,
    /// Renewals that went out more than a renew period after they were due.
    pub late_renewals: AtomicU64,
    pub node_state_writes: AtomicU64,
}

/// The simulated nodes, renewing and writing until cancelled or stopped one by one.
pub struct Nodes {
    pub names: Vec<String>,
    alive: Arc<Mutex<HashMap<String, bool>>>,
    pub counts: Arc<Counts>,
    cancel: CancellationToken,
}

pub struct Settings {
    pub namespace: String,
    pub routed_pool: String,
    pub lease_duration: Duration,
    pub renew_period: Duration,
    /// The cluster's size, simulated nodes and real ones, for the NodeState budget.
    pub cluster_nodes: usize,
}

impl Nodes {
    /// Starts `n` simulated nodes named `sim-00000`…; returns once each has its Lease.
    pub async fn start(client: Client, n: usize, s: Settings, held: Arc<Held>) -> Nodes {
        let names: Vec<String> = (0..n).map(|i| format!("sim-{i:05}")).collect();
        let alive: Arc<Mutex<HashMap<String, bool>>> = Arc::new(Mutex::new(
            names.iter().map(|n| (n.clone(), true)).collect(),
        ));
        let counts = Arc::new(Counts::default());
        let cancel = CancellationToken::new();
        let s = Arc::new(s);
        // Every Lease once, before anything is measured.
        let gate = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut first = tokio::task::JoinSet::new();
        for name in &names {
            let (c, s, name, gate) = (client.clone(), s.clone(), name.clone(), gate.clone());
            first.spawn(async move {
                let _permit = gate.acquire().await;
                renew(&c, &s, &name).await
            });
        }
        while let Some(r) = first.join_next().await {
            r.expect("a renewal task").expect("a first Lease");
        }
        tokio::spawn(renewals(
            client.clone(),
            s.clone(),
            names.clone(),
            alive.clone(),
            counts.clone(),
            cancel.clone(),
        ));
        tokio::spawn(node_states(
            client,
            s,
            names.clone(),
            alive.clone(),
            held,
            counts.clone(),
            cancel.clone(),
        ));
        Nodes {
            names,
            alive,
            counts,
            cancel,
        }
    }

    /// The node stops renewing and writing: a node dying without leaving.
    pub fn kill(&self, node: &str) {
        self.alive.lock().unwrap().insert(node.to_string(), false);
    }

    /// The node renews and writes again: a node (re)joining.
    pub fn revive(&self, node: &str) {
        self.alive.lock().unwrap().insert(node.to_string(), true);
    }

    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

fn member(s: &Settings, node: &str) -> Member {
    Member {
        node: node.to_string(),
        routed_pools: [s.routed_pool.clone()].into(),
        ..Default::default()
    }
}

async fn renew(client: &Client, s: &Settings, node: &str) -> Result<(), kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &s.namespace);
    let obj = membership::lease_object(
        &member(s, node),
        &s.namespace,
        s.lease_duration,
        SystemTime::now(),
    );
    api.patch(
        &membership::lease_name(node),
        &PatchParams::apply("routelb-agent").force(),
        &Patch::Apply(&obj),
    )
    .await
    .map(|_| ())
}

/// Each live node's Lease every renew period, node `i` at phase `i × period / n`.
async fn renewals(
    client: Client,
    s: Arc<Settings>,
    names: Vec<String>,
    alive: Arc<Mutex<HashMap<String, bool>>>,
    counts: Arc<Counts>,
    cancel: CancellationToken,
) {
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let start = Instant::now();
    let period = s.renew_period.as_secs_f64();
    let n = names.len().max(1) as f64;
    let mut next: Vec<f64> = (0..names.len())
        .map(|i| period * (1.0 + i as f64 / n))
        .collect();
    while !cancel.is_cancelled() {
        tokio::time::sleep(TICK).await;
        let now = start.elapsed().as_secs_f64();
        for (i, due) in next.iter_mut().enumerate() {
            if *due > now {
                continue;
            }
            if now - *due > period {
                counts.late_renewals.fetch_add(1, Ordering::Relaxed);
            }
            *due = now.max(*due) + period;
            if !alive.lock().unwrap()[&names[i]] {
                continue;
            }
            let permit = gate.clone().acquire_owned().await.expect("open");
            let (c, s, node, counts) =
                (client.clone(), s.clone(), names[i].clone(), counts.clone());
            tokio::spawn(async move {
                let _permit = permit;
                match renew(&c, &s, &node).await {
                    Ok(()) => counts.renewals.fetch_add(1, Ordering::Relaxed),
                    Err(_) => counts.renewal_errors.fetch_add(1, Ordering::Relaxed),
                };
            });
        }
    }
}

/// Each live node's NodeState when the held addresses changed, in the node's slot
/// ([`status_pace`]), as an agent paces it.
async fn node_states(
    client: Client,
    s: Arc<Settings>,
    names: Vec<String>,
    alive: Arc<Mutex<HashMap<String, bool>>>,
    held: Arc<Held>,
    counts: Arc<Counts>,
    cancel: CancellationToken,
) {
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let window = status_pace::window(s.cluster_nodes);
    let phases: Vec<Duration> = names
        .iter()
        .map(|n| status_pace::phase(status_pace::rank(n), window))
        .collect();
    let mut written: Vec<Option<(u64, u64)>> = vec![None; names.len()];
    let mut runs: (u64, Arc<Vec<String>>, usize) = (u64::MAX, Arc::default(), 0);
    while !cancel.is_cancelled() {
        tokio::time::sleep(TICK).await;
        let version = held.version.load(Ordering::SeqCst);
        if runs.0 != version {
            let a = held.addresses.lock().unwrap();
            runs = (
                version,
                Arc::new(routelb::api::address_runs::encode(a.iter())),
                a.len(),
            );
        }
        let now_ms = wall_ms();
        for (i, node) in names.iter().enumerate() {
            let last = written[i];
            if last.is_some_and(|(v, _)| v == version) || !alive.lock().unwrap()[node] {
                continue;
            }
            let due = status_pace::next_write(now_ms, last.map(|(_, at)| at), window, phases[i]);
            if due > now_ms + TICK.as_millis() as u64 {
                continue;
            }
            written[i] = Some((version, now_ms));
            let permit = gate.clone().acquire_owned().await.expect("open");
            let (c, node, counts) = (client.clone(), node.clone(), counts.clone());
            let (addresses, count) = (runs.1.clone(), runs.2);
            let create = last.is_none();
            tokio::spawn(async move {
                let _permit = permit;
                if write_node_state(&c, &node, &addresses, count, create)
                    .await
                    .is_ok()
                {
                    counts.node_state_writes.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    }
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn write_node_state(
    client: &Client,
    node: &str,
    addresses: &[String],
    count: usize,
    create: bool,
) -> Result<(), kube::Error> {
    let api: Api<NodeState> = Api::all(client.clone());
    if create {
        let object = json!({
            "apiVersion": NodeState::api_version(&()),
            "kind": "NodeState",
            "metadata": { "name": node },
            "spec": {},
        });
        api.patch(
            node,
            &PatchParams::apply("routelb-agent"),
            &Patch::Apply(&object),
        )
        .await?;
    }
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({
        "daemon": "frr",
        "interfaces": [{ "interface": "kube-lb0", "addresses": addresses }],
        "addressCount": count,
        "announcedPrefixes": addresses,
        "notAnnounced": [],
        "conditions": [{ "type": "Ready", "status": "True", "reason": "Ready",
                          "message": "simulated", "lastTransitionTime": now }],
    });
    api.patch_status(
        node,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map(|_| ())
}
