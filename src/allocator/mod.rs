//! The allocator role: watches Services, AddressPools and Namespaces, runs IPAM over the whole
//! picture whenever something changes, and writes what differs. Only the lease holder writes;
//! a standby keeps its caches warm so it can take over at once.
//!
//! Kubernetes is the only store: every pass starts from the Services' own status, so a restart
//! or a new leader never renumbers a live service. What a pass writes is decided in
//! [`decide`] (pure); this module gathers the caches and carries the writes out.

pub mod announcing;
mod caches;
pub mod changes;
pub mod decide;
pub mod leader;
mod rollout;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::{AddressPool, RoutingPolicy, annotations};
use crate::backoff::sleep_until;
use crate::coalesce::{self, Coalesce};
use crate::events::EventPublisher;
use crate::ipam::{self, Family, Outcome};
use crate::membership::Liveness;
use crate::metrics::{
    ChangeLabels, Health, KindLabels, Metrics, PoolLabels, ReasonLabels, StateLabels,
};
use crate::render::attributes::Judge;
use caches::Caches;
use changes::ServiceChange;
use decide::{Grace, Served, StatusWrite, Written};

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
    /// The staged rollout of routing changes it drives.
    pub rollout: crate::rollout::Follow,
    /// The templates ConfigMap revisions carry (in the rollout's namespace).
    pub templates_configmap: Option<String>,
}

/// A write the API server refused. Counted and logged in one place ([`Ctx::write_failed`]);
/// the pass goes on, and failed writes are retried with backoff.
#[derive(Debug, thiserror::Error)]
#[error("could not write {what} of {kind} {name}: {source}")]
pub struct WriteError {
    kind: String,
    name: String,
    what: &'static str,
    #[source]
    source: kube::Error,
}

impl WriteError {
    pub fn metric_label(&self) -> &str {
        &self.kind
    }
}

struct Ctx {
    client: Client,
    cfg: Config,
    served: Served,
    caches: Caches,
    liveness: Liveness,
    /// Nodes whose agent is alive, as of the last lease event.
    live_nodes: BTreeSet<String>,
    /// Pools whose gauges are exported.
    recorded_pools: BTreeSet<String>,
    grace: Grace,
    /// When a pass is due without any change (the end of a grace period).
    wake_at: Option<Instant>,
    metrics: Arc<Metrics>,
    events: EventPublisher,
    written: Written,
    rollout_written: rollout::Written,
}

pub async fn run(
    client: Client,
    cfg: Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let caches = Caches::start(&client, &cfg);
    let (leading_tx, leading) = watch::channel(false);
    let lease_task = tokio::spawn(leader::run(
        client.clone(),
        cfg.lease.clone(),
        leading_tx,
        cancel.clone(),
    ));
    tokio::select! {
        _ = cancel.cancelled() => { lease_task.await.ok(); return Ok(()) }
        r = caches.wait_until_ready() => r?,
    }
    tracing::info!(
        services = caches.services.state().len(),
        pools = caches.pools.state().len(),
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
        served: Served {
            class: cfg.class.clone(),
            require_class: cfg.require_class,
        },
        cfg,
        caches,
        liveness: Liveness::observer(),
        live_nodes: BTreeSet::new(),
        recorded_pools: BTreeSet::new(),
        grace: Grace::default(),
        wake_at: None,
        metrics,
        events,
        written: Written::default(),
        rollout_written: Default::default(),
    };
    ctx.update_live_nodes();
    ctx.serve(leading, cancel).await;
    lease_task.await.ok();
    Ok(())
}

/// What wakes the allocator's loop.
enum Wake {
    Cancelled,
    /// A watched object other than a node Lease or a NodeState changed.
    Changed,
    LeasesChanged,
    /// Time to read the node Leases ([`coalesce::LEASES`] after the last read).
    LeasesDue,
    NodeStatesChanged,
    /// Time to pass for NodeState reports ([`coalesce::NODE_STATES`] after the last pass).
    NodeStatesDue,
    /// Leadership was won or lost.
    Leading,
    /// A retry or a grace period is due.
    Timer,
}

impl Ctx {
    /// Waits for changes, and while leading, passes; failed writes are retried with backoff.
    async fn serve(&mut self, mut leading: watch::Receiver<bool>, cancel: CancellationToken) {
        let mut retry: Option<Duration> = None;
        let mut leases = Coalesce::new(coalesce::LEASES);
        let mut node_states = Coalesce::new(coalesce::NODE_STATES);
        loop {
            let due = retry.unwrap_or(Duration::from_secs(300)).min(
                self.wake_at.map_or(Duration::MAX, |w| {
                    w.saturating_duration_since(Instant::now())
                }),
            );
            let wake = self
                .next_wake(&mut leading, &cancel, &leases, &node_states, due)
                .await;
            let now = Instant::now();
            let pass = match wake {
                Wake::Cancelled => return,
                Wake::LeasesChanged => {
                    leases.ask(now);
                    false
                }
                Wake::LeasesDue => {
                    leases.done(now);
                    self.update_live_nodes()
                }
                Wake::NodeStatesChanged => {
                    node_states.ask(now);
                    false
                }
                Wake::Changed | Wake::NodeStatesDue | Wake::Leading | Wake::Timer => true,
            };
            if !pass {
                continue;
            }
            // A pass reads every NodeState: reports waiting for their turn are in it.
            node_states.done(now);
            let is_leader = *leading.borrow_and_update();
            self.metrics.is_leader.set(i64::from(is_leader));
            if !is_leader {
                continue;
            }
            let started = Instant::now();
            let failed = self.pass().await;
            self.metrics
                .reconcile_duration
                .observe(started.elapsed().as_secs_f64());
            retry = (failed > 0).then(|| {
                let next = retry.map_or(Duration::from_millis(500), |d| {
                    (d * 2).min(Duration::from_secs(30))
                });
                tracing::warn!(failed, retry_in = ?next, "some writes failed; will retry");
                next
            });
        }
    }

