//! The agent's decisions, without I/O. From a snapshot of what the watch caches, netlink and
//! the daemon say, in three steps the shell runs in order:
//! 1. [`resolve`]: which pools and policies are in use (a bad edit keeps the last valid
//!    definition), which Services this node acts on and from which pool, the template data,
//!    and what this node offers the others (its [`Member`]);
//! 2. [`place`]: who holds each address among the live members, and what goes on which of
//!    this node's interfaces;
//! 3. [`report`]: the Events, notes and problems that say so, each Event once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

use crate::api::{AddressPool, PoolMode, RoutingPolicy, ServiceNote, annotations};
use crate::attributes;
use crate::election::{self, Candidate, Kept, Member, NodeView, Ranks, Readiness};
use crate::ipam::{self, ServiceKey};
use crate::last_valid::Memory;
use crate::node::NodeInterface;
use crate::plan::{self, Plan};
use crate::render::model::{Built, Instances, RenderInput};
use crate::service::ServiceAddresses;
use crate::status::EventSpec;

pub type Labels = BTreeMap<String, String>;

/// What the agent is, as far as its decisions go.
#[derive(Clone, Debug)]
pub struct Identity {
    pub node: String,
    pub lb_interface: String,
    /// The `loadBalancerClass` served, and whether Services without one are left alone.
    pub class: String,
    pub require_class: bool,
}

/// What the caches, netlink and the daemon say at the start of a pass.
pub struct Snapshot<'a> {
    pub services: &'a [std::sync::Arc<Service>],
    pub pools: &'a [AddressPool],
    pub policies: &'a [RoutingPolicy],
    pub namespace_labels: &'a BTreeMap<String, Labels>,
    pub node_labels: &'a Labels,
    pub facts: &'a [NodeInterface],
    /// The daemon's routing instances; None when they could not be read.
    pub instances: Option<&'a Instances>,
    /// Where each Service's endpoints are ready ([`super::endpoints::readiness`]).
    pub readiness: &'a BTreeMap<ServiceKey, Readiness>,
}

/// A Service this node acts on.
#[derive(Clone, Debug)]
pub struct Input {
    pub addresses: ServiceAddresses,
    /// What IPAM reads of the service: its namespace and labels, for pool admission.
    pub request: ipam::ServiceRequest,
    pub local_traffic: bool,
    pub withdraw_without_endpoints: bool,
}

/// Step 1's outcome.
pub struct Resolved {
    pub inputs: Vec<Input>,
    pub pools: Vec<AddressPool>,
    /// The template data and rendering problems; also which routed pools this node exports.
    pub built: Built,
    /// What this node offers: its subnets and the routed pools it exports.
    pub me: Member,
    /// Invalid pools and policies, and what happens to them.
    pub problems: Vec<String>,
    /// Whether a policy exports through an instance (or hooks into a route-map) the daemon
    /// lacks.
    pub instances_missing: bool,
}

/// Step 1: what is in use and what this node acts on.
pub fn resolve(id: &Identity, s: &Snapshot, memory: &mut Memory) -> Resolved {
    let in_use = memory.in_use(s.pools, s.policies);
    let inputs = inputs(id, s, &in_use.pools);
    memory
        .pools
        .forget_deleted(s.pools, inputs.iter().map(|i| i.addresses.pool.as_str()));
    let services: Vec<ServiceAddresses> = inputs.iter().map(|i| i.addresses.clone()).collect();
    let none = Instances::default();
    let mut built = crate::render::build(&RenderInput {
        node: Some(&id.node),
        local_endpoints: &local_endpoints(&inputs, s.readiness),
        node_labels: s.node_labels,
        lb_interface: &id.lb_interface,
        pools: &in_use.pools,
        policies: &in_use.policies,
        services: &services,
        instances: s.instances.unwrap_or(&none),
    });
    if s.instances.is_none() {
        // Rendered for no instance only to learn what this node exports; "missing" would be
        // noise.
        built.problems.retain(|p| !p.waits_for_base());
    }
    // A route-map to hook into counts as an instance: the base's generator (frr-k8s) may
    // create it moments after its neighbor.
    let instances_missing = built.problems.iter().any(|p| p.waits_for_base());
    let me = member(id, s.facts, built.exported_pools.clone());
    Resolved {
        inputs,
        pools: in_use.pools,
        built,
        me,
        problems: in_use.problems,
        instances_missing,
    }
}

