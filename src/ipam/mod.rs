//! IPAM: which Service gets which address. Pure: plain data in, decisions out; no I/O, no
//! clock, no randomness. The same pools and services, in any order, give the same result.
//!
//! One run works in two passes over services ordered by (creation time, namespace, name):
//! 1. keep what services already hold (their `status.loadBalancer.ingress`), so a live service
//!    is never renumbered; where two claim one address the older keeps it;
//! 2. give addresses to services that have none (or lack a family they now want).

mod error;
mod parsed;
mod range;
mod service;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

use crate::api::{AddressPoolSpec, Aggregation, PoolMode};
pub use error::{PoolError, PoolProblem, RangeError, RequestError};
pub use range::{Addr, Family, IpRange, normalize, parse_range, to_cidrs};
pub use service::{FamilyPolicy, Port, ServiceKey, ServiceRequest, ingress_ips, managed, serves};

/// A pool, parsed and validated.
#[derive(Clone, Debug)]
pub struct Pool {
    pub name: String,
    pub ranges: Vec<IpRange>,
    pub mode: PoolMode,
    pub auto_assign: bool,
    pub avoid_buggy_ips: bool,
    pub priority: i32,
    pub namespaces: Vec<String>,
    pub namespace_selector: Option<Selector>,
    pub service_selector: Option<Selector>,
    /// `spec.allocation.shareAcrossNamespaces`.
    pub share_across_namespaces: bool,
}

impl Pool {
    /// Parses an AddressPool spec; the error lists every problem found.
    ///
    /// Remembers its last answer per pool name: a pass asks for the same pools at several
    /// steps (validation, IPAM, ownership, rendering), and parsing a pool of 5,000 entries
    /// costs 0.5 ms each time where comparing the spec with the last one costs 0.03 ms.
    pub fn from_spec(name: &str, spec: &AddressPoolSpec) -> Result<Pool, PoolError> {
        parsed::remembered(name, spec, || Self::parse_spec(name, spec))
    }

    fn parse_spec(name: &str, spec: &AddressPoolSpec) -> Result<Pool, PoolError> {
        let mut problems = Vec::new();
        let mut ranges = Vec::new();
        if spec.addresses.is_empty() {
            problems.push(PoolProblem::NoAddresses);
        }
        for entry in &spec.addresses {
            match parse_range(entry) {
                Ok(r) => ranges.push(r),
                Err(e) => problems.push(e.into()),
            }
        }
        let ranges = normalize(ranges);
        if let Some(agg) = &spec.aggregation {
            problems.extend(aggregation_problems(&ranges, agg));
        }
        if let Some(f) = &spec.fast_failover {
            if spec.mode != PoolMode::Local {
                problems.push(PoolProblem::FastFailoverNotLocal);
            }
            if !(10..=10_000).contains(&f.interval_ms) || !(2..=50).contains(&f.detect_multiplier) {
                problems.push(PoolProblem::FastFailoverTimers);
            }
        }
        let alloc = spec.allocation.clone().unwrap_or_default();
        let namespace_selector = selector(
            "spec.allocation.namespaceSelector",
            alloc.namespace_selector,
            &mut problems,
        );
        let service_selector = selector(
            "spec.allocation.serviceSelector",
            alloc.service_selector,
            &mut problems,
        );
        if !problems.is_empty() {
            return Err(PoolError { problems });
        }
        Ok(Pool {
            name: name.to_string(),
            ranges,
            mode: spec.mode,
            auto_assign: spec.auto_assign,
            avoid_buggy_ips: spec.avoid_buggy_ips,
            priority: alloc.priority,
            namespaces: alloc.namespaces,
            namespace_selector,
            service_selector,
            share_across_namespaces: alloc.share_across_namespaces,
        })
    }

    pub fn contains(&self, a: Addr) -> bool {
        self.ranges.iter().any(|r| r.contains(a))
    }

    pub fn has_family(&self, f: Family) -> bool {
        self.ranges.iter().any(|r| r.family == f)
    }

    fn usable(&self, a: Addr) -> bool {
        self.contains(a) && self.usable_unchecked(a)
    }

    /// `usable` for an address already known to be in the pool's ranges.
    fn usable_unchecked(&self, a: Addr) -> bool {
        !(self.avoid_buggy_ips && a.is_buggy())
    }

    /// Whether the pool's namespace and service selectors admit the service.
    pub fn admits(&self, svc: &ServiceRequest) -> bool {
        (self.namespaces.is_empty() || self.namespaces.contains(&svc.key.namespace))
            && self
                .namespace_selector
                .as_ref()
                .is_none_or(|s| s.matches(&svc.namespace_labels))
            && self
                .service_selector
                .as_ref()
                .is_none_or(|s| s.matches(&svc.labels))
    }
}

/// A label selector of the spec (at `field`), or the problem that it does not parse.
fn selector(
    field: &'static str,
    sel: Option<LabelSelector>,
    problems: &mut Vec<PoolProblem>,
) -> Option<Selector> {
    Selector::try_from(sel?)
        .map_err(|e| {
            problems.push(PoolProblem::Selector {
                field,
                reason: e.to_string(),
            })
        })
        .ok()
}

