//! What `routelb plan` says a change does is what the real daemon does. Each case plans a
//! fragment against the running daemon (as `routelb plan` does), applies it with routelb's
//! driver, and measures: FRR's session counters (established connections, ROUTE-REFRESHes
//! sent) and what the router receives; OSPF's adjacency; BIRD's protocols (restarted or not)
//! and the router's view of the session. A rule of `src/impact` that stops matching the daemon
//! fails here. Needs root, FRR and BIRD.

mod support {
    pub mod daemon;
    pub mod files;
    pub mod lab;
    pub mod lock;
    pub mod script;
}

use std::process::Command;
use std::time::{Duration, Instant};

use routelb::daemon::Driver;
use routelb::daemon::frr::FrrApply;
use routelb::impact::{Effect, Step};
use serde_json::Value;
use support::lab::Lab;

/// The node's counters of its IPv4 session with the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counters {
    established: u64,
    refreshes_sent: u64,
}

fn counters(lab: &Lab) -> Counters {
    let rtr = lab.var("LAB_RTR_V4");
    let v: Value = serde_json::from_str(&lab.node_vtysh(&format!("show bgp neighbors {rtr} json")))
        .unwrap_or_default();
    let n = &v[rtr];
    Counters {
        established: n["connectionsEstablished"].as_u64().unwrap_or(0),
        refreshes_sent: n["messageStats"]["routeRefreshSent"].as_u64().unwrap_or(0),
    }
}

/// Waits (every 50 ms, up to 15 s) until `done` holds; panics naming `what` otherwise.
fn wait(what: &str, done: impl Fn() -> bool) -> Duration {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < Duration::from_secs(15), "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    t0.elapsed()
}

