//! Static analysis of the network team's base configuration: would the daemon drop what
//! routelb exports before it leaves the node? `routelb check` prints the findings. Pure: the
//! base's text (and its included files) and the rendered fragment data in, findings out.
//!
//! The FRR rules follow FRR 8.4's code (lib/routemap.c, lib/plist.c, lib/filter.c,
//! bgpd/bgp_route.c, ospfd/ospf_zebra.c), the BIRD rules BIRD's filter semantics; where a
//! construct cannot be evaluated statically the finding is a warning, never a silent pass.

pub mod bird;
pub mod frr;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::render::model::{FragmentData, PrefixMatch, Target};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The base drops (some of) routelb's prefixes: `check` fails.
    Error,
    /// Cannot tell, or something worth fixing that does not drop prefixes.
    Warning,
}

/// One thing found: the object of the base concerned (`neighbor 10.0.0.2 (vrf default)`,
/// `protocol bgp upstream`) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub severity: Severity,
    pub subject: String,
    pub message: String,
}

impl Finding {
    pub fn error(subject: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Error,
            subject: subject.into(),
            message: message.into(),
        }
    }

    pub fn warning(subject: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Warning,
            subject: subject.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.subject, self.message)
    }
}

/// Whether any finding fails the check.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// The protocol instance routelb exports through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Protocol {
    Bgp { vrf: Option<String> },
    Ospf,
    Isis { tag: String },
    Rip,
}

/// What routelb exports through one protocol instance: prefixes that stand for all of it, per
/// family (each pool block's first and last route, and the Services' own addresses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    pub protocol: Protocol,
    pub v4: Vec<IpNet>,
    pub v6: Vec<IpNet>,
    /// Whether routelb sets attributes (communities, local-preference, metric…) on them.
    pub attributes: bool,
}

impl Export {
    pub fn prefixes(&self, family: Family) -> &[IpNet] {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }
}

pub use crate::family::Family;

/// At most this many prefixes stand for one family of one instance.
const MAX_SAMPLES: usize = 64;

/// What the fragment exports, per protocol instance: `addresses` are the Services' addresses
/// (those some entry of the instance matches are added to the pools' own samples).
pub fn exports(data: &FragmentData, addresses: &[IpAddr]) -> Vec<Export> {
    let mut out = Vec::new();
    for t in &data.bgp {
        out.push(export_of(
            data,
            t,
            Protocol::Bgp { vrf: t.vrf.clone() },
            addresses,
        ));
    }
    if let Some(t) = &data.ospf {
        out.push(export_of(data, t, Protocol::Ospf, addresses));
    }
    for t in &data.isis {
        let tag = t.tag.clone().unwrap_or_default();
        out.push(export_of(data, t, Protocol::Isis { tag }, addresses));
    }
    if let Some(t) = &data.rip {
        out.push(export_of(data, t, Protocol::Rip, addresses));
    }
    out
}

fn export_of(data: &FragmentData, t: &Target, protocol: Protocol, addresses: &[IpAddr]) -> Export {
    let mut v4 = BTreeSet::new();
    let mut v6 = BTreeSet::new();
    for e in &t.entries {
        let Some(list) = data.prefix_lists.iter().find(|l| l.frr_name == e.frr_list) else {
            continue;
        };
        let matches = list
            .v4
            .iter()
            .filter(|_| t.v4)
            .chain(list.v6.iter().filter(|_| t.v6));
        for m in matches {
            let Some(block) = block_of(m) else { continue };
            for net in samples(&block, m.max_len, addresses) {
                match net {
                    IpNet::V4(_) => v4.insert(net),
                    IpNet::V6(_) => v6.insert(net),
                };
            }
        }
    }
    let attributes = t.entries.iter().any(|e| {
        !e.communities.is_empty()
            || !e.large_communities.is_empty()
            || e.local_preference.is_some()
            || e.med.is_some()
            || !e.prepend.is_empty()
            || e.metric.is_some()
            || e.metric_type.is_some()
    });
    Export {
        protocol,
        v4: v4.into_iter().take(MAX_SAMPLES).collect(),
        v6: v6.into_iter().take(MAX_SAMPLES).collect(),
        attributes,
    }
}

fn block_of(m: &PrefixMatch) -> Option<IpNet> {
    let addr: IpAddr = m.prefix.split('/').next()?.parse().ok()?;
    IpNet::new(addr, m.len).ok()
}

/// The routes a match stands for: the first and last `len`-long routes of the block, and the
/// addresses inside it (as the `len`-long route that holds them).
fn samples(block: &IpNet, len: u8, addresses: &[IpAddr]) -> Vec<IpNet> {
    let at = |a: IpAddr| IpNet::new(a, len).ok().map(|n| n.trunc());
    let mut out: Vec<IpNet> = [block.network(), block.broadcast()]
        .into_iter()
        .filter_map(at)
        .collect();
    out.extend(
        addresses
            .iter()
            .filter(|a| block.contains(*a))
            .filter_map(|a| at(*a)),
    );
    out
}

/// `a`, `a and b`, `a, b and 3 more`: a few prefixes for a message.
pub(crate) fn some_prefixes(nets: &[IpNet]) -> String {
    let shown: Vec<String> = nets.iter().take(2).map(|n| n.to_string()).collect();
    match nets.len() {
        0 => String::new(),
        1 => shown[0].clone(),
        2 => format!("{} and {}", shown[0], shown[1]),
        n => format!("{}, {} and {} more", shown[0], shown[1], n - 2),
    }
}
