use std::collections::BTreeSet;

use super::*;
use crate::daemon::frr_config::parse;

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn export(protocol: Protocol, v4: &[&str], v6: &[&str]) -> Export {
    Export {
        protocol,
        v4: nets(v4),
        v6: nets(v6),
        attributes: false,
    }
}

fn bgp(v4: &[&str], v6: &[&str]) -> Vec<Export> {
    vec![export(Protocol::Bgp { vrf: None }, v4, v6)]
}

const V4: &[&str] = &["198.51.100.7/32"];
const V6: &[&str] = &["2001:db8:100::7/128"];

fn frr(text: &str, exports: &[Export]) -> Vec<Finding> {
    frr::check(&parse(text), exports, &BTreeSet::new())
}

fn errors(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.to_string())
        .collect()
}

fn warnings(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .map(|f| f.to_string())
        .collect()
}

/// frr-k8s style: a per-neighbor route-map permitting only an exact-match prefix-list.
const FRR_K8S: &str = "frr defaults traditional
ip prefix-list 10.0.0.2-pl-ipv4 seq 1 permit 192.169.1.0/24
ipv6 prefix-list 10.0.0.2-pl-ipv4 seq 2 deny any
route-map 10.0.0.2-out permit 1
  match ip address prefix-list 10.0.0.2-pl-ipv4
route-map 10.0.0.2-out permit 2
  match ipv6 address prefix-list 10.0.0.2-pl-ipv4
router bgp 64512
  no bgp ebgp-requires-policy
  no bgp default ipv4-unicast
  neighbor 10.0.0.2 remote-as 64500
  address-family ipv4 unicast
    neighbor 10.0.0.2 activate
    neighbor 10.0.0.2 route-map 10.0.0.2-out out
  exit-address-family
";

#[test]
fn a_route_map_permitting_other_prefixes_only_denies_routelbs() {
    let f = frr(FRR_K8S, &bgp(V4, &[]));
    assert_eq!(
        errors(&f),
        [
            "error: neighbor 10.0.0.2 (vrf default): route-map 10.0.0.2-out denies 198.51.100.7/32 (entry 1 permit does not match: ip prefix-list 10.0.0.2-pl-ipv4 has no entry for it; entry 2 permit does not match: `match ipv6 address prefix-list 10.0.0.2-pl-ipv4` does not match an IPv4 route; then implicit deny)"
        ]
    );
    let fixed = FRR_K8S.replace(
        "ipv6 prefix-list",
        "ip prefix-list 10.0.0.2-pl-ipv4 seq 100 permit 198.51.100.0/24 le 32\nipv6 prefix-list",
    );
    assert!(frr(&fixed, &bgp(V4, &[])).is_empty());
    // An exact-match entry for the pool block is not enough: the routes are /32.
    let exact = FRR_K8S.replace(
        "ipv6 prefix-list",
        "ip prefix-list 10.0.0.2-pl-ipv4 seq 100 permit 198.51.100.0/24\nipv6 prefix-list",
    );
    assert_eq!(errors(&frr(&exact, &bgp(V4, &[]))).len(), 1);
}

#[test]
fn a_hooked_route_map_permits() {
    let hooked: BTreeSet<String> = ["10.0.0.2-out".to_string()].into();
    assert!(frr::check(&parse(FRR_K8S), &bgp(V4, &[]), &hooked).is_empty());
}

#[test]
fn a_missing_route_map_denies_everything() {
    let base = FRR_K8S.replace("route-map 10.0.0.2-out out", "route-map PEER-OUT out");
    let e = errors(&frr(&base, &bgp(V4, &[])));
    assert!(
        e[0].contains("route-map PEER-OUT does not exist, and FRR denies every route"),
        "{e:?}"
    );
}

