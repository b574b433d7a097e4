use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use proptest::prelude::*;

use super::service::MAX_NAME_ANNOTATION;
use super::*;
use crate::api::{AddressPoolSpec, AllocationPolicy, annotations};

fn spec(addresses: &[&str]) -> AddressPoolSpec {
    AddressPoolSpec {
        addresses: addresses.iter().map(|s| s.to_string()).collect(),
        mode: PoolMode::Routed,
        aggregation: None,
        auto_assign: true,
        avoid_buggy_ips: false,
        allocation: None,
        fast_failover: None,
    }
}

fn pool(name: &str, addresses: &[&str]) -> PoolInput {
    (name.to_string(), Pool::from_spec(name, &spec(addresses)))
}

fn pool_with(name: &str, addresses: &[&str], f: impl FnOnce(&mut AddressPoolSpec)) -> PoolInput {
    let mut s = spec(addresses);
    f(&mut s);
    (name.to_string(), Pool::from_spec(name, &s))
}

fn svc(name: &str, created: i64) -> ServiceRequest {
    ServiceRequest {
        key: ServiceKey::new("default", name),
        created,
        requested: Ok(vec![]),
        ports: vec![Port {
            protocol: "TCP".into(),
            port: 80,
        }],
        ..Default::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn addrs(o: &Outcome, name: &str) -> Vec<String> {
    match &o.services[&ServiceKey::new("default", name)] {
        Decision::Assigned(a) => a.addresses.iter().map(|a| a.to_string()).collect(),
        Decision::Failed(e) => panic!("{name} failed: {e}"),
    }
}

fn failure(o: &Outcome, name: &str) -> AllocationError {
    failure_in(o, "default", name)
}

fn failure_in(o: &Outcome, ns: &str, name: &str) -> AllocationError {
    match &o.services[&ServiceKey::new(ns, name)] {
        Decision::Failed(e) => e.clone(),
        Decision::Assigned(a) => panic!("{ns}/{name} unexpectedly got {:?}", a.addresses),
    }
}

#[test]
fn allocates_lowest_free_in_creation_order() {
    let pools = [pool("a", &["10.0.0.0/30"])];
    let o = allocate(&pools, &[svc("late", 20), svc("early", 10)]);
    assert_eq!(addrs(&o, "early"), ["10.0.0.0"]);
    assert_eq!(addrs(&o, "late"), ["10.0.0.1"]);
    assert_eq!(
        o.pools["a"].v4,
        Counts {
            allocated: 2,
            available: 2
        }
    );
}

#[test]
fn avoid_buggy_ips_skips_dot_zero_and_255() {
    let pools = [pool_with("a", &["10.0.0.255-10.0.1.1"], |s| {
        s.avoid_buggy_ips = true
    })];
    let o = allocate(&pools, &[svc("x", 1), svc("y", 2)]);
    assert_eq!(addrs(&o, "x"), ["10.0.1.1"]);
    assert_eq!(
        failure(&o, "y"),
        AllocationError::PoolsExhausted {
            pools: vec!["a".into()],
            families: "IPv4".into()
        }
    );
    assert_eq!(
        o.pools["a"].v4,
        Counts {
            allocated: 1,
            available: 0
        }
    );
}

#[test]
fn dual_stack_policies() {
    let pools = [
        pool("v4", &["10.0.0.0/24"]),
        pool("ds", &["10.1.0.0/24", "2001:db8::/120"]),
    ];
    let mut require = svc("require", 1);
    require.family_policy = FamilyPolicy::RequireDualStack;
    require.families = vec![Family::V6, Family::V4];
    let mut prefer = svc("prefer", 2);
    prefer.family_policy = FamilyPolicy::PreferDualStack;
    let mut v6 = svc("v6", 3);
    v6.families = vec![Family::V6];
    let o = allocate(&pools, &[require, prefer, v6]);
    // Required dual stack skips the IPv4-only pool ("ds" < "v4" by name anyway, so check order).
    assert_eq!(addrs(&o, "require"), ["2001:db8::", "10.1.0.0"]);
    // PreferDualStack takes the first pool by name that has room: "ds" gives both.
    assert_eq!(addrs(&o, "prefer"), ["10.1.0.1", "2001:db8::1"]);
    assert_eq!(addrs(&o, "v6"), ["2001:db8::2"]);

    // Only an IPv4-only pool: Prefer gets IPv4, Require fails with a clear reason.
    let pools = [pool("v4", &["10.0.0.0/24"])];
    let mut prefer = svc("prefer", 1);
    prefer.family_policy = FamilyPolicy::PreferDualStack;
    let mut require = svc("require", 2);
    require.family_policy = FamilyPolicy::RequireDualStack;
    let o = allocate(&pools, &[prefer, require]);
    assert_eq!(addrs(&o, "prefer"), ["10.0.0.0"]);
    assert_eq!(
        failure(&o, "require"),
        AllocationError::FamilyUnavailable {
            pool: "v4".into(),
            family: Family::V6
        }
    );
}

#[test]
fn requested_addresses() {
    let pools = [
        pool("a", &["10.0.0.0/24"]),
        pool_with("manual", &["10.9.0.0/24"], |s| s.auto_assign = false),
    ];
    let mut want = svc("want", 5);
    want.requested = Ok(vec![ip("10.0.0.7")]);
    let mut manual = svc("manual", 6);
    manual.requested = Ok(vec![ip("10.9.0.9")]);
    let mut outside = svc("outside", 7);
    outside.requested = Ok(vec![ip("192.0.2.1")]);
    let mut taken = svc("taken", 8);
    taken.requested = Ok(vec![ip("10.0.0.7")]);
    let mut wrong_family = svc("wrongfam", 9);
    wrong_family.families = vec![Family::V4];
    wrong_family.requested = Ok(vec![ip("2001:db8::1")]);
    let mut garbage = svc("garbage", 10);
    garbage.requested = Err(RequestError::NotAnAddress { value: "x".into() });
    let o = allocate(
        &pools,
        &[
            svc("auto", 1),
            want,
            manual,
            outside,
            taken,
            wrong_family,
            garbage,
        ],
    );
    assert_eq!(addrs(&o, "auto"), ["10.0.0.0"]);
    assert_eq!(addrs(&o, "want"), ["10.0.0.7"]);
    assert_eq!(addrs(&o, "manual"), ["10.9.0.9"]);
    assert_eq!(
        failure(&o, "outside"),
        AllocationError::RequestedOutsidePools(ip("192.0.2.1"))
    );
    assert!(matches!(
        failure(&o, "taken"),
        AllocationError::RequestedInUse { .. }
    ));
    assert!(failure(&o, "taken").to_string().contains("default/want"));
    assert!(matches!(
        failure(&o, "wrongfam"),
        AllocationError::InvalidRequest(_)
    ));
    assert!(matches!(
        failure(&o, "garbage"),
        AllocationError::InvalidRequest(_)
    ));
}

#[test]
fn pool_choice_by_name_priority_and_selectors() {
    let pools = [
        pool("a-low", &["10.0.0.0/24"]),
        pool_with("b-high", &["10.1.0.0/31"], |s| {
            s.allocation = Some(AllocationPolicy {
                priority: 10,
                ..Default::default()
            })
        }),
        pool_with("c-team", &["10.2.0.0/24"], |s| {
            s.allocation = Some(AllocationPolicy {
                priority: 100,
                namespaces: vec!["team".into()],
                ..Default::default()
            })
        }),
        pool_with("d-manual", &["10.3.0.0/24"], |s| s.auto_assign = false),
    ];
    let mut named = svc("named", 1);
    named.requested_pool = Some("d-manual".into());
    let mut team = svc("t", 2);
    team.key = ServiceKey::new("team", "t");
    let mut not_team = svc("notteam", 3);
    not_team.requested_pool = Some("c-team".into());
    let mut missing = svc("missing", 4);
    missing.requested_pool = Some("nope".into());
    let o = allocate(
        &pools,
        &[
            named,
            team,
            not_team,
            missing,
            svc("x", 5),
            svc("y", 6),
            svc("z", 7),
        ],
    );
    assert_eq!(addrs(&o, "named"), ["10.3.0.0"]);
    assert_eq!(
        o.services[&ServiceKey::new("team", "t")]
            .assignment()
            .unwrap()
            .pool,
        "c-team"
    );
    assert_eq!(
        failure(&o, "notteam"),
        AllocationError::PoolNotAdmitted("c-team".into())
    );
    assert_eq!(
        failure(&o, "missing"),
        AllocationError::PoolNotFound("nope".into())
    );
    // b-high has two addresses, then allocation falls through to a-low.
    assert_eq!(addrs(&o, "x"), ["10.1.0.0"]);
    assert_eq!(addrs(&o, "y"), ["10.1.0.1"]);
    assert_eq!(addrs(&o, "z"), ["10.0.0.0"]);
}

#[test]
fn label_selectors() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    let sel = |k: &str, v: &str| {
        Some(LabelSelector {
            match_labels: Some([(k.to_string(), v.to_string())].into()),
            ..Default::default()
        })
    };
    let pools = [pool_with("prod", &["10.0.0.0/24"], |s| {
        s.allocation = Some(AllocationPolicy {
            namespace_selector: sel("env", "prod"),
            service_selector: sel("tier", "web"),
            ..Default::default()
        })
    })];
    let mut ok = svc("ok", 1);
    ok.namespace_labels = BTreeMap::from([("env".into(), "prod".into())]);
    ok.labels = BTreeMap::from([("tier".into(), "web".into())]);
    let mut wrong_ns = ok.clone();
    wrong_ns.key.name = "wrongns".into();
    wrong_ns.namespace_labels.clear();
    let o = allocate(&pools, &[ok, wrong_ns]);
    assert_eq!(addrs(&o, "ok"), ["10.0.0.0"]);
    assert_eq!(failure(&o, "wrongns"), AllocationError::NoMatchingPool);
}

#[test]
fn sharing_key() {
    let pools = [pool("a", &["10.0.0.0/24"])];
    let shared = |name: &str, created, port| {
        let mut s = svc(name, created);
        s.sharing_key = Some("k".into());
        s.ports = vec![Port {
            protocol: "TCP".into(),
            port,
        }];
        s
    };
    let mut udp = shared("udp", 4, 53);
    udp.ports = vec![Port {
        protocol: "UDP".into(),
        port: 80,
    }];
    let mut other_ns = shared("otherns", 5, 80);
    other_ns.key.namespace = "elsewhere".into();
    let o = allocate(
        &pools,
        &[
            shared("web", 1, 80),
            shared("tls", 2, 443),
            shared("clash", 3, 80),
            udp,
            other_ns,
        ],
    );
    assert_eq!(addrs(&o, "web"), ["10.0.0.0"]);
    assert_eq!(addrs(&o, "tls"), ["10.0.0.0"]);
    assert_eq!(addrs(&o, "udp"), ["10.0.0.0"]);
    let e = failure(&o, "clash").to_string();
    assert!(e.contains("80/TCP") && e.contains("default/web"), "{e}");
    // Same key in another namespace is another group.
    assert_eq!(
        o.services[&ServiceKey::new("elsewhere", "otherns")]
            .assignment()
            .unwrap()
            .addresses,
        [ip("10.0.0.1")]
    );
    assert_eq!(o.pools["a"].v4.allocated, 2);
}

/// Sharing across namespaces is explicit on both sides: every Service carries the key and
/// `routelb.io/share-across-namespaces: "true"`, and the pool allows it. A Service of the key
/// without the annotation stays in its namespace's own group; a pool that does not allow it
/// refuses new members with a reason, and takes nothing from a group it held before.
#[test]
fn sharing_across_namespaces_is_opt_in_on_both_sides() {
    let allowing = |name: &str, cidr: &str| {
        pool_with(name, &[cidr], |s| {
            s.allocation = Some(AllocationPolicy {
                share_across_namespaces: true,
                ..Default::default()
            })
        })
    };
    let shared = |ns: &str, name: &str, created, port, across| {
        let mut s = svc(name, created);
        s.key.namespace = ns.into();
        s.sharing_key = Some("k".into());
        s.share_across_namespaces = across;
        s.ports = vec![Port {
            protocol: "TCP".into(),
            port,
        }];
        s
    };
    let at = |o: &Outcome, ns: &str, name: &str| -> Vec<IpAddr> {
        o.services[&ServiceKey::new(ns, name)]
            .assignment()
            .map(|a| a.addresses.clone())
            .unwrap_or_default()
    };
    let services = [
        shared("shop", "web", 1, 80, true),
        shared("pay", "api", 2, 443, true),
        shared("pay", "clash", 3, 80, true),
        shared("ops", "local-key", 4, 80, false),
    ];
    let o = allocate(&[allowing("a", "10.0.0.0/24")], &services);
    assert_eq!(at(&o, "shop", "web"), [ip("10.0.0.0")]);
    assert_eq!(at(&o, "pay", "api"), [ip("10.0.0.0")]);
    let clash = failure_in(&o, "pay", "clash").to_string();
    assert!(
        clash.contains("80/TCP") && clash.contains("shop/web"),
        "{clash}"
    );
    // Without the annotation, the same key is its namespace's own group.
    assert_eq!(at(&o, "ops", "local-key"), [ip("10.0.0.1")]);

    // A pool that does not allow it: the first member is refused, saying why.
    let o = allocate(&[pool("a", &["10.0.0.0/24"])], &services[..2]);
    let e = failure_in(&o, "shop", "web").to_string();
    assert!(
        e.contains("does not allow sharing across namespaces"),
        "{e}"
    );
    // With two pools, the members go to the one that allows it.
    let o = allocate(
        &[pool("a", &["10.0.0.0/24"]), allowing("b", "10.1.0.0/24")],
        &services[..2],
    );
    assert_eq!(at(&o, "shop", "web"), [ip("10.1.0.0")]);
    assert_eq!(at(&o, "pay", "api"), [ip("10.1.0.0")]);

    // The pool stops allowing it: members keep what they hold; a new one is refused.
    let mut holding: Vec<ServiceRequest> = services[..2].to_vec();
    for s in &mut holding {
        s.current = vec![ip("10.0.0.0")];
        s.current_pool = Some("a".into());
    }
    holding.push(shared("dev", "late", 5, 8080, true));
    let o = allocate(&[pool("a", &["10.0.0.0/24"])], &holding);
    assert_eq!(at(&o, "shop", "web"), [ip("10.0.0.0")]);
    assert_eq!(at(&o, "pay", "api"), [ip("10.0.0.0")]);
    let e = failure_in(&o, "dev", "late").to_string();
    assert!(
        e.contains("does not allow sharing across namespaces"),
        "{e}"
    );
}

#[test]
fn keeps_existing_and_older_wins_conflicts() {
    let pools = [pool("a", &["10.0.0.0/24"])];
    let mut old = svc("old", 1);
    old.current = vec![ip("10.0.0.50")];
    let mut young = svc("young", 2);
    young.current = vec![ip("10.0.0.50")];
    let o = allocate(&pools, &[young, old, svc("new", 3)]);
    assert_eq!(addrs(&o, "old"), ["10.0.0.50"]);
    assert_eq!(addrs(&o, "young"), ["10.0.0.0"]);
    assert!(
        o.services[&ServiceKey::new("default", "young")]
            .assignment()
            .unwrap()
            .warnings[0]
            .contains("default/old")
    );
    assert_eq!(addrs(&o, "new"), ["10.0.0.1"]);
}

#[test]
fn pool_edits_keep_live_services_and_report_orphans() {
    let mut live = svc("live", 1);
    live.current = vec![ip("10.0.0.9")];
    live.current_pool = Some("a".into());
    // The pool shrank so the address is outside it: the service keeps it, with a warning.
    let o = allocate(&[pool("a", &["10.0.1.0/24"])], std::slice::from_ref(&live));
    let a = o.services[&live.key].assignment().unwrap();
    assert_eq!(a.addresses, [ip("10.0.0.9")]);
    assert_eq!(a.pool, "a");
    assert!(a.warnings[0].contains("no longer in any pool"));
    // A pool deleted entirely: same.
    let o = allocate(&[], std::slice::from_ref(&live));
    assert_eq!(
        o.services[&live.key].assignment().unwrap().addresses,
        [ip("10.0.0.9")]
    );
    // A pool grew, or got a higher-priority neighbour: nothing moves.
    let o = allocate(
        &[
            pool("a", &["10.0.0.0/16"]),
            pool_with("z", &["10.5.0.0/24"], |s| {
                s.allocation = Some(AllocationPolicy {
                    priority: 9,
                    ..Default::default()
                })
            }),
        ],
        std::slice::from_ref(&live),
    );
    assert_eq!(
        o.services[&live.key].assignment().unwrap().addresses,
        [ip("10.0.0.9")]
    );
    // A changed request moves it.
    let mut moved = live.clone();
    moved.requested_pool = Some("z".into());
    let o = allocate(
        &[pool("a", &["10.0.0.0/16"]), pool("z", &["10.5.0.0/24"])],
        &[moved],
    );
    assert_eq!(
        o.services[&live.key].assignment().unwrap().addresses,
        [ip("10.5.0.0")]
    );
}

#[test]
fn single_to_dual_stack_keeps_the_ipv4_address() {
    let pools = [pool("ds", &["10.0.0.0/24", "2001:db8::/120"])];
    let mut s = svc("s", 1);
    s.current = vec![ip("10.0.0.5")];
    s.family_policy = FamilyPolicy::RequireDualStack;
    let o = allocate(&pools, &[s]);
    assert_eq!(addrs(&o, "s"), ["10.0.0.5", "2001:db8::"]);
    // Back to single stack: the IPv6 address is dropped.
    let mut s = svc("s", 1);
    s.current = vec![ip("10.0.0.5"), ip("2001:db8::")];
    let o = allocate(&pools, &[s]);
    assert_eq!(addrs(&o, "s"), ["10.0.0.5"]);
}

#[test]
fn invalid_and_overlapping_pools_are_reported() {
    let pools = [
        pool("bad", &["10.0.0.0/33", "nonsense"]),
        pool("a", &["10.0.0.0/24"]),
        pool("b", &["10.0.0.128-10.0.1.5"]),
        pool("c", &["10.2.0.0/24"]),
    ];
    let mut on_bad = svc("onbad", 1);
    on_bad.requested_pool = Some("bad".into());
    let o = allocate(&pools, &[on_bad]);
    let bad = &o.pools["bad"];
    assert!(
        bad.invalid.as_ref().unwrap().contains("nonsense"),
        "{:?}",
        bad.invalid
    );
    assert!(matches!(
        failure(&o, "onbad"),
        AllocationError::PoolInvalid { .. }
    ));
    assert_eq!(o.pools["a"].overlaps, ["b"]);
    assert_eq!(o.pools["b"].overlaps, ["a"]);
    assert!(o.pools["c"].overlaps.is_empty());

    // A service holding an address from a pool that an edit made invalid keeps it, with a
    // warning naming the problem: bad input takes nothing away.
    let mut holder = svc("holder", 1);
    holder.requested_pool = Some("bad".into());
    holder.current = vec![ip("10.9.0.7")];
    holder.current_pool = Some("bad".into());
    let o = allocate(&pools, &[holder]);
    assert_eq!(addrs(&o, "holder"), ["10.9.0.7"]);
    let a = o.services.values().next().unwrap().assignment().unwrap();
    assert!(
        a.warnings.iter().any(|w| w.contains("invalid")),
        "{:?}",
        a.warnings
    );
}

#[test]
fn overlapping_pools_never_double_allocate() {
    let pools = [pool("a", &["10.0.0.0/31"]), pool("b", &["10.0.0.0/30"])];
    let o = allocate(
        &pools,
        &[
            svc("1", 1),
            svc("2", 2),
            svc("3", 3),
            svc("4", 4),
            svc("5", 5),
        ],
    );
    let all: Vec<String> = ["1", "2", "3", "4"]
        .iter()
        .flat_map(|n| addrs(&o, n))
        .collect();
    assert_eq!(all, ["10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    assert!(matches!(
        failure(&o, "5"),
        AllocationError::PoolsExhausted { .. }
    ));
    assert_eq!(
        o.pools["b"].v4,
        Counts {
            allocated: 2,
            available: 0
        }
    );
}

#[test]
fn huge_ipv6_pool_counts_saturate_sensibly() {
    let pools = [pool("v6", &["2001:db8::/32"])];
    let mut s = svc("s", 1);
    s.families = vec![Family::V6];
    let o = allocate(&pools, &[s]);
    assert_eq!(o.pools["v6"].v6.available, (1u128 << 96) - 1);
}

// ---- properties ----

fn arb_services() -> impl Strategy<Value = Vec<ServiceRequest>> {
    prop::collection::vec(
        (
            0i64..50,
            0u8..4,
            prop::option::of(0u8..3),
            prop::option::of(0u8..40),
            0u8..3,
            prop::option::of(0u8..2),
            0i32..4,
            prop::bool::weighted(0.3),
        ),
        0..60,
    )
    .prop_map(|items| {
        items
            .into_iter()
            .enumerate()
            .map(
                |(i, (created, fam, pool, current, policy, share, port, across))| {
                    let mut s = svc(&format!("s{i}"), created);
                    s.key.namespace = format!("ns{}", i % 2);
                    s.families = match fam {
                        0 => vec![],
                        1 => vec![Family::V4],
                        2 => vec![Family::V6],
                        _ => vec![Family::V6, Family::V4],
                    };
                    s.family_policy = [
                        FamilyPolicy::SingleStack,
                        FamilyPolicy::PreferDualStack,
                        FamilyPolicy::RequireDualStack,
                    ][policy as usize];
                    s.requested_pool = pool.map(|p| format!("p{p}"));
                    if let Some(c) = current {
                        s.current = vec![ip(&format!("10.0.0.{c}"))];
                    }
                    s.sharing_key = share.map(|k| format!("k{k}"));
                    s.share_across_namespaces = across;
                    s.ports = vec![Port {
                        protocol: "TCP".into(),
                        port,
                    }];
                    s
                },
            )
            .collect()
    })
}

fn arb_pools() -> Vec<PoolInput> {
    vec![
        pool("p0", &["10.0.0.0-10.0.0.15", "2001:db8::/124"]),
        pool("p1", &["10.0.0.8/29"]),
        pool_with("p2", &["10.0.0.20-10.0.0.40", "2001:db8::10/126"], |s| {
            s.avoid_buggy_ips = true;
            s.allocation = Some(AllocationPolicy {
                share_across_namespaces: true,
                ..Default::default()
            });
        }),
    ]
}

proptest! {
    #[test]
    fn no_address_is_held_by_two_unrelated_services(services in arb_services()) {
        let o = allocate(&arb_pools(), &services);
        let mut holders: HashMap<IpAddr, Vec<&ServiceRequest>> = HashMap::new();
        for s in &services {
            if let Decision::Assigned(a) = &o.services[&s.key] {
                for ip in &a.addresses {
                    holders.entry(*ip).or_default().push(s);
                }
            }
        }
        for (ip, hs) in holders {
            if hs.len() > 1 {
                let first = hs[0];
                for h in &hs {
                    prop_assert!(h.sharing_key.is_some() && h.sharing_key == first.sharing_key
                        && h.sharing_scope() == first.sharing_scope(), "{ip} held by {:?}", hs.iter().map(|h| &h.key).collect::<Vec<_>>());
                    // Across namespaces only from a pool that allows it, or kept from before.
                    if h.key.namespace != first.key.namespace {
                        let allowed = matches!(&o.services[&h.key], Decision::Assigned(a) if a.pool == "p2");
                        prop_assert!(allowed || h.current.contains(&ip), "{ip}");
                    }
                }
                // Sharers never collide on ports.
                let mut seen = std::collections::HashSet::new();
                for h in &hs { for p in &h.ports { prop_assert!(seen.insert(p.clone()), "{ip}: port {p} twice"); } }
            }
        }
    }

    #[test]
    fn stable_under_reordering(services in arb_services(), seed in any::<u64>()) {
        let pools = arb_pools();
        let a = allocate(&pools, &services);
        let mut shuffled = services.clone();
        // Deterministic shuffle from the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut reversed_pools = pools.clone();
        reversed_pools.reverse();
        let b = allocate(&reversed_pools, &shuffled);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn a_second_run_on_its_own_output_changes_nothing(services in arb_services()) {
        let pools = arb_pools();
        let first = allocate(&pools, &services);
        let fed_back: Vec<ServiceRequest> = services.iter().map(|s| {
            let mut s = s.clone();
            if let Decision::Assigned(a) = &first.services[&s.key] {
                s.current = a.addresses.clone();
                s.current_pool = Some(a.pool.clone());
            } else {
                s.current.clear();
            }
            s
        }).collect();
        let second = allocate(&pools, &fed_back);
        for s in &services {
            let (a, b) = (&first.services[&s.key], &second.services[&s.key]);
            prop_assert_eq!(a.assignment().map(|x| &x.addresses), b.assignment().map(|x| &x.addresses), "{}", s.key);
        }
    }
}

#[test]
fn pool_used_grants_no_admission() {
    // Overlapping pools; `premium` admits namespace `gold` only and ranks higher.
    let pools = [
        pool("standard", &["10.0.0.0/24"]),
        pool_with("premium", &["10.0.0.0/24"], |s| {
            s.allocation = Some(AllocationPolicy {
                priority: 10,
                namespaces: vec!["gold".into()],
                ..Default::default()
            })
        }),
    ];
    let mut claimed = svc("tenant", 1);
    claimed.current = vec![ip("10.0.0.7")];
    claimed.current_pool = Some("premium".into());
    let o = allocate(&pools, std::slice::from_ref(&claimed));
    let a = o.services[&claimed.key].assignment().unwrap();
    assert_eq!(a.addresses, [ip("10.0.0.7")], "never renumbered");
    assert_eq!(a.pool, "standard", "the annotation is not an authority");
    assert!(a.admitted);

    // Among pools that admit the service, the annotation still breaks the tie.
    let mut gold = claimed.clone();
    gold.key.namespace = "gold".into();
    gold.current_pool = Some("standard".into());
    let o = allocate(&pools, std::slice::from_ref(&gold));
    assert_eq!(o.services[&gold.key].assignment().unwrap().pool, "standard");

    // Only a pool that no longer admits the service holds its address (the pool was edited):
    // the address stays, the pool's per-service grants do not.
    let o = allocate(&pools[1..], std::slice::from_ref(&claimed));
    let a = o.services[&claimed.key].assignment().unwrap();
    assert_eq!((a.pool.as_str(), a.admitted), ("premium", false));
    assert!(a.warnings[0].contains("does not admit"), "{:?}", a.warnings);
}

#[test]
fn aggregates_wider_than_the_pool_are_refused() {
    let agg = |v4: Option<u8>, v6: Option<u8>| {
        move |s: &mut AddressPoolSpec| {
            s.aggregation = Some(crate::api::Aggregation { ipv4: v4, ipv6: v6 })
        }
    };
    for (addresses, v4, v6, refused) in [
        (&["192.0.2.0/24"][..], Some(24), None, None),
        (&["192.0.2.0/24"][..], Some(28), None, None),
        (&["192.0.2.0/24"][..], Some(16), None, Some("192.0.2.0/24")),
        (&["192.0.2.0/24"][..], Some(0), None, Some("192.0.2.0/24")),
        (
            &["192.0.2.0/25", "192.0.2.128/25"][..],
            Some(24),
            None,
            None,
        ),
        (
            &["192.0.2.10-192.0.2.20"][..],
            Some(28),
            None,
            Some("192.0.2.10/31"),
        ),
        (
            &["2001:db8::/64"][..],
            None,
            Some(48),
            Some("2001:db8::/64"),
        ),
        (&["2001:db8::/64"][..], None, Some(64), None),
    ] {
        let (_, parsed) = pool_with("p", addresses, agg(v4, v6));
        match (parsed, refused) {
            (Ok(_), None) => {}
            (Err(e), Some(block)) => {
                let e = e.to_string();
                assert!(e.contains(block) && e.contains("outside the pool"), "{e}")
            }
            (r, _) => panic!("{addresses:?} {v4:?} {v6:?}: {r:?}"),
        }
    }
}

#[test]
fn error_messages_are_stable() {
    // Users read these in pool conditions and Service annotations; the docs quote them.
    let entry = |s: &str| parse_range(s).unwrap_err().to_string();
    let neither = |shown: &str| format!("{shown:?} is neither a CIDR, an address nor a range a-b");
    assert_eq!(entry(" nonsense "), neither("nonsense"));
    assert_eq!(entry("10.0.0.0/33"), neither("10.0.0.0/33"));
    assert_eq!(entry("x-y"), neither("x-y"));
    assert_eq!(entry(&"x".repeat(100)), neither(&"x".repeat(80)));
    assert_eq!(
        entry("10.0.0.1 - x"),
        r#""10.0.0.1 - x": "x" is not an IP address"#
    );
    assert_eq!(
        entry("10.0.0.1-2001:db8::1"),
        r#""10.0.0.1-2001:db8::1": a range cannot mix IPv4 and IPv6"#
    );
    assert_eq!(
        entry("10.0.0.9-10.0.0.1"),
        r#""10.0.0.9-10.0.0.1": the range is backwards (first address is after the last)"#
    );
    assert_eq!(
        entry("10.0.0.1/24"),
        r#""10.0.0.1/24": host bits are set (did you mean 10.0.0.0/24?)"#
    );

    // A pool's error lists every problem, in the order of the spec's fields.
    let (_, parsed) = pool_with("p", &[], |s| {
        s.aggregation = Some(crate::api::Aggregation {
            ipv4: Some(33),
            ipv6: Some(129),
        })
    });
    let e = parsed.unwrap_err();
    assert_eq!(
        e.problems,
        [
            PoolProblem::NoAddresses,
            PoolProblem::AggregationTooLong {
                field: "ipv4",
                max: 32
            },
            PoolProblem::AggregationTooLong {
                field: "ipv6",
                max: 128
            },
        ]
    );
    assert_eq!(
        e.to_string(),
        "spec.addresses is empty; spec.aggregation.ipv4 must be 0-32; \
         spec.aggregation.ipv6 must be 0-128"
    );
    let (_, parsed) = pool_with("p", &["10.0.0.0/24", "x"], |s| {
        s.aggregation = Some(crate::api::Aggregation {
            ipv4: Some(16),
            ipv6: None,
        })
    });
    assert_eq!(
        parsed.unwrap_err().to_string(),
        r#""x" is neither a CIDR, an address nor a range a-b; spec.aggregation.ipv4 16 is shorter than the pool's block 10.0.0.0/24: the aggregate would announce addresses outside the pool"#
    );
    let (_, parsed) = pool_with("p", &["10.0.0.0/24"], |s| {
        s.allocation = Some(AllocationPolicy {
            service_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "Near".into(),
                    values: None,
                }]),
                match_labels: None,
            }),
            ..Default::default()
        })
    });
    let e = parsed.unwrap_err();
    assert!(
        matches!(
            &e.problems[..],
            [PoolProblem::Selector {
                field: "spec.allocation.serviceSelector",
                ..
            }]
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("spec.allocation.serviceSelector: "),
        "{e}"
    );

    // What a Service asks for.
    let mut s = svc("s", 1);
    s.families = vec![Family::V4];
    assert_eq!(
        s.check_families(&[ip("2001:db8::1")])
            .unwrap_err()
            .to_string(),
        "requested address 2001:db8::1 is IPv6 but the service is IPv4 only"
    );
    s.family_policy = FamilyPolicy::PreferDualStack;
    let e = s
        .check_families(&[ip("10.0.0.1"), ip("2001:db8::1"), ip("10.0.0.2")])
        .unwrap_err();
    assert_eq!(e, RequestError::FamilyTwice(Family::V4));
    assert_eq!(e.to_string(), "more than one IPv4 address requested");
    assert_eq!(
        AllocationError::InvalidRequest(e).to_string(),
        "invalid request: more than one IPv4 address requested"
    );
}

