//! A pool edit as the user sees it, at the daemon's floor (namespace lab: FRR, root,
//! frr-pythontools). `routelb standalone` runs in the lab node's namespace, with its default
//! options, on a pool of N non-adjacent /32s (N prefix-list entries) and one Service. Each change
//! writes the pool manifest anew and renames it into place (what an editor, `kubectl`-style tools
//! and ConfigMap volumes do), adding one address never seen before — then the next takes it away;
//! the clock runs until **bgpd holds** the new entry set (bgpd is the daemon whose route-maps use
//! the lists; routelb gives zebra none of them), polled over its vty socket every 2 ms. In the
//! same run, frr-reload.py --reload (the way frr-k8s applies a change: the full file) is timed
//! the same way, from its start until bgpd holds it (it also sends every line to zebra; that is
//! not waited for, which favours it).
//!
//! Also measured: the initial load (routelb started with N entries → both daemons hold all of
//! them), the BGP session resets at the router over the whole run, routelb's own log of each
//! apply (the breakdown), and the daemons' CPU per minute while routelb idles, with and
//! without routelb running (what its resync and drift probe cost them).
//!
//! Run: `cargo bench --bench policy` (ROUTELB_BENCH_ROUNDS, default 10; ROUTELB_BENCH_SIZES,
//! default "1000,5000"; ROUTELB_BENCH_IDLE_S, default 60). Figures go to docs/benchmarks.md.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use routelb::daemon::frr::FrrApply;
use routelb::render::{DaemonKind, Templates};

#[path = "../tests/support"]
mod support {
    pub mod cpu;
    pub mod daemon;
    pub mod env;
    pub mod files;
    pub mod lab;
    pub mod lock;
    pub mod pool_edit;
    pub mod script;
    pub mod stats;
}

use support::cpu::cpu_s;
use support::env::env_or;
use support::lab::Lab;
use support::pool_edit::{
    Counter, addresses, changes, daemon_cpu_per_minute, fresh, logged_apply, manifest,
    reload_rounds,
};
use support::stats::percentile;

/// Writes the manifests anew and renames them into place, as editors and ConfigMap volumes do.
fn write_pool(dir: &Path, addresses: &[String]) {
    let tmp = dir.join(".pool.yaml.tmp");
    std::fs::write(&tmp, manifest(addresses)).unwrap();
    std::fs::rename(&tmp, dir.join("pool.yaml")).unwrap();
}

/// `routelb standalone` in the node's namespace, its log collected (JSON lines are not needed:
/// the apply lines carry `lines=` and `ms=` fields).
struct Standalone {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Standalone {
    fn start(lab: &Lab, dir: &Path) -> Standalone {
        let mut child = Command::new("ip")
            .args(["netns", "exec", lab.var("LAB_NODE_NS")])
            .arg(env!("CARGO_BIN_EXE_routelb"))
            .args(["standalone", "--config", dir.to_str().unwrap()])
            .args(lab.daemon().flags())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(vec![]));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Standalone { child, log }
    }

    /// The `ms=` of the applies logged since `from` lines.
    fn applies_since(&self, from: usize) -> Vec<f64> {
        self.log.lock().unwrap()[from..]
            .iter()
            .filter_map(|l| logged_apply(l).map(|(_, ms)| ms))
            .collect()
    }