/// Prefix lengths longer than an address, then aggregates that leave the pool.
fn aggregation_problems(ranges: &[IpRange], agg: &Aggregation) -> Vec<PoolProblem> {
    let mut problems: Vec<PoolProblem> = [("ipv4", agg.ipv4, 32), ("ipv6", agg.ipv6, 128)]
        .into_iter()
        .filter(|(_, len, max)| len.is_some_and(|l| l > *max))
        .map(|(field, _, max)| PoolProblem::AggregationTooLong { field, max })
        .collect();
    problems.extend(aggregation_outside_pool(ranges, agg));
    problems
}

/// An aggregate shorter than a block of the pool would announce addresses outside it (with
/// length 0, a default route): refused, per family, naming the first block it does not fit.
fn aggregation_outside_pool(ranges: &[IpRange], agg: &Aggregation) -> Vec<PoolProblem> {
    let mut problems = Vec::new();
    for (family, len, field) in [
        (Family::V4, agg.ipv4, "ipv4"),
        (Family::V6, agg.ipv6, "ipv6"),
    ] {
        let Some(len) = len else { continue };
        let too_wide = ranges
            .iter()
            .filter(|r| r.family == family)
            .flat_map(|r| to_cidrs(r).into_iter().map(move |c| (r.family, c)))
            .find(|(_, (_, block_len))| len < *block_len);
        if let Some((family, (value, block_len))) = too_wide {
            problems.push(PoolProblem::AggregateOutsidePool {
                field,
                len,
                block: IpAddr::from(Addr { family, value }),
                block_len,
            });
        }
    }
    problems
}

/// Why a service has no address. The text is shown to users as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocationError {
    InvalidRequest(RequestError),
    PoolNotFound(String),
    PoolInvalid {
        pool: String,
        reason: PoolError,
    },
    PoolNotAdmitted(String),
    NoMatchingPool,
    PoolsExhausted {
        pools: Vec<String>,
        families: String,
    },
    RequestedOutsidePools(IpAddr),
    RequestedInUse {
        address: IpAddr,
        holder: String,
    },
    FamilyUnavailable {
        pool: String,
        family: Family,
    },
    Sharing(String),
}

impl AllocationError {
    /// A stable name for metrics labels.
    pub fn kind(&self) -> &'static str {
        use AllocationError::*;
        match self {
            InvalidRequest(_) => "InvalidRequest",
            PoolNotFound(_) => "PoolNotFound",
            PoolInvalid { .. } => "PoolInvalid",
            PoolNotAdmitted(_) => "PoolNotAdmitted",
            NoMatchingPool => "NoMatchingPool",
            PoolsExhausted { .. } => "PoolsExhausted",
            RequestedOutsidePools(_) => "RequestedOutsidePools",
            RequestedInUse { .. } => "RequestedInUse",
            FamilyUnavailable { .. } => "FamilyUnavailable",
            Sharing(_) => "Sharing",
        }
    }
}

impl fmt::Display for AllocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use AllocationError::*;
        match self {
            InvalidRequest(m) => write!(f, "invalid request: {m}"),
            PoolNotFound(p) => write!(f, "pool {p:?} does not exist"),
            PoolInvalid { pool, reason } => write!(f, "pool {pool:?} is invalid: {reason}"),
            PoolNotAdmitted(p) => write!(
                f,
                "pool {p:?} does not serve this service (its namespace or service selector does not match)"
            ),
            NoMatchingPool => write!(f, "no pool with autoAssign serves this service"),
            PoolsExhausted { pools, families } => {
                write!(
                    f,
                    "no free {families} address in pool(s) {}",
                    pools.join(", ")
                )
            }
            RequestedOutsidePools(a) => {
                write!(
                    f,
                    "requested address {a} is not in any pool this service may use"
                )
            }
            RequestedInUse { address, holder } => {
                write!(f, "requested address {address} is already used by {holder}")
            }
            FamilyUnavailable { pool, family } => {
                write!(f, "pool {pool:?} has no {family} addresses")
            }
            Sharing(m) => write!(f, "cannot share: {m}"),
        }
    }
}

/// The addresses a service holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The pool the addresses come from; for an address that left every pool, the pool it
    /// was last known to come from.
    pub pool: String,
    /// In the service's family order.
    pub addresses: Vec<IpAddr>,
    /// Things worth telling the user although the service has its addresses.
    pub warnings: Vec<String>,
    /// Whether the pool admits the service. Only an admitted service gets what the pool's
    /// policies grant per service (`serviceOverrides`); see [`attribute`].
    pub admitted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Assigned(Assignment),
    Failed(AllocationError),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub allocated: u128,
    pub available: u128,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolReport {
    /// Why the pool cannot be used, if it cannot.
    pub invalid: Option<String>,
    /// Other pools whose ranges overlap this one's.
    pub overlaps: Vec<String>,
    pub v4: Counts,
    pub v6: Counts,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub services: BTreeMap<ServiceKey, Decision>,
    pub pools: BTreeMap<String, PoolReport>,
}

