//! Agent benchmarks on the cluster lab with the real API server, allocator and agents (root,
//! FRR, BIRD, KUBECONFIG from `integration/k8s/control-plane.sh up`):
//! 1. Service created → address on the node's interface → route in the upstream router's
//!    kernel table, and Service deleted → route withdrawn; per daemon and protocol;
//! 2. local-address failover, graceful (SIGTERM) and hard (kill -9 and link down), with a
//!    1.5 s lease renewed every 300 ms;
//! 3. a pool edit through the API as the user sees it: an AddressPool of N non-adjacent /32s
//!    (N prefix-list entries) exported over BGP, with one Service; each change replaces the
//!    pool's addresses with one more (then one less), timed from the API call until **every
//!    node's bgpd** holds it (polled every 2 ms over their vty sockets); frr-reload.py --reload
//!    of the same change on node 1 in the same run, the agents stopped; and node 1's daemon
//!    CPU per minute while the agents idle (BENCH_IDLE_S, 60).
//!
//! The cluster lab runs no kube-proxy: the agents run with `--kube-proxy-grace 0` (with one,
//! a new Service's first announcement waits that grace, 2 s by default).
//!
//! Run: `cargo bench --bench agent` (BENCH_PARTS, default "create,failover,pool"; BENCH_N,
//! services per daemon and protocol, 100; BENCH_FAILOVERS, 10; BENCH_POOL_SIZES, "1000,5000";
//! BENCH_POOL_ROUNDS, 10). Figures go to docs/benchmarks.md.

#[path = "../tests/support"]
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
    pub mod pool_edit;
    pub mod script;
    pub mod stats;
    pub mod wait;
}

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use routelb::api::{AddressPool, RoutingPolicy};
use routelb::daemon::Driver;
use routelb::daemon::frr::{FrrApply, FrrDriver};
use serde_json::json;
use support::cluster::{Agent, Cluster};
use support::env::env_or;
use support::pool_edit::{
    Counter, addresses, changes, daemon_cpu_per_minute, logged_apply, reload_rounds,
};
use support::stats::{ms, percentile};
use support::{api, lock, objects, wait};

const AGENT_ARGS: [&str; 6] = [
    "--lease-duration",
    "1500ms",
    "--renew-period",
    "300ms",
    "--kube-proxy-grace",
    "0",
];

fn row(what: &str, v: &[Duration]) {
    println!(
        "| {what} | {} | {:.0} | {:.0} | {:.0} |",
        v.len(),
        ms(percentile(v, 0.5)),
        ms(percentile(v, 0.99)),
        ms(percentile(v, 1.0))
    );
}

async fn pools(client: &Client, c: &Cluster, tag: &str, proto: &str) -> (String, String) {
    let x = c.index();
    let routed = api::unique("brt");
    let local = api::unique("blan");
    let api: Api<AddressPool> = Api::all(client.clone());
    for (name, mode, addrs) in [
        (&routed, "routed", json!([format!("198.18.{x}.0/25")])),
        (
            &local,
            "local",
            json!([format!("10.78.{x}.100-10.78.{x}.199")]),
        ),
    ] {
        let p: AddressPool = serde_json::from_value(json!({
            "apiVersion": "routelb.io/v1alpha1", "kind": "AddressPool",
            "metadata": { "name": name, "labels": { "bench": tag } },
            "spec": { "addresses": addrs, "mode": mode, "avoidBuggyIPs": true },
        }))
        .unwrap();
        api.create(&PostParams::default(), &p).await.unwrap();
    }
    let pol: RoutingPolicy = serde_json::from_value(json!({
        "apiVersion": "routelb.io/v1alpha1", "kind": "RoutingPolicy",
        "metadata": { "name": api::unique("bpol") },
        "spec": { "poolSelector": { "matchLabels": { "bench": tag } }, "protocols": [proto] },
    }))
    .unwrap();
    Api::<RoutingPolicy>::all(client.clone())
        .create(&PostParams::default(), &pol)
        .await
        .unwrap();
    (routed, local)
}

fn svc(ns: &str, name: &str, pool: &str) -> Service {
    objects::service(
        ns,
        name,
        json!({ "metadata": { "annotations": { "routelb.io/pool": pool } } }),
    )
}

/// Agents on every node, once they all see each other.
async fn start_agents(c: &Cluster, ns: &str) -> Vec<Agent> {
    let agents: Vec<Agent> = (1..=c.nodes)
        .map(|i| Agent::start(c, i, ns, &AGENT_ARGS))
        .collect();
    all_see_each_other(c, &agents).await;
    agents
}

async fn all_see_each_other(c: &Cluster, agents: &[Agent]) {
    wait::up_to(Duration::from_secs(30))
        .until(|| async { agents.iter().all(|a| a.sees_every_node(c)).then_some(()) })
        .await
        .expect("the agents see each other");
}