/// The Services this node acts on, in key order, each attributed to a pool in use.
fn inputs(id: &Identity, s: &Snapshot, pools: &[AddressPool]) -> Vec<Input> {
    let no_labels = Labels::new();
    let mut inputs: Vec<Input> = s
        .services
        .iter()
        .filter_map(|svc| {
            let labels = s
                .namespace_labels
                .get(&svc.namespace().unwrap_or_default())
                .unwrap_or(&no_labels);
            service_input(svc, id, labels)
        })
        .collect();
    inputs.sort_by(|a, b| a.addresses.key.cmp(&b.addresses.key));
    let parsed: Vec<ipam::Pool> = pools
        .iter()
        .filter_map(|p| ipam::Pool::from_spec(&p.name_any(), &p.spec).ok())
        .collect();
    attribute_pools(&mut inputs, &parsed);
    let known: BTreeSet<String> = pools.iter().map(|p| p.name_any()).collect();
    inputs.retain(|i| known.contains(&i.addresses.pool));
    inputs
}

/// A Service the agent acts on: served by routelb (as the allocator decides) and given an
/// address from a pool. The pool is `routelb.io/pool-used` for now; [`attribute_pools`]
/// checks it.
pub fn service_input(svc: &Service, id: &Identity, namespace_labels: &Labels) -> Option<Input> {
    if !ipam::managed(svc, &id.class, id.require_class) {
        return None;
    }
    let pool = svc.annotations().get(annotations::POOL_USED)?.clone();
    let addresses = ipam::ingress_ips(svc);
    if addresses.is_empty() {
        return None;
    }
    let local_traffic = svc
        .spec
        .as_ref()
        .and_then(|s| s.external_traffic_policy.as_deref())
        == Some("Local");
    let withdraw_without_endpoints = svc
        .annotations()
        .get(annotations::WITHDRAW_WHEN_NO_ENDPOINTS)
        .is_some_and(|v| v == "true");
    let request = ipam::ServiceRequest::from_service(svc, namespace_labels);
    Some(Input {
        addresses: ServiceAddresses {
            key: ServiceKey::new(svc.namespace().unwrap_or_default(), svc.name_any()),
            pool,
            addresses,
            attributes: attributes::Request::of(svc, &request),
            admitted: false,
        },
        request,
        local_traffic,
        withdraw_without_endpoints,
    })
}

