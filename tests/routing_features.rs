//! Routing features beyond announcing (issue 16), end to end: real API server, allocator,
//! agents in network-namespace nodes with FRR or BIRD, and an upstream FRR router whose kernel
//! table and the requests it forwards are the judges. Needs root, FRR, BIRD and the test API
//! server (KUBECONFIG), as CI provides.

mod support {
    pub mod allocator;
    pub mod api;
    pub mod apiproxy;
    #[allow(dead_code)] // shared with tests/agent.rs, which uses all of it
    pub mod cluster;
    pub mod daemon;
    pub mod files;
    #[allow(dead_code)] // the weights are judged by who answers, not by failure analysis
    pub mod load;
    pub mod lock;
    pub mod objects;
    pub mod script;
    #[allow(dead_code)] // shared with tests/agent.rs, which uses all of it
    pub mod setup;
    pub mod wait;
    pub mod web;
}

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use routelb::api::RoutingPolicy;
use serde_json::json;
use support::cluster::Cluster;
use support::load::Load;
use support::objects::{self, create_service, service};
use support::setup::{Setup, logs};
use support::web::WebServer;
use support::{lock, wait};

/// Agent flags for quick tests: short Lease and resync.
const FAST: &[&str] = &["--lease-duration", "3s", "--resync", "5s"];

/// Requests per second, and for how long, to judge a split: 2,000 flows.
const RATE: u32 = 200;
const LOAD_TIME: Duration = Duration::from_secs(10);

fn host(ip: &str) -> String {
    if ip.contains(':') {
        format!("{ip}/128")
    } else {
        format!("{ip}/32")
    }
}

/// The router's weight for each next hop of its route to `prefix`, by next-hop address, as
/// `ip route` prints it (`nexthop via ADDR dev IF weight W`); empty without a multipath route.
fn router_weights(c: &Cluster, prefix: &str) -> Vec<(String, u32)> {
    let route = c.route(prefix);
    let mut out: Vec<(String, u32)> = route
        .split("nexthop")
        .skip(1)
        .filter_map(|hop| {
            let words: Vec<&str> = hop.split_whitespace().collect();
            let via = words.iter().position(|w| *w == "via")?;
            let weight = words.iter().position(|w| *w == "weight")?;
            Some((words[via + 1].to_string(), words[weight + 1].parse().ok()?))
        })
        .collect();
    out.sort();
    out
}

/// Waits until the router weighs node 1 and node 2 as `want` (IPv4 next hops).
async fn wait_weights(c: &Cluster, prefix: &str, want: (u32, u32)) -> Result<(), String> {
    let (n1, n2) = (
        c.node_var(1, "V4").to_string(),
        c.node_var(2, "V4").to_string(),
    );
    let expected = {
        let mut w = vec![(n1, want.0), (n2, want.1)];
        w.sort();
        w
    };
    wait::up_to(Duration::from_secs(40))
        .until(|| async { (router_weights(c, prefix) == expected).then_some(()) })
        .await
        .map(|_| ())
        .ok_or_else(|| {
            format!(
                "the router never weighed {prefix} {want:?} (node 1, node 2); it has: {}",
                c.route(prefix)
            )
        })
}

