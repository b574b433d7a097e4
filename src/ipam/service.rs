//! What IPAM needs to know about a Service, and how to read it from a Kubernetes Service.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};

use super::error::RequestError;
use super::range::Family;
use crate::api::annotations;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FamilyPolicy {
    #[default]
    SingleStack,
    PreferDualStack,
    RequireDualStack,
}

/// The sharing scope of keys shared across namespaces: no namespace is named `*`.
pub(super) const ACROSS_NAMESPACES: &str = "*";

/// A service port as far as sharing is concerned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Port {
    pub protocol: String,
    pub port: i32,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}

#[derive(Clone, Debug)]
pub struct ServiceRequest {
    pub key: ServiceKey,
    /// Creation time in seconds; older services win conflicts.
    pub created: i64,
    pub labels: BTreeMap<String, String>,
    pub namespace_labels: BTreeMap<String, String>,
    /// `spec.ipFamilies`, in order.
    pub families: Vec<Family>,
    pub family_policy: FamilyPolicy,
    pub requested_pool: Option<String>,
    /// Addresses from `routelb.io/addresses` or `spec.loadBalancerIP`, or why they are unreadable.
    pub requested: Result<Vec<IpAddr>, RequestError>,
    pub sharing_key: Option<String>,
    /// `routelb.io/share-across-namespaces: "true"`: the sharing key's group spans namespaces.
    pub share_across_namespaces: bool,
    pub ports: Vec<Port>,
    /// What `status.loadBalancer.ingress` holds now.
    pub current: Vec<IpAddr>,
    /// What `routelb.io/pool-used` says now.
    pub current_pool: Option<String>,
}

impl Default for ServiceRequest {
    fn default() -> Self {
        ServiceRequest {
            key: ServiceKey::new("default", ""),
            created: 0,
            labels: BTreeMap::new(),
            namespace_labels: BTreeMap::new(),
            families: vec![],
            family_policy: FamilyPolicy::SingleStack,
            requested_pool: None,
            requested: Ok(vec![]),
            sharing_key: None,
            share_across_namespaces: false,
            ports: vec![],
            current: vec![],
            current_pool: None,
        }
    }
}

impl ServiceRequest {
    pub(super) fn order_key(&self) -> (i64, &str, &str) {
        (self.created, &self.key.namespace, &self.key.name)
    }

    /// Where its sharing key is looked up: its namespace, or every namespace
    /// ([`ACROSS_NAMESPACES`]) when it shares across them.
    pub(super) fn sharing_scope(&self) -> &str {
        if self.share_across_namespaces {
            ACROSS_NAMESPACES
        } else {
            &self.key.namespace
        }
    }

    fn primary_family(&self) -> Family {
        self.families
            .first()
            .copied()
            .or_else(|| {
                self.requested
                    .as_ref()
                    .ok()
                    .and_then(|r| r.first())
                    .map(Family::of)
            })
            .unwrap_or(Family::V4)
    }

    /// Families the service would like an address of, in its preferred order.
    pub fn wanted_families(&self) -> Vec<Family> {
        let primary = self.primary_family();
        match self.family_policy {
            FamilyPolicy::SingleStack => vec![primary],
            FamilyPolicy::PreferDualStack | FamilyPolicy::RequireDualStack => {
                vec![primary, primary.other()]
            }
        }
    }

    /// Families the service cannot do without.
    pub fn required_families(&self) -> Vec<Family> {
        match self.family_policy {
            FamilyPolicy::SingleStack => vec![self.primary_family()],
            FamilyPolicy::PreferDualStack => vec![],
            FamilyPolicy::RequireDualStack => self.wanted_families(),
        }
    }

    /// Requested addresses must be of wanted families, at most one per family.
    pub(super) fn check_families(&self, requested: &[IpAddr]) -> Result<(), RequestError> {
        let wanted = self.wanted_families();
        for (i, a) in requested.iter().enumerate() {
            let f = Family::of(a);
            if !wanted.contains(&f) {
                return Err(RequestError::WrongFamily {
                    address: *a,
                    family: f,
                    only: wanted[0],
                });
            }
            if requested[..i].iter().any(|b| Family::of(b) == f) {
                return Err(RequestError::FamilyTwice(f));
            }
        }
        Ok(())
    }

