//! Daemon benchmarks on the namespace lab (root, frr, frr-pythontools, bird2):
//! 1. a one-prefix policy change when the fragment holds 1, 100, 1,000 and 5,000 prefixes:
//!    routelb's FRR driver (diff) against frr-reload.py --reload of the same full config, and
//!    BIRD `configure`; with the BGP session counters checked for resets;
//! 2. the time from an address added to kube-lb0 to the route in the router's kernel table (and
//!    back), per daemon and protocol;
//! 3. a restarted bgpd under `routelb standalone`: from the daemon's start to routelb's objects
//!    back in it, and to the route back at the router.
//!
//! Run: `cargo bench --bench apply [-- policy|convergence|restart]`. Figures go to
//! docs/benchmarks.md.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use routelb::daemon::Driver;
use routelb::daemon::frr::FrrApply;
use routelb::manifests::{Manifests, load_str};
use routelb::render::{DaemonKind, Templates};

#[path = "../tests/support"]
mod support {
    pub mod daemon;
    pub mod files;
    pub mod lab;
    pub mod lock;
    pub mod script;
    pub mod stats;
}

use support::lab::Lab;
use support::stats::{median, ms, percentile};

fn manifests(addresses: &[String], proto: &str) -> Manifests {
    let list: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    let text = format!(
        "apiVersion: routelb.io/v1alpha1\nkind: AddressPool\nmetadata: {{name: bench}}\nspec: {{addresses: [{}]}}\n---\n\
         apiVersion: routelb.io/v1alpha1\nkind: RoutingPolicy\nmetadata: {{name: bench}}\nspec: {{protocols: [{proto}]}}\n",
        list.join(", ")
    );
    let mut m = Manifests::default();
    load_str(&text, Path::new("bench.yaml"), &mut m).unwrap();
    m
}

/// N addresses that never merge into larger blocks: N prefix-list entries.
fn addresses(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.{}.{}.1/32", i / 250, i % 250))
        .collect()
}

async fn fragment(driver: &Driver, daemon: DaemonKind, m: &Manifests) -> String {
    let inst = driver.instances().await.unwrap();
    routelb::offline::render(
        m,
        &Templates::embedded(daemon).unwrap(),
        None,
        "kube-lb0",
        &inst,
    )
    .unwrap()
    .fragment
}

