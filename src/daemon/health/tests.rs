use super::parse::*;
use super::*;

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/health/");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIX}{name}")).unwrap()
}

fn peers(sessions: &[Session]) -> Vec<(&str, &str, bool)> {
    sessions
        .iter()
        .map(|s| (s.key.peer.as_str(), s.state.as_str(), s.up))
        .collect()
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn frr_bgp_summary_one_session_per_neighbor() {
    let up = frr_bgp_summary(&fixture("frr_bgp_summary_up.json")).unwrap();
    assert_eq!(
        peers(&up),
        [
            ("172.30.240.1", "Established", true),
            ("fd00:30:240::1", "Established", true)
        ]
    );
    assert_eq!(up[0].key.instance, None);
    assert_eq!(
        (up[0].received, up[0].sent, up[0].drops),
        (Some(0), Some(0), Some(0))
    );
    assert_eq!(up[0].since, Some(Since::Ago(secs(84))));
    let down = frr_bgp_summary(&fixture("frr_bgp_summary_down.json")).unwrap();
    assert_eq!(peers(&down)[0], ("172.30.240.1", "Active", false));
    assert_eq!(down[0].drops, Some(1));
    assert!(frr_bgp_summary("").unwrap().is_empty());
    assert!(frr_bgp_summary("{not json").is_err());
}

#[test]
fn frr_bgp_summary_sums_families_and_names_unnumbered_peers_by_interface() {
    let text = r#"{"blue":{
        "ipv4Unicast":{"peers":{"eth0":{"state":"Established","pfxRcd":3,"pfxSnt":2,"idType":"interface","peerUptimeMsec":1000}}},
        "ipv6Unicast":{"peers":{"eth0":{"state":"Established","pfxRcd":1,"pfxSnt":4,"idType":"interface","peerUptimeMsec":1000}}}}}"#;
    let s = frr_bgp_summary(text).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].key.instance.as_deref(), Some("blue"));
    assert_eq!(s[0].key.interface.as_deref(), Some("eth0"));
    assert_eq!((s[0].received, s[0].sent), (Some(4), Some(6)));
    assert_eq!(s[0].key.to_string(), "BGP session eth0 (blue)");
}

#[test]
fn frr_bfd_attaches_to_the_bgp_session_it_watches() {
    let mut s = frr_bgp_summary(&fixture("frr_bgp_summary_up.json")).unwrap();
    let bfd = frr_bfd_peers(&fixture("frr_bfd_peers.json")).unwrap();
    assert_eq!(peers(&bfd), [("172.30.240.1", "up", true)]);
    attach_bfd(&mut s, bfd, true);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].bfd.as_deref(), Some("up"));
    assert_eq!(s[1].bfd, None);
}

#[test]
fn a_bfd_session_watching_nothing_known_is_its_own() {
    let mut s = frr_bgp_summary(&fixture("frr_bgp_summary_up.json")).unwrap();
    let text = r#"[{"peer":"10.9.9.9","vrf":"default","status":"down","downtime":7,"diagnostic":"control detection time expired"}]"#;
    attach_bfd(&mut s, frr_bfd_peers(text).unwrap(), true);
    assert_eq!(s.len(), 3);
    assert_eq!(s[2].key.kind, Kind::Bfd);
    assert!(!s[2].up);
    assert_eq!(s[2].since, Some(Since::Ago(secs(7))));
    assert_eq!(
        s[2].detail.as_deref(),
        Some("control detection time expired")
    );
}

#[test]
fn frr_unnumbered_bgp_gets_its_bfd_by_interface() {
    let text = r#"{"default":{"ipv6Unicast":{"peers":{"eth0":{"state":"Established","idType":"interface"}}}}}"#;
    let mut s = frr_bgp_summary(text).unwrap();
    let bfd = r#"[{"peer":"fe80::1","interface":"eth0","vrf":"default","status":"down"}]"#;
    attach_bfd(&mut s, frr_bfd_peers(bfd).unwrap(), true);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].bfd.as_deref(), Some("down"));
}

#[test]
fn frr_ospf_neighbors_per_router_id_and_interface() {
    let s = frr_ospf_neighbors(&fixture("frr_ospf_neighbors.json")).unwrap();
    assert_eq!(peers(&s), [("172.30.241.1", "Full/-", true)]);
    assert_eq!(s[0].key.kind, Kind::Ospf);
    assert_eq!(s[0].key.interface.as_deref(), Some("eth-rtr"));
    assert_eq!(s[0].address.as_deref(), Some("172.30.241.1"));
    assert!(matches!(s[0].since, Some(Since::Ago(d)) if d.as_secs() == 135));
    // Without `vrf all`, the same answer has no VRF level.
    let plain = r#"{"neighbors":{"1.1.1.1":[{"nbrState":"2-Way/DROther","ifaceName":"eth1:10.0.0.2"},{"nbrState":"ExStart/DR","ifaceName":"eth2:10.0.1.2"}]}}"#;
    let s = frr_ospf_neighbors(plain).unwrap();
    assert_eq!(
        peers(&s),
        [
            ("1.1.1.1", "2-Way/DROther", true),
            ("1.1.1.1", "ExStart/DR", false)
        ]
    );
}

