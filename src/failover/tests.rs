use super::*;

use proptest::prelude::*;

use crate::api::PoolMode;
use crate::election::{Candidate, Readiness, elect};
use crate::ipam::ServiceKey;
use crate::service::ServiceAddresses;

const MS: Duration = Duration::from_millis(1);

fn member(n: u8) -> Member {
    Member {
        node: format!("n{n}"),
        subnets: vec![
            ("eth0".into(), "10.0.0.0/24".parse().unwrap()),
            ("eth0".into(), "fd00::/64".parse().unwrap()),
        ],
        addresses: vec![
            format!("10.0.0.{n}").parse().unwrap(),
            format!("fd00::{n}").parse().unwrap(),
        ],
        ..Default::default()
    }
}

fn members(n: u8) -> Vec<Member> {
    (1..=n).map(member).collect()
}

fn watched(address: &str) -> Watched {
    Watched {
        address: address.parse().unwrap(),
        timers: Timers::default(),
    }
}

/// The nodes ranked for `address`, best first.
fn ranked(ms: &[Member], address: &str) -> Vec<String> {
    let mut v: Vec<String> = ms.iter().map(|m| m.node.clone()).collect();
    v.sort_by_cached_key(|n| (std::cmp::Reverse(rank(n, address)), n.clone()));
    v
}

fn peer_nodes(me: &str, ms: &[Member], w: &[Watched]) -> BTreeSet<String> {
    peers(me, ms, w).into_iter().map(|p| p.node).collect()
}

#[test]
fn the_top_candidates_of_an_address_peer_with_each_other_and_nobody_else_does() {
    let ms = members(6);
    let order = ranked(&ms, "10.0.0.100");
    let w = [watched("10.0.0.100")];
    for (i, node) in order.iter().enumerate() {
        let got = peer_nodes(node, &ms, &w);
        if i <= SUCCESSORS {
            let want: BTreeSet<String> = order[..=SUCCESSORS]
                .iter()
                .filter(|n| *n != node)
                .cloned()
                .collect();
            assert_eq!(got, want, "{node} (rank {i})");
        } else {
            assert!(got.is_empty(), "{node} (rank {i}) peers with {got:?}");
        }
    }
}

#[test]
fn one_session_per_peer_and_family_on_the_subnets_interface_with_the_fastest_timers() {
    let ms = members(2);
    let slow = Watched {
        address: "10.0.0.100".parse().unwrap(),
        timers: Timers {
            interval_ms: 300,
            multiplier: 5,
        },
    };
    let fast = Watched {
        address: "10.0.0.101".parse().unwrap(),
        timers: Timers {
            interval_ms: 30,
            multiplier: 3,
        },
    };
    let v6 = watched("fd00::100");
    let got = peers("n1", &ms, &[slow, fast, v6]);
    assert_eq!(
        got,
        vec![
            BfdPeer {
                node: "n2".into(),
                address: "10.0.0.2".parse().unwrap(),
                interface: "eth0".into(),
                timers: Timers {
                    interval_ms: 30,
                    multiplier: 3
                },
            },
            BfdPeer {
                node: "n2".into(),
                address: "fd00::2".parse().unwrap(),
                interface: "eth0".into(),
                timers: Timers::default(),
            },
        ]
    );
}

#[test]
fn peers_without_a_published_address_or_off_the_subnet_are_left_out() {
    let mut ms = members(3);
    ms[1].addresses.clear(); // an older agent
    ms[2].subnets = vec![("eth1".into(), "192.0.2.0/24".parse().unwrap())];
    assert!(peers("n1", &ms, &[watched("10.0.0.100")]).is_empty());
    // and a node that is not a member keeps none
    assert!(peers("n9", &ms, &[watched("10.0.0.100")]).is_empty());
}

#[test]
fn a_node_keeps_at_most_max_peers() {
    let ms = members(40);
    let w: Vec<Watched> = (1..=250).map(|i| watched(&format!("10.0.0.{i}"))).collect();
    for m in &ms {
        let got = peer_nodes(&m.node, &ms, &w);
        assert!(got.len() <= MAX_PEERS, "{}: {}", m.node, got.len());
    }
}

proptest! {
    /// Every session is configured at both ends (below the cap), whatever the addresses: a
    /// session configured at one end never comes up.
    #[test]
    fn sessions_are_symmetric(n in 2u8..9, addrs in prop::collection::btree_set(1u8..=254, 1..20)) {
        let ms = members(n);
        let w: Vec<Watched> = addrs.iter().map(|a| watched(&format!("10.0.0.{a}"))).collect();
        for m in &ms {
            for p in peers(&m.node, &ms, &w) {
                let back = peer_nodes(&p.node, &ms, &w);
                prop_assert!(back.contains(&m.node), "{} -> {} only", m.node, p.node);
            }
        }
    }
}

fn session(peer: &str, up: bool) -> SessionState {
    SessionState {
        peer: peer.parse().unwrap(),
        up,
    }
}