/// The router's communities on `prefix`, or None when it has no path to it.
fn router_communities(lab: &Lab, prefix: &str) -> Option<String> {
    let v: Value =
        serde_json::from_str(&lab.router_vtysh(&format!("show bgp ipv4 unicast {prefix} json")))
            .ok()?;
    let path = v["paths"].as_array()?.first()?.clone();
    Some(
        path["community"]["string"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    )
}

/// Plans `fragment` against the running daemon, applies it, and returns the plan.
async fn plan_and_apply(driver: &Driver, fragment: &str) -> Vec<Step> {
    let steps = routelb::impact::live::plan(driver, fragment).await.unwrap();
    assert!(!steps.is_empty(), "nothing planned for\n{fragment}");
    driver.apply(fragment).await.unwrap();
    steps
}

fn effects(steps: &[Step]) -> Vec<Effect> {
    let mut all: Vec<Effect> = steps.iter().flat_map(|s| s.effects.clone()).collect();
    all.sort();
    all.dedup();
    all
}

/// The effects of the step changing `object`.
fn effects_on(steps: &[Step], object: &str) -> Vec<Effect> {
    steps
        .iter()
        .find(|s| s.object == object)
        .unwrap_or_else(|| panic!("no change to {object}: {steps:#?}"))
        .effects
        .clone()
}

fn inbound(peer: &str, route_refresh: bool) -> Effect {
    Effect::BgpInbound {
        scope: "router bgp 64512, ipv4 unicast".into(),
        peer: peer.into(),
        route_refresh,
    }
}

fn fragment(x: &str, set: &str, hooks: &str) -> String {
    format!(
        "ip prefix-list ROUTELB-P-V4 seq 10 permit 198.18.{x}.0/27 ge 32
route-map ROUTELB-BGP-V4 permit 10
 match ip address prefix-list ROUTELB-P-V4
{set}
router bgp 64512
 address-family ipv4 unicast
  redistribute connected route-map ROUTELB-BGP-V4
{hooks}"
    )
}

const HOOK_IN: &str = "route-map PEER-IN permit 64000
 description routelb_p
 match ip address prefix-list ROUTELB-P-V4
";
const HOOK_OUT: &str = "route-map PEER-OUT permit 64000
 description routelb_p
 match ip address prefix-list ROUTELB-P-V4
";

/// FRR BGP: redistribution re-evaluated, outbound policy re-run, inbound policy re-run by a
/// ROUTE-REFRESH unless soft-reconfiguration keeps the routes; never a session reset.
#[tokio::test(flavor = "multi_thread")]
async fn frr_bgp_changes_do_what_the_plan_says() {
    let lab = Lab::up("planbgp", "frr", "bgp");
    let x = lab.var("LAB_INDEX").to_string();
    let rtr = lab.var("LAB_RTR_V4").to_string();
    let prefix = format!("198.18.{x}.1/32");
    lab.ip(&["addr", "add", &prefix, "dev", lab.var("LAB_LB_IF")]);
    let driver = lab.driver(FrrApply::Diff);
    let scope = "router bgp 64512, ipv4 unicast".to_string();
    let start = counters(&lab);

    // Redistribution through a new route-map.
    let steps = plan_and_apply(&driver, &fragment(&x, "", "")).await;
    assert_eq!(
        effects(&steps),
        [Effect::BgpRedistribution {
            scope: scope.clone()
        }]
    );
    wait("the router has the route", || {
        router_communities(&lab, &prefix).is_some()
    });

    // A community set in it: re-evaluated redistribution, the router gets the community.
    let with_community = fragment(&x, " set community 65000:1 additive", "");
    let steps = plan_and_apply(&driver, &with_community).await;
    assert_eq!(
        effects(&steps),
        [Effect::BgpRedistribution {
            scope: scope.clone()
        }]
    );
    let took = wait("the router sees 65000:1", || {
        router_communities(&lab, &prefix).is_some_and(|c| c.contains("65000:1"))
    });
    println!("community through redistribution: at the router after {took:?}");
    assert_eq!(counters(&lab), start, "no reset, no ROUTE-REFRESH");

    // A hook into a route-map the base uses inbound: a ROUTE-REFRESH to the router.
    lab.configure(
        "LAB_NODE_FRR",
        &[
            "route-map PEER-IN permit 10",
            "exit",
            "router bgp 64512",
            "address-family ipv4 unicast",
            &format!("neighbor {rtr} route-map PEER-IN in"),
        ],
    );
    let refreshed = wait("binding the inbound map refreshes", || {
        counters(&lab).refreshes_sent > start.refreshes_sent
    });
    let before = counters(&lab);
    let steps = plan_and_apply(&driver, &format!("{with_community}{HOOK_IN}")).await;
    assert_eq!(
        effects_on(&steps, "route-map PEER-IN"),
        [inbound(&rtr, true)]
    );
    let took = wait("a ROUTE-REFRESH to the router", || {
        counters(&lab).refreshes_sent > before.refreshes_sent
    });
    println!("inbound hook: ROUTE-REFRESH after {took:?} (binding the map: {refreshed:?})");
    assert_eq!(counters(&lab).established, start.established, "no reset");

    // With soft-reconfiguration inbound: no ROUTE-REFRESH. A community change in the same
    // apply is what is waited for: bgpd handles both in one run of its route-map timer.
    lab.configure(
        "LAB_NODE_FRR",
        &[
            "router bgp 64512",
            "address-family ipv4 unicast",
            &format!("neighbor {rtr} soft-reconfiguration inbound"),
        ],
    );
    wait("turning soft-reconfiguration on refreshes once", || {
        counters(&lab).refreshes_sent > before.refreshes_sent + 1
    });
    let before = counters(&lab);
    let soft = fragment(&x, " set community 65000:2 additive", "");
    let steps = plan_and_apply(&driver, &soft).await;
    assert_eq!(
        effects_on(&steps, "route-map PEER-IN"),
        [inbound(&rtr, false)]
    );
    wait("the router sees 65000:2", || {
        router_communities(&lab, &prefix).is_some_and(|c| c.contains("65000:2"))
    });
    assert_eq!(counters(&lab), before, "no ROUTE-REFRESH, no reset");

    // A hook into a route-map the base uses outbound: the router gets the route back.
    lab.configure(
        "LAB_NODE_FRR",
        &[
            "ip prefix-list FABRIC seq 5 permit 10.255.255.0/24",
            "route-map PEER-OUT permit 10",
            "match ip address prefix-list FABRIC",
            "exit",
            "router bgp 64512",
            "address-family ipv4 unicast",
            &format!("neighbor {rtr} route-map PEER-OUT out"),
        ],
    );
    wait("the base's outbound map withdraws the route", || {
        router_communities(&lab, &prefix).is_none()
    });
    let before = counters(&lab);
    let steps = plan_and_apply(&driver, &format!("{soft}{HOOK_OUT}")).await;
    assert_eq!(
        effects_on(&steps, "route-map PEER-OUT"),
        [Effect::BgpOutbound {
            scope,
            peer: rtr.clone()
        }]
    );
    let took = wait("the router has the route again", || {
        router_communities(&lab, &prefix).is_some()
    });
    println!("outbound hook: route at the router after {took:?}");
    assert_eq!(counters(&lab), before, "no ROUTE-REFRESH, no reset");
}

/// FRR OSPF: external LSAs follow the route-map; the adjacency stays up throughout.
#[tokio::test(flavor = "multi_thread")]
async fn frr_ospf_changes_do_what_the_plan_says() {
    let lab = Lab::up("planospf", "frr", "ospf");
    let x = lab.var("LAB_INDEX").to_string();
    let prefix = format!("198.18.{x}.1/32");
    lab.ip(&["addr", "add", &prefix, "dev", lab.var("LAB_LB_IF")]);
    let driver = lab.driver(FrrApply::Diff);
    let state_changes = || {
        let v: Value = serde_json::from_str(&lab.node_vtysh("show ip ospf neighbor detail json"))
            .unwrap_or_default();
        v["neighbors"]
            .as_object()
            .and_then(|n| n.values().next())
            .and_then(|n| n[0]["stateChangeCounter"].as_u64())
    };
    let adjacency = state_changes().expect("an OSPF neighbour");
    let ospf = |net: &str| {
        format!(
            "ip prefix-list ROUTELB-O-V4 seq 10 permit {net} ge 32
route-map ROUTELB-OSPF-V4 permit 10
 match ip address prefix-list ROUTELB-O-V4
router ospf
 redistribute connected route-map ROUTELB-OSPF-V4
"
        )
    };
    let scope = "router ospf".to_string();
    let steps = plan_and_apply(&driver, &ospf(&format!("198.18.{x}.0/27"))).await;
    assert_eq!(
        effects(&steps),
        [Effect::OspfExternal {
            scope: scope.clone()
        }]
    );
    lab.wait_route(&prefix, "present", 15).unwrap();
    let steps = plan_and_apply(&driver, &ospf(&format!("198.19.{x}.0/27"))).await;
    assert_eq!(effects(&steps), [Effect::OspfExternal { scope }]);
    lab.wait_route(&prefix, "absent", 15).unwrap();
    assert_eq!(
        state_changes(),
        Some(adjacency),
        "the adjacency never moved"
    );
}

/// BIRD's include for the lab: the lab's own direct protocol (its interfaces `ifaces`), a
/// prefix set, and the BGP export function setting `community`.
fn bird_include(lb: &str, x: &str, ifaces: &str, community: u32) -> String {
    format!(
        r#"protocol direct routelb_direct {{
  ipv4;
  ipv6;
  interface {ifaces};
}}
define ROUTELB_P_V4 = [ 198.18.{x}.0/27{{32,32}} ];
function routelb_export_bgp()
{{
  if !(proto = "routelb_direct" || (source = RTS_DEVICE && ifname = "{lb}")) then return false;
  if (net.type = NET_IP4 && net ~ ROUTELB_P_V4) then {{
    bgp_community.add((65000, {community}));
    return true;
  }}
  return false;
}}
function routelb_export_ospf() {{ return false; }}
function routelb_export_rip() {{ return false; }}
"#
    )
}