/// A pool as given to [`allocate`]: parsed, or the reason it could not be.
pub type PoolInput = (String, Result<Pool, PoolError>);

/// Who holds an address: a service, or a sharing group (namespace, key).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Holder {
    Service(usize),
    Group(String, String),
}

struct Group {
    pool: String,
    addresses: Vec<Addr>,
    ports: HashSet<Port>,
    members: Vec<usize>,
}

struct State<'a> {
    pools: BTreeMap<&'a str, &'a Pool>,
    invalid: BTreeMap<&'a str, &'a PoolError>,
    used: HashMap<Addr, Holder>,
    groups: HashMap<(String, String), Group>,
    /// Per (pool, family): index into that pool's ranges and the next value to try. Only grows
    /// within a run, because addresses are only ever taken, never given back, during a run.
    cursors: HashMap<(&'a str, Family), (usize, u128)>,
    services: &'a [ServiceRequest],
}

/// Computes every service's addresses and every pool's report.
pub fn allocate(pools: &[PoolInput], services: &[ServiceRequest]) -> Outcome {
    let mut order: Vec<usize> = (0..services.len()).collect();
    order.sort_by(|&a, &b| services[a].order_key().cmp(&services[b].order_key()));

    let mut st = State {
        pools: pools
            .iter()
            .filter_map(|(n, p)| p.as_ref().ok().map(|p| (n.as_str(), p)))
            .collect(),
        invalid: pools
            .iter()
            .filter_map(|(n, p)| p.as_ref().err().map(|e| (n.as_str(), e)))
            .collect(),
        used: HashMap::with_capacity(services.len() * 2),
        groups: HashMap::new(),
        cursors: HashMap::new(),
        services,
    };
    let mut decided: Vec<Option<Decision>> = vec![None; services.len()];
    // Addresses a service keeps from pass 1 while pass 2 adds a family it lacks.
    let mut partial: Vec<Option<Assignment>> = vec![None; services.len()];

    for &i in &order {
        match st.keep_existing(i) {
            Keep::Complete(a) => decided[i] = Some(Decision::Assigned(a)),
            Keep::Partial(a) => partial[i] = Some(a),
            Keep::Nothing => {}
            Keep::Lost(warning) => {
                partial[i] = Some(Assignment {
                    pool: String::new(),
                    addresses: vec![],
                    warnings: vec![warning],
                    admitted: false,
                })
            }
        }
    }
    for &i in &order {
        if decided[i].is_none() {
            let kept = partial[i].take();
            decided[i] = Some(match (st.assign_new(i, kept.clone()), kept) {
                // Could not add the family it now wants: keep what it has rather than drop it.
                (Decision::Failed(e), Some(mut kept)) if !kept.addresses.is_empty() => {
                    kept.warnings.push(format!(
                        "kept {}: {e}",
                        kept.addresses
                            .iter()
                            .map(|a| a.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    Decision::Assigned(kept)
                }
                (d, _) => d,
            });
        }
    }

    let mut outcome = Outcome::default();
    for (i, d) in decided.into_iter().enumerate() {
        outcome
            .services
            .insert(services[i].key.clone(), d.expect("every service decided"));
    }
    outcome.pools = st.report(pools, &outcome.services);
    outcome
}

/// The pool a service's addresses are attributed to, and whether that pool admits the service.
#[derive(Clone, Copy, Debug)]
pub struct Attribution<'p> {
    pub pool: &'p Pool,
    /// False when no pool that admits the service holds its addresses (a pool edited to
    /// exclude it): the addresses are kept, but nothing else the pool offers is granted.
    pub admitted: bool,
}

/// Which pool holds a service's addresses. `routelb.io/pool-used` (and standalone's state file)
/// is routelb's own output, never an authority: it only breaks the tie between pools that hold
/// every address *and* admit the service, so writing it grants nothing. Without such a pool,
/// the best-ranked pool that holds the addresses, not admitted.
pub fn attribute<'p>(
    pools: impl IntoIterator<Item = &'p Pool>,
    svc: &ServiceRequest,
    addrs: &[Addr],
) -> Option<Attribution<'p>> {
    let mut holding: Vec<&'p Pool> = pools
        .into_iter()
        .filter(|p| addrs.iter().all(|a| p.contains(*a)))
        .collect();
    // Admitted first, then the hint, then by rank (priority, then name).
    holding.sort_by(|a, b| {
        b.admits(svc)
            .cmp(&a.admits(svc))
            .then_with(|| {
                let hinted = |p: &Pool| svc.current_pool.as_deref() == Some(p.name.as_str());
                hinted(b).cmp(&hinted(a))
            })
            .then(b.priority.cmp(&a.priority))
            .then(a.name.cmp(&b.name))
    });
    holding.first().map(|p| Attribution {
        pool: p,
        admitted: p.admits(svc),
    })
}

