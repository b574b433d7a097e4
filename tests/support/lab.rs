//! The namespace lab (integration/lab/lab.sh): a node running FRR or BIRD and an upstream FRR
//! router. A `Lab` holds the lab's lock (see [`lock::lab`]) and is torn down when dropped.

use std::collections::HashMap;
use std::process::Command;

use routelb::daemon::Driver;
use routelb::daemon::bird::BirdDriver;
use routelb::daemon::frr::{FrrApply, FrrDriver};

use super::daemon::NodeDaemon;
use super::{lock, script};

pub struct Lab {
    pub name: String,
    env: HashMap<String, String>,
    _held: lock::Held,
}

impl Lab {
    /// A node (`frr` or `bird`) and an FRR router speaking `proto` (bgp, ospf, isis, rip),
    /// ready to carry routes.
    #[allow(dead_code)] // tests of the default lab
    pub fn up(name: &str, node: &str, proto: &str) -> Lab {
        Self::up_with(name, node, proto, &[])
    }

    /// [`Lab::up`] with more `lab.sh up` options (`--node-conf FILE`, `--daemons "..."`).
    #[allow(dead_code)] // tests of bases in other tools' shapes
    pub fn up_with(name: &str, node: &str, proto: &str, extra: &[&str]) -> Lab {
        let held = lock::lab(name);
        let mut args = vec![
            "up", name, "--node", node, "--router", "frr", "--proto", proto,
        ];
        args.extend_from_slice(extra);
        let out = script::run_ok("lab.sh", &args);
        Lab {
            name: name.to_string(),
            env: script::variables(&out.stdout),
            _held: held,
        }
    }

    /// A variable `lab.sh up` reported (LAB_NODE_NS, LAB_RTR_FRR, LAB_BIRD_SOCKET, ...).
    pub fn var(&self, k: &str) -> &str {
        self.env
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("lab did not report {k}"))
    }

    /// The node's daemon.
    pub fn daemon(&self) -> NodeDaemon {
        if self.var("LAB_NODE_KIND") == "bird" {
            NodeDaemon::Bird {
                socket: self.var("LAB_BIRD_SOCKET").into(),
                include: self.var("LAB_BIRD_INCLUDE").into(),
            }
        } else {
            NodeDaemon::Frr {
                pathspace: self.var("LAB_NODE_FRR").into(),
            }
        }
    }

    /// `ip` in the node's namespace; panics when it fails.
    #[allow(dead_code)] // lab tests
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
    #[allow(dead_code)] // lab tests and benchmarks
    pub fn restart_daemon(&self, daemon: &str) {
        script::run_ok("lab.sh", &["restart-daemon", &self.name, daemon]);
    }

    /// Starts one more FRR daemon on the node (e.g. staticd, which takes none of routelb's
    /// objects).
    #[allow(dead_code)] // lab tests
    pub fn start_daemon(&self, daemon: &str) {
        script::run_ok("lab.sh", &["start-daemon", &self.name, daemon]);
    }

    /// Kills one of the node's FRR daemons (-9); its vty socket file stays, as FRR leaves it.
    #[allow(dead_code)] // lab and standalone tests
    pub fn stop_daemon(&self, daemon: &str) {
        script::run_ok("lab.sh", &["stop-daemon", &self.name, daemon]);
    }

    /// Milliseconds until the prefix is present/absent in the router's kernel table (lab.sh
    /// polls every 5 ms).
    #[allow(dead_code)] // lab tests and benchmarks
    pub fn wait_route(&self, prefix: &str, want: &str, timeout_s: u32) -> Result<u64, String> {
        let out = script::run(
            "lab.sh",
            &[
                "wait-route",
                &self.name,
                prefix,
                want,
                &timeout_s.to_string(),
            ],
        );
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
    #[allow(dead_code)] // lab and standalone tests
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

    /// A show command in the node's FRR; its output.
    #[allow(dead_code)] // FRR lab tests
    pub fn node_vtysh(&self, cmd: &str) -> String {
        let out = Command::new("vtysh")
            .args(["-N", self.var("LAB_NODE_FRR"), "-c", cmd])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    pub fn router_vtysh(&self, cmd: &str) -> String {
        let out = Command::new("vtysh")
            .args(["-N", self.var("LAB_RTR_FRR"), "-c", cmd])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// `configure terminal`, then `lines`, in the FRR instance the variable `side` names
    /// (`LAB_NODE_FRR`, `LAB_RTR_FRR`); panics when vtysh refuses.
    #[allow(dead_code)] // health tests and benchmarks
    pub fn configure(&self, side: &str, lines: &[&str]) {
        let mut cmd = Command::new("vtysh");
        cmd.args(["-N", self.var(side), "-c", "configure terminal"]);
        for l in lines {
            cmd.args(["-c", l]);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    /// One line in `router bgp` of the FRR instance `side` names (`LAB_NODE_FRR`,
    /// `LAB_RTR_FRR`).
    #[allow(dead_code)] // health tests and benchmarks
    pub fn bgp_line(&self, side: &str, line: &str) {
        let asn = if side == "LAB_RTR_FRR" {
            "LAB_RTR_AS"
        } else {
            "LAB_NODE_AS"
        };
        self.configure(side, &[&format!("router bgp {}", self.var(asn)), line]);
    }

    /// The router's established-session counters per neighbour; they grow when a session resets.
    #[allow(dead_code)] // lab tests and benchmarks
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
    #[allow(dead_code)] // lab tests and benchmarks
    pub fn driver(&self, mode: FrrApply) -> Driver {
        match self.daemon() {
            NodeDaemon::Bird { socket, include } => {
                Driver::Bird(BirdDriver::new(socket.into(), include.into()))
            }
            NodeDaemon::Frr { pathspace } => Driver::Frr(FrrDriver::new(Some(pathspace), mode)),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The lock (a field) is released after this: nobody takes the lab over half torn down.
        let _ = script::run("lab.sh", &["down", &self.name]);
    }
}
