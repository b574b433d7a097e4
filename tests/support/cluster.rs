//! The multi-node lab (integration/lab/cluster.sh) and routelb agents running in its node
//! namespaces against the test API server.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::apiproxy::ApiProxy;
use super::daemon::NodeDaemon;
use super::{lock, script, wait};

pub struct Cluster {
    pub name: String,
    env: HashMap<String, String>,
    pub nodes: usize,
    /// The cluster's lock (see [`lock::lab`]); `None` for a view from another thread, which
    /// changes nothing when dropped.
    held: Option<lock::Held>,
}

impl Cluster {
    /// `nodes` nodes running `daemon` (frr, bird) speaking `proto` (bgp, ospf) to one router.
    pub fn up(name: &str, nodes: usize, proto: &str, daemon: &str) -> Cluster {
        let held = lock::lab(name);
        let out = script::run_ok(
            "cluster.sh",
            &[
                "up",
                name,
                "--nodes",
                &nodes.to_string(),
                "--proto",
                proto,
                "--daemon",
                daemon,
            ],
        );
        Cluster {
            name: name.to_string(),
            env: script::variables(&out.stdout),
            nodes,
            held: Some(held),
        }
    }

    /// Another handle on the same cluster, for a watching thread; dropping it changes nothing.
    #[allow(dead_code)] // agent tests
    pub fn attach(c: &Cluster) -> Cluster {
        Cluster {
            name: c.name.clone(),
            env: c.env.clone(),
            nodes: c.nodes,
            held: None,
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

    /// Waits until the router has the prefix with `nexthops` paths (0: no route), polling
    /// every 5 ms. Returns the time it took.
    pub async fn wait_nexthops(
        &self,
        prefix: &str,
        nexthops: usize,
        timeout: Duration,
    ) -> Result<Duration, String> {
        wait::up_to(timeout)
            .every(Duration::from_millis(5))
            .until(|| async { (self.nexthops(prefix) == nexthops).then_some(()) })
            .await
            .map(|w| w.took)
            .ok_or_else(|| {
                format!(
                    "{prefix}: {} nexthops at the router after {timeout:?}, wanted {nexthops}; route: {}",
                    self.nexthops(prefix),
                    self.route(prefix)
                )
            })
    }

    /// The router's neighbour entry (MAC) for an address on the shared segment.
    #[allow(dead_code)] // agent tests
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
    #[allow(dead_code)] // agent tests
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

    /// Node `i`'s daemon.
    pub fn daemon(&self, i: usize) -> NodeDaemon {
        if self.var("CLUSTER_DAEMON") == "bird" {
            NodeDaemon::Bird {
                socket: self.node_var(i, "BIRD_SOCKET").into(),
                include: self.node_var(i, "BIRD_INCLUDE").into(),
            }
        } else {
            NodeDaemon::Frr {
                pathspace: self.node_var(i, "FRR").into(),
            }
        }
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
        if self.held.is_none() || std::env::var_os("ROUTELB_KEEP_LAB").is_some() {
            return;
        }
        // The lock (a field) is released after this: nobody takes the cluster over half torn
        // down.
        let _ = script::run("cluster.sh", &["down", &self.name]);
    }
}

/// A `routelb agent` process in a node namespace, with its own path to the API server.
pub struct Agent {
    pub child: Option<Child>,
    #[allow(dead_code)] // agent tests (failure messages)
    pub node: usize,
    pub log: PathBuf,
    /// The agent's path to the API server, alive as long as the agent.
    #[allow(dead_code)] // agent tests cut it
    pub proxy: ApiProxy,
    args: Vec<String>,
    ns: String,
}

impl Agent {
    /// Starts the agent of node `i`; `extra` are more flags (lease settings...).
    pub fn start(c: &Cluster, i: usize, lease_ns: &str, extra: &[&str]) -> Agent {
        let ns = c.node_var(i, "NS").to_string();
        let proxy = ApiProxy::start(&ns);
        let mut args: Vec<String> = vec![
            "agent".into(),
            "--node-name".into(),
            c.node_name(i),
            "--lease-namespace".into(),
            lease_ns.into(),
            "--metrics-addr".into(),
            "127.0.0.1:9091".into(),
        ];
        args.extend(c.daemon(i).flags());
        // Tests of leaving leave at once, unless they test the drain.
        if !extra.contains(&"--drain-time") {
            args.extend(["--drain-time".into(), "0s".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = PathBuf::from(c.var("CLUSTER_DIR")).join(format!("agent-n{i}.log"));
        // A reused cluster keeps the logs of earlier runs; restarts of this agent append.
        let _ = std::fs::remove_file(&log);
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

    /// Starts the agent (again, after [`Agent::stop_gracefully`]).
    pub fn spawn(&mut self) {
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
            // Plain text: tests read the log.
            .env("NO_COLOR", "1")
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

    /// The agent's log so far (every process started for this node, appended).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The end of the log, for failure messages.
    #[allow(dead_code)] // agent tests
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Whether the agent's latest process sees every node of the cluster as live: the last
    /// "live nodes changed" it logged after its last "caches synced" names them all. (Agents
    /// that start together each see themselves alone at first, and briefly act on that.) Needs
    /// info logs, as the agents have unless ROUTELB_TEST_AGENT_LOG says otherwise.
    pub fn sees_every_node(&self, c: &Cluster) -> bool {
        let log = self.log_text();
        let current = log.rsplit("caches synced").next().unwrap_or_default();
        current
            .lines()
            .rev()
            .find(|l| l.contains("live nodes changed"))
            .is_some_and(|l| (1..=c.nodes).all(|i| l.contains(&format!("\"{}\"", c.node_name(i)))))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill_hard();
    }
}