/// n2's Lease seen renewed `at`, saying it is `cut_off` or not; no other node's.
fn n2_renewed(at: Instant, cut_off: bool) -> impl Fn(&str) -> Option<(Instant, bool)> {
    move |node| (node == "n2").then_some((at, cut_off))
}

/// The sessions to n2 and n3, up or not.
fn both(n2: bool, n3: bool) -> [SessionState; 2] {
    [session("10.0.0.2", n2), session("10.0.0.3", n3)]
}

fn two_peers() -> Vec<BfdPeer> {
    peers("n1", &members(3), &[watched("10.0.0.100")])
}

#[test]
fn a_peer_fails_after_its_sessions_were_up_and_stayed_down_for_the_guard() {
    let t0 = Instant::now();
    let guard = guard(Timers::default());
    let ps = two_peers();
    let mut d = Detector::default();
    d.observe(t0, &ps, Some(&both(true, true)));
    assert_eq!(d.verdict(t0, guard, |_| None), Verdict::default());
    let t1 = t0 + 1000 * MS;
    d.observe(t1, &ps, Some(&both(false, true)));
    let v = d.verdict(t1 + 10 * MS, guard, |_| None);
    assert!(v.failed.is_empty());
    assert_eq!(
        v.next,
        Some(guard - 10 * MS),
        "a pass when the guard runs out"
    );
    let v = d.verdict(t1 + guard, guard, |_| None);
    assert_eq!(v.failed, ["n2".to_string()].into());
    assert!(
        !v.cut_off,
        "one of two sessions lost: the peer, not this node"
    );
    // up again: back at once
    d.observe(t1 + guard, &ps, Some(&both(true, true)));
    assert!(d.verdict(t1 + guard, guard, |_| None).failed.is_empty());
}

#[test]
fn a_session_that_never_came_up_means_nothing() {
    let t0 = Instant::now();
    let ps = two_peers();
    let mut d = Detector::default();
    d.observe(t0, &ps, Some(&[session("10.0.0.2", false)]));
    let v = d.verdict(t0 + Duration::from_secs(60), 100 * MS, |_| None);
    assert_eq!(v, Verdict::default());
}

#[test]
fn a_lease_renewed_after_the_sessions_went_down_keeps_the_peer_unless_it_says_cut_off() {
    let t0 = Instant::now();
    let guard = 100 * MS;
    let ps = two_peers();
    let mut d = Detector::default();
    d.observe(t0, &ps, Some(&both(true, true)));
    let t1 = t0 + 1000 * MS;
    d.observe(t1, &ps, Some(&both(false, true)));
    let before = n2_renewed(t0, false);
    assert!(d.verdict(t1 + guard, guard, before).failed.contains("n2"));
    let alive = n2_renewed(t1 + 500 * MS, false);
    assert!(d.verdict(t1 + 600 * MS, guard, alive).failed.is_empty());
    let stepped_back = n2_renewed(t1 + 500 * MS, true);
    assert!(
        d.verdict(t1 + 600 * MS, guard, stepped_back)
            .failed
            .contains("n2")
    );
}

#[test]
fn losing_every_session_cuts_this_node_off_at_once_and_it_returns_after_the_guard() {
    let t0 = Instant::now();
    let guard = 100 * MS;
    let ps = two_peers();
    let mut d = Detector::default();
    d.observe(t0, &ps, Some(&both(true, true)));
    let t1 = t0 + 1000 * MS;
    d.observe(t1, &ps, Some(&both(false, false)));
    assert!(d.verdict(t1, guard, |_| None).cut_off, "at once");
    let t2 = t1 + 5000 * MS;
    d.observe(t2, &ps, Some(&both(true, false)));
    let v = d.verdict(t2 + 50 * MS, guard, |_| None);
    assert!(v.cut_off, "a session up for less than the guard");
    assert_eq!(v.next, Some(50 * MS));
    assert!(!d.verdict(t2 + guard, guard, |_| None).cut_off);
}

#[test]
fn with_one_peer_its_loss_is_the_peers_failure_not_this_nodes() {
    let t0 = Instant::now();
    let ps = peers("n1", &members(2), &[watched("10.0.0.100")]);
    let mut d = Detector::default();
    d.observe(t0, &ps, Some(&[session("10.0.0.2", true)]));
    d.observe(t0 + MS, &ps, Some(&[session("10.0.0.2", false)]));
    let v = d.verdict(t0 + Duration::from_secs(1), 100 * MS, |_| None);
    assert!(!v.cut_off);
    assert_eq!(v.failed, ["n2".to_string()].into());
}

#[test]
fn a_daemon_that_stops_answering_cuts_this_node_off_after_the_guard() {
    let t0 = Instant::now();
    let guard = 100 * MS;
    let ps = two_peers();
    let mut d = Detector::default();
    d.observe(t0, &ps, Some(&both(true, true)));
    d.observe(t0 + MS, &ps, None);
    let v = d.verdict(t0 + 50 * MS, guard, |_| None);
    assert!(!v.cut_off);
    assert_eq!(v.next, Some(51 * MS));
    assert!(d.verdict(t0 + 101 * MS, guard, |_| None).cut_off);
}

