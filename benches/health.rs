//! The cost of a look at routing health, on the namespace lab (root, frr, bird2): per look,
//! the wall time and the CPU of routelb and of the daemons it asks, and the daemons' CPU per
//! minute at the agent's pace (one look every 10 s, with the verification). For FRR with BGP
//! and BFD, FRR with OSPF/OSPFv3, and BIRD with BGP.
//!
//! Run: `cargo bench --bench health` (ROUTELB_BENCH_LOOKS, default 200). Figures go to
//! docs/benchmarks.md.

use std::path::Path;
use std::time::Instant;

use routelb::daemon::Driver;
use routelb::daemon::frr::FrrApply;
use routelb::daemon::observe;

#[path = "../tests/support"]
mod support {
    pub mod cpu;
    pub mod daemon;
    pub mod env;
    pub mod files;
    pub mod lab;
    pub mod lock;
    pub mod script;
}

use support::cpu::{cpu_s, frr_cpu_s};
use support::env::env_or;
use support::lab::Lab;

/// Looks per minute in the agent: one per verification period (10 s).
const LOOKS_PER_MINUTE: f64 = 6.0;

/// Wall ms, routelb CPU ms and daemon CPU ms per look, over `n` looks; and the sessions seen.
async fn measure(
    driver: &Driver,
    n: usize,
    daemon_cpu: impl Fn() -> f64,
) -> (f64, f64, f64, usize) {
    let sessions = observe::health(driver).await.unwrap().sessions.len();
    let (c0, d0, t0) = (cpu_s("self"), daemon_cpu(), Instant::now());
    for _ in 0..n {
        observe::health(driver).await.unwrap();
    }
    let per = |d: f64| d * 1e3 / n as f64;
    (
        per(t0.elapsed().as_secs_f64()),
        per(cpu_s("self") - c0),
        per(daemon_cpu() - d0),
        sessions,
    )
}

fn row(what: &str, (wall, own, daemon, sessions): (f64, f64, f64, usize)) {
    println!(
        "| {what} | {sessions} | {wall:.2} ms | {own:.2} ms | {daemon:.2} ms | {:.3} s/min |",
        daemon * LOOKS_PER_MINUTE / 1e3
    );
}

#[tokio::main]
async fn main() {
    let looks: usize = env_or("ROUTELB_BENCH_LOOKS", 200);
    println!("{looks} looks each; the daemons' CPU per minute at one look every 10 s\n");
    println!(
        "| daemon, protocols | sessions | wall per look | routelb CPU per look | daemons' CPU per look | daemons' CPU per minute |"
    );
    println!("|---|---|---|---|---|---|");

    let lab = Lab::up_with("hb-fbgp", "frr", "bgp", &["--daemons", "zebra bgpd bfdd"]);
    let node = lab.var("LAB_NODE_FRR");
    let (rtr_v4, node_v4) = (lab.var("LAB_RTR_V4"), lab.var("LAB_NODE_V4"));
    lab.bgp_line("LAB_NODE_FRR", &format!("neighbor {rtr_v4} bfd"));
    lab.bgp_line("LAB_RTR_FRR", &format!("neighbor {node_v4} bfd"));
    let dir = Path::new("/var/run/frr").join(node);
    let daemons = ["zebra", "bgpd", "bfdd"];
    let driver = lab.driver(FrrApply::Diff);
    // Until the BFD session is up and attached.
    for _ in 0..100 {
        let look = observe::health(&driver).await.unwrap();
        if look.sessions.iter().any(|s| s.bfd.as_deref() == Some("up")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    row(
        "FRR 8.4, BGP + BFD (bgpd, bfdd; the others asked, not running)",
        measure(&driver, looks, || frr_cpu_s(&dir, &daemons)).await,
    );
    drop(lab);

    let lab = Lab::up("hb-fospf", "frr", "ospf");
    let dir = Path::new("/var/run/frr").join(lab.var("LAB_NODE_FRR"));
    let daemons = ["zebra", "ospfd", "ospf6d"];
    let driver = lab.driver(FrrApply::Diff);
    row(
        "FRR 8.4, OSPF + OSPFv3",
        measure(&driver, looks, || frr_cpu_s(&dir, &daemons)).await,
    );
    drop(lab);

    let lab = Lab::up("hb-bbgp", "bird", "bgp");
    let pid = std::fs::read_to_string(lab.var("LAB_BIRD_PID"))
        .unwrap()
        .trim()
        .to_string();
    let driver = lab.driver(FrrApply::Diff);
    row(
        "BIRD 2.0, BGP",
        measure(&driver, looks, || cpu_s(&pid)).await,
    );
}
