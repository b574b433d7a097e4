//! Daemon benchmarks on the namespace lab (root, frr, frr-pythontools, bird2):
//! 1. a one-prefix policy change when the fragment holds 1, 100, 1,000 and 5,000 prefixes:
//!    routelb's FRR driver (diff) against frr-reload.py --reload of the same full config, and
//!    BIRD `configure`; with the BGP session counters checked for resets;
//! 2. the time from an address added to kube-lb0 to the route in the router's kernel table (and
//!    back), per daemon and protocol.
//!
//! Run: `cargo bench --bench apply`. Figures go to docs/benchmarks.md.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use routelb::daemon::Driver;
use routelb::daemon::frr::FrrApply;
use routelb::manifests::{Manifests, load_str};
use routelb::render::{DaemonKind, Templates};

#[path = "../tests/support/lab.rs"]
mod support;
use support::Lab;

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

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
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
        let (d, r, b) = (median(diff_t), median(reload_t), median(bird_t));
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

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 * p).ceil() as usize)
        .saturating_sub(1)
        .min(v.len() - 1)]
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
                pct(adds.clone(), 0.5),
                pct(adds, 0.99),
                pct(dels.clone(), 0.5),
                pct(dels, 0.99)
            );
        }
    }
}

#[tokio::main]
async fn main() {
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    if only.as_deref() != Some("convergence") {
        policy_change_table().await;
    }
    if only.as_deref() != Some("policy") {
        convergence_table().await;
    }
}