/// `spec.bgp.weightedEcmp` on a `daemon` lab: a Service under `externalTrafficPolicy: Local`
/// with 3 ready endpoints on node 1 and 1 on node 2 gets router weights 75:25 and the requests
/// split 3:1 (each a new connection, spread by the router's L4 hash); 1:1 endpoints bring
/// equal weights back.
async fn weighted_ecmp(daemon: &str, name: &str) {
    let api_server = lock::api_server();
    let c = Cluster::up(name, 2, "bgp", daemon);
    let s = Setup::new(&api_server, &c, "bgp").await;
    Api::<RoutingPolicy>::all(s.client.clone())
        .patch(
            &s.policy,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "bgp": { "weightedEcmp": true } } })),
        )
        .await
        .unwrap();
    // Spread connections by their ports, as a fabric does.
    let sysctl = std::process::Command::new("ip")
        .args(["netns", "exec", c.var("CLUSTER_RTR_NS")])
        .args(["sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1"])
        .status()
        .unwrap();
    assert!(sysctl.success());
    let _servers: Vec<WebServer> = (1..=2).map(|i| WebServer::start(&c, i)).collect();
    let agents = s.agents(&c, FAST).await;
    let (n1, n2) = (c.node_name(1), c.node_name(2));
    let ips = s
        .service(
            "wecmp",
            &s.routed,
            json!({ "externalTrafficPolicy": "Local", "ipFamilyPolicy": "PreferDualStack",
                    "ipFamilies": ["IPv4", "IPv6"] }),
        )
        .await;
    let prefix = host(&ips[0]);
    let t0 = Instant::now();
    let three_to_one = [
        (n1.clone(), true),
        (n1.clone(), true),
        (n1.clone(), true),
        (n2.clone(), true),
    ];
    s.endpoints("wecmp", &three_to_one).await;
    // The first announcement: after the agents' kube-proxy grace (2 s) for a new Service.
    wait_weights(&c, &prefix, (75, 25))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    let weighted_after = t0.elapsed();
    // IPv6 too (its next hops are the nodes' link-local addresses); the endpoints are IPv4,
    // so the IPv6 address weighs them all.
    let v6 = host(ips.iter().find(|ip| ip.contains(':')).expect("dual stack"));
    let sorted = || {
        let mut w: Vec<u32> = router_weights(&c, &v6).iter().map(|w| w.1).collect();
        w.sort();
        w
    };
    wait::up_to(Duration::from_secs(20))
        .until(|| async { (sorted() == [25, 75]).then_some(()) })
        .await
        .unwrap_or_else(|| panic!("IPv6 route: {}", c.route(&v6)));

    let target = std::net::SocketAddr::new(ips[0].parse().unwrap(), 8080);
    let load = Load::start(c.var("CLUSTER_RTR_NS"), target, RATE).unwrap();
    tokio::time::sleep(LOAD_TIME).await;
    let report = load.stop();
    let answered: u64 = report.answered_by.values().sum();
    let by_n1 = report.answered_by.get(&n1).copied().unwrap_or(0);
    let share = by_n1 as f64 / answered.max(1) as f64;
    println!(
        "weighted ECMP ({daemon} nodes): endpoints 3:1 -> router weights 75:25 {weighted_after:.2?} after the EndpointSlice; \
         {answered} requests, node 1 answered {by_n1} ({:.1} %), node 2 {} ({:.1} %); {}",
        100.0 * share,
        answered - by_n1,
        100.0 * (1.0 - share),
        report.summary()
    );
    assert!(
        answered >= 1000,
        "too few answers to judge: {}",
        report.summary()
    );
    assert!(
        (0.65..=0.85).contains(&share),
        "node 1 should answer 75 % ± 10 %: {}",
        report.summary()
    );

    // A change of endpoints, as a user sees it: from the EndpointSlice write to the router.
    let t1 = Instant::now();
    s.endpoints("wecmp", &[(n1.clone(), true), (n2.clone(), true)])
        .await;
    wait_weights(&c, &prefix, (50, 50))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    println!(
        "weighted ECMP ({daemon} nodes): endpoints 3:1 -> 1:1, router weights 50:50 {:.2?} after the EndpointSlice write",
        t1.elapsed()
    );
    s.cleanup().await;
}

