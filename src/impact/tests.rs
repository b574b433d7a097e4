use super::{Effect, bird, frr, summary};

const FRR_BASE: &str = "\
router bgp 64512
 neighbor 172.30.1.1 remote-as 64500
 neighbor 172.30.1.9 remote-as 64500
 address-family ipv4 unicast
  neighbor 172.30.1.1 route-map PEER-OUT out
  neighbor 172.30.1.9 route-map PEER-IN in
  neighbor 172.30.1.9 route-map PEER-OUT out
  neighbor 172.30.1.9 soft-reconfiguration inbound
 exit-address-family
exit
route-map PEER-OUT permit 10
 match ip address prefix-list FABRIC
exit
route-map PEER-IN permit 10
 call SHARED
exit
";

fn scope() -> String {
    "router bgp 64512, ipv4 unicast".into()
}

#[test]
fn a_prefix_list_behind_a_redistribute_route_map_re_evaluates_redistribution() {
    let old = "\
ip prefix-list ROUTELB-P-V4 seq 10 permit 198.18.0.0/27 ge 32
route-map ROUTELB-BGP-V4 permit 10
 match ip address prefix-list ROUTELB-P-V4
router bgp 64512
 address-family ipv4 unicast
  redistribute connected route-map ROUTELB-BGP-V4
";
    let new = old.replace("198.18.0.0/27", "198.18.0.0/26");
    let steps = frr::plan(&format!("{FRR_BASE}{old}"), &new);
    assert_eq!(steps.len(), 1, "{steps:#?}");
    assert_eq!(steps[0].object, "ip prefix-list ROUTELB-P-V4");
    assert_eq!(
        steps[0].lines,
        [
            "no ip prefix-list ROUTELB-P-V4 seq 10 permit 198.18.0.0/27 ge 32",
            "ip prefix-list ROUTELB-P-V4 seq 10 permit 198.18.0.0/26 ge 32"
        ]
    );
    assert_eq!(
        steps[0].effects,
        [Effect::BgpRedistribution { scope: scope() }]
    );
    assert_eq!(summary(&steps).resets, 0);
}

#[test]
fn a_new_redistribute_line_is_sent_in_its_context() {
    let new = "\
route-map ROUTELB-BGP-V4 permit 10
 set community 65000:1 additive
router bgp 64512
 address-family ipv4 unicast
  redistribute connected route-map ROUTELB-BGP-V4
";
    let steps = frr::plan(FRR_BASE, new);
    let redistribute = steps
        .iter()
        .find(|s| s.object.ends_with("redistribute"))
        .unwrap();
    assert_eq!(
        redistribute.lines,
        [
            "router bgp 64512",
            " address-family ipv4 unicast",
            "  redistribute connected route-map ROUTELB-BGP-V4"
        ]
    );
    assert_eq!(
        redistribute.effects,
        [Effect::BgpRedistribution { scope: scope() }]
    );
    // The route-map was used by nothing before the redistribute line came.
    let map = steps
        .iter()
        .find(|s| s.object == "route-map ROUTELB-BGP-V4")
        .unwrap();
    assert_eq!(map.effects, [Effect::BgpRedistribution { scope: scope() }]);
}

#[test]
fn a_hook_into_an_outbound_route_map_re_runs_each_peers_outbound_policy() {
    let new = "\
route-map PEER-OUT permit 64000
 description routelb_pool
 match ip address prefix-list ROUTELB-P-V4
";
    let steps = frr::plan(FRR_BASE, new);
    let hook = steps
        .iter()
        .find(|s| s.object == "route-map PEER-OUT")
        .unwrap();
    assert_eq!(
        hook.effects,
        [
            Effect::BgpOutbound {
                scope: scope(),
                peer: "172.30.1.1".into()
            },
            Effect::BgpOutbound {
                scope: scope(),
                peer: "172.30.1.9".into()
            }
        ]
    );
    assert_eq!(summary(&steps).refreshes, 0);
}

