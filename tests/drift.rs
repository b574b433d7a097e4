//! Drift repaired in seconds: `routelb standalone` on a lab node (FRR, eBGP to the router)
//! announces a Service, then another tool takes routelb's objects away — frr-reload.py of the
//! base file (as frr-k8s reconciles), a person's `no ip prefix-list`, a `no redistribute` in
//! `router bgp`. The resync is five minutes away: only the drift probe can notice. Each time
//! the objects are back in bgpd, the route is back at the router, and a warning names what was
//! lost. The agent reports a repair on its NodeState (Event, status, metric). Needs root,
//! iproute2, frr and frr-pythontools; the agent test also the test API server (KUBECONFIG).

#[allow(dead_code)] // each test file uses part of the support code
mod support {
    pub mod allocator;
    pub mod api;
    pub mod apiproxy;
    pub mod cluster;
    pub mod daemon;
    pub mod files;
    pub mod lab;
    pub mod lock;
    pub mod objects;
    pub mod script;
    pub mod wait;
}

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::files::scratch;
use support::lab::Lab;
use support::wait;

const PREFIX: &str = "203.0.113.1/32";
const LIST: &str = "ip prefix-list ROUTELB-POOL-demo-V4";
const REDISTRIBUTE: &str = "redistribute connected route-map ROUTELB-BGP-V4";
const RESTORED: &str = "removed or changed by another tool: restored";

/// `routelb standalone` in the lab's node, its log in a file; killed when dropped (the log is
/// printed when a test fails).
struct Standalone {
    child: Child,
    log: PathBuf,
}

