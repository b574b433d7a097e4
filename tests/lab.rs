//! routelb's fragments on real daemons: a namespace lab (integration/lab/lab.sh) with a node
//! (FRR or BIRD) and an upstream FRR router. For every protocol each daemon speaks: the fragment
//! applies, an address on kube-lb0 becomes a route in the router's kernel table and goes away
//! when removed, addresses outside the pools never leave the node, a policy change reaches the
//! router without resetting the BGP session, a refused fragment leaves the last good one in
//! place, and lost objects are put back. Needs root, iproute2, frr and bird2.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use routelb::api::Protocol;
use routelb::daemon::applier::Applier;
use routelb::daemon::frr::FrrApply;
use routelb::daemon::{DaemonError, Driver};
use routelb::manifests::{Manifests, load_str};
use routelb::render::{DaemonKind, Templates};

mod support {
    pub mod daemon;
    pub mod files;
    pub mod lab;
    pub mod lock;
    pub mod script;
    pub mod wait;
}

use support::lab::Lab;
use support::{lock, wait};

/// One lab test at a time, in any process (the tests measure convergence times).
fn one_at_a_time() -> lock::Held {
    lock::exclusive("lab-tests")
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

async fn exercise(node: DaemonKind, proto: Protocol, lab_proto: &str) {
    let _one = one_at_a_time();
    let name = format!("t{}{}", &node.name()[..1], &lab_proto[..2]);
    let lab = Lab::up(&name, node.name(), lab_proto);
    let driver = lab.driver(FrrApply::Diff);
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
        lab.bgp_connections()
    } else {
        String::new()
    };

    // Outside every pool, and added first: by the time the pool's addresses reach the router,
    // the daemon has long decided about this one (it sees interface addresses in order).
    lab.ip(&["addr", "add", "192.0.2.9/32", "dev", "kube-lb0"]);
    lab.ip(&["addr", "add", "203.0.113.7/32", "dev", "kube-lb0"]);
    lab.ip(&[
        "addr",
        "add",
        "2001:db8:ffff::7/128",
        "dev",
        "kube-lb0",
        "nodad",
    ]);
    let v4 = lab
        .wait_route("203.0.113.7/32", "present", 30)
        .expect("IPv4 service route at the router");
    let v6 = lab
        .wait_route("2001:db8:ffff::7/128", "present", 30)
        .expect("IPv6 service route at the router");
    println!("{node:?}/{proto:?}: address → route at router: IPv4 {v4} ms, IPv6 {v6} ms");
    // An address outside every pool stays on the node (checked again at the end).
    assert!(
        !lab.router_has("192.0.2.9/32"),
        "an address outside the pools was announced"
    );

    if proto == Protocol::Bgp {
        // A policy change reaches the router without a session reset.
        let changed = render(node, &driver, &manifests(proto, "64512:200")).await;
        applier
            .converge(&changed)
            .await
            .expect("policy change applies");
        let show = || lab.router_vtysh("show bgp ipv4 unicast 203.0.113.7/32 json");
        wait::up_to(Duration::from_secs(20))
            .every(Duration::from_millis(100))
            .until(|| async { show().contains("64512:200").then_some(()) })
            .await
            .unwrap_or_else(|| panic!("the new community never reached the router: {}", show()));
        assert_eq!(
            lab.bgp_connections(),
            sessions_before,
            "a BGP session was reset by an apply"
        );
    }

    // A fragment the daemon refuses leaves the last good one in place.
    let good = applier.last_good().unwrap().to_string();
    let broken = match node {
        DaemonKind::Frr => format!("{good}route-map ROUTELB-BROKEN permit 10\n frobnicate\nexit\n"),
        DaemonKind::Bird | DaemonKind::Bird1 => format!("{good}function routelb_broken( {{\n"),
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
        DaemonKind::Bird | DaemonKind::Bird1 => {
            std::fs::write(lab.var("LAB_BIRD_INCLUDE"), "# emptied by hand\n").unwrap()
        }
    }
    // A second driver looks, so that the applier's own driver learns nothing from the check:
    // the resync (sync with recheck, as the agent's periodic one) must find the loss itself.
    let observer = lab.driver(FrrApply::Diff);
    assert!(!observer.in_sync(&good).await.unwrap());
    // The refused fragment above set a retry backoff.
    wait::up_to(Duration::from_secs(60))
        .every(Duration::from_millis(100))
        .until(|| async { applier.due().then_some(()) })
        .await
        .expect("the retry backoff ends");
    let repaired = applier.sync(&good, true).await.expect("a resync runs");
    assert!(
        repaired.unwrap().changed,
        "the resync must put the objects back"
    );
    assert!(observer.in_sync(&good).await.unwrap());
    lab.wait_route("203.0.113.7/32", "present", 30)
        .expect("announced again after repair");

    if node == DaemonKind::Frr {
        // A daemon that restarted lost everything routelb gave it. The next change, even a
        // small one, must bring back all of it, not just the difference.
        let daemon = match proto {
            Protocol::Bgp => "bgpd",
            Protocol::Ospf => "ospfd",
            Protocol::Isis => "isisd",
            Protocol::Rip => "ripd",
        };
        // Rendered first: reading the instances would reconnect and so tell the driver about
        // the restart before the apply has to find out by itself.
        let changed = render(node, &driver, &manifests(proto, "64512:300")).await;
        lab.restart_daemon(daemon);
        if matches!(proto, Protocol::Bgp | Protocol::Ospf) {
            // The session or adjacency went down with the daemon (RIP and IS-IS would keep
            // the route for their long hold times).
            lab.wait_route("203.0.113.7/32", "absent", 30)
                .expect("the restart took the route away");
        }
        let target = if proto == Protocol::Bgp {
            &changed
        } else {
            &good
        };
        applier
            .sync(target, proto != Protocol::Bgp)
            .await
            .expect("an apply runs")
            .expect("applies after the restart");
        assert!(observer.in_sync(target).await.unwrap());
        lab.wait_route("203.0.113.7/32", "present", 60)
            .expect("announced again after the daemon restarted");
    }

    assert!(
        !lab.router_has("192.0.2.9/32"),
        "an address outside the pools was announced"
    );
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

/// A Service's IS-IS metric, granted by the policy, reaches the router: its address costs what
/// the Service asked (plus the link), another address of the pool what the policy says.
#[tokio::test]
async fn frr_isis_per_service_metric_reaches_the_router() {
    let _one = one_at_a_time();
    let lab = Lab::up("tfim", "frr", "isis");
    let driver = lab.driver(FrrApply::Diff);
    let text = r#"
apiVersion: routelb.io/v1alpha1
kind: AddressPool
metadata: {name: lab}
spec: {addresses: ["203.0.113.0/24"]}
---
apiVersion: routelb.io/v1alpha1
kind: RoutingPolicy
metadata: {name: lab}
spec:
  protocols: [isis]
  isis: {level: level-2, metric: 30}
  serviceOverrides:
    isisMetric: {min: 30, max: 1000}
---
apiVersion: v1
kind: Service
metadata:
  name: backup
  namespace: default
  annotations:
    routelb.io/addresses: 203.0.113.7
    routelb.io/isis-metric: "300"
spec: {type: LoadBalancer, ports: [{port: 80, protocol: TCP}]}
"#;
    let mut m = Manifests::default();
    load_str(text, Path::new("lab.yaml"), &mut m).unwrap();
    let fragment = render(DaemonKind::Frr, &driver, &m).await;
    assert!(fragment.contains("set metric 300"), "{fragment}");
    Applier::new(driver.clone())
        .converge(&fragment)
        .await
        .expect("fragment applies");
    for a in ["203.0.113.7/32", "203.0.113.8/32"] {
        lab.ip(&["addr", "add", a, "dev", "kube-lb0"]);
        lab.wait_route(a, "present", 60)
            .expect("route at the router");
    }
    let metric = |prefix: &str| -> Option<u64> {
        let out = lab.router_vtysh(&format!("show ip route {prefix} json"));
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        v[prefix].as_array()?.first()?["metric"].as_u64()
    };
    let (service, pool) = (metric("203.0.113.7/32"), metric("203.0.113.8/32"));
    println!("IS-IS metrics at the router: the Service's address {service:?}, the pool's {pool:?}");
    let (Some(service), Some(pool)) = (service, pool) else {
        panic!("no metric at the router: {service:?} {pool:?}");
    };
    assert_eq!(service - pool, 300 - 30, "the link's cost is added to both");
}

#[tokio::test]
async fn frr_reload_mode_applies_through_frr_reload_py() {
    let _one = one_at_a_time();
    let lab = Lab::up("tfrl", "frr", "ospf");
    let driver = lab.driver(FrrApply::Reload);
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

/// A pool of 600 single addresses: four split lists, and a first apply large enough to go to
/// each daemon as one batch. Then one more address is one line, and addresses from several
/// lists reach the router.
#[tokio::test]
async fn frr_large_pool_goes_in_one_batch_and_changes_by_one_line() {
    let _one = one_at_a_time();
    let lab = Lab::up("tfbt", "frr", "bgp");
    // staticd runs on every Debian FRR and takes none of routelb's objects: it must answer
    // "unknown command" once, and then be left alone.
    lab.start_daemon("staticd");
    let driver = lab.driver(FrrApply::Diff);
    let pool = |n: usize| {
        let list: Vec<String> = (0..n)
            // Odd addresses only: neighbours would merge into larger CIDRs.
            .map(|i| format!("\"198.18.{}.{}/32\"", i / 100, (i % 100) * 2 + 1))
            .collect();
        let text = format!(
            "apiVersion: routelb.io/v1alpha1\nkind: AddressPool\nmetadata: {{name: big}}\nspec: {{addresses: [{}]}}\n---\n\
             apiVersion: routelb.io/v1alpha1\nkind: RoutingPolicy\nmetadata: {{name: big}}\nspec: {{protocols: [bgp]}}\n",
            list.join(", ")
        );
        let mut m = Manifests::default();
        load_str(&text, Path::new("big.yaml"), &mut m).unwrap();
        m
    };
    let fragment = render(DaemonKind::Frr, &driver, &pool(600)).await;
    assert!(
        fragment.contains("ROUTELB-POOL-big_1-V4") && fragment.contains("ROUTELB-POOL-big_4-V4")
    );
    let sessions_before = lab.bgp_connections();
    let first = driver.apply(&fragment).await.expect("the batch applies");
    assert!(first.commands >= 600, "{first:?}");
    assert!(driver.in_sync(&fragment).await.unwrap());
    let again = driver.apply(&fragment).await.unwrap();
    assert_eq!(
        again.commands, 0,
        "nothing is sent twice, to staticd either"
    );
    // A stopped daemon's socket file stays behind; the others are still configured.
    lab.stop_daemon("staticd");
    let stale = format!("/var/run/frr/{}/staticd.vty", lab.var("LAB_NODE_FRR"));
    assert!(Path::new(&stale).exists());
    let more = render(DaemonKind::Frr, &driver, &pool(601)).await;
    assert_eq!(driver.apply(&more).await.expect("one more").commands, 1);
    assert!(driver.in_sync(&more).await.unwrap());
    for addr in [
        "198.18.0.1/32",
        "198.18.1.77/32",
        "198.18.5.199/32",
        "198.18.6.1/32",
    ] {
        lab.ip(&["addr", "add", addr, "dev", "kube-lb0"]);
        lab.wait_route(addr, "present", 30)
            .unwrap_or_else(|e| panic!("{addr} at the router: {e}"));
    }
    assert_eq!(
        lab.bgp_connections(),
        sessions_before,
        "a batch reset the BGP session"
    );
}
