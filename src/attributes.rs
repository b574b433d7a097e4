//! Per-service routing attributes: what a Service asks for with annotations, what a
//! RoutingPolicy grants it (`spec.serviceOverrides`), and so what is rendered and what is
//! refused. Pure: agents render what [`evaluate`] accepts; the allocator reports what
//! [`crate::render::attributes::Judge`] refuses (with the same [`evaluate`]) on the Service
//! itself, so what the Service is told is what the daemons get.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use crate::api::values::{self, Community, LargeCommunity, Span};
use crate::api::{AttributeAllowance, Protocol, RoutingPolicy, ValueRange, annotations};
use crate::ipam::ServiceRequest;

/// Each per-service annotation and the protocol whose routes it changes.
pub const ANNOTATIONS: [(&str, Protocol); 7] = [
    (annotations::BGP_COMMUNITIES, Protocol::Bgp),
    (annotations::BGP_LARGE_COMMUNITIES, Protocol::Bgp),
    (annotations::BGP_LOCAL_PREFERENCE, Protocol::Bgp),
    (annotations::BGP_MED, Protocol::Bgp),
    (annotations::BGP_AS_PATH_PREPEND, Protocol::Bgp),
    (annotations::OSPF_METRIC, Protocol::Ospf),
    (annotations::ISIS_METRIC, Protocol::Isis),
];

/// The longest value read from a single-number annotation.
const MAX_NUMBER_LEN: usize = 10;

/// What a Service asks for (its per-service annotations, raw) and who it is, for grants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Annotation → value, only the annotations of [`ANNOTATIONS`].
    pub asks: BTreeMap<&'static str, String>,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub namespace_labels: BTreeMap<String, String>,
}

impl Request {
    pub fn new(
        service_annotations: &BTreeMap<String, String>,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        namespace_labels: &BTreeMap<String, String>,
    ) -> Request {
        let asks = ANNOTATIONS
            .iter()
            .filter_map(|(a, _)| service_annotations.get(*a).map(|v| (*a, v.clone())))
            .collect();
        Request {
            asks,
            namespace: namespace.to_string(),
            labels: labels.clone(),
            namespace_labels: namespace_labels.clone(),
        }
    }

    /// The request of a Service as IPAM reads it (`request` carries its labels).
    pub fn of(svc: &Service, request: &ServiceRequest) -> Request {
        Request::new(
            svc.annotations(),
            &request.key.namespace,
            &request.labels,
            &request.namespace_labels,
        )
    }

    pub fn is_empty(&self) -> bool {
        self.asks.is_empty()
    }

    /// The annotations asking something of `protocol`'s routes.
    pub fn asks_of(&self, protocol: Protocol) -> impl Iterator<Item = (&'static str, &str)> {
        self.asks
            .iter()
            .filter(move |(a, _)| protocol_of(a) == Some(protocol))
            .map(|(a, v)| (*a, v.as_str()))
    }

    /// The protocols the Service asks something of.
    pub fn protocols(&self) -> Vec<Protocol> {
        let mut out: Vec<Protocol> = self.asks.keys().filter_map(|a| protocol_of(a)).collect();
        out.sort();
        out.dedup();
        out
    }
}

fn protocol_of(annotation: &str) -> Option<Protocol> {
    ANNOTATIONS
        .iter()
        .find(|(a, _)| *a == annotation)
        .map(|(_, p)| *p)
}

/// What is granted for one protocol's routes of one Service. Lists add to the policy's own;
/// single values replace the policy's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    pub local_preference: Option<u32>,
    pub med: Option<u32>,
    pub as_path_prepend: Option<u8>,
    /// OSPF or IS-IS metric.
    pub metric: Option<u32>,
}

impl Accepted {
    pub fn is_empty(&self) -> bool {
        *self == Accepted::default()
    }
}

/// A request not honoured, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub annotation: &'static str,
    pub why: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.annotation, self.why)
    }
}

/// What `policy` grants `request` for `protocol`'s routes, and what it refuses. Only the
/// annotations of `protocol` are read.
pub fn evaluate(
    request: &Request,
    protocol: Protocol,
    policy: &RoutingPolicy,
) -> (Accepted, Vec<Refusal>) {
    let name = policy.name_any();
    let grants = applicable(policy, request);
    let mut accepted = Accepted::default();
    let mut refused = Vec::new();
    for (annotation, value) in request.asks_of(protocol) {
        let mut refuse = |why: String| {
            refused.push(Refusal {
                annotation,
                why: format!("{why} (policy {name})"),
            })
        };
        match annotation {
            annotations::BGP_COMMUNITIES => {
                let ranges = spans(&grants, |g| &g.bgp_communities);
                let (ok, no) = values::listed_values(value, &ranges, "community");
                accepted.communities = ok;
                no.into_iter().for_each(&mut refuse);
            }
            annotations::BGP_LARGE_COMMUNITIES => {
                let ranges = spans(&grants, |g| &g.bgp_large_communities);
                let (ok, no) = values::listed_values(value, &ranges, "large community");
                accepted.large_communities = ok;
                no.into_iter().for_each(&mut refuse);
            }
            _ => {
                let range_of = range_field(annotation);
                match number(value, &grants, range_of) {
                    Ok(v) => match annotation {
                        annotations::BGP_LOCAL_PREFERENCE => accepted.local_preference = Some(v),
                        annotations::BGP_MED => accepted.med = Some(v),
                        // Ranges are bounded to 10 by validation.
                        annotations::BGP_AS_PATH_PREPEND => {
                            accepted.as_path_prepend = u8::try_from(v).ok()
                        }
                        _ => accepted.metric = Some(v),
                    },
                    Err(why) => refuse(why),
                }
            }
        }
    }
    (accepted, refused)
}

