//! routelb next to a base in frr-k8s's shape (tests/corpus/frr-k8s/frr.conf): per-neighbor
//! outbound route-maps that permit only the generator's own exact-match prefix-lists, BFD
//! profiles with bfdd, an IPv6 neighbor, a multihop neighbor and one in a VRF. Without
//! `spec.bgp.outboundRouteMaps` a Service address reaches the node's BGP table and stops
//! there; with it, it reaches the router in both families with no line added to the base, no
//! session reset and the base's own routes untouched; taking the option away leaves the
//! base's route-maps exactly as they were; frr-reload.py of the base file (as frr-k8s
//! reconciles) removes routelb's objects and the driver sees it; the same holds in reload mode,
//! and `routelb standalone` needs nothing but the policy option. Needs root, iproute2, frr.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use routelb::daemon::Driver;
use routelb::daemon::frr::FrrApply;
use routelb::daemon::frr_config;
use routelb::manifests::{Manifests, load_str};
use routelb::render::{DaemonKind, Templates};
use serde_json::Value;

mod support {
    pub mod daemon;
    pub mod files;
    pub mod lab;
    pub mod lock;
    pub mod script;
    pub mod wait;
}

use support::lab::Lab;
use support::{files, wait};

const SVC_V4: &str = "203.0.113.7/32";
const SVC_V6: &str = "2001:db8:ffff::7/128";
const BASE_V4: &str = "198.18.10.1/32";
const BASE_V6: &str = "2001:db8:18::1/128";

/// The pool and a BGP policy, hooking into `hooks` (the base's outbound route-maps).
fn manifests(hooks: &[&str]) -> Manifests {
    let hooks: Vec<String> = hooks.iter().map(|h| format!("\"{h}\"")).collect();
    let text = format!(
        r#"
apiVersion: routelb.io/v1alpha1
kind: AddressPool
metadata: {{name: web}}
spec: {{addresses: ["203.0.113.0/24", "2001:db8:ffff::/120"]}}
---
apiVersion: routelb.io/v1alpha1
kind: RoutingPolicy
metadata: {{name: upstream}}
spec:
  protocols: [bgp]
  bgp: {{communities: ["64512:100"], outboundRouteMaps: [{}]}}
"#,
        hooks.join(", ")
    );
    let mut m = Manifests::default();
    load_str(&text, Path::new("coexist.yaml"), &mut m).unwrap();
    m
}

async fn render(driver: &Driver, hooks: &[&str]) -> String {
    let instances = driver.instances().await.expect("instances");
    let out = routelb::offline::render(
        &manifests(hooks),
        &Templates::embedded(DaemonKind::Frr).unwrap(),
        None,
        "kube-lb0",
        &instances,
    )
    .unwrap();
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    out.fragment
}

/// The entries of route-map `name` in the node's running configuration, as text.
async fn route_map_text(driver: &Driver, name: &str) -> String {
    let Driver::Frr(frr) = driver else {
        unreachable!("an FRR lab")
    };
    let tree = frr_config::parse(&frr.running_config().await.unwrap());
    let head = format!("route-map {name} ");
    let entries: Vec<_> = tree
        .into_iter()
        .filter(|n| n.line.starts_with(&head))
        .collect();
    frr_config::units(&entries).concat()
}

fn family(prefix: &str) -> &'static str {
    if prefix.contains(':') { "ipv6" } else { "ipv4" }
}

/// The node's BGP table entry for `prefix` (JSON), once bgpd has selected a best path for
/// it: bgpd decides what each update group sends in the same step, so from then on whether
/// it is advertised is settled.
async fn node_best(lab: &Lab, prefix: &str) -> Value {
    let show = format!("show bgp {} unicast {prefix} json", family(prefix));
    wait::up_to(Duration::from_secs(20))
        .every(Duration::from_millis(50))
        .until(|| async {
            let v: Value = serde_json::from_str(&lab.node_vtysh(&show)).ok()?;
            let best = v["paths"]
                .as_array()?
                .iter()
                .any(|p| p["bestpath"]["overall"] == true);
            best.then_some(v)
        })
        .await
        .unwrap_or_else(|| panic!("{prefix} never became best in the node's BGP table"))
        .value
}

