//! The allocator role: watches Services, AddressPools and Namespaces, runs IPAM over the whole
//! picture whenever something changes, and writes what differs. Only the lease holder writes;
//! a standby keeps its caches warm so it can take over at once.
//!
//! Kubernetes is the only store: every pass starts from the Services' own status, so a restart
//! or a new leader never renumbers a live service.

pub mod announcing;
pub mod changes;
pub mod leader;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{PartialObjectMeta, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::api::{AddressPool, NodeState, RoutingPolicy, annotations};
use crate::events::EventPublisher;
use crate::ipam::{self, Family, Pool, PoolInput, ServiceKey, ServiceRequest};
use crate::membership::{self, Liveness};
use crate::metrics::{Health, KindLabels, Metrics, PoolLabels, ReasonLabels};
use crate::watch::{cache, keep};
use changes::ServiceChange;

#[derive(Clone, Debug)]
pub struct Config {
    /// The `loadBalancerClass` served.
    pub class: String,
    /// Ignore services with no class.
    pub require_class: bool,
    pub lease: leader::LeaseConfig,
    /// Writes in flight at once.
    pub write_concurrency: usize,
    /// Namespace of the agents' node Leases: their liveness decides whose NodeState counts
    /// for the `routelb.io/announcing` annotation.
    pub node_lease_namespace: String,
}

/// How long a service that was announced may have no live holder before it is reported as not
/// announced: long enough for a graceful failover, short next to a hard one.
const UNANNOUNCED_GRACE: Duration = Duration::from_secs(2);

/// Services routelb manages (see [`ipam::managed`]).
fn managed(svc: &Service, cfg: &Config) -> bool {
    ipam::managed(svc, &cfg.class, cfg.require_class)
}

/// Whether routelb left its mark on a service that it no longer serves (its type changed).
fn needs_release(svc: &Service, cfg: &Config) -> bool {
    let spec = svc.spec.as_ref();
    let class_ok = spec
        .and_then(|s| s.load_balancer_class.as_deref())
        .is_none_or(|c| c == cfg.class);
    let is_lb = spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
    class_ok
        && !is_lb
        && [
            annotations::POOL_USED,
            annotations::ALLOCATION_ERROR,
            annotations::ALLOCATION_WARNING,
        ]
        .iter()
        .any(|k| svc.annotations().contains_key(*k))
}

struct Ctx {
    client: Client,
    cfg: Config,
    services: Store<Service>,
    pools: Store<AddressPool>,
    policies: Store<RoutingPolicy>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    node_states: Store<NodeState>,
    node_leases: Store<Lease>,
    liveness: Liveness,
    /// Nodes whose agent is alive, as of the last lease event.
    live_nodes: BTreeSet<String>,
    /// Services that were announced and that no live node holds right now, since when.
    unannounced_since: HashMap<String, Instant>,
    /// When a pass is due without any change (the end of such a grace period).
    wake_at: Option<Instant>,
    metrics: Arc<Metrics>,
    events: EventPublisher,
    /// Services as we last wrote them, keyed by uid, with the resourceVersion the cache had
    /// then: until the cache moves past that version, our write is newer than the cache.
    written: HashMap<String, (String, Service)>,
}

pub async fn run(
    client: Client,
    cfg: Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let trigger = Arc::new(Notify::new());

    let services = cache(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        "services",
        crate::watch::slim_service,
        trigger.clone(),
    );
    let pools = cache(
        Api::<AddressPool>::all(client.clone()),
        watcher::Config::default(),
        "addresspools",
        keep,
        trigger.clone(),
    );
    let policies = cache(
        Api::<RoutingPolicy>::all(client.clone()),
        watcher::Config::default(),
        "routingpolicies",
        keep,
        trigger.clone(),
    );
    // Namespaces as metadata only: their labels are all the selectors need.
    let namespaces = cache(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watcher::Config::default(),
        "namespaces",
        keep,
        trigger.clone(),
    );

    let node_states = cache(
        Api::<NodeState>::all(client.clone()),
        watcher::Config::default(),
        "nodestates",
        |n: &mut NodeState| n.managed_fields_mut().clear(),
        trigger.clone(),
    );
    // Node lease renewals arrive every renew period from every node: they wake the loop only
    // to see whether somebody died (see below), not for a pass each.
    let lease_events = Arc::new(Notify::new());
    let node_leases = cache(
        Api::<Lease>::namespaced(client.clone(), &cfg.node_lease_namespace),
        membership::lease_watch(),
        "node leases",
        keep,
        lease_events.clone(),
    );

    let (leading_tx, mut leading) = watch::channel(false);
    let lease_task = tokio::spawn(leader::run(
        client.clone(),
        cfg.lease.clone(),
        leading_tx,
        cancel.clone(),
    ));

    tokio::select! {
        _ = cancel.cancelled() => { lease_task.await.ok(); return Ok(()) }
        r = async {
            services.wait_until_ready().await?;
            pools.wait_until_ready().await?;
            policies.wait_until_ready().await?;
            node_states.wait_until_ready().await?;
            node_leases.wait_until_ready().await?;
            namespaces.wait_until_ready().await
        } => r?,
    }
    tracing::info!(
        services = services.state().len(),
        pools = pools.state().len(),
        "caches synced"
    );
    health.set_ready(true);

    let events = EventPublisher::new(
        client.clone(),
        "routelb-allocator",
        &cfg.lease.identity,
        "Allocate",
    );
    let mut ctx = Ctx {
        client,
        cfg,
        services,
        pools,
        policies,
        namespaces,
        node_states,
        node_leases,
        liveness: Liveness::observer(),
        live_nodes: BTreeSet::new(),
        unannounced_since: HashMap::new(),
        wake_at: None,
        metrics,
        events,
        written: HashMap::new(),
    };
    ctx.update_live_nodes();
    let mut retry: Option<Duration> = None;
    loop {
        let due =
            retry
                .unwrap_or(Duration::from_secs(300))
                .min(ctx.wake_at.map_or(Duration::MAX, |w| {
                    w.saturating_duration_since(Instant::now())
                }));
        let sleep = tokio::time::sleep(due);
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = trigger.notified() => {}
            _ = lease_events.notified() => if !ctx.update_live_nodes() { continue },
            r = leading.changed() => if r.is_err() { break },
            _ = sleep => {}
        }
        let is_leader = *leading.borrow_and_update();
        ctx.metrics.is_leader.set(i64::from(is_leader));
        if !is_leader {
            continue;
        }
        let started = Instant::now();
        let failed = ctx.pass().await;
        ctx.metrics
            .reconcile_duration
            .observe(started.elapsed().as_secs_f64());
        retry = if failed == 0 {
            None
        } else {
            let next = retry.map_or(Duration::from_millis(500), |d| {
                (d * 2).min(Duration::from_secs(30))
            });
            tracing::warn!(failed, retry_in = ?next, "some writes failed; will retry");
            Some(next)
        };
    }
    lease_task.await.ok();
    Ok(())
}

