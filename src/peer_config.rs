//! `routelb peer-config` (pure): what the upstream router needs to accept from routelb's
//! nodes, rendered from the same pools and policies as the nodes' fragments — an inbound
//! filter that accepts exactly the pools' prefixes at the lengths routelb announces them (host
//! routes, or the pool's aggregates), a maximum-prefix limit from the pools' sizes with
//! headroom, and the communities the policies attach.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::api::{AddressPool, RoutingPolicy};
use crate::render::DaemonKind;
use crate::render::model::{FragmentData, PrefixMatch, RenderInput};

/// What the nodes may announce through BGP, per family.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeerFilter {
    /// Every route inside each prefix exactly its `announced` long.
    pub v4: Vec<Accepted>,
    pub v6: Vec<Accepted>,
    /// Standard and large communities the policies attach (per-service ones are ranges, not
    /// listed).
    pub communities: BTreeSet<(u16, u16)>,
    pub large_communities: BTreeSet<(u32, u32, u32)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Accepted {
    /// `pool web`.
    pub source: String,
    pub prefix: String,
    pub len: u8,
    pub announced: u8,
}

impl Accepted {
    /// How many routes of this shape there can be: one per announced-length block in the
    /// prefix.
    fn routes(&self) -> u64 {
        1u64.checked_shl(u32::from(self.announced - self.len))
            .unwrap_or(u64::MAX)
    }
}

/// Options of the router side.
#[derive(Clone, Debug)]
pub struct RouterSide {
    /// The router's AS and the peer-group (or neighbor) of the nodes: with both, the output
    /// includes the `router bgp` lines that apply the filter and the limit (FRR).
    pub asn: Option<u32>,
    pub peer_group: Option<String>,
    /// Headroom over the pools' sizes for the maximum-prefix limit, in percent.
    pub headroom_percent: u32,
}

/// FRR's and BIRD's largest limit.
const MAX_LIMIT: u64 = u32::MAX as u64;

/// The filter for `pools` as `policies` export them from any node (node selectors aside), and
/// the policies' problems (an invalid policy exports nothing).
pub fn from_manifests(
    pools: &[AddressPool],
    policies: &[RoutingPolicy],
) -> (PeerFilter, Vec<crate::render::model::Problem>) {
    let built = crate::render::build(&RenderInput {
        node: None,
        local_endpoints: &Default::default(),
        node_labels: &Default::default(),
        lb_interface: "kube-lb0",
        pools,
        policies,
        services: &[],
        instances: &crate::offline::assume_all_instances(64512),
    });
    (peer_filter(&built.data), built.problems)
}

/// The filter for what the BGP targets of `data` export: each pool list's prefixes, at the
/// length routelb announces them (the list's longest: host routes, or the aggregate).
pub fn peer_filter(data: &FragmentData) -> PeerFilter {
    let exported: BTreeSet<&str> = data
        .bgp
        .iter()
        .flat_map(|t| &t.entries)
        .map(|e| e.frr_list.as_str())
        .collect();
    let mut out = PeerFilter::default();
    let accepted = |source: &str, m: &PrefixMatch| Accepted {
        source: source.to_string(),
        prefix: m.prefix.clone(),
        len: m.len,
        announced: m.max_len,
    };
    for list in data
        .prefix_lists
        .iter()
        .filter(|l| exported.contains(l.frr_name.as_str()) && l.source.starts_with("pool "))
    {
        out.v4
            .extend(list.v4.iter().map(|m| accepted(&list.source, m)));
        out.v6
            .extend(list.v6.iter().map(|m| accepted(&list.source, m)));
    }
    for e in data.bgp.iter().flat_map(|t| &t.entries) {
        out.communities
            .extend(e.communities.iter().map(|c| (c.asn, c.value)));
        out.large_communities.extend(
            e.large_communities
                .iter()
                .map(|c| (c.global, c.local1, c.local2)),
        );
    }
    out
}

/// The maximum-prefix limit for `accepted`: every route the pools allow, plus headroom
/// (at least 10), at most FRR's and BIRD's largest.
pub fn limit(accepted: &[Accepted], headroom_percent: u32) -> Option<u64> {
    if accepted.is_empty() {
        return None;
    }
    let routes = accepted
        .iter()
        .fold(0u64, |n, a| n.saturating_add(a.routes()));
    let extra = (routes.saturating_mul(u64::from(headroom_percent)) / 100).max(10);
    Some(routes.saturating_add(extra).min(MAX_LIMIT))
}

/// The router's configuration, for FRR or BIRD 2 (a router running BIRD 1.x takes the BIRD
/// 2 sets, one family per daemon, by hand).
pub fn render(daemon: DaemonKind, f: &PeerFilter, router: &RouterSide) -> String {
    match daemon {
        DaemonKind::Frr => render_frr(f, router),
        DaemonKind::Bird | DaemonKind::Bird1 => render_bird(f, router),
    }
}