enum Keep {
    Complete(Assignment),
    Partial(Assignment),
    Nothing,
    /// The service held an address an older service also claims.
    Lost(String),
}

impl<'a> State<'a> {
    fn holder_name(&self, h: &Holder) -> String {
        match h {
            Holder::Service(i) => format!("service {}", self.services[*i].key),
            Holder::Group(scope, key) if scope == service::ACROSS_NAMESPACES => {
                format!("services of several namespaces sharing key {key:?}")
            }
            Holder::Group(ns, key) => format!("services in {ns} sharing key {key:?}"),
        }
    }

    fn pool_of(&self, svc: &ServiceRequest, addrs: &[Addr]) -> Option<Attribution<'a>> {
        attribute(self.pools.values().copied(), svc, addrs)
    }

    /// Pass 1: what the service already holds and may keep.
    fn keep_existing(&mut self, i: usize) -> Keep {
        let svc = &self.services[i];
        let held = held_addresses(svc);
        if held.is_empty() {
            return Keep::Nothing;
        }
        let mut warnings = Vec::new();
        if !still_requested(svc, &held, &mut warnings) {
            return Keep::Nothing;
        }
        let attributed = self.pool_of(svc, &held);
        let pool = attributed.map(|a| a.pool.name.as_str());
        if !self.in_requested_pool(svc, pool, &mut warnings) {
            return Keep::Nothing;
        }
        if let Some(lost) = self.claimed_by_older(svc, &held) {
            return Keep::Lost(lost);
        }
        let admitted = attributed.is_some_and(|a| a.admitted);
        let pool_name = kept_pool_name(svc, pool, admitted, &held, &mut warnings);
        if let Err(e) = self.hold(i, &pool_name, &held, &held) {
            return Keep::Lost(format!("{e}; allocating another address"));
        }
        let assignment = Assignment {
            pool: pool_name,
            addresses: held.iter().map(|a| IpAddr::from(*a)).collect(),
            warnings,
            admitted,
        };
        // A group's addresses are fixed by its first member; dual-stack additions are refused
        // there rather than renumbering the others.
        if svc.sharing_key.is_none() && self.lacks_family(svc, pool, &held) {
            Keep::Partial(assignment)
        } else {
            Keep::Complete(assignment)
        }
    }

    /// Whether the service keeps what it holds although the pool it asks for is another (or
    /// asks for none). A requested pool that is invalid (a bad edit) takes nothing away: the
    /// address is kept, with a warning, until the pool is fixed.
    fn in_requested_pool(
        &self,
        svc: &ServiceRequest,
        pool: Option<&str>,
        warnings: &mut Vec<String>,
    ) -> bool {
        let Some(req) = &svc.requested_pool else {
            return true;
        };
        if pool == Some(req.as_str()) {
            return true;
        }
        match self.invalid.get(req.as_str()) {
            Some(reason) => {
                warnings.push(format!("pool {req:?} is invalid: {reason}"));
                true
            }
            None => false,
        }
    }

    /// Why the service cannot keep `held`: an older service, or a sharing group it is not
    /// part of, already claimed one of the addresses.
    fn claimed_by_older(&self, svc: &ServiceRequest, held: &[Addr]) -> Option<String> {
        held.iter().find_map(|a| {
            let h = self.used.get(a)?;
            let shareable = matches!(h, Holder::Group(scope, key)
                if svc.sharing_key.as_deref() == Some(key) && scope == svc.sharing_scope());
            (!shareable).then(|| {
                format!(
                    "address {} is also claimed by older {}; allocating another",
                    IpAddr::from(*a),
                    self.holder_name(h)
                )
            })
        })
    }

    /// Whether a service keeping `held` (from `pool`) should get another family in pass 2:
    /// one it requires, or one it wants that its pool offers.
    fn lacks_family(&self, svc: &ServiceRequest, pool: Option<&str>, held: &[Addr]) -> bool {
        let lacks = |f: &Family| !held.iter().any(|a| a.family == *f);
        let wanted = svc.wanted_families();
        let missing_required = svc.required_families().iter().any(lacks);
        let missing_wanted = wanted.iter().any(lacks);
        let pool_offers_missing = pool.is_some_and(|p| {
            wanted
                .iter()
                .any(|f| lacks(f) && self.pools[p].has_family(*f))
        });
        missing_required || (missing_wanted && pool_offers_missing)
    }

    /// Records that service `i` holds addresses from `pool`: through its sharing group (all
    /// of them: the group starts with them, or must already have them), or on its own (`new`,
    /// those not recorded yet).
    fn hold(
        &mut self,
        i: usize,
        pool: &str,
        all: &[Addr],
        new: &[Addr],
    ) -> Result<(), AllocationError> {
        match &self.services[i].sharing_key {
            Some(key) => self.join_group(i, key, pool, all),
            None => {
                for a in new {
                    self.used.insert(*a, Holder::Service(i));
                }
                Ok(())
            }
        }
    }

    /// Adds service `i` to its sharing group, creating it with `addresses` if it is the first.
    fn join_group(
        &mut self,
        i: usize,
        key: &str,
        pool: &str,
        addresses: &[Addr],
    ) -> Result<(), AllocationError> {
        let svc = &self.services[i];
        let gid = (svc.sharing_scope().to_string(), key.to_string());
        match self.groups.get_mut(&gid) {
            Some(g) => {
                if g.pool != pool || !addresses.iter().all(|a| g.addresses.contains(a)) {
                    return Err(AllocationError::Sharing(format!(
                        "sharing key {key:?} already uses {} from pool {:?}",
                        shown(&g.addresses),
                        g.pool
                    )));
                }
                if let Some(p) = svc.ports.iter().find(|p| g.ports.contains(p)) {
                    let other = g
                        .members
                        .iter()
                        .find(|m| self.services[**m].ports.contains(p))
                        .map(|m| self.services[*m].key.to_string())
                        .unwrap_or_default();
                    return Err(AllocationError::Sharing(format!(
                        "port {p} is already used by {other}, which has sharing key {key:?}"
                    )));
                }
                g.ports.extend(svc.ports.iter().cloned());
                g.members.push(i);
                Ok(())
            }
            None => {
                for a in addresses {
                    if let Some(h) = self.used.get(a) {
                        return Err(AllocationError::RequestedInUse {
                            address: IpAddr::from(*a),
                            holder: self.holder_name(h),
                        });
                    }
                }
                for a in addresses {
                    self.used
                        .insert(*a, Holder::Group(gid.0.clone(), gid.1.clone()));
                }
                self.groups.insert(
                    gid,
                    Group {
                        pool: pool.to_string(),
                        addresses: addresses.to_vec(),
                        ports: svc.ports.iter().cloned().collect(),
                        members: vec![i],
                    },
                );
                Ok(())
            }
        }
    }

    /// Pass 2: addresses for a service that has none, or lacks a family it wants.
    fn assign_new(&mut self, i: usize, partial: Option<Assignment>) -> Decision {
        let svc = &self.services[i];
        let requested = match valid_request(svc) {
            Ok(r) => r,
            Err(e) => return Decision::Failed(e),
        };
        let (warnings, held, held_pool) = match partial {
            Some(p) => (
                p.warnings,
                p.addresses.iter().map(|ip| Addr::from(*ip)).collect(),
                Some(p.pool).filter(|n| !n.is_empty()),
            ),
            None => (vec![], vec![], None),
        };
        // Join an existing sharing group rather than allocating.
        if let Some(key) = &svc.sharing_key
            && let Some((pool, addrs)) = self.group_addresses(svc, key)
        {
            return self.share(i, key, pool, addrs, &requested, warnings);
        }
        let candidates = match self.candidates(svc, held_pool.as_deref(), &requested) {
            Ok(c) => c,
            Err(e) => return Decision::Failed(e),
        };
        let candidates = match across_namespaces(svc, candidates) {
            Ok(c) => c,
            Err(e) => return Decision::Failed(e),
        };
        self.allocate_from(i, &candidates, &held, &requested, warnings)
    }

    /// The pool and the addresses (those of the families the service wants, in its order) of
    /// the service's sharing group, if the group exists.
    fn group_addresses(&self, svc: &ServiceRequest, key: &str) -> Option<(String, Vec<Addr>)> {
        let g = self
            .groups
            .get(&(svc.sharing_scope().to_string(), key.to_string()))?;
        let wanted = svc.wanted_families();
        let mut addrs: Vec<Addr> = g
            .addresses
            .iter()
            .copied()
            .filter(|a| wanted.contains(&a.family))
            .collect();
        addrs.sort_by_key(|a| wanted.iter().position(|f| *f == a.family));
        Some((g.pool.clone(), addrs))
    }

    /// Service `i` takes its sharing group's addresses, if they are what it asks for.
    fn share(
        &mut self,
        i: usize,
        key: &str,
        pool: String,
        addrs: Vec<Addr>,
        requested: &[Addr],
        warnings: Vec<String>,
    ) -> Decision {
        let svc = &self.services[i];
        let fits = group_fits(svc, key, &pool, &addrs, requested).and_then(|()| {
            let pools = self.pools.get(pool.as_str()).into_iter().copied().collect();
            across_namespaces(svc, pools).map(|_| ())
        });
        if let Err(e) = fits {
            return Decision::Failed(e);
        }
        if let Err(e) = self.join_group(i, key, &pool, &addrs) {
            return Decision::Failed(e);
        }
        let admitted = self.pools.get(pool.as_str()).is_some_and(|p| p.admits(svc));
        Decision::Assigned(Assignment {
            pool,
            addresses: addrs.into_iter().map(IpAddr::from).collect(),
            warnings,
            admitted,
        })
    }

    /// The pools the service may get addresses from, best first: the pool of what it holds
    /// already, else the pool it asks for, else every pool that serves it; then only those
    /// holding the addresses it asks for, which must be free.
    fn candidates(
        &self,
        svc: &ServiceRequest,
        held_pool: Option<&str>,
        requested: &[Addr],
    ) -> Result<Vec<&'a Pool>, AllocationError> {
        let mut pools = self.eligible_pools(svc, held_pool, !requested.is_empty())?;
        if !requested.is_empty() {
            pools.retain(|p| requested.iter().all(|a| p.usable(*a)));
            if pools.is_empty() {
                let outside = requested
                    .iter()
                    .find(|a| !self.pools.values().any(|p| p.usable(**a) && p.admits(svc)))
                    .unwrap_or(&requested[0]);
                return Err(AllocationError::RequestedOutsidePools(IpAddr::from(
                    *outside,
                )));
            }
        }
        if pools.is_empty() {
            return Err(AllocationError::NoMatchingPool);
        }
        if let Some((a, h)) = requested
            .iter()
            .find_map(|a| self.used.get(a).map(|h| (a, h)))
        {
            return Err(AllocationError::RequestedInUse {
                address: IpAddr::from(*a),
                holder: self.holder_name(h),
            });
        }
        Ok(pools)
    }

    /// The pool of what the service holds, the pool it asks for (which must exist, be valid
    /// and admit it), or the pools that admit it and assign automatically (or, when it asks
    /// for addresses, at all), by priority then name.
    fn eligible_pools(
        &self,
        svc: &ServiceRequest,
        held_pool: Option<&str>,
        requests_addresses: bool,
    ) -> Result<Vec<&'a Pool>, AllocationError> {
        match (held_pool, svc.requested_pool.as_deref()) {
            (Some(p), _) => Ok(self.pools.get(p).into_iter().copied().collect()),
            (None, Some(name)) => match self.pools.get(name) {
                Some(p) if p.admits(svc) => Ok(vec![*p]),
                Some(_) => Err(AllocationError::PoolNotAdmitted(name.into())),
                None => Err(match self.invalid.get(name) {
                    Some(reason) => AllocationError::PoolInvalid {
                        pool: name.into(),
                        reason: (*reason).clone(),
                    },
                    None => AllocationError::PoolNotFound(name.into()),
                }),
            },
            (None, None) => {
                let mut ps: Vec<&'a Pool> = self
                    .pools
                    .values()
                    .copied()
                    .filter(|p| p.admits(svc) && (p.auto_assign || requests_addresses))
                    .collect();
                ps.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.name.cmp(&b.name)));
                Ok(ps)
            }
        }
    }

    /// Service `i` gets its addresses from the first candidate with enough free ones; else
    /// why none could give them (exhaustion first, then a missing family).
    fn allocate_from(
        &mut self,
        i: usize,
        candidates: &[&'a Pool],
        held: &[Addr],
        requested: &[Addr],
        warnings: Vec<String>,
    ) -> Decision {
        let svc = &self.services[i];
        let wanted = svc.wanted_families();
        let required = svc.required_families();
        let mut last_error = None;
        let mut exhausted = Vec::new();
        let kept: Vec<Addr> = held.iter().chain(requested).copied().collect();
        for pool in candidates {
            if let Some(f) = required.iter().find(|f| !pool.has_family(**f)) {
                last_error = Some(AllocationError::FamilyUnavailable {
                    pool: pool.name.clone(),
                    family: *f,
                });
                continue;
            }
            match self.plan(pool, &wanted, &required, &kept) {
                Ok(plan) => return self.give(i, pool, plan, held, warnings),
                Err(missing) => exhausted.push((pool.name.clone(), shown_families(&missing))),
            }
        }
        if let Some((_, families)) = exhausted.first() {
            let families = families.clone();
            return Decision::Failed(AllocationError::PoolsExhausted {
                pools: exhausted.into_iter().map(|(p, _)| p).collect(),
                families,
            });
        }
        Decision::Failed(last_error.unwrap_or(AllocationError::NoMatchingPool))
    }

    /// An address per wanted family: the one in `kept` (held, then requested) of that family,
    /// else the lowest free one of `pool`. Takes nothing, so a failed dual-stack attempt leaks
    /// nothing. Fails with the families short: the required ones without a free address, or
    /// every wanted one when none could be found.
    fn plan(
        &mut self,
        pool: &'a Pool,
        wanted: &[Family],
        required: &[Family],
        kept: &[Addr],
    ) -> Result<Vec<Addr>, Vec<Family>> {
        let mut plan: Vec<Addr> = Vec::new();
        let mut short = Vec::new();
        for f in wanted {
            if let Some(a) = kept.iter().find(|a| a.family == *f) {
                plan.push(*a);
            } else if !pool.has_family(*f) {
                continue;
            } else if let Some(a) = self.peek_free(pool, *f) {
                plan.push(a);
            } else if required.contains(f) {
                short.push(*f);
            }
        }
        if short.is_empty() && !plan.is_empty() {
            Ok(plan)
        } else if short.is_empty() {
            Err(wanted.to_vec())
        } else {
            Err(short)
        }
    }

    /// Service `i` takes `plan` from `pool` (what it did not hold already is taken now).
    fn give(
        &mut self,
        i: usize,
        pool: &'a Pool,
        plan: Vec<Addr>,
        held: &[Addr],
        warnings: Vec<String>,
    ) -> Decision {
        let new: Vec<Addr> = plan.iter().copied().filter(|a| !held.contains(a)).collect();
        for a in &new {
            self.take(pool, *a);
        }
        if let Err(e) = self.hold(i, &pool.name, &plan, &new) {
            return Decision::Failed(e);
        }
        Decision::Assigned(Assignment {
            pool: pool.name.clone(),
            addresses: plan.into_iter().map(IpAddr::from).collect(),
            warnings,
            admitted: pool.admits(&self.services[i]),
        })
    }

    /// The lowest free usable address of family `f` in `pool`, at or after its cursor.
    fn peek_free(&mut self, pool: &'a Pool, f: Family) -> Option<Addr> {
        let (mut ri, mut next) = *self
            .cursors
            .get(&(pool.name.as_str(), f))
            .unwrap_or(&(0, 0));
        while ri < pool.ranges.len() {
            let r = pool.ranges[ri];
            if r.family != f {
                ri += 1;
                continue;
            }
            let mut v = next.max(r.first);
            while v <= r.last {
                let a = Addr {
                    family: f,
                    value: v,
                };
                if pool.usable_unchecked(a) && !self.used.contains_key(&a) {
                    self.cursors.insert((pool.name.as_str(), f), (ri, v));
                    return Some(a);
                }
                if v == u128::MAX {
                    break;
                }
                v += 1;
            }
            ri += 1;
            next = 0;
        }
        self.cursors.insert((pool.name.as_str(), f), (ri, 0));
        None
    }

    fn take(&mut self, pool: &'a Pool, a: Addr) {
        // Only advance the cursor when taking the address it points at; a requested address
        // elsewhere in the pool is skipped later by the `used` check.
        if let Some(c) = self.cursors.get_mut(&(pool.name.as_str(), a.family))
            && c.1 == a.value
        {
            c.1 = a.value.saturating_add(1);
        }
    }

    fn report(
        &self,
        pools: &[PoolInput],
        decisions: &BTreeMap<ServiceKey, Decision>,
    ) -> BTreeMap<String, PoolReport> {
        let mut reports: BTreeMap<String, PoolReport> = BTreeMap::new();
        for (name, p) in pools {
            let entry = reports.entry(name.clone()).or_default();
            if let Err(e) = p {
                entry.invalid = Some(e.to_string());
            }
        }
        // Overlaps: sweep all ranges ordered by start.
        let mut all: Vec<(IpRange, &str)> = self
            .pools
            .values()
            .flat_map(|p| p.ranges.iter().map(move |r| (*r, p.name.as_str())))
            .collect();
        all.sort();
        let mut open: Vec<(IpRange, &str)> = Vec::new();
        for (r, name) in all {
            open.retain(|(o, _)| o.family == r.family && o.last >= r.first);
            for (_, other) in &open {
                if *other != name {
                    for (a, b) in [(name, *other), (*other, name)] {
                        let o = &mut reports.get_mut(a).expect("pool has a report").overlaps;
                        if !o.iter().any(|x| x == b) {
                            o.push(b.to_string());
                        }
                    }
                }
            }
            open.push((r, name));
        }
        // Allocated: distinct addresses per pool the services were given from it.
        let mut allocated: HashMap<&str, HashSet<Addr>> = HashMap::new();
        for d in decisions.values() {
            if let Decision::Assigned(a) = d {
                let set = allocated.entry(a.pool.as_str()).or_default();
                set.extend(a.addresses.iter().map(|ip| Addr::from(*ip)));
            }
        }
        for (name, pool) in &self.pools {
            let report = reports.get_mut(*name).expect("pool has a report");
            report.overlaps.sort();
            for f in Family::BOTH {
                let mut size: u128 = 0;
                for r in pool.ranges.iter().filter(|r| r.family == f) {
                    size = size.saturating_add(r.size());
                    if pool.avoid_buggy_ips {
                        size -= r.buggy_count();
                    }
                }
                let in_use = self
                    .used
                    .keys()
                    .filter(|a| a.family == f && pool.usable(**a))
                    .count() as u128;
                let mine = allocated
                    .get(name)
                    .map_or(0, |s| s.iter().filter(|a| a.family == f).count())
                    as u128;
                let counts = Counts {
                    allocated: mine,
                    available: size.saturating_sub(in_use),
                };
                match f {
                    Family::V4 => report.v4 = counts,
                    Family::V6 => report.v6 = counts,
                }
            }
        }
        reports
    }
}

