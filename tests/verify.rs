//! Announcements verified at the daemon, on the conformance corpus: a base that drops the
//! Service prefixes (without its hand-added lines) is reported with the filter and the peer
//! that drops them; with the lines, the Service reaches the router in both families, no
//! session resets, the base's own routes stay, and removal withdraws only routelb's prefix.
//! Needs root and FRR (the namespace lab); the agent test also needs the test API server.

mod support {
    pub mod allocator;
    pub mod api;
    pub mod apiproxy;
    pub mod corpus;
    pub mod daemon;
    pub mod files;
    #[allow(dead_code)] // this file uses only the BIRD lab
    pub mod lab;
    pub mod lock;
    pub mod objects;
    pub mod script;
    pub mod wait;
}

use std::collections::BTreeSet;
use std::time::Duration;

use ipnet::IpNet;
use routelb::daemon::Driver;
use routelb::daemon::advertised::{self, Expected, Protocol, Verification};
use routelb::daemon::frr::{FrrApply, FrrDriver};
use routelb::daemon::observe;
use support::corpus::{self, CorpusLab};

const SVC4: &str = "203.0.113.7/32";
const SVC6: &str = "2001:db8:ffff::7/128";

fn nets(v: &[&str]) -> BTreeSet<IpNet> {
    v.iter().map(|n| n.parse().unwrap()).collect()
}

/// routelb's fragment for one pool (203.0.113.0/24, 2001:db8:ffff::/48) exported by
/// `protocol` (`bgp`, `ospf`, `isis`, `rip`), as the templates render it; `instance` is the
/// BGP AS or the IS-IS area tag.
fn fragment(protocol: &str, instance: &str) -> String {
    let lists = "ip prefix-list ROUTELB-POOL-a-V4 seq 5 permit 203.0.113.0/24 le 32\n\
                 ipv6 prefix-list ROUTELB-POOL-a-V6 seq 5 permit 2001:db8:ffff::/48 le 128\n";
    let maps = |rm: &str| {
        format!(
            "route-map {rm}-V4 permit 50000\n match ip address prefix-list ROUTELB-POOL-a-V4\nexit\n\
             route-map {rm}-V6 permit 50000\n match ipv6 address prefix-list ROUTELB-POOL-a-V6\nexit\n"
        )
    };
    match protocol {
        "bgp" => format!(
            "{lists}{}router bgp {instance}\n address-family ipv4 unicast\n  redistribute connected route-map ROUTELB-BGP-V4\n exit-address-family\n address-family ipv6 unicast\n  redistribute connected route-map ROUTELB-BGP-V6\n exit-address-family\nexit\n",
            maps("ROUTELB-BGP")
        ),
        "isis" => format!(
            "{lists}{}router isis {instance}\n redistribute ipv4 connected level-2 route-map ROUTELB-ISIS-V4\n redistribute ipv6 connected level-2 route-map ROUTELB-ISIS-V6\nexit\n",
            maps("ROUTELB-ISIS")
        ),
        "rip" => format!(
            "{lists}{}router rip\n redistribute connected route-map ROUTELB-RIP-V4\nexit\nrouter ripng\n redistribute connected route-map ROUTELB-RIP-V6\nexit\n",
            maps("ROUTELB-RIP")
        ),
        _ => format!(
            "{lists}{}router ospf\n redistribute connected route-map ROUTELB-OSPF-V4\nexit\nrouter ospf6\n redistribute connected route-map ROUTELB-OSPF-V6\nexit\n",
            maps("ROUTELB-OSPF")
        ),
    }
}

/// routelb's fragment for the same pool as [`fragment`], rendered by the templates for the
/// instances the node's running configuration holds (so with the fallback entries that keep
/// the base's own `redistribute connected`), exported by `protocol` (`bgp`, `ospf`).
async fn rendered(driver: &Driver, protocol: &str) -> String {
    use routelb::api::{AddressPool, RoutingPolicy};
    use routelb::render::{DaemonKind, RenderInput, Templates, build};
    use serde_json::json;
    let Driver::Frr(frr) = driver else {
        panic!("an FRR lab")
    };
    let instances = frr.instances().await.unwrap();
    let pool: AddressPool = serde_json::from_value(json!({
        "apiVersion": "routelb.io/v1alpha1", "kind": "AddressPool",
        "metadata": { "name": "a", "labels": { "routelb-test": "redist" } },
        "spec": { "addresses": ["203.0.113.0/24", "2001:db8:ffff::/48"], "mode": "routed" },
    }))
    .unwrap();
    let policy: RoutingPolicy = serde_json::from_value(json!({
        "apiVersion": "routelb.io/v1alpha1", "kind": "RoutingPolicy",
        "metadata": { "name": "p" },
        "spec": { "poolSelector": { "matchLabels": { "routelb-test": "redist" } },
                  "protocols": [protocol] },
    }))
    .unwrap();
    let built = build(&RenderInput {
        local_endpoints: &Default::default(),
        node: None,
        node_labels: &Default::default(),
        lb_interface: "kube-lb0",
        pools: &[pool],
        policies: &[policy],
        services: &[],
        instances: &instances,
    });
    assert!(built.problems.is_empty(), "{:?}", built.problems);
    Templates::embedded(DaemonKind::Frr)
        .unwrap()
        .render(&built.data)
        .unwrap()
}