/// A routed address shared (a sharing key) by two Services under `externalTrafficPolicy:
/// Local` is announced only by the nodes with endpoints of both, and every request to it is
/// answered there; when no node has both, nobody announces it and the Services say why.
async fn shared_local_address(daemon: &str, name: &str) {
    let api_server = lock::api_server();
    let c = Cluster::up(name, 3, "bgp", daemon);
    let s = Setup::new(&api_server, &c, "bgp").await;
    let _servers: Vec<WebServer> = (1..=3).map(|i| WebServer::start(&c, i)).collect();
    let agents = s.agents(&c, FAST).await;
    let n = |i: usize| c.node_name(i);
    let shared = |svc: &str, port: u16, protocol: &str| {
        service(
            &s.ns,
            svc,
            json!({
                "metadata": { "annotations": {
                    "routelb.io/pool": s.routed, "routelb.io/sharing-key": "shared" } },
                "spec": { "externalTrafficPolicy": "Local",
                          "ports": [{ "port": port, "protocol": protocol }] },
            }),
        )
    };
    create_service(&s.client, shared("web", 80, "TCP")).await;
    create_service(&s.client, shared("dns", 53, "UDP")).await;
    let web = objects::wait_ips(&s.client, &s.ns, "web", 1).await;
    let dns = objects::wait_ips(&s.client, &s.ns, "dns", 1).await;
    assert_eq!(web, dns, "the sharing key gives both one address");
    let prefix = host(&web[0]);
    s.endpoints("web", &[(n(1), true), (n(2), true)]).await;
    s.endpoints("dns", &[(n(2), true), (n(3), true)]).await;
    c.wait_nexthops(&prefix, 1, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    assert!(
        c.route(&prefix).contains(c.node_var(2, "V4")),
        "only node 2 has endpoints of both: {}",
        c.route(&prefix)
    );
    for svc in ["web", "dns"] {
        s.wait_announcing(svc, |a| a == format!("{}/kube-lb0", n(2)))
            .await;
    }
    let target = std::net::SocketAddr::new(web[0].parse().unwrap(), 8080);
    let load = Load::start(c.var("CLUSTER_RTR_NS"), target, 100).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = load.stop();
    println!(
        "shared Local address ({daemon} nodes): {}",
        report.summary()
    );
    assert_eq!(report.failed(), 0, "{}", report.summary());
    assert_eq!(
        report.answered_by.keys().collect::<Vec<_>>(),
        [&n(2)],
        "{}",
        report.summary()
    );

    // No node with endpoints of both: nobody announces it, and the reporter says why.
    s.endpoints("dns", &[(n(3), true)]).await;
    c.wait_nexthops(&prefix, 0, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    s.wait_announcing("dns", |a| a.is_empty()).await;
    for svc in ["web", "dns"] {
        objects::wait_event_saying(
            &s.client,
            &s.ns,
            svc,
            "NotAnnounced",
            "ready endpoint of each of the 2 Services sharing",
        )
        .await;
    }

    // Endpoints of both on nodes 1 and 2: both announce.
    s.endpoints("dns", &[(n(1), true), (n(2), true), (n(3), true)])
        .await;
    c.wait_nexthops(&prefix, 2, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    s.cleanup().await;
}

/// The router's best BGP path to `prefix` (FRR's `show bgp ... json`), if it has one.
fn router_bgp_path(c: &Cluster, prefix: &str) -> Option<serde_json::Value> {
    let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
    let out = std::process::Command::new("vtysh")
        .args(["-N", c.var("CLUSTER_RTR_FRR")])
        .args(["-c", &format!("show bgp {family} unicast {prefix} json")])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["paths"].as_array()?.first().cloned()
}

/// What a BGP path carries that a Service can ask for: MED, large communities, AS path.
#[derive(Debug, PartialEq)]
struct Carried {
    med: Option<u64>,
    large: String,
    as_path: String,
}

fn carried(path: &serde_json::Value) -> Carried {
    Carried {
        med: path["metric"].as_u64().or(path["med"].as_u64()),
        large: path["largeCommunity"]["string"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        as_path: path["aspath"]["string"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

/// Waits until the router's path to `prefix` carries `want`.
async fn wait_carried(c: &Cluster, prefix: &str, want: &Carried) -> Result<Duration, String> {
    let t0 = Instant::now();
    wait::up_to(Duration::from_secs(20))
        .until(|| async {
            router_bgp_path(c, prefix)
                .is_some_and(|p| carried(&p) == *want)
                .then_some(())
        })
        .await
        .map(|_| t0.elapsed())
        .ok_or_else(|| {
            format!(
                "{prefix}: the router's path carries {:?}, not {want:?}",
                router_bgp_path(c, prefix).map(|p| carried(&p))
            )
        })
}

/// Per-service BGP attributes within policy: a Service the policy's grant picks (its
/// namespace and label) gets its MED, large community, AS-path prepend and local preference
/// on its own route at the router; what the grant does not cover, and everything a Service it
/// does not pick asks for, is refused on the Service (annotation and Event) and never reaches
/// the daemon; withdrawing the grant takes the attributes back.
async fn per_service_bgp_attributes(daemon: &str, name: &str) {
    let api_server = lock::api_server();
    let c = Cluster::up(name, 1, "bgp", daemon);
    let s = Setup::new(&api_server, &c, "bgp").await;
    let policies: Api<RoutingPolicy> = Api::all(s.client.clone());
    let grant = json!({
        "namespaces": [s.ns],
        "serviceSelector": { "matchLabels": { "tier": "gold" } },
        "bgpMed": { "min": 100, "max": 1000 },
        "bgpLocalPreference": { "min": 100, "max": 300 },
        "bgpLargeCommunities": ["64512:7:0-64512:7:99"],
        "bgpAsPathPrepend": { "min": 0, "max": 3 },
    });
    policies
        .patch(
            &s.policy,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": {
                "bgp": { "med": 10 },
                "serviceOverrides": { "grants": [grant] },
            } })),
        )
        .await
        .unwrap();
    let agents = s.agents(&c, FAST).await;
    let asking = |svc: &str, labels: serde_json::Value, med: &str| {
        service(
            &s.ns,
            svc,
            json!({ "metadata": { "labels": labels, "annotations": {
                "routelb.io/pool": s.routed,
                "routelb.io/bgp-med": med,
                "routelb.io/bgp-local-preference": "200",
                "routelb.io/bgp-large-communities": "64512:7:1, 64512:8:1",
                "routelb.io/bgp-as-path-prepend": "2",
            } } }),
        )
    };
    create_service(&s.client, asking("gold", json!({ "tier": "gold" }), "300")).await;
    create_service(&s.client, asking("plain", json!({}), "300")).await;
    let gold = host(&objects::wait_ips(&s.client, &s.ns, "gold", 1).await[0]);
    let plain = host(&objects::wait_ips(&s.client, &s.ns, "plain", 1).await[0]);
    let node_as = c.var("CLUSTER_NODE_AS").to_string();
    let granted = Carried {
        med: Some(300),
        large: "64512:7:1".into(),
        as_path: [node_as.as_str(); 3].join(" "),
    };
    let policy_only = Carried {
        med: Some(10),
        large: String::new(),
        as_path: node_as.clone(),
    };
    wait_carried(&c, &gold, &granted).await.unwrap_or_else(|e| {
        panic!(
            "{e}
{}",
            logs(&agents)
        )
    });
    wait_carried(&c, &plain, &policy_only)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}
{}",
                logs(&agents)
            )
        });
    if daemon == "frr" {
        // Local preference does not cross eBGP; the node's own table holds it.
        let out = std::process::Command::new("vtysh")
            .args(["-N", c.node_var(1, "FRR")])
            .args(["-c", &format!("show bgp ipv4 unicast {gold} json")])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(out.contains("\"locPrf\":200"), "{out}");
    }
    // Refused on the Service, with the reason, and as an Event.
    let gold_refused = objects::wait_annotation(
        &s.client,
        &s.ns,
        "gold",
        "routelb.io/refused-attributes",
        |v| v.is_some(),
    )
    .await;
    assert_eq!(
        gold_refused.annotations()["routelb.io/refused-attributes"],
        format!(
            "routelb.io/bgp-large-communities: large community 64512:8:1 is not allowed (policy {})",
            s.policy
        )
    );
    objects::wait_event_saying(
        &s.client,
        &s.ns,
        "plain",
        "AttributeRefused",
        "bgp-med: not granted to this Service",
    )
    .await;

    // A change of a granted value, as the user sees it: annotation write to the router.
    let services: Api<Service> = Api::namespaced(s.client.clone(), &s.ns);
    let t0 = Instant::now();
    services
        .patch(
            "gold",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "annotations": { "routelb.io/bgp-med": "500" } } }),
            ),
        )
        .await
        .unwrap();
    let med_500 = Carried {
        med: Some(500),
        large: granted.large.clone(),
        as_path: granted.as_path.clone(),
    };
    wait_carried(&c, &gold, &med_500).await.unwrap_or_else(|e| {
        panic!(
            "{e}
{}",
            logs(&agents)
        )
    });
    println!(
        "per-service attributes ({daemon} node): a Service's MED changed 300 -> 500 at the router {:.2?} after the annotation write",
        t0.elapsed()
    );

    // Out of the granted range: the Service says so, and its routes fall back to the
    // policy's MED (the refused value is never rendered) while its other grants stay.
    let t2 = Instant::now();
    services
        .patch(
            "gold",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "metadata": { "annotations": { "routelb.io/bgp-med": "5000" } } }),
            ),
        )
        .await
        .unwrap();
    objects::wait_annotation(
        &s.client,
        &s.ns,
        "gold",
        "routelb.io/refused-attributes",
        |v| {
            v.is_some_and(|v| {
                v.contains("5000 is outside what is granted to this Service (100-1000)")
            })
        },
    )
    .await;
    let refused_after = t2.elapsed();
    let policy_med = Carried {
        med: Some(10),
        ..med_500
    };
    wait_carried(&c, &gold, &policy_med)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&agents)));
    println!(
        "per-service attributes ({daemon} node): MED 5000 (outside 100-1000) refused on the Service {refused_after:.2?} after the annotation write; the router has the policy's MED {:.2?} after it",
        t2.elapsed()
    );

    // The grant withdrawn: the policy's own attributes, and the Service says why.
    let t1 = Instant::now();
    policies
        .patch(
            &s.policy,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "serviceOverrides": null } })),
        )
        .await
        .unwrap();
    wait_carried(&c, &gold, &policy_only)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}
{}",
                logs(&agents)
            )
        });
    println!(
        "per-service attributes ({daemon} node): grant withdrawn, the router has the policy's attributes {:.2?} after the policy write",
        t1.elapsed()
    );
    objects::wait_annotation(
        &s.client,
        &s.ns,
        "gold",
        "routelb.io/refused-attributes",
        |v| v.is_some_and(|v| v.contains("routelb.io/bgp-med: not granted")),
    )
    .await;
    s.cleanup().await;
}

