//! Fast failover of local addresses through the daemons' BFD (issue 15), on the cluster lab:
//! three nodes with FRR or BIRD, the real API server, allocator and agents with the default
//! Lease settings (6 s / 2 s), a local pool with `spec.fastFailover`. The router's neighbour
//! entry for the address is the judge of a move; `ip addr` on every node the judge of "two
//! holders". Faults: the holder's machine hung (every process in its namespace stopped, its
//! port on the segment dropping everything) — timed, `FAILOVER_N` times (default 5; the
//! figures in docs/benchmarks.md are from 25) —, a partition of the holder from the segment,
//! a one-way loss (the holder hears nothing), and its daemon killed. Needs root, FRR, BIRD,
//! ebtables (iptables) and the test API server, as CI provides.

// (each test binary uses a part of the shared support)
#[allow(dead_code)]
mod support {
    pub mod allocator;
    pub mod api;
    pub mod apiproxy;
    pub mod cluster;
    pub mod daemon;
    pub mod files;
    pub mod lock;
    pub mod objects;
    pub mod script;
    pub mod setup;
    pub mod stats;
    pub mod wait;
}

use std::process::Command;
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{Patch, PatchParams};
use routelb::api::AddressPool;
use serde_json::json;
use support::cluster::{Agent, Cluster};
use support::setup::{Setup, logs};
use support::stats::{ms, percentile};
use support::{lock, wait};

/// The holder's port on the router's bridge: frames in one direction or both dropped.
#[derive(Clone, Copy)]
enum Cut {
    Both,
    /// Frames to the node only: it hears nobody, everyone hears it.
    ToNode,
}

fn ebtables(c: &Cluster, op: &str, port: &str, cut: Cut) {
    let mut rules: Vec<Vec<&str>> = vec![vec!["FORWARD", "-o", port], vec!["OUTPUT", "-o", port]];
    if matches!(cut, Cut::Both) {
        rules.push(vec!["FORWARD", "-i", port]);
        rules.push(vec!["INPUT", "-i", port]);
    }
    for r in rules {
        let st = Command::new("ip")
            .args(["netns", "exec", c.var("CLUSTER_RTR_NS"), "ebtables", op])
            .args(&r)
            .args(["-j", "DROP"])
            .status()
            .expect("ebtables");
        assert!(st.success(), "ebtables {op} {r:?}");
    }
}

/// Every process in node `i`'s namespace (its agent, its daemons, its path to the API).
fn node_pids(c: &Cluster, i: usize) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "pids", c.node_var(i, "NS")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn signal(pids: &[String], sig: &str) {
    for p in pids {
        let _ = Command::new("kill").args([sig, p]).status();
    }
}

/// How many BFD sessions node `i`'s daemon reports up.
fn bfd_up(c: &Cluster, i: usize, daemon: &str) -> usize {
    let out = if daemon == "frr" {
        Command::new(c.node_var(i, "VTYSH"))
            .args(["-c", "show bfd peers brief"])
            .output()
    } else {
        Command::new(c.node_var(i, "BIRDC"))
            .args(["show", "bfd", "sessions"])
            .output()
    };
    let text = String::from_utf8_lossy(&out.map(|o| o.stdout).unwrap_or_default()).to_string();
    text.lines()
        .filter(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.iter().any(|x| x.eq_ignore_ascii_case("up"))
        })
        .count()
}

struct Lab {
    c: Cluster,
    s: Setup,
    agents: Vec<Agent>,
    ip: String,
    daemon: String,
}