/// Create → address on node 1's kube-lb0 → route at the router with every node as nexthop;
/// delete → route gone.
async fn create_to_route(client: &Client, daemon: &str, proto: &str, n: usize) {
    let name = format!("bn-{}-{proto}", &daemon[..1]);
    let c = Cluster::up(&name, 2, proto, daemon);
    let ns = api::unique("bench");
    api::ensure_namespace(client, &ns, &[]).await;
    let (routed, _) = pools(client, &c, &ns, proto).await;
    let _agents = start_agents(&c, &ns).await;
    let api: Api<Service> = Api::namespaced(client.clone(), &ns);
    let (mut nic, mut route, mut gone) = (vec![], vec![], vec![]);
    // All created first, then all deleted: every service gets a fresh address (re-announcing
    // an address withdrawn a moment ago measures the daemon's LSA rate limits instead).
    let mut prefixes = vec![];
    for i in 0..n {
        let t0 = Instant::now();
        objects::create_service(client, svc(&ns, &format!("s{i}"), &routed)).await;
        let ip = objects::wait_ips(client, &ns, &format!("s{i}"), 1).await[0].clone();
        let prefix = format!("{ip}/32");
        let mut on_nic = None;
        loop {
            if on_nic.is_none() && c.holders(&ip).contains(&1) {
                on_nic = Some(t0.elapsed());
            }
            if c.nexthops(&prefix) == 2 {
                route.push(t0.elapsed());
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{prefix} never announced"
            );
        }
        nic.push(on_nic.unwrap_or_else(|| t0.elapsed()));
        prefixes.push(prefix);
    }
    for (i, prefix) in prefixes.iter().enumerate() {
        let t0 = Instant::now();
        api.delete(&format!("s{i}"), &DeleteParams::default())
            .await
            .unwrap();
        c.wait_nexthops(prefix, 0, Duration::from_secs(30))
            .await
            .unwrap();
        gone.push(t0.elapsed());
    }
    row(
        &format!("{daemon} {proto}: create → address on kube-lb0"),
        &nic,
    );
    row(
        &format!("{daemon} {proto}: create → route at router (2 nexthops)"),
        &route,
    );
    row(
        &format!("{daemon} {proto}: delete → route withdrawn"),
        &gone,
    );
}

/// The one node holding the address, once there is one.
async fn single_holder(c: &Cluster, ip: &str) -> usize {
    wait::up_to(Duration::from_secs(30))
        .every(Duration::from_millis(10))
        .until(|| async {
            let h = c.holders(ip);
            (h.len() == 1).then(|| h[0])
        })
        .await
        .unwrap_or_else(|| panic!("no single holder: {:?}", c.holders(ip)))
        .value
}

/// The local address moves from its holder to another node.
async fn failover(client: &Client, reps: usize) {
    let c = Cluster::up("bn-fail", 3, "bgp", "frr");
    let ns = api::unique("bench");
    api::ensure_namespace(client, &ns, &[]).await;
    let (_, local) = pools(client, &c, &ns, "bgp").await;
    let mut agents = start_agents(&c, &ns).await;
    objects::create_service(client, svc(&ns, "vip", &local)).await;
    let ip = objects::wait_ips(client, &ns, "vip", 1).await[0].clone();
    // As often as `ip` answers: the move is what is measured.
    let moved = |c: &Cluster, from: usize| {
        wait::up_to(Duration::from_secs(30))
            .every(Duration::ZERO)
            .until_blocking(|| c.holders(&ip).iter().any(|&h| h != from).then_some(()))
            .expect("never moved")
            .took
    };
    let (mut graceful, mut hard) = (vec![], vec![]);
    for _ in 0..reps {
        let h = single_holder(&c, &ip).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let pid = agents[h - 1].child.as_ref().unwrap().id();
        let t0 = Instant::now();
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        let _ = moved(&c, h);
        graceful.push(t0.elapsed());
        agents[h - 1].stop_gracefully();
        agents[h - 1].restart();
        all_see_each_other(&c, &agents).await;

        let h = single_holder(&c, &ip).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let t0 = Instant::now();
        agents[h - 1].kill_hard();
        c.ip_node(h, &["link", "set", "eth0", "down"]);
        let _ = moved(&c, h);
        hard.push(t0.elapsed());
        c.ip_node(h, &["link", "set", "eth0", "up"]);
        agents[h - 1].restart();
        all_see_each_other(&c, &agents).await;
    }
    row("local address failover, graceful (SIGTERM)", &graceful);
    row(
        "local address failover, hard (kill -9 + link down), lease 1.5 s / renew 300 ms",
        &hard,
    );
}