/// One verification, as the agent runs it (without the wait for confirmation).
async fn verification(driver: &Driver, expected: &Expected) -> Verification {
    let o = observe::observe(driver, expected).await.unwrap();
    let expected = advertised::only_verified(expected.clone(), &o.unverified);
    let mut exits = o.exits;
    let missing = advertised::missing(&expected, &exits);
    observe::explain(driver, &mut exits, &missing).await;
    advertised::verify(&expected, &exits)
}

/// Waits until a verification satisfies `pred`; panics with the last one otherwise.
async fn wait_verification(
    driver: &Driver,
    expected: &Expected,
    pred: impl Fn(&Verification) -> bool,
) -> Verification {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let v = verification(driver, expected).await;
        if pred(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "verification never as expected; last: {v:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn expected(protocol: Protocol, prefixes: &[&str]) -> Expected {
    [((protocol, None), nets(prefixes))].into()
}

fn service_up(lab: &CorpusLab) {
    lab.ip(&["addr", "add", SVC4, "dev", "kube-lb0"]);
    lab.ip(&["addr", "add", SVC6, "dev", "kube-lb0"]);
}

#[test]
fn corpus_bases_add_at_most_two_lines() {
    for (base, file) in [
        ("unnumbered-leaf", "node.frr.conf"),
        ("ospf-distribute-list", "node.frr.conf"),
    ] {
        let text = std::fs::read_to_string(corpus::base_path(base, file)).unwrap();
        let n = corpus::added_lines(&text);
        assert!((1..=2).contains(&n), "{base}: {n} hand-added lines");
        assert_eq!(
            corpus::without_added(&text).lines().count(),
            text.lines().count() - 2 * n
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unnumbered_leaf_without_added_lines_names_the_route_map() {
    let lab = CorpusLab::up("vf-unn0", "unnumbered-leaf", "bgp", false);
    let driver = lab.driver();
    service_up(&lab);
    driver
        .apply(&fragment("bgp", lab.var("LAB_NODE_AS")))
        .await
        .unwrap();
    let exp = expected(Protocol::Bgp, &[SVC4, SVC6]);
    let v = wait_verification(&driver, &exp, |v| v.unadvertised.len() == 2).await;
    assert!(!v.verdict.ok);
    assert_eq!(v.verdict.reason, "FilteredByPeerPolicy");
    for want in [
        "neighbor eth-rtr (peer-group FABRIC) route-map FABRIC-OUT denies 203.0.113.7/32",
        "neighbor eth-rtr (peer-group FABRIC) route-map FABRIC-OUT denies 2001:db8:ffff::7/128",
    ] {
        assert!(v.verdict.message.contains(want), "{}", v.verdict.message);
    }
    // The base's own routes do reach the router: the session is up, the filter is the cause.
    lab.wait_route("198.18.40.1/32", "present").unwrap();
    assert!(lab.router_route(SVC4).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn unnumbered_leaf_with_added_lines_reaches_the_router() {
    let lab = CorpusLab::up("vf-unn1", "unnumbered-leaf", "bgp", true);
    let driver = lab.driver();
    let own = [
        "198.18.40.1/32",
        "198.18.41.0/24",
        "2001:db8:4040::1/128",
        "2001:db8:4041::/64",
    ];
    for p in own {
        lab.wait_route(p, "present").unwrap();
    }
    let routes_before: Vec<String> = own.iter().map(|p| lab.router_route(p)).collect();
    let sessions = lab.bgp_connections();
    driver
        .apply(&fragment("bgp", lab.var("LAB_NODE_AS")))
        .await
        .unwrap();
    service_up(&lab);
    for p in [SVC4, SVC6] {
        lab.wait_route(p, "present").unwrap();
    }
    let exp = expected(Protocol::Bgp, &[SVC4, SVC6]);
    let v = wait_verification(&driver, &exp, |v| v.verdict.ok).await;
    assert_eq!(v.peers.len(), 2, "{v:#?}");
    assert!(
        v.peers
            .iter()
            .all(|p| p.advertised == 1 && p.missing.is_empty())
    );
    // Removal: routelb's prefix goes, the base's stay as they were, no session reset.
    lab.ip(&["addr", "del", SVC4, "dev", "kube-lb0"]);
    lab.wait_route(SVC4, "absent").unwrap();
    assert!(!lab.router_route(SVC6).is_empty());
    let routes_after: Vec<String> = own.iter().map(|p| lab.router_route(p)).collect();
    assert_eq!(routes_before, routes_after);
    assert_eq!(sessions, lab.bgp_connections());
}

#[tokio::test(flavor = "multi_thread")]
async fn ospf_distribute_list_without_added_line_names_it() {
    let lab = CorpusLab::up("vf-ospf0", "ospf-distribute-list", "ospf", false);
    let driver = lab.driver();
    service_up(&lab);
    driver.apply(&fragment("ospf", "")).await.unwrap();
    // ospf6d has no distribute-list: the IPv6 prefix gets out.
    lab.wait_route(SVC6, "present").unwrap();
    let exp = expected(Protocol::Ospf, &[SVC4, SVC6]);
    let v = wait_verification(&driver, &exp, |v| !v.unadvertised.is_empty()).await;
    assert_eq!(
        v.unadvertised.keys().copied().collect::<BTreeSet<_>>(),
        nets(&[SVC4])
    );
    assert_eq!(v.verdict.reason, "FilteredByPeerPolicy");
    assert_eq!(
        v.verdict.message,
        "router ospf distribute-list HOST-OWN out connected denies 203.0.113.7/32"
    );
    assert!(lab.router_route(SVC4).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn ospf_distribute_list_with_added_line_reaches_the_router() {
    let lab = CorpusLab::up("vf-ospf1", "ospf-distribute-list", "ospf", true);
    let driver = lab.driver();
    driver.apply(&fragment("ospf", "")).await.unwrap();
    service_up(&lab);
    for p in [SVC4, SVC6] {
        lab.wait_route(p, "present").unwrap();
    }
    let exp = expected(Protocol::Ospf, &[SVC4, SVC6]);
    let v = wait_verification(&driver, &exp, |v| v.verdict.ok).await;
    assert_eq!(v.peers.len(), 2, "{v:#?}");
    lab.ip(&["addr", "del", SVC4, "dev", "kube-lb0"]);
    lab.wait_route(SVC4, "absent").unwrap();
    assert!(!lab.router_route(SVC6).is_empty());
}

/// The router's OSPF route to `prefix`: its type (`N E2`, `N E1`) and cost.
fn router_ospf_route(lab: &CorpusLab, prefix: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&lab.router_vtysh("show ip ospf route json")).unwrap_or_default();
    let r = &v[prefix];
    format!(
        "{} cost={} type2cost={}",
        r["routeType"], r["cost"], r["type2cost"]
    )
}

/// The base's own `redistribute connected` (its loopback, let out by the distribute-list)
/// survives routelb's fragment and its removal: FRR keeps one `redistribute connected` per
/// OSPF instance, so routelb's line replaces the base's, and routelb's route-map ends with an
/// entry that passes what the base's line passed; removing the fragment sends the base's line
/// back. The loopback's route at the router (kernel route, OSPF route type and cost) never
/// changes. `base_line`: the base's line set before routelb, instead of the corpus's.
async fn ospf_loopback_kept(name: &str, mode: FrrApply, base_line: Option<&str>, route_type: &str) {
    let lab = CorpusLab::up(name, "ospf-distribute-list", "ospf", true);
    let driver = Driver::Frr(FrrDriver::new(Some(lab.var("LAB_NODE_FRR").into()), mode));
    if let Some(line) = base_line {
        lab.node_configure(&["router ospf", line]);
    }
    let line = base_line.unwrap_or("redistribute connected");
    let lo = "198.18.50.1/32";
    lab.ip(&["addr", "add", lo, "dev", "lo"]);
    lab.wait_route(lo, "present").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !router_ospf_route(&lab, lo).contains(route_type) {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            router_ospf_route(&lab, lo)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at_router = || (lab.router_route(lo), router_ospf_route(&lab, lo));
    let before = at_router();
    let fragment = rendered(&driver, "ospf").await;
    let want = format!("route-map ROUTELB-OSPF-V4 permit 65535\n description base: {line}\n");
    assert!(fragment.contains(&want), "{fragment}");
    driver.apply(&fragment).await.unwrap();
    service_up(&lab);
    lab.wait_route(SVC4, "present").unwrap();
    assert_eq!(at_router(), before);
    // What the daemon holds renders the same fragment again: the base's line is remembered.
    assert_eq!(rendered(&driver, "ospf").await, fragment);
    // Removal gives the base its line back. (The base's distribute-list lets the pool out
    // too, so the base's line itself would pass a Service address still on kube-lb0.)
    driver.apply("").await.unwrap();
    let Driver::Frr(frr) = &driver else {
        unreachable!()
    };
    let running = frr.running_config().await.unwrap();
    assert!(running.contains(&format!("\n {line}\n")), "{running}");
    assert!(!running.contains("ROUTELB"), "{running}");
    lab.ip(&["addr", "del", SVC4, "dev", "kube-lb0"]);
    lab.wait_route(SVC4, "absent").unwrap();
    if mode == FrrApply::Reload {
        // frr-reload.py sends `no redistribute …` before the base's line: the loopback is
        // withdrawn for a moment, and comes back as it was.
        lab.wait_route(lo, "present").unwrap();
    }
    assert_eq!(at_router(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn ospf_base_keeps_its_own_redistributed_loopback() {
    ospf_loopback_kept(
        "rd-ospf",
        FrrApply::Diff,
        None,
        "\"N E2\" cost=10 type2cost=20",
    )
    .await;
}

/// `metric` and `metric-type` of the base's line: the fallback's `set metric` and `set
/// metric-type` give the loopback the same external type and cost.
#[tokio::test(flavor = "multi_thread")]
async fn ospf_base_keeps_its_loopback_metric_and_type() {
    ospf_loopback_kept(
        "rd-ospfm",
        FrrApply::Diff,
        Some("redistribute connected metric 30 metric-type 1"),
        "\"N E1\"",
    )
    .await;
}

/// The same through `frr-reload.py` (`--frr-apply reload`): the full file it gets holds the
/// base's line again once routelb's goes.
#[tokio::test(flavor = "multi_thread")]
async fn ospf_base_keeps_its_own_redistributed_loopback_under_frr_reload() {
    ospf_loopback_kept("rd-ospfr", FrrApply::Reload, None, "\"N E2\"").await;
}

/// The agent, driven through the test API server: NodeState names the filtering peer, the
/// Service is not announced from the node and says why; once the user adds the two lines the
/// condition turns True and the node announces again.
#[tokio::test(flavor = "multi_thread")]
async fn agent_reports_the_filtering_peer_in_node_state() {
    use k8s_openapi::api::core::v1::Service;
    use kube::ResourceExt;
    use kube::api::{Api, PostParams};
    use routelb::api::{AddressPool, NodeState, RoutingPolicy};
    use serde_json::json;
    use support::allocator::Allocator;
    use support::api::{self, unique};
    use support::objects;

    let api_server = support::lock::api_server();
    let lab = CorpusLab::up("vf-agent", "unnumbered-leaf", "bgp", false);
    let client = api::client(&api_server).await;
    let ns = unique("verify");
    api::ensure_namespace(&client, &ns, &[]).await;
    let (pool, policy) = (unique("rt"), unique("pol"));
    let p: AddressPool = serde_json::from_value(json!({
        "apiVersion": "routelb.io/v1alpha1", "kind": "AddressPool",
        "metadata": { "name": pool, "labels": { "routelb-test": ns } },
        "spec": { "addresses": ["203.0.113.0/28", "2001:db8:ffff::/124"], "mode": "routed" },
    }))
    .unwrap();
    Api::<AddressPool>::all(client.clone())
        .create(&PostParams::default(), &p)
        .await
        .unwrap();
    let rp: RoutingPolicy = serde_json::from_value(json!({
        "apiVersion": "routelb.io/v1alpha1", "kind": "RoutingPolicy",
        "metadata": { "name": policy },
        "spec": { "poolSelector": { "matchLabels": { "routelb-test": ns } }, "protocols": ["bgp"] },
    }))
    .unwrap();
    Api::<RoutingPolicy>::all(client.clone())
        .create(&PostParams::default(), &rp)
        .await
        .unwrap();
    let _allocator = Allocator::start(&unique("alloc"), "alloc", &["--node-lease-namespace", &ns]);
    // A fresh name: the NodeState's Events (in `default`) of earlier runs cannot count.
    let node = &unique("vf-node");
    let _agent = NsAgent::start(&lab, node, &ns);
    objects::create_service(
        &client,
        objects::service(
            &ns,
            "web",
            json!({ "metadata": { "annotations": { "routelb.io/pool": pool } },
                    "spec": { "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"] } }),
        ),
    )
    .await;
    let ips = objects::wait_ips(&client, &ns, "web", 2).await;
    let states: Api<NodeState> = Api::all(client.clone());
    let condition = |want: &'static str| {
        let states = states.clone();
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let st = states.get(node).await.ok().and_then(|s| s.status);
                let c = st.as_ref().and_then(|s| {
                    s.conditions
                        .iter()
                        .find(|c| c.type_ == "Advertised")
                        .cloned()
                });
                if let (Some(st), Some(c)) = (st, c)
                    && c.status == want
                {
                    return (st, c);
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "Advertised never {want}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let (st, c) = condition("False").await;
    assert_eq!(c.reason, "FilteredByPeerPolicy", "{c:?}");
    assert!(
        c.message
            .contains("neighbor eth-rtr (peer-group FABRIC) route-map FABRIC-OUT denies"),
        "{}",
        c.message
    );
    let adv = st.advertisement.expect("advertisement reported");
    assert_eq!(adv.unadvertised.len(), 2, "{adv:?}");
    assert!(
        adv.peers
            .iter()
            .all(|p| p.missing == 1 && p.up && p.filters == ["route-map FABRIC-OUT"]),
        "{adv:?}"
    );
    objects::wait_event(&client, "default", node, "FilteredByPeerPolicy").await;
    // The allocator does not count the node as announcing, and says why.
    objects::wait_event(&client, &ns, "web", "NotAnnounced").await;
    let svc = Api::<Service>::namespaced(client.clone(), &ns)
        .get("web")
        .await
        .unwrap();
    assert!(
        svc.annotations().get("routelb.io/announcing").is_none(),
        "{:?}",
        svc.annotations()
    );

    // The user adds the two lines: the daemon advertises, the node announces.
    let vtysh = std::process::Command::new(lab.var("LAB_NODE_VTYSH"))
        .args([
            "-c",
            "conf t",
            "-c",
            "route-map FABRIC-OUT permit 500",
            "-c",
            "match source-protocol connected",
        ])
        .status()
        .unwrap();
    assert!(vtysh.success());
    for ip in &ips {
        let p = if ip.contains(':') {
            format!("{ip}/128")
        } else {
            format!("{ip}/32")
        };
        lab.wait_route(&p, "present").unwrap();
    }
    let (st, c) = condition("True").await;
    assert_eq!(c.reason, "Advertised");
    assert!(st.advertisement.unwrap().unadvertised.is_empty());
    objects::wait_event(&client, "default", node, "Advertised").await;
    let want = format!("{node}/kube-lb0");
    objects::wait_annotation(&client, &ns, "web", "routelb.io/announcing", |a| {
        a == Some(&want)
    })
    .await;
    let _ = Api::<RoutingPolicy>::all(client.clone())
        .delete(&policy, &Default::default())
        .await;
    let _ = Api::<AddressPool>::all(client.clone())
        .delete(&pool, &Default::default())
        .await;
}

/// `routelb agent` in the lab's node namespace, with its own path to the API server.
struct NsAgent {
    child: std::process::Child,
    _proxy: support::apiproxy::ApiProxy,
}

impl NsAgent {
    fn start(lab: &CorpusLab, node: &str, lease_ns: &str) -> NsAgent {
        let ns = lab.var("LAB_NODE_NS");
        let proxy = support::apiproxy::ApiProxy::start(ns);
        let log = std::fs::File::create(format!("/tmp/routelb-{}-agent.log", lab.name)).unwrap();
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(env!("CARGO_BIN_EXE_routelb"))
            .args(["agent", "--node-name", node, "--lease-namespace", lease_ns])
            .args([
                "--metrics-addr",
                "127.0.0.1:9091",
                "--lease-duration",
                "1500ms",
                "--renew-period",
                "300ms",
            ])
            .args([
                "--daemon",
                "frr",
                "--frr-pathspace",
                lab.var("LAB_NODE_FRR"),
            ])
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("routelb starts");
        NsAgent {
            child,
            _proxy: proxy,
        }
    }
}

impl Drop for NsAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The verifier at scale: at 1,000 and then 5,000 prefixes (half IPv4, half IPv6) over the
/// unnumbered leaf every prefix is found advertised. Also prints what one verification costs
/// (wall time, bgpd CPU) and the two FRR views it could use; no timing is asserted.
/// `cargo test --test verify verification_cost -- --nocapture`.
#[tokio::test(flavor = "multi_thread")]
async fn verification_cost() {
    let lab = CorpusLab::up("vf-bench", "unnumbered-leaf", "bgp", true);
    let driver = lab.driver();
    let lists = "ip prefix-list ROUTELB-POOL-a-V4 seq 5 permit 10.200.0.0/16 le 32\n\
                 ipv6 prefix-list ROUTELB-POOL-a-V6 seq 5 permit 2001:db8:eeee::/48 le 128\n";
    let text = fragment("bgp", lab.var("LAB_NODE_AS"));
    let text = format!("{lists}{}", text.split_once("le 128\n").unwrap().1);
    let text = text.replace("203.0.113.0/24", "10.200.0.0/16");
    driver.apply(&text).await.unwrap();
    let pid_file = format!("/var/run/frr/{}/bgpd.pid", lab.var("LAB_NODE_FRR"));
    let pid = std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .to_string();
    let cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<u64> = stat
            .rsplit_once(") ")
            .unwrap()
            .1
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|x| x.parse().unwrap())
            .collect();
        Duration::from_millis((f[0] + f[1]) * 10)
    };
    let mut have = 0;
    for n in [1000usize, 5000] {
        let mut batch = String::new();
        let mut all = vec![];
        for i in have / 2..n / 2 {
            let (hi, lo) = (i / 250, i % 250 + 1);
            batch.push_str(&format!("address add 10.200.{hi}.{lo}/32 dev kube-lb0\n"));
            batch.push_str(&format!(
                "address add 2001:db8:eeee::{i:x}:1/128 dev kube-lb0\n"
            ));
        }
        for i in 0..n / 2 {
            all.push(format!("10.200.{}.{}/32", i / 250, i % 250 + 1));
            all.push(format!("2001:db8:eeee::{i:x}:1/128"));
        }
        have = n;
        let file = std::env::temp_dir().join("vf-bench.batch");
        std::fs::write(&file, batch).unwrap();
        lab.ip(&["-batch", file.to_str().unwrap()]);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let exp = expected(Protocol::Bgp, &all);
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !verification(&driver, &exp).await.verdict.ok {
            assert!(
                std::time::Instant::now() < deadline,
                "{n} prefixes never all advertised"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let rounds = 5;
        let (cpu0, t0) = (cpu(), std::time::Instant::now());
        for _ in 0..rounds {
            assert!(verification(&driver, &exp).await.verdict.ok);
        }
        let (wall, used) = (t0.elapsed() / rounds, (cpu() - cpu0) / rounds);
        eprintln!(
            "verification at {n} prefixes (1 unnumbered neighbor, 2 families): wall {wall:?}, bgpd CPU {used:?}"
        );
        // The alternative: the update-group view (text; one answer per group, not per peer).
        let Driver::Frr(frr) = &driver else {
            unreachable!()
        };
        for cmd in [
            "show bgp ipv4 unicast neighbors eth-rtr advertised-routes json",
            "show bgp ipv4 unicast update-groups advertised-routes",
        ] {
            let (cpu0, t0) = (cpu(), std::time::Instant::now());
            let mut bytes = 0;
            for _ in 0..rounds {
                bytes = frr.show("bgpd", cmd).await.unwrap().unwrap().len();
            }
            eprintln!(
                "  {cmd}: wall {:?}, bgpd CPU {:?}, {bytes} bytes",
                t0.elapsed() / rounds,
                (cpu() - cpu0) / rounds
            );
        }
    }
}

/// `routelb standalone` logs the same verification: a warning naming the peer and its
/// route-map when a Service's prefix reaches no peer.
#[test]
fn standalone_warns_when_a_prefix_reaches_no_peer() {
    let lab = CorpusLab::up("vf-sa", "unnumbered-leaf", "bgp", false);
    let dir = support::files::scratch("vf-sa-config");
    std::fs::write(
        dir.join("pool.yaml"),
        "apiVersion: routelb.io/v1alpha1\nkind: AddressPool\nmetadata: {name: demo}\nspec: {addresses: [\"203.0.113.0/28\"], avoidBuggyIPs: true}\n---\n\
         apiVersion: routelb.io/v1alpha1\nkind: RoutingPolicy\nmetadata: {name: demo}\nspec: {protocols: [bgp]}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {type: LoadBalancer, ports: [{port: 80, protocol: TCP}]}\n",
    )
    .unwrap();
    let state = dir.with_extension("state.json");
    let log = dir.with_extension("log");
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", lab.var("LAB_NODE_NS")])
        .arg(env!("CARGO_BIN_EXE_routelb"))
        .args(["standalone", "--config", dir.to_str().unwrap()])
        .args(["--state", state.to_str().unwrap()])
        .args([
            "--daemon",
            "frr",
            "--frr-pathspace",
            lab.var("LAB_NODE_FRR"),
        ])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let want = "not advertised: neighbor eth-rtr (peer-group FABRIC) route-map FABRIC-OUT denies 203.0.113.1/32";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains(want) || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains(want), "{text}");
    assert!(text.contains("prefixes reach no peer"), "{text}");
}

/// BIRD: `show route exported <protocol>` per BGP protocol. With the lab's export filter
/// calling `routelb_export_bgp()` both families reach their sessions; with a function that
/// lets nothing through, the protocol and its export filter are named.
#[tokio::test(flavor = "multi_thread")]
async fn bird_exports_verified_per_protocol() {
    use routelb::daemon::frr::FrrApply;
    let lab = support::lab::Lab::up("vf-bird", "bird", "bgp");
    let driver = lab.driver(FrrApply::Diff);
    let include = |export: &str| {
        format!(
            "protocol direct routelb_direct {{ ipv4; ipv6; interface \"kube-lb0\"; }}\n\
             function routelb_service() {{\n\
               if proto != \"routelb_direct\" || source != RTS_DEVICE then return false;\n\
               if net.type = NET_IP4 then return net ~ [ 203.0.113.0/24+ ];\n\
               if net.type = NET_IP6 then return net ~ [ 2001:db8:ffff::/48+ ];\n\
               return false;\n\
             }}\n\
             function routelb_export_bgp() {{ return {export}; }}\n\
             function routelb_export_ospf() {{ return false; }}\n\
             function routelb_export_rip() {{ return false; }}\n"
        )
    };
    lab.ip(&["addr", "add", SVC4, "dev", "kube-lb0"]);
    lab.ip(&["addr", "add", SVC6, "dev", "kube-lb0"]);
    driver.apply(&include("routelb_service()")).await.unwrap();
    let exp = expected(Protocol::Bgp, &[SVC4, SVC6]);
    let v = wait_verification(&driver, &exp, |v| v.verdict.ok).await;
    let peers: Vec<_> = v
        .peers
        .iter()
        .map(|p| (p.exit.name.as_str(), p.exit.family, p.advertised))
        .collect();
    assert_eq!(
        peers,
        [
            ("protocol rtr4", advertised::Family::V4, 1),
            ("protocol rtr6", advertised::Family::V6, 1)
        ]
    );
    driver.apply(&include("false")).await.unwrap();
    let v = wait_verification(&driver, &exp, |v| v.unadvertised.len() == 2).await;
    assert_eq!(v.verdict.reason, "FilteredByPeerPolicy");
    assert!(
        v.verdict
            .message
            .contains("protocol rtr4 export filter (unnamed) denies 203.0.113.7/32"),
        "{}",
        v.verdict.message
    );
}

/// IS-IS: this node's own LSP carries both prefixes.
#[tokio::test(flavor = "multi_thread")]
async fn isis_own_lsp_verified() {
    use routelb::daemon::frr::FrrApply;
    let lab = support::lab::Lab::up("vf-isis", "frr", "isis");
    let driver = lab.driver(FrrApply::Diff);
    lab.ip(&["addr", "add", SVC4, "dev", "kube-lb0"]);
    lab.ip(&["addr", "add", SVC6, "dev", "kube-lb0"]);
    driver
        .apply(&fragment("isis", lab.var("LAB_ISIS_TAG")))
        .await
        .unwrap();
    let exp = expected(Protocol::Isis, &[SVC4, SVC6]);
    let v = wait_verification(&driver, &exp, |v| v.verdict.ok).await;
    let names: BTreeSet<&str> = v.peers.iter().map(|p| p.exit.name.as_str()).collect();
    assert_eq!(
        names,
        [format!("router isis {}", lab.var("LAB_ISIS_TAG")).as_str()].into()
    );
    // Without the redistribution, the LSP no longer carries them.
    driver.apply("").await.unwrap();
    let v = wait_verification(&driver, &exp, |v| v.unadvertised.len() == 2).await;
    assert_eq!(v.verdict.reason, "NotAdvertised");
}

/// RIP: an outgoing distribute-list that denies the Service prefix is named.
#[tokio::test(flavor = "multi_thread")]
async fn rip_distribute_list_out_named() {
    use routelb::daemon::frr::FrrApply;
    let lab = support::lab::Lab::up("vf-rip", "frr", "rip");
    let driver = lab.driver(FrrApply::Diff);
    lab.ip(&["addr", "add", SVC4, "dev", "kube-lb0"]);
    lab.ip(&["addr", "add", SVC6, "dev", "kube-lb0"]);
    driver.apply(&fragment("rip", "")).await.unwrap();
    let exp = expected(Protocol::Rip, &[SVC4, SVC6]);
    wait_verification(&driver, &exp, |v| v.verdict.ok).await;
    let st = std::process::Command::new(lab.var("LAB_NODE_VTYSH"))
        .args([
            "-c",
            "conf t",
            "-c",
            "access-list OWN seq 5 permit 198.18.0.0/16",
        ])
        .args(["-c", "router rip", "-c", "distribute-list OWN out eth-rtr"])
        .status()
        .unwrap();
    assert!(st.success());
    lab.wait_route(SVC4, "absent", 30).unwrap();
    let v = wait_verification(&driver, &exp, |v| !v.unadvertised.is_empty()).await;
    assert_eq!(
        v.verdict.message,
        "router rip distribute-list OWN out eth-rtr denies 203.0.113.7/32"
    );
    assert_eq!(v.unadvertised.len(), 1);
}

/// The attributes the router received `prefix` with: AS path, MED, communities.
fn router_attributes(lab: &CorpusLab, prefix: &str) -> String {
    let afi = if prefix.contains(':') { "ipv6" } else { "ipv4" };
    let v: serde_json::Value =
        serde_json::from_str(&lab.router_vtysh(&format!("show bgp {afi} unicast {prefix} json")))
            .unwrap_or_default();
    let paths = v["paths"].as_array().cloned().unwrap_or_default();
    let mut out: Vec<String> = paths
        .iter()
        .map(|p| {
            format!(
                "aspath={} med={} community={}",
                p["aspath"]["string"], p["metric"], p["community"]["string"]
            )
        })
        .collect();
    out.sort();
    out.join("; ")
}

/// A leaf that announces its loopback by `redistribute connected route-map LOOPBACKS` (a
/// community and a MED set there): routelb's line replaces the base's in each address family,
/// and the loopback reaches the router with the same attributes before, during and after.
#[tokio::test(flavor = "multi_thread")]
async fn bgp_leaf_keeps_its_redistributed_loopback_with_its_attributes() {
    let lab = CorpusLab::up("rd-leaf", "leaf-redistribute", "bgp", true);
    let driver = lab.driver();
    let own = ["198.18.60.1/32", "2001:db8:6060::1/128"];
    for p in own {
        lab.ip(&["addr", "add", p, "dev", "lo"]);
        lab.wait_route(p, "present").unwrap();
    }
    let attributes = || own.map(|p| router_attributes(&lab, p));
    let before = attributes();
    for a in &before {
        assert!(a.contains("med=77 community=\"65000:100\""), "{a}");
    }
    let sessions = lab.bgp_connections();
    let fragment = rendered(&driver, "bgp").await;
    for family in ["V4", "V6"] {
        let want = format!(
            "route-map ROUTELB-BGP-{family} permit 65535\n description base: redistribute connected route-map LOOPBACKS\n call LOOPBACKS\n"
        );
        assert!(fragment.contains(&want), "{fragment}");
    }
    driver.apply(&fragment).await.unwrap();
    service_up(&lab);
    for p in [SVC4, SVC6] {
        lab.wait_route(p, "present").unwrap();
    }
    assert_eq!(attributes(), before);
    // routelb's own entries come first: the Service prefix has none of LOOPBACKS' attributes.
    assert!(!router_attributes(&lab, SVC4).contains("65000:100"));
    assert_eq!(rendered(&driver, "bgp").await, fragment);
    driver.apply("").await.unwrap();
    for p in [SVC4, SVC6] {
        lab.wait_route(p, "absent").unwrap();
    }
    assert_eq!(attributes(), before);
    let Driver::Frr(frr) = &driver else {
        unreachable!()
    };
    let running = frr.running_config().await.unwrap();
    assert_eq!(
        running
            .matches("  redistribute connected route-map LOOPBACKS\n")
            .count(),
        2,
        "{running}"
    );
    assert_eq!(sessions, lab.bgp_connections());
}

/// The router's kernel route for `prefix` in a namespace lab.
fn lab_router_route(lab: &support::lab::Lab, prefix: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["-n", lab.var("LAB_RTR_NS")])
        .arg(if prefix.contains(':') { "-6" } else { "-4" })
        .args(["route", "show", "exact", prefix])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What the router's IS-IS or RIP knows of `prefix`: the node's LSP's reachability lines
/// (with the metric), or the RIP/RIPng table's line (with the metric; without its timer).
fn router_igp_view(lab: &support::lab::Lab, proto: &str, prefix: &str) -> String {
    let cmd = match (proto, prefix.contains(':')) {
        ("isis", _) => "show isis database detail",
        (_, false) => "show ip rip",
        (_, true) => "show ipv6 ripng",
    };
    let out = std::process::Command::new(lab.var("LAB_RTR_VTYSH"))
        .args(["-c", cmd])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains(prefix))
        .map(|l| {
            let mut w: Vec<&str> = l.split_whitespace().collect();
            if proto == "rip" {
                w.pop();
            }
            w.join(" ")
        })
        .collect();
    lines.sort();
    lines.join("; ")
}

/// IS-IS and RIP/RIPng bases that redistribute their loopbacks themselves, with a metric and
/// a route-map that sets another: routelb's fallback entries keep both loopbacks at the router
/// as they were, and removing routelb's fragment gives the base its lines back (the Service
/// prefixes, which the base's route-map does not pass, leave).
/// `lines`: (router context, line); `@TAG@` stands for the lab's IS-IS tag.
/// `own`: the loopbacks the base redistributes.
async fn igp_loopbacks_kept(name: &str, proto: &str, lines: &[(&str, &str)], own: &[&str]) {
    use routelb::daemon::frr::FrrApply;
    let lab = support::lab::Lab::up(name, "frr", proto);
    let driver = lab.driver(FrrApply::Diff);
    let vtysh = |args: &[&str]| {
        let mut cmd = std::process::Command::new(lab.var("LAB_NODE_VTYSH"));
        cmd.args(["-c", "configure terminal"]);
        for a in args {
            cmd.args(["-c", a]);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    };
    // By prefix: isisd's `match interface` passes every connected route.
    vtysh(&["ip prefix-list LO-V4 seq 5 permit 198.18.70.1/32"]);
    vtysh(&["ipv6 prefix-list LO-V6 seq 5 permit 2001:db8:7070::1/128"]);
    for (seq, family) in [(10, "ip"), (20, "ipv6")] {
        let v = if family == "ip" { "V4" } else { "V6" };
        vtysh(&[
            &format!("route-map LOOPBACKS permit {seq}"),
            &format!("match {family} address prefix-list LO-{v}"),
            "set metric 5",
        ]);
    }
    for (router, l) in lines {
        let router = match router.contains("@TAG@") {
            true => router.replace("@TAG@", lab.var("LAB_ISIS_TAG")),
            false => router.to_string(),
        };
        vtysh(&[&router, l]);
    }
    for p in ["198.18.70.1/32", "2001:db8:7070::1/128"] {
        lab.ip(&["addr", "add", p, "dev", "lo"]);
    }
    for &p in own {
        lab.wait_route(p, "present", 30).unwrap();
    }
    let at_router = || {
        own.iter()
            .map(|p| (lab_router_route(&lab, p), router_igp_view(&lab, proto, p)))
            .collect::<Vec<_>>()
    };
    let before = at_router();
    for (_, view) in &before {
        assert!(!view.is_empty(), "{before:?}");
    }
    let fragment = rendered(&driver, proto).await;
    assert_eq!(
        fragment
            .matches(" permit 65535\n description base: ")
            .count(),
        lines.len(),
        "{fragment}"
    );
    driver.apply(&fragment).await.unwrap();
    lab.ip(&["addr", "add", SVC4, "dev", "kube-lb0"]);
    lab.ip(&["addr", "add", SVC6, "dev", "kube-lb0"]);
    for p in [SVC4, SVC6] {
        lab.wait_route(p, "present", 30).unwrap();
    }
    assert_eq!(at_router(), before);
    assert_eq!(rendered(&driver, proto).await, fragment);
    // The base's routes stay at the router all along the removal (RIP: through the drain).
    let removal = driver.apply("");
    tokio::pin!(removal);
    let mut samples = 0;
    let outcome = loop {
        tokio::select! {
            outcome = &mut removal => break outcome,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                assert_eq!(at_router(), before, "during the removal");
                samples += 1;
            }
        }
    };
    outcome.unwrap();
    eprintln!("{proto}: removal took {samples} samples of 250 ms, the base's routes in place");
    let Driver::Frr(frr) = &driver else {
        unreachable!()
    };
    let running = frr.running_config().await.unwrap();
    assert!(!running.contains("ROUTELB"), "{running}");
    for (_, line) in lines {
        assert!(running.contains(&format!("\n {line}\n")), "{running}");
    }
    for p in [SVC4, SVC6] {
        if let Err(e) = lab.wait_route(p, "absent", 30) {
            panic!("{e}\n{running}\n{}", router_igp_view(&lab, proto, p));
        }
    }
    assert_eq!(at_router(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn isis_base_keeps_its_own_redistributed_loopbacks() {
    igp_loopbacks_kept(
        "rd-isis",
        "isis",
        &[
            (
                "router isis @TAG@",
                "redistribute ipv4 connected level-2 metric 30 route-map LOOPBACKS",
            ),
            (
                "router isis @TAG@",
                "redistribute ipv6 connected level-2 metric 30 route-map LOOPBACKS",
            ),
        ],
        &["198.18.70.1/32", "2001:db8:7070::1/128"],
    )
    .await;
}

/// RIP only: ripngd 8.4 has no `match ipv6 address prefix-list`, so a RIPng base's route-map
/// cannot pick its loopback this way (the RIPng side here is routelb's alone).
#[tokio::test(flavor = "multi_thread")]
async fn rip_base_keeps_its_own_redistributed_loopbacks() {
    igp_loopbacks_kept(
        "rd-rip",
        "rip",
        &[(
            "router rip",
            "redistribute connected metric 2 route-map LOOPBACKS",
        )],
        &["198.18.70.1/32"],
    )
    .await;
}