#[test]
fn route_map_entries_deny_in_order_and_on_match_goes_on() {
    let base = |entries: &str| {
        format!(
            "ip prefix-list POOL seq 5 permit 198.51.100.0/24 le 32
ip prefix-list ALL seq 5 permit 0.0.0.0/0 le 32
{entries}
router bgp 64512
 neighbor 10.0.0.2 remote-as 64500
 address-family ipv4 unicast
  neighbor 10.0.0.2 route-map OUT out
 exit-address-family
"
        )
    };
    let deny_first = base(
        "route-map OUT deny 10\n match ip address prefix-list POOL\nroute-map OUT permit 20\n match ip address prefix-list ALL\n",
    );
    let e = errors(&frr(&deny_first, &bgp(V4, &[])));
    assert!(e[0].ends_with("(entry 10 deny matches)"), "{e:?}");
    let permit_first = base(
        "route-map OUT permit 10\n match ip address prefix-list POOL\nroute-map OUT deny 20\n match ip address prefix-list ALL\n",
    );
    assert!(frr(&permit_first, &bgp(V4, &[])).is_empty());
    // on-match next goes on to the deny.
    let next = permit_first.replace("prefix-list POOL\n", "prefix-list POOL\n on-match next\n");
    assert_eq!(errors(&frr(&next, &bgp(V4, &[]))).len(), 1);
    // An entry without a match clause matches everything; `call` of a denying map denies.
    let call = base(
        "route-map OUT permit 10\n call INNER\nroute-map INNER deny 10\n match ip address prefix-list ALL\n",
    );
    let e = errors(&frr(&call, &bgp(V4, &[])));
    assert!(
        e[0].contains("entry 10 calls route-map INNER: entry 10 deny matches"),
        "{e:?}"
    );
    // A match routelb cannot evaluate: a warning, not an error.
    let community = base("route-map OUT permit 10\n match community TEAM\n");
    let f = frr(&community, &bgp(V4, &[]));
    assert!(errors(&f).is_empty());
    assert!(
        warnings(&f)[0].contains("`match community TEAM` cannot be evaluated"),
        "{f:?}"
    );
}

#[test]
fn prefix_lists_honour_ge_le_and_sequence() {
    let base = |list: &str| {
        format!(
            "{list}
router bgp 64512
 neighbor 10.0.0.2 remote-as 64500
 address-family ipv4 unicast
  neighbor 10.0.0.2 prefix-list OUT out
 exit-address-family
"
        )
    };
    let deny_seq = base(
        "ip prefix-list OUT seq 10 deny 198.51.100.0/24 ge 32\nip prefix-list OUT seq 5 permit 10.0.0.0/8 le 32",
    );
    let e = errors(&frr(&deny_seq, &bgp(V4, &[])));
    assert!(
        e[0].contains("prefix-list OUT denies 198.51.100.7/32 (ip prefix-list OUT seq 10 deny 198.51.100.0/24 ge 32)"),
        "{e:?}"
    );
    let fixed = base(
        "ip prefix-list OUT seq 5 permit 198.51.100.0/24 ge 24 le 32\nip prefix-list OUT seq 10 deny any",
    );
    assert!(frr(&fixed, &bgp(V4, &[])).is_empty());
    let missing = base("");
    assert!(errors(&frr(&missing, &bgp(V4, &[])))[0].contains("prefix-list OUT does not exist"));
}