#[test]
fn frr_ospf6_isis_neighbors() {
    let s = frr_ospf6_neighbors(&fixture("frr_ospf6_neighbors.json")).unwrap();
    assert_eq!(peers(&s), [("172.30.241.1", "Full", true)]);
    assert_eq!(s[0].key.kind, Kind::Ospf6);
    assert_eq!(s[0].since, Some(Since::Ago(secs(135))));
    // Two routers that are neither DR nor BDR stay in Twoway: a working adjacency.
    let shared = r#"{"neighbors":[{"neighborId":"10.0.0.12","state":"Twoway","interfaceName":"eth0"},{"neighborId":"10.0.0.13","state":"ExChange","interfaceName":"eth0"}]}"#;
    assert_eq!(
        peers(&frr_ospf6_neighbors(shared).unwrap()),
        [
            ("10.0.0.12", "Twoway", true),
            ("10.0.0.13", "ExChange", false)
        ]
    );
    let s = frr_isis_neighbors(&fixture("frr_isis_neighbors.json")).unwrap();
    assert_eq!(peers(&s), [("hi-rtr level-2", "Up", true)]);
    assert_eq!(s[0].key.instance.as_deref(), Some("LAB"));
    assert_eq!(s[0].key.interface.as_deref(), Some("eth-rtr"));
    let down = r#"{"areas":[{"area":"A","circuits":[{"circuit":0,"adj":"r1","interface":"e0","level":1,"state":"Initializing"},{"circuit":1,"interface":"e1"}]}]}"#;
    assert_eq!(
        peers(&frr_isis_neighbors(down).unwrap()),
        [("r1 level-1", "Initializing", false)]
    );
}

#[test]
fn frr_rip_sources_heard_within_the_timeout() {
    let s = frr_rip_sources(&fixture("frr_rip_status.txt"), Kind::Rip);
    assert_eq!(peers(&s), [("172.30.243.1", "heard", true)]);
    // A long IPv6 gateway wraps its counters onto the next line.
    let s = frr_rip_sources(&fixture("frr_ripng_status.txt"), Kind::Ripng);
    assert_eq!(peers(&s), [("fe80::bccb:18ff:fe8b:1ed5", "heard", true)]);
    let silent = "  Timeout after 180 seconds, garbage collect after 120 seconds\n  Routing Information Sources:\n    Gateway          BadPackets BadRoutes  Distance Last Update\n    10.0.0.1             0         0       120   00:00:04\n    10.0.0.9             0         0       120   00:03:30\n  Distance: (default is 120)\n";
    assert_eq!(
        peers(&frr_rip_sources(silent, Kind::Rip)),
        [("10.0.0.1", "heard", true), ("10.0.0.9", "silent", false)]
    );
}

#[test]
fn durations_as_frr_prints_them() {
    assert_eq!(parse::clock("01:02:03"), Some(secs(3723)));
    assert_eq!(parse::clock("1d02h03m"), Some(secs(93_780)));
    assert_eq!(parse::clock("2w1d"), Some(secs(1_296_000)));
    assert_eq!(parse::clock("never"), None);
}

#[test]
fn bird_bgp_protocols_up_and_down() {
    let s = bird_bgp(&fixture("bird_protocols_all.txt"));
    assert_eq!(
        peers(&s),
        [("rtr4", "Established", true), ("rtr6", "Established", true)]
    );
    assert_eq!(s[0].address.as_deref(), Some("172.30.244.1"));
    assert_eq!((s[0].received, s[0].sent), (Some(0), Some(0)));
    let down = "rtr4       BGP        ---        start  02:10:52.598  Active        Socket: Connection reset by peer\n  BGP state:          Active\n    Neighbor address: 172.30.244.1\n    Last error:       Socket: Connection reset by peer\n  Channel ipv4\n    State:          DOWN\n";
    let s = bird_bgp(down);
    assert_eq!(peers(&s), [("rtr4", "Active", false)]);
    assert_eq!(
        s[0].detail.as_deref(),
        Some("Socket: Connection reset by peer")
    );
    assert_eq!(s[0].since, Some(Since::Mark("02:10:52.598".into())));
    // BIRD 1.6: counts at the protocol, with `filtered` before `exported`.
    let v1 = "bgp1     BGP      master   up     2026-12-01  Established\n  Routes:         3 imported, 1 filtered, 2 exported, 3 preferred\n";
    assert_eq!(
        (bird_bgp(v1)[0].received, bird_bgp(v1)[0].sent),
        (Some(3), Some(2))
    );
}

