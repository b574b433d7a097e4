//! The allocator's decisions, without I/O: what a pass writes, from a snapshot of the caches.
//! - [`overlay`]: read-your-writes, so a pass never works from a cache older than its own
//!   last writes;
//! - [`ipam_input`] → [`crate::ipam::allocate`] (the shell times it);
//! - [`service_writes`]: each Service's change (status, annotations, Events), with the grace
//!   that makes a failover read as a move, not a withdrawal;
//! - [`pool_writes`], [`policy_writes`]: status and Events of pools and policies.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Resource, ResourceExt};

use super::announcing::{self, Announcements};
use super::changes::{self, ServiceChange};
use crate::api::{
    AddressPool, AddressPoolStatus, NodeState, RoutingPolicy, RoutingPolicyStatus, annotations,
};
use crate::attributes;
use crate::ipam::{self, Outcome, Pool, PoolInput, ServiceKey, ServiceRequest};
use crate::render::attributes::Judge;
use crate::status::EventSpec;

/// How long a service that was announced may have no live holder before it is reported as not
/// announced: long enough for a graceful failover, short next to a hard one.
pub const UNANNOUNCED_GRACE: Duration = Duration::from_secs(2);
/// How long a change of a Service's announcing nodes that keeps some of them (`changed`:
/// a node joined or left an ECMP set, or the nodes of a routed pool report a new address in
/// their own time) settles before it is written, so that it is one write and one Event, not
/// one per node. Starting, stopping and moving are written at once.
pub const ANNOUNCERS_SETTLE: Duration = Duration::from_secs(3);

/// Which Services the allocator serves.
#[derive(Clone, Debug)]
pub struct Served {
    pub class: String,
    pub require_class: bool,
}

impl Served {
    /// Services routelb manages (see [`ipam::managed`]).
    pub fn managed(&self, svc: &Service) -> bool {
        ipam::managed(svc, &self.class, self.require_class)
    }

    /// Whether routelb left its mark on a service it no longer serves (its type changed).
    pub fn needs_release(&self, svc: &Service) -> bool {
        let spec = svc.spec.as_ref();
        let class_ok = spec
            .and_then(|s| s.load_balancer_class.as_deref())
            .is_none_or(|c| c == self.class);
        let is_lb = spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
        class_ok
            && !is_lb
            && [
                annotations::POOL_USED,
                annotations::ALLOCATION_ERROR,
                annotations::ALLOCATION_WARNING,
                annotations::REFUSED_ATTRIBUTES,
            ]
            .iter()
            .any(|k| svc.annotations().contains_key(*k))
    }
}

/// Services as we last wrote them, by uid, with the resourceVersion the cache had then: until
/// the cache moves past that version, our write is newer than the cache.
#[derive(Clone, Debug, Default)]
pub struct Written(pub HashMap<String, (String, Service)>);

/// The cache with our own newer writes laid over it; forgets writes the cache caught up with
/// and Services that are gone.
pub fn overlay(cached: &[Arc<Service>], written: &mut Written) -> Vec<Service> {
    let mut services = Vec::with_capacity(cached.len());
    let mut live = HashSet::new();
    for s in cached {
        let uid = s.uid().unwrap_or_default();
        live.insert(uid.clone());
        match written.0.get(&uid) {
            Some((rv, ours)) if s.resource_version().as_ref() == Some(rv) => {
                services.push(ours.clone())
            }
            _ => {
                written.0.remove(&uid);
                services.push((**s).clone());
            }
        }
    }
    written.0.retain(|uid, _| live.contains(uid));
    services
}

/// What IPAM works on: pools (sorted by name) and the managed Services' requests.
pub fn ipam_input(
    served: &Served,
    services: &[Service],
    pools: &[Arc<AddressPool>],
    namespace_labels: &BTreeMap<String, BTreeMap<String, String>>,
) -> (Vec<PoolInput>, Vec<ServiceRequest>) {
    let mut pools: Vec<&Arc<AddressPool>> = pools.iter().collect();
    pools.sort_by_key(|p| p.name_any());
    let pool_inputs = pools
        .iter()
        .map(|p| (p.name_any(), Pool::from_spec(&p.name_any(), &p.spec)))
        .collect();
    let empty = BTreeMap::new();
    let requests = services
        .iter()
        .filter(|s| served.managed(s))
        .map(|s| {
            let labels = namespace_labels
                .get(&s.namespace().unwrap_or_default())
                .unwrap_or(&empty);
            ServiceRequest::from_service(s, labels)
        })
        .collect();
    (pool_inputs, requests)
}

