//! The allocator against a real kube-apiserver (integration/k8s/control-plane.sh).
//! Every test uses its own namespace and pools restricted to it, and runs alone.

mod support {
    pub mod allocator;
    pub mod api;
    pub mod lock;
    pub mod objects;
    pub mod wait;
}

use std::collections::HashSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use routelb::api::{AddressPool, annotations};
use serde_json::json;
use support::allocator::{Allocator, http_get};
use support::api::*;
use support::objects::*;
use support::{lock, wait};

fn only(ns: &str, addresses: &[&str]) -> serde_json::Value {
    json!({ "addresses": addresses, "allocation": { "namespaces": [ns] } })
}

#[tokio::test(flavor = "multi_thread")]
async fn allocates_distinct_addresses_and_reports_pool_status() {
    let api_server = lock::api_server();
    let c = client(&api_server).await;
    let ns = unique("alloc");
    ensure_namespace(&c, &ns, &[]).await;
    let pool = format!("{ns}-pool");
    create_pool(&c, &pool, only(&ns, &["10.10.1.0/29"])).await;
    let alloc = Allocator::start(&ns, "a", &[]);
    for i in 0..5 {
        create_service(&c, service(&ns, &format!("s{i}"), json!({}))).await;
    }
    let mut seen = HashSet::new();
    for i in 0..5 {
        let ips = wait_ips(&c, &ns, &format!("s{i}"), 1).await;
        assert!(ips[0].starts_with("10.10.1."), "{ips:?}");
        assert!(seen.insert(ips[0].clone()), "{} given twice", ips[0]);
        let s = wait_annotation(&c, &ns, &format!("s{i}"), annotations::POOL_USED, |v| {
            v.is_some()
        })
        .await;
        assert_eq!(s.annotations()[annotations::POOL_USED], pool);
    }
    wait_event(&c, &ns, "s0", "Allocated").await;
    let pools: Api<AddressPool> = Api::all(c.clone());
    let status = wait::up_to(Duration::from_secs(10))
        .until(|| async {
            let st = pools.get(&pool).await.ok()?.status?;
            (st.ipv4.allocated == 5).then_some(st)
        })
        .await
        .expect("pool status counts 5")
        .value;
    assert_eq!(status.ipv4.available, 3);
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    let m = alloc.metrics().await;
    assert!(m.contains("routelb_allocations_total"), "{m}");
    assert!(http_get(alloc.metrics_port, "/readyz").await.is_some());
    assert!(http_get(alloc.metrics_port, "/healthz").await.is_some());
    assert!(m.contains(&format!("pool=\"{pool}\"")), "{m}");
    assert!(
        m.contains("routelb_services{state=\"announced\"}")
            || m.contains("routelb_services{state=\"not_announced\"} 5"),
        "{m}"
    );
    delete_pool(&c, &pool).await;
    // A deleted pool's gauges go with it (an alert on its usage would never end otherwise).
    wait::up_to(Duration::from_secs(10))
        .until(|| async {
            (!alloc.metrics().await.contains(&format!("pool=\"{pool}\""))).then_some(())
        })
        .await
        .expect("the deleted pool's gauges removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn dual_stack_families() {
    let api_server = lock::api_server();
    let c = client(&api_server).await;
    let ns = unique("dual");
    ensure_namespace(&c, &ns, &[]).await;
    let pool = format!("{ns}-pool");
    create_pool(&c, &pool, only(&ns, &["10.10.2.0/28", "fd00:10:2::/124"])).await;
    let _a = Allocator::start(&ns, "a", &[]);
    create_service(
        &c,
        service(
            &ns,
            "require",
            json!({"spec": {"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv6", "IPv4"]}}),
        ),
    )
    .await;
    create_service(
        &c,
        service(
            &ns,
            "prefer",
            json!({"spec": {"ipFamilyPolicy": "PreferDualStack"}}),
        ),
    )
    .await;
    create_service(
        &c,
        service(
            &ns,
            "v6",
            json!({"spec": {"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv6"]}}),
        ),
    )
    .await;
    let require = wait_ips(&c, &ns, "require", 2).await;
    assert!(
        require[0].starts_with("fd00:10:2::") && require[1].starts_with("10.10.2."),
        "{require:?}"
    );
    assert_eq!(wait_ips(&c, &ns, "prefer", 2).await.len(), 2);
    let v6 = wait_ips(&c, &ns, "v6", 1).await;
    assert!(v6[0].starts_with("fd00:10:2::"), "{v6:?}");
    delete_pool(&c, &pool).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sharing_key_shares_when_ports_do_not_collide() {
    let api_server = lock::api_server();
    let c = client(&api_server).await;
    let ns = unique("share");
    ensure_namespace(&c, &ns, &[]).await;
    let pool = format!("{ns}-pool");
    create_pool(&c, &pool, only(&ns, &["10.10.3.0/29"])).await;
    let _a = Allocator::start(&ns, "a", &[]);
    let shared = |name: &str, port: i32| {
        service(
            &ns,
            name,
            json!({
                "metadata": { "annotations": { annotations::SHARING_KEY: "web" } },
                "spec": { "ports": [{ "port": port, "protocol": "TCP" }] }
            }),
        )
    };
    create_service(&c, shared("http", 80)).await;
    let http = wait_ips(&c, &ns, "http", 1).await;
    create_service(&c, shared("https", 443)).await;
    assert_eq!(wait_ips(&c, &ns, "https", 1).await, http);
    create_service(&c, shared("clash", 80)).await;
    let s = wait_annotation(&c, &ns, "clash", annotations::ALLOCATION_ERROR, |v| {
        v.is_some()
    })
    .await;
    let err = &s.annotations()[annotations::ALLOCATION_ERROR];
    assert!(err.contains("80/TCP"), "{err}");
    assert!(ingress_ips(&s).is_empty());
    wait_event(&c, &ns, "clash", "AllocationFailed").await;
    delete_pool(&c, &pool).await;
}