// The pure steps of the two passes that need nothing of the state.

/// What the service holds of the families it wants, at most one per family, in its order.
fn held_addresses(svc: &ServiceRequest) -> Vec<Addr> {
    let wanted = svc.wanted_families();
    let mut held: Vec<Addr> = svc
        .current
        .iter()
        .map(|ip| Addr::from(*ip))
        .filter(|a| wanted.contains(&a.family))
        .collect();
    held.sort_by_key(|a| wanted.iter().position(|f| *f == a.family));
    held.dedup_by_key(|a| a.family);
    held
}

/// Whether what the service holds still answers its request. A changed request (other
/// addresses) is honoured by allocating anew; an unreadable one is reported but does not take
/// a live service's address away.
fn still_requested(svc: &ServiceRequest, held: &[Addr], warnings: &mut Vec<String>) -> bool {
    match &svc.requested {
        Ok(requested) => requested.iter().all(|r| held.contains(&Addr::from(*r))),
        Err(e) => {
            warnings.push(format!("ignoring the request: {e}"));
            true
        }
    }
}

/// The pool kept addresses are reported under: the pool holding them, with a warning if it
/// does not admit the service; else, with a warning, the pool they were last known to be from.
fn kept_pool_name(
    svc: &ServiceRequest,
    pool: Option<&str>,
    admitted: bool,
    held: &[Addr],
    warnings: &mut Vec<String>,
) -> String {
    match pool {
        Some(p) => {
            if !admitted {
                warnings.push(format!(
                    "pool {p:?} does not admit this service (its namespaces or selectors); \
                     the address is kept so traffic is not interrupted, but per-service \
                     attributes are not honoured: delete the service or set \
                     routelb.io/addresses to renumber it"
                ));
            }
            p.to_string()
        }
        None => {
            warnings.push(format!(
                "address {} is no longer in any pool; kept so traffic is not interrupted: \
                 delete the service or set routelb.io/addresses to renumber it",
                shown(held)
            ));
            svc.current_pool.clone().unwrap_or_default()
        }
    }
}

