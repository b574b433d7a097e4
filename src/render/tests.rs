//! Tests of the contract: one file per builder under `tests/`, sharing the fixtures here, and
//! of [`build`] as a whole (order of lists and problems, independence from input order).

mod attributes;
mod bgp;
mod hooks;
mod igp;
mod lists;
mod policy;
mod services;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{Value, json};

use super::build;
use super::model::*;
use crate::api::{AddressPool, AddressPoolSpec, Aggregation, PoolMode, RoutingPolicy, annotations};
use crate::ipam::ServiceKey;
use crate::service::ServiceAddresses;

fn pool(name: &str, addresses: &[&str]) -> AddressPool {
    AddressPool::new(
        name,
        AddressPoolSpec {
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            mode: PoolMode::Routed,
            aggregation: None,
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: None,
            fast_failover: None,
        },
    )
}

fn labelled(mut p: AddressPool, labels: &[(&str, &str)]) -> AddressPool {
    p.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    p
}

fn aggregated(mut p: AddressPool, ipv4: u8) -> AddressPool {
    p.spec.aggregation = Some(Aggregation {
        ipv4: Some(ipv4),
        ipv6: None,
    });
    p
}

/// A policy from its spec as it would be written in YAML.
fn policy(name: &str, spec: Value) -> RoutingPolicy {
    RoutingPolicy::new(
        name,
        serde_json::from_value(spec).expect("a valid spec shape"),
    )
}

fn service(ns: &str, name: &str, pool: &str, addresses: &[&str]) -> ServiceAddresses {
    ServiceAddresses {
        key: ServiceKey::new(ns, name),
        pool: pool.into(),
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        attributes: Default::default(),
        admitted: true,
    }
}

fn with_communities(s: ServiceAddresses, annotation: &str) -> ServiceAddresses {
    asking(s, &[(annotations::BGP_COMMUNITIES, annotation)])
}

