//! The daemons' own answers about their sessions, parsed (pure). FRR answers in JSON (8.x);
//! BIRD in the text `birdc` prints, whose columns are stable across 1.6 and 2.x.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

use super::{Kind, Session, SessionKey, Since};

type Parsed = Result<Vec<Session>, String>;

fn json(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_str(text).map_err(|e| e.to_string())
}

fn vrf_of(name: &str) -> Option<String> {
    (name != "default").then(|| name.to_string())
}

fn key(kind: Kind, instance: Option<String>, peer: &str, interface: Option<&str>) -> SessionKey {
    SessionKey {
        kind,
        instance,
        peer: peer.to_string(),
        interface: interface.map(str::to_string),
    }
}

fn millis(v: &Value) -> Option<Since> {
    v.as_u64().map(|ms| Since::Ago(Duration::from_millis(ms)))
}

/// `show bgp vrf all summary json`: per VRF and address family, the peers. A peer active in
/// several families is one session; its prefix counts are summed.
pub fn frr_bgp_summary(text: &str) -> Parsed {
    let mut out: Vec<Session> = vec![];
    let Value::Object(vrfs) = json(text)? else {
        return Err("not an object".into());
    };
    for (vrf, families) in &vrfs {
        let Value::Object(families) = families else {
            continue;
        };
        for family in families.values() {
            let Some(Value::Object(peers)) = family.get("peers") else {
                continue;
            };
            for (peer, p) in peers {
                let interface = (p["idType"] == "interface").then_some(peer.as_str());
                let k = key(Kind::Bgp, vrf_of(vrf), peer, interface);
                let state = p["state"].as_str().unwrap_or("unknown");
                let i = match out.iter().position(|s| s.key == k) {
                    Some(i) => i,
                    None => {
                        let mut s = Session::new(k, state, state == "Established");
                        s.since = millis(&p["peerUptimeMsec"]);
                        s.drops = p["connectionsDropped"].as_u64();
                        out.push(s);
                        out.len() - 1
                    }
                };
                let s = &mut out[i];
                let add = |a: Option<u64>, b: &Value| match (a, b.as_u64()) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
                s.received = add(s.received, &p["pfxRcd"]);
                s.sent = add(s.sent, &p["pfxSnt"]);
            }
        }
    }
    Ok(out)
}

/// `show bfd peers json` (bfdd).
pub fn frr_bfd_peers(text: &str) -> Parsed {
    let v = json(text)?;
    let Some(peers) = v.as_array() else {
        return Ok(vec![]);
    };
    Ok(peers
        .iter()
        .filter_map(|p| {
            let peer = p["peer"].as_str()?;
            let status = p["status"].as_str().unwrap_or("unknown");
            let vrf = p["vrf"].as_str().and_then(vrf_of);
            let mut s = Session::new(
                key(Kind::Bfd, vrf, peer, p["interface"].as_str()),
                status,
                status == "up",
            );
            let secs = if status == "up" {
                &p["uptime"]
            } else {
                &p["downtime"]
            };
            s.since = secs.as_u64().map(|s| Since::Ago(Duration::from_secs(s)));
            s.detail = p["diagnostic"]
                .as_str()
                .filter(|d| *d != "ok")
                .map(str::to_string);
            Some(s)
        })
        .collect())
}

/// OSPF's usual states of a working adjacency: Full, or 2-Way between two routers that are
/// neither DR nor BDR on a shared segment.
/// ospf6d spells it `Twoway`.
fn ospf_up(state: &str) -> bool {
    let s = state.to_ascii_lowercase();
    ["full", "2-way", "twoway"].iter().any(|p| s.starts_with(p))
}