impl Standalone {
    fn start(lab: &Lab, dir: &Path) -> Standalone {
        let log = dir.with_extension("log");
        let child = Command::new("ip")
            .args(["netns", "exec", lab.var("LAB_NODE_NS")])
            .arg(env!("CARGO_BIN_EXE_routelb"))
            .args(["standalone", "--config", dir.to_str().unwrap()])
            .args(["--resync", "300s", "--drift-probe", "500ms"])
            .args(lab.daemon().flags())
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Standalone { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The repair warnings logged so far that name `object`.
    fn repairs_naming(&self, object: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains(RESTORED) && l.contains(object))
            .count()
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- routelb standalone:\n{}", self.log_text());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

fn bgpd_config(lab: &Lab) -> String {
    let out = Command::new("vtysh")
        .args(["-N", lab.var("LAB_NODE_FRR"), "-d", "bgpd"])
        .args(["-c", "show running-config"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn node_vtysh(lab: &Lab, commands: &[&str]) {
    let mut cmd = Command::new("vtysh");
    cmd.args(["-N", lab.var("LAB_NODE_FRR")]);
    for c in commands {
        cmd.args(["-c", c]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "vtysh {commands:?}: {out:?}");
}

/// Polls `f` every 20 ms until it holds, for at most `limit`; false when it never did.
fn until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    wait::up_to(limit)
        .every(Duration::from_millis(20))
        .until_blocking(|| f().then_some(()))
        .is_some()
}

fn whole(config: &str) -> bool {
    config.contains(LIST) && config.contains(REDISTRIBUTE)
}

/// After `tool` removed something: a warning naming `lost` (one more than before), routelb's
/// objects whole in bgpd again, and the Service's route at the router.
fn expect_repair(lab: &Lab, running: &Standalone, lost: &str, tool: impl FnOnce()) {
    let before = running.repairs_naming(lost);
    tool();
    assert!(
        until(Duration::from_secs(20), || running.repairs_naming(lost)
            > before),
        "no warning naming '{lost}'"
    );
    assert!(
        until(Duration::from_secs(20), || whole(&bgpd_config(lab))),
        "not repaired:\n{}",
        bgpd_config(lab)
    );
    lab.wait_route(PREFIX, "present", 30)
        .expect("the route back at the router");
}

#[test]
fn objects_another_tool_removes_are_restored_without_waiting_for_the_resync() {
    let lab = Lab::up("drt", "frr", "bgp");
    let dir = scratch("drift");
    std::fs::write(
        dir.join("pool.yaml"),
        "apiVersion: routelb.io/v1alpha1\nkind: AddressPool\nmetadata: {name: demo}\nspec: {addresses: [\"203.0.113.0/28\"], avoidBuggyIPs: true}\n---\n\
         apiVersion: routelb.io/v1alpha1\nkind: RoutingPolicy\nmetadata: {name: demo}\nspec: {protocols: [bgp]}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: default}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n",
    )
    .unwrap();
    let running = Standalone::start(&lab, &dir);
    lab.wait_route(PREFIX, "present", 60)
        .expect("the Service's route at the router");
    assert!(whole(&bgpd_config(&lab)));
    let applied_at_start = running.log_text().matches("fragment applied").count();

    // (a) frr-k8s's way: frr-reload.py of its own file, which holds none of routelb's objects.
    expect_repair(&lab, &running, LIST, || {
        let out = Command::new("python3")
            .args(["/usr/lib/frr/frr-reload.py", "--reload"])
            .args(["--pathspace", lab.var("LAB_NODE_FRR")])
            .args(["--bindir", lab.var("LAB_FRR_BINDIR")])
            .arg(lab.var("LAB_NODE_FRR_CONF"))
            .output()
            .unwrap();
        assert!(out.status.success(), "frr-reload.py: {out:?}");
    });
    // (b) A person removes routelb's prefix list.
    expect_repair(&lab, &running, LIST, || {
        node_vtysh(
            &lab,
            &[
                "configure terminal",
                "no ip prefix-list ROUTELB-POOL-demo-V4",
            ],
        )
    });
    // (c) A person removes the redistribute line from the team's router bgp.
    expect_repair(&lab, &running, REDISTRIBUTE, || {
        node_vtysh(
            &lab,
            &[
                "configure terminal",
                &format!("router bgp {}", lab.var("LAB_NODE_AS")),
                "address-family ipv4 unicast",
                &format!("no {REDISTRIBUTE}"),
            ],
        )
    });
    assert_eq!(
        running.log_text().matches("fragment applied").count(),
        applied_at_start,
        "a repair says what was lost, never just 'fragment applied'"
    );
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The agent: a person deletes routelb's route-map on the node; the probe puts it back and
/// the agent says so on the node's NodeState — a `DriftRepaired` Warning Event,
/// `status.lastDriftRepair` naming the route-map, and the metric.
#[tokio::test(flavor = "multi_thread")]
async fn the_agent_reports_a_repair_on_the_node_state() {
    use kube::Api;
    use kube::api::{DeleteParams, PostParams};
    use routelb::api::{AddressPool, NodeState, RoutingPolicy};
    use serde_json::json;
    use support::{api, cluster, objects};

    let api_server = support::lock::api_server();
    let c = cluster::Cluster::up("drc", 1, "bgp", "frr");
    let client = api::client(&api_server).await;
    let ns = api::unique("drift");
    api::ensure_namespace(&client, &ns, &[]).await;
    let (pool, policy) = (api::unique("dp"), api::unique("dpol"));
    let x = c.index();
    let p: AddressPool = serde_json::from_value(json!({
        "apiVersion": "routelb.io/v1alpha1", "kind": "AddressPool",
        "metadata": { "name": pool, "labels": { "routelb-test": ns } },
        "spec": { "addresses": [format!("198.18.{x}.0/27")], "mode": "routed" },
    }))
    .unwrap();
    let pools: Api<AddressPool> = Api::all(client.clone());
    pools.create(&PostParams::default(), &p).await.unwrap();
    let rp: RoutingPolicy = serde_json::from_value(json!({
        "apiVersion": "routelb.io/v1alpha1", "kind": "RoutingPolicy",
        "metadata": { "name": policy },
        "spec": { "poolSelector": { "matchLabels": { "routelb-test": ns } }, "protocols": ["bgp"] },
    }))
    .unwrap();
    let policies: Api<RoutingPolicy> = Api::all(client.clone());
    policies.create(&PostParams::default(), &rp).await.unwrap();
    let _allocator = support::allocator::Allocator::start(
        &api::unique("alloc"),
        "alloc",
        &["--node-lease-namespace", &ns],
    );
    // The NodeState and Events of an earlier run on this cluster must not answer for this one.
    let node = c.node_name(1);
    let states: Api<NodeState> = Api::all(client.clone());
    let _ = states.delete(&node, &DeleteParams::default()).await;
    let repaired_events = || async {
        objects::event_reasons(&client, "default", &node)
            .await
            .iter()
            .filter(|r| *r == "DriftRepaired")
            .count()
    };
    let events_before = repaired_events().await;
    let flags = ["--resync", "300s", "--drift-probe", "500ms"];
    let agent = cluster::Agent::start(&c, 1, &ns, &flags);
    let svc = objects::service(
        &ns,
        "web",
        json!({ "metadata": { "annotations": { "routelb.io/pool": pool } }, "spec": {} }),
    );
    objects::create_service(&client, svc).await;
    let ip = objects::wait_ips(&client, &ns, "web", 1).await.remove(0);
    let host = format!("{ip}/32");
    c.wait_nexthops(&host, 1, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_tail()));

    let support::daemon::NodeDaemon::Frr { pathspace } = c.daemon(1) else {
        unreachable!("an FRR cluster")
    };
    let out = Command::new("vtysh")
        .args(["-N", &pathspace, "-c", "configure terminal"])
        .args(["-c", "no route-map ROUTELB-BGP-V4"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let repaired = wait::up_to(Duration::from_secs(20))
        .until(|| async {
            let st = states.get(&node).await.ok()?.status?;
            st.last_drift_repair.filter(|r| {
                r.lost
                    .iter()
                    .any(|l| l.contains("route-map ROUTELB-BGP-V4"))
            })
        })
        .await
        .unwrap_or_else(|| panic!("no lastDriftRepair\n{}", agent.log_tail()))
        .value;
    assert_eq!(repaired.error, None, "{repaired:?}");
    // Cluster-scoped objects' Events live in `default`.
    wait::up_to(Duration::from_secs(20))
        .until(|| async { (repaired_events().await > events_before).then_some(()) })
        .await
        .expect("a DriftRepaired Event on the NodeState");
    c.wait_nexthops(&host, 1, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("route not back: {e}\n{}", agent.log_tail()));
    let metrics = Command::new("ip")
        .args(["netns", "exec", c.node_var(1, "NS")])
        .args(["curl", "-s", "http://127.0.0.1:9091/metrics"])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("routelb_agent_drift_repairs_total{daemon=\"bgpd\"}")),
        "{metrics}"
    );
    let _ = policies.delete(&policy, &DeleteParams::default()).await;
    let _ = pools.delete(&pool, &DeleteParams::default()).await;
}