#[test]
fn distribute_and_filter_lists_of_a_neighbor() {
    let base = |lists: &str, filter: &str| {
        format!(
            "{lists}
router bgp 64512
 neighbor 10.0.0.2 remote-as 64500
 address-family ipv4 unicast
  neighbor 10.0.0.2 {filter} OUT out
 exit-address-family
"
        )
    };
    let acl = base("access-list OUT seq 5 permit 10.0.0.0/8", "distribute-list");
    assert!(errors(&frr(&acl, &bgp(V4, &[])))[0].contains(
        "distribute-list OUT denies 198.51.100.7/32 (access-list OUT has no entry for it)"
    ));
    let acl_ok = base(
        "access-list OUT seq 5 permit 198.51.100.0/24",
        "distribute-list",
    );
    assert!(frr(&acl_ok, &bgp(V4, &[])).is_empty());
    let exact = base(
        "access-list OUT seq 5 permit 198.51.100.0/24 exact-match",
        "distribute-list",
    );
    assert_eq!(errors(&frr(&exact, &bgp(V4, &[]))).len(), 1);
    // Routes this node originates have an empty AS path when bgpd filters them.
    let as_path = base(
        "bgp as-path access-list OUT seq 5 permit ^64500_",
        "filter-list",
    );
    assert!(
        errors(&frr(&as_path, &bgp(V4, &[])))[0].contains("no entry matching the empty AS path")
    );
    let as_path_ok = base("bgp as-path access-list OUT seq 5 permit ^$", "filter-list");
    assert!(frr(&as_path_ok, &bgp(V4, &[])).is_empty());
    let any = base("bgp as-path access-list OUT seq 5 permit .*", "filter-list");
    assert!(frr(&any, &bgp(V4, &[])).is_empty());
}

const EBGP_BARE: &str = "router bgp 64512
 neighbor 10.0.0.2 remote-as external
 neighbor 10.0.0.3 remote-as 64512
";

#[test]
fn ebgp_requires_policy_depends_on_the_defaults_profile() {
    let e = errors(&frr(
        &format!("frr defaults traditional\n{EBGP_BARE}"),
        &bgp(V4, &[]),
    ));
    assert_eq!(e.len(), 1, "the iBGP neighbor is fine: {e:?}");
    assert!(
        e[0].starts_with(
            "error: neighbor 10.0.0.2 (vrf default): eBGP neighbor without an outbound policy"
        ),
        "{e:?}"
    );
    assert!(e[0].contains("`frr defaults traditional`"));
    // No profile line: FRR's built-in default (traditional) applies.
    assert_eq!(errors(&frr(EBGP_BARE, &bgp(V4, &[]))).len(), 1);
    assert!(
        frr(
            &format!("frr defaults datacenter\n{EBGP_BARE}"),
            &bgp(V4, &[])
        )
        .is_empty()
    );
    assert!(frr(&format!("frr version 7.2\n{EBGP_BARE}"), &bgp(V4, &[])).is_empty());
    let fixed = EBGP_BARE.replace(
        "router bgp 64512\n",
        "router bgp 64512\n no bgp ebgp-requires-policy\n",
    );
    assert!(frr(&fixed, &bgp(V4, &[])).is_empty());
    // A neighbor shut down is left alone.
    let shut = format!("{EBGP_BARE} neighbor 10.0.0.2 shutdown\n");
    assert!(frr(&shut, &bgp(V4, &[])).is_empty());
    // A confederation peer is not eBGP to bgpd.
    let confed =
        format!("{EBGP_BARE} bgp confederation peers 64600\n").replace("external", "64600");
    assert!(frr(&confed, &bgp(V4, &[])).is_empty());
    // `local-as` makes a session with the same remote AS internal.
    let local =
        "router bgp 64512\n neighbor 10.0.0.2 remote-as 64600\n neighbor 10.0.0.2 local-as 64600\n";
    assert!(frr(local, &bgp(V4, &[])).is_empty());
}