/// `show ip ospf vrf all neighbor json` (or without `vrf all`): per router ID, its
/// adjacencies.
pub fn frr_ospf_neighbors(text: &str) -> Parsed {
    let v = json(text)?;
    let vrfs: Vec<(Option<String>, &Value)> = match v.get("neighbors") {
        Some(n) => vec![(None, n)],
        None => v
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(vrf, x)| (vrf_of(vrf), &x["neighbors"]))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut out = vec![];
    for (vrf, neighbors) in vrfs {
        let Some(neighbors) = neighbors.as_object() else {
            continue;
        };
        for (rid, adjacencies) in neighbors {
            for a in adjacencies.as_array().into_iter().flatten() {
                let state = a["nbrState"]
                    .as_str()
                    .or(a["state"].as_str())
                    .unwrap_or("unknown");
                // `eth0:10.0.0.2`: the interface and this router's address on it.
                let iface = a["ifaceName"]
                    .as_str()
                    .map(|i| i.split(':').next().unwrap_or(i));
                let mut s = Session::new(
                    key(Kind::Ospf, vrf.clone(), rid, iface),
                    state,
                    ospf_up(state),
                );
                s.since = millis(&a["upTimeInMsec"]);
                s.address = a["ifaceAddress"].as_str().map(str::to_string);
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// `show ipv6 ospf6 neighbor json`.
pub fn frr_ospf6_neighbors(text: &str) -> Parsed {
    let v = json(text)?;
    Ok(v["neighbors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            let rid = n["neighborId"].as_str()?;
            let state = n["state"].as_str().unwrap_or("unknown");
            let mut s = Session::new(
                key(Kind::Ospf6, None, rid, n["interfaceName"].as_str()),
                state,
                ospf_up(state),
            );
            s.since = n["duration"].as_str().and_then(clock).map(Since::Ago);
            Some(s)
        })
        .collect())
}

/// FRR's durations: `01:02:03`, or `1d02h03m` past a day.
pub(super) fn clock(t: &str) -> Option<Duration> {
    let parts: Vec<&str> = t.split(':').collect();
    if let [h, m, s] = parts.as_slice() {
        let n = |x: &str| x.parse::<u64>().ok();
        return Some(Duration::from_secs(n(h)? * 3600 + n(m)? * 60 + n(s)?));
    }
    let mut secs = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            'w' => 604_800,
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        secs += num.parse::<u64>().ok()? * unit;
        num.clear();
    }
    (num.is_empty() && secs > 0).then(|| Duration::from_secs(secs))
}

/// `show isis neighbor json`: per area and circuit, the adjacency (one per level).
pub fn frr_isis_neighbors(text: &str) -> Parsed {
    let v = json(text)?;
    let mut out = vec![];
    for area in v["areas"].as_array().into_iter().flatten() {
        let tag = area["area"].as_str().map(str::to_string);
        for c in area["circuits"].as_array().into_iter().flatten() {
            let Some(adj) = c["adj"].as_str() else {
                continue;
            };
            let peer = match c["level"].as_u64() {
                Some(l) => format!("{adj} level-{l}"),
                None => adj.to_string(),
            };
            let state = c["state"].as_str().unwrap_or("unknown");
            out.push(Session::new(
                key(Kind::Isis, tag.clone(), &peer, c["interface"].as_str()),
                state,
                state == "Up",
            ));
        }
    }
    Ok(out)
}

/// `show ip rip status` / `show ipv6 ripng status`: the "Routing Information Sources", each
/// up while heard within the timeout the same answer states. A long IPv6 gateway wraps its
/// counters onto the next line.
pub fn frr_rip_sources(text: &str, kind: Kind) -> Vec<Session> {
    let timeout = text
        .split_once("Timeout after ")
        .and_then(|(_, r)| r.split_whitespace().next())
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let Some((_, sources)) = text.split_once("Routing Information Sources:") else {
        return vec![];
    };
    let words: Vec<&str> = sources
        .lines()
        .skip(2) // the rest of the title line, the column header
        .take_while(|l| !l.trim_start().starts_with("Distance:"))
        .flat_map(str::split_whitespace)
        .collect();
    let mut out = vec![];
    let mut i = 0;
    while i < words.len() {
        let Ok(gateway) = words[i].parse::<IpAddr>() else {
            i += 1;
            continue;
        };
        let last = words.get(i + 4).and_then(|t| clock(t));
        let up = match (last, timeout) {
            (Some(l), Some(t)) => l <= t,
            _ => true,
        };
        out.push(Session::new(
            key(kind, None, &gateway.to_string(), None),
            if up { "heard" } else { "silent" },
            up,
        ));
        i += 5;
    }
    out
}

/// BIRD's answers have a header line per table; the `BIRD x.y ready.` greeting when read
/// through birdc.
fn bird_rows(text: &str) -> impl Iterator<Item = (Option<&str>, Vec<&str>)> {
    let mut section: Option<&str> = None;
    text.lines().filter_map(move |line| {
        if line.starts_with("BIRD ") && line.ends_with("ready.") {
            return None;
        }
        if let Some(name) = line.strip_suffix(':')
            && !name.contains(char::is_whitespace)
        {
            section = Some(name);
            return None;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let header = matches!(words.first(), Some(&"Router") | Some(&"IP") | Some(&"Name"));
        (!words.is_empty() && !header).then_some((section, words))
    })
}

/// `show protocols all` (BIRD): one session per BGP protocol, named by the protocol (its
/// neighbour's address beside it), with its prefix counts
/// summed over its channels and the last error while it is down.
pub fn bird_bgp(text: &str) -> Vec<Session> {
    let mut out: Vec<Session> = vec![];
    let mut in_bgp = false;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !line.starts_with(char::is_whitespace) {
            in_bgp = words.get(1) == Some(&"BGP");
            if in_bgp {
                // name BGP table state since info...
                let info = words.get(5..).map(|w| w.join(" ")).unwrap_or_default();
                let state = words.get(5).copied().unwrap_or("down");
                let up = words.get(3) == Some(&"up") && state == "Established";
                let mut s = Session::new(key(Kind::Bgp, None, words[0], None), state, up);
                s.since = words.get(4).map(|t| Since::Mark(t.to_string()));
                s.detail = (!up && info.len() > state.len())
                    .then(|| info[state.len()..].trim().to_string());
                out.push(s);
            }
            continue;
        }
        let Some(s) = out.last_mut().filter(|_| in_bgp) else {
            continue;
        };
        match words.as_slice() {
            ["Neighbor", "address:", a, ..] => s.address = Some(a.to_string()),
            ["Last", "error:", e @ ..] if !s.up => s.detail = Some(e.join(" ")),
            ["Routes:", imported, "imported,", rest @ ..] => {
                let n = |x: &str| x.parse::<u64>().ok();
                s.received = Some(s.received.unwrap_or(0) + n(imported).unwrap_or(0));
                // `2 exported, 0 preferred` (2.x), `1 filtered, 2 exported, …` (1.6)
                let exported = rest
                    .windows(2)
                    .find(|w| w[1].starts_with("exported"))
                    .and_then(|w| n(w[0]));
                s.sent = Some(s.sent.unwrap_or(0) + exported.unwrap_or(0));
            }
            _ => {}
        }
    }
    out
}

/// `show ospf neighbors` (BIRD): per protocol, router ID, priority, state, dead time,
/// interface, router IP. OSPFv3's router IPs are link-local IPv6.
pub fn bird_ospf_neighbors(text: &str) -> Vec<Session> {
    bird_rows(text)
        .filter_map(|(proto, w)| {
            let [rid, _pri, state, _dtime, iface, ip, ..] = w.as_slice() else {
                return None;
            };
            let kind = match ip.parse::<IpAddr>().ok()? {
                IpAddr::V4(_) => Kind::Ospf,
                IpAddr::V6(_) => Kind::Ospf6,
            };
            let mut s = Session::new(
                key(kind, proto.map(str::to_string), rid, Some(iface)),
                *state,
                ospf_up(state),
            );
            s.address = Some(ip.to_string());
            Some(s)
        })
        .collect()
}

/// `show rip neighbors` (BIRD): address, interface, metric, routes, seconds since heard.
/// BIRD drops a neighbour at its timeout, so a listed one is up.
pub fn bird_rip_neighbors(text: &str) -> Vec<Session> {
    bird_rows(text)
        .filter_map(|(proto, w)| {
            let [ip, iface, _metric, routes, ..] = w.as_slice() else {
                return None;
            };
            let kind = match ip.parse::<IpAddr>().ok()? {
                IpAddr::V4(_) => Kind::Rip,
                IpAddr::V6(_) => Kind::Ripng,
            };
            let mut s = Session::new(
                key(kind, proto.map(str::to_string), ip, Some(iface)),
                "heard",
                true,
            );
            s.received = routes.parse().ok();
            Some(s)
        })
        .collect()
}

/// `show bfd sessions` (BIRD): address, interface, state, since, intervals.
pub fn bird_bfd_sessions(text: &str) -> Vec<Session> {
    bird_rows(text)
        .filter_map(|(proto, w)| {
            let [ip, iface, state, since, ..] = w.as_slice() else {
                return None;
            };
            ip.parse::<IpAddr>().ok()?;
            let mut s = Session::new(
                key(Kind::Bfd, proto.map(str::to_string), ip, Some(iface)),
                state.to_lowercase(),
                state.eq_ignore_ascii_case("up"),
            );
            s.since = Some(Since::Mark(since.to_string()));
            Some(s)
        })
        .collect()
}

/// `show protocols` (BIRD): which kinds of protocol run, to ask only about those.
pub fn bird_protocol_kinds(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.starts_with(char::is_whitespace) && !l.starts_with("BIRD "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|kind| *kind != "Proto")
        .collect()
}