/// Services that were announced and that no live node holds right now, since when; and
/// Services whose announcing nodes changed while some stayed (nodes joining or leaving a
/// routed pool's set, or reporting a new address one after the other), since when.
#[derive(Clone, Debug, Default)]
pub struct Grace(pub HashMap<String, Instant>, pub HashMap<String, Instant>);

/// The Service writes a pass makes, and when to come back without any change (the end of a
/// grace period).
pub struct ServiceWrites {
    pub writes: Vec<(Service, ServiceChange)>,
    pub wake_at: Option<Instant>,
    /// The served Services by state once the writes land (the `routelb_services` gauge).
    pub tally: ServiceTally,
}

/// How many served Services have no address, have one that no node announces, or are
/// announced: what an alert on "a Service without address" or "not announced" counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceTally {
    pub no_address: u64,
    pub not_announced: u64,
    pub announced: u64,
}

impl ServiceTally {
    /// Counts a served Service as it is once `change` is written.
    fn count(&mut self, svc: &Service, change: &ServiceChange) {
        let has_address = change
            .ingress
            .as_ref()
            .map_or_else(|| !ipam::ingress_ips(svc).is_empty(), |ips| !ips.is_empty());
        let announcing = match change.annotations.get(annotations::ANNOUNCING) {
            Some(written) => written.as_deref(),
            None => svc
                .annotations()
                .get(annotations::ANNOUNCING)
                .map(String::as_str),
        };
        let slot = match (has_address, announcing.is_some_and(|a| !a.is_empty())) {
            (false, _) => &mut self.no_address,
            (true, false) => &mut self.not_announced,
            (true, true) => &mut self.announced,
        };
        *slot += 1;
    }

    /// `(state label, count)` for the gauge.
    pub fn by_state(&self) -> [(&'static str, u64); 3] {
        [
            ("no_address", self.no_address),
            ("not_announced", self.not_announced),
            ("announced", self.announced),
        ]
    }
}

/// Node agents by whether their Lease is alive, among the nodes that exist (a deleted node's
/// Lease is not a failed agent): `(live, expired)`.
pub fn agent_counts<L: std::borrow::Borrow<k8s_openapi::api::coordination::v1::Lease>>(
    leases: &[L],
    live: &BTreeSet<String>,
    nodes: &BTreeSet<String>,
) -> (u64, u64) {
    let members: BTreeSet<String> = leases
        .iter()
        .filter_map(|l| crate::membership::member_of(l.borrow()))
        .map(|m| m.node)
        .filter(|n| nodes.contains(n))
        .collect();
    let up = members.iter().filter(|n| live.contains(*n)).count() as u64;
    (up, members.len() as u64 - up)
}

/// What a pass judges Services' per-service attribute requests against.
pub struct Grants<'a> {
    pub judge: Judge<'a>,
    pub namespace_labels: &'a BTreeMap<String, BTreeMap<String, String>>,
}

impl Grants<'_> {
    /// The `routelb.io/refused-attributes` a Service holding `a` should show.
    fn refused(&self, svc: &Service, a: &ipam::Assignment) -> Option<String> {
        let ns = svc.namespace().unwrap_or_default();
        let empty = BTreeMap::new();
        let ns_labels = self.namespace_labels.get(&ns).unwrap_or(&empty);
        let request = attributes::Request::new(svc.annotations(), &ns, svc.labels(), ns_labels);
        attributes::summary(&self.judge.refusals(&request, &a.pool, a.admitted))
    }
}

/// What the nodes show: their NodeStates, and which of them are live.
pub struct NodesSeen<'a> {
    pub states: &'a [Arc<NodeState>],
    pub live: &'a BTreeSet<String>,
}