fn local_service(address: &str) -> ServiceAddresses {
    ServiceAddresses {
        key: ServiceKey::new("ns", "svc"),
        addresses: vec![address.parse().unwrap()],
        pool: "fast".into(),
        attributes: Default::default(),
        admitted: true,
    }
}

/// Who holds `address` in the view of `me`.
fn holder_seen_by(me: &str, ms: &[Member], verdict: &Verdict, address: &str) -> Option<String> {
    let svc = local_service(address);
    let ready = Readiness::default();
    let c = Candidate {
        service: &svc,
        mode: PoolMode::Local,
        local_traffic: false,
        withdraw_without_endpoints: false,
        endpoints: &ready,
    };
    let view = view(me, ms, verdict);
    elect(&[c], &view, "kube-lb0")[0].placements[0]
        .holders
        .first()
        .map(|h| h.node.clone())
}

#[test]
fn the_next_ranked_takes_over_a_failed_holder_and_the_one_after_it_does_not() {
    let ms = members(4);
    let order = ranked(&ms, "10.0.0.100");
    let (h, s, t) = (&order[0], &order[1], &order[2]);
    let failed_h = Verdict {
        failed: [h.clone()].into(),
        ..Default::default()
    };
    assert_eq!(
        holder_seen_by(s, &ms, &failed_h, "10.0.0.100").as_ref(),
        Some(s)
    );
    assert_eq!(
        holder_seen_by(t, &ms, &failed_h, "10.0.0.100").as_ref(),
        Some(s)
    );
    // T has not judged H failed yet: it still sees H hold it, and takes nothing either way
    assert_eq!(
        holder_seen_by(t, &ms, &Verdict::default(), "10.0.0.100").as_ref(),
        Some(h)
    );
    // a holder cut off holds nothing
    let cut = Verdict {
        cut_off: true,
        ..Default::default()
    };
    assert_ne!(holder_seen_by(h, &ms, &cut, "10.0.0.100").as_ref(), Some(h));
}

/// The timeline of a partition: the holder H cut off from both peers. Whatever the order in
/// which the two ends see the sessions go down, within one transmit interval of each other
/// and read within one poll, H has stepped back before S takes over.
#[test]
fn in_a_partition_the_holder_steps_back_before_its_successor_takes_over() {
    let timers = Timers::default();
    let guard = guard(timers);
    let poll = poll_interval(timers);
    let ms = members(3);
    let order = ranked(&ms, "10.0.0.100");
    let (h, s) = (order[0].clone(), order[1].clone());
    let ws = [watched("10.0.0.100")];
    let t0 = Instant::now();
    for skew_ms in [0u64, 10, 25, 50] {
        for h_first in [true, false] {
            let skew = Duration::from_millis(skew_ms);
            let (h_sees, s_sees) = if h_first {
                (t0, t0 + skew)
            } else {
                (t0 + skew, t0)
            };
            // each agent reads the daemon up to one poll later
            let (h_reads, s_reads) = (h_sees + poll, s_sees + poll);
            let mut h_det = Detector::default();
            let mut s_det = Detector::default();
            let hp = peers(&h, &ms, &ws);
            let sp = peers(&s, &ms, &ws);
            let all_up = |ps: &[BfdPeer]| -> Vec<SessionState> {
                ps.iter()
                    .map(|p| SessionState {
                        peer: p.address,
                        up: true,
                    })
                    .collect()
            };
            h_det.observe(t0 - Duration::from_secs(10), &hp, Some(&all_up(&hp)));
            s_det.observe(t0 - Duration::from_secs(10), &sp, Some(&all_up(&sp)));
            let h_down: Vec<SessionState> = hp
                .iter()
                .map(|p| SessionState {
                    peer: p.address,
                    up: false,
                })
                .collect();
            let s_down: Vec<SessionState> = sp
                .iter()
                .map(|p| SessionState {
                    peer: p.address,
                    up: p.node != h,
                })
                .collect();
            h_det.observe(h_reads, &hp, Some(&h_down));
            s_det.observe(s_reads, &sp, Some(&s_down));
            let h_verdict = h_det.verdict(h_reads, guard, |_| None);
            assert!(h_verdict.cut_off);
            let released = h_reads;
            // S takes over at its first verdict that says so
            let mut at = s_reads;
            let acquired = loop {
                let v = s_det.verdict(at, guard, |_| None);
                if holder_seen_by(&s, &ms, &v, "10.0.0.100").as_ref() == Some(&s) {
                    break at;
                }
                at += v.next.expect("a guard running");
            };
            assert!(
                released < acquired,
                "skew {skew_ms} ms, H first {h_first}: released {:?} after acquired",
                released - acquired
            );
            assert!(acquired - s_sees <= guard + poll);
        }
    }
}