    fn log_len(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// routelb's own pass for one change, step by step, in process (medians of 10): what the
/// pure core costs at this size, beside what the user sees.
async fn pass_breakdown(lab: &Lab, n: usize) -> Vec<(&'static str, f64)> {
    use routelb::daemon::frr_config::{diff, owned, parse};
    use routelb::standalone::{State, allocate, render};
    let dir: PathBuf = support::files::scratch(&format!("bench-pass-{n}"));
    let inst = lab.driver(FrrApply::Diff).instances().await.unwrap();
    let templates = Templates::embedded(DaemonKind::Frr).unwrap();
    let mut base = addresses(n);
    write_pool(&dir, &base);
    let m = routelb::manifests::load_dir(&dir).unwrap();
    let state = allocate(&m, &State::default()).state;
    let before = render(
        &m,
        &allocate(&m, &state),
        &templates,
        None,
        "kube-lb0",
        &inst,
    )
    .unwrap()
    .fragment;
    let held = owned(&parse(&before));
    base.push(fresh(0));
    write_pool(&dir, &base);
    let mut steps: Vec<(&'static str, Vec<f64>)> = vec![
        ("read and parse the manifests", vec![]),
        ("IPAM (allocate)", vec![]),
        ("render the fragment", vec![]),
        ("parse the fragment (frr_config)", vec![]),
        ("diff with what the daemons hold", vec![]),
    ];
    for _ in 0..10 {
        let mut lap = Instant::now();
        let mut next = |i: usize, steps: &mut Vec<(&'static str, Vec<f64>)>| {
            steps[i].1.push(lap.elapsed().as_secs_f64() * 1e3);
            lap = Instant::now();
        };
        let m = routelb::manifests::load_dir(&dir).unwrap();
        next(0, &mut steps);
        let a = allocate(&m, &state);
        next(1, &mut steps);
        let fragment = render(&m, &a, &templates, None, "kube-lb0", &inst)
            .unwrap()
            .fragment;
        next(2, &mut steps);
        let desired = owned(&parse(&fragment));
        next(3, &mut steps);
        assert_eq!(diff(&held, &desired).len(), 1, "one change");
        next(4, &mut steps);
    }
    let _ = std::fs::remove_dir_all(&dir);
    steps
        .into_iter()
        .map(|(what, v)| (what, percentile(&v, 0.5)))
        .collect()
}

struct Row {
    n: usize,
    load: f64,
    seen: Vec<f64>,
    logged: Vec<f64>,
    reload: Vec<f64>,
    resets: String,
    idle_with: f64,
    idle_without: f64,
    routelb_cpu: f64,
    breakdown: Vec<(&'static str, f64)>,
}

async fn measure(lab: &Lab, n: usize, rounds: usize, idle_s: u64) -> Row {
    let vty_dir = Path::new("/var/run/frr").join(lab.var("LAB_NODE_FRR"));
    let dir: PathBuf = support::files::scratch(&format!("bench-policy-{n}"));
    let base = addresses(n);
    write_pool(&dir, &base);
    let mut counter = Counter::open(&vty_dir).await;
    let before_resets = lab.bgp_connections();
    let started = Instant::now();
    let standalone = Standalone::start(lab, &dir);
    let load = (counter.until(n, Duration::from_secs(300)).await - started).as_secs_f64();
    // The Service's route at the router: the pipeline is whole before changes are timed.
    lab.wait_route("10.0.0.1/32", "present", 60).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut seen, mut logged) = (vec![], vec![]);
    for (to, want) in changes(&base, rounds, 0) {
        let from = standalone.log_len();
        let t = Instant::now();
        write_pool(&dir, &to);
        let at = counter.until(want, Duration::from_secs(30)).await;
        seen.push((at - t).as_secs_f64() * 1e3);
        // The apply's log line comes just after the daemons took the line.
        let deadline = Instant::now() + Duration::from_secs(5);
        while standalone.applies_since(from).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        logged.extend(standalone.applies_since(from));
        // Let the drift probe and verification after a change settle, as between edits.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let routelb_pid = standalone.pid().to_string();
    let routelb_before = cpu_s(&routelb_pid);
    let idle_with = daemon_cpu_per_minute(&vty_dir, idle_s).await;
    let routelb_cpu = (cpu_s(&routelb_pid) - routelb_before) * 60.0 / idle_s as f64;
    drop(standalone);
    let idle_without = daemon_cpu_per_minute(&vty_dir, idle_s).await;
    let reload = reload_rounds(&lab.driver(FrrApply::Reload), &mut counter, &base, rounds).await;
    let breakdown = pass_breakdown(lab, n).await;
    let after_resets = lab.bgp_connections();
    let _ = std::fs::remove_dir_all(&dir);
    Row {
        n,
        load,
        seen,
        logged,
        reload,
        resets: if before_resets == after_resets {
            "0".into()
        } else {
            format!("{before_resets} -> {after_resets}")
        },
        idle_with,
        idle_without,
        routelb_cpu,
        breakdown,
    }
}

fn print(rows: &[Row], rounds: usize, idle_s: u64) {
    println!(
        "\n## A pool edit as the user sees it: manifest renamed into place → bgpd holds it ({rounds} adds + {rounds} removes per size)\n"
    );
    println!(
        "| prefixes | routelb: edit → in bgpd (median, p90, max) | routelb's logged apply (median) | frr-reload.py --reload: start → in bgpd (median, max) | ratio of medians | BGP session resets | initial load 0 → N |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        let (s50, s90, smax) = (
            percentile(&r.seen, 0.5),
            percentile(&r.seen, 0.9),
            percentile(&r.seen, 1.0),
        );
        let logged = if r.logged.is_empty() {
            "not logged".to_string()
        } else {
            format!("{:.0} ms", percentile(&r.logged, 0.5))
        };
        let (r50, rmax) = (percentile(&r.reload, 0.5), percentile(&r.reload, 1.0));
        println!(
            "| {} | {s50:.0} ms, {s90:.0}, {smax:.0} | {logged} | {r50:.0} ms, {rmax:.0} | {:.1}× | {} | {:.2} s |",
            r.n,
            r50 / s50,
            r.resets,
            r.load
        );
    }
    println!(
        "\n## The daemons' CPU while routelb idles (bgpd + zebra, seconds of CPU per minute, over {idle_s} s)\n"
    );
    println!(
        "| prefixes | with routelb running | without routelb | routelb's share | routelb's own CPU |"
    );
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {:.3} s | {:.3} s | {:.3} s | {:.3} s |",
            r.n,
            r.idle_with,
            r.idle_without,
            (r.idle_with - r.idle_without).max(0.0),
            r.routelb_cpu
        );
    }
    println!("\n## routelb's pass for one change, in process (median of 10)\n");
    print!("| step |");
    for r in rows {
        print!(" {} prefixes |", r.n);
    }
    println!("\n|---|{}", "---|".repeat(rows.len()));
    for (i, (what, _)) in rows
        .first()
        .map(|r| r.breakdown.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        print!("| {what} |");
        for r in rows {
            print!(" {:.1} ms |", r.breakdown[i].1);
        }
        println!();
    }
}

#[tokio::main]
async fn main() {
    let rounds = env_or("ROUTELB_BENCH_ROUNDS", 10usize);
    let idle_s = env_or("ROUTELB_BENCH_IDLE_S", 60u64);
    let sizes: Vec<usize> = std::env::var("ROUTELB_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,5000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut rows = vec![];
    for n in sizes {
        // A fresh lab per size: the initial load starts from nothing.
        let lab = Lab::up("bpol", "frr", "bgp");
        rows.push(measure(&lab, n, rounds, idle_s).await);
    }
    print(&rows, rounds, idle_s);
}
