use super::*;
use crate::render::model::{Entry, PrefixMatch};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/advertised/");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIX}{name}")).unwrap()
}

fn nets(v: &[&str]) -> BTreeSet<IpNet> {
    v.iter().map(|n| n.parse().unwrap()).collect()
}

fn entry(list: &str) -> Entry {
    Entry {
        seq: 50000,
        frr_list: list.into(),
        bird_list: list.into(),
        has_v4: true,
        has_v6: true,
        source: "policy p".into(),
        communities: vec![],
        large_communities: vec![],
        local_preference: None,
        med: None,
        prepend: vec![],
        metric: None,
        metric_type: None,
    }
}

fn target(vrf: Option<&str>, list: &str) -> Target {
    Target {
        route_map: "ROUTELB-BGP".into(),
        asn: Some(64512),
        vrf: vrf.map(str::to_string),
        tag: None,
        level: None,
        v4: true,
        v6: true,
        entries: vec![entry(list)],
        weights: vec![],
    }
}

fn pm(prefix: &str, max: u8) -> PrefixMatch {
    let len = prefix.split('/').nth(1).unwrap().parse().unwrap();
    PrefixMatch {
        prefix: prefix.into(),
        len,
        min_len: len,
        max_len: max,
        seq: 5,
    }
}

/// Pool `a` (203.0.113.0/24, 2001:db8:ffff::/48) over BGP and OSPF; pool `b`
/// (198.51.100.0/24) over BGP in vrf red only.
fn data() -> FragmentData {
    FragmentData {
        contract: 1,
        generator: "test".into(),
        node: "n1".into(),
        lb_interface: "kube-lb0".into(),
        prefix_lists: vec![
            PrefixList {
                frr_name: "ROUTELB-POOL-a".into(),
                bird_name: "a".into(),
                source: "pool a".into(),
                v4: vec![pm("203.0.113.0/24", 32)],
                v6: vec![pm("2001:db8:ffff::/48", 128)],
            },
            PrefixList {
                frr_name: "ROUTELB-POOL-b".into(),
                bird_name: "b".into(),
                source: "pool b".into(),
                v4: vec![pm("198.51.100.0/24", 32)],
                v6: vec![],
            },
        ],
        bgp: vec![
            target(None, "ROUTELB-POOL-a"),
            target(Some("red"), "ROUTELB-POOL-b"),
        ],
        ospf: Some(Target {
            v6: false,
            ..target(None, "ROUTELB-POOL-a")
        }),
        isis: vec![],
        rip: None,
        route_map_hooks: vec![],
        base_fallbacks: vec![],
        bfd: Default::default(),
    }
}

fn bgp_exit(name: &str, family: Family, up: bool, adv: &[&str], filters: &[&str]) -> Exit {
    Exit {
        protocol: Protocol::Bgp,
        vrf: None,
        name: name.into(),
        family,
        up,
        advertised: nets(adv),
        filters: filters.iter().map(|f| f.to_string()).collect(),
    }
}

#[test]
fn expected_prefixes_follow_the_fragments_targets() {
    let node = nets(&[
        "203.0.113.7/32",
        "2001:db8:ffff::7/128",
        "198.51.100.9/32",
        "192.0.2.1/32",
    ]);
    let e = expected(&data(), &node);
    assert_eq!(
        e[&(Protocol::Bgp, None)],
        nets(&["203.0.113.7/32", "2001:db8:ffff::7/128"])
    );
    assert_eq!(
        e[&(Protocol::Bgp, Some("red".into()))],
        nets(&["198.51.100.9/32"])
    );
    // OSPF here is IPv4 only; a prefix no target exports is expected nowhere.
    assert_eq!(e[&(Protocol::Ospf, None)], nets(&["203.0.113.7/32"]));
    assert_eq!(e.len(), 3);
}

#[test]
fn frr_unnumbered_neighbors_and_their_outbound_filters() {
    let n = parse_bgp_neighbors(&fixture("bgp-neighbors-unnumbered.json")).unwrap();
    assert_eq!(
        n,
        [BgpNeighbor {
            vrf: None,
            neighbor: "eth-rtr".into(),
            peer_group: Some("FABRIC".into()),
            established: true,
            families: vec![
                BgpFamily {
                    family: Family::V4,
                    filters: vec!["route-map FABRIC-OUT".into()],
                    subgroup: Some((1, 1)),
                },
                BgpFamily {
                    family: Family::V6,
                    filters: vec!["route-map FABRIC-OUT".into()],
                    subgroup: Some((2, 2)),
                },
            ],
        }]
    );
    assert_eq!(n[0].label(), "neighbor eth-rtr (peer-group FABRIC)");
}