impl Ctx {
    /// Records node lease renewals; true when the set of live nodes changed.
    fn update_live_nodes(&mut self) -> bool {
        let leases = self.node_leases.state();
        let now = Instant::now();
        self.liveness.observe(&leases, now);
        let live = self.liveness.live_nodes(&leases, now);
        let changed = live != self.live_nodes;
        self.live_nodes = live;
        changed
    }

    /// One allocation pass over everything. Returns the number of failed writes.
    async fn pass(&mut self) -> usize {
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        );
        // The cache, with our own newer writes laid over it.
        let mut services: Vec<Service> = Vec::new();
        let mut live = std::collections::HashSet::new();
        for s in self.services.state() {
            let uid = s.uid().unwrap_or_default();
            live.insert(uid.clone());
            match self.written.get(&uid) {
                Some((rv, ours)) if s.resource_version() == Some(rv.clone()) => {
                    services.push(ours.clone())
                }
                _ => {
                    self.written.remove(&uid);
                    services.push((*s).clone());
                }
            }
        }
        self.written.retain(|uid, _| live.contains(uid));

        let ns_labels = crate::watch::labels_by_name(&self.namespaces);
        let mut pool_objs = self.pools.state();
        pool_objs.sort_by_key(|p| p.name_any());
        let pool_inputs: Vec<PoolInput> = pool_objs
            .iter()
            .map(|p| (p.name_any(), Pool::from_spec(&p.name_any(), &p.spec)))
            .collect();
        let empty = BTreeMap::new();
        let requests: Vec<ServiceRequest> = services
            .iter()
            .filter(|s| managed(s, &self.cfg))
            .map(|s| {
                ServiceRequest::from_service(
                    s,
                    ns_labels
                        .get(&s.namespace().unwrap_or_default())
                        .unwrap_or(&empty),
                )
            })
            .collect();