/// Ready endpoints on this node per address whose Services are all
/// `externalTrafficPolicy: Local` (for `weightedEcmp`): a shared address weighs the union of
/// its Services' endpoints, counted in the address's family (all of them if none is).
/// An address shared with a `Cluster` Service is left out: every node forwards its traffic.
pub fn local_endpoints(
    inputs: &[Input],
    readiness: &BTreeMap<ServiceKey, Readiness>,
) -> BTreeMap<IpAddr, u32> {
    let mut union: BTreeMap<IpAddr, BTreeSet<IpAddr>> = BTreeMap::new();
    let mut cluster: BTreeSet<IpAddr> = BTreeSet::new();
    for i in inputs {
        let here = readiness.get(&i.addresses.key).map(|r| &r.here);
        for a in &i.addresses.addresses {
            if i.local_traffic {
                union
                    .entry(*a)
                    .or_default()
                    .extend(here.into_iter().flatten());
            } else {
                cluster.insert(*a);
            }
        }
    }
    union
        .into_iter()
        .filter(|(a, _)| !cluster.contains(a))
        .map(|(a, endpoints)| {
            let same = endpoints
                .iter()
                .filter(|e| e.is_ipv4() == a.is_ipv4())
                .count();
            let n = if same > 0 { same } else { endpoints.len() };
            (a, u32::try_from(n).unwrap_or(u32::MAX))
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Attributes each service's addresses to a pool ([`ServiceAddresses::attribute`]): anyone who
/// can edit a Service can write `routelb.io/pool-used`, so it grants nothing by itself.
pub fn attribute_pools(inputs: &mut [Input], pools: &[ipam::Pool]) {
    for i in inputs {
        i.addresses.attribute(&i.request, pools);
    }
}

/// What this node offers the election: subnets of interfaces that are up (never the
/// load-balancer interface), and the routed pools it exports.
pub fn member(id: &Identity, facts: &[NodeInterface], routed_pools: BTreeSet<String>) -> Member {
    let offered = || facts.iter().filter(|i| i.up && i.name != id.lb_interface);
    Member {
        node: id.node.clone(),
        subnets: offered()
            .flat_map(|i| i.subnets.iter().map(|s| (i.name.clone(), *s)))
            .collect(),
        routed_pools,
        addresses: offered().flat_map(|i| i.addresses.clone()).collect(),
        cut_off: false,
    }
}

/// Step 2's outcome.
pub struct Placement {
    /// The election as this node sees it, one view per input.
    pub views: Vec<NodeView>,
    pub plan: Plan,
}

/// Whether each Service is ready as far as this node goes: a ready endpoint anywhere, or on
/// this node under `externalTrafficPolicy: Local` (for [`super::proxy_grace`]).
pub fn ready_here(
    id: &Identity,
    r: &Resolved,
    readiness: &BTreeMap<ServiceKey, Readiness>,
) -> Vec<(ServiceKey, bool)> {
    r.inputs
        .iter()
        .map(|i| {
            let key = &i.addresses.key;
            let ready = readiness.get(key).is_some_and(|e| {
                if i.local_traffic {
                    e.nodes.contains(&id.node)
                } else {
                    e.any
                }
            });
            (key.clone(), ready)
        })
        .collect()
}

/// What this node keeps from starting to announce: Services kube-proxy may not have yet
/// ([`super::proxy_grace`]), unless this node announces their address already.
pub struct HeldBack<'a> {
    pub services: &'a BTreeSet<ServiceKey>,
    pub announced: &'a BTreeSet<IpAddr>,
}

impl HeldBack<'static> {
    pub fn nothing() -> Self {
        static NO_SERVICES: BTreeSet<ServiceKey> = BTreeSet::new();
        static NO_ADDRESSES: BTreeSet<IpAddr> = BTreeSet::new();
        HeldBack {
            services: &NO_SERVICES,
            announced: &NO_ADDRESSES,
        }
    }
}

/// The live members each election sees: all of them, except for the local addresses of pools
/// with fast failover, elected among the members as this node's BFD view leaves them
/// ([`crate::failover::view`]).
pub struct Members<'a> {
    pub all: &'a [Member],
    pub fast: &'a [Member],
    pub fast_pools: &'a BTreeSet<String>,
}

impl<'a> Members<'a> {
    /// Everyone, with no fast failover.
    pub fn plain(all: &'a [Member]) -> Self {
        static NONE: BTreeSet<String> = BTreeSet::new();
        Members {
            all,
            fast: all,
            fast_pools: &NONE,
        }
    }

    fn for_pool(&self, pool: &str) -> &'a [Member] {
        if self.fast_pools.contains(pool) {
            self.fast
        } else {
            self.all
        }
    }
}

/// Step 2: who holds each address among the live `members` (this node included), and this
/// node's share less what it holds back. `ranks` keeps local addresses' ranks among all
/// members from one pass to the next.
pub fn place(
    id: &Identity,
    r: &Resolved,
    members: &Members,
    ranks: &mut Ranks,
    readiness: &BTreeMap<ServiceKey, Readiness>,
    facts: &[NodeInterface],
    held_back: &HeldBack,
) -> Placement {
    let modes: BTreeMap<String, PoolMode> = r
        .pools
        .iter()
        .map(|p| (p.name_any(), p.spec.mode))
        .collect();
    let none = Readiness::default();
    let candidates: Vec<Candidate> = r
        .inputs
        .iter()
        .map(|i| Candidate {
            service: &i.addresses,
            mode: modes[&i.addresses.pool],
            local_traffic: i.local_traffic,
            withdraw_without_endpoints: i.withdraw_without_endpoints,
            endpoints: readiness.get(&i.addresses.key).unwrap_or(&none),
        })
        .collect();
    let views = election::elect_for(
        &id.node,
        &candidates,
        |c| members.for_pool(&c.service.pool),
        &id.lb_interface,
        Some(Kept {
            members: members.all,
            ranks,
        }),
    );
    let mine: Vec<ServiceAddresses> = views
        .iter()
        .zip(&r.inputs)
        .filter_map(|(v, i)| {
            let mut addresses: Vec<IpAddr> = v.here.iter().map(|(a, _)| *a).collect();
            if held_back.services.contains(&v.key) {
                addresses.retain(|a| held_back.announced.contains(a));
            }
            (!addresses.is_empty()).then(|| ServiceAddresses {
                addresses,
                ..i.addresses.clone()
            })
        })
        .collect();
    let plan = plan::plan(&mine, &r.pools, &id.lb_interface, facts);
    Placement { views, plan }
}

