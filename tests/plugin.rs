//! `kubectl routelb` through the real kubectl (a plugin found on PATH) against the test API
//! server, with the real allocator writing what it writes: the views join what the allocator
//! and (here, hand-written) agents' NodeStates report.

mod support {
    pub mod allocator;
    pub mod api;
    pub mod lock;
    pub mod objects;
    pub mod wait;
}

use std::path::PathBuf;
use std::process::{Command, Output};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use routelb::api::{AddressPool, NodeState, RoutingPolicy, annotations};
use serde_json::{Value, json};
use support::allocator::Allocator;
use support::api::*;
use support::lock;
use support::objects::*;

/// The kubectl of the test control plane (integration/k8s/control-plane.sh builds it).
fn kubectl() -> PathBuf {
    if let Some(k) = std::env::var_os("ROUTELB_KUBECTL") {
        return k.into();
    }
    let cache = std::env::var_os("ROUTELB_K8S_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/routelb"));
    cache.join("kubectl-v1.20.2")
}

/// A PATH on which kubectl finds the plugin: this build, linked as `kubectl-routelb`.
fn plugin_path() -> String {
    let dir = std::env::temp_dir().join(format!("routelb-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("kubectl-routelb");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_routelb"), &link).unwrap();
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn kubectl_routelb(args: &[&str]) -> Output {
    Command::new(kubectl())
        .arg("routelb")
        .args(args)
        .env("PATH", plugin_path())
        .output()
        .expect("kubectl runs")
}

fn ok_stdout(args: &[&str]) -> String {
    let out = kubectl_routelb(args);
    assert!(
        out.status.success(),
        "kubectl routelb {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_of(args: &[&str]) -> Value {
    let text = ok_stdout(args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}\n{text}"))
}

fn row<'a>(rows: &'a Value, name: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name} in {rows:#}"))
}

async fn create<K>(api: &Api<K>, v: Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(v).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap()
}

/// A node's Lease as its agent keeps it, renewed `secs_ago`, valid `duration` seconds.
fn lease(node: &str, secs_ago: i64, duration: i32) -> Value {
    let renew = k8s_openapi::jiff::Timestamp::now()
        - k8s_openapi::jiff::SignedDuration::from_secs(secs_ago);
    json!({
        "metadata": { "name": routelb::membership::lease_name(node),
                      "namespace": routelb::membership::DEFAULT_NAMESPACE,
                      "labels": { routelb::membership::LEASE_LABEL: "true" } },
        "spec": { "holderIdentity": node, "renewTime": format!("{}", renew.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")),
                  "leaseDurationSeconds": duration },
    })
}

struct Fixture {
    c: Client,
    ns: String,
}

impl Fixture {
    fn n(&self, i: usize) -> String {
        format!("{}-n{i}", self.ns)
    }

    async fn node_state(&self, node: &str, status: Value) {
        let api: Api<NodeState> = Api::all(self.c.clone());
        create(
            &api,
            json!({ "apiVersion": "routelb.io/v1alpha1", "kind": "NodeState",
                             "metadata": { "name": node }, "spec": {} }),
        )
        .await;
        api.patch_status(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .unwrap();
    }

    /// Nodes, NodeStates and Leases of an earlier run that failed half-way.
    async fn remove_leftovers(c: &Client) {
        let dp = DeleteParams::default();
        let lp = kube::api::ListParams::default();
        let earlier = |name: &str| name.contains("plug-");
        let states: Api<NodeState> = Api::all(c.clone());
        for s in states.list(&lp).await.unwrap().items {
            if earlier(&s.name_any()) {
                let _ = states.delete(&s.name_any(), &dp).await;
            }
        }
        let nodes: Api<Node> = Api::all(c.clone());
        for n in nodes.list(&lp).await.unwrap().items {
            if earlier(&n.name_any()) {
                let _ = nodes.delete(&n.name_any(), &dp).await;
            }
        }
        let leases: Api<Lease> = Api::namespaced(c.clone(), routelb::membership::DEFAULT_NAMESPACE);
        for l in leases.list(&lp).await.unwrap().items {
            if earlier(&l.name_any()) {
                let _ = leases.delete(&l.name_any(), &dp).await;
            }
        }
    }

    async fn cleanup(&self) {
        let dp = DeleteParams::default();
        for i in 1..=2 {
            let _ = Api::<Node>::all(self.c.clone())
                .delete(&self.n(i), &dp)
                .await;
            let _ = Api::<NodeState>::all(self.c.clone())
                .delete(&self.n(i), &dp)
                .await;
            let _ =
                Api::<Lease>::namespaced(self.c.clone(), routelb::membership::DEFAULT_NAMESPACE)
                    .delete(&routelb::membership::lease_name(&self.n(i)), &dp)
                    .await;
        }
        for p in ["edge", "lan"] {
            delete_pool(&self.c, &format!("{}-{p}", self.ns)).await;
        }
        let _ = Api::<RoutingPolicy>::all(self.c.clone())
            .delete(&format!("{}-bgp", self.ns), &dp)
            .await;
    }
}

fn cond(type_: &str, status: &str, message: &str) -> Value {
    json!({ "type": type_, "status": status, "reason": "Test", "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z" })
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_routelb_explains_services_nodes_and_pools() {
    let api_server = lock::api_server();
    let c = client(&api_server).await;
    let ns = unique("plug");
    ensure_namespace(&c, &ns, &[]).await;
    Fixture::remove_leftovers(&c).await;
    let f = Fixture {
        c: c.clone(),
        ns: ns.clone(),
    };
    // Two routed addresses for three Services that want them; a local pool beside.
    let pools: Api<AddressPool> = Api::all(c.clone());
    create(
        &pools,
        json!({ "apiVersion": "routelb.io/v1alpha1", "kind": "AddressPool",
        "metadata": { "name": format!("{ns}-edge"), "labels": { "announce": ns } },
        "spec": { "addresses": ["10.10.200.0/31"], "autoAssign": false,
                  "allocation": { "namespaces": [ns] } } }),
    )
    .await;
    create(
        &pools,
        json!({ "apiVersion": "routelb.io/v1alpha1", "kind": "AddressPool",
        "metadata": { "name": format!("{ns}-lan") },
        "spec": { "addresses": ["10.10.201.0/30"], "mode": "local", "autoAssign": false,
                  "allocation": { "namespaces": [ns] } } }),
    )
    .await;
    create(
        &Api::<RoutingPolicy>::all(c.clone()),
        json!({ "apiVersion": "routelb.io/v1alpha1",
        "kind": "RoutingPolicy", "metadata": { "name": format!("{ns}-bgp") },
        "spec": { "protocols": ["bgp"], "poolSelector": { "matchLabels": { "announce": ns } } } }),
    )
    .await;
    // n1's agent is alive; n2's stopped renewing a minute ago.
    let nodes: Api<Node> = Api::all(c.clone());
    let leases: Api<Lease> = Api::namespaced(c.clone(), routelb::membership::DEFAULT_NAMESPACE);
    for (i, ago, duration) in [(1, 0, 3600), (2, 60, 1)] {
        create(&nodes, json!({ "metadata": { "name": f.n(i) } })).await;
        create(&leases, lease(&f.n(i), ago, duration)).await;
    }
    let alloc = Allocator::start(&ns, "a", &[]);
    let edge = format!("{ns}-edge");
    for (name, pool) in [
        ("web", &edge),
        ("api", &edge),
        ("full", &edge),
        ("local", &format!("{ns}-lan")),
    ] {
        create_service(
            &c,
            service(
                &ns,
                name,
                json!({ "metadata": { "annotations": { annotations::POOL: pool } } }),
            ),
        )
        .await;
        if name != "full" {
            wait_ips(&c, &ns, name, 1).await;
        }
    }
    wait_annotation(&c, &ns, "full", annotations::ALLOCATION_ERROR, |v| {
        v.is_some()
    })
    .await;
    let ip = |name: &str| {
        let c = c.clone();
        let ns = ns.clone();
        let name = name.to_string();
        async move { wait_ips(&c, &ns, &name, 1).await.remove(0) }
    };
    let (web, api, local) = (ip("web").await, ip("api").await, ip("local").await);
    // What the agents would report: n1 holds both routed addresses and its daemon advertises
    // web's to its up peer but api's to nobody; n2 holds the local one, its daemon refused the
    // fragment.
    f.node_state(&f.n(1), json!({
        "daemon": "frr", "addressCount": 2,
        "interfaces": [{ "interface": "kube-lb0", "addresses": [format!("{web}/32"), format!("{api}/32")] }],
        "conditions": [cond("Ready", "True", "ok"), cond("Advertised", "False", "route-map EDGE-OUT denies it")],
        "routing": { "summary": "1/2", "sessionsUp": 1, "sessionsTotal": 2, "sessions": [] },
        "advertisement": {
            "peers": [{ "protocol": "bgp", "peer": "neighbor 10.0.0.1", "family": "ipv4", "up": true,
                        "advertised": 1, "missing": 1, "missingPrefixes": [format!("{api}/32")] }],
            "unadvertised": [format!("{api}/32")] },
    })).await;
    f.node_state(&f.n(2), json!({
        "daemon": "bird", "addressCount": 1,
        "interfaces": [{ "interface": "eth0", "addresses": [format!("{local}/24")] }],
        "lastApply": { "result": "Refused", "time": "2026-12-07T00:00:00Z", "message": "syntax error, line 3" },
        "conditions": [cond("Ready", "False", "see the other conditions"),
                       cond("DaemonConfigured", "False", "bird refused the fragment: syntax error, line 3")],
    })).await;
    wait_annotation(&c, &ns, "web", annotations::ANNOUNCING, |v| v.is_some()).await;

    // status: problems first, each with its reason; the peers that get each Service.
    let status = json_of(&["status", "-n", &ns, "-o", "json"]);
    let names: Vec<&str> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "full", "local", "web"], "{status:#}");
    let api_row = row(&status, "api");
    assert_eq!(api_row["health"], "error");
    let problem = api_row["problem"].as_str().unwrap();
    assert!(
        problem.contains("route-map EDGE-OUT denies it"),
        "{problem}"
    );
    assert!(
        row(&status, "full")["problem"]
            .as_str()
            .unwrap()
            .starts_with("no address:")
    );
    let web_row = row(&status, "web");
    assert_eq!(web_row["health"], "ok");
    assert_eq!(
        web_row["announcedBy"],
        json!([format!("{}/kube-lb0", f.n(1))])
    );
    assert_eq!(
        web_row["peers"],
        json!([format!("{} → neighbor 10.0.0.1", f.n(1))])
    );
    // The namespace of the context, and of every namespace.
    let everywhere = ok_stdout(&["status", "-A"]);
    assert!(everywhere.starts_with("NAMESPACE"), "{everywhere}");
    assert!(
        everywhere
            .lines()
            .any(|l| l.starts_with(&ns) && l.contains(" web ")),
        "{everywhere}"
    );
    let context_namespace = ok_stdout(&["status"]);
    assert!(
        !context_namespace.contains(" web "),
        "without -n, the context's namespace (default): {context_namespace}"
    );
    let missing = kubectl_routelb(&["why", "no-such-service", "-n", &ns]);
    assert!(!missing.status.success(), "a Service that does not exist");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
    let table = ok_stdout(&["status", "--namespace", &ns]);
    let first = table.lines().nth(1).unwrap();
    assert!(
        first.starts_with("api") && first.contains("ERROR"),
        "{table}"
    );

    // nodes: the expired agent and the refused apply.
    let nodes_view: Value = serde_yaml::from_str(&ok_stdout(&["nodes", "-o", "yaml"])).unwrap();
    let n1 = row(&nodes_view, &f.n(1));
    assert_eq!(
        (n1["agent"].as_str(), n1["sessions"].as_str()),
        (Some("live"), Some("1/2"))
    );
    let n2 = row(&nodes_view, &f.n(2));
    assert_eq!(
        (n2["agent"].as_str(), n2["health"].as_str()),
        (Some("expired"), Some("error"))
    );
    assert!(
        n2["problems"]
            .to_string()
            .contains("bird refused the fragment"),
        "{n2:#}"
    );
    assert_eq!(n2["lastApply"]["result"], "Refused");

    // pools: the full one, and who waits for it.
    let pools_view = json_of(&["pools", "-o", "json"]);
    let edge_row = row(&pools_view, &edge);
    assert_eq!(
        (
            edge_row["usedPercent"].as_f64(),
            edge_row["waitingServices"].as_u64()
        ),
        (Some(100.0), Some(1))
    );
    assert_eq!(
        edge_row["health"], "error",
        "full, and a Service waits for it"
    );
    let pools_table = ok_stdout(&["pools"]);
    assert!(
        pools_table
            .lines()
            .any(|l| l.starts_with(&edge) && l.contains("[####################] 100%")),
        "{pools_table}"
    );

    // why: the chain, and the Events the allocator published.
    let why = ok_stdout(&["why", "full", "-n", &ns]);
    assert!(
        why.starts_with(&format!("{ns}/full: ERROR no address:")),
        "{why}"
    );
    assert!(
        why.lines()
            .any(|l| l.contains("event") && l.contains("AllocationFailed")),
        "{why}"
    );
    let why_web = json_of(&["why", &format!("{ns}/web"), "-o", "json"]);
    assert_eq!(why_web["health"], "ok", "{why_web:#}");
    let whats: Vec<&str> = why_web["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["what"].as_str().unwrap())
        .collect();
    assert_eq!(
        whats,
        [
            "service", "pool", "address", "pool", "policy", "nodes", "peers"
        ]
    );
    let why_api = json_of(&["why", &format!("{ns}/api"), "-o", "json"]);
    assert!(
        why_api["verdict"]
            .as_str()
            .unwrap()
            .starts_with("not announced:"),
        "{why_api:#}"
    );

    // kubectl's flags: an explicit kubeconfig, and a context that does not exist.
    let kubeconfig = std::env::var("KUBECONFIG").unwrap();
    let out = Command::new(kubectl())
        .args(["routelb", "status", "-n", &ns, "--kubeconfig", &kubeconfig])
        .env("PATH", plugin_path())
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("web"));
    let out = kubectl_routelb(&["status", "--context", "no-such-context"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-such-context"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What docs/operations.md shows (cargo test --test plugin -- --nocapture).
    for args in [
        vec!["status", "-n", ns.as_str()],
        vec!["nodes"],
        vec!["pools"],
        vec!["why", "api", "-n", ns.as_str()],
    ] {
        eprintln!("$ kubectl routelb {}\n{}", args.join(" "), ok_stdout(&args));
    }
    drop(alloc);
    f.cleanup().await;
}