fn k8s_service(annotations: &[(&str, &str)], spec: ServiceSpec) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some("web".into()),
            name: Some("shop".into()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(spec),
        ..Default::default()
    }
}

#[test]
fn reads_a_service() {
    let spec = ServiceSpec {
        ip_families: Some(vec!["IPv6".into(), "IPv4".into()]),
        ip_family_policy: Some("PreferDualStack".into()),
        load_balancer_ip: Some("192.0.2.9".into()),
        ports: Some(vec![
            ServicePort {
                port: 53,
                protocol: Some("UDP".into()),
                ..Default::default()
            },
            ServicePort {
                port: 80,
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    let s = k8s_service(
        &[
            (annotations::ADDRESSES, " 2001:db8::1 , 192.0.2.1,"),
            (annotations::POOL, " edge "),
            (annotations::SHARING_KEY, "  "),
        ],
        spec.clone(),
    );
    let r = ServiceRequest::from_service(&s, &BTreeMap::new());
    assert_eq!(r.key, ServiceKey::new("web", "shop"));
    // No creation time: the youngest, losing every conflict.
    assert_eq!(r.created, i64::MAX);
    assert_eq!(r.families, [Family::V6, Family::V4]);
    assert_eq!(r.family_policy, FamilyPolicy::PreferDualStack);
    // The annotation wins over spec.loadBalancerIP.
    assert_eq!(r.requested, Ok(vec![ip("2001:db8::1"), ip("192.0.2.1")]));
    assert_eq!(r.requested_pool.as_deref(), Some("edge"));
    assert_eq!(r.sharing_key, None);
    assert_eq!(
        r.ports,
        [
            Port {
                protocol: "UDP".into(),
                port: 53
            },
            Port {
                protocol: "TCP".into(),
                port: 80
            }
        ]
    );
    let r = ServiceRequest::from_service(&k8s_service(&[], spec), &BTreeMap::new());
    assert_eq!(r.requested, Ok(vec![ip("192.0.2.9")]));
    assert_eq!(r.family_policy, FamilyPolicy::PreferDualStack);
    let r =
        ServiceRequest::from_service(&k8s_service(&[], ServiceSpec::default()), &BTreeMap::new());
    assert_eq!(r.requested, Ok(vec![]));
    assert_eq!(r.family_policy, FamilyPolicy::SingleStack);
}

#[test]
fn a_name_too_long_makes_the_request_invalid_without_echoing_it() {
    let long = "p".repeat(MAX_NAME_ANNOTATION + 1);
    let s = k8s_service(
        &[
            (annotations::SHARING_KEY, &long),
            (annotations::POOL, &long),
            (annotations::ADDRESSES, "10.0.0.1"),
        ],
        ServiceSpec::default(),
    );
    let r = ServiceRequest::from_service(&s, &BTreeMap::new());
    assert_eq!((r.requested_pool, r.sharing_key), (None, None));
    // The first one read (the pool) is named.
    let e = r.requested.unwrap_err();
    assert_eq!(
        e,
        RequestError::NameTooLong {
            annotation: annotations::POOL,
            len: 254
        }
    );
    assert_eq!(
        e.to_string(),
        "routelb.io/pool is 254 bytes long; at most 253"
    );
    // An unreadable address is the error already: it stays.
    let s = k8s_service(
        &[
            (annotations::ADDRESSES, &format!("10.0.0.1,{long}")),
            (annotations::POOL, &long),
        ],
        ServiceSpec::default(),
    );
    let e = ServiceRequest::from_service(&s, &BTreeMap::new())
        .requested
        .unwrap_err();
    assert_eq!(
        e,
        RequestError::NotAnAddress {
            value: "p".repeat(64)
        }
    );
    assert_eq!(
        e.to_string(),
        format!("{:?} is not an IP address", "p".repeat(64))
    );
}

#[test]
fn held_addresses_are_one_per_wanted_family_in_its_order() {
    let a = |s: &str| Addr::from(ip(s));
    let mut s = svc("s", 1);
    s.families = vec![Family::V6];
    s.family_policy = FamilyPolicy::PreferDualStack;
    s.current = vec![ip("10.0.0.1"), ip("2001:db8::1"), ip("10.0.0.2")];
    assert_eq!(held_addresses(&s), [a("2001:db8::1"), a("10.0.0.1")]);
    s.family_policy = FamilyPolicy::SingleStack;
    assert_eq!(held_addresses(&s), [a("2001:db8::1")]);
}

#[test]
fn what_is_held_answers_an_unchanged_or_unreadable_request() {
    let held = [Addr::from(ip("10.0.0.1"))];
    let mut warnings = vec![];
    let mut s = svc("s", 1);
    assert!(still_requested(&s, &held, &mut warnings));
    s.requested = Ok(vec![ip("10.0.0.1")]);
    assert!(still_requested(&s, &held, &mut warnings));
    s.requested = Ok(vec![ip("10.0.0.2")]);
    assert!(!still_requested(&s, &held, &mut warnings));
    assert!(warnings.is_empty());
    s.requested = Err(RequestError::NotAnAddress { value: "x".into() });
    assert!(still_requested(&s, &held, &mut warnings));
    assert_eq!(
        warnings,
        [r#"ignoring the request: "x" is not an IP address"#]
    );
}

#[test]
fn a_sharing_group_fits_or_says_why_not() {
    let a = |s: &str| Addr::from(ip(s));
    let why = |s: &ServiceRequest, addrs: &[Addr], requested: &[Addr]| {
        group_fits(s, "k", "a", addrs, requested)
            .err()
            .map(|e| e.to_string())
    };
    let single = svc("s", 1);
    let mut dual = svc("d", 1);
    dual.family_policy = FamilyPolicy::PreferDualStack;
    let mut elsewhere = svc("e", 1);
    elsewhere.requested_pool = Some("b".into());
    assert_eq!(why(&single, &[a("10.0.0.1")], &[a("10.0.0.1")]), None);
    assert_eq!(
        why(&single, &[], &[]).as_deref(),
        Some(r#"cannot share: sharing key "k" has no IPv4 address"#)
    );
    assert_eq!(
        why(&dual, &[], &[]).as_deref(),
        Some(r#"cannot share: sharing key "k" has no address of the families this service wants"#)
    );
    assert_eq!(
        why(&single, &[a("10.0.0.1")], &[a("10.0.0.2")]).as_deref(),
        Some(r#"cannot share: requested addresses differ from 10.0.0.1 used by sharing key "k""#)
    );
    assert_eq!(
        why(&elsewhere, &[a("10.0.0.1")], &[]).as_deref(),
        Some(r#"cannot share: sharing key "k" uses pool "a", not "b""#)
    );
}

#[test]
fn a_plan_takes_kept_addresses_first_and_names_the_families_short() {
    let a = |s: &str| Addr::from(ip(s));
    let (v4, v6) = (Family::V4, Family::V6);
    let p = Pool::from_spec("a", &spec(&["10.0.0.0/31", "2001:db8::/127"])).unwrap();
    let mut st = State {
        pools: [("a", &p)].into(),
        invalid: BTreeMap::new(),
        used: HashMap::new(),
        groups: HashMap::new(),
        cursors: HashMap::new(),
        services: &[],
    };
    // What the service keeps first, then the lowest free address; nothing is taken.
    assert_eq!(
        st.plan(&p, &[v4, v6], &[v4, v6], &[a("2001:db8::1")]),
        Ok(vec![a("10.0.0.0"), a("2001:db8::1")])
    );
    assert_eq!(st.plan(&p, &[v4], &[v4], &[]), Ok(vec![a("10.0.0.0")]));
    // A family without a free address is short only if required...
    st.used.insert(a("2001:db8::"), Holder::Service(0));
    st.used.insert(a("2001:db8::1"), Holder::Service(0));
    assert_eq!(st.plan(&p, &[v4, v6], &[], &[]), Ok(vec![a("10.0.0.0")]));
    assert_eq!(st.plan(&p, &[v4, v6], &[v4, v6], &[]), Err(vec![v6]));
    // ...or when nothing at all is free: then every wanted family is.
    st.used.insert(a("10.0.0.0"), Holder::Service(0));
    st.used.insert(a("10.0.0.1"), Holder::Service(0));
    assert_eq!(st.plan(&p, &[v4, v6], &[], &[]), Err(vec![v4, v6]));
    assert_eq!(shown_families(&[v4, v6]), "IPv4/IPv6");
}

#[test]
fn fast_failover_is_for_local_pools_with_timers_in_range() {
    use crate::api::FastFailover;
    let mut s = spec(&["192.0.2.0/28"]);
    s.fast_failover = Some(FastFailover::default());
    let err = Pool::from_spec("ff-routed", &s).unwrap_err();
    assert_eq!(err.problems, vec![PoolProblem::FastFailoverNotLocal]);
    s.mode = PoolMode::Local;
    assert!(Pool::from_spec("ff-local", &s).is_ok());
    s.fast_failover = Some(FastFailover {
        interval_ms: 5,
        detect_multiplier: 3,
    });
    let err = Pool::from_spec("ff-fast", &s).unwrap_err();
    assert_eq!(err.problems, vec![PoolProblem::FastFailoverTimers]);
}