#[test]
fn peer_groups_pass_on_their_filters_and_activation() {
    let base = "ip prefix-list TEAM seq 5 permit 10.1.0.0/16 le 32
route-map FABRIC-OUT permit 10
 match ip address prefix-list TEAM
router bgp 64512
 no bgp default ipv4-unicast
 neighbor FABRIC peer-group
 neighbor FABRIC remote-as external
 neighbor swp1 interface peer-group FABRIC
 neighbor swp2 interface peer-group FABRIC
 address-family ipv4 unicast
  neighbor FABRIC activate
  neighbor FABRIC route-map FABRIC-OUT out
 exit-address-family
";
    let e = errors(&frr(base, &bgp(V4, &[])));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("error: neighbor swp1 (interface, vrf default): route-map FABRIC-OUT (from peer-group FABRIC) denies 198.51.100.7/32"),
        "{e:?}"
    );
    let fixed = base.replacen(
        "route-map FABRIC-OUT",
        "ip prefix-list TEAM seq 10 permit 198.51.100.0/24 le 32\nroute-map FABRIC-OUT",
        1,
    );
    let f = frr(&fixed, &bgp(V4, &[]));
    assert!(f.is_empty(), "{f:?}");
    // IPv6 pools: the group is not active in ipv6 unicast: a warning per neighbor.
    let w = warnings(&frr(&fixed, &bgp(V4, V6)));
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].contains("not activated in address-family ipv6 unicast"),
        "{w:?}"
    );
    let active6 = fixed.replace(
        " exit-address-family\n",
        " exit-address-family\n address-family ipv6 unicast\n  neighbor FABRIC activate\n exit-address-family\n",
    );
    // Active in IPv6 now, without an outbound policy there: eBGP needs one.
    let e = errors(&frr(&active6, &bgp(V4, V6)));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].contains("eBGP neighbor without an outbound policy"));
}

#[test]
fn a_separate_ipv6_session_needs_no_ipv6_on_the_ipv4_one() {
    let base = "router bgp 64512
 no bgp ebgp-requires-policy
 neighbor 10.0.0.2 remote-as 64500
 neighbor fd00::2 remote-as 64500
 address-family ipv4 unicast
  no neighbor fd00::2 activate
 exit-address-family
 address-family ipv6 unicast
  neighbor fd00::2 activate
 exit-address-family
";
    assert!(frr(base, &bgp(V4, V6)).is_empty());
    let no_v6 = base.replace("  neighbor fd00::2 activate\n", "");
    let w = warnings(&frr(&no_v6, &bgp(V4, V6)));
    assert_eq!(w.len(), 2, "both sessions lack IPv6: {w:?}");
}

#[test]
fn vrf_instances_are_checked_against_their_own_exports() {
    let base = "router bgp 64512
 no bgp ebgp-requires-policy
 neighbor 10.0.0.2 remote-as 64500
router bgp 64512 vrf red
 neighbor 10.1.0.2 remote-as 64501
 neighbor 10.1.0.2 ebgp-multihop 2
";
    let red = vec![export(
        Protocol::Bgp {
            vrf: Some("red".into()),
        },
        V4,
        &[],
    )];
    let e = errors(&frr(base, &red));
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("error: neighbor 10.1.0.2 (vrf red): eBGP neighbor"),
        "{e:?}"
    );
    assert!(frr(base, &bgp(V4, &[])).is_empty());
}

#[test]
fn ospf_and_rip_distribute_lists() {
    let ospf = "access-list NODE seq 5 permit 10.0.0.0/24
router ospf
 distribute-list NODE out connected
";
    let exports = vec![export(Protocol::Ospf, V4, V6)];
    let e = errors(&frr(ospf, &exports));
    assert_eq!(
        e,
        [
            "error: router ospf: distribute-list NODE out (access-list) denies 198.51.100.7/32 (access-list NODE has no entry for it)"
        ]
    );
    let fixed = ospf.replace(
        "router ospf",
        "access-list NODE seq 10 permit 198.51.100.0/24\nrouter ospf",
    );
    assert!(frr(&fixed, &exports).is_empty());
    // ospfd filters nothing through a list that does not exist.
    assert!(
        frr(
            "router ospf\n distribute-list NOPE out connected\n",
            &exports
        )
        .is_empty()
    );
    let rip = "ipv6 prefix-list EDGE seq 5 permit 2001:db8:1::/48 le 128
router ripng
 ipv6 distribute-list prefix EDGE out eth0
";
    let e = errors(&frr(rip, &[export(Protocol::Rip, V4, V6)]));
    assert!(e[0].starts_with("error: router ripng (interface eth0): distribute-list EDGE out (prefix-list) denies 2001:db8:100::7/128"), "{e:?}");
}

