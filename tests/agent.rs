//! The node agent end to end: real API server, allocator, agents in network-namespace nodes
//! with FRR or BIRD, and an upstream FRR router whose kernel table and neighbour cache are the
//! judges. Needs root, FRR, BIRD and the test API server (KUBECONFIG), as CI provides.

mod support {
    pub mod allocator;
    pub mod api;
    pub mod apiproxy;
    pub mod cluster;
    pub mod daemon;
    pub mod files;
    #[allow(dead_code)] // the drain tests use the load, not its failure analysis
    pub mod load;
    pub mod lock;
    pub mod objects;
    pub mod script;
    pub mod setup;
    pub mod wait;
    pub mod web;
}

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use routelb::api::{AddressPool, NodeState, NodeStateStatus, RoutingPolicy, annotations};
use serde_json::json;
use support::api::unique;
use support::cluster::{Agent, Cluster};
use support::load::Load;
use support::objects::{self, create_service, service};
use support::setup::{Setup, logs};
use support::web::WebServer;
use support::{lock, wait};

/// Whether NodeState lists `ip`'s host route among the announced prefixes (in a run or alone).
fn announced(st: &NodeStateStatus, ip: &str) -> bool {
    let ip: std::net::IpAddr = ip.parse().expect("an address");
    let len = if ip.is_ipv6() { 128 } else { 32 };
    st.announced_prefixes.iter().any(|p| {
        routelb::api::address_runs::decode(p)
            .is_some_and(|(first, last, l)| l == len && first <= ip && ip <= last)
    })
}

fn host(prefix_of: &str) -> String {
    if prefix_of.contains(':') {
        format!("{prefix_of}/128")
    } else {
        format!("{prefix_of}/32")
    }
}

const FAST: [&str; 4] = ["--lease-duration", "1500ms", "--renew-period", "300ms"];