#[test]
fn an_inbound_route_map_asks_for_a_route_refresh_unless_soft_reconfiguration_keeps_routes() {
    let base = FRR_BASE.replace("  neighbor 172.30.1.9 soft-reconfiguration inbound\n", "");
    let hook = "\
route-map PEER-IN permit 64000
 description routelb_pool
 match ip address prefix-list ROUTELB-P-V4
";
    let steps = frr::plan(&base, hook);
    assert_eq!(
        steps[0].effects,
        [Effect::BgpInbound {
            scope: scope(),
            peer: "172.30.1.9".into(),
            route_refresh: true
        }]
    );
    assert_eq!(summary(&steps).refreshes, 1);
    let steps = frr::plan(FRR_BASE, hook);
    assert_eq!(
        steps[0].effects,
        [Effect::BgpInbound {
            scope: scope(),
            peer: "172.30.1.9".into(),
            route_refresh: false
        }]
    );
    // A route-map PEER-IN calls reaches PEER-IN's users too.
    let called = "\
route-map SHARED permit 64000
 description routelb_pool
 match ip address prefix-list ROUTELB-P-V4
";
    let steps = frr::plan(&base, called);
    assert!(steps[0].effects.iter().all(Effect::refreshes), "{steps:#?}");
}

#[test]
fn soft_reconfiguration_of_a_peer_group_or_at_router_level_counts_for_its_members() {
    let base = "\
router bgp 64512
 neighbor FABRIC peer-group
 neighbor 172.30.1.9 peer-group FABRIC
 neighbor 172.30.1.7 remote-as 64500
 neighbor 172.30.1.7 soft-reconfiguration inbound
 address-family ipv4 unicast
  neighbor FABRIC soft-reconfiguration inbound
  neighbor 172.30.1.9 route-map PEER-IN in
  neighbor 172.30.1.7 route-map PEER-IN in
 exit-address-family
exit
route-map PEER-IN permit 10
exit
";
    let hook = "\
route-map PEER-IN permit 64000
 description routelb_pool
 match ip address prefix-list ROUTELB-P-V4
";
    let steps = frr::plan(base, hook);
    assert!(
        steps[0].effects.iter().all(|e| !e.refreshes()),
        "{steps:#?}"
    );
    assert_eq!(steps[0].effects.len(), 2, "{steps:#?}");
}

#[test]
fn ospf_redistribution_and_unused_objects() {
    let old = "\
router ospf
 redistribute connected route-map ROUTELB-OSPF-V4
ip prefix-list ROUTELB-O-V4 seq 10 permit 198.18.0.0/27 ge 32
route-map ROUTELB-OSPF-V4 permit 10
 match ip address prefix-list ROUTELB-O-V4
ip prefix-list ROUTELB-UNUSED-V4 seq 10 permit 198.19.0.0/27 ge 32
";
    let new = old
        .replace("198.18.0.0/27", "198.18.0.0/26")
        .replace("198.19.0.0/27", "198.19.0.0/26");
    let steps = frr::plan(&format!("{FRR_BASE}{old}"), &new);
    let ospf = steps
        .iter()
        .find(|s| s.object == "ip prefix-list ROUTELB-O-V4")
        .unwrap();
    assert_eq!(
        ospf.effects,
        [Effect::OspfExternal {
            scope: "router ospf".into()
        }]
    );
    let unused = steps
        .iter()
        .find(|s| s.object == "ip prefix-list ROUTELB-UNUSED-V4")
        .unwrap();
    assert_eq!(unused.effects, [Effect::Unused]);
}

#[test]
fn nothing_to_change_is_an_empty_plan() {
    let fragment = "\
ip prefix-list ROUTELB-P-V4 seq 10 permit 198.18.0.0/27 ge 32
";
    assert!(frr::plan(&format!("{FRR_BASE}{fragment}"), fragment).is_empty());
    assert!(bird::plan(BIRD_BASE, BIRD_INCLUDE, BIRD_INCLUDE).is_empty());
}