/// A Service's OSPF metric, granted by the policy, reaches the router as its external metric;
/// another Service keeps the policy's.
async fn per_service_ospf_metric(daemon: &str, name: &str) {
    let api_server = lock::api_server();
    let c = Cluster::up(name, 1, "ospf", daemon);
    let s = Setup::new(&api_server, &c, "ospf").await;
    Api::<RoutingPolicy>::all(s.client.clone())
        .patch(
            &s.policy,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": {
                "ospf": { "metric": 40 },
                "serviceOverrides": { "ospfMetric": { "min": 50, "max": 100 } },
            } })),
        )
        .await
        .unwrap();
    let agents = s.agents(&c, FAST).await;
    let with_metric = |svc: &str, metric: &str| {
        service(
            &s.ns,
            svc,
            json!({ "metadata": { "annotations": {
                "routelb.io/pool": s.routed, "routelb.io/ospf-metric": metric } } }),
        )
    };
    create_service(&s.client, with_metric("near", "70")).await;
    create_service(&s.client, with_metric("far", "700")).await;
    let near = host(&objects::wait_ips(&s.client, &s.ns, "near", 1).await[0]);
    let far = host(&objects::wait_ips(&s.client, &s.ns, "far", 1).await[0]);
    for (prefix, metric) in [(&near, 70), (&far, 40)] {
        wait::up_to(Duration::from_secs(30))
            .until(|| async { (router_metric(&c, prefix) == Some(metric)).then_some(()) })
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{prefix}: metric {:?}, not {metric}\n{}",
                    router_metric(&c, prefix),
                    logs(&agents)
                )
            });
    }
    objects::wait_event_saying(
        &s.client,
        &s.ns,
        "far",
        "AttributeRefused",
        "700 is outside what is granted to this Service (50-100)",
    )
    .await;
    s.cleanup().await;
}