/// The requested addresses, if the request is readable and its families fit the service.
fn valid_request(svc: &ServiceRequest) -> Result<Vec<Addr>, AllocationError> {
    let requested = svc
        .requested
        .clone()
        .map_err(AllocationError::InvalidRequest)?;
    svc.check_families(&requested)
        .map_err(AllocationError::InvalidRequest)?;
    Ok(requested.into_iter().map(Addr::from).collect())
}

/// Why a service cannot take its sharing group's addresses `addrs` from `pool`, if it cannot.
fn group_fits(
    svc: &ServiceRequest,
    key: &str,
    pool: &str,
    addrs: &[Addr],
    requested: &[Addr],
) -> Result<(), AllocationError> {
    let refuse = |why: String| Err(AllocationError::Sharing(why));
    if let Some(f) = svc
        .required_families()
        .into_iter()
        .find(|f| !addrs.iter().any(|a| a.family == *f))
    {
        return refuse(format!("sharing key {key:?} has no {f} address"));
    }
    if addrs.is_empty() {
        return refuse(format!(
            "sharing key {key:?} has no address of the families this service wants"
        ));
    }
    if requested.iter().any(|r| !addrs.contains(r)) {
        return refuse(format!(
            "requested addresses differ from {} used by sharing key {key:?}",
            shown(addrs)
        ));
    }
    if let Some(req) = &svc.requested_pool
        && req != pool
    {
        return refuse(format!(
            "sharing key {key:?} uses pool {pool:?}, not {req:?}"
        ));
    }
    Ok(())
}

