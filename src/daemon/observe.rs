//! Asks the daemon what really leaves the node (I/O only; [`super::advertised`] parses and
//! judges): FRR over the kept vty connections — per BGP neighbor and family its advertised
//! routes, the external LSAs ospfd and ospf6d originate — and BIRD over its control socket — per BGP,
//! OSPF or RIP protocol the routes it exported. Only what `expected` needs is asked. Also the
//! sessions and adjacencies the daemon keeps, for routing health ([`health`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ipnet::IpNet;

use super::advertised::{self, BgpNeighbor, Exit, Expected, Family, Protocol, Verification};
use super::bird::{BirdDriver, BirdVersion};
use super::frr::FrrDriver;
use super::health::{self, Kind, Look, Session, parse};
use super::{DaemonError, Driver};
use crate::render::model::FragmentData;

/// How long one verification may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Verifications one after the other, for the agent and standalone alike.
#[derive(Debug, Default)]
pub struct Verifier {
    /// Prefixes missing at the previous verification. A gap seen for the first time may be
    /// the daemon still converging (bgpd's route-map delay timer, update coalescing): it is
    /// judged only when the next verification still sees it.
    suspects: BTreeSet<IpNet>,
}

impl Verifier {
    /// Asks the daemon and judges `prefixes` (the load-balancer interface's) against the
    /// fragment's targets. Also returns whether a new gap waits for the next verification to
    /// be confirmed (then verify again soon).
    pub async fn verify(
        &mut self,
        driver: &Driver,
        data: &FragmentData,
        prefixes: &BTreeSet<IpNet>,
    ) -> Result<(Verification, bool), DaemonError> {
        let expected = advertised::expected(data, prefixes);
        let observed = tokio::time::timeout(TIMEOUT, observe(driver, &expected))
            .await
            .map_err(|_| {
                DaemonError::Unreachable(format!("no answer within {TIMEOUT:?} to verifying"))
            })??;
        let expected = advertised::only_verified(expected, &observed.unverified);
        let mut exits = observed.exits;
        let missing = advertised::missing(&expected, &exits);
        let fresh: BTreeSet<IpNet> = missing.difference(&self.suspects).copied().collect();
        self.suspects = missing.clone();
        explain(driver, &mut exits, &missing).await;
        let v = advertised::verify(&advertised::without(&expected, &fresh), &exits);
        Ok((v, !fresh.is_empty()))
    }
}

/// What the daemon advertises, and the protocols it could not be asked about: those are left
/// out of the verdict rather than judged unadvertised.
#[derive(Debug, Default)]
pub struct Observed {
    pub exits: Vec<Exit>,
    pub unverified: BTreeSet<Protocol>,
}

pub async fn observe(driver: &Driver, expected: &Expected) -> Result<Observed, DaemonError> {
    let wants = |p: Protocol| expected.keys().any(|(q, _)| *q == p);
    match driver {
        Driver::Frr(d) => {
            let mut o = Observed::default();
            if wants(Protocol::Bgp) {
                o.exits.extend(frr_bgp(d, expected).await?);
            }
            if wants(Protocol::Ospf) {
                o.exits.extend(frr_ospf(d).await?);
            }
            if wants(Protocol::Isis) {
                o.exits.extend(frr_isis(d).await?);
            }
            if wants(Protocol::Rip) {
                o.exits.extend(frr_rip(d).await?);
            }
            Ok(o)
        }
        Driver::Bird(d) => Ok(Observed {
            exits: bird(d, expected).await?,
            unverified: BTreeSet::new(),
        }),
    }
}

fn malformed(e: String) -> DaemonError {
    DaemonError::Rejected(format!("unexpected answer: {e}"))
}