/// Routed addresses over `proto`: every node announces (ECMP at the router), the annotation
/// and NodeState say so, another service changes no daemon configuration, deletion withdraws.
async fn routed(proto: &str, daemon: &str, name: &str) {
    let api_server = lock::api_server();
    let c = Cluster::up(name, 3, proto, daemon);
    let s = Setup::new(&api_server, &c, proto).await;
    let agents = s.agents(&c, &FAST).await;
    let ips = s
        .service(
            "web",
            &s.routed,
            json!({ "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"] }),
        )
        .await;
    for ip in &ips {
        c.wait_nexthops(&host(ip), 3, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    }
    let ann = s
        .wait_announcing("web", |a| a.split(',').count() == 3)
        .await;
    for i in 1..=3 {
        assert!(
            ann.contains(&format!("{}/kube-lb0", c.node_name(i))),
            "{ann}"
        );
    }
    objects::wait_event(&s.client, &s.ns, "web", "Announcing").await;
    let state = wait::up_to(Duration::from_secs(10))
        .until(|| async {
            let st = s.node_state(&c.node_name(1)).await?.status?;
            ips.iter().all(|ip| announced(&st, ip)).then_some(st)
        })
        .await
        .expect("NodeState of node 1 lists both addresses")
        .value;
    assert_eq!(state.daemon.as_deref(), Some(daemon));
    assert!(state.address_count >= 2, "{state:?}");
    assert!(state.fragment_hash.is_some());
    let ready = state
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True", "{state:?}");
    // Its sessions with the router, read from the daemon, all up.
    let st = s
        .wait_node_state(&c.node_name(1), |st| {
            st.routing
                .as_ref()
                .is_some_and(|r| r.sessions_total > 0 && r.sessions_up == r.sessions_total)
        })
        .await
        .unwrap_or_else(|| panic!("sessions never all up\n{}", logs(&agents)));
    let kinds: std::collections::BTreeSet<String> = st
        .routing
        .unwrap()
        .sessions
        .into_iter()
        .map(|s| s.protocol)
        .collect();
    let want: &[&str] = if proto == "bgp" {
        &["bgp"]
    } else {
        &["ospf", "ospf6"]
    };
    assert_eq!(kinds, want.iter().map(|k| k.to_string()).collect());

    // Service churn reaches netlink only: no daemon apply for a second service.
    let applies = |a: &Agent| {
        std::fs::read_to_string(&a.log)
            .unwrap_or_default()
            .matches("fragment applied")
            .count()
    };
    let before: Vec<usize> = agents.iter().map(applies).collect();
    let more = s.service("api", &s.routed, json!({})).await;
    c.wait_nexthops(&host(&more[0]), 3, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(agents.iter().map(applies).collect::<Vec<_>>(), before);

    s.delete_service("web").await;
    for ip in &ips {
        c.wait_nexthops(&host(ip), 0, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    }
    for i in 1..=3 {
        assert!(
            !c.ip_node(i, &["addr", "show", "kube-lb0"])
                .contains(&ips[0])
        );
    }
    s.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn routed_bgp_frr_dual_stack_ecmp() {
    routed("bgp", "frr", "ag-bgp").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn routed_ospf_frr_dual_stack_ecmp() {
    routed("ospf", "frr", "ag-ospf").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn routed_bgp_bird_dual_stack_ecmp() {
    routed("bgp", "bird", "ag-bird").await;
}

/// Routing health as the operator sees it: the node's BGP sessions in its NodeState
/// (`routing`, the `SessionsUp` condition), an Event when one goes down and when it comes
/// back, a metric per session. The router's port towards the node goes down; the session
/// times out (hold time 9 s) and the next look (every 10 s) reports it.
#[tokio::test(flavor = "multi_thread")]
async fn routing_sessions_in_nodestate_events_and_metrics() {
    let api_server = lock::api_server();
    let c = Cluster::up("ag-health", 1, "bgp", "frr");
    let s = Setup::new(&api_server, &c, "bgp").await;
    let node = c.node_name(1);
    // The NodeState and Events of an earlier run on this API server must not answer for this one.
    let states: Api<NodeState> = Api::all(s.client.clone());
    let _ = states.delete(&node, &DeleteParams::default()).await;
    let count = |reason: &'static str| {
        let (client, node) = (s.client.clone(), node.clone());
        async move {
            objects::event_reasons(&client, "default", &node)
                .await
                .iter()
                .filter(|r| *r == reason)
                .count()
        }
    };
    let (downs, ups) = (
        count("RoutingSessionDown").await,
        count("RoutingSessionUp").await,
    );
    let agents = s.agents(&c, &FAST).await;
    let summary = |want: &'static str| {
        move |st: &NodeStateStatus| st.routing.as_ref().is_some_and(|r| r.summary == want)
    };
    let wait_long = |pred: Box<dyn Fn(&NodeStateStatus) -> bool + Send + Sync>| {
        let states = states.clone();
        let node = node.clone();
        async move {
            wait::up_to(Duration::from_secs(45))
                .until(|| async {
                    let st = states.get(&node).await.ok()?.status?;
                    pred(&st).then_some(st)
                })
                .await
                .map(|w| w.value)
        }
    };
    let st = wait_long(Box::new(summary("2/2")))
        .await
        .unwrap_or_else(|| panic!("both sessions up\n{}", logs(&agents)));
    let cond = |st: &NodeStateStatus| {
        st.conditions
            .iter()
            .find(|c| c.type_ == "SessionsUp")
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    assert_eq!(cond(&st), Some(("True".into(), "AllUp".into())));
    let r = st.routing.unwrap();
    assert!(r.sessions.iter().all(|x| x.state == "Established"), "{r:?}");

    let port = c.node_var(1, "RTR_IF").to_string();
    c.ip_in(c.var("CLUSTER_RTR_NS"), &["link", "set", &port, "down"]);
    let st = wait_long(Box::new(summary("0/2")))
        .await
        .unwrap_or_else(|| panic!("sessions never reported down\n{}", logs(&agents)));
    assert_eq!(cond(&st).unwrap().1, "SessionsDown");
    wait::up_to(Duration::from_secs(20))
        .until(|| async { (count("RoutingSessionDown").await > downs).then_some(()) })
        .await
        .expect("a RoutingSessionDown Event on the NodeState");

    c.ip_in(c.var("CLUSTER_RTR_NS"), &["link", "set", &port, "up"]);
    wait_long(Box::new(summary("2/2")))
        .await
        .unwrap_or_else(|| panic!("sessions never back\n{}", logs(&agents)));
    wait::up_to(Duration::from_secs(20))
        .until(|| async { (count("RoutingSessionUp").await > ups).then_some(()) })
        .await
        .expect("a RoutingSessionUp Event on the NodeState");
    let metrics = std::process::Command::new("ip")
        .args(["netns", "exec", c.node_var(1, "NS")])
        .args(["curl", "-s", "http://127.0.0.1:9091/metrics"])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    let up_series = metrics
        .lines()
        .filter(|l| l.starts_with("routelb_agent_routing_session_up{") && l.ends_with(" 1"))
        .count();
    assert_eq!(up_series, 2, "{metrics}");
    assert!(
        metrics.lines().any(
            |l| l.starts_with("routelb_agent_routing_session_transitions_total{")
                && l.contains("change=\"down\"")
        ),
        "{metrics}"
    );
    s.cleanup().await;
}

/// Whether the router's BGP paths to `prefix` carry the GRACEFUL_SHUTDOWN community.
fn router_sees_graceful_shutdown(c: &Cluster, prefix: &str) -> bool {
    let out = std::process::Command::new("vtysh")
        .args(["-N", c.var("CLUSTER_RTR_FRR")])
        .args(["-c", &format!("show bgp ipv4 unicast {prefix} json")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains("gracefulShutdown")
        || text.contains("graceful-shutdown")
        || text.contains("65535:0")
}

/// Drain without loss, as the router sees it: a cordoned node's route first carries the
/// GRACEFUL_SHUTDOWN community, then (after the drain time) is withdrawn; uncordoned, the node
/// announces again; a named taint drains like a cordon; SIGTERM drains before the agent
/// leaves; a node labelled exclude-from-external-load-balancers never announces.
#[tokio::test(flavor = "multi_thread")]
async fn drain_lowers_preference_then_withdraws() {
    use k8s_openapi::api::core::v1::Node;
    let api_server = lock::api_server();
    let c = Cluster::up("ag-drain", 2, "bgp", "frr");
    let s = Setup::new(&api_server, &c, "bgp").await;
    let nodes: Api<Node> = Api::all(s.client.clone());
    for i in 1..=2 {
        let _ = nodes
            .delete(&c.node_name(i), &DeleteParams::default())
            .await;
        let n: Node =
            serde_json::from_value(json!({ "metadata": { "name": c.node_name(i) } })).unwrap();
        nodes.create(&PostParams::default(), &n).await.unwrap();
    }
    let patch_node = |i: usize, patch: serde_json::Value| {
        let (nodes, name) = (nodes.clone(), c.node_name(i));
        async move {
            nodes
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    };
    let mut args = FAST.to_vec();
    args.extend([
        "--drain-time",
        "4s",
        "--drain-taint",
        "example.com/maintenance",
    ]);
    let mut agents = s.agents(&c, &args).await;
    let ips = s.service("web", &s.routed, json!({})).await;
    let prefix = host(&ips[0]);
    let paths = |n: usize| {
        let c = &c;
        let prefix = prefix.clone();
        async move { c.wait_nexthops(&prefix, n, Duration::from_secs(30)).await }
    };
    paths(2)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    assert!(!router_sees_graceful_shutdown(&c, &prefix));
    let drain_condition = |st: &NodeStateStatus| {
        st.conditions
            .iter()
            .find(|c| c.type_ == "Draining")
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
            .unwrap_or_default()
    };

    // Cordoned: the community first, then the route goes.
    patch_node(1, json!({ "spec": { "unschedulable": true } })).await;
    wait::up_to(Duration::from_secs(10))
        .until(|| async { router_sees_graceful_shutdown(&c, &prefix).then_some(()) })
        .await
        .unwrap_or_else(|| panic!("no GRACEFUL_SHUTDOWN at the router\n{}", logs(&agents)));
    // FRR (8.4, the lab's router) acts on the community by default: node 1's path gets local
    // preference 0, and traffic moves to node 2 while node 1 still holds the address.
    paths(1)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    assert!(
        router_sees_graceful_shutdown(&c, &prefix),
        "node 1's path is still there, less preferred"
    );
    let st = s
        .wait_node_state(&c.node_name(1), |st| drain_condition(st).1 == "Draining")
        .await
        .expect("node 1 reports Draining");
    assert_eq!(drain_condition(&st).2, "cordoned");
    s.wait_node_state(&c.node_name(1), |st| drain_condition(st).1 == "Drained")
        .await
        .expect("node 1 reports Drained");
    // Node 1's path, with its community, goes (node 2's never carried one).
    wait::up_to(Duration::from_secs(10))
        .until(|| async { (!router_sees_graceful_shutdown(&c, &prefix)).then_some(()) })
        .await
        .unwrap_or_else(|| panic!("node 1's path never withdrawn\n{}", logs(&agents)));
    let events = objects::event_reasons(&s.client, "default", &c.node_name(1)).await;
    assert!(events.iter().any(|r| r == "Draining"), "{events:?}");

    // Uncordoned: announced again, without the community.
    patch_node(1, json!({ "spec": { "unschedulable": null } })).await;
    paths(2)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    assert!(!router_sees_graceful_shutdown(&c, &prefix));

    // A named taint drains like a cordon.
    patch_node(2, json!({ "spec": { "taints": [{ "key": "example.com/maintenance", "effect": "NoSchedule" }] } })).await;
    paths(1)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    let st = s
        .wait_node_state(&c.node_name(2), |st| drain_condition(st).1 == "Drained")
        .await
        .expect("node 2 reports Drained");
    assert_eq!(drain_condition(&st).2, "tainted example.com/maintenance");
    patch_node(2, json!({ "spec": { "taints": null } })).await;
    paths(2)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));

    // SIGTERM: the community while the agent drains, then the route goes.
    let (first, _) = agents.split_at_mut(1);
    std::thread::scope(|scope| {
        let stopping = scope.spawn(|| first[0].stop_gracefully());
        let t0 = Instant::now();
        while !router_sees_graceful_shutdown(&c, &prefix) {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "no GRACEFUL_SHUTDOWN on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        stopping.join().unwrap();
    });
    paths(1).await.unwrap();

    // Starting on a node labelled exclude-from-external-load-balancers: never announced.
    patch_node(
        1,
        json!({ "metadata": { "labels": { "node.kubernetes.io/exclude-from-external-load-balancers": "" } } }),
    )
    .await;
    agents[0].spawn();
    let st = s
        .wait_node_state(&c.node_name(1), |st| {
            drain_condition(st).1 == "Drained" && st.last_apply.is_some()
        })
        .await
        .expect("node 1 reports Drained from its first pass");
    assert!(
        drain_condition(&st)
            .2
            .contains("exclude-from-external-load-balancers")
    );
    assert_eq!(c.nexthops(&prefix), 1);
    assert_eq!(st.address_count, 0, "{st:?}");
    for i in 1..=2 {
        let _ = nodes
            .delete(&c.node_name(i), &DeleteParams::default())
            .await;
    }
    s.cleanup().await;
}

/// A drain under continuous requests, over `proto`: the router moves new connections off the
/// draining node (BGP: GRACEFUL_SHUTDOWN, which FRR honours; OSPF: the largest metric) before
/// it withdraws, and back after the uncordon; no request finds no path.
async fn drain_under_requests(proto: &str, name: &str) {
    use k8s_openapi::api::core::v1::Node;
    let api_server = lock::api_server();
    let c = Cluster::up(name, 2, proto, "frr");
    let s = Setup::new(&api_server, &c, proto).await;
    let nodes: Api<Node> = Api::all(s.client.clone());
    let node1 = c.node_name(1);
    let _ = nodes.delete(&node1, &DeleteParams::default()).await;
    let n: Node = serde_json::from_value(json!({ "metadata": { "name": node1 } })).unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
    // Spread connections over both nodes by their ports, as a fabric does.
    let sysctl = std::process::Command::new("ip")
        .args(["netns", "exec", c.var("CLUSTER_RTR_NS")])
        .args(["sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1"])
        .status()
        .unwrap();
    assert!(sysctl.success());
    let _servers: Vec<WebServer> = (1..=2).map(|i| WebServer::start(&c, i)).collect();
    let mut args = FAST.to_vec();
    args.extend(["--drain-time", "3s"]);
    let agents = s.agents(&c, &args).await;
    let ips = s.service("web", &s.routed, json!({})).await;
    let prefix = host(&ips[0]);
    c.wait_nexthops(&prefix, 2, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    let target = std::net::SocketAddr::new(ips[0].parse().unwrap(), 8080);
    let load = Load::start(c.var("CLUSTER_RTR_NS"), target, 100).unwrap();
    let load_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let patch = |v: serde_json::Value| {
        let (nodes, node1) = (nodes.clone(), node1.clone());
        async move {
            nodes
                .patch(&node1, &PatchParams::default(), &Patch::Merge(&v))
                .await
                .unwrap();
        }
    };
    let t0 = Instant::now();
    patch(json!({ "spec": { "unschedulable": true } })).await;
    s.wait_node_state(&node1, |st| {
        st.conditions
            .iter()
            .any(|c| c.type_ == "Draining" && c.reason == "Drained")
    })
    .await
    .unwrap_or_else(|| panic!("never drained\n{}", logs(&agents)));
    c.wait_nexthops(&prefix, 1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    let drained = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let uncordoned = load_started.elapsed();
    patch(json!({ "spec": { "unschedulable": null } })).await;
    c.wait_nexthops(&prefix, 2, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = load.stop();
    println!(
        "drain under requests ({proto}): {}; cordon to withdrawn {drained:?}",
        report.summary()
    );
    assert!(
        report.sent > 300,
        "too few requests to judge: {}",
        report.sent
    );
    // No request finds no path or is refused: the router has the other node before this one
    // goes. A connection open at the moment the router changes its choice (when the route is
    // made less preferred, and when the node comes back) moves to the other node, which
    // resets it: a router without resilient hashing keeps no flow where it was; such a cut is
    // allowed then (CI saw one in each of those moments on a loaded machine), nothing else.
    let lost: Vec<_> = report.failures.iter().filter(|f| !f.connected).collect();
    let (during_drain, at_return): (Vec<_>, Vec<_>) =
        report.failures.iter().partition(|f| f.at < uncordoned);
    assert!(
        lost.is_empty(),
        "requests failed during the drain: {during_drain:?}; when the node came back: {at_return:?}\n{}",
        logs(&agents)
    );
    // Both nodes answered: the requests were spread, so node 1's share had to move.
    assert_eq!(report.answered_by.len(), 2, "{:?}", report.answered_by);
    let _ = nodes.delete(&node1, &DeleteParams::default()).await;
    s.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_under_requests_bgp() {
    drain_under_requests("bgp", "ag-drbgp").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_under_requests_ospf() {
    drain_under_requests("ospf", "ag-drospf").await;
}

/// Local addresses: one holder on the subnet, announced with GARP/NA; graceful and hard
/// failover move them; a dead agent's address expires with its lifetime.
/// Another tool rewrites a BIRD node's bird.conf without routelb's include and reloads BIRD:
/// the agent's next resync reports `BaseConfigNoInclude` in the node's NodeState, as a failure.
#[tokio::test(flavor = "multi_thread")]
async fn bird_base_without_the_include_is_reported_in_nodestate() {
    let api_server = lock::api_server();
    let c = Cluster::up("ag-bnoinc", 1, "bgp", "bird");
    let s = Setup::new(&api_server, &c, "bgp").await;
    let mut args = FAST.to_vec();
    args.extend(["--resync", "1s"]);
    let agents = s.agents(&c, &args).await;
    let ips = s.service("web", &s.routed, json!({})).await;
    c.wait_nexthops(&host(&ips[0]), 1, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    let node = c.node_name(1);
    s.wait_node_state(&node, |st| st.fragment_hash.is_some())
        .await
        .expect("the fragment is applied first");

    let conf = c.node_var(1, "BIRD_CONF");
    let rewritten: String = std::fs::read_to_string(conf)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("include"))
        .map(|l| l.replace("export where routelb_export_bgp();", "export none;") + "\n")
        .collect();
    std::fs::write(conf, rewritten).unwrap();
    let out = std::process::Command::new(c.node_var(1, "BIRDC"))
        .arg("configure")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("Reconfigur"), "{out}");

    let reported = |st: &NodeStateStatus| {
        st.conditions.iter().any(|c| {
            c.type_ == "DaemonConfigured"
                && c.status == "False"
                && c.message.contains("BaseConfigNoInclude")
        })
    };
    let st = s
        .wait_node_state(&node, reported)
        .await
        .unwrap_or_else(|| panic!("never reported\n{}", logs(&agents)));
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "False", "{st:?}");
    s.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn local_election_and_failover() {
    let api_server = lock::api_server();
    let c = Cluster::up("ag-local", 3, "bgp", "frr");
    let s = Setup::new(&api_server, &c, "bgp").await;
    let mut args = FAST.to_vec();
    args.extend(["--address-lifetime", "6s"]);
    let mut agents = s.agents(&c, &args).await;
    let ips = s
        .service(
            "lan",
            &s.local,
            json!({ "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"] }),
        )
        .await;
    let (v4, v6) = (ips[0].clone(), ips[1].clone());
    // Each address has one holder (ranked per address, so the two may differ).
    let single = |ip: &String, not: Option<usize>| {
        let ip = ip.clone();
        let c = &c;
        async move {
            wait::up_to(Duration::from_secs(20))
                .until(|| async {
                    let h = c.holders(&ip);
                    (h.len() == 1 && Some(h[0]) != not).then(|| h[0])
                })
                .await
                .map(|w| w.value)
        }
    };
    let holder = single(&v4, None)
        .await
        .unwrap_or_else(|| panic!("never one holder of {v4}\n{}", logs(&agents)));
    let holder6 = single(&v6, None)
        .await
        .unwrap_or_else(|| panic!("never one holder of {v6}\n{}", logs(&agents)));
    // On the subnet's interface with the subnet's length, and announced to the segment.
    assert!(
        c.ip_node(holder, &["addr", "show", "eth0"])
            .contains(&format!("{v4}/24"))
    );
    let mac = |i: usize| c.node_var(i, "MAC").to_lowercase();
    let neigh = wait::up_to(Duration::from_secs(5))
        .until(|| async { c.router_neigh(&v4).filter(|m| *m == mac(holder)) })
        .await
        .map(|w| w.value);
    assert!(
        neigh.is_some(),
        "the router never learned {v4} at node {holder} (GARP)"
    );
    // Unsolicited neighbour advertisements only update existing entries (RFC 4861 §7.2.5):
    // the router talks to the address first, and must then follow the moves below.
    c.ping_from_router(&v6);
    assert_eq!(c.router_neigh(&v6), Some(mac(holder6)));
    let announcing = |a: usize, b: usize| {
        let set: std::collections::BTreeSet<String> = [a, b]
            .iter()
            .map(|i| format!("{}/eth0", c.node_name(*i)))
            .collect();
        set.into_iter().collect::<Vec<_>>().join(",")
    };
    let want = announcing(holder, holder6);
    s.wait_announcing("lan", |a| a == want).await;

    // Graceful: the holder leaves; another node takes over at once and tells the segment.
    let t = Instant::now();
    agents[holder - 1].stop_gracefully();
    let next = single(&v4, Some(holder))
        .await
        .unwrap_or_else(|| panic!("no graceful takeover\n{}", logs(&agents)));
    eprintln!("graceful failover: {:?}", t.elapsed());
    let next6 = if holder6 == holder {
        single(&v6, Some(holder)).await.expect("v6 moved too")
    } else {
        holder6
    };
    let leases: Api<Lease> = Api::namespaced(s.client.clone(), &s.ns);
    assert!(
        leases
            .get_opt(&format!("routelb-node-{}", c.node_name(holder)))
            .await
            .unwrap()
            .is_none(),
        "the leaving agent deleted its lease"
    );
    for (ip, h) in [(&v4, next), (&v6, next6)] {
        wait::up_to(Duration::from_secs(5))
            .until(|| async { c.router_neigh(ip).filter(|m| *m == mac(h)) })
            .await
            .unwrap_or_else(|| panic!("the router never learned {ip} at node {h} (GARP/NA)"));
    }
    let want = announcing(next, next6);
    s.wait_announcing("lan", |a| a == want).await;
    if next6 == holder6 {
        // The IPv6 address did not move with the IPv4 one: move it too, so the unsolicited
        // neighbour advertisement is seen updating the router's entry.
        agents[holder6 - 1].stop_gracefully();
        let moved6 = single(&v6, Some(holder6)).await.expect("v6 moved");
        wait::up_to(Duration::from_secs(5))
            .until(|| async { c.router_neigh(&v6).filter(|m| *m == mac(moved6)) })
            .await
            .unwrap_or_else(|| panic!("the router never learned {v6} at node {moved6} (NA)"));
        agents[holder6 - 1].restart();
        single(&v6, None).await.expect("v6 settles");
    }
    objects::wait_event(&s.client, &s.ns, "lan", "AnnouncementMoved").await;

    // Hard: the new holder's node dies (agent killed, link down).
    let t = Instant::now();
    agents[next - 1].kill_hard();
    c.ip_node(next, &["link", "set", "eth0", "down"]);
    let third = wait::up_to(Duration::from_secs(15))
        .until(|| async {
            let h: Vec<usize> = c.holders(&v4).into_iter().filter(|&h| h != next).collect();
            (h.len() == 1).then(|| h[0])
        })
        .await
        .unwrap_or_else(|| panic!("no hard takeover\n{}", logs(&agents)))
        .value;
    eprintln!("hard failover (lease 1.5 s): {:?}", t.elapsed());
    assert!(third != holder && third != next);
    // The dead agent's address goes away by itself: its lifetime is not refreshed.
    wait::up_to(Duration::from_secs(15))
        .until(|| async { (!c.holders(&v4).contains(&next)).then_some(()) })
        .await
        .expect("the dead agent's address expired");

    // The first node comes back: the address returns to its best-ranked node, and only one
    // node holds it at any time after the move settles.
    agents[holder - 1].restart();
    wait::up_to(Duration::from_secs(15))
        .until(|| async { (c.holders(&v4) == vec![holder]).then_some(()) })
        .await
        .unwrap_or_else(|| {
            panic!(
                "the address did not return to node {holder}\n{}",
                logs(&agents)
            )
        });
    s.cleanup().await;
}

/// externalTrafficPolicy Local: only nodes with ready endpoints announce; the announcement
/// follows the endpoints. withdraw-when-no-endpoints applies under Cluster policy too.
#[tokio::test(flavor = "multi_thread")]
async fn endpoints_decide_who_announces() {
    let api_server = lock::api_server();
    let c = Cluster::up("ag-etp", 3, "bgp", "frr");
    let s = Setup::new(&api_server, &c, "bgp").await;
    let agents = s.agents(&c, &FAST).await;
    let n = |i: usize| c.node_name(i);

    let ips = s
        .service(
            "etp",
            &s.routed,
            json!({ "externalTrafficPolicy": "Local" }),
        )
        .await;
    let p = host(&ips[0]);
    // No endpoints yet: nobody announces.
    s.wait_announcing("etp", |a| a.is_empty()).await;
    assert_eq!(c.nexthops(&p), 0);
    s.endpoints("etp", &[(n(2), true), (n(3), false)]).await;
    c.wait_nexthops(&p, 1, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    assert!(c.route(&p).contains(c.node_var(2, "V4")), "{}", c.route(&p));
    s.wait_announcing("etp", |a| a == format!("{}/kube-lb0", n(2)))
        .await;
    s.endpoints("etp", &[(n(1), true), (n(2), false), (n(3), true)])
        .await;
    c.wait_nexthops(&p, 2, Duration::from_secs(20))
        .await
        .unwrap();
    let r = c.route(&p);
    assert!(
        r.contains(c.node_var(1, "V4"))
            && r.contains(c.node_var(3, "V4"))
            && !r.contains(c.node_var(2, "V4")),
        "{r}"
    );
    s.wait_announcing("etp", |a| {
        a == format!("{0}/kube-lb0,{1}/kube-lb0", n(1), n(3))
    })
    .await;
    s.endpoints("etp", &[(n(1), false)]).await;
    c.wait_nexthops(&p, 0, Duration::from_secs(20))
        .await
        .unwrap();
    s.wait_announcing("etp", |a| a.is_empty()).await;
    objects::wait_event(&s.client, &s.ns, "etp", "NotAnnounced").await;

    // A local address under ETP Local goes to a node with an endpoint.
    let lan = s
        .service(
            "etp-lan",
            &s.local,
            json!({ "externalTrafficPolicy": "Local" }),
        )
        .await;
    s.endpoints("etp-lan", &[(n(3), true)]).await;
    wait::up_to(Duration::from_secs(20))
        .until(|| async { (c.holders(&lan[0]) == vec![3]).then_some(()) })
        .await
        .unwrap_or_else(|| panic!("the local address never went to node 3\n{}", logs(&agents)));
    s.endpoints("etp-lan", &[(n(3), false), (n(1), true)]).await;
    wait::up_to(Duration::from_secs(20))
        .until(|| async { (c.holders(&lan[0]) == vec![1]).then_some(()) })
        .await
        .expect("the local address followed the endpoint to node 1");

    // Cluster policy with withdraw-when-no-endpoints.
    create_service(
        &s.client,
        service(
            &s.ns,
            "strict",
            json!({ "metadata": { "annotations": {
                "routelb.io/pool": s.routed, "routelb.io/withdraw-when-no-endpoints": "true" } } }),
        ),
    )
    .await;
    let strict = objects::wait_ips(&s.client, &s.ns, "strict", 1).await;
    let sp = host(&strict[0]);
    // What an agent needs to consider a Service (the allocator writes it after the address).
    objects::wait_annotation(&s.client, &s.ns, "strict", annotations::POOL_USED, |v| {
        v.is_some()
    })
    .await;
    // Not a sleep but an event that implies the absence: a Service created after `strict` is
    // complete reaches every agent through the same ordered watch, so once all three nodes
    // announce it, every agent has planned with `strict` in view. Had one decided to announce
    // `strict`, its address would be on that node by then, and its route at the router no
    // later than the marker's.
    let marker = s.service("marker", &s.routed, json!({})).await;
    c.wait_nexthops(&host(&marker[0]), 3, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    assert_eq!(
        c.holders(&strict[0]),
        Vec::<usize>::new(),
        "placed without endpoints"
    );
    assert_eq!(c.nexthops(&sp), 0, "announced without endpoints");
    // A ready endpoint anywhere (even on a node without an agent) and every node announces.
    s.endpoints("strict", &[("elsewhere".into(), true)]).await;
    c.wait_nexthops(&sp, 3, Duration::from_secs(20))
        .await
        .unwrap();
    s.cleanup().await;
}

/// What the watcher checks at every look.
enum Expect {
    /// The router's route to the prefix has this many nexthops.
    Route(String, usize),
    /// Exactly these nodes hold the address on an interface.
    HeldBy(String, Vec<usize>),
}

/// The longest the watcher may go without looking. It looks every 20 ms plus the time of one
/// `ip` command per check, so this is ~20 times its usual gap: only a watcher that stalled
/// fails it, on a fast machine or a slow one.
const BLIND_SPOT: Duration = Duration::from_secs(1);

/// Watches the router and the nodes while something happens: records moments when what is
/// expected did not hold, and the longest time it went without looking.
struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Watched>>,
}

struct Watched {
    samples: usize,
    longest_gap: Duration,
    glitches: Vec<String>,
}

impl Watch {
    /// Returns once the watcher has looked a first time.
    fn start(c: &Cluster, expect: Vec<Expect>) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let c = Cluster::attach(c);
        let (first, looked) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut w = Watched {
                samples: 0,
                longest_gap: Duration::ZERO,
                glitches: Vec::new(),
            };
            let mut last = Instant::now();
            loop {
                for e in &expect {
                    match e {
                        Expect::Route(p, want) => {
                            let got = c.nexthops(p);
                            if got != *want {
                                w.glitches.push(format!("{p}: {got} nexthops"));
                            }
                        }
                        Expect::HeldBy(ip, want) => {
                            let got = c.holders(ip);
                            if got != *want {
                                w.glitches.push(format!("{ip} held by {got:?}"));
                            }
                        }
                    }
                }
                // Looked at `now`: the gap since the last look, or since the start.
                let now = Instant::now();
                if w.samples > 0 {
                    w.longest_gap = w.longest_gap.max(now - last);
                }
                last = now;
                w.samples += 1;
                if w.samples == 1 {
                    let _ = first.send(());
                }
                if s.load(Ordering::Relaxed) {
                    return w;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        looked.recv().expect("the watcher looks");
        Watch {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops watching, after one last look; what it saw. Fails if it went blind.
    fn finish(mut self) -> Watched {
        self.stop.store(true, Ordering::Relaxed);
        let w = self.thread.take().unwrap().join().unwrap();
        eprintln!(
            "watched {} times, at most {:?} apart",
            w.samples, w.longest_gap
        );
        assert!(
            w.longest_gap <= BLIND_SPOT,
            "the watcher went {:?} without looking ({} looks)",
            w.longest_gap,
            w.samples
        );
        w
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // A test that failed before finishing: the watcher stops too.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A routed service on both nodes and a local one on its holder, steady.
async fn steady(c: &Cluster, s: &Setup, agents: &[Agent]) -> (String, String, usize) {
    let routed = s.service("r", &s.routed, json!({})).await;
    let local = s.service("l", &s.local, json!({})).await;
    let p = host(&routed[0]);
    c.wait_nexthops(&p, c.nodes, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(agents)));
    let holder = wait::up_to(Duration::from_secs(20))
        .until(|| async {
            let h = c.holders(&local[0]);
            (h.len() == 1).then(|| h[0])
        })
        .await
        .expect("one holder")
        .value;
    (p, local[0].clone(), holder)
}

/// An agent killed and started again finds its addresses and announcements in place: no
/// withdrawal, no second holder, nothing moves.
#[tokio::test(flavor = "multi_thread")]
async fn agent_restart_does_not_flap() {
    let api_server = lock::api_server();
    let c = Cluster::up("ag-restart", 2, "bgp", "frr");
    let s = Setup::new(&api_server, &c, "bgp").await;
    let mut agents = s.agents(&c, &FAST).await;
    let (p, local, holder) = steady(&c, &s, &agents).await;
    let w = Watch::start(
        &c,
        vec![
            Expect::Route(p.clone(), 2),
            Expect::HeldBy(local.clone(), vec![holder]),
        ],
    );
    let restarted = Instant::now();
    agents[holder - 1].restart();
    // The period watched is the thing under test: the new process syncing, electing and
    // converging, several times over. It lasts 5 s, and in any case until the new process has
    // synced and sees both nodes, so that its whole start is watched.
    let started = &agents[holder - 1];
    wait::up_to(Duration::from_secs(20))
        .until(|| async {
            (started.log_text().matches("caches synced").count() >= 2
                && started.sees_every_node(&c))
            .then_some(())
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "the restarted agent never saw both nodes\n{}",
                logs(&agents)
            )
        });
    tokio::time::sleep_until((restarted + Duration::from_secs(5)).into()).await;
    let watched = w.finish();
    assert!(
        watched.glitches.is_empty(),
        "flapped: {:?}\n{}",
        watched.glitches,
        logs(&agents)
    );
    assert!(
        std::fs::read_to_string(&agents[holder - 1].log)
            .unwrap()
            .matches("caches synced")
            .count()
            >= 2,
        "the agent really restarted"
    );
    s.cleanup().await;
}

/// The API server unreachable for 30 s (longer than 20 lease durations): nothing announced
/// is withdrawn and nothing moves, during the outage or after it.
#[tokio::test(flavor = "multi_thread")]
async fn api_outage_withdraws_nothing() {
    let api_server = lock::api_server();
    let c = Cluster::up("ag-outage", 2, "bgp", "frr");
    let s = Setup::new(&api_server, &c, "bgp").await;
    let agents = s.agents(&c, &FAST).await;
    let (p, local, holder) = steady(&c, &s, &agents).await;
    s.wait_announcing("l", |a| !a.is_empty()).await;
    let w = Watch::start(
        &c,
        vec![
            Expect::Route(p.clone(), 2),
            Expect::HeldBy(local.clone(), vec![holder]),
        ],
    );
    for a in &agents {
        a.proxy.cut(true);
    }
    // The periods watched are the thing under test: 30 s without the API server, then the
    // reconnection and the grace period after it.
    tokio::time::sleep(Duration::from_secs(30)).await;
    for a in &agents {
        assert!(
            a.log_text().contains("cannot renew the node lease"),
            "agent n{} never noticed the outage\n{}",
            a.node,
            a.log_tail()
        );
    }
    let restored = Instant::now();
    for a in &agents {
        a.proxy.cut(false);
    }
    // 6 s after the API server is back, and in any case two lease durations (the grace
    // period, then the judgement after it) after every agent's renewals get through again.
    let back = wait::up_to(Duration::from_secs(20))
        .until(|| async {
            agents
                .iter()
                .all(|a| {
                    let log = a.log_text();
                    log.rfind("node lease renewed again") > log.rfind("cannot renew the node lease")
                })
                .then_some(())
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "the agents' renewals never got through again\n{}",
                logs(&agents)
            )
        });
    let until =
        (restored + Duration::from_secs(6)).max(restored + back.took + Duration::from_secs(3));
    tokio::time::sleep_until(until.into()).await;
    let watched = w.finish();
    assert!(
        watched.glitches.is_empty(),
        "withdrew or moved: {:?}\n{}",
        watched.glitches,
        logs(&agents)
    );
    let reasons = objects::event_reasons(&s.client, &s.ns, "l").await;
    assert!(
        !reasons
            .iter()
            .any(|r| r == "AnnouncementMoved" || r == "NotAnnounced"),
        "{reasons:?}"
    );
    // And the agents work again: a new service is announced. A watch retries with kube's
    // backoff (up to 30 s apart, jittered, as client-go's reflectors), so after a 30 s
    // outage a node may learn of new Services that much later (seen once in CI: 30 s was not
    // enough for one of the two nodes).
    let again = s.service("after", &s.routed, json!({})).await;
    c.wait_nexthops(&host(&again[0]), 2, Duration::from_secs(75))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    s.cleanup().await;
}

/// Templates from a watched directory: a broken edit keeps the last good fragment in place and
/// says so in NodeState; the fixed file is picked up again.
#[tokio::test(flavor = "multi_thread")]
async fn template_directory_is_watched() {
    let api_server = lock::api_server();
    let c = Cluster::up("ag-tmpl", 1, "bgp", "frr");
    let s = Setup::new(&api_server, &c, "bgp").await;
    let dir = std::path::PathBuf::from(c.var("CLUSTER_DIR")).join("templates");
    for d in ["frr", "bird"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
        for f in std::fs::read_dir(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("templates")
                .join(d),
        )
        .unwrap()
        {
            let f = f.unwrap().path();
            std::fs::copy(&f, dir.join(d).join(f.file_name().unwrap())).unwrap();
        }
    }
    let mut args = FAST.to_vec();
    let dir_s = dir.to_str().unwrap().to_string();
    args.extend(["--templates", &dir_s]);
    let agents = s.agents(&c, &args).await;
    let ips = s.service("web", &s.routed, json!({})).await;
    c.wait_nexthops(&host(&ips[0]), 1, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));

    let problems = |st: &routelb::api::NodeStateStatus| {
        st.conditions
            .iter()
            .find(|c| c.type_ == "RoutingProblems")
            .map(|c| (c.status.clone(), c.message.clone()))
            .unwrap_or_default()
    };
    let bgp = dir.join("frr/bgp.conf.tera");
    let good = std::fs::read_to_string(&bgp).unwrap();
    std::fs::write(&bgp, format!("{good}\n{{% if %}}\n")).unwrap();
    let st = wait::up_to(Duration::from_secs(20))
        .until(|| async {
            let st = s.node_state(&c.node_name(1)).await?.status?;
            (problems(&st).0 == "True").then_some(st)
        })
        .await
        .unwrap_or_else(|| panic!("the broken template was not reported\n{}", logs(&agents)))
        .value;
    assert!(problems(&st).1.contains("templates"), "{:?}", problems(&st));
    // The last good fragment stays: the route is still there, and new services still work.
    assert_eq!(c.nexthops(&host(&ips[0])), 1);
    let more = s.service("more", &s.routed, json!({})).await;
    c.wait_nexthops(&host(&more[0]), 1, Duration::from_secs(30))
        .await
        .unwrap();

    std::fs::write(&bgp, &good).unwrap();
    wait::up_to(Duration::from_secs(20))
        .until(|| async {
            let st = s.node_state(&c.node_name(1)).await?.status?;
            (problems(&st).0 == "False").then_some(())
        })
        .await
        .expect("the fixed template was picked up");
    // Loading the templates reads them: those reads must not wake the agent to load them
    // again (it did, about ten times a second, until only edits counted).
    let loads = || {
        std::fs::read_to_string(&agents[0].log)
            .unwrap()
            .matches("templates loaded")
            .count()
    };
    let before = loads();
    let third = s.service("third", &s.routed, json!({})).await;
    c.wait_nexthops(&host(&third[0]), 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(loads(), before, "templates loaded again without an edit");
    s.cleanup().await;
}

/// A pool edited into something invalid: the Services keep their addresses (the allocator)
/// and stay announced (the agents, from the pool's last valid definition), and NodeState says
/// why until the pool is fixed.
#[tokio::test(flavor = "multi_thread")]
async fn bad_pool_edits_withdraw_nothing() {
    let api_server = lock::api_server();
    let c = Cluster::up("ag-pool", 1, "bgp", "frr");
    let s = Setup::new(&api_server, &c, "bgp").await;
    let agents = s.agents(&c, &FAST).await;
    let ips = s.service("web", &s.routed, json!({})).await;
    let p = host(&ips[0]);
    c.wait_nexthops(&p, 1, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    let node = c.node_name(1);
    let before = s
        .wait_node_state(&node, |st| {
            announced(st, &ips[0]) && st.fragment_hash.is_some()
        })
        .await
        .expect("NodeState lists the address")
        .fragment_hash;
    let w = Watch::start(
        &c,
        vec![
            Expect::Route(p.clone(), 1),
            Expect::HeldBy(ips[0].clone(), vec![1]),
        ],
    );
    let pools: Api<AddressPool> = Api::all(s.client.clone());
    pools
        .patch(
            &s.routed,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "addresses": ["not-an-address"] } })),
        )
        .await
        .unwrap();
    // No sleeps to prove that nothing was withdrawn: NodeState is written at the end of the
    // pass that read the edit, after it converged the node's addresses (watched on the node
    // itself, where a removal shows at once) and applied its fragment to the daemon. The
    // fragment it reports is the one from before the edit, so the daemon was given nothing
    // that could withdraw a route.
    let st = s
        .wait_node_state(&node, |st| {
            st.conditions
                .iter()
                .any(|k| k.type_ == "RoutingProblems" && k.message.contains("invalid"))
        })
        .await
        .unwrap_or_else(|| panic!("the invalid pool was not reported\n{}", logs(&agents)));
    assert_eq!(
        st.fragment_hash, before,
        "the invalid pool changed the fragment"
    );
    // Fixed again: the problem goes away, the address stays.
    pools
        .patch(
            &s.routed,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "addresses": [
                format!("198.18.{}.0/27", c.index()),
                format!("2001:db8:78:{}::/123", c.index()),
            ] } })),
        )
        .await
        .unwrap();
    let st = s
        .wait_node_state(&node, |st| {
            st.conditions
                .iter()
                .any(|k| k.type_ == "RoutingProblems" && k.status == "False")
        })
        .await
        .expect("the fixed pool is no longer reported");
    assert_eq!(
        st.fragment_hash, before,
        "the fixed pool changed the fragment"
    );
    let watched = w.finish();
    assert!(
        watched.glitches.is_empty(),
        "withdrawn: {:?}\n{}",
        watched.glitches,
        logs(&agents)
    );
    let svc: Service = Api::namespaced(s.client.clone(), &s.ns)
        .get("web")
        .await
        .unwrap();
    assert_eq!(objects::ingress_ips(&svc), ips, "the address was kept");
    s.cleanup().await;
}

/// The rollout a test follows: its status, read afresh.
async fn rollout_status(client: &Client, name: &str) -> Option<routelb::api::RoutingRolloutStatus> {
    Api::<routelb::api::RoutingRollout>::all(client.clone())
        .get(name)
        .await
        .ok()?
        .status
}

async fn wait_rollout(
    client: &Client,
    name: &str,
    timeout: Duration,
    pred: impl Fn(&routelb::api::RoutingRolloutStatus) -> bool,
) -> wait::Waited<routelb::api::RoutingRolloutStatus> {
    wait::up_to(timeout)
        .until(|| async {
            let st = rollout_status(client, name).await?;
            pred(&st).then_some(st)
        })
        .await
        .unwrap_or_else(|| panic!("rollout {name} never got where the test waited"))
}

/// Staged rollout, end to end: a policy edit reaches a canary, then the other nodes in a
/// wave, each gated on routing health; then a template edit whose route-map denies
/// everything halts after the canary, whose routes come back with the stable revision, while
/// the other nodes never apply it. Prints the time from the bad edit to the halt and to the
/// canary announcing again.
#[tokio::test(flavor = "multi_thread")]
async fn rollout_goes_in_waves_and_a_bad_template_halts_after_the_canary() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let api_server = lock::api_server();
    let c = Cluster::up("ro", 3, "bgp", "frr");
    let rollout = unique("ro");
    let s = Setup::with_allocator(&api_server, &c, "bgp", |ns| {
        ["--rollout", &rollout, "--rollout-namespace", ns]
            .iter()
            .map(|f| f.to_string())
            .chain(["--templates-configmap".into(), "templates".into()])
            .collect()
    })
    .await;
    let maps: Api<ConfigMap> = Api::namespaced(s.client.clone(), &s.ns);
    let templates: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "templates" }, "data": {},
    }))
    .unwrap();
    maps.create(&PostParams::default(), &templates)
        .await
        .unwrap();
    let rollouts: Api<routelb::api::RoutingRollout> = Api::all(s.client.clone());
    let spec: routelb::api::RoutingRollout = serde_json::from_value(json!({
        "apiVersion": "routelb.io/v1alpha1", "kind": "RoutingRollout",
        "metadata": { "name": rollout },
        "spec": { "canary": { "nodes": 1 }, "wavePercent": 100, "soak": "8s",
                  "progressDeadline": "60s", "paused": true },
    }))
    .unwrap();
    rollouts
        .create(&PostParams::default(), &spec)
        .await
        .unwrap();
    let first = wait_rollout(&s.client, &rollout, Duration::from_secs(30), |st| {
        st.phase.as_deref() == Some("Complete") && st.stable_revision.is_some()
    })
    .await
    .value;
    let flags: Vec<&str> = FAST
        .iter()
        .copied()
        .chain(["--rollout", &rollout, "--rollout-namespace", &s.ns])
        .collect();
    let agents = s.agents(&c, &flags).await;
    let ips = s.service("web", &s.routed, json!({})).await;
    c.wait_nexthops(&host(&ips[0]), 3, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));

    // A policy edit while the rollout is paused: no node gets it, each plans it.
    let policies: Api<RoutingPolicy> = Api::all(s.client.clone());
    let edit = json!({ "spec": { "bgp": { "communities": ["65000:77"] } } });
    policies
        .patch(&s.policy, &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    let paused = wait_rollout(&s.client, &rollout, Duration::from_secs(20), |st| {
        st.phase.as_deref() == Some("Paused") && st.target_revision.is_some()
    })
    .await
    .value;
    let good = paused.target_revision.clone().unwrap();
    assert!(paused.updated_nodes.is_empty(), "{paused:?}");
    for i in 1..=3 {
        let st = s
            .wait_node_state(&c.node_name(i), |st| {
                st.pending_revision.as_ref().is_some_and(|p| p.name == good)
            })
            .await
            .unwrap_or_else(|| panic!("node {i} never planned {good}\n{}", logs(&agents)));
        let plan = st.pending_revision.unwrap();
        assert!(plan.summary.contains("0 session reset(s)"), "{plan:?}");
        let step = plan
            .steps
            .iter()
            .find(|s| s.object.starts_with("route-map ROUTELB-"))
            .unwrap_or_else(|| panic!("{plan:?}"));
        assert!(
            step.lines.iter().any(|l| l.contains("65000:77")),
            "{plan:?}"
        );
        assert!(step.effects[0].contains("bgpd re-evaluates"), "{plan:?}");
        assert_ne!(st.revision.unwrap().name, good, "paused: not applied");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_routelb"))
        .args(["plan", "--rollout", &rollout])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 1..=3 {
        let node = format!(
            "node {}: 2 change(s), 4 line(s); 0 session reset(s), 0 ROUTE-REFRESH(es)",
            c.node_name(i)
        );
        assert!(text.contains(&node), "{text}");
    }
    println!("routelb plan against the cluster:\n{text}");

    // Resumed: a canary, then a wave of the other two, then complete.
    let resume = json!({ "spec": { "paused": false } });
    rollouts
        .patch(&rollout, &PatchParams::default(), &Patch::Merge(&resume))
        .await
        .unwrap();
    let canary_wave = wait_rollout(&s.client, &rollout, Duration::from_secs(20), |st| {
        st.phase.as_deref() == Some("Progressing") && st.wave == 1
    })
    .await
    .value;
    assert_eq!(canary_wave.updated_nodes.len(), 1, "{canary_wave:?}");
    assert_eq!(canary_wave.target_revision.as_ref(), Some(&good));
    assert_ne!(Some(&good), first.stable_revision.as_ref());
    let done = wait_rollout(&s.client, &rollout, Duration::from_secs(90), |st| {
        st.phase.as_deref() == Some("Complete") && st.stable_revision.as_ref() == Some(&good)
    })
    .await;
    println!(
        "policy edit rolled out to 3 nodes in 2 waves in {:?}",
        done.took
    );
    let reasons = objects::event_reasons(&s.client, "default", &rollout).await;
    assert!(
        reasons.iter().filter(|r| *r == "WaveStarted").count() >= 2,
        "{reasons:?}"
    );
    let mut applied_good = std::collections::BTreeMap::new();
    for i in 1..=3 {
        let st = s
            .wait_node_state(&c.node_name(i), |st| {
                st.revision
                    .as_ref()
                    .is_some_and(|r| r.name == good && r.applied.is_some())
            })
            .await
            .unwrap_or_else(|| panic!("node {i} never reported {good}\n{}", logs(&agents)));
        applied_good.insert(c.node_name(i), st.revision.unwrap().applied.unwrap());
    }

    // A bad template: the route-map denies what it permitted.
    let bgp = include_str!("../templates/frr/bgp.conf.tera");
    let bad = bgp.replacen("permit {{ e.seq }}", "deny {{ e.seq }}", 1);
    assert_ne!(bad, bgp);
    let t0 = Instant::now();
    let patch = json!({ "data": { "frr.bgp.conf.tera": bad } });
    maps.patch("templates", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let halted = wait_rollout(&s.client, &rollout, Duration::from_secs(60), |st| {
        st.phase.as_deref() == Some("Halted")
    })
    .await
    .value;
    let to_halt = t0.elapsed();
    let canary = halted.halted_by.clone().unwrap();
    let message = halted.message.clone().unwrap();
    assert!(message.contains("peers stopped getting"), "{message}");
    assert!(halted.updated_nodes.is_empty(), "{halted:?}");
    assert_eq!(halted.stable_revision.as_ref(), Some(&good));
    objects::wait_event(&s.client, "default", &rollout, "RolloutHalted").await;
    let metrics = s.allocator.metrics().await;
    assert!(metrics.contains("routelb_rollout_halted 1"), "{metrics}");
    assert!(
        metrics.contains(r#"routelb_rollout_events_total{reason="RolloutHalted"} 1"#),
        "{metrics}"
    );
    // The canary renders the stable revision again and the router has all three paths.
    s.wait_node_state(&canary, |st| {
        st.revision.as_ref().is_some_and(|r| r.name == good)
    })
    .await
    .unwrap_or_else(|| panic!("{canary} never went back to {good}\n{}", logs(&agents)));
    c.wait_nexthops(&host(&ips[0]), 3, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    let to_restored = t0.elapsed();
    // The others never applied anything since the good revision.
    for (node, applied) in &applied_good {
        if *node == canary {
            continue;
        }
        let st = s.node_state(node).await.unwrap().status.unwrap();
        let r = st.revision.unwrap();
        assert_eq!(
            (&r.name, r.applied.as_ref()),
            (&good, Some(applied)),
            "{node}"
        );
    }
    println!(
        "bad template: halted after {:.1} s, the canary's routes back at the router after {:.1} s ({message})",
        to_halt.as_secs_f64(),
        to_restored.as_secs_f64()
    );
    rollouts
        .delete(&rollout, &DeleteParams::default())
        .await
        .unwrap();
    s.cleanup().await;
}
