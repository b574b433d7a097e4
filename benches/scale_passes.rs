//! What one agent pass's election (the full one, and the node's own view the agent computes)
//! and the allocator's IPAM cost as the cluster grows, in the pure core (no API server):
//! N nodes × S Services, for routed pools (every node announces),
//! local pools on per-rack subnets (40 nodes each) and local pools on one subnet holding every
//! node. Also the size of one node's NodeState address list, which every agent writes and the
//! allocator caches for every node. Run: `cargo bench --bench scale_passes` (SCALE_NODES,
//! default "100,1000,5000"; SCALE_SERVICES, "1000,10000,50000"; SCALE_MAX_WORK, the largest
//! nodes × addresses a scenario runs at, 50,000,000; SCALE_RUNS, 3). Figures go to
//! docs/scale.md.

#[path = "../tests/support"]
mod support {
    pub mod env;
    pub mod stats;
}

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use routelb::api::{AddressPoolSpec, PoolMode};
use routelb::election::{Candidate, Kept, Member, Ranks, Readiness, elect, elect_for};
use routelb::ipam::{Pool, PoolInput, ServiceKey, ServiceRequest, allocate};
use routelb::service::ServiceAddresses;
use support::env::env_or;

#[path = "scale/plot.rs"]
mod plot;
use support::stats::{median, ms};

const RACK: usize = 40;

#[derive(Clone, Copy, Debug)]
enum Layout {
    Routed,
    LocalRacks,
    LocalOneSubnet,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Routed => "routed",
            Layout::LocalRacks => "local, racks of 40",
            Layout::LocalOneSubnet => "local, one subnet",
        }
    }

    /// How many nodes each address is ranked over.
    fn candidates(self, nodes: usize) -> usize {
        match self {
            Layout::LocalRacks => RACK.min(nodes),
            _ => nodes,
        }
    }
}

fn node_name(i: usize) -> String {
    format!("node-{i:05}")
}

/// Rack `r`'s subnet, 10.r.0.0/16 (room for every Service's own address on a few racks); the
/// one big subnet, 10.0.0.0/8, holds them all.
fn rack_subnet(r: usize) -> IpNet {
    assert!(r < 256, "at most 256 racks");
    format!("10.{r}.0.0/16").parse().unwrap()
}

fn members(n: usize, layout: Layout) -> Vec<Member> {
    (0..n)
        .map(|i| {
            let subnet: IpNet = match layout {
                Layout::LocalOneSubnet => "10.0.0.0/8".parse().unwrap(),
                _ => rack_subnet(i / RACK),
            };
            Member {
                node: node_name(i),
                subnets: vec![("eth0".into(), subnet)],
                routed_pools: BTreeSet::from(["routed".to_string()]),
                addresses: vec![],
                cut_off: false,
            }
        })
        .collect()
}

/// Service `i`'s address: routed ones from 198.18/15, local ones spread over the racks.
fn address(i: usize, nodes: usize, layout: Layout) -> IpAddr {
    match layout {
        Layout::Routed => IpAddr::V4(Ipv4Addr::from(0xC612_0000u32 + i as u32)),
        _ => {
            // Spread over the racks, each Service its own address.
            let racks = nodes.div_ceil(RACK);
            let r = i % racks;
            let host = 10 + i / racks;
            let net = rack_subnet(r);
            let IpAddr::V4(base) = net.network() else {
                unreachable!()
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(base) + host as u32))
        }
    }
}

fn services(s: usize, nodes: usize, layout: Layout) -> Vec<ServiceAddresses> {
    (0..s)
        .map(|i| ServiceAddresses {
            key: ServiceKey::new(format!("ns-{}", i % 100), format!("svc-{i}")),
            pool: match layout {
                Layout::Routed => "routed".into(),
                _ => "local".into(),
            },
            addresses: vec![address(i, nodes, layout)],
            attributes: Default::default(),
            admitted: true,
        })
        .collect()
}

