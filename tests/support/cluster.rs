//! The multi-node lab (integration/lab/cluster.sh) and routelb agents running in its node
//! namespaces against the test API server. Shared by tests/agent.rs and benches/agent.rs.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "apiproxy.rs"]
mod apiproxy;
pub use apiproxy::ApiProxy;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("integration/lab/cluster.sh")
}

pub struct Cluster {
    pub name: String,
    env: HashMap<String, String>,
    pub nodes: usize,
    /// Torn down when dropped (false for a view from another thread).
    owned: bool,
}

impl Cluster {
    /// `nodes` nodes running `daemon` (frr, bird) speaking `proto` (bgp, ospf) to one router.
    pub fn up(name: &str, nodes: usize, proto: &str, daemon: &str) -> Cluster {
        let out = Command::new("bash")
            .arg(script())
            .args(["up", name, "--nodes", &nodes.to_string(), "--proto", proto])
            .args(["--daemon", daemon])
            .output()
            .expect("cluster.sh runs");
        assert!(
            out.status.success(),
            "cluster up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect();
        Cluster {
            name: name.to_string(),
            env,
            nodes,
            owned: true,
        }
    }

    /// Another handle on the same cluster, for a watching thread; dropping it changes nothing.
    pub fn attach(c: &Cluster) -> Cluster {
        Cluster {
            name: c.name.clone(),
            env: c.env.clone(),
            nodes: c.nodes,
            owned: false,
        }
    }

    pub fn var(&self, k: &str) -> &str {
        self.env
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("cluster did not report {k}"))
    }

    /// A per-node variable: `node_var(1, "NS")` is CLUSTER_NODE1_NS.
    pub fn node_var(&self, i: usize, k: &str) -> &str {
        self.var(&format!("CLUSTER_NODE{i}_{k}"))
    }

    /// The Kubernetes node name of node `i`.
    pub fn node_name(&self, i: usize) -> String {
        format!("{}-n{i}", self.name)
    }

    /// The index of the cluster's subnet, for addresses inside it: 10.78.X.0/24.
    pub fn index(&self) -> &str {
        self.var("CLUSTER_INDEX")
    }

    /// `ip` output in a namespace.
    pub fn ip_in(&self, ns: &str, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["-n", ns])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn ip_node(&self, i: usize, args: &[&str]) -> String {
        self.ip_in(self.node_var(i, "NS"), args)
    }

    /// The router's route to the prefix (empty when it has none).
    pub fn route(&self, prefix: &str) -> String {
        let fam = if prefix.contains(':') { "-6" } else { "-4" };
        self.ip_in(
            self.var("CLUSTER_RTR_NS"),
            &[fam, "route", "show", "exact", prefix],
        )
    }

    /// Nexthops of the router's route to the prefix: 0 without a route.
    pub fn nexthops(&self, prefix: &str) -> usize {
        let r = self.route(prefix);
        if r.trim().is_empty() {
            return 0;
        }
        let multi = r.matches("nexthop via").count();
        if multi > 0 {
            multi
        } else {
            // IPv6 multipath routes are printed one line per nexthop.
            r.lines().filter(|l| l.contains(" via ")).count().max(1)
        }
    }

    /// Waits until the router has the prefix with `nexthops` paths (0: no route). Returns the
    /// time it took.
    pub fn wait_nexthops(
        &self,
        prefix: &str,
        nexthops: usize,
        timeout: Duration,
    ) -> Result<Duration, String> {
        let t = Instant::now();
        loop {
            let n = self.nexthops(prefix);
            if n == nexthops {
                return Ok(t.elapsed());
            }
            if t.elapsed() > timeout {
                return Err(format!(
                    "{prefix}: {n} nexthops at the router after {timeout:?}, wanted {nexthops}; route: {}",
                    self.route(prefix)
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The router's neighbour entry (MAC) for an address on the shared segment.
    pub fn router_neigh(&self, ip: &str) -> Option<String> {
        let out = self.ip_in(self.var("CLUSTER_RTR_NS"), &["neigh", "show", ip]);
        let words: Vec<&str> = out.split_whitespace().collect();
        words
            .iter()
            .position(|w| *w == "lladdr")
            .and_then(|p| words.get(p + 1))
            .map(|s| s.to_string())
    }

    /// One ping from the router to an address (fills its neighbour cache); panics on no reply.
    pub fn ping_from_router(&self, ip: &str) {
        let st = Command::new("ip")
            .args([
                "netns",
                "exec",
                self.var("CLUSTER_RTR_NS"),
                "ping",
                "-c1",
                "-W2",
                ip,
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "{ip} does not answer the router");
    }

    /// Which nodes have the address on an interface (by `ip addr`).
    pub fn holders(&self, ip: &str) -> Vec<usize> {
        (1..=self.nodes)
            .filter(|&i| {
                self.ip_node(i, &["addr", "show"])
                    .split_whitespace()
                    .any(|w| w.split('/').next() == Some(ip))
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // ROUTELB_KEEP_LAB=1 keeps the namespaces, daemons and agent logs for a post-mortem.
        if !self.owned || std::env::var_os("ROUTELB_KEEP_LAB").is_some() {
            return;
        }
        let _ = Command::new("bash")
            .arg(script())
            .args(["down", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A `routelb agent` process in a node namespace, with its own path to the API server.
pub struct Agent {
    pub child: Option<Child>,
    pub node: usize,
    pub log: PathBuf,
    pub proxy: ApiProxy,
    args: Vec<String>,
    ns: String,
}

impl Agent {
    /// Starts the agent of node `i`; `extra` are more flags (lease settings...).
    pub fn start(c: &Cluster, i: usize, lease_ns: &str, extra: &[&str]) -> Agent {
        let ns = c.node_var(i, "NS").to_string();
        let proxy = ApiProxy::start(&ns, 6444);
        let mut args: Vec<String> = vec![
            "agent".into(),
            "--node-name".into(),
            c.node_name(i),
            "--lease-namespace".into(),
            lease_ns.into(),
            "--metrics-addr".into(),
            "127.0.0.1:9091".into(),
        ];
        if c.var("CLUSTER_DAEMON") == "bird" {
            args.extend(
                [
                    "--daemon",
                    "bird",
                    "--bird-socket",
                    c.node_var(i, "BIRD_SOCKET"),
                    "--bird-include",
                    c.node_var(i, "BIRD_INCLUDE"),
                ]
                .map(String::from),
            );
        } else {
            args.extend(
                ["--daemon", "frr", "--frr-pathspace", c.node_var(i, "FRR")].map(String::from),
            );
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = PathBuf::from(c.var("CLUSTER_DIR")).join(format!("agent-n{i}.log"));
        let mut a = Agent {
            child: None,
            node: i,
            log,
            proxy,
            args,
            ns,
        };
        a.spawn();
        a
    }

    fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(env!("CARGO_BIN_EXE_routelb"))
            .args(&self.args)
            .env(
                "ROUTELB_LOG_LEVEL",
                std::env::var("ROUTELB_TEST_AGENT_LOG").unwrap_or("info,kube=warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("routelb starts");
        self.child = Some(child);
    }

    /// Starts it again with the same flags (after a kill).
    pub fn restart(&mut self) {
        self.kill_hard();
        self.spawn();
    }

    pub fn kill_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and waits for the agent to finish leaving.
    pub fn stop_gracefully(&mut self) {
        if let Some(mut c) = self.child.take() {
            Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .unwrap();
            let _ = c.wait();
        }
    }

    /// The agent's log so far, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill_hard();
    }
}
