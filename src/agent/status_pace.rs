//! When the agent may write its NodeState status (pure; takes `now`).
//!
//! Every node's NodeState changes when a routed Service comes or goes (each node lists the
//! addresses it holds), so unpaced a Service change costs one write per node: 5,000 writes at
//! 5,000 nodes, and as many allocator passes. Nodes therefore share a cluster-wide budget of
//! [`CLUSTER_WRITES_PER_SECOND`]: a node writes at most once per window of
//! `nodes / budget` (15 ms with 3 nodes, 25 s with 5,000), in its own slot of the window (a
//! phase from its name), so the writes of a cluster spread over the window instead of arriving
//! together, and the first node to report a change does so within about `window / nodes`
//! (5 ms) whatever the size. What is written is always the latest status: a slot carries every
//! change since the last one.

use std::time::Duration;

/// NodeState writes per second the agents of a cluster share.
pub const CLUSTER_WRITES_PER_SECOND: u64 = 200;
/// The longest a node waits between two writes, whatever the cluster's size.
pub const MAX_WINDOW: Duration = Duration::from_secs(60);

/// How long a node of a cluster of `nodes` waits between two writes.
pub fn window(nodes: usize) -> Duration {
    let ms = (nodes.max(1) as u64) * 1000 / CLUSTER_WRITES_PER_SECOND;
    Duration::from_millis(ms).min(MAX_WINDOW)
}

/// What places a node's slot: the election hash of its name, so nodes spread evenly and each
/// keeps its slot across restarts.
pub fn rank(node: &str) -> u64 {
    crate::election::rank(node, "node-state")
}

/// The node's slot in every window: its phase, from its [`rank`].
pub fn phase(rank: u64, window: Duration) -> Duration {
    let ms = window.as_millis() as u64;
    Duration::from_millis(if ms == 0 { 0 } else { rank % ms })
}

/// When the next write may go, in milliseconds of the wall clock (shared by the nodes, so
/// their slots stay apart): the first instant at the node's phase in a window that is at
/// least a window after the last write, and not before `now`.
pub fn next_write(now_ms: u64, last_ms: Option<u64>, window: Duration, phase: Duration) -> u64 {
    let w = window.as_millis() as u64;
    let earliest = last_ms.map_or(now_ms, |last| now_ms.max(last + w));
    if w == 0 {
        return earliest;
    }
    let p = phase.as_millis() as u64 % w;
    let slot = earliest - earliest % w + p;
    if slot >= earliest { slot } else { slot + w }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_window_grows_with_the_cluster_up_to_a_minute() {
        assert_eq!(window(3), Duration::from_millis(15));
        assert_eq!(window(100), Duration::from_millis(500));
        assert_eq!(window(5000), Duration::from_secs(25));
        assert_eq!(window(1_000_000), MAX_WINDOW);
        assert_eq!(window(0), Duration::from_millis(5));
    }

    #[test]
    fn a_node_writes_at_its_phase() {
        let w = Duration::from_millis(1000);
        let p = Duration::from_millis(300);
        // Nothing written yet: the next 300 ms mark.
        assert_eq!(next_write(10_250, None, w, p), 10_300);
        assert_eq!(next_write(10_300, None, w, p), 10_300);
        assert_eq!(next_write(10_301, None, w, p), 11_300);
        // Written at 10,300: not before 11,300.
        assert_eq!(next_write(10_400, Some(10_300), w, p), 11_300);
        // Written long ago: at the next slot.
        assert_eq!(next_write(20_000, Some(10_300), w, p), 20_300);
    }

    proptest! {
        /// Writes are a window apart, none waits more than two windows, and in any window
        /// the nodes of a cluster write in their own slots, not together.
        #[test]
        fn writes_are_spaced_and_bounded(
            nodes in 1usize..6000,
            now in 0u64..10_000_000,
            since_last in proptest::option::of(0u64..200_000),
            rank in any::<u64>(),
        ) {
            let w = window(nodes);
            let p = phase(rank, w);
            let last = since_last.map(|d| now.saturating_sub(d));
            let at = next_write(now, last, w, p);
            let wm = w.as_millis() as u64;
            prop_assert!(at >= now);
            if let Some(last) = last {
                prop_assert!(at >= last + wm);
            }
            prop_assert!(at - now <= 2 * wm);
            if wm > 0 {
                prop_assert_eq!(at % wm, p.as_millis() as u64);
            }
        }
    }
}