    /// Reads a Kubernetes Service. `namespace_labels` are the labels of its namespace.
    pub fn from_service(
        svc: &Service,
        namespace_labels: &BTreeMap<String, String>,
    ) -> ServiceRequest {
        let meta = &svc.metadata;
        let (no_annotations, no_spec) = (BTreeMap::new(), ServiceSpec::default());
        let ann = meta.annotations.as_ref().unwrap_or(&no_annotations);
        let spec = svc.spec.as_ref().unwrap_or(&no_spec);
        let mut requested = requested_addresses(ann, spec);
        // A name too long makes the request invalid, unless it already is.
        let mut name = |k: &'static str| match name_annotation(ann, k) {
            Ok(v) => v,
            Err(e) => {
                if requested.is_ok() {
                    requested = Err(e);
                }
                None
            }
        };
        let requested_pool = name(annotations::POOL);
        let sharing_key = name(annotations::SHARING_KEY);
        let current_pool = name(annotations::POOL_USED);
        ServiceRequest {
            key: ServiceKey::new(
                meta.namespace.clone().unwrap_or_default(),
                meta.name.clone().unwrap_or_default(),
            ),
            created: meta
                .creation_timestamp
                .as_ref()
                .map_or(i64::MAX, |t| t.0.as_second()),
            labels: meta.labels.clone().unwrap_or_default(),
            namespace_labels: namespace_labels.clone(),
            families: families(spec),
            family_policy: family_policy(spec),
            requested_pool,
            requested,
            sharing_key,
            share_across_namespaces: ann
                .get(annotations::SHARE_ACROSS_NAMESPACES)
                .is_some_and(|v| v.trim() == "true"),
            ports: ports(spec),
            current: ingress_ips(svc),
            current_pool,
        }
    }
}

/// `spec.ipFamilies`, in order, those routelb knows.
fn families(spec: &ServiceSpec) -> Vec<Family> {
    spec.ip_families
        .iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        })
        .collect()
}

fn family_policy(spec: &ServiceSpec) -> FamilyPolicy {
    match spec.ip_family_policy.as_deref() {
        Some("PreferDualStack") => FamilyPolicy::PreferDualStack,
        Some("RequireDualStack") => FamilyPolicy::RequireDualStack,
        _ => FamilyPolicy::SingleStack,
    }
}

/// The addresses asked for: `routelb.io/addresses`, else a non-empty `spec.loadBalancerIP`.
fn requested_addresses(
    ann: &BTreeMap<String, String>,
    spec: &ServiceSpec,
) -> Result<Vec<IpAddr>, RequestError> {
    match (
        ann.get(annotations::ADDRESSES),
        spec.load_balancer_ip.as_deref(),
    ) {
        (Some(list), _) => parse_address_list(list),
        (None, Some(ip)) if !ip.is_empty() => parse_address_list(ip),
        _ => Ok(vec![]),
    }
}

fn ports(spec: &ServiceSpec) -> Vec<Port> {
    spec.ports
        .iter()
        .flatten()
        .map(|p| Port {
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            port: p.port,
        })
        .collect()
}

/// A pool name or sharing key from annotation `k`: trimmed, `None` when absent or blank. One
/// longer than any legal one is a bad request, refused without echoing it (it would fill every
/// message that names it).
fn name_annotation(
    ann: &BTreeMap<String, String>,
    k: &'static str,
) -> Result<Option<String>, RequestError> {
    let Some(v) = ann.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.len() > MAX_NAME_ANNOTATION {
        return Err(RequestError::NameTooLong {
            annotation: k,
            len: v.len(),
        });
    }
    Ok(Some(v.to_string()))
}

/// The longest pool name (a DNS-1123 subdomain) or sharing key read from an annotation.
pub const MAX_NAME_ANNOTATION: usize = 253;

/// The addresses in a Service's `status.loadBalancer.ingress`.
pub fn ingress_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ing| {
            ing.iter()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn parse_address_list(list: &str) -> Result<Vec<IpAddr>, RequestError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpAddr>().map_err(|_| RequestError::NotAnAddress {
                value: s.chars().take(64).collect(),
            })
        })
        .collect()
}

/// Whether routelb serves this Service: type LoadBalancer, and our class or (unless
/// `require_class`) no class at all. Services of any other class are never touched.
pub fn serves(svc: &Service, class: &str, require_class: bool) -> bool {
    let Some(spec) = &svc.spec else { return false };
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return false;
    }
    match spec.load_balancer_class.as_deref() {
        Some(c) => c == class,
        None => !require_class,
    }
}

/// Services routelb manages: those it serves, plus class-less ones it already gave an address
/// to (so turning on `require_class` never frees an address a live service still uses).
pub fn managed(svc: &Service, class: &str, require_class: bool) -> bool {
    serves(svc, class, require_class)
        || (serves(svc, class, false)
            && svc
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(annotations::POOL_USED)))
}
