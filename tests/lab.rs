#![allow(clippy::await_holding_lock)] // one lab at a time, held for a whole test on purpose
//! routelb's fragments on real daemons: a namespace lab (integration/lab/lab.sh) with a node
//! (FRR or BIRD) and an upstream FRR router. For every protocol each daemon speaks: the fragment
//! applies, an address on kube-lb0 becomes a route in the router's kernel table and goes away
//! when removed, addresses outside the pools never leave the node, a policy change reaches the
//! router without resetting the BGP session, a refused fragment leaves the last good one in
//! place, and lost objects are put back. Needs root, iproute2, frr and bird2.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use routelb::api::Protocol;
use routelb::daemon::applier::Applier;
use routelb::daemon::bird::BirdDriver;
use routelb::daemon::frr::{FrrApply, FrrDriver};
use routelb::daemon::{DaemonError, Driver};
use routelb::manifests::{Manifests, load_str};
use routelb::render::{DaemonKind, Templates};

static SERIAL: Mutex<()> = Mutex::new(());

fn lab_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("integration/lab/lab.sh")
}

struct Lab {
    name: String,
    env: HashMap<String, String>,
}

impl Lab {
    fn up(name: &str, node: DaemonKind, proto: &str) -> Lab {
        let out = Command::new("bash")
            .arg(lab_script())
            .args([
                "up",
                name,
                "--node",
                node.name(),
                "--router",
                "frr",
                "--proto",
                proto,
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

    fn var(&self, k: &str) -> &str {
        self.env
            .get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("lab did not report {k}"))
    }

    fn ip(&self, args: &[&str]) {
        let ns = self.var("LAB_NODE_NS").to_string();
        let st = Command::new("ip")
            .args(["-n", &ns])
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "ip {args:?} failed");
    }

    /// Milliseconds until the prefix is present/absent in the router's kernel table.
    fn wait_route(&self, prefix: &str, want: &str, timeout_s: u32) -> Result<u64, String> {
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

    fn router_vtysh(&self, cmd: &str) -> String {
        let out = Command::new("vtysh")
            .args(["-N", self.var("LAB_RTR_FRR"), "-c", cmd])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn driver(&self, node: DaemonKind) -> Driver {
        match node {
            DaemonKind::Frr => Driver::Frr(FrrDriver::new(
                Some(self.var("LAB_NODE_FRR").to_string()),
                FrrApply::Diff,
            )),
            DaemonKind::Bird => Driver::Bird(BirdDriver::new(
                PathBuf::from(self.var("LAB_BIRD_SOCKET")),
                PathBuf::from(self.var("LAB_BIRD_INCLUDE")),
            )),
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

fn manifests(proto: Protocol, community: &str) -> Manifests {
    let attrs = match proto {
        Protocol::Bgp => format!("bgp: {{communities: [\"{community}\"], localPreference: 150}}"),
        Protocol::Ospf => "ospf: {metric: 20, metricType: 1}".into(),
        Protocol::Isis => "isis: {level: level-2, metric: 30}".into(),
        Protocol::Rip => "rip: {metric: 2}".into(),
    };
    let proto_name = serde_json::to_value(proto)
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let text = format!(
        r#"
apiVersion: routelb.io/v1alpha1
kind: AddressPool
metadata: {{name: lab}}
spec: {{addresses: ["203.0.113.0/24", "2001:db8:ffff::/120"]}}
---
apiVersion: routelb.io/v1alpha1
kind: RoutingPolicy
metadata: {{name: lab}}
spec:
  protocols: [{proto_name}]
  {attrs}
"#
    );
    let mut m = Manifests::default();
    load_str(&text, Path::new("lab.yaml"), &mut m).unwrap();
    m
}

async fn render(node: DaemonKind, driver: &Driver, m: &Manifests) -> String {
    let instances = driver.instances().await.expect("instances");
    let out = routelb::offline::render(
        m,
        &Templates::embedded(node).unwrap(),
        None,
        "kube-lb0",
        &instances,
    )
    .unwrap();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    out.fragment
}

fn bgp_connections(lab: &Lab) -> String {
    // Established-session counters of every neighbour; they grow when a session resets.
    let json = lab.router_vtysh("show bgp neighbors json");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
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

async fn exercise(node: DaemonKind, proto: Protocol, lab_proto: &str) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = format!("t{}{}", &node.name()[..1], &lab_proto[..2]);
    let lab = Lab::up(&name, node, lab_proto);
    let driver = lab.driver(node);
    let mut applier = Applier::new(driver.clone());

    let fragment = render(node, &driver, &manifests(proto, "64512:100")).await;
    let first = applier.converge(&fragment).await.expect("fragment applies");
    assert!(first.changed);
    let again = applier.converge(&fragment).await.unwrap();
    assert!(
        !again.changed,
        "a second apply of the same fragment must change nothing"
    );
    assert!(driver.in_sync(&fragment).await.unwrap());

    let sessions_before = if proto == Protocol::Bgp {
        bgp_connections(&lab)
    } else {
        String::new()
    };

    lab.ip(&["addr", "add", "203.0.113.7/32", "dev", "kube-lb0"]);
    lab.ip(&[
        "addr",
        "add",
        "2001:db8:ffff::7/128",
        "dev",
        "kube-lb0",
        "nodad",
    ]);
    lab.ip(&["addr", "add", "192.0.2.9/32", "dev", "kube-lb0"]);
    let v4 = lab
        .wait_route("203.0.113.7/32", "present", 30)
        .expect("IPv4 service route at the router");
    let v6 = lab
        .wait_route("2001:db8:ffff::7/128", "present", 30)
        .expect("IPv6 service route at the router");
    println!("{node:?}/{proto:?}: address → route at router: IPv4 {v4} ms, IPv6 {v6} ms");
    // An address outside every pool stays on the node.
    assert!(
        lab.wait_route("192.0.2.9/32", "present", 2).is_err(),
        "an address outside the pools was announced"
    );

    if proto == Protocol::Bgp {
        // A policy change reaches the router without a session reset.
        let changed = render(node, &driver, &manifests(proto, "64512:200")).await;
        applier
            .converge(&changed)
            .await
            .expect("policy change applies");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let route = lab.router_vtysh("show bgp ipv4 unicast 203.0.113.7/32 json");
            if route.contains("64512:200") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the new community never reached the router: {route}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            bgp_connections(&lab),
            sessions_before,
            "a BGP session was reset by an apply"
        );
    }

    // A fragment the daemon refuses leaves the last good one in place.
    let good = applier.last_good().unwrap().to_string();
    let broken = match node {
        DaemonKind::Frr => format!("{good}route-map ROUTELB-BROKEN permit 10\n frobnicate\nexit\n"),
        DaemonKind::Bird => format!("{good}function routelb_broken( {{\n"),
    };
    let err = applier.converge(&broken).await.unwrap_err();
    assert!(matches!(err, DaemonError::Invalid(_)), "{err}");
    assert!(
        driver.in_sync(&good).await.unwrap(),
        "the last good fragment must stay in place"
    );
    lab.wait_route("203.0.113.7/32", "present", 5)
        .expect("still announced after a refused fragment");

    // Objects lost (a daemon restart, a hand edit) are put back by the next converge.
    match node {
        DaemonKind::Frr => {
            let out = Command::new("vtysh")
                .args([
                    "-N",
                    lab.var("LAB_NODE_FRR"),
                    "-c",
                    "configure terminal",
                    "-c",
                    "no ip prefix-list ROUTELB-POOL-lab-V4",
                ])
                .output()
                .unwrap();
            assert!(out.status.success());
        }
        DaemonKind::Bird => {
            std::fs::write(lab.var("LAB_BIRD_INCLUDE"), "# emptied by hand\n").unwrap()
        }
    }
    assert!(!driver.in_sync(&good).await.unwrap());
    assert!(applier.converge(&good).await.unwrap().changed);
    assert!(driver.in_sync(&good).await.unwrap());
    lab.wait_route("203.0.113.7/32", "present", 30)
        .expect("announced again after repair");

    lab.ip(&["addr", "del", "203.0.113.7/32", "dev", "kube-lb0"]);
    lab.ip(&["addr", "del", "2001:db8:ffff::7/128", "dev", "kube-lb0"]);
    let gone4 = lab
        .wait_route("203.0.113.7/32", "absent", 60)
        .expect("IPv4 route withdrawn");
    let gone6 = lab
        .wait_route("2001:db8:ffff::7/128", "absent", 60)
        .expect("IPv6 route withdrawn");
    println!("{node:?}/{proto:?}: address removed → route gone: IPv4 {gone4} ms, IPv6 {gone6} ms");
}

#[tokio::test]
async fn frr_bgp() {
    exercise(DaemonKind::Frr, Protocol::Bgp, "bgp").await;
}

#[tokio::test]
async fn frr_ospf() {
    exercise(DaemonKind::Frr, Protocol::Ospf, "ospf").await;
}

#[tokio::test]
async fn frr_isis() {
    exercise(DaemonKind::Frr, Protocol::Isis, "isis").await;
}

#[tokio::test]
async fn frr_rip() {
    exercise(DaemonKind::Frr, Protocol::Rip, "rip").await;
}

#[tokio::test]
async fn bird_bgp() {
    exercise(DaemonKind::Bird, Protocol::Bgp, "bgp").await;
}

#[tokio::test]
async fn bird_ospf() {
    exercise(DaemonKind::Bird, Protocol::Ospf, "ospf").await;
}

#[tokio::test]
async fn bird_rip() {
    exercise(DaemonKind::Bird, Protocol::Rip, "rip").await;
}

#[tokio::test]
async fn frr_reload_mode_applies_through_frr_reload_py() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tfrl", DaemonKind::Frr, "ospf");
    let driver = Driver::Frr(FrrDriver::new(
        Some(lab.var("LAB_NODE_FRR").to_string()),
        FrrApply::Reload,
    ));
    let fragment = render(DaemonKind::Frr, &driver, &manifests(Protocol::Ospf, "")).await;
    assert!(
        driver
            .apply(&fragment)
            .await
            .expect("frr-reload.py applies")
            .changed
    );
    assert!(driver.in_sync(&fragment).await.unwrap());
    assert!(!driver.apply(&fragment).await.unwrap().changed);
    lab.ip(&["addr", "add", "203.0.113.8/32", "dev", "kube-lb0"]);
    lab.wait_route("203.0.113.8/32", "present", 30)
        .expect("route at the router");
    // The team's own configuration survived the whole-file reload.
    let running = Command::new("vtysh")
        .args(["-N", lab.var("LAB_NODE_FRR"), "-c", "show running-config"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&running.stdout).contains("router ospf"));
}
