//! What a user of the real cluster sees (issue 13), on integration/k8s/e2e.sh's cluster:
//!
//! * `create`: a LoadBalancer Service applied with kubectl → the first answer from a pod at
//!   the client behind the router, IPv4 and IPv6, p50/p99 over ROUTELB_BENCH_SERVICES (50)
//!   Services created one after another (each kept until the end); beside it the breakdown:
//!   `kubectl apply` returned, address in the Service's status, route at the router with every
//!   node as next hop.
//! * `rollout` / `drain`: requests (50/s on each address of a routed Service) lost per rolling
//!   update of the agent DaemonSet and per `kubectl drain` + uncordon of a node, over
//!   ROUTELB_BENCH_ROUNDS (3) rounds: those that found no path and those cut mid-flight.
//!
//!   cargo bench --bench real_cluster [-- create|rollout|drain]
//!
//! Brings the cluster up if it is not (`e2e.sh up`) and leaves it up.

#[path = "../tests/support"]
mod support {
    pub mod env;
    pub mod files;
    pub mod load;
    #[allow(dead_code)] // the tests' scenarios use more of it
    pub mod real_cluster;
    #[allow(dead_code)] // `variables` only
    pub mod script;
    pub mod stats;
    pub mod wait;
}

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::env::env_or;
use support::load::{self, Load, Report};
use support::real_cluster::{APP_NS, BENCH_POOL, CLIENT_NS, ROUTED_POOL, RealCluster, SYSTEM_NS};
use support::stats::{ms, percentile};

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    let c = RealCluster::up().unwrap_or_else(|e| panic!("{e}"));
    if wanted("create") {
        create(&c, env_or("ROUTELB_BENCH_SERVICES", 50));
    }
    let rounds = env_or("ROUTELB_BENCH_ROUNDS", 3);
    if wanted("rollout") {
        lossless(&c, "rollout", rounds, |c| {
            c.kubectl(&["-n", SYSTEM_NS, "rollout", "restart", "ds/routelb-agent"])?;
            c.kubectl(&[
                "-n",
                SYSTEM_NS,
                "rollout",
                "status",
                "ds/routelb-agent",
                "--timeout=300s",
            ])
            .map(drop)
        });
    }
    if wanted("drain") {
        lossless(&c, "drain", rounds, |c| {
            let node = RealCluster::node_name(1);
            c.drain_and_uncordon(&node)?;
            c.scale_workload(c.nodes, Duration::from_secs(120))
                .map(drop)
        });
    }
}

/// One Service's timeline, from the start of `kubectl apply`.
#[derive(Default)]
struct Timeline {
    applied: Duration,
    address: Option<Duration>,
    route: [Option<Duration>; 2],
    answer: [Option<Duration>; 2],
}

fn create(c: &RealCluster, count: usize) {
    let names: Vec<String> = (0..count).map(|i| format!("bench-{i}")).collect();
    for n in &names {
        c.delete_service(n);
    }
    let all = c.all_nodes();
    let mut timelines = Vec::new();
    for name in &names {
        let t = create_one(c, name, &all);
        eprintln!(
            "{name}: applied {:.0} ms, address {:?}, route v4/v6 {:?}, answer v4/v6 {:?}",
            ms(t.applied),
            t.address.map(ms),
            t.route.map(|r| r.map(ms)),
            t.answer.map(|r| r.map(ms))
        );
        timelines.push(t);
    }
    println!(
        "Service create -> first answer at the client, {count} dual-stack Services on a routed pool \
         ({} nodes, eBGP, kube-proxy iptables), ms from the start of `kubectl apply`:",
        c.nodes
    );
    println!("| step | p50 | p99 | worst |");
    println!("|---|---|---|---|");
    let row = |label: &str, xs: Vec<Duration>| {
        if xs.len() < count {
            println!(
                "| {label} | missing for {} Services | | |",
                count - xs.len()
            );
            return;
        }
        let worst = xs.iter().max().copied().unwrap_or_default();
        println!(
            "| {label} | {:.0} | {:.0} | {:.0} |",
            ms(percentile(&xs, 0.5)),
            ms(percentile(&xs, 0.99)),
            ms(worst)
        );
    };
    row(
        "**first answer, IPv4**",
        timelines.iter().filter_map(|t| t.answer[0]).collect(),
    );
    row(
        "**first answer, IPv6**",
        timelines.iter().filter_map(|t| t.answer[1]).collect(),
    );
    row(
        "`kubectl apply` returned",
        timelines.iter().map(|t| t.applied).collect(),
    );
    row(
        "address in status",
        timelines.iter().filter_map(|t| t.address).collect(),
    );
    row(
        "route at the router, every node, IPv4",
        timelines.iter().filter_map(|t| t.route[0]).collect(),
    );
    row(
        "route at the router, every node, IPv6",
        timelines.iter().filter_map(|t| t.route[1]).collect(),
    );
    for n in &names {
        c.delete_service(n);
    }
}