/// Sharing across namespaces: both Services carry the key and
/// `routelb.io/share-across-namespaces: "true"`, and the pool allows it; where the pool does
/// not, the Service says why.
#[tokio::test(flavor = "multi_thread")]
async fn sharing_across_namespaces_needs_both_services_and_the_pool() {
    let api_server = lock::api_server();
    let c = client(&api_server).await;
    let (shop, pay) = (unique("shop"), unique("pay"));
    ensure_namespace(&c, &shop, &[]).await;
    ensure_namespace(&c, &pay, &[]).await;
    let (allowing, closed) = (format!("{shop}-across"), format!("{shop}-closed"));
    create_pool(
        &c,
        &allowing,
        json!({ "addresses": ["10.10.9.0/29"], "autoAssign": false,
                "allocation": { "namespaces": [shop, pay], "shareAcrossNamespaces": true } }),
    )
    .await;
    create_pool(
        &c,
        &closed,
        json!({ "addresses": ["10.10.9.8/29"], "autoAssign": false,
                "allocation": { "namespaces": [shop, pay] } }),
    )
    .await;
    let _a = Allocator::start(&shop, "a", &[]);
    let shared = |ns: &str, name: &str, pool: &str, port: i32| {
        service(
            ns,
            name,
            json!({
                "metadata": { "annotations": {
                    annotations::POOL: pool,
                    annotations::SHARING_KEY: "front",
                    annotations::SHARE_ACROSS_NAMESPACES: "true" } },
                "spec": { "ports": [{ "port": port, "protocol": "TCP" }] }
            }),
        )
    };
    create_service(&c, shared(&shop, "web", &allowing, 80)).await;
    let web = wait_ips(&c, &shop, "web", 1).await;
    create_service(&c, shared(&pay, "api", &allowing, 443)).await;
    assert_eq!(wait_ips(&c, &pay, "api", 1).await, web);
    // The same key without the annotation: its namespace's own group, another address.
    let mut alone = shared(&pay, "alone", &allowing, 80);
    alone
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove(annotations::SHARE_ACROSS_NAMESPACES);
    create_service(&c, alone).await;
    let other = wait_ips(&c, &pay, "alone", 1).await;
    assert_ne!(other, web);
    // A pool that does not allow it (another key: "front" is in the other pool).
    let mut refused = shared(&pay, "refused", &closed, 8080);
    refused
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(annotations::SHARING_KEY.into(), "back".into());
    create_service(&c, refused).await;
    let s = wait_annotation(&c, &pay, "refused", annotations::ALLOCATION_ERROR, |v| {
        v.is_some()
    })
    .await;
    let err = &s.annotations()[annotations::ALLOCATION_ERROR];
    assert!(
        err.contains("does not allow sharing across namespaces"),
        "{err}"
    );
    wait_event(&c, &pay, "refused", "AllocationFailed").await;
    delete_pool(&c, &allowing).await;
    delete_pool(&c, &closed).await;
}