async fn policy_change_table() {
    println!("\n## One-prefix policy change (BGP), by fragment size\n");
    println!(
        "| prefixes | routelb FRR diff | frr-reload.py --reload | speed-up | BIRD configure | FRR lines sent | session resets | load from the previous size (routelb) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let frr_lab = Lab::up("bfrr", "frr", "bgp");
    let bird_lab = Lab::up("bbird", "bird", "bgp");
    let frr = frr_lab.driver(FrrApply::Diff);
    let reload = frr_lab.driver(FrrApply::Reload);
    let bird = bird_lab.driver(FrrApply::Diff);
    for n in [1usize, 100, 1000, 5000] {
        let base = addresses(n);
        let f_base = fragment(&frr, DaemonKind::Frr, &manifests(&base, "bgp")).await;
        let b_base = fragment(&bird, DaemonKind::Bird, &manifests(&base, "bgp")).await;
        let t = Instant::now();
        frr.apply(&f_base).await.unwrap();
        let initial = t.elapsed();
        bird.apply(&b_base).await.unwrap();
        let before = (frr_lab.bgp_connections(), bird_lab.bgp_connections());
        let (mut diff_t, mut reload_t, mut bird_t) = (vec![], vec![], vec![]);
        let mut lines = 0;
        // Each round adds a prefix never seen before, then takes it away again: a new prefix
        // is what a pool edit brings (and what the driver has not validated yet). It sorts into
        // the middle of the pool, where numbering entries by position would renumber the rest.
        for round in 0..3 {
            let fresh = |k: usize| {
                let mut plus = base.clone();
                plus.push(format!("10.{}.251.1/32", k % 250));
                manifests(&plus, "bgp")
            };
            let f_plus = fragment(&frr, DaemonKind::Frr, &fresh(round)).await;
            let f_plus_reload = fragment(&frr, DaemonKind::Frr, &fresh(100 + round)).await;
            let b_plus = fragment(&bird, DaemonKind::Bird, &fresh(round)).await;
            for to in [&f_plus, &f_base] {
                let t = Instant::now();
                let o = frr.apply(to).await.unwrap();
                diff_t.push(t.elapsed());
                lines = o.commands;
            }
            for to in [&f_plus_reload, &f_base] {
                let t = Instant::now();
                reload.apply(to).await.unwrap();
                reload_t.push(t.elapsed());
            }
            for to in [&b_plus, &b_base] {
                let t = Instant::now();
                bird.apply(to).await.unwrap();
                bird_t.push(t.elapsed());
            }
        }
        let after = (frr_lab.bgp_connections(), bird_lab.bgp_connections());
        let resets = if before == after {
            "0".to_string()
        } else {
            format!("{before:?} -> {after:?}")
        };
        let (d, r, b) = (
            ms(median(&diff_t)),
            ms(median(&reload_t)),
            ms(median(&bird_t)),
        );
        println!(
            "| {n} | {d:.0} ms | {r:.0} ms | {:.1}x | {b:.1} ms | {lines} | {resets} | {:.2} s |",
            r / d,
            initial.as_secs_f64()
        );
    }
}

/// Watches the router's routing table; yields (time seen, line).
fn monitor(ns: &str) -> (std::process::Child, mpsc::Receiver<(Instant, String)>) {
    let mut child = Command::new("ip")
        .args(["-n", ns, "monitor", "route"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_line(
    rx: &mpsc::Receiver<(Instant, String)>,
    prefix: &str,
    deleted: bool,
    timeout: Duration,
) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let (at, line) = rx.recv_timeout(left).ok()?;
        let bare = prefix.trim_end_matches("/32").trim_end_matches("/128");
        let is_deleted = line.starts_with("Deleted");
        if is_deleted == deleted && line.split_whitespace().any(|w| w == prefix || w == bare) {
            return Some(at);
        }
    }
}

async fn convergence_table() {
    println!(
        "\n## Address on kube-lb0 → route in the router's kernel table (IPv4 /32, 20 samples)\n"
    );
    println!("| node daemon | protocol | add → route p50 | p99 | del → withdrawn p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    for (node, proto) in [
        ("frr", "bgp"),
        ("frr", "ospf"),
        ("frr", "isis"),
        ("frr", "rip"),
        ("bird", "bgp"),
        ("bird", "ospf"),
        ("bird", "rip"),
    ] {
        let name = format!("c{}{}", &node[..1], &proto[..2]);
        let lab = Lab::up(&name, node, proto);
        let daemon = if node == "frr" {
            DaemonKind::Frr
        } else {
            DaemonKind::Bird
        };
        let driver = lab.driver(FrrApply::Diff);
        let f = fragment(
            &driver,
            daemon,
            &manifests(&["203.0.113.0/24".to_string()], proto),
        )
        .await;
        driver.apply(&f).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (mut child, rx) = monitor(lab.var("LAB_RTR_NS"));
        let (mut adds, mut dels) = (vec![], vec![]);
        for i in 0..20 {
            let prefix = format!("203.0.113.{}/32", 10 + i);
            let t = Instant::now();
            Command::new("ip")
                .args([
                    "-n",
                    lab.var("LAB_NODE_NS"),
                    "addr",
                    "add",
                    &prefix,
                    "dev",
                    "kube-lb0",
                ])
                .status()
                .unwrap();
            if let Some(at) = wait_line(&rx, &prefix, false, Duration::from_secs(30)) {
                adds.push((at - t).as_secs_f64() * 1e3);
            }
            let t = Instant::now();
            Command::new("ip")
                .args([
                    "-n",
                    lab.var("LAB_NODE_NS"),
                    "addr",
                    "del",
                    &prefix,
                    "dev",
                    "kube-lb0",
                ])
                .status()
                .unwrap();
            if let Some(at) = wait_line(&rx, &prefix, true, Duration::from_secs(60)) {
                dels.push((at - t).as_secs_f64() * 1e3);
            }
        }
        let _ = child.kill();
        if adds.is_empty() || dels.is_empty() {
            println!("| {node} | {proto} | no samples | | | |");
        } else {
            println!(
                "| {node} | {proto} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
                percentile(&adds, 0.5),
                percentile(&adds, 0.99),
                percentile(&dels, 0.5),
                percentile(&dels, 0.99)
            );
        }
    }
}

/// The node's bgpd: its running configuration over its vty socket, or None while it is down.
async fn bgpd_config(sock: &Path) -> Option<String> {
    let mut c = routelb::daemon::vty::Connection::open(sock).await.ok()?;
    Some(c.command("show running-config").await.ok()?.output)
}

/// The daemon's process id from its pid file (a new one means a new daemon: socket inodes are
/// reused on tmpfs).
fn pid(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|p| p.trim().to_string())
}

/// Runs on its own thread with its own runtime: it blocks while it polls.
fn restart_table() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    const ROUNDS: usize = 10;
    println!(
        "\n## A restarted bgpd under routelb standalone ({ROUNDS} restarts, 100 pool prefixes)\n"
    );
    let lab = Lab::up("brst", "frr", "bgp");
    let dir = support::files::scratch("bench-restart");
    let pool: Vec<String> = addresses(100).iter().map(|a| format!("\"{a}\"")).collect();
    std::fs::write(
        dir.join("pool.yaml"),
        format!(
            "apiVersion: routelb.io/v1alpha1\nkind: AddressPool\nmetadata: {{name: bench}}\nspec: {{addresses: [{}]}}\n---\n\
             apiVersion: routelb.io/v1alpha1\nkind: RoutingPolicy\nmetadata: {{name: bench}}\nspec: {{protocols: [bgp]}}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\nspec: {{type: LoadBalancer, ports: [{{port: 80}}]}}\n",
            pool.join(", ")
        ),
    )
    .unwrap();
    let mut standalone = Command::new("ip")
        .args(["netns", "exec", lab.var("LAB_NODE_NS")])
        .arg(env!("CARGO_BIN_EXE_routelb"))
        .args([
            "standalone",
            "--config",
            dir.to_str().unwrap(),
            "--resync",
            "300s",
        ])
        .args(lab.daemon().flags())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let prefix = "10.0.0.1/32";
    lab.wait_route(prefix, "present", 60).unwrap();
    let sock = Path::new("/var/run/frr")
        .join(lab.var("LAB_NODE_FRR"))
        .join("bgpd.vty");
    let pidfile = sock.with_file_name("bgpd.pid");
    let repaired = |c: &str| {
        c.contains("ip prefix-list ROUTELB-POOL-bench_")
            && c.contains("redistribute connected route-map ROUTELB-BGP-V4")
    };
    let (mut loaded, mut fixed, mut after_load, mut route) = (vec![], vec![], vec![], vec![]);
    let (mut monitor_child, rx) = monitor(lab.var("LAB_RTR_NS"));
    for _ in 0..ROUNDS {
        let old = pid(&pidfile);
        let started_at = std::thread::scope(|scope| {
            let restart = scope.spawn(|| lab.restart_daemon("bgpd"));
            // The daemon's start: its new vty socket accepts a connection.
            let started = loop {
                if pid(&pidfile).is_some_and(|p| Some(&p) != old.as_ref())
                    && rt.block_on(bgpd_config(&sock)).is_some()
                {
                    break Instant::now();
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            let mut config_at = None;
            let repaired_at = loop {
                let c = rt.block_on(bgpd_config(&sock)).unwrap_or_default();
                if config_at.is_none() && c.contains("router bgp") {
                    config_at = Some(Instant::now());
                }
                if repaired(&c) {
                    break Instant::now();
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "never repaired"
                );
                std::thread::sleep(Duration::from_millis(2));
            };
            restart.join().unwrap();
            let config_at = config_at.unwrap_or(repaired_at);
            loaded.push((config_at - started).as_secs_f64() * 1e3);
            fixed.push((repaired_at - started).as_secs_f64() * 1e3);
            after_load.push(
                repaired_at
                    .saturating_duration_since(config_at)
                    .as_secs_f64()
                    * 1e3,
            );
            started
        });
        if let Some(at) = wait_line(&rx, prefix, false, Duration::from_secs(60)) {
            route.push((at - started_at).as_secs_f64() * 1e3);
        }
        while rx.try_recv().is_ok() {}
    }
    let _ = monitor_child.kill();
    let _ = standalone.kill();
    let _ = standalone.wait();
    let _ = std::fs::remove_dir_all(&dir);
    println!("| from bgpd's start (its vty socket answers) to | p50 | max |");
    println!("|---|---|---|");
    for (what, v) in [
        (
            "its base configuration loaded (`vtysh -b`, the lab's watchfrr step)",
            loaded,
        ),
        (
            "**routelb's objects back in bgpd** (prefix-lists, route-map, redistribute)",
            fixed,
        ),
        (
            "the route back in the router's kernel table (BGP session re-established)",
            route,
        ),
    ] {
        if v.is_empty() {
            println!("| {what} | no samples | |");
        } else {
            println!(
                "| {what} | {:.0} ms | {:.0} ms |",
                percentile(&v, 0.5),
                percentile(&v, 1.0)
            );
        }
    }
    println!(
        "| routelb's repair after the base configuration loaded | {:.0} ms | {:.0} ms |",
        percentile(&after_load, 0.5),
        percentile(&after_load, 1.0)
    );
}

#[tokio::main]
async fn main() {
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let run = |section: &str| only.is_none() || only.as_deref() == Some(section);
    if run("policy") {
        policy_change_table().await;
    }
    if run("convergence") {
        convergence_table().await;
    }
    if run("restart") {
        std::thread::spawn(restart_table).join().unwrap();
    }
}