/// The allowance of the `serviceOverrides` field an annotation with a single number reads.
fn range_field(annotation: &str) -> fn(&AttributeAllowance) -> Option<ValueRange> {
    match annotation {
        annotations::BGP_LOCAL_PREFERENCE => |g| g.bgp_local_preference,
        annotations::BGP_MED => |g| g.bgp_med,
        annotations::BGP_AS_PATH_PREPEND => |g| g.bgp_as_path_prepend,
        annotations::OSPF_METRIC => |g| g.ospf_metric,
        _ => |g| g.isis_metric,
    }
}

/// A single number, if one of `grants` allows it.
fn number(
    value: &str,
    grants: &[&AttributeAllowance],
    range_of: fn(&AttributeAllowance) -> Option<ValueRange>,
) -> Result<u32, String> {
    let v = value.trim();
    if v.is_empty() || v.len() > MAX_NUMBER_LEN || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{} is not a number", values::shown(value)));
    }
    let n: u32 = v
        .parse()
        .map_err(|_| format!("{v} is out of range (at most {})", u32::MAX))?;
    let ranges: Vec<ValueRange> = grants.iter().filter_map(|g| range_of(g)).collect();
    if ranges.is_empty() {
        return Err("not granted to this Service".into());
    }
    if ranges.iter().any(|r| r.contains(n)) {
        return Ok(n);
    }
    let shown: Vec<String> = ranges
        .iter()
        .map(|r| format!("{}-{}", r.min, r.max))
        .collect();
    Err(format!(
        "{n} is outside what is granted to this Service ({})",
        shown.join(", ")
    ))
}

/// The parsed ranges of one community field over `grants` (ranges that do not parse grant
/// nothing; they make the policy invalid anyway).
fn spans<T: std::str::FromStr<Err = values::ValueError> + Ord + Copy>(
    grants: &[&AttributeAllowance],
    field: impl Fn(&AttributeAllowance) -> &Vec<String>,
) -> Vec<Span<T>> {
    grants
        .iter()
        .flat_map(|g| field(g).iter().filter_map(|r| r.parse().ok()))
        .collect()
}

/// The allowances of `policy` that apply to the Service: the one for every Service, and each
/// grant whose namespaces and selectors pick it.
fn applicable<'p>(policy: &'p RoutingPolicy, request: &Request) -> Vec<&'p AttributeAllowance> {
    let Some(o) = &policy.spec.service_overrides else {
        return vec![];
    };
    let matches = |sel: &Option<_>, labels: &BTreeMap<String, String>| match sel {
        None => true,
        Some(s) => Selector::try_from(Clone::clone(s)).is_ok_and(|s: Selector| s.matches(labels)),
    };
    std::iter::once(&o.allowed)
        .chain(
            o.grants
                .iter()
                .filter(|g| g.namespaces.is_empty() || g.namespaces.contains(&request.namespace))
                .filter(|g| matches(&g.namespace_selector, &request.namespace_labels))
                .filter(|g| matches(&g.service_selector, &request.labels))
                .map(|g| &g.allowed),
        )
        .collect()
}

pub fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Bgp => "BGP",
        Protocol::Ospf => "OSPF",
        Protocol::Isis => "IS-IS",
        Protocol::Rip => "RIP",
    }
}

/// The `routelb.io/refused-attributes` value: every refusal, `; `-separated, cut to a size
/// an annotation and an Event note hold.
pub fn summary(refused: &[Refusal]) -> Option<String> {
    const MAX: usize = 1024;
    if refused.is_empty() {
        return None;
    }
    let mut out = String::new();
    for (i, r) in refused.iter().enumerate() {
        let item = r.to_string();
        let sep = if out.is_empty() { "" } else { "; " };
        if out.len() + sep.len() + item.len() > MAX {
            out.push_str(&format!("{sep}and {} more", refused.len() - i));
            break;
        }
        out.push_str(sep);
        out.push_str(&item);
    }
    Some(out)
}
