//! The FRR drift probe at 5,000 prefixes, on the namespace lab (root, frr, frr-pythontools):
//! 1. its cost: wall and CPU time (routelb's and the FRR daemons') per probe and per minute at
//!    the default two probes a second, against what a resync reads (instances + a full
//!    compare);
//! 2. detection + repair under `routelb standalone` (`--resync 300s`: only the probe repairs):
//!    from the moment another tool finished removing routelb's objects to the objects back in
//!    the daemons, and to the Service's route back in the router's kernel table, for a person's
//!    `no ip prefix-list`, a `no redistribute`, and frr-reload.py of the base file (frr-k8s).
//!
//! Run: `cargo bench --bench drift [-- cost|repair]`. Figures go to docs/benchmarks.md.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use routelb::daemon::Driver;
use routelb::daemon::frr::FrrApply;
use routelb::manifests::{Manifests, load_dir};
use routelb::render::{DaemonKind, Templates};

#[path = "../tests/support"]
mod support {
    pub mod cpu;
    pub mod daemon;
    pub mod files;
    pub mod lab;
    pub mod lock;
    pub mod script;
    pub mod stats;
}

use support::cpu::{cpu_s, frr_cpu_s};
use support::lab::Lab;
use support::stats::{ms, percentile};

const PREFIXES: usize = 5000;
const ROUNDS: usize = 10;
/// The Service's address: the pool's first.
const SERVICE: &str = "10.0.0.1/32";

/// A pool of `PREFIXES` /32s that never merge (as many prefix-list entries), a BGP policy and
/// one Service.
fn write_manifests(dir: &Path) {
    let pool: Vec<String> = (0..PREFIXES)
        .map(|i| format!("\"10.{}.{}.1/32\"", i / 250, i % 250))
        .collect();
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
}

async fn fragment(driver: &Driver, m: &Manifests) -> String {
    let inst = driver.instances().await.unwrap();
    let t = Templates::embedded(DaemonKind::Frr).unwrap();
    routelb::offline::render(m, &t, None, "kube-lb0", &inst)
        .unwrap()
        .fragment
}

/// The node's FRR daemons' CPU seconds, together.
fn frr_cpu(lab: &Lab) -> f64 {
    frr_cpu_s(
        &Path::new("/var/run/frr").join(lab.var("LAB_NODE_FRR")),
        &["zebra", "bgpd"],
    )
}

/// Wall ms, routelb CPU ms and FRR CPU ms per run of `op`, over `n` runs.
async fn measure<F, Fut>(lab: &Lab, n: usize, mut op: F) -> (f64, f64, f64)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let (c0, f0, t0) = (cpu_s("self"), frr_cpu(lab), Instant::now());
    for _ in 0..n {
        op().await;
    }
    let per = |d: f64| d * 1e3 / n as f64;
    (
        per(t0.elapsed().as_secs_f64()),
        per(cpu_s("self") - c0),
        per(frr_cpu(lab) - f0),
    )
}