#[test]
fn frr_advertised_routes() {
    assert_eq!(
        parse_bgp_advertised(&fixture("bgp-advertised-v4.json")).unwrap(),
        nets(&["198.18.40.1/32", "198.18.41.0/24", "203.0.113.7/32"])
    );
    assert_eq!(
        parse_bgp_advertised(&fixture("bgp-advertised-v4-filtered.json")).unwrap(),
        nets(&["198.18.40.1/32", "198.18.41.0/24"])
    );
    assert!(parse_bgp_advertised("{}").unwrap().is_empty());
    assert!(parse_bgp_advertised("% Unknown command").is_err());
}

#[test]
fn ospf_self_originated_externals_without_flushed_ones() {
    // 198.18.50.1 was flushed (MaxAge) when its redistribution went away.
    assert_eq!(
        parse_ospf_external(&fixture("ospf-external-self.json")).unwrap(),
        nets(&["203.0.113.7/32"])
    );
    assert_eq!(
        parse_ospf6_external(&fixture("ospf6-external-self.json")).unwrap(),
        nets(&["2001:db8:ffff::7/128"])
    );
}

#[test]
fn ospf_distribute_lists_of_one_router() {
    let running = "router ospf\n redistribute connected\n distribute-list HOST-OWN out connected\n distribute-list X out static\nexit\nrouter ospf vrf red\n distribute-list RED out connected\nexit\n";
    assert_eq!(
        ospf_distribute_lists(running, "router ospf"),
        ["distribute-list HOST-OWN out connected"]
    );
    assert_eq!(
        ospf_distribute_lists(running, "router ospf vrf red"),
        ["distribute-list RED out connected"]
    );
}

#[test]
fn bird_protocols_and_exported_routes() {
    let p = parse_bird_protocols(&fixture("bird-show-protocols-all.txt"), None);
    let summary: Vec<_> = p
        .iter()
        .map(|p| (p.name.as_str(), p.protocol, p.up, p.channels.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "rtr4",
                Protocol::Bgp,
                true,
                vec![(Family::V4, "(unnamed)".to_string())]
            ),
            (
                "rtr6",
                Protocol::Bgp,
                true,
                vec![(Family::V6, "(unnamed)".to_string())]
            ),
        ]
    );
    assert_eq!(
        parse_bird_routes(&fixture("bird-show-route-exported.txt")),
        nets(&["203.0.113.7/32"])
    );
}

#[test]
fn a_peer_whose_route_map_drops_the_service_is_named() {
    let e = expected(&data(), &nets(&["203.0.113.7/32", "2001:db8:ffff::7/128"]));
    let e: Expected = e
        .into_iter()
        .filter(|(k, _)| k.0 == Protocol::Bgp)
        .collect();
    let exits = [
        bgp_exit(
            "neighbor eth-rtr (peer-group FABRIC)",
            Family::V4,
            true,
            &["198.18.40.1/32"],
            &["route-map FABRIC-OUT"],
        ),
        bgp_exit(
            "neighbor eth-rtr (peer-group FABRIC)",
            Family::V6,
            true,
            &["2001:db8:ffff::7/128"],
            &["route-map FABRIC-OUT"],
        ),
    ];
    let v = verify(&e, &exits);
    assert!(!v.verdict.ok);
    assert_eq!(v.verdict.reason, "FilteredByPeerPolicy");
    assert_eq!(
        v.verdict.message,
        "neighbor eth-rtr (peer-group FABRIC) route-map FABRIC-OUT denies 203.0.113.7/32"
    );
    assert_eq!(
        v.unadvertised.keys().copied().collect::<BTreeSet<_>>(),
        nets(&["203.0.113.7/32"])
    );
    let counts: Vec<_> = v
        .peers
        .iter()
        .map(|r| (r.exit.family, r.advertised, r.missing.len()))
        .collect();
    assert_eq!(counts, [(Family::V4, 0, 1), (Family::V6, 1, 0)]);
    assert_eq!(missing(&e, &exits), nets(&["203.0.113.7/32"]));
}

