//! The netlink shell against the real kernel, inside a network namespace this test makes (the
//! test binary re-runs itself under `ip netns exec`). Needs root and iproute2.

mod support {
    pub mod wait;
}

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use support::wait;

use routelb::netlink::{AsSource, LbInterface, Netlink};
use routelb::node::IfAddress;

const INSIDE: &str = "ROUTELB_TEST_IN_NETNS";

/// Runs `test` of this binary inside a fresh namespace; returns its output.
fn in_netns(test: &str) {
    let ns = format!("rlbnl-{}-{}", std::process::id(), test.len());
    assert!(
        Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .unwrap()
            .success(),
        "ip netns add (needs root)"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(INSIDE, "1")
        .output()
        .unwrap();
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success() && text.contains("1 passed"),
        "inside the namespace:\n{text}"
    );
}

fn ip_addrs(dev: &str) -> String {
    String::from_utf8_lossy(
        &Command::new("ip")
            .args(["addr", "show", "dev", dev])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string()
}

fn a(s: &str, len: u8) -> IfAddress {
    (s.parse::<IpAddr>().unwrap(), len)
}

#[test]
fn lb_interface_and_owned_addresses() {
    if std::env::var_os(INSIDE).is_none() {
        return in_netns("lb_interface_and_owned_addresses");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let nl = Netlink::connect().unwrap();
        let (index, kind) = nl.ensure_lb_interface("kube-lb0").await.unwrap();
        assert!(
            matches!(kind, LbInterface::Dummy | LbInterface::Ifb),
            "{kind:?}"
        );
        println!("kube-lb0 created as {kind:?}");
        assert_eq!(
            nl.ensure_lb_interface("kube-lb0").await.unwrap(),
            (index, LbInterface::Existing)
        );
        assert!(ip_addrs("kube-lb0").contains("UP"));

        // Someone else's address: never touched.
        assert!(
            Command::new("ip")
                .args(["addr", "add", "10.9.9.9/32", "dev", "kube-lb0"])
                .status()
                .unwrap()
                .success()
        );

        let first: BTreeSet<IfAddress> = [
            a("203.0.113.1", 32),
            a("2001:db8::1", 128),
            a("198.51.100.7", 24),
        ]
        .into();
        assert_eq!(
            nl.converge(index, &first, None, None, AsSource::Allowed)
                .await
                .unwrap()
                .counts(),
            (3, 0)
        );
        assert_eq!(nl.owned_addresses(index).await.unwrap(), first);
        assert_eq!(
            nl.converge(index, &first, None, None, AsSource::Allowed)
                .await
                .unwrap()
                .counts(),
            (0, 0),
            "converged: nothing to do"
        );

        let second: BTreeSet<IfAddress> = [a("203.0.113.2", 32)].into();
        assert_eq!(
            nl.converge(index, &second, None, None, AsSource::Allowed)
                .await
                .unwrap()
                .counts(),
            (1, 3)
        );
        assert_eq!(nl.owned_addresses(index).await.unwrap(), second);
        let shown = ip_addrs("kube-lb0");
        assert!(
            shown.contains("10.9.9.9/32"),
            "a foreign address was removed:\n{shown}"
        );
        assert!(!shown.contains("203.0.113.1"), "{shown}");

        // A new process (a restarted agent) finds exactly what routelb added.
        let again = Netlink::connect().unwrap();
        assert_eq!(again.owned_addresses(index).await.unwrap(), second);

        // Addresses with a lifetime expire unless refreshed.
        let leased: BTreeSet<IfAddress> = [a("203.0.113.3", 32), a("2001:db8::3", 128)].into();
        nl.converge(
            index,
            &leased,
            Some(Duration::from_secs(2)),
            None,
            AsSource::Allowed,
        )
        .await
        .unwrap();
        assert_eq!(nl.owned_addresses(index).await.unwrap(), leased);
        wait::up_to(Duration::from_secs(10))
            .every(Duration::from_millis(200))
            .until(|| async {
                nl.owned_addresses(index)
                    .await
                    .unwrap()
                    .is_empty()
                    .then_some(())
            })
            .await
            .expect("leased addresses expire");
        assert!(ip_addrs("kube-lb0").contains("10.9.9.9/32"));

        // A refresh renews only the lifetimes that are due (less than two thirds left): one
        // address with 6 s left is renewed to the 30 s lifetime, one with 60 s left is not.
        let (short, long) = (a("203.0.113.4", 32), a("203.0.113.5", 32));
        for (addr, secs) in [(short, 6), (long, 60)] {
            nl.add_address(
                index,
                addr,
                Some(Duration::from_secs(secs)),
                AsSource::Allowed,
            )
            .await
            .unwrap();
        }
        nl.converge(
            index,
            &[short, long].into(),
            Some(Duration::from_secs(30)),
            Some(Duration::from_secs(10)),
            AsSource::Allowed,
        )
        .await
        .unwrap();
        let valid_left = |addr: &str| -> u32 {
            let out = ip_addrs("kube-lb0");
            let mut lines = out.lines();
            lines.find(|l| l.contains(&format!("{addr}/32")));
            let line = lines.next().expect("a lifetime line");
            line.split_whitespace()
                .nth(1)
                .unwrap()
                .trim_end_matches("sec")
                .parse()
                .unwrap()
        };
        assert!(
            (20..=30).contains(&valid_left("203.0.113.4")),
            "the due one is renewed"
        );
        assert!(
            valid_left("203.0.113.5") > 30,
            "the other keeps its lifetime"
        );
        nl.converge(index, &BTreeSet::new(), None, None, AsSource::Allowed)
            .await
            .unwrap();

        // A Service address in the node's IPv6 subnet, Allowed as source, wins the node's own
        // connections to its neighbours by longest match (RFC 6724 rule 8); Avoided
        // (deprecated) it does not, and it is still there.
        assert!(
            Command::new("ip")
                .args([
                    "-6",
                    "addr",
                    "add",
                    "2001:db8:7::12/64",
                    "dev",
                    "kube-lb0",
                    "nodad"
                ])
                .status()
                .unwrap()
                .success()
        );
        let service: BTreeSet<IfAddress> = [a("2001:db8:7::f0", 128)].into();
        for (source, expected) in [
            (AsSource::Allowed, "2001:db8:7::f0"),
            (AsSource::Avoided, "2001:db8:7::12"),
        ] {
            nl.converge(index, &BTreeSet::new(), None, None, source)
                .await
                .unwrap();
            nl.converge(index, &service, None, None, source)
                .await
                .unwrap();
            let route = Command::new("ip")
                .args(["-6", "route", "get", "2001:db8:7::fe"])
                .output()
                .unwrap();
            let route = String::from_utf8_lossy(&route.stdout);
            assert!(
                route.contains(&format!("src {expected} ")),
                "{source:?}: {route}"
            );
        }
        nl.converge(index, &BTreeSet::new(), None, None, AsSource::Allowed)
            .await
            .unwrap();

        // Scale: 1,000 addresses in, then out.
        let many: BTreeSet<IfAddress> = (0..1000u32)
            .map(|i| {
                (
                    IpAddr::from([10, 200, (i / 250) as u8, (i % 250) as u8 + 1]),
                    32,
                )
            })
            .collect();
        let t = Instant::now();
        assert_eq!(
            nl.converge(index, &many, None, None, AsSource::Allowed)
                .await
                .unwrap()
                .counts(),
            (1000, 0)
        );
        let add = t.elapsed();
        let t = Instant::now();
        assert_eq!(
            nl.converge(index, &BTreeSet::new(), None, None, AsSource::Allowed)
                .await
                .unwrap()
                .counts(),
            (0, 1000)
        );
        println!(
            "1,000 addresses: added in {:.1} ms, removed in {:.1} ms",
            add.as_secs_f64() * 1e3,
            t.elapsed().as_secs_f64() * 1e3
        );
    });
}
