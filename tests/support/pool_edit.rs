//! A pool of N single-address prefixes and one change to it, as the policy benchmarks make
//! them (benches/policy.rs for standalone, benches/agent.rs through the API): the addresses,
//! the manifests, bgpd's entry count over a kept vty connection, and frr-reload.py applying
//! the same change as the full file.

use std::path::Path;
use std::time::{Duration, Instant};

use routelb::daemon::Driver;

use super::cpu::frr_cpu_s;
use routelb::daemon::vty::Connection;
use routelb::manifests::{Manifests, load_str};
use routelb::render::{DaemonKind, Templates};

/// N addresses that never merge into larger blocks: N prefix-list entries.
pub fn addresses(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.{}.{}.1/32", i / 250, i % 250))
        .collect()
}

/// An address never in the pool before (round `k`): it sorts into the middle of the pool.
pub fn fresh(k: usize) -> String {
    format!("10.{}.251.1/32", k % 250)
}

/// The changes of `rounds` rounds on `base`: each adds an address never seen before (the
/// `first`th on), then takes it away; each with bgpd's entry count once it holds it.
pub fn changes(base: &[String], rounds: usize, first: usize) -> Vec<(Vec<String>, usize)> {
    let n = base.len();
    (0..rounds)
        .flat_map(|round| {
            let mut plus = base.to_vec();
            plus.push(fresh(first + round));
            [(plus, n + 1), (base.to_vec(), n)]
        })
        .collect()
}

/// A `fragment applied lines=N ms=M` log line's N and M (routelb's own log of each apply).
pub fn logged_apply(line: &str) -> Option<(u64, f64)> {
    if !line.contains("fragment applied") {
        return None;
    }
    let field = |name: &str| -> Option<&str> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .map(|v| v.trim_matches(|c: char| !c.is_ascii_digit()))
    };
    Some((field("lines=")?.parse().ok()?, field("ms=")?.parse().ok()?))
}

/// The pool `bench` of `addresses`, the RoutingPolicy `bench` exporting it over BGP, and one
/// Service `default/web`, as manifests.
pub fn manifest(addresses: &[String]) -> String {
    let list: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "apiVersion: routelb.io/v1alpha1\nkind: AddressPool\nmetadata: {{name: bench}}\nspec: {{addresses: [{}]}}\n---\n\
         apiVersion: routelb.io/v1alpha1\nkind: RoutingPolicy\nmetadata: {{name: bench}}\nspec: {{protocols: [bgp]}}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\nspec: {{type: LoadBalancer, ports: [{{port: 80}}]}}\n",
        list.join(", ")
    )
}

/// bgpd's IPv4 prefix-list entries, counted, over a kept vty connection.
pub struct Counter {
    bgpd: Connection,
}

impl Counter {
    pub async fn open(vty_dir: &Path) -> Counter {
        Counter {
            bgpd: Connection::open(&vty_dir.join("bgpd.vty")).await.unwrap(),
        }
    }

    /// The entry count (`show ip prefix-list summary`: one `count: N` per list).
    pub async fn count(&mut self) -> usize {
        let reply = self
            .bgpd
            .command("show ip prefix-list summary")
            .await
            .unwrap();
        reply
            .output
            .split("count: ")
            .skip(1)
            .filter_map(|s| s.split(',').next()?.trim().parse::<usize>().ok())
            .sum()
    }

    /// Polls every 2 ms until bgpd holds `want` entries; when that was first seen.
    pub async fn until(&mut self, want: usize, timeout: Duration) -> Instant {
        let start = Instant::now();
        loop {
            if self.count().await == want {
                return Instant::now();
            }
            assert!(
                start.elapsed() < timeout,
                "bgpd never held {want} entries (now {})",
                self.count().await
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// frr-reload.py --reload of the full file with the same change, as frr-k8s applies one: from
/// its start until bgpd holds the change (ms, one per change). `reload` is a driver in
/// [`routelb::daemon::frr::FrrApply::Reload`] mode on the daemons `counter` counts; nothing
/// else may be applying to them. The base is loaded first, untimed.
pub async fn reload_rounds(
    reload: &Driver,
    counter: &mut Counter,
    base: &[String],
    rounds: usize,
) -> Vec<f64> {
    let inst = reload.instances().await.unwrap();
    let fragment = |addresses: &[String]| {
        let mut m = Manifests::default();
        load_str(&manifest(addresses), Path::new("bench.yaml"), &mut m).unwrap();
        routelb::offline::render(
            &m,
            &Templates::embedded(DaemonKind::Frr).unwrap(),
            None,
            "kube-lb0",
            &inst,
        )
        .unwrap()
        .fragment
    };
    reload.apply(&fragment(base)).await.unwrap();
    counter.until(base.len(), Duration::from_secs(300)).await;
    let mut out = vec![];
    for (to, want) in changes(base, rounds, 100) {
        let to = fragment(&to);
        let t = Instant::now();
        let run = {
            let reload = reload.clone();
            tokio::spawn(async move { reload.apply(&to).await.unwrap() })
        };
        let at = counter.until(want, Duration::from_secs(60)).await;
        run.await.unwrap();
        out.push((at - t).as_secs_f64() * 1e3);
    }
    out
}

/// The daemons whose CPU is measured.
const DAEMONS: [&str; 2] = ["bgpd", "zebra"];

/// The daemons' CPU (bgpd + zebra) over `secs` seconds, in seconds per minute.
pub async fn daemon_cpu_per_minute(vty_dir: &Path, secs: u64) -> f64 {
    let before = frr_cpu_s(vty_dir, &DAEMONS);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let after = frr_cpu_s(vty_dir, &DAEMONS);
    (after - before) * 60.0 / secs as f64
}