/// What the router holds of one of the base's own routes: path, communities, next hop.
fn router_route(lab: &Lab, prefix: &str) -> String {
    let v: Value = serde_json::from_str(&lab.router_vtysh(&format!(
        "show bgp {} unicast {prefix} json",
        family(prefix)
    )))
    .unwrap_or_default();
    let p = &v["paths"][0];
    format!(
        "{} {} {} {}",
        p["aspath"]["string"], p["community"], p["origin"], p["nexthops"][0]["ip"]
    )
}

/// Whether the router's kernel has the route now, in either family.
fn router_has(lab: &Lab, prefix: &str) -> bool {
    let out = Command::new("ip")
        .args([
            if prefix.contains(':') { "-6" } else { "-4" },
            "-n",
            lab.var("LAB_RTR_NS"),
            "route",
            "show",
            "exact",
            prefix,
        ])
        .output()
        .unwrap();
    !out.stdout.is_empty()
}

fn lb(lab: &Lab, op: &str, prefix: &str) {
    let mut args = vec!["addr", op, prefix, "dev", "kube-lb0"];
    if prefix.contains(':') && op == "add" {
        args.push("nodad");
    }
    lab.ip(&args);
}

/// Runs frr-reload.py on the base's own file, as frr-k8s reconciles its configuration.
fn reload_base(lab: &Lab) {
    let out = Command::new("python3")
        .arg("/usr/lib/frr/frr-reload.py")
        .arg("--reload")
        .args(["--bindir", lab.var("LAB_FRR_BINDIR")])
        .args(["--pathspace", lab.var("LAB_NODE_FRR")])
        .args(["--confdir", lab.var("LAB_NODE_FRR_CONFDIR")])
        .arg(lab.var("LAB_NODE_FRR_CONF"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "frr-reload.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn frr_k8s_base_with_outbound_route_map_hooks() {
    let _one = support::lock::exclusive("lab-tests");
    let corpus = files::root().join("tests/corpus/frr-k8s/frr.conf");
    let lab = Lab::up_with(
        "hkfk",
        "frr",
        "bgp",
        &[
            "--fresh",
            "--node-conf",
            corpus.to_str().unwrap(),
            "--daemons",
            "zebra bgpd bfdd",
        ],
    );
    let driver = lab.driver(FrrApply::Diff);
    let (rtr_v4, rtr_v6) = (lab.var("LAB_RTR_V4"), lab.var("LAB_RTR_V6"));
    let out_v4 = format!("{rtr_v4}-out");
    let out_v6 = format!("{rtr_v6}-out");
    let hooks = [out_v4.as_str(), out_v6.as_str()];

    // The base alone announces its own prefixes.
    for p in [BASE_V4, BASE_V6] {
        lab.wait_route(p, "present", 30)
            .unwrap_or_else(|e| panic!("the base's {p} at the router: {e}"));
    }
    let base_routes = (router_route(&lab, BASE_V4), router_route(&lab, BASE_V6));
    let base_maps = (
        route_map_text(&driver, &out_v4).await,
        route_map_text(&driver, &out_v6).await,
    );
    assert!(base_maps.0.contains("permit 1\n"), "{}", base_maps.0);
    let sessions = lab.bgp_connections();

    // Without the option: the Service's addresses reach the node's BGP table, and its
    // outbound route-maps drop them.
    let plain = render(&driver, &[]).await;
    assert!(!plain.contains(&out_v4));
    driver.apply(&plain).await.expect("fragment applies");
    lb(&lab, "add", SVC_V4);
    lb(&lab, "add", SVC_V6);
    for p in [SVC_V4, SVC_V6] {
        let entry = node_best(&lab, p).await;
        assert!(
            entry.get("advertisedTo").is_none(),
            "{p} was advertised without the hook: {entry}"
        );
        assert!(
            !router_has(&lab, p),
            "{p} reached the router without the hook"
        );
    }

    // With the option: both families reach the router, with the policy's community, and
    // nothing of the base changes.
    let hooked = render(&driver, &hooks).await;
    let started = Instant::now();
    driver.apply(&hooked).await.expect("hooks apply");
    for p in [SVC_V4, SVC_V6] {
        lab.wait_route(p, "present", 30)
            .unwrap_or_else(|e| panic!("{p} at the router with the hook: {e}"));
    }
    println!(
        "option applied → both Service routes at the router: {} ms (bgpd's route-map delay-timer, 5 s by default, dominates)",
        started.elapsed().as_millis()
    );
    assert!(
        lab.router_vtysh(&format!("show bgp ipv4 unicast {SVC_V4} json"))
            .contains("64512:100"),
        "the policy's community did not reach the router"
    );
    let entry = node_best(&lab, SVC_V4).await;
    assert!(entry.get("advertisedTo").is_some(), "{entry}");
    assert!(driver.in_sync(&hooked).await.unwrap());
    assert!(
        !driver.apply(&hooked).await.unwrap().changed,
        "a second apply changed something"
    );
    let hooked_map = route_map_text(&driver, &out_v4).await;
    assert!(
        hooked_map.starts_with(&base_maps.0) && hooked_map.contains("ROUTELB-POOL-web-V4"),
        "the base's entries moved or routelb's are missing:\n{hooked_map}"
    );

    // A new Service address with the hook in place.
    let more = "203.0.113.8/32";
    lb(&lab, "add", more);
    let ms = lab
        .wait_route(more, "present", 30)
        .expect("new Service route");
    println!("Service address added → route at the router: {ms} ms");

    // Removing a Service withdraws its prefix only.
    lb(&lab, "del", more);
    lab.wait_route(more, "absent", 30).expect("withdrawn");
    for p in [SVC_V4, SVC_V6] {
        assert!(router_has(&lab, p), "{p} went away with another Service");
    }
    assert_eq!(
        (router_route(&lab, BASE_V4), router_route(&lab, BASE_V6)),
        base_routes,
        "the base's own routes changed"
    );
    assert_eq!(lab.bgp_connections(), sessions, "a BGP session was reset");

    // Taking the option away removes routelb's entries and leaves the base's route-maps as
    // they were; the Service is dropped again by them.
    driver.apply(&plain).await.expect("unhook applies");
    lab.wait_route(SVC_V4, "absent", 30)
        .expect("withdrawn once unhooked");
    assert_eq!(
        (
            route_map_text(&driver, &out_v4).await,
            route_map_text(&driver, &out_v6).await
        ),
        base_maps,
        "the base's route-maps differ from before routelb hooked into them"
    );
    assert!(driver.in_sync(&plain).await.unwrap());

    // frr-reload.py of the base file (frr-k8s's reconcile) removes routelb's objects,
    // hook entries included, and the next sync check says so.
    driver.apply(&hooked).await.expect("hooks apply again");
    lab.wait_route(SVC_V4, "present", 30)
        .expect("back at the router");
    reload_base(&lab);
    lab.wait_route(SVC_V4, "absent", 30)
        .expect("frr-reload.py took the Service away");
    assert_eq!(route_map_text(&driver, &out_v4).await, base_maps.0);
    assert!(
        !driver.in_sync(&hooked).await.unwrap(),
        "in_sync missed routelb's objects removed by frr-reload.py"
    );
    driver.forget();
    driver.apply(&hooked).await.expect("repair applies");
    assert!(driver.in_sync(&hooked).await.unwrap());
    lab.wait_route(SVC_V4, "present", 30)
        .expect("back at the router after the repair");
    assert_eq!(lab.bgp_connections(), sessions, "a BGP session was reset");
    assert_eq!(
        (router_route(&lab, BASE_V4), router_route(&lab, BASE_V6)),
        base_routes,
        "the base's own routes changed"
    );
}

/// `routelb standalone` in the lab's node, killed (and its log shown on failure) when dropped.
struct Standalone {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Standalone {
    fn start(lab: &Lab, dir: &Path) -> Standalone {
        let log = dir.with_extension("log");
        let stderr = std::fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", lab.var("LAB_NODE_NS")])
            .arg(env!("CARGO_BIN_EXE_routelb"))
            .args(["standalone", "--config", dir.to_str().unwrap(), "--state"])
            .arg(dir.with_extension("state"))
            .args(lab.daemon().flags())
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Standalone { child, log }
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- routelb standalone:\n{log}");
        }
    }
}

/// The user's whole part, with the real binary: a pool, a policy naming the base's outbound
/// route-maps, a Service file. Nothing is added to FRR by hand.
#[tokio::test]
async fn standalone_next_to_an_frr_k8s_base_needs_only_the_policy_option() {
    let _one = support::lock::exclusive("lab-tests");
    let corpus = files::root().join("tests/corpus/frr-k8s/frr.conf");
    let lab = Lab::up_with(
        "hkfs",
        "frr",
        "bgp",
        &[
            "--fresh",
            "--node-conf",
            corpus.to_str().unwrap(),
            "--daemons",
            "zebra bgpd bfdd",
        ],
    );
    for p in [BASE_V4, BASE_V6] {
        lab.wait_route(p, "present", 30)
            .unwrap_or_else(|e| panic!("the base's {p} at the router: {e}"));
    }
    let sessions = lab.bgp_connections();
    let dir = files::scratch("coexist-frr-k8s");
    let _ = std::fs::remove_file(dir.with_extension("state"));
    std::fs::write(
        dir.join("routing.yaml"),
        format!(
            r#"apiVersion: routelb.io/v1alpha1
kind: AddressPool
metadata: {{name: web}}
spec: {{addresses: ["{SVC_V4}", "{SVC_V6}"]}}
---
apiVersion: routelb.io/v1alpha1
kind: RoutingPolicy
metadata: {{name: upstream}}
spec:
  protocols: [bgp]
  bgp: {{outboundRouteMaps: ["{}-out", "{}-out"]}}
"#,
            lab.var("LAB_RTR_V4"),
            lab.var("LAB_RTR_V6")
        ),
    )
    .unwrap();
    let _routelb = Standalone::start(&lab, &dir);
    // The fragment, hooks included, is in place before any Service exists.
    let driver = lab.driver(FrrApply::Diff);
    let out_v4 = format!("{}-out", lab.var("LAB_RTR_V4"));
    wait::up_to(Duration::from_secs(30))
        .every(Duration::from_millis(50))
        .until(|| async {
            route_map_text(&driver, &out_v4)
                .await
                .contains("ROUTELB-POOL-web-V4")
                .then_some(())
        })
        .await
        .expect("routelb hooked into the base's route-map");

    let svc = dir.join("svc-web.yaml");
    let started = Instant::now();
    std::fs::write(
        &svc,
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {type: LoadBalancer, ipFamilyPolicy: RequireDualStack, ports: [{port: 80, protocol: TCP}]}\n",
    )
    .unwrap();
    for p in [SVC_V4, SVC_V6] {
        lab.wait_route(p, "present", 30)
            .unwrap_or_else(|e| panic!("{p} at the router: {e}"));
    }
    println!(
        "standalone: Service file written → both routes at the router: {} ms",
        started.elapsed().as_millis()
    );
    std::fs::remove_file(&svc).unwrap();
    for p in [SVC_V4, SVC_V6] {
        lab.wait_route(p, "absent", 30)
            .unwrap_or_else(|e| panic!("{p} withdrawn: {e}"));
    }
    for p in [BASE_V4, BASE_V6] {
        assert!(router_has(&lab, p), "the base's {p} went away");
    }
    assert_eq!(lab.bgp_connections(), sessions, "a BGP session was reset");
}

/// `--frr-apply reload` (frr-reload.py with the running configuration, routelb's objects
/// replaced): the hook entries go in and come out the same way, the base's route-map intact.
#[tokio::test]
async fn reload_mode_hooks_and_unhooks_too() {
    let _one = support::lock::exclusive("lab-tests");
    let corpus = files::root().join("tests/corpus/frr-k8s/frr.conf");
    let lab = Lab::up_with(
        "hkfr",
        "frr",
        "bgp",
        &[
            "--fresh",
            "--node-conf",
            corpus.to_str().unwrap(),
            "--daemons",
            "zebra bgpd bfdd",
        ],
    );
    let driver = lab.driver(FrrApply::Reload);
    let out_v4 = format!("{}-out", lab.var("LAB_RTR_V4"));
    let out_v6 = format!("{}-out", lab.var("LAB_RTR_V6"));
    let base_map = route_map_text(&driver, &out_v4).await;
    let sessions = lab.bgp_connections();
    let hooked = render(&driver, &[&out_v4, &out_v6]).await;
    driver.apply(&hooked).await.expect("frr-reload.py applies");
    assert!(driver.in_sync(&hooked).await.unwrap());
    lb(&lab, "add", SVC_V4);
    lab.wait_route(SVC_V4, "present", 30)
        .expect("Service at the router");
    let plain = render(&driver, &[]).await;
    driver.apply(&plain).await.expect("unhook applies");
    lab.wait_route(SVC_V4, "absent", 30)
        .expect("dropped again once unhooked");
    assert_eq!(route_map_text(&driver, &out_v4).await, base_map);
    assert_eq!(lab.bgp_connections(), sessions, "a BGP session was reset");
}
