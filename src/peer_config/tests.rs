use serde_json::json;

use super::*;
use crate::api::{AddressPool, RoutingPolicy};

fn filter() -> PeerFilter {
    let pool = |name: &str, spec: serde_json::Value| {
        AddressPool::new(name, serde_json::from_value(spec).unwrap())
    };
    let pools = [
        pool(
            "web",
            json!({"addresses": ["198.51.100.0/28", "2001:db8:100::/120"]}),
        ),
        pool(
            "agg",
            json!({"addresses": ["203.0.113.0/24"], "aggregation": {"ipv4": 28}}),
        ),
        pool(
            "lan",
            json!({"addresses": ["10.0.0.240/29"], "mode": "local"}),
        ),
        pool("quiet", json!({"addresses": ["192.0.2.0/24"]})),
    ];
    let policies = [RoutingPolicy::new(
        "up",
        serde_json::from_value(json!({
            "protocols": ["bgp"],
            "poolSelector": {"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]},
            "bgp": {"communities": ["64512:100"], "largeCommunities": ["64512:1:2"]},
        }))
        .unwrap(),
    )];
    let mut pools = pools.to_vec();
    // A pool no BGP policy exports is not accepted from the nodes.
    pools[3].metadata.labels = Some([("x".to_string(), "y".to_string())].into());
    from_manifests(&pools, &policies).0
}

#[test]
fn accepts_the_exported_pools_at_the_lengths_announced() {
    let f = filter();
    let v4: Vec<(&str, &str, u8)> =
        f.v4.iter()
            .map(|a| (a.source.as_str(), a.prefix.as_str(), a.announced))
            .collect();
    assert_eq!(
        v4,
        [
            ("pool agg", "203.0.113.0/24", 28),
            ("pool web", "198.51.100.0/28", 32)
        ]
    );
    assert_eq!(f.v6[0].prefix, "2001:db8:100::/120");
    assert_eq!(f.v6[0].announced, 128);
    // 16 aggregates + 16 host routes, 25 % more; 256 host routes, 25 % more
    assert_eq!(limit(&f.v4, 25), Some(42));
    assert_eq!(limit(&f.v6, 25), Some(320));
    assert_eq!(limit(&[], 25), None);
    assert_eq!(f.communities, [(64512, 100)].into());
    assert_eq!(f.large_communities, [(64512, 1, 2)].into());
}

#[test]
fn a_huge_pool_caps_the_limit() {
    let huge = Accepted {
        source: "pool v6".into(),
        prefix: "2001:db8::/64".into(),
        len: 64,
        announced: 128,
    };
    assert_eq!(limit(&[huge], 25), Some(u64::from(u32::MAX)));
}

#[test]
fn frr_and_bird_text() {
    let f = filter();
    let router = RouterSide {
        asn: Some(64500),
        peer_group: Some("NODES".into()),
        headroom_percent: 25,
    };
    let frr = render(DaemonKind::Frr, &f, &router);
    for line in [
        "ip prefix-list ROUTELB-PEER-V4 seq 5 permit 203.0.113.0/24 ge 28 le 28",
        "ip prefix-list ROUTELB-PEER-V4 seq 10 permit 198.51.100.0/28 ge 32 le 32",
        "ipv6 prefix-list ROUTELB-PEER-V6 seq 5 permit 2001:db8:100::/120 ge 128 le 128",
        "route-map ROUTELB-PEER-IN-V4 permit 10\n match ip address prefix-list ROUTELB-PEER-V4\nexit",
        "bgp community-list standard ROUTELB-PEER seq 5 permit 64512:100",
        "bgp large-community-list standard ROUTELB-PEER-LARGE seq 5 permit 64512:1:2",
        "router bgp 64500\n address-family ipv4 unicast\n  neighbor NODES route-map ROUTELB-PEER-IN-V4 in\n  neighbor NODES maximum-prefix 42 90\n exit-address-family",
    ] {
        assert!(frr.contains(line), "{line:?} not in\n{frr}");
    }
    assert!(
        !frr.contains("192.0.2.0") && !frr.contains("10.0.0.240"),
        "{frr}"
    );
    let bird = render(DaemonKind::Bird, &f, &router);
    for line in [
        "define ROUTELB_PEER_V4 = [ 203.0.113.0/24{28,28}, 198.51.100.0/28{32,32} ];",
        "define ROUTELB_PEER_LIMIT_V4 = 42;",
        "define ROUTELB_PEER_V6 = [ 2001:db8:100::/120{128,128} ];",
        "  if net.type = NET_IP4 && net ~ ROUTELB_PEER_V4 then accept;",
    ] {
        assert!(bird.contains(line), "{line:?} not in\n{bird}");
    }
}