/// When BIRD says a protocol last changed state (`show protocols`' Since column).
fn bird_since(lab: &Lab, protocol: &str) -> String {
    let out = Command::new("birdc")
        .args(["-s", lab.var("LAB_BIRD_SOCKET"), "show", "protocols"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(protocol))
        .map(|l| {
            l.split_whitespace()
                .skip(4)
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// BIRD: a prefix set or the export function changes → the BGP protocols that call it export
/// again, sessions stay; the direct protocol's own block changes → BIRD restarts it.
#[tokio::test(flavor = "multi_thread")]
async fn bird_changes_do_what_the_plan_says() {
    let lab = Lab::up("planbird", "bird", "bgp");
    let x = lab.var("LAB_INDEX").to_string();
    let lb = lab.var("LAB_LB_IF").to_string();
    let prefix = format!("198.18.{x}.1/32");
    lab.ip(&["addr", "add", &prefix, "dev", &lb]);
    let driver = lab.driver(FrrApply::Diff);
    let reexport = |p: &str| Effect::BirdReexport {
        protocol: p.to_string(),
    };
    let sessions = lab.bgp_connections();
    let lab_iface = format!("\"{lb}\"");

    // The prefix set and the function appear: both BGP protocols export again.
    let steps = plan_and_apply(&driver, &bird_include(&lb, &x, &lab_iface, 1)).await;
    assert_eq!(
        effects(&steps),
        [reexport("rtr4"), reexport("rtr6")],
        "{steps:#?}"
    );
    assert!(
        !steps.iter().any(|s| s.object == "protocol routelb_direct"),
        "the lab's direct protocol is unchanged: {steps:#?}"
    );
    wait("the router has the route with 65000:1", || {
        router_communities(&lab, &prefix).is_some_and(|c| c.contains("65000:1"))
    });

    // The function sets another community: re-exported, the session stays.
    let rtr4_since = bird_since(&lab, "rtr4");
    assert!(!rtr4_since.is_empty(), "rtr4 in show protocols");
    let steps = plan_and_apply(&driver, &bird_include(&lb, &x, &lab_iface, 2)).await;
    assert_eq!(steps.len(), 1, "{steps:#?}");
    assert_eq!(steps[0].object, "function routelb_export_bgp");
    assert_eq!(effects(&steps), [reexport("rtr4"), reexport("rtr6")]);
    let took = wait("the router sees 65000:2", || {
        router_communities(&lab, &prefix).is_some_and(|c| c.contains("65000:2"))
    });
    println!("BIRD function change: at the router after {took:?}");
    assert_eq!(bird_since(&lab, "rtr4"), rtr4_since, "rtr4 not restarted");
    assert_eq!(lab.bgp_connections(), sessions, "no session reset");

    // The direct protocol's interfaces change: BIRD restarts it, the BGP sessions stay.
    let direct_since = bird_since(&lab, "routelb_direct");
    let more = format!("{lab_iface}, \"dummy9\"");
    let steps = plan_and_apply(&driver, &bird_include(&lb, &x, &more, 2)).await;
    assert_eq!(
        effects(&steps),
        [Effect::BirdRestart {
            protocol: "routelb_direct".into()
        }]
    );
    wait("BIRD restarted routelb_direct", || {
        bird_since(&lab, "routelb_direct") != direct_since
    });
    wait("the router has the route again", || {
        router_communities(&lab, &prefix).is_some()
    });
    assert_eq!(bird_since(&lab, "rtr4"), rtr4_since, "rtr4 not restarted");
    assert_eq!(lab.bgp_connections(), sessions, "no session reset");
}