        let t = Instant::now();
        let outcome = ipam::allocate(&pool_inputs, &requests);
        self.metrics
            .ipam_duration
            .observe(t.elapsed().as_secs_f64());

        let states = self.node_states.state();
        let seen =
            announcing::Announcements::collect(states.iter().map(|s| s.as_ref()), &self.live_nodes);
        self.wake_at = None;
        let mut work = Vec::new();
        for svc in &services {
            let decision = if managed(svc, &self.cfg) {
                let key = ServiceKey::new(svc.namespace().unwrap_or_default(), svc.name_any());
                outcome.services.get(&key)
            } else if needs_release(svc, &self.cfg) {
                None
            } else {
                continue;
            };
            let mut change = changes::service_change(svc, decision);
            let addresses = change
                .ingress
                .clone()
                .unwrap_or_else(|| ipam::ingress_ips(svc));
            let key = format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any());
            let before = svc.annotations().get(annotations::ANNOUNCING);
            // A failover passes through a moment when no live node holds the address yet:
            // give it a moment, so it reads as a move and not as a withdrawal.
            let gap = !addresses.is_empty()
                && before.is_some_and(|b| !b.is_empty())
                && seen.value(&addresses).is_empty();
            let now = Instant::now();
            let since = if gap {
                *self.unannounced_since.entry(key.clone()).or_insert(now)
            } else {
                self.unannounced_since.remove(&key);
                now
            };
            if gap && now < since + UNANNOUNCED_GRACE {
                let at = since + UNANNOUNCED_GRACE;
                self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
            } else {
                announcing::add_change(
                    &mut change,
                    &key,
                    before.map(String::as_str),
                    &addresses,
                    &seen,
                );
            }
            if !change.is_empty() {
                work.push((svc.clone(), change));
            }
        }
        let results: Vec<Result<(String, String, Service), ()>> = futures::stream::iter(work)
            .map(|(svc, change)| self.write_service(svc, change))
            .buffer_unordered(self.cfg.write_concurrency.max(1))
            .collect()
            .await;
        let mut failed = 0;
        for r in results {
            match r {
                Ok((uid, rv, svc)) => {
                    self.written.insert(uid, (rv, svc));
                }
                Err(()) => failed += 1,
            }
        }

        for pool in &pool_objs {
            let name = pool.name_any();
            let Some(report) = outcome.pools.get(&name) else {
                continue;
            };
            for (f, counts) in [(Family::V4, report.v4), (Family::V6, report.v6)] {
                for (state, n) in [
                    ("allocated", counts.allocated),
                    ("available", counts.available),
                ] {
                    let labels = PoolLabels {
                        pool: name.clone(),
                        family: f.k8s_name().into(),
                        state: state.into(),
                    };
                    self.metrics
                        .pool_addresses
                        .get_or_create(&labels)
                        .set(n.min(i64::MAX as u128) as i64);
                }
            }
            let old = pool.status.as_ref();
            let desired = changes::pool_status(report, pool.metadata.generation, old, &now);
            if old.is_some_and(|o| !changes::pool_status_differs(o, &desired)) {
                continue;
            }
            match self
                .patch_cluster_status::<AddressPool>(&name, &desired)
                .await
            {
                Ok(true) => {
                    for ev in changes::pool_events(&desired, old) {
                        self.events.publish(&pool.object_ref(&()), ev).await;
                    }
                    if let Some(e) = &report.invalid {
                        tracing::warn!(pool = %name, reason = %e, "invalid address pool");
                    }
                }
                Ok(false) => {}
                Err(()) => failed += 1,
            }
        }
        failed + self.write_policy_statuses().await
    }

    /// RoutingPolicy validity as status conditions and Events; the agents add what only a node
    /// can see (a protocol with no instance in its daemon).
    async fn write_policy_statuses(&self) -> usize {
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        );
        let mut failed = 0;
        for policy in self.policies.state() {
            let name = policy.name_any();
            let old = policy.status.as_ref();
            let mut desired =
                changes::policy_status(&policy.spec, policy.metadata.generation, old, &now);
            // Keep conditions other writers (agents) own.
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
                continue;
            }
            match self
                .patch_cluster_status::<RoutingPolicy>(&name, &desired)
                .await
            {
                Ok(true) => {
                    for ev in changes::policy_events(&desired, old) {
                        tracing::warn!(policy = %name, reason = %ev.note, "invalid routing policy");
                        self.events.publish(&policy.object_ref(&()), ev).await;
                    }
                }
                Ok(false) => {}
                Err(()) => failed += 1,
            }
        }
        failed
    }

    /// Merge-patches the status of a cluster-scoped object (a pool or a policy). `Ok(false)`:
    /// the object was deleted since the snapshot. Errors are counted and logged here.
    async fn patch_cluster_status<K>(
        &self,
        name: &str,
        status: &impl serde::Serialize,
    ) -> Result<bool, ()>
    where
        K: kube::Resource<Scope = kube::core::ClusterResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::all(self.client.clone());
        match api
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => {
                let kind = K::kind(&K::DynamicType::default()).to_string();
                tracing::warn!(kind = %kind, name, error = %e, "could not write status");
                self.metrics
                    .write_errors
                    .get_or_create(&KindLabels { kind })
                    .inc();
                Err(())
            }
        }
    }

    /// Carries out one service's change. Returns (uid, cache resourceVersion, object as written).
    async fn write_service(
        &self,
        svc: Service,
        change: ServiceChange,
    ) -> Result<(String, String, Service), ()> {
        let ns = svc.namespace().unwrap_or_default();
        let name = svc.name_any();
        let api: Api<Service> = Api::namespaced(self.client.clone(), &ns);
        let fail = |what: &str, e: kube::Error| {
            self.metrics
                .write_errors
                .get_or_create(&KindLabels {
                    kind: "Service".into(),
                })
                .inc();
            tracing::warn!(service = %format!("{ns}/{name}"), error = %e, "could not write {what}");
        };
        let mut latest = svc.clone();
        if let Some(ips) = &change.ingress {
            let ingress: Vec<_> = ips
                .iter()
                .map(|ip| json!({ "ip": ip.to_string() }))
                .collect();
            let patch = if ingress.is_empty() {
                json!({ "status": { "loadBalancer": { "ingress": null } } })
            } else {
                json!({ "status": { "loadBalancer": { "ingress": ingress } } })
            };
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(s) => latest = s,
                Err(e) => {
                    fail("status", e);
                    return Err(());
                }
            }
        }
        if !change.annotations.is_empty() {
            let patch = json!({ "metadata": { "annotations": change.annotations } });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(s) => latest = s,
                Err(e) => {
                    fail("annotations", e);
                    return Err(());
                }
            }
        }
        if change.allocated {
            self.metrics.allocations.inc();
            tracing::info!(service = %format!("{ns}/{name}"), addresses = ?change.ingress, "allocated");
        }
        if change.released {
            self.metrics.releases.inc();
            tracing::info!(service = %format!("{ns}/{name}"), "released");
        }
        if let Some(reason) = change.failure_reason {
            self.metrics
                .allocation_failures
                .get_or_create(&ReasonLabels {
                    reason: reason.into(),
                })
                .inc();
            tracing::warn!(
                service = %format!("{ns}/{name}"),
                reason = change.annotations.get(annotations::ALLOCATION_ERROR).cloned().flatten().unwrap_or_default(),
                "allocation failed"
            );
        }
        let reference = latest.object_ref(&());
        for ev in change.events {
            self.events.publish(&reference, ev).await;
        }
        Ok((
            svc.uid().unwrap_or_default(),
            svc.resource_version().unwrap_or_default(),
            latest,
        ))
    }
}
