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

use routelb::netlink::{LbInterface, Netlink};
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
            nl.converge(index, &first, None, false)
                .await
                .unwrap()
                .counts(),
            (3, 0)
        );
        assert_eq!(nl.owned_addresses(index).await.unwrap(), first);
        assert_eq!(
            nl.converge(index, &first, None, false)
                .await
                .unwrap()
                .counts(),
            (0, 0),
            "converged: nothing to do"
        );

        let second: BTreeSet<IfAddress> = [a("203.0.113.2", 32)].into();
        assert_eq!(
            nl.converge(index, &second, None, false)
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
        nl.converge(index, &leased, Some(Duration::from_secs(2)), true)
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
            nl.converge(index, &many, None, false)
                .await
                .unwrap()
                .counts(),
            (1000, 0)
        );
        let add = t.elapsed();
        let t = Instant::now();
        assert_eq!(
            nl.converge(index, &BTreeSet::new(), None, false)
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