#[test]
fn as_path_regexes_against_the_empty_path() {
    use frr::tests_api::matches_empty;
    for (re, want) in [
        ("^$", Some(true)),
        (".*", Some(true)),
        ("_", Some(true)),
        ("^64500_", Some(false)),
        ("^(64500_)*$", Some(true)),
        ("^[0-9]+$", Some(false)),
        ("(a|)", Some(true)),
    ] {
        assert_eq!(matches_empty(re), want, "{re}");
    }
}

fn bird_sources(files: &[(&str, &str)]) -> bird::Sources {
    bird::Sources {
        files: files
            .iter()
            .map(|(p, t)| (p.to_string(), Some(t.to_string())))
            .collect(),
    }
}

fn bird2(main: &str, exports: &[Export]) -> Vec<Finding> {
    bird::check(
        &bird_sources(&[("bird.conf", main)]),
        exports,
        Family::V4,
        "kube-lb0",
    )
}

/// BIRD 2, Calico style: a template with `local as`, an export filter ending in `reject;`.
const CALICO2: &str = r#"router id 10.0.0.1;
include "/etc/bird/routelb.conf";
filter calico_export_to_bgp_peers {
  if ( net ~ 10.244.0.0/16 ) then {
    accept;
  }
  reject;
}
template bgp bgp_template {
  local as 64512;
  ipv4 {
    import all;
    export filter calico_export_to_bgp_peers;
  };
  add paths on;
}
protocol bgp Node_10_0_0_254 from bgp_template {
  neighbor 10.0.0.254 as 64500;
}
"#;

#[test]
fn bird_export_filters_that_reject_before_calling_routelb() {
    let f = bird2(CALICO2, &bgp(V4, &[]));
    assert_eq!(
        errors(&f),
        [
            "error: protocol bgp Node_10_0_0_254 (ipv4 channel): export filter calico_export_to_bgp_peers (from template bgp_template) rejects 198.51.100.7/32: never calls routelb_export_bgp(); `reject` at bird.conf:7 drops them; put `if routelb_export_bgp() then accept;` first in export filter calico_export_to_bgp_peers"
        ]
    );
    let fixed = CALICO2.replace(
        "filter calico_export_to_bgp_peers {\n",
        "filter calico_export_to_bgp_peers {\n  if routelb_export_bgp() then accept;\n",
    );
    assert!(bird2(&fixed, &bgp(V4, &[])).is_empty());
    // The call after the reject: never reached.
    let late = CALICO2.replace(
        "  reject;\n}",
        "  reject;\n  if routelb_export_bgp() then accept;\n}",
    );
    assert!(
        errors(&bird2(&late, &bgp(V4, &[])))[0]
            .contains("`reject` at bird.conf:7 comes before its routelb_export_bgp() call")
    );
    // Its result ignored.
    let ignored = CALICO2.replace("  reject;\n}", "  routelb_export_bgp();\n  reject;\n}");
    assert!(errors(&bird2(&ignored, &bgp(V4, &[])))[0].contains("ignores its result"));
}