    /// What wakes the loop; nothing is done here.
    async fn next_wake(
        &self,
        leading: &mut watch::Receiver<bool>,
        cancel: &CancellationToken,
        leases: &Coalesce,
        node_states: &Coalesce,
        due: Duration,
    ) -> Wake {
        let changed = self.caches.changed.clone();
        let leases_changed = self.caches.leases_changed.clone();
        let states_changed = self.caches.node_states_changed.clone();
        tokio::select! {
            _ = cancel.cancelled() => Wake::Cancelled,
            _ = changed.notified() => Wake::Changed,
            _ = leases_changed.notified() => Wake::LeasesChanged,
            _ = sleep_until(leases.due()) => Wake::LeasesDue,
            _ = states_changed.notified() => Wake::NodeStatesChanged,
            _ = sleep_until(node_states.due()) => Wake::NodeStatesDue,
            r = leading.changed() => if r.is_err() { Wake::Cancelled } else { Wake::Leading },
            _ = tokio::time::sleep(due) => Wake::Timer,
        }
    }

    /// Records node lease renewals; true when the set of live nodes changed.
    fn update_live_nodes(&mut self) -> bool {
        let leases = self.caches.node_leases.state();
        let now = Instant::now();
        self.liveness.observe(&leases, now);
        let live = self.liveness.live_nodes(&leases, now);
        let changed = live != self.live_nodes;
        self.live_nodes = live;
        let nodes: BTreeSet<String> = self
            .caches
            .nodes
            .state()
            .iter()
            .map(|n| n.name_any())
            .collect();
        let (up, expired) = decide::agent_counts(&leases, &self.live_nodes, &nodes);
        for (state, n) in [("live", up), ("expired", expired)] {
            self.metrics
                .node_agents
                .get_or_create(&StateLabels {
                    state: state.into(),
                })
                .set(n as i64);
        }
        changed
    }

    /// One allocation pass over everything. Returns the number of failed writes.
    async fn pass(&mut self) -> usize {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let services = decide::overlay(&self.caches.services.state(), &mut self.written);
        let pools = self.caches.pools.state();
        let labels = crate::watch::labels_by_name(&self.caches.namespaces);
        let (pool_inputs, requests) = decide::ipam_input(&self.served, &services, &pools, &labels);
        let t = Instant::now();
        let outcome = ipam::allocate(&pool_inputs, &requests);
        self.metrics
            .ipam_duration
            .observe(t.elapsed().as_secs_f64());
        let pool_objects: Vec<AddressPool> = pools.iter().map(|p| (**p).clone()).collect();
        let policies: Vec<RoutingPolicy> = self
            .caches
            .policies
            .state()
            .iter()
            .map(|p| (**p).clone())
            .collect();
        let grants = decide::Grants {
            judge: Judge::new(&pool_objects, &policies),
            namespace_labels: &labels,
        };
        let w = decide::service_writes(
            &self.served,
            &services,
            &outcome,
            &grants,
            decide::NodesSeen {
                states: &self.caches.node_states.state(),
                live: &self.live_nodes,
            },
            &mut self.grace,
            Instant::now(),
        );
        self.wake_at = w.wake_at;
        for (state, n) in w.tally.by_state() {
            self.metrics
                .services
                .get_or_create(&StateLabels {
                    state: state.into(),
                })
                .set(n as i64);
        }
        let mut failed = self.write_services(w.writes).await;
        self.record_pool_counts(&outcome);
        for write in decide::pool_writes(&pools, &outcome, &now) {
            if let Some(e) = &outcome.pools[&write.name].invalid {
                tracing::warn!(pool = %write.name, reason = %e, "invalid address pool");
            }
            failed += usize::from(!self.write_status::<AddressPool, _>(write).await);
        }
        for write in decide::policy_writes(&self.caches.policies.state(), &now) {
            for ev in &write.events {
                tracing::warn!(policy = %write.name, reason = %ev.note, "invalid routing policy");
            }
            failed += usize::from(!self.write_status::<RoutingPolicy, _>(write).await);
        }
        let (rollout_failed, rollout_wake) = self.step_rollout().await;
        if let Some(d) = rollout_wake {
            let at = Instant::now() + d;
            self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
        }
        failed + rollout_failed
    }