impl Lab {
    async fn up(daemon: &str, name: &str, api_server: &lock::Held) -> Lab {
        let c = Cluster::up(name, 3, "bgp", daemon);
        let s = Setup::new(api_server, &c, "bgp").await;
        let pools: Api<AddressPool> = Api::all(s.client.clone());
        let patch =
            json!({ "spec": { "fastFailover": { "intervalMs": 50, "detectMultiplier": 3 } } });
        pools
            .patch(&s.local, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        // The default Lease settings: what moves the address fast is BFD, not the Lease.
        let agents = s.agents(&c, &["--kube-proxy-grace", "0"]).await;
        let ip = s.service("lan", &s.local, json!({})).await[0].clone();
        let lab = Lab {
            c,
            s,
            agents,
            ip,
            daemon: daemon.to_string(),
        };
        lab.settled(None).await;
        lab
    }

    fn mac(&self, i: usize) -> String {
        self.c.node_var(i, "MAC").to_lowercase()
    }

    /// Waits until one node holds the address (not `not`), the router has it there, and the
    /// holder's BFD sessions (two: the other nodes) are up; the holder.
    async fn settled(&self, not: Option<usize>) -> usize {
        let holder = wait::up_to(Duration::from_secs(30))
            .until(|| async {
                let h = self.c.holders(&self.ip);
                (h.len() == 1 && Some(h[0]) != not).then(|| h[0])
            })
            .await
            .unwrap_or_else(|| {
                panic!(
                    "never one holder of {}: {:?}\n{}",
                    self.ip,
                    self.c.holders(&self.ip),
                    logs(&self.agents)
                )
            })
            .value;
        // every node's sessions up: a round starts from the steady state, not from the
        // last one's recovery
        wait::up_to(Duration::from_secs(30))
            .until(|| async {
                (1..=3)
                    .all(|i| bfd_up(&self.c, i, &self.daemon) >= 2)
                    .then_some(())
            })
            .await
            .unwrap_or_else(|| {
                panic!(
                    "the nodes' BFD sessions never all up\n{}",
                    logs(&self.agents)
                )
            });
        self.c.ping_from_router(&self.ip);
        wait::up_to(Duration::from_secs(10))
            .until(|| async {
                (self.c.router_neigh(&self.ip) == Some(self.mac(holder))).then_some(())
            })
            .await
            .expect("the router has the address at its holder");
        holder
    }

    /// Time from now until the router's neighbour entry names another node than `holder`
    /// (its GARP), sampling the holders meanwhile: whether two nodes ever held the address.
    async fn wait_move(&self, holder: usize, t0: Instant) -> (Duration, usize, bool) {
        let mut two_holders = false;
        loop {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the address never moved from node {holder}\n{}",
                logs(&self.agents)
            );
            let h = self.c.holders(&self.ip);
            two_holders |= h.len() > 1;
            if let Some(mac) = self.c.router_neigh(&self.ip)
                && mac != self.mac(holder)
            {
                let to = (1..=3).find(|&i| self.mac(i) == mac).expect("a node's MAC");
                return (t0.elapsed(), to, two_holders);
            }
        }
    }

    /// Samples the holders until `holder` holds nothing and one other does: whether two ever
    /// held it at once.
    async fn watch_handover(&self, holder: usize) -> bool {
        let mut two = false;
        let t0 = Instant::now();
        loop {
            let h = self.c.holders(&self.ip);
            two |= h.len() > 1;
            if h.len() == 1 && h[0] != holder {
                return two;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "no handover from node {holder}: {h:?}\n{}",
                logs(&self.agents)
            );
        }
    }
}

/// The hung holder, `n` times: its processes stopped and its port dropping everything; the
/// move timed at the router; then it is thawed and takes its address back.
async fn hung_holder(lab: &Lab, n: usize) -> Vec<Duration> {
    let mut moves = vec![];
    for _ in 0..n {
        let h = lab.settled(None).await;
        let port = lab.c.node_var(h, "RTR_IF").to_string();
        let pids = node_pids(&lab.c, h);
        let t0 = Instant::now();
        signal(&pids, "-STOP");
        ebtables(&lab.c, "-A", &port, Cut::Both);
        let (took, to, _) = lab.wait_move(h, t0).await;
        assert_ne!(to, h);
        moves.push(took);
        ebtables(&lab.c, "-D", &port, Cut::Both);
        signal(&pids, "-CONT");
        // the best-ranked node takes its address back (GARP again)
        wait::up_to(Duration::from_secs(30))
            .until(|| async {
                (lab.c.holders(&lab.ip) == [h] && lab.c.router_neigh(&lab.ip) == Some(lab.mac(h)))
                    .then_some(())
            })
            .await
            .unwrap_or_else(|| {
                panic!(
                    "node {h} never took its address back\n{}",
                    logs(&lab.agents)
                )
            });
    }
    moves
}