#[test]
fn bird_export_forms() {
    let base = |export: &str| {
        format!(
            "include \"routelb.conf\";\nprotocol bgp up {{\n  local as 64512;\n  neighbor 10.0.0.254 as 64500;\n  ipv4 {{ {export} }};\n}}\n"
        )
    };
    let ok = |e: &str| bird2(&base(e), &bgp(V4, &[]));
    assert!(ok("export where routelb_export_bgp();").is_empty());
    assert!(ok("export where net ~ 10.0.0.0/8 || routelb_export_bgp();").is_empty());
    assert!(ok("export filter { if routelb_export_bgp() then accept; reject; };").is_empty());
    assert!(ok("export all;").is_empty());
    assert!(errors(&ok("export none;"))[0].contains("exports nothing"));
    assert!(errors(&ok("import all;"))[0].contains("exports nothing"));
    assert!(errors(&ok("export where net ~ 10.0.0.0/8;"))[0].contains("its condition is false"));
    assert!(
        errors(&ok(
            "export filter { if net ~ [ 10.0.0.0/8+ ] then accept; };"
        ))[0]
            .contains("ends without accepting")
    );
    // A prefix set covering the pool accepts it, without routelb's call: a warning when
    // routelb sets attributes.
    let mut with_attrs = bgp(V4, &[]);
    with_attrs[0].attributes = true;
    let f = bird2(
        &base("export where net ~ [ 198.51.100.0/24{24,32} ];"),
        &with_attrs,
    );
    assert!(errors(&f).is_empty());
    assert!(
        warnings(&f)[0].contains("without the attributes routelb sets"),
        "{f:?}"
    );
    // A condition routelb cannot evaluate decides: a warning.
    let f = ok(
        "export filter { if bgp_path.len > 2 then reject; if routelb_export_bgp() then accept; reject; };",
    );
    assert!(
        errors(&f).is_empty() && warnings(&f)[0].contains("cannot be evaluated"),
        "{f:?}"
    );
}

#[test]
fn bird_functions_that_accept_or_reject_end_the_filter() {
    let base = r#"include "routelb.conf";
function calico_aggr() {
  if ( net = 10.244.1.0/26 ) then { accept; }
  if ( net ~ 10.244.1.0/26 ) then { reject; }
}
function block_all() { reject; }
filter out_bgp {
  calico_aggr();
  if routelb_export_bgp() then accept;
  reject;
}
protocol bgp up { local as 64512; neighbor 10.0.0.254 as 64500; ipv4 { export filter out_bgp; }; }
"#;
    assert!(bird2(base, &bgp(V4, &[])).is_empty());
    let blocked = base.replace("  calico_aggr();\n", "  calico_aggr();\n  block_all();\n");
    assert!(
        errors(&bird2(&blocked, &bgp(V4, &[])))[0]
            .contains("`reject` at bird.conf:6 comes before its routelb_export_bgp() call")
    );
}

#[test]
fn bird_include_and_direct_protocols() {
    let no_include = CALICO2.replace("include \"/etc/bird/routelb.conf\";\n", "");
    let fixed_filter = |s: &str| {
        s.replace(
            "filter calico_export_to_bgp_peers {\n",
            "filter calico_export_to_bgp_peers {\n  if routelb_export_bgp() then accept;\n",
        )
    };
    let e = errors(&bird2(&fixed_filter(&no_include), &bgp(V4, &[])));
    assert!(
        e[0].starts_with("error: bird.conf: does not include routelb's file"),
        "{e:?}"
    );
    let late = fixed_filter(&no_include) + "include \"/etc/bird/routelb.conf\";\n";
    assert!(errors(&bird2(&late, &bgp(V4, &[])))[0].contains("comes after the first use"));
    let direct = format!(
        "{}protocol direct {{\n  ipv4;\n  interface -\"cali*\", -\"kube-ipvs*\", \"*\";\n}}\n",
        fixed_filter(CALICO2)
    );
    let f = bird2(&direct, &bgp(V4, &[]));
    assert!(errors(&f).is_empty());
    assert!(
        warnings(&f)[0].starts_with(
            "warning: protocol direct (unnamed): covers kube-lb0 (interface pattern \"*\")"
        ),
        "{f:?}"
    );
    let excluded = direct.replace("-\"cali*\"", "-\"kube-lb0\", -\"cali*\"");
    assert!(bird2(&excluded, &bgp(V4, &[])).is_empty());
}