    /// Carries out the Service writes, some at once; returns how many failed.
    async fn write_services(&mut self, work: Vec<(Service, ServiceChange)>) -> usize {
        let results: Vec<Result<(String, String, Service), WriteError>> =
            futures::stream::iter(work)
                .map(|(svc, change)| self.write_service(svc, change))
                .buffer_unordered(self.cfg.write_concurrency.max(1))
                .collect()
                .await;
        let mut failed = 0;
        for r in results {
            match r {
                Ok((uid, rv, svc)) => {
                    self.written.0.insert(uid, (rv, svc));
                }
                Err(e) => {
                    self.write_failed(&e);
                    failed += 1;
                }
            }
        }
        failed
    }

    /// The one place a failed write is logged and counted.
    fn write_failed(&self, e: &WriteError) {
        tracing::warn!(error = %e, "write failed");
        self.metrics
            .write_errors
            .get_or_create(&KindLabels {
                kind: e.metric_label().to_string(),
            })
            .inc();
    }

    /// The pools' gauges; those of deleted pools go, or their last figures would stay (and
    /// alert) until a restart.
    fn record_pool_counts(&mut self, outcome: &Outcome) {
        let pools: BTreeSet<String> = outcome.pools.keys().cloned().collect();
        for gone in self.recorded_pools.difference(&pools) {
            for family in [Family::V4, Family::V6] {
                for state in ["allocated", "available"] {
                    self.metrics.pool_addresses.remove(&PoolLabels {
                        pool: gone.clone(),
                        family: family.k8s_name().into(),
                        state: state.into(),
                    });
                }
            }
        }
        self.recorded_pools = pools;
        for (name, report) in &outcome.pools {
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
        }
    }

    /// Merge-patches the status of a cluster-scoped object (a pool or a policy), then publishes
    /// its Events. True unless the write failed (an object deleted since the snapshot is fine).
    async fn write_status<K, S>(&self, write: StatusWrite<S>) -> bool
    where
        K: kube::Resource<Scope = kube::core::ClusterResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
        S: serde::Serialize,
    {
        let api: Api<K> = Api::all(self.client.clone());
        let patch = Patch::Merge(json!({ "status": write.status }));
        match api
            .patch_status(&write.name, &PatchParams::default(), &patch)
            .await
        {
            Ok(_) => {
                for ev in write.events {
                    self.events.publish(&write.object, ev).await;
                }
                true
            }
            Err(kube::Error::Api(s)) if s.code == 404 => true,
            Err(source) => {
                self.write_failed(&WriteError {
                    kind: K::kind(&K::DynamicType::default()).to_string(),
                    name: write.name,
                    what: "status",
                    source,
                });
                false
            }
        }
    }

    /// Carries out one service's change. Returns (uid, cache resourceVersion, object as written).
    async fn write_service(
        &self,
        svc: Service,
        change: ServiceChange,
    ) -> Result<(String, String, Service), WriteError> {
        let latest = self.patch_service(&svc, &change).await?;
        record_change(&self.metrics, &svc, &change);
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

    /// Writes the change's status and annotations; returns the Service as last written.
    async fn patch_service(
        &self,
        svc: &Service,
        change: &ServiceChange,
    ) -> Result<Service, WriteError> {
        let name = svc.name_any();
        let api: Api<Service> =
            Api::namespaced(self.client.clone(), &svc.namespace().unwrap_or_default());
        let failed = |what, source| WriteError {
            kind: "Service".into(),
            name: format!("{}/{name}", svc.namespace().unwrap_or_default()),
            what,
            source,
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
            latest = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(|e| failed("status", e))?;
        }
        if !change.annotations.is_empty() {
            let patch = json!({ "metadata": { "annotations": change.annotations } });
            latest = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(|e| failed("annotations", e))?;
        }
        Ok(latest)
    }
}

/// Metrics and log lines for a Service change that was written.
fn record_change(metrics: &Metrics, svc: &Service, change: &ServiceChange) {
    let key = format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any());
    if change.allocated {
        metrics.allocations.inc();
        tracing::info!(service = %key, addresses = ?change.ingress, "allocated");
    }
    if change.released {
        metrics.releases.inc();
        tracing::info!(service = %key, "released");
    }
    if let Some(after) = change.annotations.get(annotations::ANNOUNCING) {
        let before = svc.annotations().get(annotations::ANNOUNCING);
        let kind = announcing::change_kind(
            before.map_or("", String::as_str),
            after.as_deref().unwrap_or(""),
        );
        metrics
            .announcement_changes
            .get_or_create(&ChangeLabels {
                change: kind.into(),
            })
            .inc();
    }
    if let Some(reason) = change.failure_reason {
        metrics
            .allocation_failures
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc();
        let why = change
            .annotations
            .get(annotations::ALLOCATION_ERROR)
            .cloned()
            .flatten()
            .unwrap_or_default();
        tracing::warn!(service = %key, reason = why, "allocation failed");
    }
}
