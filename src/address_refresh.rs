//! How the agent keeps its addresses' lifetimes running (pure). Every address routelb adds
//! has a lifetime, so that the kernel takes it off a node whose agent died; the agent renews
//! it before it runs out. Each renewal is an address message every routing daemon on the node
//! receives: refreshing 10,000 addresses at once every 10 s kept FRR's zebra at a full core
//! and 1.9 GiB (measured with the load harness). So the renewals are bounded to
//! [`REFRESHES_PER_SECOND`], the lifetime grows with the number of addresses held to leave
//! room for that, and each renewal goes to the addresses with the least time left.

use std::time::Duration;

use crate::node::IfAddress;

/// Address renewals per second the routing daemon sees, at most, in the steady state.
pub const REFRESHES_PER_SECOND: u64 = 100;

/// How often the agent refreshes lifetimes: a third of the configured lifetime, so an address
/// is renewed twice before a lifetime runs out.
pub fn period(configured: Duration) -> Duration {
    configured / 3
}

/// The lifetime addresses get: the configured one, or longer when renewing every held address
/// three times per lifetime would exceed [`REFRESHES_PER_SECOND`] (10,000 addresses: 300 s).
pub fn lifetime(configured: Duration, held: usize) -> Duration {
    let needed = Duration::from_secs(3 * held as u64 / REFRESHES_PER_SECOND);
    configured.max(needed)
}

/// The renewals one refresh (every `period`) makes: the addresses with less than two thirds
/// of `lifetime` left, least left first, at most what the rate allows in a period.
/// `remaining` is what the kernel reports (seconds; `u32::MAX` is forever).
pub fn due(
    remaining: impl IntoIterator<Item = (IfAddress, u32)>,
    lifetime: Duration,
    period: Duration,
) -> Vec<IfAddress> {
    let threshold = lifetime.as_secs() * 2 / 3;
    let budget = (REFRESHES_PER_SECOND * period.as_secs().max(1)) as usize;
    let mut due: Vec<(u32, IfAddress)> = remaining
        .into_iter()
        .filter(|(_, left)| u64::from(*left) < threshold)
        .map(|(a, left)| (left, a))
        .collect();
    due.sort_unstable();
    due.into_iter().take(budget).map(|(_, a)| a).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(i: u32) -> IfAddress {
        (std::net::Ipv4Addr::from(0x6440_0000 + i).into(), 32)
    }

    #[test]
    fn the_lifetime_grows_with_what_is_held() {
        let configured = Duration::from_secs(30);
        assert_eq!(lifetime(configured, 10), configured);
        assert_eq!(lifetime(configured, 1_000), configured);
        assert_eq!(lifetime(configured, 10_000), Duration::from_secs(300));
        assert_eq!(lifetime(configured, 50_000), Duration::from_secs(1_500));
    }

    #[test]
    fn least_time_left_first_within_the_budget() {
        let remaining = (0..2_000).map(|i| (addr(i), 2_000 - i));
        let due = due(
            remaining,
            Duration::from_secs(3_000),
            Duration::from_secs(10),
        );
        assert_eq!(due.len(), 1_000);
        assert_eq!(due[0], addr(1_999));
        assert!(!due.contains(&addr(0)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Simulated for a node holding any number of addresses, added all at once: renewing
        /// what `due` picks every period, no address ever runs out, and no period renews
        /// more than the rate allows.
        #[test]
        fn no_address_runs_out(held in 1usize..20_000, configured_s in 3u64..120) {
            let configured = Duration::from_secs(configured_s);
            let period = Duration::from_secs(super::period(configured).as_secs().max(1));
            let life = lifetime(configured, held);
            // seconds left per address, as the kernel counts them
            let mut left: Vec<u64> = vec![life.as_secs(); held];
            for _ in 0..(3 * life.as_secs() / period.as_secs()).max(6) {
                for l in left.iter_mut() {
                    *l = l.saturating_sub(period.as_secs());
                    prop_assert!(*l > 0, "an address ran out");
                }
                let remaining = left.iter().enumerate().map(|(i, l)| (addr(i as u32), *l as u32));
                let renew = due(remaining, life, period);
                prop_assert!(renew.len() as u64 <= REFRESHES_PER_SECOND * period.as_secs());
                for a in renew {
                    let i = (u32::from(match a.0 { std::net::IpAddr::V4(v) => v, _ => unreachable!() }) - 0x6440_0000) as usize;
                    left[i] = life.as_secs();
                }
            }
        }
    }
}
