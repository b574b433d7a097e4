//! The conformance corpus (tests/corpus/BASE/): a base in the shape a popular tool generates,
//! run in the namespace lab as it is, or without the lines marked `! routelb: added` (the
//! marker line and the line after it), to prove what those lines are for.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use routelb::daemon::Driver;
use routelb::daemon::frr::{FrrApply, FrrDriver};

use super::{files, lock, script};

pub const ADDED: &str = "! routelb: added";

/// `text` without the hand-added lines.
pub fn without_added(text: &str) -> String {
    let mut out = String::new();
    let mut skip = false;
    for line in text.lines() {
        if std::mem::take(&mut skip) {
            continue;
        }
        if line.trim() == ADDED {
            skip = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// How many lines a base's user adds by hand.
pub fn added_lines(text: &str) -> usize {
    text.lines().filter(|l| l.trim() == ADDED).count()
}

pub fn base_path(base: &str, file: &str) -> PathBuf {
    files::root().join("tests/corpus").join(base).join(file)
}

/// A lab running a corpus base on the node (and the router, when the base has one).
pub struct CorpusLab {
    pub name: String,
    env: HashMap<String, String>,
    _held: lock::Held,
}

impl CorpusLab {
    /// `proto` as lab.sh knows it; `added`: with the hand-added lines or without them.
    pub fn up(name: &str, base: &str, proto: &str, added: bool) -> CorpusLab {
        let held = lock::lab(name);
        let dir = files::scratch(name);
        let node = conf(&dir, base, "node.frr.conf", added);
        let mut args: Vec<String> = [
            "up", name, "--node", "frr", "--router", "frr", "--proto", proto,
        ]
        .map(String::from)
        .into();
        args.extend(["--node-conf".into(), node, "--fresh".into()]);
        if base_path(base, "router.frr.conf").exists() {
            let router = conf(&dir, base, "router.frr.conf", added);
            args.extend([
                "--router-conf".into(),
                router,
                "--ready-sessions".into(),
                "1".into(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = script::run_ok("lab.sh", &args);
        CorpusLab {
            name: name.into(),
            env: script::variables(&out.stdout),
            _held: held,
        }
    }

    pub fn var(&self, k: &str) -> &str {
        self.env
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("lab did not report {k}"))
    }

    pub fn driver(&self) -> Driver {
        Driver::Frr(FrrDriver::new(
            Some(self.var("LAB_NODE_FRR").into()),
            FrrApply::Diff,
        ))
    }

    /// `ip` in the node's namespace.
    pub fn ip(&self, args: &[&str]) {
        let st = Command::new("ip")
            .args(["-n", self.var("LAB_NODE_NS")])
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "ip {args:?} failed");
    }

    /// The router's kernel route for `prefix`, if any.
    pub fn router_route(&self, prefix: &str) -> String {
        let out = Command::new("ip")
            .args(["-n", self.var("LAB_RTR_NS")])
            .arg(if prefix.contains(':') { "-6" } else { "-4" })
            .args(["route", "show", "exact", prefix])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn wait_route(&self, prefix: &str, want: &str) -> Result<u64, String> {
        let out = script::run("lab.sh", &["wait-route", &self.name, prefix, want, "10"]);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or(0))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }

    /// Configuration commands on the node's FRR, from configuration mode (`router ospf`, then
    /// lines inside it).
    pub fn node_configure(&self, lines: &[&str]) {
        let mut cmd = Command::new(self.var("LAB_NODE_VTYSH"));
        cmd.args(["-c", "configure terminal"]);
        for l in lines {
            cmd.args(["-c", l]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "{lines:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn router_vtysh(&self, cmd: &str) -> String {
        let out = Command::new(self.var("LAB_RTR_VTYSH"))
            .args(["-c", cmd])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The router's established-session counters, every VRF: they grow when a session resets.
    pub fn bgp_connections(&self) -> String {
        let v: serde_json::Value =
            serde_json::from_str(&self.router_vtysh("show bgp vrf all neighbors json"))
                .unwrap_or_default();
        let mut out = vec![];
        for (vrf, peers) in v.as_object().into_iter().flatten() {
            for (peer, n) in peers.as_object().into_iter().flatten() {
                if n.is_object() {
                    out.push(format!("{vrf}/{peer}={}", n["connectionsEstablished"]));
                }
            }
        }
        out.sort();
        out.join(",")
    }
}

/// Writes the base file for the lab, with or without the added lines.
fn conf(dir: &Path, base: &str, file: &str, added: bool) -> String {
    let text = std::fs::read_to_string(base_path(base, file)).unwrap();
    let text = if added { text } else { without_added(&text) };
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

impl Drop for CorpusLab {
    fn drop(&mut self) {
        if std::env::var_os("ROUTELB_KEEP_LAB").is_none() {
            let _ = script::run("lab.sh", &["down", &self.name]);
        }
    }
}
