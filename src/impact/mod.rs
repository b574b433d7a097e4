//! What a change of fragment does to the routing daemon (pure), for `routelb plan`: the exact
//! lines that change, and for each what the daemon does with it — for FRR which route-maps
//! are re-evaluated and for which peers, whether a peer gets a ROUTE-REFRESH; for BIRD which
//! protocols `configure` reconfigures (and re-exports through) or restarts. The rules are
//! those measured on the real daemons (tests/plan.rs pins each one), not read from manuals.

pub mod bird;
pub mod cluster;
pub mod frr;
pub mod live;
#[cfg(test)]
mod tests;

use std::fmt;

/// One change and what it does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The object changed: `ip prefix-list ROUTELB-…`, `route-map ROUTELB-BGP-V4 permit 10`,
    /// `function routelb_export_bgp`.
    pub object: String,
    /// The lines as they are sent (FRR: from configuration mode, context lines indented) or
    /// as the file changes (BIRD: `-` and `+` lines).
    pub lines: Vec<String>,
    pub effects: Vec<Effect>,
}

impl Step {
    /// A step whose effects, when there are none, say that nothing uses the object.
    pub fn new(
        object: String,
        lines: Vec<String>,
        effects: std::collections::BTreeSet<Effect>,
    ) -> Step {
        let effects = if effects.is_empty() {
            vec![Effect::Unused]
        } else {
            effects.into_iter().collect()
        };
        Step {
            object,
            lines,
            effects,
        }
    }
}

/// What the daemon does because of a step.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    /// bgpd re-evaluates the connected routes it redistributes in this `router bgp` and
    /// address family, after its route-map delay timer: UPDATEs and withdrawals for the
    /// prefixes whose outcome changes.
    BgpRedistribution { scope: String },
    /// bgpd re-runs a peer's (or peer-group's) outbound policy: UPDATEs and withdrawals for
    /// the prefixes whose outcome changes.
    BgpOutbound { scope: String, peer: String },
    /// bgpd re-runs a peer's inbound policy by asking the peer for its routes again
    /// (ROUTE-REFRESH), or from the copy soft-reconfiguration inbound keeps.
    BgpInbound {
        scope: String,
        peer: String,
        route_refresh: bool,
    },
    /// ospfd/ospf6d originates or flushes the external LSAs of the prefixes whose outcome
    /// changes.
    OspfExternal { scope: String },
    /// isisd regenerates its LSP.
    IsisLsp { scope: String },
    /// ripd/ripngd sends a triggered update.
    RipUpdate { scope: String },
    /// BIRD reconfigures the protocol in place and feeds all its routes through the new
    /// export filter again (export reload; BGP: enhanced route refresh markers around them).
    BirdReexport { protocol: String },
    /// BIRD reconfigures the protocol and reloads its import: a ROUTE-REFRESH to a BGP peer
    /// that supports it.
    BirdReimport { protocol: String },
    /// BIRD shuts the protocol down and starts it again: a BGP session or OSPF adjacency
    /// resets, its routes are withdrawn meanwhile.
    BirdRestart { protocol: String },
    /// Nothing uses the object (yet): no routing effect of its own.
    Unused,
}

impl Effect {
    /// Whether a session or adjacency goes down because of it.
    pub fn resets(&self) -> bool {
        matches!(self, Effect::BirdRestart { .. })
    }

    /// Whether a peer is asked to send its routes again.
    pub fn refreshes(&self) -> bool {
        matches!(
            self,
            Effect::BgpInbound {
                route_refresh: true,
                ..
            } | Effect::BirdReimport { .. }
        )
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::BgpRedistribution { scope } => write!(
                f,
                "bgpd re-evaluates the connected routes redistributed in {scope} (after its route-map delay timer): updates for changed prefixes only; no session reset"
            ),
            Effect::BgpOutbound { scope, peer } => write!(
                f,
                "bgpd re-runs the outbound policy of {peer} ({scope}): updates for changed prefixes only; no session reset, no ROUTE-REFRESH"
            ),
            Effect::BgpInbound {
                scope,
                peer,
                route_refresh: true,
            } => write!(
                f,
                "bgpd re-runs the inbound policy of {peer} ({scope}) by sending it a ROUTE-REFRESH: the peer sends its routes again; no session reset"
            ),
            Effect::BgpInbound { scope, peer, .. } => write!(
                f,
                "bgpd re-runs the inbound policy of {peer} ({scope}) from the routes soft-reconfiguration inbound keeps; no ROUTE-REFRESH, no session reset"
            ),
            Effect::OspfExternal { scope } => write!(
                f,
                "{scope}: external LSAs originated or flushed for changed prefixes; adjacencies stay"
            ),
            Effect::IsisLsp { scope } => {
                write!(f, "{scope}: the LSP is regenerated; adjacencies stay")
            }
            Effect::RipUpdate { scope } => write!(f, "{scope}: a triggered update"),
            Effect::BirdReexport { protocol } => write!(
                f,
                "BIRD reloads protocol {protocol}'s export: every route it exports is sent again through the new filter (BGP: between route-refresh markers); the session stays"
            ),
            Effect::BirdReimport { protocol } => write!(
                f,
                "BIRD reloads protocol {protocol}'s import: a ROUTE-REFRESH request to its BGP peer; the session stays"
            ),
            Effect::BirdRestart { protocol } => write!(
                f,
                "BIRD RESTARTS protocol {protocol}: the routes it carries are withdrawn and announced again (a session or adjacency of its own resets)"
            ),
            Effect::Unused => write!(f, "nothing uses it: no routing effect"),
        }
    }
}

/// A plan's figures, as its last line says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub steps: usize,
    pub lines: usize,
    pub resets: usize,
    pub refreshes: usize,
}

pub fn summary(steps: &[Step]) -> Summary {
    let effects = || steps.iter().flat_map(|s| &s.effects);
    Summary {
        steps: steps.len(),
        lines: steps.iter().map(|s| s.lines.len()).sum(),
        resets: effects().filter(|e| e.resets()).count(),
        refreshes: effects().filter(|e| e.refreshes()).count(),
    }
}

/// The plan as text: each step's lines, then its effects.
pub fn text(steps: &[Step]) -> String {
    let mut out = String::new();
    for s in steps {
        out.push_str(&format!("{}\n", s.object));
        for l in &s.lines {
            out.push_str(&format!("    {l}\n"));
        }
        for e in &s.effects {
            out.push_str(&format!("  → {e}\n"));
        }
    }
    out.push_str(&summary_line(steps));
    out.push('\n');
    out
}

/// `N change(s), M line(s); R session reset(s), F ROUTE-REFRESH(es)`.
pub fn summary_line(steps: &[Step]) -> String {
    let t = summary(steps);
    format!(
        "{} change(s), {} line(s); {} session reset(s), {} ROUTE-REFRESH(es)",
        t.steps, t.lines, t.resets, t.refreshes
    )
}
