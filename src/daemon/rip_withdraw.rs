//! Giving a RIP or RIPng base its own redistribute line back without leaving routelb's
//! prefixes at the neighbours. Pure: the FRR driver sends what [`drain`] returns, waits
//! [`until_next_update`], then applies the rest of the diff.
//!
//! Why: ripd and ripngd apply a redistribute route-map when they *send*, and a route the map
//! stops passing is left out of the next update, not withdrawn: neighbours keep it until it
//! times out (180 s). `no redistribute` does poison every redistributed route, the base's own
//! loopbacks included, and the triggered update carrying the poison may be held back 1–5 s
//! (RFC 2453 §3.10.1), long enough for the base's line, added next, to revive the routes
//! before it goes out. So routelb first makes its own entries announce its prefixes with
//! metric 16 (unreachable), waits for the daemon's next regular update to carry that, and
//! only then swaps the line in place: the base's routes never leave.

use std::time::Duration;

use super::frr_config::{Change, Owned, replaced_base_line};
use crate::render::model::BASE_FALLBACK_SEQ;

/// RIP's "infinity".
const UNREACHABLE: &str = "set metric 16";

/// The changes that make routelb's RIP/RIPng route-map entries announce their prefixes as
/// unreachable, for each redistribute line in `running` that `desired` drops and that gives a
/// base line back. Empty when there is nothing to drain (the usual case). Of `desired`, only
/// the redistribute keys are read.
pub fn drain(running: &Owned, desired: &Owned) -> Vec<Change> {
    let mut changes = Vec::new();
    for (key, line) in &running.redistribute {
        if desired.redistribute.contains_key(key)
            || !is_rip(&key.0)
            || replaced_base_line(&running.route_maps, line).is_none()
        {
            continue;
        }
        let Some(map) = line
            .split_once(" route-map ")
            .and_then(|(_, m)| m.split_whitespace().next())
        else {
            continue;
        };
        let fallback = format!("route-map {map} permit {BASE_FALLBACK_SEQ}");
        let own_entry = format!("route-map {map} permit ");
        for (head, lines) in &running.route_maps {
            if head.starts_with(&own_entry)
                && *head != fallback
                && !lines.iter().any(|l| l == UNREACHABLE)
            {
                changes.push(Change {
                    context: vec![head.clone()],
                    lines: vec![UNREACHABLE.to_string()],
                });
            }
        }
    }
    changes
}

/// Whether a context is RIP's or RIPng's.
pub fn is_rip(path: &[String]) -> bool {
    path.first()
        .is_some_and(|r| matches!(r.split_whitespace().nth(1), Some("rip" | "ripng")))
}

/// The `show ip rip status` (`show ipv6 ripng status`) command of the daemon that holds a
/// drained context.
pub fn status_command(daemon: &str) -> &'static str {
    match daemon {
        "ripngd" => "show ipv6 ripng status",
        _ => "show ip rip status",
    }
}

/// How long until the daemon's next regular update has gone out, from its status ("Sending
/// updates every 30 seconds with +/-50%, next due in 12 seconds"), with a second of margin
/// (the daemon rounds down). Without a readable status: the longest a regular update can take
/// with FRR's jitter (+25 % of the interval, 30 s by default).
pub fn until_next_update(status: &str) -> Duration {
    let number_after = |marker: &str| -> Option<u64> {
        let (_, rest) = status.split_once(marker)?;
        rest.split_whitespace().next()?.parse().ok()
    };
    let secs = number_after("next due in ")
        .or_else(|| number_after("Sending updates every ").map(|every| every + every / 4))
        .unwrap_or(30 + 30 / 4);
    Duration::from_secs(secs + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::frr_config::{owned, parse};

    const RUNNING: &str = "\
route-map ROUTELB-RIP-V4 permit 10
 description pool_default
 match ip address prefix-list ROUTELB-P-default-V4
exit
route-map ROUTELB-RIP-V4 permit 20
 description pool_edge
 match ip address prefix-list ROUTELB-P-edge-V4
 set metric 3
exit
route-map ROUTELB-RIP-V4 permit 65535
 description base: redistribute connected metric 2 route-map LOOPBACKS
 call LOOPBACKS
exit
router rip
 redistribute connected route-map ROUTELB-RIP-V4
exit
";

    fn own(text: &str) -> Owned {
        owned(&parse(text))
    }

    #[test]
    fn a_rip_line_that_gives_the_base_its_line_back_drains_every_own_entry_but_the_fallback() {
        let changes = drain(&own(RUNNING), &Owned::default());
        let heads: Vec<_> = changes.iter().map(|c| c.context[0].as_str()).collect();
        assert_eq!(
            heads,
            [
                "route-map ROUTELB-RIP-V4 permit 10",
                "route-map ROUTELB-RIP-V4 permit 20"
            ],
            "{changes:?}"
        );
        assert!(changes.iter().all(|c| c.lines == [UNREACHABLE]));
    }

    #[test]
    fn nothing_drains_while_the_line_stays_or_without_a_base_line_or_once_drained() {
        let running = own(RUNNING);
        assert!(drain(&running, &running).is_empty());
        let without_base = RUNNING.replace("permit 65535", "permit 30");
        assert!(drain(&own(&without_base), &Owned::default()).is_empty());
        let drained = RUNNING
            .replace(
                "prefix-list ROUTELB-P-default-V4\n",
                "prefix-list ROUTELB-P-default-V4\n set metric 16\n",
            )
            .replace(" set metric 3\n", " set metric 16\n");
        assert!(drain(&own(&drained), &Owned::default()).is_empty());
    }

    #[test]
    fn other_protocols_give_the_base_its_line_back_in_place() {
        let ospf = RUNNING.replace("router rip", "router ospf");
        assert!(drain(&own(&ospf), &Owned::default()).is_empty());
        assert!(is_rip(&["router ripng".to_string()]));
        assert!(!is_rip(&["router isis X".to_string()]));
    }

    #[test]
    fn the_wait_is_read_from_the_status_or_bounded_by_the_interval() {
        let status = "Routing Protocol is \"rip\"\n  Sending updates every 30 seconds with +/-50%, next due in 12 seconds\n";
        assert_eq!(until_next_update(status), Duration::from_secs(13));
        let no_due = "  Sending updates every 10 seconds with +/-50%,\n";
        assert_eq!(until_next_update(no_due), Duration::from_secs(13));
        assert_eq!(until_next_update(""), Duration::from_secs(38));
    }
}