/// The median time of one full election (None when not asked) and of one node's view of it
/// (what the agent computes), and how many addresses that node holds.
fn election(
    nodes: usize,
    s: usize,
    layout: Layout,
    runs: usize,
    full_too: bool,
) -> (Option<Duration>, Duration, usize) {
    let members = members(nodes, layout);
    let services = services(s, nodes, layout);
    let ready = Readiness::default();
    let mode = match layout {
        Layout::Routed => PoolMode::Routed,
        _ => PoolMode::Local,
    };
    let candidates: Vec<Candidate> = services
        .iter()
        .map(|service| Candidate {
            service,
            mode,
            local_traffic: false,
            withdraw_without_endpoints: false,
            endpoints: &ready,
        })
        .collect();
    let me = node_name(0);
    let full = full_too.then(|| {
        let times: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(elect(&candidates, &members, "kube-lb0"));
                t.elapsed()
            })
            .collect();
        median(&times)
    });
    let mut times = Vec::new();
    let mut held = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let views = elect_for(&me, &candidates, |_| &members[..], "kube-lb0", None);
        times.push(t.elapsed());
        held = views.iter().filter(|v| v.held()).count();
    }
    (full, median(&times), held)
}

/// The agent's election with its ranks kept: the first pass, a pass with nothing changed, one
/// after a node died, one after it came back.
fn kept_passes(nodes: usize, s: usize, layout: Layout) -> [Duration; 4] {
    let members = members(nodes, layout);
    let services = services(s, nodes, layout);
    let ready = Readiness::default();
    let candidates: Vec<Candidate> = services
        .iter()
        .map(|service| Candidate {
            service,
            mode: PoolMode::Local,
            local_traffic: false,
            withdraw_without_endpoints: false,
            endpoints: &ready,
        })
        .collect();
    let me = node_name(0);
    let mut ranks = Ranks::default();
    let mut pass = |members: &[Member]| {
        let t = Instant::now();
        let kept = Kept {
            members,
            ranks: &mut ranks,
        };
        std::hint::black_box(elect_for(
            &me,
            &candidates,
            |_| members,
            "kube-lb0",
            Some(kept),
        ));
        t.elapsed()
    };
    let without: Vec<Member> = members
        .iter()
        .filter(|m| m.node != node_name(nodes / 2))
        .cloned()
        .collect();
    [
        pass(&members),
        pass(&members),
        pass(&without),
        pass(&members),
    ]
}

fn ipam(s: usize, runs: usize) -> Duration {
    let spec = AddressPoolSpec {
        addresses: vec!["198.18.0.0/15".into()],
        mode: PoolMode::Routed,
        aggregation: None,
        auto_assign: true,
        avoid_buggy_ips: false,
        allocation: None,
        fast_failover: None,
    };
    let pools: Vec<PoolInput> = vec![("routed".into(), Pool::from_spec("routed", &spec))];
    let requests: Vec<ServiceRequest> = (0..s)
        .map(|i| ServiceRequest {
            key: ServiceKey::new(format!("ns-{}", i % 100), format!("svc-{i}")),
            created: i as i64,
            // Converged: each holds its address, as in steady state.
            current: vec![IpAddr::V4(Ipv4Addr::from(0xC612_0000u32 + i as u32))],
            current_pool: Some("routed".into()),
            ..Default::default()
        })
        .collect();
    let times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(allocate(&pools, &requests));
            t.elapsed()
        })
        .collect();
    median(&times)
}

/// The JSON size of a NodeState address list of `held` IPv4 /32s on one interface: listed one
/// by one (before issue 17), and in runs as written now, with every 100th address missing (the
/// holes Service deletions leave until IPAM reuses them).
fn node_state_bytes(held: usize) -> (usize, usize) {
    let size = |addresses: Vec<String>| {
        serde_json::to_vec(&routelb::api::InterfaceAddresses {
            interface: "kube-lb0".into(),
            addresses,
        })
        .unwrap()
        .len()
    };
    let ip = |i: usize| IpAddr::V4(Ipv4Addr::from(0xC612_0000u32 + i as u32));
    let each = (0..held).map(|i| format!("{}/32", ip(i))).collect();
    let holed: Vec<(IpAddr, u8)> = (0..held + held / 100)
        .filter(|i| i % 100 != 99)
        .map(|i| (ip(i), 32))
        .collect();
    (size(each), size(routelb::api::address_runs::encode(&holed)))
}

