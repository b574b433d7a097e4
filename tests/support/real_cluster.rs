//! The real cluster of integration/k8s/e2e.sh (kubelets, containerd, kube-proxy, deploy/
//! applied unchanged, an FRR router with a client behind it), from Rust: kubectl, the router's
//! kernel table and BGP table, the nodes' addresses. Thin wrappers over the commands a person
//! would type, so that a failing test can be replayed by hand.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::files::root;
use super::script::variables;
use super::wait::{self, Waited};

/// The workload's namespace (e2e.sh's Deployment `web`, label app=web).
pub const APP_NS: &str = "kn-e2e";
pub const SYSTEM_NS: &str = "routelb-system";
pub const ROUTER_NS: &str = "kn-rtr";
pub const CLIENT_NS: &str = "kn-client";
/// e2e.sh's pools: routed over BGP, local (held on one node's eth0), and the benchmark's.
pub const ROUTED_POOL: &str = "kn-e2e";
pub const LOCAL_POOL: &str = "kn-e2e-local";
#[allow(dead_code)] // the benchmark's
pub const BENCH_POOL: &str = "kn-e2e-bench";

/// How a test failed: a sentence for the reader.
pub type Outcome<T = ()> = Result<T, String>;

pub struct RealCluster {
    kubeconfig: String,
    kubectl: String,
    vtysh_rtr: String,
    pub nodes: usize,
}

fn e2e_script() -> PathBuf {
    root().join("integration/k8s/e2e.sh")
}

/// `bash integration/k8s/e2e.sh ARGS`: stderr passes through (the script's log is the
/// test's), stdout is returned. A failure carries the end of the script's log, so that its
/// cause is in the message even where only the end of a long log is kept (CI).
pub fn e2e(args: &[&str]) -> Outcome<String> {
    use std::io::{BufRead, BufReader, Write};
    const LOG_TAIL_LINES: usize = 40;
    let mut child = Command::new("bash")
        .arg(e2e_script())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("e2e.sh: {e}"))?;
    let stderr = child.stderr.take().expect("piped");
    let log_tail = std::thread::spawn(move || {
        let mut tail = std::collections::VecDeque::with_capacity(LOG_TAIL_LINES);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(std::io::stderr(), "{line}");
            if tail.len() == LOG_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        Vec::from(tail).join("\n")
    });
    let out = child
        .wait_with_output()
        .map_err(|e| format!("e2e.sh: {e}"))?;
    let log_tail = log_tail.join().unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "e2e.sh {args:?} failed ({}); the end of its log:\n{log_tail}",
            out.status
        ))
    }
}

impl RealCluster {
    /// `e2e.sh up` (idempotent: a cluster already up is kept), then its handles.
    pub fn up() -> Outcome<RealCluster> {
        e2e(&["up"])?;
        Self::attach()
    }

    /// The handles of a cluster that is up (`e2e.sh env`).
    pub fn attach() -> Outcome<RealCluster> {
        let vars = variables(e2e(&["env"])?.as_bytes());
        let var = |k: &str| {
            vars.get(k)
                .cloned()
                .ok_or_else(|| format!("e2e.sh env printed no {k}"))
        };
        Ok(RealCluster {
            kubeconfig: var("KUBECONFIG")?,
            kubectl: var("KUBECTL")?,
            vtysh_rtr: var("VTYSH_RTR")?,
            nodes: var("NODES")?.parse().map_err(|e| format!("NODES: {e}"))?,
        })
    }

    #[allow(dead_code)] // the benchmark's
    pub fn kubectl_path(&self) -> &str {
        &self.kubectl
    }

    #[allow(dead_code)] // the benchmark's
    pub fn kubeconfig_path(&self) -> &str {
        &self.kubeconfig
    }