fn header(out: &mut String, comment: &str) {
    let _ = writeln!(
        out,
        "{comment} routelb peer-config (routelb {}): for the router routelb's nodes peer with.\n\
         {comment} Accepts exactly what routelb announces from the pools, at the lengths it\n\
         {comment} announces them, and nothing else; the limit allows every such route plus headroom.",
        env!("CARGO_PKG_VERSION")
    );
}

/// `ge N le N` unless the prefix is that long already.
fn frr_lengths(a: &Accepted) -> String {
    if a.announced > a.len {
        format!(" ge {0} le {0}", a.announced)
    } else {
        String::new()
    }
}

fn render_frr(f: &PeerFilter, router: &RouterSide) -> String {
    let mut out = String::new();
    header(&mut out, "!");
    for (family, list, accepted) in [("ip", "V4", &f.v4), ("ipv6", "V6", &f.v6)] {
        let mut source = "";
        for (i, a) in accepted.iter().enumerate() {
            if a.source != source {
                source = &a.source;
                let _ = writeln!(out, "! {source}");
            }
            let _ = writeln!(
                out,
                "{family} prefix-list ROUTELB-PEER-{list} seq {} permit {}{}",
                5 * (i + 1),
                a.prefix,
                frr_lengths(a)
            );
        }
    }
    for (list, accepted) in [("V4", &f.v4), ("V6", &f.v6)] {
        if accepted.is_empty() {
            continue;
        }
        let matcher = if list == "V4" { "ip" } else { "ipv6" };
        let _ = writeln!(
            out,
            "route-map ROUTELB-PEER-IN-{list} permit 10\n match {matcher} address prefix-list ROUTELB-PEER-{list}\nexit"
        );
    }
    for (i, (asn, value)) in f.communities.iter().enumerate() {
        let _ = writeln!(
            out,
            "bgp community-list standard ROUTELB-PEER seq {} permit {asn}:{value}",
            5 * (i + 1)
        );
    }
    for (i, (g, l1, l2)) in f.large_communities.iter().enumerate() {
        let _ = writeln!(
            out,
            "bgp large-community-list standard ROUTELB-PEER-LARGE seq {} permit {g}:{l1}:{l2}",
            5 * (i + 1)
        );
    }
    let families = [
        ("ipv4 unicast", "V4", limit(&f.v4, router.headroom_percent)),
        ("ipv6 unicast", "V6", limit(&f.v6, router.headroom_percent)),
    ];
    match (router.asn, &router.peer_group) {
        (Some(asn), Some(group)) => {
            let _ = writeln!(out, "router bgp {asn}");
            for (af, list, max) in families {
                let Some(max) = max else { continue };
                let _ = writeln!(
                    out,
                    " address-family {af}\n  neighbor {group} route-map ROUTELB-PEER-IN-{list} in\n  neighbor {group} maximum-prefix {max} 90\n exit-address-family"
                );
            }
            let _ = writeln!(out, "exit");
        }
        _ => {
            let _ = writeln!(
                out,
                "! In `router bgp`, for the nodes' neighbors or peer-group (--router-as and --peer-group write these):"
            );
            for (af, list, max) in families {
                let Some(max) = max else { continue };
                let _ = writeln!(
                    out,
                    "!  address-family {af}\n!   neighbor NODES route-map ROUTELB-PEER-IN-{list} in\n!   neighbor NODES maximum-prefix {max} 90"
                );
            }
        }
    }
    out
}

fn render_bird(f: &PeerFilter, router: &RouterSide) -> String {
    let mut out = String::new();
    header(&mut out, "#");
    let sets = [("V4", &f.v4, "NET_IP4"), ("V6", &f.v6, "NET_IP6")];
    for (list, accepted, _) in sets {
        if accepted.is_empty() {
            continue;
        }
        let sources: BTreeSet<&str> = accepted.iter().map(|a| a.source.as_str()).collect();
        let items: Vec<String> = accepted
            .iter()
            .map(|a| format!("{}{{{},{}}}", a.prefix, a.announced, a.announced))
            .collect();
        let _ = writeln!(
            out,
            "# {}\ndefine ROUTELB_PEER_{list} = [ {} ];",
            sources.into_iter().collect::<Vec<_>>().join(", "),
            items.join(", ")
        );
        if let Some(max) = limit(accepted, router.headroom_percent) {
            let _ = writeln!(out, "define ROUTELB_PEER_LIMIT_{list} = {max};");
        }
    }
    let _ = writeln!(out, "filter routelb_peer_in\n{{");
    for (list, accepted, net_type) in sets {
        if accepted.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "  if net.type = {net_type} && net ~ ROUTELB_PEER_{list} then accept;"
        );
    }
    let _ = writeln!(
        out,
        "  reject;\n}}\n# In each node's channel: import filter routelb_peer_in; import limit ROUTELB_PEER_LIMIT_V4 action restart;"
    );
    out
}

#[cfg(test)]
mod tests;