/// One exit per BGP neighbor and family, in the VRFs routelb exports through. The routes
/// come from the update-group view, one answer per VRF and family for all its neighbors; a
/// neighbor whose subgroup that answer lacks is asked on its own.
async fn frr_bgp(d: &FrrDriver, expected: &Expected) -> Result<Vec<Exit>, DaemonError> {
    let Some(json) = d.show("bgpd", "show bgp vrf all neighbors json").await? else {
        return Ok(vec![]);
    };
    let neighbors: Vec<BgpNeighbor> = advertised::parse_bgp_neighbors(&json)
        .map_err(malformed)?
        .into_iter()
        .filter(|n| expected.contains_key(&(Protocol::Bgp, n.vrf.clone())))
        .collect();
    let mut groups: BTreeMap<(Option<String>, Family), Subgroups> = BTreeMap::new();
    let mut exits = vec![];
    for n in &neighbors {
        for f in &n.families {
            let advertised = if n.established {
                let key = (n.vrf.clone(), f.family);
                if !groups.contains_key(&key) {
                    let cmd = format!(
                        "show bgp{} {} unicast update-groups advertised-routes",
                        vrf_arg(&n.vrf),
                        f.family.name()
                    );
                    let text = d.show("bgpd", &cmd).await?.unwrap_or_default();
                    groups.insert(key.clone(), advertised::parse_bgp_update_groups(&text));
                }
                match f.subgroup.and_then(|g| groups[&key].get(&g)) {
                    Some(routes) => routes.clone(),
                    None => neighbor_routes(d, n, f.family).await?,
                }
            } else {
                BTreeSet::new()
            };
            exits.push(Exit {
                protocol: Protocol::Bgp,
                vrf: n.vrf.clone(),
                name: n.label(),
                family: f.family,
                up: n.established,
                advertised,
                filters: f.filters.clone(),
            });
        }
    }
    Ok(exits)
}

type Subgroups = BTreeMap<(u64, u64), BTreeSet<IpNet>>;

fn vrf_arg(vrf: &Option<String>) -> String {
    vrf.as_ref()
        .map(|v| format!(" vrf {v}"))
        .unwrap_or_default()
}

/// One neighbor's advertised routes, asked on their own.
async fn neighbor_routes(
    d: &FrrDriver,
    n: &BgpNeighbor,
    family: Family,
) -> Result<BTreeSet<IpNet>, DaemonError> {
    let cmd = format!(
        "show bgp{} {} unicast neighbors {} advertised-routes json",
        vrf_arg(&n.vrf),
        family.name(),
        n.neighbor
    );
    let json = d.show("bgpd", &cmd).await?.unwrap_or_default();
    advertised::parse_bgp_advertised(&json).map_err(malformed)
}

/// ospfd's and ospf6d's self-originated external LSAs; the distribute-lists of `router ospf`
/// are read from ospfd's running configuration only when needed to explain a gap.
async fn frr_ospf(d: &FrrDriver) -> Result<Vec<Exit>, DaemonError> {
    let mut exits = vec![];
    let v4 = d
        .show(
            "ospfd",
            "show ip ospf database external self-originate json",
        )
        .await?;
    if let Some(json) = v4 {
        exits.push(Exit {
            protocol: Protocol::Ospf,
            vrf: None,
            name: "router ospf".into(),
            family: Family::V4,
            up: true,
            advertised: advertised::parse_ospf_external(&json).map_err(malformed)?,
            filters: vec![],
        });
    }
    let v6 = d
        .show(
            "ospf6d",
            "show ipv6 ospf6 database as-external self-originated json",
        )
        .await?;
    if let Some(json) = v6 {
        exits.push(Exit {
            protocol: Protocol::Ospf,
            vrf: None,
            name: "router ospf6".into(),
            family: Family::V6,
            up: true,
            advertised: advertised::parse_ospf6_external(&json).map_err(malformed)?,
            filters: vec![],
        });
    }
    Ok(exits)
}

/// Per IS-IS area and family, the reachability this router's own LSPs carry.
async fn frr_isis(d: &FrrDriver) -> Result<Vec<Exit>, DaemonError> {
    let Some(text) = d.show("isisd", "show isis database detail").await? else {
        return Ok(vec![]);
    };
    let mut exits = vec![];
    for (area, nets) in advertised::parse_isis_own(&text) {
        for family in [Family::V4, Family::V6] {
            exits.push(Exit {
                protocol: Protocol::Isis,
                vrf: None,
                name: format!("router isis {area}"),
                family,
                up: true,
                advertised: nets
                    .iter()
                    .filter(|n| Family::of(n) == family)
                    .copied()
                    .collect(),
                filters: vec![],
            });
        }
    }
    Ok(exits)
}