/// What was reported before, so each Event goes out once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reported {
    pub problems: BTreeSet<String>,
    pub failed_services: BTreeSet<ServiceKey>,
}

/// Step 3's outcome.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reports {
    /// Events on RoutingPolicies, by name: problems seen for the first time.
    pub policy_events: Vec<(String, EventSpec)>,
    /// Events on Services this node was elected to hold but could not place.
    pub service_events: Vec<(ServiceKey, EventSpec)>,
    /// Services nobody announces that this node reports on, with why (into NodeState).
    pub not_announced: Vec<ServiceNote>,
    /// Everything wrong, for NodeState's `RoutingProblems`.
    pub problems: BTreeSet<String>,
    /// What to remember for the next pass.
    pub reported: Reported,
}

/// Step 3: what to tell people. `address_errors` are this pass's netlink failures, `extra`
/// the shell's own problems (daemon unreadable, templates not loaded).
pub fn report(
    id: &Identity,
    before: &Reported,
    r: &Resolved,
    p: &Placement,
    address_errors: &[String],
    extra: impl IntoIterator<Item = String>,
) -> Reports {
    let mut problems: BTreeSet<String> = r.built.problems.iter().map(ToString::to_string).collect();
    problems.extend(p.plan.unplaced.iter().cloned());
    problems.extend(r.problems.iter().cloned());
    problems.extend(extra);
    let policy_events = r
        .built
        .problems
        .iter()
        .filter(|pr| !before.problems.contains(&pr.to_string()))
        .filter_map(|pr| {
            let policy = pr.policy.clone()?;
            Some((
                policy,
                EventSpec {
                    warning: true,
                    reason: pr.reason,
                    note: format!("on node {}: {}", id.node, pr.message),
                },
            ))
        })
        .collect();
    let (service_events, failed_services) = failed_services(id, before, p, address_errors);
    Reports {
        policy_events,
        service_events,
        not_announced: not_announced(id, &p.views),
        reported: Reported {
            problems: problems.clone(),
            failed_services,
        },
        problems,
    }
}

/// Services this node holds while an interface failed, with an Event for each newly failed.
fn failed_services(
    id: &Identity,
    before: &Reported,
    p: &Placement,
    address_errors: &[String],
) -> (Vec<(ServiceKey, EventSpec)>, BTreeSet<ServiceKey>) {
    if address_errors.is_empty() {
        return (vec![], BTreeSet::new());
    }
    let failed: BTreeSet<ServiceKey> = p
        .views
        .iter()
        .filter(|v| v.held())
        .map(|v| v.key.clone())
        .collect();
    let events = failed
        .iter()
        .filter(|k| !before.failed_services.contains(*k))
        .map(|k| {
            let note = format!(
                "node {} cannot hold the address: {}",
                id.node,
                address_errors.join("; ")
            );
            (
                k.clone(),
                EventSpec {
                    warning: true,
                    reason: "AnnounceFailed",
                    note,
                },
            )
        })
        .collect();
    (events, failed)
}

/// The notes on Services nobody announces that this node is the one to report on. Which
/// nodes announce a Service is written by the allocator, from every node's NodeState: agents
/// never write Services.
fn not_announced(id: &Identity, views: &[NodeView]) -> Vec<ServiceNote> {
    views
        .iter()
        .filter(|v| !v.announced && v.reporter.as_deref() == Some(id.node.as_str()))
        .filter_map(|v| {
            Some(ServiceNote {
                service: v.key.to_string(),
                reason: v.unheld.clone()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