/// `s` with per-service attribute annotations.
fn asking(mut s: ServiceAddresses, asks: &[(&'static str, &str)]) -> ServiceAddresses {
    for (a, v) in asks {
        s.attributes.asks.insert(a, v.to_string());
    }
    s.attributes.namespace = s.key.namespace.clone();
    s
}

/// Every protocol's instances: BGP in the default VRF and in `red`, IS-IS `core`.
fn all_instances() -> Instances {
    Instances {
        bgp: vec![
            BgpInstance {
                asn: 64512,
                vrf: None,
            },
            BgpInstance {
                asn: 64513,
                vrf: Some("red".into()),
            },
        ],
        ospf: true,
        ospf6: true,
        isis: vec!["core".into()],
        rip: true,
        ripng: true,
        route_maps: [("peer-out".to_string(), BaseRouteMap::default())].into(),
        redistributed: Default::default(),
    }
}

/// Everything `build` reads, owned.
#[derive(Clone, Debug, Default)]
struct World {
    pub node: Option<String>,
    pub node_labels: BTreeMap<String, String>,
    pub pools: Vec<AddressPool>,
    pub policies: Vec<RoutingPolicy>,
    pub services: Vec<ServiceAddresses>,
    pub instances: Instances,
    pub local_endpoints: BTreeMap<std::net::IpAddr, u32>,
}

impl World {
    pub fn build(&self) -> Built {
        build(&RenderInput {
            local_endpoints: &self.local_endpoints,
            node: self.node.as_deref(),
            node_labels: &self.node_labels,
            lb_interface: "kube-lb0",
            pools: &self.pools,
            policies: &self.policies,
            services: &self.services,
            instances: &self.instances,
        })
    }
}

fn reasons(b: &Built) -> Vec<(&str, Option<&str>)> {
    b.problems
        .iter()
        .map(|p| (p.reason, p.policy.as_deref()))
        .collect()
}

#[test]
fn lists_come_in_the_order_rules_name_pools_then_services() {
    let w = World {
        pools: vec![pool("a", &["10.0.0.0/24"]), pool("b", &["10.1.0.0/24"])],
        policies: vec![
            policy(
                "igp",
                json!({"protocols": ["ospf"], "poolSelector": {"matchLabels": {}}}),
            ),
            policy(
                "up",
                json!({
                    "protocols": ["bgp"],
                    "poolSelector": {"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]},
                    "serviceOverrides": {"bgpCommunities": ["64512:100-64512:199"]},
                }),
            ),
        ],
        services: vec![with_communities(
            service("default", "api", "b", &["10.1.0.5"]),
            "64512:150",
        )],
        instances: all_instances(),
        ..World::default()
    };
    let b = w.build();
    let names: Vec<&str> = b
        .data
        .prefix_lists
        .iter()
        .map(|l| l.frr_name.as_str())
        .collect();
    // BGP names both pools before OSPF does; the service's list comes last.
    assert_eq!(
        names,
        [
            "ROUTELB-POOL-a",
            "ROUTELB-POOL-b",
            "ROUTELB-SVC-default.api"
        ]
    );
    assert_eq!(b.exported_pools, BTreeSet::from(["a".into(), "b".into()]));
    assert!(b.problems.is_empty(), "{:?}", b.problems);
}

#[test]
fn problems_come_policies_first_then_protocol_by_protocol() {
    let w = World {
        pools: vec![pool("a", &["10.0.0.0/24", "2001:db8::/120"])],
        policies: vec![
            policy("bad", json!({"protocols": []})),
            policy(
                "every",
                json!({"protocols": ["rip", "isis", "ospf", "bgp"]}),
            ),
        ],
        services: vec![{
            let mut s = with_communities(service("default", "x", "a", &["10.0.0.1"]), "1:1");
            s.admitted = false;
            s
        }],
        instances: Instances {
            ospf: true,
            rip: true,
            ..Instances::default()
        },
        ..World::default()
    };
    let b = w.build();
    assert_eq!(
        reasons(&b),
        [
            ("Invalid", Some("bad")),
            // A refused service attribute is the allocator's to report, on the Service.
            ("InstanceMissing", Some("every")), // BGP
            ("InstanceMissing", Some("every")), // OSPFv3
            ("InstanceMissing", Some("every")), // IS-IS
            ("InstanceMissing", Some("every")), // RIPng
        ]
    );
    let missing: Vec<&str> = b.problems[1..].iter().map(|p| p.message.as_str()).collect();
    for (m, what) in missing.iter().zip(["BGP,", "OSPFv3", "IS-IS", "RIPng"]) {
        assert!(m.starts_with(&format!("exports through {what}")), "{m}");
    }
    // The IPv4 sides that exist still export.
    assert!(b.data.ospf.as_ref().is_some_and(|t| t.v4 && !t.v6));
    assert!(b.data.rip.as_ref().is_some_and(|t| t.v4 && !t.v6));
}

#[test]
fn node_name_is_shown_only_when_it_is_a_kubernetes_name() {
    let mut w = World {
        node: Some("worker-1".into()),
        ..World::default()
    };
    assert_eq!(w.build().data.node, "worker-1");
    w.node = Some("worker 1\n!".into());
    assert_eq!(w.build().data.node, "");
    w.node = None;
    assert_eq!(w.build().data.node, "");
    assert_eq!(w.build().data.contract, CONTRACT);
}

// Random worlds: few names, so that policies, pools and services meet often.

const POOL_NAMES: [&str; 5] = ["a", "b", "c", "big", "Bad_Name"];
const BLOCKS: [&str; 9] = [
    "10.2.0.0/24",
    "10.3.0.0/23",
    "10.0.0.0/24",
    "10.0.1.10-10.0.1.20",
    "2001:db8::/120",
    "2001:db8:1::1-2001:db8:1::9",
    "10.9.0.0/16",
    "10.0.0.128/25",
    "bogus",
];

fn arb_pool() -> impl Strategy<Value = AddressPool> {
    (
        prop::sample::select(&POOL_NAMES[..]),
        prop::sample::subsequence(&BLOCKS[..], 1..=3),
        prop::bool::weighted(0.2),
        prop::option::weighted(0.2, 24u8..=33),
        prop::sample::select(&["x", "y"][..]),
    )
        .prop_map(|(name, blocks, local, agg, tier)| {
            let mut p = if name == "big" {
                // Over LIST_SPLIT_ABOVE single addresses: a split pool.
                let hosts: Vec<String> = (0..300)
                    .map(|i| format!("10.8.{}.{}", i / 100, (i % 100) * 2 + 1))
                    .collect();
                pool(name, &hosts.iter().map(String::as_str).collect::<Vec<_>>())
            } else {
                pool(name, &blocks)
            };
            if local {
                p.spec.mode = PoolMode::Local;
            }
            if let Some(len) = agg {
                p = aggregated(p, len);
            }
            labelled(p, &[("tier", tier)])
        })
}

fn arb_policy() -> impl Strategy<Value = RoutingPolicy> {
    let protocols = prop::sample::subsequence(&["bgp", "ospf", "isis", "rip", "bgp"][..], 1..=4);
    let selectors = (
        prop::option::of(prop::sample::select(&["x", "y", "Bad Op"][..])),
        prop::option::of(prop::sample::select(&["a", "b"][..])),
    );
    let bgp = (
        prop::option::of(prop::sample::select(&["red", "blue"][..])),
        prop::sample::select(&["64512:1", "1:2", "64512:7", "64512:8", "x:y"][..]),
        prop::option::of(1u8..=3),
        prop::bool::weighted(0.7),
        prop::bool::weighted(0.5),
    );
    let name = prop::sample::select(&["p1", "p2", "p3", "p4"][..]);
    let level = prop::sample::select(&["level-1", "level-2", "level-1-2"][..]);
    (name, protocols, selectors, bgp, level).prop_map(
        |(
            name,
            protocols,
            (pool_sel, zone),
            (vrf, community, prepend, overrides, weighted),
            level,
        )| {
            let pool_selector = match pool_sel {
                Some("Bad Op") => json!({"matchExpressions": [{"key": "tier", "operator": "Bad"}]}),
                Some(t) => json!({"matchLabels": {"tier": t}}),
                None => Value::Null,
            };
            let node_selector = zone.map_or(Value::Null, |z| json!({"matchLabels": {"zone": z}}));
            let overrides = overrides.then(|| json!({"bgpCommunities": ["64512:100-64512:199"]}));
            policy(
                name,
                json!({
                    "protocols": protocols,
                    "poolSelector": pool_selector,
                    "nodeSelector": node_selector,
                    "bgp": {
                        "communities": [community, "64512:1"],
                        "largeCommunities": ["1:2:3"],
                        "localPreference": 200,
                        "asPathPrepend": prepend,
                        "vrf": vrf,
                        "weightedEcmp": weighted,
                    },
                    "ospf": {"metric": 20, "metricType": 1},
                    "isis": {"level": level, "metric": 30},
                    "rip": {"metric": 2},
                    "serviceOverrides": overrides,
                }),
            )
        },
    )
}

fn arb_service() -> impl Strategy<Value = ServiceAddresses> {
    (
        prop::sample::select(&["default", "prod", "default", "Bad_NS"][..]),
        prop::sample::select(&["api", "web", "db"][..]),
        prop::sample::select(&["a", "b", "c", "big", "Bad_Name", "gone"][..]),
        prop::sample::subsequence(&["10.0.0.5", "2001:db8::5", "10.8.0.7"][..], 0..=3),
        prop::option::weighted(
            0.8,
            prop::sample::select(
                &[
                    "64512:150",
                    "64512:150,64512:120",
                    "64512:110",
                    "64512:150,64512:300",
                    "64512:999",
                    "junk",
                    "",
                ][..],
            ),
        ),
        prop::bool::weighted(0.9),
    )
        .prop_map(
            |(ns, name, pool, addrs, communities, admitted)| ServiceAddresses {
                admitted,
                ..communities.map_or_else(
                    || service(ns, name, pool, &addrs),
                    |c| with_communities(service(ns, name, pool, &addrs), c),
                )
            },
        )
}

fn arb_instances() -> impl Strategy<Value = Instances> {
    (
        prop::sample::subsequence(&[None, Some("red")][..], 0..=2),
        any::<[bool; 4]>(),
        prop::sample::subsequence(&["core", "edge"][..], 0..=2),
    )
        .prop_map(|(vrfs, [ospf, ospf6, rip, ripng], tags)| Instances {
            bgp: vrfs
                .into_iter()
                .map(|vrf| BgpInstance {
                    asn: 64512,
                    vrf: vrf.map(str::to_string),
                })
                .collect(),
            ospf,
            ospf6,
            isis: tags.into_iter().map(str::to_string).collect(),
            rip,
            ripng,
            ..Instances::default()
        })
}

/// Pools, policies and services unique by name, as Kubernetes keeps them.
fn arb_world() -> impl Strategy<Value = World> {
    (
        prop::collection::vec(arb_pool(), 1..6),
        prop::collection::vec(arb_policy(), 0..4),
        prop::collection::vec(arb_service(), 0..8),
        arb_instances(),
        prop::option::of(prop::sample::select(&["a", "b"][..])),
        prop::collection::btree_map(
            prop::sample::select(&["10.0.0.5", "2001:db8::5", "10.8.0.7"][..]),
            0u32..40,
            0..=3,
        ),
    )
        .prop_map(|(pools, policies, services, instances, zone, endpoints)| {
            let mut w = World {
                local_endpoints: endpoints
                    .into_iter()
                    .map(|(a, n)| (a.parse().unwrap(), n))
                    .collect(),
                node: zone.map(|_| "node-1".to_string()),
                node_labels: zone
                    .iter()
                    .map(|z| ("zone".to_string(), z.to_string()))
                    .collect(),
                instances,
                ..World::default()
            };
            let mut seen = BTreeSet::new();
            w.pools = pools
                .into_iter()
                .filter(|p| seen.insert(p.metadata.name.clone()))
                .collect();
            w.policies = policies
                .into_iter()
                .filter(|p| seen.insert(p.metadata.name.clone()))
                .collect();
            let mut keys = BTreeSet::new();
            w.services = services
                .into_iter()
                .filter(|s| keys.insert(s.key.clone()))
                .collect();
            w
        })
}

fn reordered<T: Clone>(v: &[T], seed: u64) -> Vec<T> {
    let mut v = v.to_vec();
    if !v.is_empty() {
        let turn = seed as usize % v.len();
        v.rotate_left(turn);
    }
    if seed & 1 == 1 {
        v.reverse();
    }
    v
}

fn unique<T: Ord>(items: impl IntoIterator<Item = T>) -> bool {
    let mut seen = BTreeSet::new();
    items.into_iter().all(|i| seen.insert(i))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn the_contract_does_not_depend_on_the_order_of_its_input(
        w in arb_world(),
        seed in any::<u64>(),
    ) {
        let mut moved = w.clone();
        moved.pools = reordered(&w.pools, seed);
        moved.policies = reordered(&w.policies, seed / 2);
        moved.services = reordered(&w.services, seed / 3);
        let (a, b) = (w.build(), moved.build());
        prop_assert_eq!(a.data, b.data);
        prop_assert_eq!(a.problems, b.problems);
        prop_assert_eq!(a.exported_pools, b.exported_pools);
    }

    #[test]
    fn names_and_sequence_numbers_are_unique_where_daemons_need_it(w in arb_world()) {
        let d = w.build().data;
        prop_assert!(unique(d.prefix_lists.iter().map(|l| &l.frr_name)));
        prop_assert!(unique(d.prefix_lists.iter().map(|l| &l.bird_name)));
        for l in &d.prefix_lists {
            for family in [&l.v4, &l.v6] {
                prop_assert!(unique(family.iter().map(|m| m.seq)), "{}", l.frr_name);
                prop_assert!(family.iter().all(|m| m.seq != 0));
            }
        }
        let targets = d.bgp.iter().chain(&d.ospf).chain(&d.isis).chain(&d.rip);
        for t in targets {
            prop_assert!(unique(t.entries.iter().map(|e| e.seq)), "{}", t.route_map);
            prop_assert!(unique(t.weights.iter().map(|w| w.mbps)), "{}", t.route_map);
            prop_assert!(t.weights.iter().all(|w| (1..=25_600).contains(&w.mbps)));
        }
    }
}

/// FRR's base template as it was before lists were rendered one by one (the loop over entries
/// inline): what the split must reproduce.
fn inline_list_templates() -> super::Templates {
    let inline_loop = "{% for list in prefix_lists %}
! {{ list.source }}
{%- for m in list.v4 %}
ip prefix-list {{ list.frr_name }}-V4 seq {{ m.seq }} permit {{ m.prefix }}{% if m.min_len > m.len %} ge {{ m.min_len }} le {{ m.max_len }}{% elif m.max_len > m.len %} le {{ m.max_len }}{% endif %}
{%- endfor %}
{%- for m in list.v6 %}
ipv6 prefix-list {{ list.frr_name }}-V6 seq {{ m.seq }} permit {{ m.prefix }}{% if m.min_len > m.len %} ge {{ m.min_len }} le {{ m.max_len }}{% elif m.max_len > m.len %} le {{ m.max_len }}{% endif %}
{%- endfor %}
{% endfor %}";
    let sources = super::EMBEDDED
        .iter()
        .filter(|(d, _, _)| *d == "frr")
        .map(|(_, f, text)| {
            let text = if *f == "base" {
                let (head, rest) = text.split_once("{% for list in prefix_lists %}").unwrap();
                let tail = rest.split_once("{% endfor %}").unwrap().1;
                format!("{head}{inline_loop}{tail}")
            } else {
                text.to_string()
            };
            (f.to_string(), text)
        })
        .collect();
    super::Templates::compile(super::DaemonKind::Frr, sources).unwrap()
}

fn without_blank_lines(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Templates kept across renders render only the lists that changed; the result is the
    /// full render's, and the same lines as the entries looped over inline.
    #[test]
    fn rendering_only_the_lists_that_changed_gives_the_full_render(
        worlds in prop::collection::vec(arb_world(), 1..4),
    ) {
        let kept = super::Templates::embedded(super::DaemonKind::Frr).unwrap();
        let inline = inline_list_templates();
        for w in worlds.iter().chain(worlds.iter().rev()) {
            let data = w.build().data;
            let incremental = kept.render(&data).unwrap();
            let full = super::Templates::embedded(super::DaemonKind::Frr)
                .unwrap()
                .render(&data)
                .unwrap();
            prop_assert_eq!(&incremental, &full);
            prop_assert_eq!(
                without_blank_lines(&incremental),
                without_blank_lines(&inline.render(&data).unwrap())
            );
        }
    }
}

/// Fast failover's BFD sessions as each daemon's templates write them: FRR a profile per
/// timer set and a peer per session; BIRD a `protocol bfd` with per-interface timers; BIRD
/// 1.x each family's sessions in its own daemon's half.
#[test]
fn bfd_peers_render_for_each_daemon() {
    use crate::failover::{BfdPeer, Timers};
    use crate::render::{DaemonKind, Templates};
    let peer = |address: &str, ms: u32| BfdPeer {
        node: format!("n-{address}"),
        address: address.parse().unwrap(),
        interface: "eth0".into(),
        timers: Timers {
            interval_ms: ms,
            multiplier: 3,
        },
    };
    let mut data = World::default().build().data;
    assert!(
        !Templates::load(DaemonKind::Frr, None)
            .unwrap()
            .render(&data)
            .unwrap()
            .contains("bfd"),
        "no fast failover, no BFD"
    );
    data.bfd = BfdData::of(&[
        peer("10.0.0.2", 50),
        peer("10.0.0.3", 30),
        peer("fd00::2", 50),
    ]);
    let frr = Templates::load(DaemonKind::Frr, None)
        .unwrap()
        .render(&data)
        .unwrap();
    assert!(
        frr.contains(
            "bfd\n profile ROUTELB-BFD-30MS-X3\n  detect-multiplier 3\n  receive-interval 30\n  \
         transmit-interval 30\n exit\n profile ROUTELB-BFD-50MS-X3\n"
        ),
        "{frr}"
    );
    assert!(frr.contains(" peer 10.0.0.3 interface eth0\n  profile ROUTELB-BFD-30MS-X3\n exit\n"));
    assert!(frr.contains(" peer fd00::2 interface eth0\n  profile ROUTELB-BFD-50MS-X3\n exit\n"));
    let bird = Templates::load(DaemonKind::Bird, None)
        .unwrap()
        .render(&data)
        .unwrap();
    assert!(
        bird.contains(
            "protocol bfd routelb_bfd {\n  interface \"eth0\" {\n    min rx interval 30 ms;\n    \
         min tx interval 30 ms;\n    multiplier 3;\n  };\n  neighbor 10.0.0.2 dev \"eth0\";\n  \
         neighbor 10.0.0.3 dev \"eth0\";\n  neighbor fd00::2 dev \"eth0\";\n}\n"
        ),
        "{bird}"
    );
    let bird1 = Templates::load(DaemonKind::Bird1, None)
        .unwrap()
        .render(&data)
        .unwrap();
    let (v4, v6) = bird1
        .split_once("# routelb fragment for BIRD 1.x, bird6")
        .unwrap();
    assert!(
        v4.contains("neighbor 10.0.0.3") && !v4.contains("fd00::2"),
        "{v4}"
    );
    assert!(
        v6.contains("neighbor fd00::2") && !v6.contains("10.0.0.3"),
        "{v6}"
    );
}

/// `weightedEcmp`: addresses with ready local endpoints get the link-bandwidth community of
/// their bucket, in lists per weight, from a route-map called first; FRR numbers each weight's
/// entry by its value, BIRD adds the community in routelb's export function. A policy without
/// the option weighs nothing.
#[test]
fn weighted_ecmp_renders_a_weight_per_bucket_for_each_daemon() {
    use crate::render::{DaemonKind, Templates};
    let weighted = |on: bool| World {
        pools: vec![pool("a", &["10.0.0.0/24", "2001:db8::/120"])],
        policies: vec![policy(
            "up",
            json!({"protocols": ["bgp"], "poolSelector": {}, "bgp": {"weightedEcmp": on}}),
        )],
        services: vec![
            service("default", "web", "a", &["10.0.0.5", "2001:db8::5"]),
            service("default", "api", "a", &["10.0.0.6"]),
            service("default", "idle", "a", &["10.0.0.7"]),
        ],
        instances: all_instances(),
        local_endpoints: [("10.0.0.5", 3), ("2001:db8::5", 3), ("10.0.0.6", 9)]
            .into_iter()
            .map(|(a, n)| (a.parse().unwrap(), n))
            .collect(),
        ..World::default()
    };
    let data = weighted(true).build().data;
    let t = &data.bgp[0];
    let weights: Vec<(u32, bool, bool)> = t
        .weights
        .iter()
        .map(|w| (w.mbps, w.has_v4, w.has_v6))
        .collect();
    // 9 endpoints fall in the bucket of 8; the idle service has none here.
    assert_eq!(weights, [(3, true, true), (8, true, false)]);
    let frr = Templates::load(DaemonKind::Frr, None)
        .unwrap()
        .render(&data)
        .unwrap();
    for lines in [
        "ip prefix-list ROUTELB-BGP-LBW-3-V4 seq",
        "ipv6 prefix-list ROUTELB-BGP-LBW-3-V6 seq",
        "route-map ROUTELB-BGP-LBW-V4 permit 3\n description weight_3\n match ip address prefix-list ROUTELB-BGP-LBW-3-V4\n set extcommunity bandwidth 3\nexit",
        "route-map ROUTELB-BGP-LBW-V4 permit 8\n",
        "route-map ROUTELB-BGP-LBW-V4 permit 65535\n",
        "route-map ROUTELB-BGP-V4 permit 1\n description weights\n call ROUTELB-BGP-LBW-V4\n on-match next\nexit",
        "route-map ROUTELB-BGP-LBW-V6 permit 3\n",
        "route-map ROUTELB-BGP-V6 permit 1\n",
    ] {
        assert!(frr.contains(lines), "{lines:?} not in\n{frr}");
    }
    assert!(!frr.contains("ROUTELB-BGP-LBW-V6 permit 8"), "{frr}");
    assert!(!frr.contains("10.0.0.7/32"), "not weighted: {frr}");
    let bird = Templates::load(DaemonKind::Bird, None)
        .unwrap()
        .render(&data)
        .unwrap();
    assert!(
        bird.contains("then\n    bgp_ext_community.add((generic, 0x0004FC00, 0x48B71B00));"),
        "{bird}"
    );
    let bird1 = Templates::load(DaemonKind::Bird1, None)
        .unwrap()
        .render(&data)
        .unwrap();
    let (v4, v6) = bird1
        .split_once("# routelb fragment for BIRD 1.x, bird6")
        .unwrap();
    assert!(v4.contains("0x49742400"), "bucket 8 in bird: {v4}");
    assert!(
        !v6.contains("0x49742400") && v6.contains("0x48B71B00"),
        "{v6}"
    );

    let plain = weighted(false).build().data;
    assert!(plain.bgp[0].weights.is_empty());
    let frr = Templates::load(DaemonKind::Frr, None)
        .unwrap()
        .render(&plain)
        .unwrap();
    assert!(!frr.contains("LBW") && !frr.contains("bandwidth"), "{frr}");
}