/// BIRD 1.6 as Calico runs it: protocol-level export, bird.conf for IPv4, bird6.conf for
/// IPv6, the filter in an included file.
const CALICO1_MAIN: &str = r#"include "bird_ipam.cfg";
include "/etc/bird/routelb.conf";
router id 10.0.0.1;
template bgp bgp_template {
  local as 64512;
  multihop;
  import all;
  export filter calico_export_to_bgp_peers;
  add paths on;
}
protocol bgp Global_10_0_0_254 from bgp_template {
  neighbor 10.0.0.254 as 64500;
}
"#;
const CALICO1_IPAM: &str = r#"filter calico_export_to_bgp_peers {
  if ( net ~ 10.244.0.0/16 ) then {
    accept;
  }
  reject;
}
"#;

#[test]
fn bird1_protocol_level_exports_per_file_family() {
    let run = |ipam: &str, family: Family| {
        let sources = bird_sources(&[("bird.conf", CALICO1_MAIN), ("bird_ipam.cfg", ipam)]);
        bird::check(&sources, &bgp(V4, V6), family, "kube-lb0")
    };
    let e = errors(&run(CALICO1_IPAM, Family::V4));
    assert_eq!(e.len(), 1, "only the file's family counts: {e:?}");
    assert!(e[0].contains("protocol bgp Global_10_0_0_254: export filter calico_export_to_bgp_peers (from template bgp_template) rejects 198.51.100.7/32"), "{e:?}");
    assert!(e[0].contains("bird_ipam.cfg:5"), "{e:?}");
    let fixed = CALICO1_IPAM.replace("{\n", "{\n  if routelb_export_bgp() then accept;\n");
    assert!(run(&fixed, Family::V4).is_empty());
    let e = errors(&run(CALICO1_IPAM, Family::V6));
    assert!(e[0].contains("rejects 2001:db8:100::7/128"), "{e:?}");
    let base = bird::read(&bird_sources(&[("bird.conf", CALICO1_MAIN)]));
    assert!(base.v1);
    assert!(!bird::read(&bird_sources(&[("bird.conf", CALICO2)])).v1);
    assert_eq!(base.bgp_asns(), [64512]);
}

/// The examples' kind of manifests, rendered for every instance.
fn rendered() -> crate::offline::Offline {
    use crate::manifests::{Manifests, load_str};
    use crate::render::{DaemonKind, Templates};
    let yaml = r#"
apiVersion: routelb.io/v1alpha1
kind: AddressPool
metadata: {name: web, labels: {announce: bgp}}
spec: {addresses: ["198.51.100.0/24", "2001:db8:100::/120"]}
---
apiVersion: routelb.io/v1alpha1
kind: AddressPool
metadata: {name: edge, labels: {announce: bgp}}
spec:
  addresses: ["203.0.113.0/24"]
  aggregation: {ipv4: 24}
---
apiVersion: routelb.io/v1alpha1
kind: RoutingPolicy
metadata: {name: up}
spec:
  poolSelector: {matchLabels: {announce: bgp}}
  protocols: [bgp, ospf]
  bgp: {communities: ["64512:100"]}
"#;
    let mut m = Manifests::default();
    load_str(yaml, std::path::Path::new("t.yaml"), &mut m).unwrap();
    crate::offline::render(
        &m,
        &Templates::embedded(DaemonKind::Frr).unwrap(),
        None,
        "kube-lb0",
        &crate::offline::assume_all_instances(64512),
    )
    .unwrap()
}

#[test]
fn exports_stand_for_every_pool_block_and_service_address() {
    let out = rendered();
    let addresses = ["198.51.100.7".parse().unwrap()];
    let e = exports(&out.data, &addresses);
    let bgp = e
        .iter()
        .find(|x| x.protocol == Protocol::Bgp { vrf: None })
        .unwrap();
    assert_eq!(
        bgp.v4,
        nets(&[
            "198.51.100.0/32",
            "198.51.100.7/32",
            "198.51.100.255/32",
            "203.0.113.0/24"
        ])
    );
    assert_eq!(
        bgp.v6,
        nets(&["2001:db8:100::/128", "2001:db8:100::ff/128"])
    );
    assert!(bgp.attributes);
    let ospf = e.iter().find(|x| x.protocol == Protocol::Ospf).unwrap();
    assert!(!ospf.attributes && ospf.v4.len() == 4);
}

