//! The namespace lab (integration/lab/lab.sh) from Rust: shared by tests/lab.rs,
//! tests/standalone.rs and benches/apply.rs. A `Lab` is torn down when dropped.

#![allow(dead_code)] // each user needs a different part

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use routelb::daemon::Driver;
use routelb::daemon::bird::BirdDriver;
use routelb::daemon::frr::{FrrApply, FrrDriver};

fn lab_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("integration/lab/lab.sh")
}

pub struct Lab {
    pub name: String,
    env: HashMap<String, String>,
}

impl Lab {
    /// A node (`frr` or `bird`) and an FRR router speaking `proto` (bgp, ospf, isis, rip),
    /// ready to carry routes.
    pub fn up(name: &str, node: &str, proto: &str) -> Lab {
        let out = Command::new("bash")
            .arg(lab_script())
            .args([
                "up", name, "--node", node, "--router", "frr", "--proto", proto,
            ])
            .output()
            .expect("lab.sh runs");
        assert!(
            out.status.success(),
            "lab up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect();
        Lab {
            name: name.to_string(),
            env,
        }
    }

    /// A variable `lab.sh up` reported (LAB_NODE_NS, LAB_RTR_FRR, LAB_BIRD_SOCKET, ...).
    pub fn var(&self, k: &str) -> &str {
        self.env
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("lab did not report {k}"))
    }

    /// `ip` in the node's namespace; panics when it fails.
    pub fn ip(&self, args: &[&str]) {
        let st = Command::new("ip")
            .args(["-n", self.var("LAB_NODE_NS")])
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "ip {args:?} failed");
    }

    /// Kills one of the node's FRR daemons (-9), starts it again and loads frr.conf into it,
    /// as watchfrr does: the daemon comes back without routelb's objects.
    #[allow(dead_code)] // not every test binary restarts daemons
    pub fn restart_daemon(&self, daemon: &str) {
        self.lab_command("restart-daemon", daemon);
    }

    /// Starts one more FRR daemon on the node (e.g. staticd, which takes none of routelb's
    /// objects).
    #[allow(dead_code)]
    pub fn start_daemon(&self, daemon: &str) {
        self.lab_command("start-daemon", daemon);
    }

    /// Kills one of the node's FRR daemons (-9); its vty socket file stays, as FRR leaves it.
    #[allow(dead_code)]
    pub fn stop_daemon(&self, daemon: &str) {
        self.lab_command("stop-daemon", daemon);
    }

    fn lab_command(&self, command: &str, daemon: &str) {
        let out = Command::new("bash")
            .arg(lab_script())
            .args([command, &self.name, daemon])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{command} {daemon}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Milliseconds until the prefix is present/absent in the router's kernel table.
    pub fn wait_route(&self, prefix: &str, want: &str, timeout_s: u32) -> Result<u64, String> {
        let out = Command::new("bash")
            .arg(lab_script())
            .args([
                "wait-route",
                &self.name,
                prefix,
                want,
                &timeout_s.to_string(),
            ])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or(0))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }

    /// Whether the router's kernel table has the prefix now.
    pub fn router_has(&self, prefix: &str) -> bool {
        let out = Command::new("ip")
            .args([
                "-n",
                self.var("LAB_RTR_NS"),
                "route",
                "show",
                "exact",
                prefix,
            ])
            .output()
            .unwrap();
        !out.stdout.is_empty()
    }

    pub fn router_vtysh(&self, cmd: &str) -> String {
        let out = Command::new("vtysh")
            .args(["-N", self.var("LAB_RTR_FRR"), "-c", cmd])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The router's established-session counters per neighbour; they grow when a session resets.
    pub fn bgp_connections(&self) -> String {
        let v: serde_json::Value =
            serde_json::from_str(&self.router_vtysh("show bgp neighbors json")).unwrap_or_default();
        let mut out: Vec<String> = v
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, n)| format!("{k}={}", n["connectionsEstablished"]))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out.join(",")
    }

    /// A driver for the node's daemon, in `mode` when it is FRR.
    pub fn driver(&self, mode: FrrApply) -> Driver {
        if self.var("LAB_NODE_KIND") == "bird" {
            Driver::Bird(BirdDriver::new(
                self.var("LAB_BIRD_SOCKET").into(),
                self.var("LAB_BIRD_INCLUDE").into(),
            ))
        } else {
            Driver::Frr(FrrDriver::new(
                Some(self.var("LAB_NODE_FRR").to_string()),
                mode,
            ))
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(lab_script())
            .args(["down", &self.name])
            .output();
    }
}