const BIRD_BASE: &str = r#"
router id 172.30.1.2;
# the network team's filters call routelb's functions
filter rtr_out { if routelb_export_bgp() then accept; reject; }
protocol bgp rtr4 {
  local as 64512;
  neighbor 172.30.1.1 as 64500;
  ipv4 { import all; export filter rtr_out; };
}
protocol bgp rtr6 {
  local as 64512;
  neighbor fd00:30:1::1 as 64500;
  ipv6 { import where routelb_accept(); export none; };
}
protocol ospf v2 ospf4 {
  ipv4 { export where routelb_export_ospf(); };
  area 0 { interface "eth0"; };
}
include "/etc/bird/routelb.conf";
"#;

const BIRD_INCLUDE: &str = r#"
protocol direct routelb_direct {
  ipv4 { preference 250; };
  interface "kube-lb0";
}
define ROUTELB_P_V4 = [ 198.18.0.0/27{32,32} ];
define ROUTELB_UNUSED_V4 = [ 198.19.0.0/27{32,32} ];
function routelb_export_bgp()
{
  if net ~ ROUTELB_P_V4 then { bgp_community.add((65000, 1)); return true; }
  return false;
}
function routelb_export_ospf()
{
  return false;
}
function routelb_accept() { return true; }
"#;

#[test]
fn a_bird_define_reaches_the_protocols_whose_filters_call_it() {
    let new = BIRD_INCLUDE.replace("198.18.0.0/27", "198.18.0.0/26");
    let steps = bird::plan(BIRD_BASE, BIRD_INCLUDE, &new);
    assert_eq!(steps.len(), 1, "{steps:#?}");
    assert_eq!(steps[0].object, "define ROUTELB_P_V4");
    assert_eq!(
        steps[0].lines,
        [
            "- define ROUTELB_P_V4 = [ 198.18.0.0/27{32,32} ]",
            "+ define ROUTELB_P_V4 = [ 198.18.0.0/26{32,32} ]"
        ]
    );
    assert_eq!(
        steps[0].effects,
        [Effect::BirdReexport {
            protocol: "rtr4".into()
        }]
    );
}

#[test]
fn a_bird_function_in_an_import_filter_reloads_the_import() {
    let new = BIRD_INCLUDE.replace(
        "function routelb_accept() { return true; }",
        "function routelb_accept() { return false; }",
    );
    let steps = bird::plan(BIRD_BASE, BIRD_INCLUDE, &new);
    assert_eq!(
        steps[0].effects,
        [Effect::BirdReimport {
            protocol: "rtr6".into()
        }]
    );
    assert_eq!(summary(&steps).refreshes, 1);
}

#[test]
fn bird_unused_and_ospf_and_the_direct_protocol() {
    let new = BIRD_INCLUDE
        .replace("198.19.0.0/27", "198.19.0.0/26")
        .replace(
            "  return false;\n}\nfunction routelb_accept",
            "  return true;\n}\nfunction routelb_accept",
        )
        .replace("\"kube-lb0\"", "\"kube-lb1\"");
    let steps = bird::plan(BIRD_BASE, BIRD_INCLUDE, &new);
    let effects = |object: &str| {
        steps
            .iter()
            .find(|s| s.object == object)
            .unwrap_or_else(|| panic!("{object} not in {steps:#?}"))
            .effects
            .clone()
    };
    assert_eq!(effects("define ROUTELB_UNUSED_V4"), [Effect::Unused]);
    assert_eq!(
        effects("function routelb_export_ospf"),
        [Effect::BirdReexport {
            protocol: "ospf4".into()
        }]
    );
    assert_eq!(
        effects("protocol routelb_direct"),
        [Effect::BirdRestart {
            protocol: "routelb_direct".into()
        }]
    );
}