#[test]
fn one_of_two_uplinks_filtering_is_reported_but_the_prefix_is_advertised() {
    let e: Expected = [((Protocol::Bgp, None), nets(&["203.0.113.7/32"]))].into();
    let exits = [
        bgp_exit(
            "neighbor 10.0.0.1",
            Family::V4,
            true,
            &["203.0.113.7/32"],
            &[],
        ),
        bgp_exit(
            "neighbor 10.0.0.2",
            Family::V4,
            true,
            &[],
            &["route-map peer-out"],
        ),
        // Down: neither missing nor the reason.
        bgp_exit("neighbor 10.0.0.3", Family::V4, false, &[], &[]),
    ];
    let v = verify(&e, &exits);
    assert!(v.unadvertised.is_empty());
    assert_eq!(
        (v.verdict.ok, v.verdict.reason, v.verdict.message.as_str()),
        (
            false,
            "FilteredByPeerPolicy",
            "neighbor 10.0.0.2 route-map peer-out denies 203.0.113.7/32"
        )
    );
}

#[test]
fn no_peer_not_advertised_and_all_well() {
    let e: Expected = [((Protocol::Bgp, None), nets(&["203.0.113.7/32"]))].into();
    let down = [bgp_exit("neighbor 10.0.0.1", Family::V4, false, &[], &[])];
    let v = verify(&e, &down);
    assert_eq!(v.verdict.reason, "NoPeer");
    assert_eq!(v.verdict.message, "no bgp ipv4 peer is up to advertise to");
    assert_eq!(
        v.unadvertised[&"203.0.113.7/32".parse().unwrap()],
        "no bgp ipv4 peer is up"
    );
    assert_eq!(verify(&e, &[]).verdict.reason, "NoPeer");

    let bare = [bgp_exit("neighbor 10.0.0.1", Family::V4, true, &[], &[])];
    let v = verify(&e, &bare);
    assert_eq!(v.verdict.reason, "NotAdvertised");
    assert_eq!(
        v.verdict.message,
        "neighbor 10.0.0.1 does not get 203.0.113.7/32"
    );

    let good = [bgp_exit(
        "neighbor 10.0.0.1",
        Family::V4,
        true,
        &["203.0.113.7/32"],
        &[],
    )];
    let v = verify(&e, &good);
    assert_eq!((v.verdict.ok, v.verdict.reason), (true, "Advertised"));
    assert!(v.unadvertised.is_empty());
    let v = verify(&Expected::new(), &good);
    assert_eq!(v.verdict.message, "no routed prefix to advertise");
}

#[test]
fn messages_name_a_few_prefixes_and_count_the_rest() {
    let many: Vec<String> = (1..=8).map(|i| format!("203.0.113.{i}/32")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let e: Expected = [((Protocol::Ospf, None), nets(&many))].into();
    let exits = [Exit {
        protocol: Protocol::Ospf,
        vrf: None,
        name: "router ospf".into(),
        family: Family::V4,
        up: true,
        advertised: BTreeSet::new(),
        filters: vec!["distribute-list HOST-OWN out connected".into()],
    }];
    let v = verify(&e, &exits);
    assert_eq!(
        v.verdict.message,
        "router ospf distribute-list HOST-OWN out connected denies 203.0.113.1/32, 203.0.113.2/32, 203.0.113.3/32, 203.0.113.4/32, 203.0.113.5/32 and 3 more"
    );
    assert_eq!(v.unadvertised.len(), 8);
}

#[test]
fn an_event_when_the_advertised_verdict_changes() {
    let v = |ok, reason: &'static str| Verdict {
        ok,
        reason,
        message: format!("{reason} message"),
    };
    let filtered = v(false, "FilteredByPeerPolicy");
    assert_eq!(event(None, &v(true, "Advertised")), None);
    let e = event(None, &filtered).unwrap();
    assert_eq!((e.warning, e.reason), (true, "FilteredByPeerPolicy"));
    assert_eq!(e.note, "FilteredByPeerPolicy message");
    assert_eq!(event(Some(&filtered), &filtered), None);
    let e = event(Some(&filtered), &v(false, "NoPeer")).unwrap();
    assert_eq!(e.reason, "NoPeer");
    let e = event(Some(&filtered), &v(true, "Advertised")).unwrap();
    assert!(!e.warning);
    assert!(e.note.starts_with("every prefix reaches its peers again"));
}

#[test]
fn isis_own_lsp_reachability() {
    let own = parse_isis_own(&fixture("isis-database-detail.txt"));
    assert_eq!(
        own["LAB"],
        nets(&[
            "172.30.56.0/24",
            "203.0.113.7/32",
            "fd00:30:56::/64",
            "2001:db8:ffff::7/128"
        ])
    );
    assert_eq!(own.len(), 1);
}