/// Part 3 (see the top): one size, `rounds` adds and as many removes.
async fn pool_edit(client: &Client, n: usize, rounds: usize) {
    let c = Cluster::up("bpe", 2, "bgp", "frr");
    let ns = api::unique("bench");
    api::ensure_namespace(client, &ns, &[]).await;
    let name = api::unique("bpe");
    let pools: Api<AddressPool> = Api::all(client.clone());
    let base = addresses(n);
    let pool: AddressPool = serde_json::from_value(json!({
        "apiVersion": "routelb.io/v1alpha1", "kind": "AddressPool",
        "metadata": { "name": name, "labels": { "bench": ns } },
        "spec": { "addresses": base },
    }))
    .unwrap();
    pools.create(&PostParams::default(), &pool).await.unwrap();
    let policy: RoutingPolicy = serde_json::from_value(json!({
        "apiVersion": "routelb.io/v1alpha1", "kind": "RoutingPolicy",
        "metadata": { "name": name },
        "spec": { "poolSelector": { "matchLabels": { "bench": ns } }, "protocols": ["bgp"] },
    }))
    .unwrap();
    let policies: Api<RoutingPolicy> = Api::all(client.clone());
    policies
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    objects::create_service(client, svc(&ns, "web", &name)).await;
    let mut counters = vec![];
    for i in 1..=c.nodes {
        let vty_dir = std::path::Path::new("/var/run/frr").join(c.node_var(i, "FRR"));
        counters.push(Counter::open(&vty_dir).await);
    }
    let started = Instant::now();
    let agents = start_agents(&c, &ns).await;
    for counter in &mut counters {
        counter.until(n, Duration::from_secs(300)).await;
    }
    let load = started.elapsed();
    // The Service's route at the router: the pipeline is whole before changes are timed.
    let ip = objects::wait_ips(client, &ns, "web", 1).await[0].clone();
    c.wait_nexthops(&format!("{ip}/32"), 2, Duration::from_secs(60))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut seen, mut api_returned) = (vec![], vec![]);
    for (to, want) in changes(&base, rounds, 0) {
        let patch = json!({ "spec": { "addresses": to } });
        let t = Instant::now();
        pools
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        api_returned.push(t.elapsed());
        let mut last = t;
        for counter in &mut counters {
            last = last.max(counter.until(want, Duration::from_secs(30)).await);
        }
        seen.push(last - t);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Each agent logs every apply with its time (parse, diff, send, the daemon's commit); the
    // pool edits are the applies of one to three lines, not the initial load.
    let applies: Vec<Duration> = agents
        .iter()
        .flat_map(|a| {
            a.log_text()
                .lines()
                .filter_map(logged_apply)
                .filter(|&(lines, _)| lines <= 3)
                .map(|(_, ms)| Duration::from_secs_f64(ms / 1e3))
                .collect::<Vec<_>>()
        })
        .collect();
    let vty_dir = std::path::Path::new("/var/run/frr").join(c.node_var(1, "FRR"));
    let idle_s = env_or("BENCH_IDLE_S", 60);
    let idle = daemon_cpu_per_minute(&vty_dir, idle_s).await;
    drop(agents);
    let reload_driver = Driver::Frr(FrrDriver::new(
        Some(c.node_var(1, "FRR").to_string()),
        FrrApply::Reload,
    ));
    let reload = reload_rounds(&reload_driver, &mut counters[0], &base, rounds).await;
    let _ = policies.delete(&name, &DeleteParams::default()).await;
    let _ = pools.delete(&name, &DeleteParams::default()).await;
    println!(
        "| {n} | {:.0} ms, {:.0}, {:.0} | {:.0} ms | {:.0} ms | {:.0} ms, {:.0} | {:.1}× | {:.1} s | {idle:.3} s/min |",
        ms(percentile(&seen, 0.5)),
        ms(percentile(&seen, 0.9)),
        ms(percentile(&seen, 1.0)),
        ms(percentile(&api_returned, 0.5)),
        ms(percentile(&applies, 0.5)),
        percentile(&reload, 0.5),
        percentile(&reload, 1.0),
        percentile(&reload, 0.5) / ms(percentile(&seen, 0.5)),
        load.as_secs_f64(),
    );
}

#[tokio::main]
async fn main() {
    let api_server = lock::api_server();
    let client = api::client(&api_server).await;
    let _allocator = support::allocator::Allocator::start(&api::unique("balloc"), "bench", &[]);
    let parts: String = env_or("BENCH_PARTS", "create,failover,pool".to_string());
    let part = |p: &str| parts.split(',').any(|x| x == p);
    if part("create") || part("failover") {
        println!("| measurement | n | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|");
    }
    if part("create") {
        let n = env_or("BENCH_N", 100);
        for (daemon, proto) in [
            ("frr", "bgp"),
            ("frr", "ospf"),
            ("bird", "bgp"),
            ("bird", "ospf"),
        ] {
            create_to_route(&client, daemon, proto, n).await;
        }
    }
    if part("failover") {
        failover(&client, env_or("BENCH_FAILOVERS", 10)).await;
    }
    if part("pool") {
        let rounds = env_or("BENCH_POOL_ROUNDS", 10);
        println!(
            "\n## A pool edit through the API → every node's bgpd (2 nodes; {rounds} adds + {rounds} removes per size)\n"
        );
        println!(
            "| prefixes | routelb: API call → in every node's bgpd (median, p90, max) | the API call returned (median) | an agent's logged apply (median) | frr-reload.py --reload on one node: start → in bgpd (median, max) | ratio of medians | initial load 0 → N, every node | node 1's bgpd + zebra CPU while the agents idle (resync, drift probe, verification) |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        let sizes: String = env_or("BENCH_POOL_SIZES", "1000,5000".to_string());
        for n in sizes.split(',').filter_map(|s| s.trim().parse().ok()) {
            pool_edit(&client, n, rounds).await;
        }
    }
}