/// The metric of the router's route to `prefix` (`show ip route ... json`).
fn router_metric(c: &Cluster, prefix: &str) -> Option<u64> {
    let out = std::process::Command::new("vtysh")
        .args(["-N", c.var("CLUSTER_RTR_FRR")])
        .args(["-c", &format!("show ip route {prefix} json")])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v[prefix].as_array()?.first()?["metric"].as_u64()
}

#[tokio::test(flavor = "multi_thread")]
async fn per_service_bgp_attributes_within_policy_frr() {
    per_service_bgp_attributes("frr", "rf-afrr").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn per_service_bgp_attributes_within_policy_bird() {
    per_service_bgp_attributes("bird", "rf-abird").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn per_service_ospf_metric_within_policy_frr() {
    per_service_ospf_metric("frr", "rf-ofrr").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn per_service_ospf_metric_within_policy_bird() {
    per_service_ospf_metric("bird", "rf-obird").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_local_address_goes_where_every_service_has_endpoints_frr() {
    shared_local_address("frr", "rf-sfrr").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_local_address_goes_where_every_service_has_endpoints_bird() {
    shared_local_address("bird", "rf-sbird").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn weighted_ecmp_follows_endpoints_frr() {
    weighted_ecmp("frr", "rf-wfrr").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn weighted_ecmp_follows_endpoints_bird() {
    weighted_ecmp("bird", "rf-wbird").await;
}