async fn cost_table(lab: &Lab, dir: &Path) {
    let m = load_dir(dir).unwrap();
    let driver = lab.driver(FrrApply::Diff);
    let f = fragment(&driver, &m).await;
    let t = Instant::now();
    driver.apply(&f).await.unwrap();
    println!(
        "(loaded {PREFIXES} prefixes in {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    // A resync with nothing to do warms the parser's cache, as a running routelb has it.
    driver.forget();
    driver.apply(&f).await.unwrap();
    let (d, f) = (&driver, &f);
    let probe = measure(lab, 200, || async move {
        let found = d.probe(false).await.unwrap().expect("known after an apply");
        assert!(found.findings.is_empty(), "{found:?}");
    })
    .await;
    let resync = measure(lab, 10, || async move {
        d.instances().await.unwrap();
        d.forget();
        assert!(!d.apply(f).await.unwrap().changed);
    })
    .await;
    println!("\n## The drift probe's cost at {PREFIXES} prefixes (zebra + bgpd)\n");
    println!(
        "| read | wall per read | routelb CPU per read | FRR CPU per read | reads per minute | routelb CPU per minute | FRR CPU per minute |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (what, (wall, own, frr), per_minute) in [
        (
            "drift probe (`--drift-probe 500ms`, the default: the lists each time, everything every 4th)",
            probe,
            120.0,
        ),
        (
            "today's resync: instances + full compare (`--resync 30s`)",
            resync,
            2.0,
        ),
    ] {
        println!(
            "| {what} | {wall:.2} ms | {own:.2} ms | {frr:.2} ms | {per_minute:.0} | {:.0} ms | {:.0} ms |",
            own * per_minute,
            frr * per_minute
        );
    }
}

/// Where the standalone's log goes: `ROUTELB_BENCH_LOG=<file>` keeps it (with
/// `RUST_LOG=routelb=debug` in the environment for the repairs' timeline).
fn standalone_log() -> Stdio {
    match std::env::var_os("ROUTELB_BENCH_LOG") {
        Some(path) => File::create(path).unwrap().into(),
        None => Stdio::null(),
    }
}

/// `routelb standalone` in the lab's node, killed when dropped.
struct Standalone(Child);

impl Standalone {
    fn start(lab: &Lab, dir: &Path) -> Standalone {
        let child = Command::new("ip")
            .args(["netns", "exec", lab.var("LAB_NODE_NS")])
            .arg(env!("CARGO_BIN_EXE_routelb"))
            .args(["standalone", "--config", dir.to_str().unwrap()])
            .args(["--resync", "300s"])
            .args(lab.daemon().flags())
            .stdout(Stdio::null())
            .stderr(standalone_log())
            .spawn()
            .unwrap();
        Standalone(child)
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Watches the router's routing table; yields (time seen, line).
fn monitor(ns: &str) -> (Child, mpsc::Receiver<(Instant, String)>) {
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

/// When the router's table lost the Service's route and when it had it again, if it lost it
/// before `deadline`.
fn outage(rx: &mpsc::Receiver<(Instant, String)>, deadline: Instant) -> Option<(Instant, Instant)> {
    let bare = SERVICE.trim_end_matches("/32");
    let mut lost = None;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let (at, line) = rx.recv_timeout(left).ok()?;
        if !line.split_whitespace().any(|w| w == bare || w == SERVICE) {
            continue;
        }
        if line.starts_with("Deleted") {
            lost = Some(at);
        } else if let Some(gone) = lost {
            return Some((gone, at));
        }
    }
}

/// One way another tool removes routelb's objects; runs until the removal is complete.
struct Removal {
    name: &'static str,
    run: fn(&Lab, &Lists),
}

/// routelb's prefix lists in the daemon: the one holding the Service's prefix, and all.
struct Lists {
    service: String,
    all: Vec<String>,
}

fn vtysh(lab: &Lab, commands: &[String]) {
    let mut cmd = Command::new("vtysh");
    cmd.args(["-N", lab.var("LAB_NODE_FRR")]);
    for c in commands {
        cmd.args(["-c", c]);
    }
    assert!(cmd.output().unwrap().status.success());
}

fn removals() -> [Removal; 4] {
    [
        Removal {
            name: "a person: `no ip prefix-list` of the list holding the Service's prefix",
            run: |lab, lists| {
                vtysh(
                    lab,
                    &[
                        "configure terminal".into(),
                        format!("no ip prefix-list {}", lists.service),
                    ],
                )
            },
        },
        Removal {
            name: "a person: `no redistribute connected route-map ROUTELB-BGP-V4`",
            run: |lab, _| {
                vtysh(
                    lab,
                    &[
                        "configure terminal".into(),
                        format!("router bgp {}", lab.var("LAB_NODE_AS")),
                        "address-family ipv4 unicast".into(),
                        "no redistribute connected route-map ROUTELB-BGP-V4".into(),
                    ],
                )
            },
        },
        Removal {
            name: "every routelb object at once, in one vtysh run (route-map, redistribute, 32 lists)",
            run: |lab, lists| {
                let mut commands: Vec<String> = vec![
                    "configure terminal".into(),
                    format!("router bgp {}", lab.var("LAB_NODE_AS")),
                    "address-family ipv4 unicast".into(),
                    "no redistribute connected route-map ROUTELB-BGP-V4".into(),
                    "exit".into(),
                    "exit".into(),
                    "no route-map ROUTELB-BGP-V4".into(),
                ];
                commands.extend(lists.all.iter().map(|l| format!("no ip prefix-list {l}")));
                vtysh(lab, &commands)
            },
        },
        Removal {
            name: "frr-reload.py --reload of the base file (every routelb object)",
            run: |lab, _| {
                let out = Command::new("python3")
                    .args(["/usr/lib/frr/frr-reload.py", "--reload"])
                    .args(["--pathspace", lab.var("LAB_NODE_FRR")])
                    .args(["--bindir", lab.var("LAB_FRR_BINDIR")])
                    .arg(lab.var("LAB_NODE_FRR_CONF"))
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{out:?}");
            },
        },
    ]
}

/// routelb's prefix lists in bgpd (pools this large are split by hash), and the one holding
/// the Service's prefix.
async fn lists(driver: &Driver) -> Lists {
    let Driver::Frr(frr) = driver else {
        unreachable!()
    };
    let text = frr
        .show("bgpd", "show ip prefix-list")
        .await
        .unwrap()
        .unwrap();
    let (mut all, mut service, mut list) = (vec![], None, String::new());
    for line in text.lines() {
        if let Some(rest) = line.split("ip prefix-list ").nth(1) {
            list = rest.split(':').next().unwrap().to_string();
            all.push(list.clone());
        } else if line.contains(&format!("permit {SERVICE}")) {
            service = Some(list.clone());
        }
    }
    Lists {
        service: service.expect("a list holds the Service's prefix"),
        all,
    }
}

/// Polls until the bench's own driver, which learned the daemons' shares, finds nothing
/// missing; returns when.
async fn whole_again(driver: &Driver, deadline: Instant) -> Option<Instant> {
    while Instant::now() < deadline {
        if driver
            .probe(true)
            .await
            .ok()
            .flatten()
            .is_some_and(|p| p.findings.is_empty())
        {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

fn row(what: &str, v: &[f64]) {
    if v.is_empty() {
        println!("| {what} | no samples | | | |");
    } else {
        println!(
            "| {what} | {} | {:.0} ms | {:.0} ms | {:.0} ms |",
            v.len(),
            percentile(v, 0.5),
            percentile(v, 0.99),
            percentile(v, 1.0)
        );
    }
}

async fn repair_table(lab: &Lab, dir: &Path) {
    let driver = lab.driver(FrrApply::Diff);
    let f = fragment(&driver, &load_dir(dir).unwrap()).await;
    let standalone = Standalone::start(lab, dir);
    lab.wait_route(SERVICE, "present", 120).unwrap();
    // Learns what each daemon holds (the standalone's fragment is the same: nothing is sent).
    driver.apply(&f).await.unwrap();
    let (pid, c0, f0, t0) = (
        standalone.0.id().to_string(),
        0.0,
        frr_cpu(lab),
        Instant::now(),
    );
    let c0 = c0 + cpu_s(&pid);
    // `ROUTELB_BENCH_REMOVAL=<words>` runs only the removals whose name contains them (and
    // skips the idle minute).
    let only = std::env::var("ROUTELB_BENCH_REMOVAL").unwrap_or_default();
    if only.is_empty() {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let minute = t0.elapsed().as_secs_f64() / 60.0;
        println!(
            "\nIdle minute under `routelb standalone` (probe every 500 ms) at {PREFIXES} prefixes: routelb {:.0} ms CPU, zebra + bgpd {:.0} ms CPU\n",
            (cpu_s(&pid) - c0) * 1e3 / minute,
            (frr_cpu(lab) - f0) * 1e3 / minute
        );
    }
    let lists = lists(&driver).await;
    let (mut mon, rx) = monitor(lab.var("LAB_RTR_NS"));
    println!("## Removal by another tool → repaired ({ROUNDS} rounds each, {PREFIXES} prefixes)\n");
    println!("| removal; from its end to | rounds | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    for removal in removals().into_iter().filter(|r| r.name.contains(&only)) {
        let (mut objects, mut route, mut gaps, mut took) = (vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            while rx.try_recv().is_ok() {}
            let started = Instant::now();
            (removal.run)(lab, &lists);
            let done = Instant::now();
            took.push(ms(done - started));
            let deadline = done + Duration::from_secs(120);
            let back = whole_again(&driver, deadline)
                .await
                .expect("never repaired");
            objects.push(ms(back - done));
            if let Some((gone, back)) = outage(&rx, Instant::now() + Duration::from_secs(5)) {
                route.push(ms(back.saturating_duration_since(done)));
                gaps.push(ms(back - gone));
            }
            lab.wait_route(SERVICE, "present", 60).unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        println!(
            "| **{}** (the removal itself: p50 {:.0} ms) | | | | |",
            removal.name,
            percentile(&took, 0.5)
        );
        row("routelb's objects back in zebra and bgpd", &objects);
        row(
            "the Service's route back at the router (rounds where it was withdrawn; 0: back before the removal ended)",
            &route,
        );
        row(
            "(the route's absence at the router, withdrawn → back, in those rounds)",
            &gaps,
        );
    }
    let _ = mon.kill();
    drop(standalone);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let run = |section: &str| only.is_none() || only.as_deref() == Some(section);
    let lab = Lab::up("drb", "frr", "bgp");
    let dir: PathBuf = support::files::scratch("bench-drift");
    write_manifests(&dir);
    if run("cost") {
        cost_table(&lab, &dir).await;
    }
    if run("repair") {
        repair_table(&lab, &dir).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