    /// `kubectl ARGS` with `input` on stdin; its stdout.
    pub fn kubectl_in(&self, args: &[&str], input: &str) -> Outcome<String> {
        use std::io::Write;
        let mut child = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("kubectl: {e}"))?;
        let mut stdin = child.stdin.take().expect("piped");
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("kubectl stdin: {e}"))?;
        drop(stdin);
        let out = child
            .wait_with_output()
            .map_err(|e| format!("kubectl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    pub fn kubectl(&self, args: &[&str]) -> Outcome<String> {
        self.kubectl_in(args, "")
    }

    /// `kubectl routelb ARGS` (this build, linked as the plugin `kubectl-routelb` on PATH).
    pub fn plugin(&self, args: &[&str]) -> Outcome<String> {
        let dir = std::env::temp_dir().join(format!("routelb-plugin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let link = dir.join("kubectl-routelb");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_routelb"), &link)
            .map_err(|e| format!("{}: {e}", link.display()))?;
        let path = format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new(&self.kubectl)
            .arg("routelb")
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env("PATH", path)
            .output()
            .map_err(|e| format!("kubectl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "kubectl routelb {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// `kubectl get ARGS -o json`, parsed.
    pub fn get_json(&self, args: &[&str]) -> Outcome<Value> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let text = self.kubectl(&all)?;
        serde_json::from_str(&text).map_err(|e| format!("kubectl get {args:?}: {e}"))
    }

    pub fn node_name(k: usize) -> String {
        format!("kn-node{k}")
    }

    pub fn node_names(&self) -> Vec<String> {
        (1..=self.nodes).map(Self::node_name).collect()
    }

    /// `nodes.sh crash K`: node K's link cut, its kubelet, containerd and containers killed -9.
    pub fn crash_node(&self, k: usize) -> Outcome {
        let out = Command::new("bash")
            .arg(root().join("integration/k8s/nodes.sh"))
            .args(["crash", &k.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("nodes.sh crash: {e}"))?;
        out.status
            .success()
            .then_some(())
            .ok_or_else(|| format!("nodes.sh crash {k} failed"))
    }

    /// `kubectl drain` of `node` (DaemonSets stay, emptyDirs go), then uncordon whatever the
    /// drain did, so that the node is back in service for what follows.
    pub fn drain_and_uncordon(&self, node: &str) -> Outcome {
        let drained = self.kubectl(&[
            "drain",
            node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=180s",
        ]);
        self.kubectl(&["uncordon", node])?;
        drained.map(drop)
    }

    /// The nodes the router forwards `addr` to: the next hops of its BGP route, by node.
    pub fn announcing_nodes(&self, addr: IpAddr) -> BTreeSet<String> {
        let family = if addr.is_ipv4() { "-4" } else { "-6" };
        let Ok(routes) = ip_json_in(
            ROUTER_NS,
            &[family, "route", "show", &addr.to_string(), "proto", "bgp"],
        ) else {
            return BTreeSet::new();
        };
        let mut hops = Vec::new();
        for route in routes.as_array().into_iter().flatten() {
            if let Some(g) = route["gateway"].as_str() {
                hops.push(g.to_string());
            }
            for nh in route["nexthops"].as_array().into_iter().flatten() {
                if let Some(g) = nh["gateway"].as_str() {
                    hops.push(g.to_string());
                }
            }
        }
        // a next hop is a node's segment address or its IPv6 link-local one: eth0's
        let hops: Vec<IpAddr> = hops.iter().filter_map(|h| h.parse().ok()).collect();
        self.node_names()
            .into_iter()
            .filter(|node| eth0_addresses(node).iter().any(|a| hops.contains(a)))
            .collect()
    }

    /// Waits until the router forwards `addr` to exactly `nodes`.
    pub fn wait_announced_by(
        &self,
        addr: IpAddr,
        nodes: &BTreeSet<String>,
        timeout: Duration,
    ) -> Outcome<Duration> {
        wait::up_to(timeout)
            .every(Duration::from_millis(20))
            .until_blocking(|| (self.announcing_nodes(addr) == *nodes).then_some(()))
            .map(|w| w.took)
            .ok_or_else(|| {
                let forwarded = self.announcing_nodes(addr);
                let missing: Vec<&str> = nodes.difference(&forwarded).map(String::as_str).collect();
                format!(
                    "the router forwards {addr} to {forwarded:?}, not {nodes:?}, after \
                     {timeout:?}\n{}",
                    self.why_not_forwarded(&missing)
                )
            })
    }

    /// What a person would look at when the router does not forward to `missing`: the router's
    /// BGP sessions, routelb's view of the nodes, and the end of those nodes' agent logs.
    fn why_not_forwarded(&self, missing: &[&str]) -> String {
        let mut out = String::new();
        let router = Command::new(&self.vtysh_rtr)
            .args(["-c", "show bgp summary"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        out += &format!(
            "--- router: show bgp summary\n{}\n",
            text(router.map_err(|e| e.to_string()))
        );
        out += &format!(
            "--- kubectl routelb nodes\n{}\n",
            text(self.plugin(&["nodes"]))
        );
        for node in missing {
            let pods = self.kubectl(&[
                "get",
                "pods",
                "-n",
                SYSTEM_NS,
                "-l",
                "app.kubernetes.io/component=agent",
                "--field-selector",
                &format!("spec.nodeName={node}"),
                "-o",
                "name",
            ]);
            for pod in text(pods).lines().filter(|l| l.starts_with("pod/")) {
                for container in ["agent", "frr"] {
                    let logs = self.kubectl(&[
                        "logs", "-n", SYSTEM_NS, pod, "-c", container, "--tail", "30",
                    ]);
                    out += &format!(
                        "--- {node} {pod} {container} (last 30 lines)\n{}\n",
                        text(logs)
                    );
                }
            }
        }
        out
    }

    pub fn all_nodes(&self) -> BTreeSet<String> {
        self.node_names().into_iter().collect()
    }

    /// The nodes that hold `addr` on eth0 (a local pool's address).
    pub fn holders(&self, addr: IpAddr) -> Vec<String> {
        self.node_names()
            .into_iter()
            .filter(|node| eth0_addresses(node).contains(&addr))
            .collect()
    }

    /// The router's BGP paths for `addr` (`show bgp ... json`): (next hop, MED) per path.
    pub fn router_paths(&self, addr: IpAddr) -> Vec<(String, Option<u64>)> {
        let (afi, len) = if addr.is_ipv4() {
            ("ipv4", 32)
        } else {
            ("ipv6", 128)
        };
        let cmd = format!("show bgp {afi} unicast {addr}/{len} json");
        let Ok(out) = Command::new(&self.vtysh_rtr).args(["-c", &cmd]).output() else {
            return Vec::new();
        };
        let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) else {
            return Vec::new();
        };
        v["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let hop = p["nexthops"][0]["ip"].as_str().unwrap_or("?").to_string();
                (hop, p["metric"].as_u64())
            })
            .collect()
    }

    /// Applies a LoadBalancer Service for the workload (PreferDualStack, 80 -> 8080) and waits
    /// for its addresses.
    pub fn create_service(
        &self,
        name: &str,
        pool: &str,
        traffic_policy: &str,
    ) -> Outcome<Vec<IpAddr>> {
        self.apply_service(name, pool, traffic_policy)?;
        let ips = self.wait_addresses(name, Duration::from_secs(60))?.value;
        for ip in &ips {
            self.wait_kube_proxy_forwards(*ip, Duration::from_secs(60))?;
        }
        Ok(ips)
    }

    /// Waits until every node's kube-proxy has its NAT rule for LoadBalancer address `ip`: a
    /// request that reaches a node before that is refused there (routelb may announce the
    /// address sooner: it follows the same Service and EndpointSlices, kube-proxy syncs at
    /// its own pace).
    pub fn wait_kube_proxy_forwards(&self, ip: IpAddr, timeout: Duration) -> Outcome {
        let dst = match ip {
            IpAddr::V4(_) => format!("-d {ip}/32 "),
            IpAddr::V6(_) => format!("-d {ip}/128 "),
        };
        for node in self.node_names() {
            wait::up_to(timeout)
                .every(Duration::from_millis(50))
                .until_blocking(|| {
                    nat_rules(&node, ip.is_ipv6())
                        .lines()
                        .any(|l| l.starts_with("-A KUBE-SERVICES ") && l.contains(&dst))
                        .then_some(())
                })
                .ok_or(format!(
                    "kube-proxy on {node} has no rule for {ip} after {timeout:?}"
                ))?;
        }
        Ok(())
    }

    /// Waits until kube-proxy on each of `nodes` no longer sends connections to any of
    /// `pod_ips` (a dead node's pods, once the EndpointSlices have them unready).
    pub fn wait_kube_proxy_drops(
        &self,
        nodes: &BTreeSet<String>,
        pod_ips: &[IpAddr],
        timeout: Duration,
    ) -> Outcome {
        for node in nodes {
            for ip in pod_ips {
                let to = match ip {
                    IpAddr::V4(_) => format!("--to-destination {ip}:"),
                    IpAddr::V6(_) => format!("--to-destination [{ip}]:"),
                };
                wait::up_to(timeout)
                    .every(Duration::from_millis(100))
                    .until_blocking(|| (!nat_rules(node, ip.is_ipv6()).contains(&to)).then_some(()))
                    .ok_or(format!(
                        "kube-proxy on {node} still sends to {ip} after {timeout:?}"
                    ))?;
            }
        }
        Ok(())
    }

    /// The workload's pod addresses on `node`.
    pub fn pod_ips_on(&self, node: &str) -> Outcome<Vec<IpAddr>> {
        let pods = self.get_json(&["-n", APP_NS, "pods", "-l", "app=web"])?;
        Ok(pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["spec"]["nodeName"] == node)
            .flat_map(|p| {
                p["status"]["podIPs"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|ip| ip["ip"].as_str().and_then(|s| s.parse().ok()))
            .collect())
    }

    pub fn apply_service(&self, name: &str, pool: &str, traffic_policy: &str) -> Outcome {
        let yaml = format!(
            r#"apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {APP_NS}
  annotations: {{routelb.io/pool: {pool}}}
spec:
  type: LoadBalancer
  ipFamilyPolicy: PreferDualStack
  externalTrafficPolicy: {traffic_policy}
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 8080, protocol: TCP}}]
"#
        );
        self.kubectl_in(&["apply", "-f", "-"], &yaml).map(drop)
    }

    /// Waits until Service `name` has an IPv4 and an IPv6 address.
    pub fn wait_addresses(&self, name: &str, timeout: Duration) -> Outcome<Waited<Vec<IpAddr>>> {
        wait::up_to(timeout)
            .every(Duration::from_millis(20))
            .until_blocking(|| {
                let ips = self.service_addresses(name);
                (ips.iter().any(IpAddr::is_ipv4) && ips.iter().any(IpAddr::is_ipv6)).then_some(ips)
            })
            .ok_or_else(|| format!("Service {name} has no IPv4 and IPv6 address after {timeout:?}"))
    }

    pub fn service_addresses(&self, name: &str) -> Vec<IpAddr> {
        self.kubectl(&[
            "-n",
            APP_NS,
            "get",
            "svc",
            name,
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ])
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
    }

    pub fn delete_service(&self, name: &str) {
        let _ = self.kubectl(&[
            "-n",
            APP_NS,
            "delete",
            "svc",
            name,
            "--ignore-not-found",
            "--wait=true",
        ]);
    }

    /// Scales the workload and waits until exactly `replicas` pods are ready and not
    /// terminating: the pods' nodes. (Terminating pods may linger: kubelet 1.20 sometimes
    /// deletes a stopped pod's object only at its next periodic sync, a minute later; they
    /// are out of the EndpointSlices' ready endpoints from the start.)
    pub fn scale_workload(&self, replicas: usize, timeout: Duration) -> Outcome<Vec<String>> {
        self.kubectl(&[
            "-n",
            APP_NS,
            "scale",
            "deploy/web",
            &format!("--replicas={replicas}"),
        ])?;
        wait::up_to(timeout)
            .every(Duration::from_millis(100))
            .until_blocking(|| {
                let pods = self
                    .get_json(&["-n", APP_NS, "pods", "-l", "app=web"])
                    .ok()?;
                let items = pods["items"].as_array()?;
                let ready: Vec<String> = items
                    .iter()
                    .filter(|p| p["metadata"]["deletionTimestamp"].is_null() && pod_ready(p))
                    .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
                    .collect();
                let starting = items
                    .iter()
                    .filter(|p| p["metadata"]["deletionTimestamp"].is_null() && !pod_ready(p))
                    .count();
                (starting == 0 && ready.len() == replicas).then_some(ready)
            })
            .map(|w| w.value)
            .ok_or_else(|| format!("deploy/web not at {replicas} ready pods after {timeout:?}"))
    }
}

/// A command's output, or why there is none.
fn text(out: Outcome<String>) -> String {
    out.unwrap_or_else(|e| format!("({e})"))
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// `iptables-save -t nat` (or ip6tables-save) in node `node`'s namespace: kube-proxy's rules.
fn nat_rules(node: &str, v6: bool) -> String {
    let save = if v6 {
        "ip6tables-save"
    } else {
        "iptables-save"
    };
    Command::new("ip")
        .args(["netns", "exec", node, save, "-t", "nat"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The addresses on eth0 in network namespace `netns`.
fn eth0_addresses(netns: &str) -> Vec<IpAddr> {
    ip_json_in(netns, &["addr", "show", "dev", "eth0"])
        .ok()
        .and_then(|v| v.as_array().cloned())
        .into_iter()
        .flatten()
        .flat_map(|link| link["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["local"].as_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// `ip -n NETNS -j ARGS`, parsed.
fn ip_json_in(netns: &str, args: &[&str]) -> Outcome<Value> {
    let out = Command::new("ip")
        .args(["-n", netns, "-j"])
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Array(Vec::new()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("ip -j {args:?}: {e}"))
}