/// The pools a new member of a sharing group across namespaces may take its address from:
/// those that allow it ([`Pool::share_across_namespaces`]); all of them for anyone else. What a
/// group holds already is kept when its pool stops allowing it (nothing is taken away), but
/// nobody new joins.
fn across_namespaces<'p>(
    svc: &ServiceRequest,
    pools: Vec<&'p Pool>,
) -> Result<Vec<&'p Pool>, AllocationError> {
    if !(svc.share_across_namespaces && svc.sharing_key.is_some()) {
        return Ok(pools);
    }
    let names: Vec<String> = pools.iter().map(|p| format!("{:?}", p.name)).collect();
    let allowing: Vec<&Pool> = pools
        .into_iter()
        .filter(|p| p.share_across_namespaces)
        .collect();
    if allowing.is_empty() {
        return Err(AllocationError::Sharing(format!(
            "routelb.io/share-across-namespaces: pool {} does not allow sharing across namespaces (spec.allocation.shareAcrossNamespaces)",
            names.join(", ")
        )));
    }
    Ok(allowing)
}

/// Addresses as users read them: `a, b`.
fn shown(addrs: &[Addr]) -> String {
    let shown: Vec<String> = addrs.iter().map(|a| IpAddr::from(*a).to_string()).collect();
    shown.join(", ")
}

/// Families as `IPv4/IPv6`.
fn shown_families(families: &[Family]) -> String {
    let names: Vec<&str> = families.iter().map(|f| f.k8s_name()).collect();
    names.join("/")
}

impl PoolReport {
    pub fn ready(&self) -> bool {
        self.invalid.is_none()
    }
}

impl Decision {
    pub fn assignment(&self) -> Option<&Assignment> {
        match self {
            Decision::Assigned(a) => Some(a),
            Decision::Failed(_) => None,
        }
    }
}

#[cfg(test)]
mod tests;