#[test]
fn a_base_written_without_indentation_is_read_by_context() {
    let flat = "ip prefix-list OUT seq 5 permit 10.0.0.0/8 le 32
route-map OUT permit 10
match ip address prefix-list OUT
exit
router bgp 64512
no bgp ebgp-requires-policy
neighbor 10.0.0.2 remote-as 64500
address-family ipv4 unicast
neighbor 10.0.0.2 route-map OUT out
exit-address-family
exit
access-list NODE seq 5 permit 10.0.0.0/24
router ospf
distribute-list NODE out connected
";
    let tree = frr::parse_base(flat);
    let e = errors(&frr::check(&tree, &bgp(V4, &[]), &BTreeSet::new()));
    assert!(
        e[0].contains("route-map OUT denies 198.51.100.7/32"),
        "{e:?}"
    );
    let ospf = [export(Protocol::Ospf, V4, &[])];
    assert_eq!(errors(&frr::check(&tree, &ospf, &BTreeSet::new())).len(), 1);
    // An indented base reads the same either way.
    assert_eq!(frr::parse_base(FRR_K8S), parse(FRR_K8S));
}

#[test]
fn the_bases_own_redistribute_connected_is_kept_unless_routelb_cannot_reproduce_it() {
    let base = "route-map LOOPBACKS permit 10
 match interface lo
router bgp 65011
 no bgp ebgp-requires-policy
 neighbor 10.0.0.2 remote-as 64500
 address-family ipv4 unicast
  redistribute connected route-map LOOPBACKS
 exit-address-family
router ospf
 redistribute connected metric 30 metric-type 1
";
    // routelb's route-map ends with an entry reproducing each: nothing to report.
    assert!(warnings(&frr(base, &bgp(V4, &[]))).is_empty());
    assert!(warnings(&frr(base, &[export(Protocol::Ospf, V4, &[])])).is_empty());
    let tagged = base.replace(" metric-type 1\n", " metric-type 1 tag 7\n");
    let w = warnings(&frr(&tagged, &[export(Protocol::Ospf, V4, &[])]));
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("warning: router ospf (ipv4 unicast): the base's `redistribute connected metric 30 metric-type 1 tag 7` is replaced"),
        "{w:?}"
    );
    assert!(warnings(&frr(&tagged, &bgp(V4, &[]))).is_empty());
}

#[test]
fn a_bird1_base_without_its_bird6_file_leaves_ipv6_unchecked() {
    let fixed = CALICO1_IPAM.replace("{\n", "{\n  if routelb_export_bgp() then accept;\n");
    let sources = bird_sources(&[("bird.conf", CALICO1_MAIN), ("bird_ipam.cfg", &fixed)]);
    let base = crate::offline::Base::Bird(vec![(sources.clone(), Family::V4)]);
    let f = crate::offline::findings(&base, &rendered(), "kube-lb0", &BTreeSet::new());
    assert!(errors(&f).is_empty(), "{f:?}");
    assert!(
        warnings(&f)
            .iter()
            .any(|w| w.contains("ipv6 prefixes were not checked")),
        "{f:?}"
    );
    let six = bird_sources(&[("bird6.conf", CALICO1_MAIN), ("bird_ipam.cfg", &fixed)]);
    let both = crate::offline::Base::Bird(vec![(sources, Family::V4), (six, Family::V6)]);
    let f = crate::offline::findings(&both, &rendered(), "kube-lb0", &BTreeSet::new());
    assert!(
        !warnings(&f).iter().any(|w| w.contains("not checked")),
        "{f:?}"
    );
}