/// Creates Service `name` and follows it: its addresses from a `kubectl get -w` stream (no
/// polling delay), then the router's table and the client's requests, each address on its own.
fn create_one(c: &RealCluster, name: &str, all: &BTreeSet<String>) -> Timeline {
    let mut t = Timeline::default();
    let t0 = Instant::now();
    c.apply_service(name, BENCH_POOL, "Cluster")
        .unwrap_or_else(|e| panic!("{e}"));
    t.applied = t0.elapsed();
    let ips = watch_addresses(c, name, Duration::from_secs(60));
    t.address = Some(t0.elapsed());
    let deadline = t0 + Duration::from_secs(60);
    let mut pending: Vec<(usize, IpAddr)> = ips
        .iter()
        .map(|ip| (usize::from(ip.is_ipv6()), *ip))
        .collect();
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(|(f, ip)| {
            let announcing = c.announcing_nodes(*ip);
            if t.route[*f].is_none() && announcing == *all {
                t.route[*f] = Some(t0.elapsed());
            }
            // a request as soon as the router has any route: the answer may come before the
            // last node's next hop is in
            if t.answer[*f].is_none() && !announcing.is_empty() {
                let r =
                    load::requests(CLIENT_NS, SocketAddr::new(*ip, 80), 1).expect("client netns");
                if r.failed() == 0 {
                    t.answer[*f] = Some(t0.elapsed());
                }
            }
            t.route[*f].is_none() || t.answer[*f].is_none()
        });
        std::thread::sleep(Duration::from_millis(5));
    }
    t
}

fn watch_addresses(c: &RealCluster, name: &str, timeout: Duration) -> Vec<IpAddr> {
    let mut child = Command::new(c.kubectl_path())
        .args(["--kubeconfig", c.kubeconfig_path()])
        .args(["-n", APP_NS, "get", "svc", name, "-w", "-o"])
        .arg("jsonpath={.status.loadBalancer.ingress[*].ip}{\"\\n\"}")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl");
    let deadline = Instant::now() + timeout;
    let mut found = Vec::new();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let Ok(line) = line else { break };
        found = line
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect::<Vec<IpAddr>>();
        if (found.iter().any(IpAddr::is_ipv4) && found.iter().any(IpAddr::is_ipv6))
            || Instant::now() > deadline
        {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    found
}

/// `rounds` times `change` under load on a routed Service; requests lost per round.
fn lossless(
    c: &RealCluster,
    label: &str,
    rounds: usize,
    change: impl Fn(&RealCluster) -> Result<(), String>,
) {
    let name = format!("bench-{label}");
    c.delete_service(&name);
    let ips = c
        .create_service(&name, ROUTED_POOL, "Cluster")
        .unwrap_or_else(|e| panic!("{e}"));
    let all = c.all_nodes();
    println!("requests lost per {label} (50/s on each of {ips:?}):");
    println!("| round | requests | found no path | cut mid-flight | took |");
    println!("|---|---|---|---|---|");
    for round in 1..=rounds {
        for ip in &ips {
            c.wait_announced_by(*ip, &all, Duration::from_secs(120))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let loads = Load::on_each(CLIENT_NS, &ips, 50).expect("load");
        let t0 = Instant::now();
        let outcome = change(c).and_then(|_| {
            ips.iter().try_for_each(|ip| {
                c.wait_announced_by(*ip, &all, Duration::from_secs(120))
                    .map(drop)
            })
        });
        let took = t0.elapsed();
        let reports: Vec<Report> = loads.into_iter().map(Load::stop).collect();
        if let Err(e) = outcome {
            panic!("{label} round {round}: {e}");
        }
        for r in &reports {
            eprintln!("  {}", r.summary());
        }
        let l = load::losses(&reports);
        println!(
            "| {round} | {} | {} | {} | {:.1} s |",
            l.sent,
            l.found_no_path,
            l.cut,
            took.as_secs_f64()
        );
    }
    c.delete_service(&name);
}