/// `routelb peer-config` without `--config` reads the cluster's pools and policies: the pool
/// a BGP policy exports is accepted at host-route length, with a limit; a pool no policy
/// exports is not.
#[tokio::test(flavor = "multi_thread")]
async fn peer_config_reads_the_cluster() {
    use routelb::api::RoutingPolicy;
    let api_server = lock::api_server();
    let c = client(&api_server).await;
    let name = unique("peer");
    let (exported, quiet) = (format!("{name}-bgp"), format!("{name}-quiet"));
    create_pool(&c, &exported, json!({ "addresses": ["10.10.12.0/28"] })).await;
    Api::<AddressPool>::all(c.clone())
        .patch(
            &exported,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "peer-test": name } } })),
        )
        .await
        .unwrap();
    create_pool(&c, &quiet, json!({ "addresses": ["10.10.13.0/28"] })).await;
    let policies: Api<RoutingPolicy> = Api::all(c.clone());
    let policy: RoutingPolicy = serde_json::from_value(json!({
        "apiVersion": "routelb.io/v1alpha1", "kind": "RoutingPolicy",
        "metadata": { "name": name },
        "spec": { "protocols": ["bgp"], "poolSelector": { "matchLabels": { "peer-test": name } } },
    }))
    .unwrap();
    policies.create(&Default::default(), &policy).await.unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_routelb"))
        .args(["peer-config", "--daemon", "frr"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("permit 10.10.12.0/28 ge 32 le 32") && text.contains("maximum-prefix 26 90"),
        "{text}"
    );
    assert!(!text.contains("10.10.13.0"), "{text}");
    let _ = policies.delete(&name, &DeleteParams::default()).await;
    delete_pool(&c, &exported).await;
    delete_pool(&c, &quiet).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn requested_addresses_are_honoured_or_refused() {
    let api_server = lock::api_server();
    let c = client(&api_server).await;
    let ns = unique("req");
    ensure_namespace(&c, &ns, &[]).await;
    let pool = format!("{ns}-pool");
    create_pool(&c, &pool, only(&ns, &["10.10.4.0/28"])).await;
    let _a = Allocator::start(&ns, "a", &[]);
    create_service(
        &c,
        service(
            &ns,
            "ann",
            json!({"metadata": {"annotations": {annotations::ADDRESSES: "10.10.4.9"}}}),
        ),
    )
    .await;
    create_service(
        &c,
        service(
            &ns,
            "legacy",
            json!({"spec": {"loadBalancerIP": "10.10.4.7"}}),
        ),
    )
    .await;
    create_service(
        &c,
        service(
            &ns,
            "outside",
            json!({"metadata": {"annotations": {annotations::ADDRESSES: "192.0.2.1"}}}),
        ),
    )
    .await;
    assert_eq!(wait_ips(&c, &ns, "ann", 1).await, ["10.10.4.9"]);
    assert_eq!(wait_ips(&c, &ns, "legacy", 1).await, ["10.10.4.7"]);
    let s = wait_annotation(&c, &ns, "outside", annotations::ALLOCATION_ERROR, |v| {
        v.is_some()
    })
    .await;
    assert!(
        s.annotations()[annotations::ALLOCATION_ERROR].contains("192.0.2.1 is not in any pool")
    );
    // Changing the request moves the service.
    let api: Api<Service> = Api::namespaced(c.clone(), &ns);
    api.patch(
        "ann",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {annotations::ADDRESSES: "10.10.4.10"}}})),
    )
    .await
    .unwrap();
    wait::up_to(Duration::from_secs(20))
        .until(|| async {
            (ingress_ips(&api.get("ann").await.ok()?) == ["10.10.4.10"]).then_some(())
        })
        .await
        .expect("moved to the newly requested address");
    delete_pool(&c, &pool).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pool_selectors_and_priority() {
    let api_server = lock::api_server();
    let c = client(&api_server).await;
    let ns = unique("sel");
    ensure_namespace(&c, &ns, &[("team", "blue")]).await;
    let (general, blue, named) = (
        format!("{ns}-general"),
        format!("{ns}-blue"),
        format!("{ns}-named"),
    );
    create_pool(&c, &general, only(&ns, &["10.10.5.0/28"])).await;
    create_pool(
        &c,
        &blue,
        json!({
            "addresses": ["10.10.6.0/28"],
            "allocation": {
                "priority": 10,
                "namespaceSelector": { "matchLabels": { "team": "blue" } },
                "serviceSelector": { "matchExpressions": [{ "key": "tier", "operator": "In", "values": ["web"] }] }
            }
        }),
    )
    .await;
    create_pool(&c, &named, json!({ "addresses": ["10.10.7.0/28"], "autoAssign": false, "allocation": { "namespaces": [ns] } })).await;
    let _a = Allocator::start(&ns, "a", &[]);
    create_service(
        &c,
        service(&ns, "web", json!({"metadata": {"labels": {"tier": "web"}}})),
    )
    .await;
    create_service(
        &c,
        service(&ns, "db", json!({"metadata": {"labels": {"tier": "db"}}})),
    )
    .await;
    create_service(
        &c,
        service(
            &ns,
            "pinned",
            json!({"metadata": {"annotations": {annotations::POOL: named}}}),
        ),
    )
    .await;
    assert!(wait_ips(&c, &ns, "web", 1).await[0].starts_with("10.10.6."));
    assert!(wait_ips(&c, &ns, "db", 1).await[0].starts_with("10.10.5."));
    assert!(wait_ips(&c, &ns, "pinned", 1).await[0].starts_with("10.10.7."));
    for p in [general, blue, named] {
        delete_pool(&c, &p).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_never_renumbers() {
    let api_server = lock::api_server();
    let c = client(&api_server).await;
    let ns = unique("restart");
    ensure_namespace(&c, &ns, &[]).await;
    let pool = format!("{ns}-pool");
    create_pool(&c, &pool, only(&ns, &["10.10.8.0/28"])).await;
    let a = Allocator::start(&ns, "a", &[]);
    for i in 0..4 {
        create_service(&c, service(&ns, &format!("s{i}"), json!({}))).await;
    }
    let mut before = Vec::new();
    for i in 0..4 {
        before.push(wait_ips(&c, &ns, &format!("s{i}"), 1).await);
    }
    a.kill_hard();
    // While it is down: a higher-priority pool appears and one service is deleted, so a
    // naive allocator restarting from scratch would renumber everything.
    let better = format!("{ns}-better");
    create_pool(
        &c,
        &better,
        json!({"addresses": ["10.10.9.0/28"], "allocation": {"priority": 100, "namespaces": [ns]}}),
    )
    .await;
    let api: Api<Service> = Api::namespaced(c.clone(), &ns);
    api.delete("s0", &DeleteParams::default()).await.unwrap();
    let _b = Allocator::start(&format!("{ns}-2"), "b", &[]);
    create_service(&c, service(&ns, "fresh", json!({}))).await;
    assert!(wait_ips(&c, &ns, "fresh", 1).await[0].starts_with("10.10.9."));
    for (i, ips) in before.iter().enumerate().skip(1) {
        assert_eq!(
            &ingress_ips(&api.get(&format!("s{i}")).await.unwrap()),
            ips,
            "s{i} renumbered"
        );
    }
    delete_pool(&c, &pool).await;
    delete_pool(&c, &better).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn standby_takes_over_without_reassigning() {
    let api_server = lock::api_server();
    let c = client(&api_server).await;
    let ns = unique("ha");
    ensure_namespace(&c, &ns, &[]).await;
    let pool = format!("{ns}-pool");
    create_pool(&c, &pool, only(&ns, &["10.10.10.0/28"])).await;
    let first = Allocator::start(&ns, "first", &[]);
    wait::up_to(Duration::from_secs(10))
        .until(|| async { first.is_leader().await.then_some(()) })
        .await
        .expect("first leads");
    let second = Allocator::start(&ns, "second", &[]);
    create_service(&c, service(&ns, "before", json!({}))).await;
    let before = wait_ips(&c, &ns, "before", 1).await;
    // The standby runs (caches synced, so its loop reports leadership) and its election,
    // which started with the process, tries every renew period (500 ms). Watched for one
    // renew period, the period under test, it never leads while the leader renews.
    wait::up_to(Duration::from_secs(10))
        .until(|| async { second.is_ready().await.then_some(()) })
        .await
        .expect("second is ready");
    let led = wait::up_to(Duration::from_millis(500))
        .until(|| async { second.is_leader().await.then_some(()) })
        .await;
    assert!(led.is_none(), "two leaders");

    // Hard failure: the standby waits for the lease to expire (3 s here), then leads.
    first.kill_hard();
    create_service(&c, service(&ns, "during", json!({}))).await;
    let started = std::time::Instant::now();
    let during = wait_ips(&c, &ns, "during", 1).await;
    let took = started.elapsed();
    assert_ne!(during, before);
    println!("hard failover: service allocated {took:?} after the leader was killed (lease 3 s)");
    assert!(second.is_leader().await);

    // Graceful: SIGTERM releases the lease, a third replica takes over within one renew period.
    let third = Allocator::start(&ns, "third", &[]);
    // Running as a standby: caches synced, and its election tries every renew period.
    wait::up_to(Duration::from_secs(10))
        .until(|| async { third.is_ready().await.then_some(()) })
        .await
        .expect("third is ready");
    second.stop_gracefully();
    wait::up_to(Duration::from_secs(5))
        .until(|| async { third.is_leader().await.then_some(()) })
        .await
        .expect("third took over after a graceful stop");
    create_service(&c, service(&ns, "after", json!({}))).await;
    wait_ips(&c, &ns, "after", 1).await;
    let api: Api<Service> = Api::namespaced(c.clone(), &ns);
    assert_eq!(ingress_ips(&api.get("before").await.unwrap()), before);
    assert_eq!(ingress_ips(&api.get("during").await.unwrap()), during);
    delete_pool(&c, &pool).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn releases_on_delete_and_type_change_and_ignores_other_classes() {
    let api_server = lock::api_server();
    let c = client(&api_server).await;
    let ns = unique("rel");
    ensure_namespace(&c, &ns, &[]).await;
    let pool = format!("{ns}-pool");
    create_pool(&c, &pool, only(&ns, &["10.10.11.0/30"])).await;
    let _a = Allocator::start(&ns, "a", &[]);
    create_service(&c, service(&ns, "a", json!({}))).await;
    assert_eq!(wait_ips(&c, &ns, "a", 1).await, ["10.10.11.0"]);
    create_service(&c, service(&ns, "b", json!({}))).await;
    assert_eq!(wait_ips(&c, &ns, "b", 1).await, ["10.10.11.1"]);
    let api: Api<Service> = Api::namespaced(c.clone(), &ns);
    // Type change: status cleared, annotations removed, Event.
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"type": "ClusterIP", "externalTrafficPolicy": null, "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}})),
    )
    .await
    .unwrap();
    let s = wait_annotation(&c, &ns, "a", annotations::POOL_USED, |v| v.is_none()).await;
    wait::up_to(Duration::from_secs(10))
        .until(|| async {
            ingress_ips(&api.get("a").await.ok()?)
                .is_empty()
                .then_some(())
        })
        .await
        .expect("ingress cleared");
    assert!(s.annotations().get(annotations::ALLOCATION_ERROR).is_none());
    wait_event(&c, &ns, "a", "AddressReleased").await;
    // Delete: the address goes back to the pool and is reused.
    api.delete("b", &DeleteParams::default()).await.unwrap();
    create_service(&c, service(&ns, "c", json!({}))).await;
    create_service(&c, service(&ns, "d", json!({}))).await;
    let mut got = vec![
        wait_ips(&c, &ns, "c", 1).await[0].clone(),
        wait_ips(&c, &ns, "d", 1).await[0].clone(),
    ];
    got.sort();
    assert_eq!(got, ["10.10.11.0", "10.10.11.1"]);
    delete_pool(&c, &pool).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_and_overlapping_pools_surface_as_conditions_and_events() {
    let api_server = lock::api_server();
    let c = client(&api_server).await;
    let ns = unique("bad");
    ensure_namespace(&c, &ns, &[]).await;
    let (bad, a, b) = (format!("{ns}-bad"), format!("{ns}-a"), format!("{ns}-b"));
    create_pool(&c, &bad, only(&ns, &["10.10.12.1/24", "not-an-address"])).await;
    create_pool(&c, &a, only(&ns, &["10.10.13.0/28"])).await;
    create_pool(&c, &b, only(&ns, &["10.10.13.8-10.10.13.20"])).await;
    let _al = Allocator::start(&ns, "a", &[]);
    let pools: Api<AddressPool> = Api::all(c.clone());
    let st = wait::up_to(Duration::from_secs(20))
        .until(|| async {
            let st = pools.get(&bad).await.ok()?.status?;
            st.conditions
                .iter()
                .any(|c| c.type_ == "Invalid" && c.status == "True")
                .then_some(st)
        })
        .await
        .expect("Invalid condition")
        .value;
    let invalid = st.conditions.iter().find(|c| c.type_ == "Invalid").unwrap();
    assert!(
        invalid.message.contains("10.10.12.0/24") && invalid.message.contains("not-an-address"),
        "{}",
        invalid.message
    );
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "False")
    );
    let st = wait::up_to(Duration::from_secs(20))
        .until(|| async {
            let st = pools.get(&a).await.ok()?.status?;
            st.conditions
                .iter()
                .any(|c| c.type_ == "Overlapping" && c.status == "True")
                .then_some(st)
        })
        .await
        .expect("Overlapping condition")
        .value;
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );
    // Events for cluster-scoped objects land in "default".
    wait_event(&c, "default", &bad, "InvalidPool").await;
    wait_event(&c, "default", &a, "OverlappingPool").await;
    for p in [bad, a, b] {
        delete_pool(&c, &p).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn routing_policies_report_their_validity() {
    let api_server = lock::api_server();
    let c = client(&api_server).await;
    let ns = unique("pol");
    let policies: Api<routelb::api::RoutingPolicy> = Api::all(c.clone());
    let (good, bad) = (format!("{ns}-good"), format!("{ns}-bad"));
    for (name, spec) in [
        (
            &good,
            json!({"protocols": ["bgp"], "bgp": {"communities": ["64512:1"]}}),
        ),
        (
            &bad,
            json!({"protocols": ["bgp"], "bgp": {"communities": ["64512:1\nrouter bgp 666"], "vrf": "red blue"}}),
        ),
    ] {
        let p: routelb::api::RoutingPolicy = serde_json::from_value(json!({
            "apiVersion": "routelb.io/v1alpha1", "kind": "RoutingPolicy", "metadata": {"name": name}, "spec": spec
        }))
        .unwrap();
        policies.create(&Default::default(), &p).await.unwrap();
    }
    let _a = Allocator::start(&ns, "a", &[]);
    let cond = |name: String, type_: &'static str| {
        let policies = policies.clone();
        async move {
            wait::up_to(Duration::from_secs(20))
                .until(|| async {
                    let st = policies.get(&name).await.ok()?.status?;
                    st.conditions.into_iter().find(|c| c.type_ == type_)
                })
                .await
                .unwrap_or_else(|| panic!("{name}: no {type_} condition"))
                .value
        }
    };
    assert_eq!(cond(good.clone(), "Ready").await.status, "True");
    let invalid = cond(bad.clone(), "Invalid").await;
    assert_eq!(invalid.status, "True");
    assert!(
        invalid.message.contains("communities") && invalid.message.contains("VRF"),
        "{}",
        invalid.message
    );
    wait_event(&c, "default", &bad, "InvalidPolicy").await;
    for p in [good, bad] {
        let _ = policies.delete(&p, &DeleteParams::default()).await;
    }
}
