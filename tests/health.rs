//! Routing health read from real daemons: for every protocol FRR and BIRD speak in the
//! namespace lab, the node's sessions and adjacencies are found up, and when the router goes
//! away (its neighbor shut down, its link down) the tracker reports the loss — as the agent
//! turns it into Events — and reports the session up again when the router comes back. BFD
//! sessions are found and attached to the BGP session they watch. Needs root, FRR and BIRD.

mod support {
    pub mod daemon;
    pub mod files;
    pub mod lab;
    pub mod lock;
    pub mod script;
}

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use routelb::daemon::Driver;
use routelb::daemon::frr::FrrApply;
use routelb::daemon::health::{Change, Kind, Look, Session, Tracker, Transition};
use routelb::daemon::observe;
use support::lab::Lab;

/// Looks at the daemon every 300 ms until `done` holds for the tracker, or panics after
/// `timeout`; returns the transitions seen on the way.
async fn look_until(
    driver: &Driver,
    tracker: &mut Tracker,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Tracker) -> bool,
) -> Vec<Transition> {
    let t0 = Instant::now();
    let mut seen = vec![];
    loop {
        let look: Look = observe::health(driver).await.unwrap();
        seen.extend(tracker.look(SystemTime::now(), look));
        if done(tracker) {
            return seen;
        }
        assert!(
            t0.elapsed() < timeout,
            "{what} within {timeout:?}; tracked: {:#?}",
            tracker.sessions().map(|t| &t.session).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn session(t: &Tracker, kind: Kind) -> Vec<&Session> {
    t.sessions()
        .map(|t| &t.session)
        .filter(|s| s.key.kind == kind)
        .collect()
}

fn all_up(t: &Tracker, kinds: &[Kind]) -> bool {
    kinds
        .iter()
        .all(|k| !session(t, *k).is_empty() && session(t, *k).iter().all(|s| s.up))
}

fn none_up(t: &Tracker, kinds: &[Kind]) -> bool {
    kinds.iter().all(|k| session(t, *k).iter().all(|s| !s.up))
}

fn changes(t: &[Transition]) -> Vec<(Kind, Change)> {
    let mut v: Vec<_> = t.iter().map(|t| (t.key.kind, t.change)).collect();
    v.sort();
    v.dedup();
    v
}

fn router_link(lab: &Lab, state: &str) {
    let st = Command::new("ip")
        .args(["-n", lab.var("LAB_RTR_NS"), "link", "set"])
        .args([lab.var("LAB_RTR_IF"), state])
        .status()
        .unwrap();
    assert!(st.success());
}

/// One line in the router's `router bgp`.
fn router_bgp(lab: &Lab, line: &str) {
    lab.bgp_line("LAB_RTR_FRR", line);
}

/// Gives the router something to send, so that RIP's neighbour is heard (it would suppress
/// the shared subnet by split horizon).
fn router_sends_rip(lab: &Lab) {
    for (addr, family) in [("10.99.0.1/32", "-4"), ("fd00:99::1/128", "-6")] {
        let st = Command::new("ip")
            .args([family, "-n", lab.var("LAB_RTR_NS"), "addr", "add", addr])
            .args(["dev", "lo"])
            .status()
            .unwrap();
        assert!(st.success());
    }
    lab.configure(
        "LAB_RTR_FRR",
        &[
            "router rip",
            "redistribute connected",
            "exit",
            "router ripng",
            "redistribute connected",
        ],
    );
}

fn bgp_and_bfd_up(t: &Tracker) -> bool {
    all_up(t, &[Kind::Bgp])
        && session(t, Kind::Bgp)
            .iter()
            .any(|s| s.bfd.as_deref() == Some("up"))
}

/// The router shuts its neighbor `node` down and brings it back: the node's session named
/// `peer` is reported down (`while_down` checks the tracker then), then up again. Returns the
/// down transition.
async fn neighbor_lost_and_back(
    lab: &Lab,
    driver: &Driver,
    tracker: &mut Tracker,
    node: &str,
    peer: &str,
    while_down: impl Fn(&Tracker),
) -> Transition {
    router_bgp(lab, &format!("neighbor {node} shutdown"));
    let seen = look_until(driver, tracker, LOST_WITHIN, "the session down", |t| {
        session(t, Kind::Bgp)
            .iter()
            .any(|s| s.key.peer == peer && !s.up)
    })
    .await;
    let down = seen
        .iter()
        .find(|t| t.change == Change::Down)
        .unwrap()
        .clone();
    assert_eq!(down.key.peer, peer);
    while_down(tracker);
    router_bgp(lab, &format!("no neighbor {node} shutdown"));
    let seen = look_until(driver, tracker, UP_WITHIN, "the session up again", |t| {
        all_up(t, &[Kind::Bgp])
    })
    .await;
    assert!(
        changes(&seen).contains(&(Kind::Bgp, Change::Up)),
        "{seen:?}"
    );
    down
}

const UP_WITHIN: Duration = Duration::from_secs(40);
/// OSPF's and IS-IS's dead/hold times in the lab are 3 s, BGP's hold time 9 s, RIP's
/// timeout 15 s (then garbage collection).
const LOST_WITHIN: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread")]
async fn frr_bgp_sessions_and_their_bfd() {
    let lab = Lab::up_with("hl-fbgp", "frr", "bgp", &["--daemons", "zebra bgpd bfdd"]);
    let driver = lab.driver(FrrApply::Diff);
    let node_v4 = lab.var("LAB_NODE_V4").to_string();
    let rtr_v4 = lab.var("LAB_RTR_V4").to_string();
    // BFD on the IPv4 session, both sides.
    lab.bgp_line("LAB_NODE_FRR", &format!("neighbor {rtr_v4} bfd"));
    router_bgp(&lab, &format!("neighbor {node_v4} bfd"));
    let mut tracker = Tracker::default();
    look_until(
        &driver,
        &mut tracker,
        UP_WITHIN,
        "BGP and BFD up",
        bgp_and_bfd_up,
    )
    .await;
    let bgp = session(&tracker, Kind::Bgp);
    assert_eq!(bgp.len(), 2, "{bgp:#?}");
    let v4 = bgp.iter().find(|s| s.key.peer == rtr_v4).unwrap();
    assert_eq!(
        (v4.state.as_str(), v4.bfd.as_deref()),
        ("Established", Some("up"))
    );
    assert!(v4.received.is_some() && v4.sent.is_some());
    // The BFD session watches the BGP session: not listed on its own.
    assert!(session(&tracker, Kind::Bfd).is_empty());

    let down = neighbor_lost_and_back(&lab, &driver, &mut tracker, &node_v4, &rtr_v4, |t| {
        assert_eq!(t.counts(), (1, 2));
    })
    .await;
    assert_eq!(down.was, "Established");
}

/// The IGPs of one lab: up, then lost with the router's link, then up again.
async fn igp_lost_and_back(lab: &Lab, kinds: &[Kind]) {
    let driver = lab.driver(FrrApply::Diff);
    let mut tracker = Tracker::default();
    look_until(&driver, &mut tracker, UP_WITHIN, "adjacencies up", |t| {
        all_up(t, kinds)
    })
    .await;
    router_link(lab, "down");
    let seen = look_until(
        &driver,
        &mut tracker,
        LOST_WITHIN,
        "adjacencies lost",
        |t| none_up(t, kinds),
    )
    .await;
    for k in kinds {
        assert!(
            seen.iter()
                .any(|t| t.key.kind == *k && matches!(t.change, Change::Down | Change::Gone)),
            "{k:?} lost: {seen:?}"
        );
    }
    router_link(lab, "up");
    let seen = look_until(&driver, &mut tracker, UP_WITHIN, "adjacencies back", |t| {
        all_up(t, kinds)
    })
    .await;
    for k in kinds {
        assert!(
            seen.iter()
                .any(|t| t.key.kind == *k && t.change == Change::Up),
            "{k:?} back: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn frr_ospf_adjacencies() {
    let lab = Lab::up("hl-fospf", "frr", "ospf");
    igp_lost_and_back(&lab, &[Kind::Ospf, Kind::Ospf6]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn frr_isis_adjacency() {
    let lab = Lab::up("hl-fisis", "frr", "isis");
    igp_lost_and_back(&lab, &[Kind::Isis]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn frr_rip_neighbours() {
    let lab = Lab::up("hl-frip", "frr", "rip");
    router_sends_rip(&lab);
    igp_lost_and_back(&lab, &[Kind::Rip, Kind::Ripng]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bird_ospf_adjacencies() {
    let lab = Lab::up("hl-bospf", "bird", "ospf");
    igp_lost_and_back(&lab, &[Kind::Ospf, Kind::Ospf6]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bird_rip_neighbours() {
    let lab = Lab::up("hl-brip", "bird", "rip");
    router_sends_rip(&lab);
    igp_lost_and_back(&lab, &[Kind::Rip, Kind::Ripng]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bird_bgp_protocols_and_their_bfd() {
    let lab = Lab::up_with("hl-bbgp", "bird", "bgp", &["--daemons", "zebra bgpd bfdd"]);
    let node_v4 = lab.var("LAB_NODE_V4").to_string();
    // BFD on the IPv4 protocol (BIRD) and the router's neighbor (bfdd).
    let conf = lab.var("LAB_BIRD_CONF");
    let text = std::fs::read_to_string(conf).unwrap();
    let proto = text
        .lines()
        .find(|l| l.starts_with("protocol bgp rtr4"))
        .expect("the lab's IPv4 BGP protocol")
        .to_string();
    let text = text.replacen(
        &proto,
        &format!("protocol bfd {{ interface \"*\" {{ interval 300 ms; }}; }}\n{proto}\n  bfd on;"),
        1,
    );
    std::fs::write(conf, text).unwrap();
    let out = Command::new(lab.var("LAB_BIRDC"))
        .arg("configure")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Reconfigured"),
        "{out:?}"
    );
    router_bgp(&lab, &format!("neighbor {node_v4} bfd"));
    let driver = lab.driver(FrrApply::Diff);
    let mut tracker = Tracker::default();
    look_until(
        &driver,
        &mut tracker,
        UP_WITHIN,
        "BGP and BFD up",
        bgp_and_bfd_up,
    )
    .await;
    let bgp = session(&tracker, Kind::Bgp);
    let names: Vec<&str> = bgp.iter().map(|s| s.key.peer.as_str()).collect();
    assert_eq!(names, ["rtr4", "rtr6"]);
    assert_eq!(bgp[0].address.as_deref(), Some(lab.var("LAB_RTR_V4")));
    assert_eq!(bgp[0].bfd.as_deref(), Some("up"));

    neighbor_lost_and_back(&lab, &driver, &mut tracker, &node_v4, "rtr4", |t| {
        let rtr4 = session(t, Kind::Bgp)[0];
        assert!(rtr4.detail.is_some(), "BIRD says why: {rtr4:?}");
    })
    .await;
}