#[test]
fn rip_redistributed_routes_and_outgoing_lists() {
    assert_eq!(
        parse_rip_redistributed(&fixture("rip.txt")),
        nets(&["203.0.113.7/32"])
    );
    assert_eq!(
        parse_rip_redistributed(&fixture("ripng.txt")),
        nets(&["2001:db8:ffff::7/128"])
    );
    assert_eq!(
        parse_rip_out_lists(&fixture("rip-status.txt")),
        [("eth-rtr".to_string(), "OWN".to_string())]
    );
}

#[test]
fn zebra_access_lists() {
    let running = "access-list OWN seq 5 permit 198.18.0.0/16\naccess-list OWN seq 10 deny 203.0.113.9/32 exact-match\naccess-list OWN seq 15 permit 203.0.113.0/24 exact-match\nipv6 access-list OWN6 seq 5 permit any\n";
    let net = |n: &str| n.parse::<IpNet>().unwrap();
    assert!(access_list_permits(running, "OWN", &net("198.18.5.0/24")));
    assert!(!access_list_permits(running, "OWN", &net("203.0.113.9/32")));
    // exact-match: the /24 itself, not a /32 inside it; then the implicit deny.
    assert!(access_list_permits(running, "OWN", &net("203.0.113.0/24")));
    assert!(!access_list_permits(running, "OWN", &net("203.0.113.7/32")));
    assert!(access_list_permits(
        running,
        "OWN6",
        &net("2001:db8::1/128")
    ));
    // A list that does not exist filters nothing.
    assert!(access_list_permits(running, "NOPE", &net("203.0.113.7/32")));
}

#[test]
fn rip_sends_what_its_distribute_lists_permit() {
    let running = "access-list OWN seq 5 permit 198.18.0.0/16\n";
    let redistributed = nets(&["198.18.1.1/32", "203.0.113.7/32"]);
    let lists = [("eth-rtr".to_string(), "OWN".to_string())];
    let (sent, filters) = rip_sent(&redistributed, &lists, running);
    assert_eq!(sent, nets(&["198.18.1.1/32"]));
    assert_eq!(filters, ["distribute-list OWN out eth-rtr"]);
    let (sent, filters) = rip_sent(&redistributed, &[], running);
    assert_eq!(sent, redistributed);
    assert!(filters.is_empty());
}

#[test]
fn ebgp_requires_policy_without_a_policy_is_a_filter() {
    let n = parse_bgp_neighbors(&fixture("bgp-neighbors-ebgp-requires-policy.json")).unwrap();
    assert_eq!(n.len(), 2);
    for neighbor in &n {
        assert!(neighbor.established);
        assert_eq!(neighbor.families.len(), 1, "{neighbor:?}");
        assert_eq!(
            neighbor.families[0].filters,
            ["bgp ebgp-requires-policy (no outbound policy)"]
        );
    }
}

#[test]
fn frr_update_groups_advertised_routes() {
    let v4 = parse_bgp_update_groups(&fixture("bgp-update-groups-v4.txt"));
    assert_eq!(
        v4,
        [(
            (1, 1),
            nets(&["198.18.40.1/32", "198.18.41.0/24", "203.0.113.7/32"])
        )]
        .into()
    );
    // Long IPv6 networks stand alone on their line.
    let v6 = parse_bgp_update_groups(&fixture("bgp-update-groups-v6.txt"));
    assert_eq!(
        v6[&(2, 2)],
        nets(&[
            "2001:db8:4040::1/128",
            "2001:db8:4041::/64",
            "2001:db8:ffff::7/128"
        ])
    );
    let n = parse_bgp_neighbors(&fixture("bgp-neighbors-unnumbered-ug.json")).unwrap();
    let groups: Vec<_> = n[0].families.iter().map(|f| f.subgroup).collect();
    assert_eq!(groups, [Some((1, 1)), Some((2, 2))]);
}

#[test]
fn bgp_neighbors_in_a_vrf_and_down() {
    // `show bgp vrf all neighbors json` keys each VRF by name; a session that is not
    // Established advertises nothing and is no filter's fault.
    let json = r#"{"default":{"vrfId":0,"vrfName":"default"},
        "red":{"vrfId":5,"vrfName":"red","10.9.0.1":{"bgpState":"Active",
        "addressFamilyInfo":{"ipv4Unicast":{"routeMapForOutgoingAdvertisements":"*red-out"}}}}}"#;
    let n = parse_bgp_neighbors(json).unwrap();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].vrf.as_deref(), Some("red"));
    assert!(!n[0].established);
    // `*`: named but not configured.
    assert_eq!(n[0].families[0].filters, ["route-map red-out"]);
    assert_eq!(n[0].families[0].subgroup, None);
}