/// RIP and RIPng: the redistributed routes each holds, less what its outgoing
/// distribute-lists deny (read from the daemon's configuration only when it has some).
async fn frr_rip(d: &FrrDriver) -> Result<Vec<Exit>, DaemonError> {
    let mut exits = vec![];
    for (daemon, table, status, name, family) in [
        (
            "ripd",
            "show ip rip",
            "show ip rip status",
            "router rip",
            Family::V4,
        ),
        (
            "ripngd",
            "show ipv6 ripng",
            "show ipv6 ripng status",
            "router ripng",
            Family::V6,
        ),
    ] {
        let (Some(routes), Some(status)) =
            (d.show(daemon, table).await?, d.show(daemon, status).await?)
        else {
            continue;
        };
        let lists = advertised::parse_rip_out_lists(&status);
        let running = if lists.is_empty() {
            String::new()
        } else {
            d.show(daemon, "show running-config")
                .await?
                .unwrap_or_default()
        };
        let redistributed = advertised::parse_rip_redistributed(&routes);
        let (advertised, filters) = advertised::rip_sent(&redistributed, &lists, &running);
        exits.push(Exit {
            protocol: Protocol::Rip,
            vrf: None,
            name: name.into(),
            family,
            up: true,
            advertised,
            filters,
        });
    }
    Ok(exits)
}

/// Fills in the filters of the exits that miss something and whose filters are read from
/// the running configuration (OSPF's distribute-lists): a full configuration read, so only
/// when a verification found a gap.
pub async fn explain(driver: &Driver, exits: &mut [Exit], gaps: &BTreeSet<ipnet::IpNet>) {
    let Driver::Frr(d) = driver else { return };
    let ospf = exits
        .iter()
        .any(|e| e.name == "router ospf" && gaps.iter().any(|g| !e.advertised.contains(g)));
    if !ospf {
        return;
    }
    if let Ok(Some(running)) = d.show("ospfd", "show running-config").await {
        let lists = advertised::ospf_distribute_lists(&running, "router ospf");
        for e in exits.iter_mut().filter(|e| e.name == "router ospf") {
            e.filters = lists.clone();
        }
    }
}

/// One exit per BIRD BGP/OSPF/RIP protocol and channel: the routes it exported. BIRD 1.x
/// runs one daemon per family (`bird`, `bird6`) whose protocols have no channels.
async fn bird(d: &BirdDriver, expected: &Expected) -> Result<Vec<Exit>, DaemonError> {
    let mut exits = vec![];
    for (i, daemon) in d.daemons.iter().enumerate() {
        let (family, export) = match d.version {
            BirdVersion::Bird2 => (None, "exported"),
            BirdVersion::Bird1 if i == 0 => (Some(Family::V4), "export"),
            BirdVersion::Bird1 => (Some(Family::V6), "export"),
        };
        let protocols =
            advertised::parse_bird_protocols(&daemon.text("show protocols all").await?, family);
        for p in protocols {
            if !expected.contains_key(&(p.protocol, None)) {
                continue;
            }
            let routes = if p.up {
                let text = daemon
                    .text(&format!("show route {export} {}", p.name))
                    .await?;
                advertised::parse_bird_routes(&text)
            } else {
                BTreeSet::new()
            };
            for (family, filter) in &p.channels {
                exits.push(Exit {
                    protocol: p.protocol,
                    vrf: None,
                    name: format!("protocol {}", p.name),
                    family: *family,
                    up: p.up,
                    advertised: routes
                        .iter()
                        .filter(|n| Family::of(n) == *family)
                        .copied()
                        .collect(),
                    filters: vec![format!("export filter {filter}")],
                });
            }
        }
    }
    Ok(exits)
}

/// Asks the daemon about its sessions and adjacencies ([`health`](super::health) parses
/// them). A daemon that does not run has none; one that does not answer leaves its kinds
/// unknown, so that its sessions are not judged gone.
pub async fn health(driver: &Driver) -> Result<Look, DaemonError> {
    tokio::time::timeout(TIMEOUT, async {
        match driver {
            Driver::Frr(d) => Ok(frr_health(d).await),
            Driver::Bird(d) => Ok(bird_health(d).await),
        }
    })
    .await
    .map_err(|_| {
        DaemonError::Unreachable(format!("no answer within {TIMEOUT:?} to a health look"))
    })?
}