async fn fast_failover(daemon: &str, name: &str) {
    let api_server = lock::api_server();
    let lab = Lab::up(daemon, name, &api_server).await;
    let n: usize = std::env::var("FAILOVER_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    // NodeState says what fast failover sees: the holder's two peers, up, nothing failed.
    let h = lab.settled(None).await;
    lab.s
        .wait_node_state(&lab.c.node_name(h), |st| {
            st.fast_failover.as_ref().is_some_and(|f| {
                f.peers.len() == 2
                    && f.peers.iter().all(|p| p.up)
                    && f.failed.is_empty()
                    && !f.cut_off
            })
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "NodeState never showed both peers up\n{}",
                logs(&lab.agents)
            )
        });
    let moves = hung_holder(&lab, n).await;
    println!(
        "{daemon}: hung holder → the router's neighbour entry at another node, n={}: p50 {:.0} ms, \
         p99 {:.0} ms, max {:.0} ms (BFD 50 ms × 3, Lease 6 s / 2 s)",
        moves.len(),
        ms(percentile(&moves, 0.5)),
        ms(percentile(&moves, 0.99)),
        ms(percentile(&moves, 1.0)),
    );

    // A partition: the holder alone on its side, its agent alive. It sees every session go
    // down and steps back before the next-ranked node takes the address.
    for (cut, what) in [(Cut::Both, "partition"), (Cut::ToNode, "one-way loss")] {
        let h = lab.settled(None).await;
        let port = lab.c.node_var(h, "RTR_IF").to_string();
        let t0 = Instant::now();
        ebtables(&lab.c, "-A", &port, cut);
        let two = lab.watch_handover(h).await;
        let took = t0.elapsed();
        assert!(
            !two,
            "{what}: two nodes held {} at once\n{}",
            lab.ip,
            logs(&lab.agents)
        );
        if matches!(cut, Cut::ToNode) {
            // the segment still hears the holder: the router follows the new one's GARP
            let (moved, _, _) = lab.wait_move(h, t0).await;
            println!(
                "{daemon}: {what}: handed over after {took:?}, the router moved after {moved:?}; never two holders"
            );
        } else {
            println!("{daemon}: {what}: handed over after {took:?}; never two holders");
        }
        ebtables(&lab.c, "-D", &port, cut);
        wait::up_to(Duration::from_secs(30))
            .until(|| async { (lab.c.holders(&lab.ip) == [h]).then_some(()) })
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{what}: node {h} never took its address back\n{}",
                    logs(&lab.agents)
                )
            });
    }

    // The holder's daemon killed, its agent alive: the peers see its sessions go down and
    // take over; the holder sees its daemon silent and steps back.
    let h = lab.settled(None).await;
    let daemon_pids: Vec<String> = node_pids(&lab.c, h)
        .into_iter()
        .filter(|p| {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            ["zebra", "bgpd", "bfdd", "bird"].contains(&comm.trim())
        })
        .collect();
    assert!(!daemon_pids.is_empty(), "node {h} runs no daemon?");
    let t0 = Instant::now();
    signal(&daemon_pids, "-KILL");
    let two = lab.watch_handover(h).await;
    let (moved, _, _) = lab.wait_move(h, t0).await;
    assert!(
        !two,
        "daemon killed: two nodes held {} at once\n{}",
        lab.ip,
        logs(&lab.agents)
    );
    println!("{daemon}: daemon killed: the router moved after {moved:?}; never two holders");
    lab.s.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fast_failover_frr() {
    fast_failover("frr", "ff-frr").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fast_failover_bird() {
    fast_failover("bird", "ff-bird").await;
}
