//! IPAM in the pure core: 10,000 services across 10 pools. Run: `cargo bench --bench ipam`.
//! Prints the median and worst of several runs per scenario; figures go to docs/benchmarks.md.

#[path = "../tests/support"]
mod support {
    pub mod stats;
}

use std::time::{Duration, Instant};

use routelb::api::{AddressPoolSpec, AllocationPolicy, PoolMode};
use routelb::ipam::{
    Decision, FamilyPolicy, Pool, PoolInput, Port, ServiceKey, ServiceRequest, allocate,
};
use support::stats::{median, ms, percentile};

fn pools(dual: bool) -> Vec<PoolInput> {
    (0..10)
        .map(|i| {
            let mut addresses = vec![format!("10.{i}.0.0/18")];
            if dual {
                addresses.push(format!("fd00:{i}::/116"));
            }
            let spec = AddressPoolSpec {
                addresses,
                mode: PoolMode::Routed,
                aggregation: None,
                auto_assign: true,
                avoid_buggy_ips: i % 2 == 0,
                allocation: Some(AllocationPolicy {
                    priority: i,
                    ..Default::default()
                }),
                fast_failover: None,
            };
            let name = format!("pool-{i}");
            (name.clone(), Pool::from_spec(&name, &spec))
        })
        .collect()
}

fn services(n: usize, dual: bool) -> Vec<ServiceRequest> {
    (0..n)
        .map(|i| ServiceRequest {
            key: ServiceKey::new(format!("ns-{}", i % 100), format!("svc-{i}")),
            created: i as i64,
            // Spread over pools by name so all ten are used, as with real per-team pools.
            requested_pool: Some(format!("pool-{}", i % 10)),
            family_policy: if dual {
                FamilyPolicy::RequireDualStack
            } else {
                FamilyPolicy::SingleStack
            },
            ports: vec![Port {
                protocol: "TCP".into(),
                port: 80,
            }],
            ..Default::default()
        })
        .collect()
}

fn measure(label: &str, runs: usize, mut f: impl FnMut() -> usize) {
    let mut times: Vec<Duration> = Vec::new();
    let mut assigned = 0;
    for _ in 0..runs {
        let t = Instant::now();
        assigned = f();
        times.push(t.elapsed());
    }
    println!(
        "{label:<58} median {:>8.2} ms   max {:>8.2} ms   ({assigned} services assigned)",
        ms(median(&times)),
        ms(percentile(&times, 1.0))
    );
}

/// The services as they look after a first pass: each holding what it was given.
fn held(pools: &[PoolInput], fresh: &[ServiceRequest]) -> Vec<ServiceRequest> {
    let first = allocate(pools, fresh);
    fresh
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if let Some(a) = first.services[&s.key].assignment() {
                s.current = a.addresses.clone();
                s.current_pool = Some(a.pool.clone());
            }
            s
        })
        .collect()
}

fn count(o: &routelb::ipam::Outcome) -> usize {
    o.services
        .values()
        .filter(|d| matches!(d, Decision::Assigned(_)))
        .count()
}

fn main() {
    // The allocator's pass at the scale docs/scale.md plans for.
    let pools50 = pools(false);
    let fresh50 = services(50_000, false);
    let held50 = held(&pools50, &fresh50);
    measure("50,000 held + recompute (steady state), IPv4", 7, || {
        count(&allocate(&pools50, &held50))
    });

    for dual in [false, true] {
        let family = if dual { "dual stack" } else { "IPv4" };
        let pools = pools(dual);
        let fresh = services(10_000, dual);
        measure(
            &format!("10,000 new services, 10 pools, {family}"),
            15,
            || count(&allocate(&pools, &fresh)),
        );

        // Steady state: every service already holds its address (the allocator's usual pass).
        let held = held(&pools, &fresh);
        measure(
            &format!("10,000 held + recompute (steady state), {family}"),
            15,
            || count(&allocate(&pools, &held)),
        );

        // Automatic pool choice by priority instead of a named pool.
        let auto: Vec<ServiceRequest> = fresh
            .iter()
            .cloned()
            .map(|mut s| {
                s.requested_pool = None;
                s
            })
            .collect();
        measure(
            &format!("10,000 new services, pool chosen by priority, {family}"),
            15,
            || count(&allocate(&pools, &auto)),
        );
    }
}