#[test]
fn bird_ospf_rip_bfd() {
    let s = bird_ospf_neighbors(&fixture("bird_ospf_neighbors.txt"));
    assert_eq!(
        peers(&s),
        [
            ("172.30.245.1", "Full/PtP", true),
            ("172.30.245.1", "Full/PtP", true)
        ]
    );
    assert_eq!(
        s.iter()
            .map(|s| (s.key.kind, s.key.instance.as_deref()))
            .collect::<Vec<_>>(),
        [(Kind::Ospf, Some("ospf4")), (Kind::Ospf6, Some("ospf6"))]
    );
    let s = bird_rip_neighbors(&fixture("bird_rip_neighbors.txt"));
    assert_eq!(
        s.iter()
            .map(|s| (s.key.kind, s.key.peer.as_str(), s.received))
            .collect::<Vec<_>>(),
        [
            (Kind::Rip, "172.30.246.1", Some(1)),
            (Kind::Ripng, "fe80::ac9b:68ff:fe9e:bb07", Some(1))
        ]
    );
    let bfd = bird_bfd_sessions(&fixture("bird_bfd_sessions.txt"));
    assert_eq!(peers(&bfd), [("172.30.244.1", "up", true)]);
    let mut bgp = bird_bgp(&fixture("bird_protocols_all.txt"));
    attach_bfd(&mut bgp, bfd, false);
    assert_eq!(bgp.len(), 2);
    assert_eq!(bgp[0].bfd.as_deref(), Some("up"));
    assert_eq!(
        bird_protocol_kinds(&fixture("bird_protocols_all.txt")),
        ["Direct", "Device", "Kernel", "Kernel", "BFD", "BGP", "BGP"]
    );
}

fn bgp(peer: &str, up: bool, uptime: u64) -> Session {
    let mut s = Session::new(
        SessionKey {
            kind: Kind::Bgp,
            instance: None,
            peer: peer.into(),
            interface: None,
        },
        if up { "Established" } else { "Active" },
        up,
    );
    s.since = Some(Since::Ago(secs(uptime)));
    s
}

fn look(sessions: Vec<Session>) -> Look {
    Look {
        sessions,
        unknown: Default::default(),
    }
}

fn changes(t: &[Transition]) -> Vec<(&str, Change)> {
    t.iter().map(|t| (t.key.peer.as_str(), t.change)).collect()
}

#[test]
fn tracker_reports_transitions_after_the_first_look() {
    let mut tr = Tracker::default();
    assert!(
        tr.look(t0(), look(vec![bgp("a", true, 100), bgp("b", false, 5)]))
            .is_empty()
    );
    let t = tr.look(
        t0() + secs(10),
        look(vec![bgp("a", false, 1), bgp("b", true, 2)]),
    );
    assert_eq!(changes(&t), [("a", Change::Down), ("b", Change::Up)]);
    assert_eq!(
        (t[0].was.as_str(), t[0].now.as_str()),
        ("Established", "Active")
    );
    assert_eq!(tr.counts(), (1, 2));
}

#[test]
fn tracker_since_is_stable_while_the_state_holds() {
    let mut tr = Tracker::default();
    tr.look(t0(), look(vec![bgp("a", true, 100)]));
    let since = |tr: &Tracker| tr.sessions().next().unwrap().since;
    assert_eq!(since(&tr), t0() - secs(100));
    assert!(
        tr.look(t0() + secs(10), look(vec![bgp("a", true, 110)]))
            .is_empty()
    );
    assert_eq!(since(&tr), t0() - secs(100));
    tr.look(t0() + secs(20), look(vec![bgp("a", false, 3)]));
    assert_eq!(since(&tr), t0() + secs(17));
}

#[test]
fn tracker_sees_a_flap_between_two_looks() {
    let mut tr = Tracker::default();
    tr.look(t0(), look(vec![bgp("a", true, 100)]));
    // Up at both looks, but up for 4 s of the 10 between them.
    let t = tr.look(t0() + secs(10), look(vec![bgp("a", true, 4)]));
    assert_eq!(changes(&t), [("a", Change::Flapped)]);
    // The drop counter tells it too.
    let mut a = bgp("a", true, 24);
    a.drops = Some(1);
    tr.look(t0() + secs(20), look(vec![a.clone()]));
    a.drops = Some(2);
    a.since = Some(Since::Ago(secs(34)));
    let t = tr.look(t0() + secs(30), look(vec![a]));
    assert_eq!(changes(&t), [("a", Change::Flapped)]);
}