fn list(var: &str, default: &str) -> Vec<usize> {
    env_or(var, default.to_string())
        .split(',')
        .map(|n| n.trim().parse().expect("a number"))
        .collect()
}

fn main() {
    let node_counts = list("SCALE_NODES", "100,1000,5000");
    let service_counts = list("SCALE_SERVICES", "1000,10000,50000");
    let max_work: usize = env_or("SCALE_MAX_WORK", 50_000_000);
    let runs: usize = env_or("SCALE_RUNS", 3);
    println!(
        "| layout | nodes | Services | full election (every node's holders) | this node's view (the agent's) | per address | held by one node | its NodeState address list: each address → runs (1 % holes) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut series: Vec<plot::Series> = Vec::new();
    for layout in [Layout::Routed, Layout::LocalRacks, Layout::LocalOneSubnet] {
        for &n in &node_counts {
            let mut line = plot::Series {
                label: format!("{}, {n} nodes", layout.name()),
                points: vec![],
            };
            for &s in &service_counts {
                let work = layout.candidates(n) * s;
                let full_too = work <= max_work;
                // The one-subnet view still ranks every node per address.
                if matches!(layout, Layout::LocalOneSubnet) && !full_too {
                    println!(
                        "| {} | {n} | {s} | not run: {work} node ranks per pass | not run | | | |",
                        layout.name()
                    );
                    continue;
                }
                let (full, view, held) = election(n, s, layout, runs, full_too);
                line.points.push((s as f64, ms(view).max(0.01)));
                let full = full.map_or(format!("not run: {work} node ranks per pass"), |t| {
                    format!("{:.1} ms", ms(t))
                });
                let (each, in_runs) = node_state_bytes(held);
                println!(
                    "| {} | {n} | {s} | {full} | {:.1} ms | {:.2} µs | {held} | {:.1} KiB → {:.1} KiB |",
                    layout.name(),
                    ms(view),
                    view.as_secs_f64() * 1e6 / s as f64,
                    each as f64 / 1024.0,
                    in_runs as f64 / 1024.0
                );
            }
            if !line.points.is_empty() {
                series.push(line);
            }
        }
    }
    if let Ok(path) = std::env::var("SCALE_PLOT") {
        let svg = plot::svg(
            "One agent pass's election (its view), median",
            "Services",
            "ms per pass",
            &series,
        );
        std::fs::write(&path, svg).expect("write the plot");
        println!("\n(plot written to {path})");
    }
    println!();
    println!(
        "| layout | nodes | Services | first pass (ranks every address) | next pass, nothing changed | a node died | it came back |"
    );
    println!("|---|---|---|---|---|---|---|");
    for layout in [Layout::LocalRacks, Layout::LocalOneSubnet] {
        for &n in &node_counts {
            for &s in &service_counts {
                let work = layout.candidates(n) * s;
                if work > max_work {
                    println!(
                        "| {} | {n} | {s} | not run: {work} node ranks | | | |",
                        layout.name()
                    );
                    continue;
                }
                let [first, steady, died, back] = kept_passes(n, s, layout);
                println!(
                    "| {} | {n} | {s} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
                    layout.name(),
                    ms(first),
                    ms(steady),
                    ms(died),
                    ms(back)
                );
            }
        }
    }
    println!();
    println!("| Services | one IPAM pass, converged (median of {runs}) |");
    println!("|---|---|");
    for &s in &service_counts {
        println!("| {s} | {:.1} ms |", ms(ipam(s, runs)));
    }
}