/// Asks the daemon ([`health`]) and takes the answer into `tracker`: what changed since its
/// last look.
pub async fn track(
    driver: &Driver,
    tracker: &mut health::Tracker,
) -> Result<Vec<health::Transition>, DaemonError> {
    let look = health(driver).await?;
    Ok(tracker.look(std::time::SystemTime::now(), look))
}

async fn frr_health(d: &FrrDriver) -> Look {
    type Parser = fn(&str) -> Result<Vec<Session>, String>;
    let rip_v4: Parser = |t| Ok(parse::frr_rip_sources(t, Kind::Rip));
    let rip_v6: Parser = |t| Ok(parse::frr_rip_sources(t, Kind::Ripng));
    let asks: [(Kind, &str, &str, Parser); 6] = [
        (
            Kind::Bgp,
            "bgpd",
            "show bgp vrf all summary json",
            parse::frr_bgp_summary,
        ),
        (
            Kind::Ospf,
            "ospfd",
            "show ip ospf vrf all neighbor json",
            parse::frr_ospf_neighbors,
        ),
        (
            Kind::Ospf6,
            "ospf6d",
            "show ipv6 ospf6 neighbor json",
            parse::frr_ospf6_neighbors,
        ),
        (
            Kind::Isis,
            "isisd",
            "show isis neighbor json",
            parse::frr_isis_neighbors,
        ),
        (Kind::Rip, "ripd", "show ip rip status", rip_v4),
        (Kind::Ripng, "ripngd", "show ipv6 ripng status", rip_v6),
    ];
    let mut look = Look::default();
    for (kind, daemon, command, parser) in asks {
        match ask(d, daemon, command, parser).await {
            Ok(s) => look.sessions.extend(s),
            Err(e) => {
                tracing::debug!(daemon, error = %e, "no health answer");
                look.unknown.insert(kind);
            }
        }
    }
    match ask(d, "bfdd", "show bfd peers json", parse::frr_bfd_peers).await {
        Ok(bfd) => health::attach_bfd(&mut look.sessions, bfd, true),
        Err(_) => {
            look.unknown.insert(Kind::Bfd);
        }
    }
    look
}

async fn ask(
    d: &FrrDriver,
    daemon: &str,
    command: &str,
    parser: fn(&str) -> Result<Vec<Session>, String>,
) -> Result<Vec<Session>, DaemonError> {
    match d.show(daemon, command).await? {
        None => Ok(vec![]),
        Some(text) => parser(&text).map_err(malformed),
    }
}

/// BIRD: its BGP protocols, and the neighbours of the OSPF, RIP and BFD protocols it runs.
async fn bird_health(d: &BirdDriver) -> Look {
    let mut look = Look::default();
    let every = [
        Kind::Bgp,
        Kind::Ospf,
        Kind::Ospf6,
        Kind::Rip,
        Kind::Ripng,
        Kind::Bfd,
    ];
    for daemon in &d.daemons {
        let protocols = match daemon.text("show protocols all").await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(daemon = daemon.name, error = %e, "no health answer");
                look.unknown.extend(every);
                continue;
            }
        };
        let mut sessions = parse::bird_bgp(&protocols);
        let kinds = parse::bird_protocol_kinds(&protocols);
        type Ask = (
            &'static str,
            &'static str,
            fn(&str) -> Vec<Session>,
            &'static [Kind],
        );
        let asks: [Ask; 3] = [
            (
                "OSPF",
                "show ospf neighbors",
                parse::bird_ospf_neighbors,
                &[Kind::Ospf, Kind::Ospf6],
            ),
            (
                "RIP",
                "show rip neighbors",
                parse::bird_rip_neighbors,
                &[Kind::Rip, Kind::Ripng],
            ),
            (
                "BFD",
                "show bfd sessions",
                parse::bird_bfd_sessions,
                &[Kind::Bfd],
            ),
        ];
        let mut bfd = vec![];
        for (proto, command, parser, of) in asks {
            if !kinds.contains(&proto) {
                continue;
            }
            match daemon.text(command).await {
                Ok(t) if proto == "BFD" => bfd = parser(&t),
                Ok(t) => sessions.extend(parser(&t)),
                Err(e) => {
                    tracing::debug!(daemon = daemon.name, error = %e, "no health answer");
                    look.unknown.extend(of.iter().copied());
                }
            }
        }
        health::attach_bfd(&mut sessions, bfd, false);
        look.sessions.extend(sessions);
    }
    look
}