/// Each Service's change: what IPAM decided, what of its attribute requests is refused, and
/// which live nodes announce it (from their NodeStates).
pub fn service_writes(
    served: &Served,
    services: &[Service],
    outcome: &Outcome,
    grants: &Grants,
    nodes: NodesSeen,
    grace: &mut Grace,
    now: Instant,
) -> ServiceWrites {
    let seen = Announcements::collect(nodes.states.iter().map(|s| s.as_ref()), nodes.live);
    let mut out = ServiceWrites {
        writes: Vec::new(),
        wake_at: None,
        tally: ServiceTally::default(),
    };
    for svc in services {
        let managed = served.managed(svc);
        let decision = if managed {
            let key = ServiceKey::new(svc.namespace().unwrap_or_default(), svc.name_any());
            outcome.services.get(&key)
        } else if served.needs_release(svc) {
            None
        } else {
            continue;
        };
        let refused = match decision {
            Some(ipam::Decision::Assigned(a)) => grants.refused(svc, a),
            _ => None,
        };
        let mut change = changes::service_change(svc, decision, refused);
        if let Some(at) = announce(svc, &mut change, &seen, grace, now) {
            out.wake_at = Some(out.wake_at.map_or(at, |w| w.min(at)));
        }
        if managed {
            out.tally.count(svc, &change);
        }
        if !change.is_empty() {
            out.writes.push((svc.clone(), change));
        }
    }
    out
}

/// Adds the `routelb.io/announcing` change, unless the Service is in its grace period: a
/// failover passes through a moment when no live node holds the address yet, which should read
/// as a move, not a withdrawal. Returns when the grace period ends.
fn announce(
    svc: &Service,
    change: &mut ServiceChange,
    seen: &Announcements,
    grace: &mut Grace,
    now: Instant,
) -> Option<Instant> {
    let addresses = change
        .ingress
        .clone()
        .unwrap_or_else(|| ipam::ingress_ips(svc));
    let key = format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any());
    let before = svc
        .annotations()
        .get(annotations::ANNOUNCING)
        .map(String::as_str);
    let after = seen.value(&addresses);
    let gap = !addresses.is_empty() && before.is_some_and(|b| !b.is_empty()) && after.is_empty();
    let settling = !addresses.is_empty()
        && before.is_some_and(|b| b != after)
        && announcing::change_kind(before.unwrap_or(""), &after) == "changed";
    for (waiting, since, wait) in [
        (gap, &mut grace.0, UNANNOUNCED_GRACE),
        (settling, &mut grace.1, ANNOUNCERS_SETTLE),
    ] {
        if !waiting {
            since.remove(&key);
            continue;
        }
        let since = *since.entry(key.clone()).or_insert(now);
        if now < since + wait {
            return Some(since + wait);
        }
    }
    announcing::add_change(change, &key, before, &addresses, seen);
    None
}

/// A status to write on a cluster-scoped object, and the Events to publish once it is written.
pub struct StatusWrite<S> {
    pub name: String,
    pub object: ObjectReference,
    pub status: S,
    pub events: Vec<EventSpec>,
}

/// Pool statuses that differ from what the pools show.
pub fn pool_writes(
    pools: &[Arc<AddressPool>],
    outcome: &Outcome,
    now: &Time,
) -> Vec<StatusWrite<AddressPoolStatus>> {
    pools
        .iter()
        .filter_map(|pool| {
            let report = outcome.pools.get(&pool.name_any())?;
            let old = pool.status.as_ref();
            let desired = changes::pool_status(report, pool.metadata.generation, old, now);
            if old.is_some_and(|o| !changes::pool_status_differs(o, &desired)) {
                return None;
            }
            Some(StatusWrite {
                name: pool.name_any(),
                object: pool.object_ref(&()),
                events: changes::pool_events(&desired, old),
                status: desired,
            })
        })
        .collect()
}

/// Policy statuses (validity) that differ from what the policies show. Conditions other
/// writers own (the agents: what only a node can see) are kept.
pub fn policy_writes(
    policies: &[Arc<RoutingPolicy>],
    now: &Time,
) -> Vec<StatusWrite<RoutingPolicyStatus>> {
    policies
        .iter()
        .filter_map(|policy| {
            let old = policy.status.as_ref();
            let mut desired =
                changes::policy_status(&policy.spec, policy.metadata.generation, old, now);
            if let Some(o) = old {
                desired.conditions.extend(
                    o.conditions
                        .iter()
                        .filter(|c| !matches!(c.type_.as_str(), "Ready" | "Invalid"))
                        .cloned(),
                );
            }
            if old.is_some_and(|o| {
                !crate::status::conditions_differ(&o.conditions, &desired.conditions)
                    && o.observed_generation == desired.observed_generation
            }) {
                return None;
            }
            Some(StatusWrite {
                name: policy.name_any(),
                object: policy.object_ref(&()),
                events: changes::policy_events(&desired, old),
                status: desired,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