#[test]
fn tracker_keeps_a_vanished_session_as_gone_for_a_while() {
    let mut tr = Tracker::default();
    let ospf = |up: bool| {
        let mut s = bgp("r1", up, 50);
        s.key.kind = Kind::Ospf;
        s.state = "Full/-".into();
        s
    };
    tr.look(t0(), look(vec![ospf(true)]));
    let t = tr.look(t0() + secs(10), look(vec![]));
    assert_eq!(changes(&t), [("r1", Change::Gone)]);
    let gone = tr.sessions().next().unwrap();
    assert_eq!(
        (gone.session.state.as_str(), gone.session.up),
        ("gone", false)
    );
    assert_eq!(tr.counts(), (0, 1));
    assert!(tr.look(t0() + secs(20), look(vec![])).is_empty());
    // Back: up again.
    let t = tr.look(t0() + secs(30), look(vec![ospf(true)]));
    assert_eq!(changes(&t), [("r1", Change::Up)]);
    tr.look(t0() + secs(40), look(vec![]));
    tr.look(t0() + secs(40) + GONE_KEPT, look(vec![]));
    assert_eq!(tr.counts(), (0, 0));
}

#[test]
fn tracker_keeps_what_it_could_not_ask_about() {
    let mut tr = Tracker::default();
    tr.look(t0(), look(vec![bgp("a", true, 100)]));
    let mut l = look(vec![]);
    l.unknown.insert(Kind::Bgp);
    assert!(tr.look(t0() + secs(10), l).is_empty());
    assert_eq!(tr.counts(), (1, 1));
}

#[test]
fn tracker_reports_bfd_transitions() {
    let mut tr = Tracker::default();
    let with_bfd = |state: &str| {
        let mut s = bgp("a", true, 100);
        s.bfd = Some(state.into());
        s
    };
    tr.look(t0(), look(vec![with_bfd("up")]));
    let mut next = with_bfd("down");
    next.since = Some(Since::Ago(secs(110)));
    let t = tr.look(t0() + secs(10), look(vec![next]));
    assert_eq!(changes(&t), [("a", Change::BfdDown)]);
    assert_eq!(t[0].now, "BFD down");
}

#[test]
fn events_are_bounded_per_look() {
    let t: Vec<Transition> = (0..20)
        .map(|i| Transition {
            key: bgp(&format!("10.0.0.{i}"), false, 0).key,
            change: if i % 2 == 0 { Change::Down } else { Change::Up },
            was: "Established".into(),
            now: "Active".into(),
            detail: None,
        })
        .collect();
    let e = events(&t);
    assert_eq!(e.len(), EVENTS_PER_LOOK + 1);
    assert_eq!(e[0].reason, "RoutingSessionDown");
    assert!(e[0].warning);
    assert_eq!(e[0].note, "BGP session 10.0.0.0 is Active, was Established");
    assert_eq!(e[1].reason, "RoutingSessionUp");
    let last = e.last().unwrap();
    assert_eq!(last.note, "12 more routing sessions changed (6 lost, 6 up)");
    assert!(last.warning);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the looks, the tracker holds every session of the latest look as the
        /// daemon reported it, and a session present at two consecutive looks changes
        /// up/down in its transitions exactly when the daemon's report did.
        #[test]
        fn tracker_follows_the_daemon(looks in prop::collection::vec(
            prop::collection::btree_map(0u8..6, any::<bool>(), 0..6), 1..8)) {
            let mut tr = Tracker::default();
            let mut before: Option<BTreeMap<u8, bool>> = None;
            for (i, l) in looks.iter().enumerate() {
                let now = t0() + secs(10 * i as u64);
                let sessions = l.iter().map(|(p, up)| bgp(&p.to_string(), *up, 5 * i as u64 + 1000)).collect();
                let t = tr.look(now, look(sessions));
                for (p, up) in l {
                    let tracked = tr.sessions().find(|x| x.session.key.peer == p.to_string()).unwrap();
                    prop_assert_eq!(tracked.session.up, *up);
                    if let Some(b) = before.as_ref().and_then(|b| b.get(p)) {
                        let flipped = t.iter().any(|x| x.key.peer == p.to_string() && matches!(x.change, Change::Up | Change::Down));
                        prop_assert_eq!(flipped, b != up);
                    }
                }
                let (up, _) = tr.counts();
                prop_assert_eq!(up, l.values().filter(|u| **u).count());
                before = Some(l.clone());
            }
        }
    }
}
