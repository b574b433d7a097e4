//! The node agent: one per node, beside FRR or BIRD. It turns allocated addresses into
//! addresses on this node's interfaces and announcements:
//!
//! ```text
//! watches (Services, EndpointSlices, pools, policies, node Leases, this Node) + netlink facts
//!   └─► render (policies → fragment, and which routed pools this node announces)
//!   └─► election (who holds what) ─► plan (this node: address → interface)
//!         ├─► netlink: converge addresses, GARP/NA on acquiring a local address   every change
//!         └─► daemon: apply the fragment                           only when the fragment changed
//!   └─► reports (written in the background): NodeState status, Service annotation + Events
//! ```
//!
//! Pure parts live in [`crate::election`], [`crate::plan`], [`crate::render`], [`membership`],
//! [`endpoints`] and [`status`]; this module only wires them to the API, netlink and daemon.

pub mod endpoints;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use kube::api::{DynamicObject, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::api::{
    AddressPool, NodeState, NodeStateStatus, PoolMode, RoutingPolicy, ServiceNote, annotations,
};
use crate::daemon::Driver;
use crate::daemon::applier::{Applier, LastApply};
use crate::election::{self, Candidate, Decision, Member, Readiness};
use crate::events::EventPublisher;
use crate::ipam::{self, ServiceKey};
use crate::membership;
use crate::metrics::{AgentMetrics, Health, KindLabels, ResultLabels};
use crate::netlink::Netlink;
use crate::node::IfAddress;
use crate::node::NodeInterface;
use crate::plan;
use crate::render::model::{Instances, RenderInput};
use crate::render::{DaemonKind, Templates};
use crate::service::ServiceAddresses;
use crate::status::EventSpec;
use crate::watch::{cache, cache_with, keep};

#[derive(Clone, Debug)]
pub struct Config {
    pub node: String,
    /// The `loadBalancerClass` served (Services with no class are served too unless
    /// `require_class`), as for the allocator.
    pub class: String,
    pub require_class: bool,
    /// Namespace of the per-node Leases.
    pub lease_namespace: String,
    /// A node whose Lease is not renewed for this long is dead: its local addresses move.
    pub lease_duration: Duration,
    pub renew_period: Duration,
    /// Lifetime of the addresses put on interfaces, refreshed every third of it: an agent
    /// that dies without cleaning up stops holding them after this.
    pub address_lifetime: Duration,
    pub lb_interface: String,
    pub daemon: DaemonKind,
    pub driver: Driver,
    pub templates: Option<PathBuf>,
    /// How often the daemon is checked for lost objects (a restart) when nothing changed.
    pub resync: Duration,
}

/// Services the agent acts on: served by routelb (as the allocator decides) and given an
/// address from a pool. The pool is `routelb.io/pool-used` for now; [`attribute_pools`] checks it.
fn service_input(svc: &Service, cfg: &Config) -> Option<(ServiceAddresses, bool, bool)> {
    if !ipam::managed(svc, &cfg.class, cfg.require_class) {
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
    let withdraw = svc
        .annotations()
        .get(annotations::WITHDRAW_WHEN_NO_ENDPOINTS)
        .is_some_and(|v| v == "true");
    Some((
        ServiceAddresses {
            key: ServiceKey::new(svc.namespace().unwrap_or_default(), svc.name_any()),
            pool,
            addresses,
            bgp_communities: svc.annotations().get(annotations::BGP_COMMUNITIES).cloned(),
            admitted: false,
        },
        local_traffic,
        withdraw,
    ))
}

/// Attributes each service's addresses to a pool ([`ServiceAddresses::attribute`]): anyone who
/// can edit a Service can write `routelb.io/pool-used`, so it grants nothing by itself.
fn attribute_pools(inputs: &mut [Input], pools: &[ipam::Pool]) {
    for i in inputs {
        i.addresses.attribute(&i.request, pools);
    }
}

/// What the agent knows of this node from netlink, as offered to the election: subnets of
/// interfaces that are up (never the load-balancer interface).
fn me_from_facts(cfg: &Config, facts: &[NodeInterface], routed_pools: BTreeSet<String>) -> Member {
    let mut subnets = Vec::new();
    for i in facts {
        if i.up && i.name != cfg.lb_interface {
            for s in &i.subnets {
                subnets.push((i.name.clone(), *s));
            }
        }
    }
    Member {
        node: cfg.node.clone(),
        subnets,
        routed_pools,
    }
}

/// A service as one pass sees it.
struct Input {
    addresses: ServiceAddresses,
    /// What IPAM reads of the service: its namespace and labels, for pool admission.
    request: ipam::ServiceRequest,
    local_traffic: bool,
    withdraw_without_endpoints: bool,
}

/// Background writes, so a pass never waits on the API server.
enum Write {
    ServiceEvent { key: ServiceKey, event: EventSpec },
    PolicyEvent { policy: String, event: EventSpec },
    NodeStatus(NodeStateStatus),
}

async fn writer(
    client: Client,
    node: String,
    metrics: Arc<AgentMetrics>,
    mut rx: mpsc::UnboundedReceiver<Write>,
) {
    let events = EventPublisher::new(client.clone(), "routelb-agent", &node, "Announce");
    let fail = |kind: &str, e: kube::Error| {
        metrics
            .write_errors
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
        tracing::warn!(kind, error = %e, "write failed");
    };
    while let Some(w) = rx.recv().await {
        match w {
            Write::ServiceEvent { key, event } => {
                let reference = k8s_openapi::api::core::v1::ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Service".into()),
                    namespace: Some(key.namespace.clone()),
                    name: Some(key.name.clone()),
                    ..Default::default()
                };
                events.publish(&reference, event).await;
            }
            Write::PolicyEvent { policy, event } => {
                let reference = k8s_openapi::api::core::v1::ObjectReference {
                    api_version: Some(RoutingPolicy::api_version(&()).into()),
                    kind: Some("RoutingPolicy".into()),
                    name: Some(policy),
                    ..Default::default()
                };
                events.publish(&reference, event).await;
            }
            Write::NodeStatus(status) => {
                let api: Api<NodeState> = Api::all(client.clone());
                let object = json!({
                    "apiVersion": NodeState::api_version(&()),
                    "kind": "NodeState",
                    "metadata": { "name": node },
                    "spec": {},
                });
                let r = match api
                    .patch(
                        &node,
                        &PatchParams::apply("routelb-agent"),
                        &Patch::Apply(&object),
                    )
                    .await
                {
                    Ok(_) => {
                        api.patch_status(
                            &node,
                            &PatchParams::default(),
                            &Patch::Merge(json!({ "status": status })),
                        )
                        .await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = r {
                    fail("NodeState", e);
                }
            }
        }
    }
}

/// Renews this node's Lease every `renew_period` and whenever the node's facts change.
/// Publishes whether the API is reachable: false once no renewal succeeded for a lease duration.
async fn renew_lease(
    client: Client,
    cfg: Config,
    mut me: watch::Receiver<Option<Member>>,
    reachable: watch::Sender<bool>,
    cancel: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, &cfg.lease_namespace);
    let name = membership::lease_name(&cfg.node);
    let mut last_ok = Instant::now();
    loop {
        let current = me.borrow_and_update().clone();
        if let Some(m) = current {
            let obj = membership::lease_object(
                &m,
                &cfg.lease_namespace,
                cfg.lease_duration,
                SystemTime::now(),
            );
            let params = PatchParams::apply("routelb-agent").force();
            let patch = Patch::Apply(&obj);
            let call = api.patch(&name, &params, &patch);
            match tokio::time::timeout(cfg.renew_period.max(Duration::from_secs(1)), call).await {
                Ok(Ok(_)) => {
                    last_ok = Instant::now();
                    reachable.send_if_modified(|r| !std::mem::replace(r, true));
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "could not renew the node lease"),
                Err(_) => tracing::warn!("renewing the node lease timed out"),
            }
            if last_ok.elapsed() > cfg.lease_duration {
                reachable.send_if_modified(|r| std::mem::replace(r, false));
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(cfg.renew_period) => {}
            r = me.changed() => if r.is_err() { return },
        }
    }
}

/// Everything a pass needs that outlives it.
struct Agent {
    cfg: Config,
    client: Client,
    nl: Netlink,
    applier: Applier,
    instances: Option<Instances>,
    templates: Option<Templates>,
    /// Why the templates on disk were not loaded, while they are not.
    template_error: Option<String>,
    /// Each pool's and policy's last definition that was valid.
    last_valid_pools: crate::last_valid::LastValidPools,
    last_valid_policies: crate::last_valid::LastValidPolicies,
    metrics: Arc<AgentMetrics>,
    writes: mpsc::UnboundedSender<Write>,
    services: Store<Service>,
    slices: Store<DynamicObject>,
    pools: Store<AddressPool>,
    policies: Store<RoutingPolicy>,
    leases: Store<Lease>,
    nodes: Store<Node>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    liveness: membership::Liveness,
    members: Vec<Member>,
    me: watch::Sender<Option<Member>>,
    /// routelb's addresses per interface after the last convergence.
    held: BTreeMap<String, BTreeSet<IfAddress>>,
    /// Services nobody announces that this node reports on, with why (into NodeState).
    not_announced: Vec<ServiceNote>,
    address_errors: Vec<String>,
    problems: BTreeSet<String>,
    last_status: Option<NodeStateStatus>,
    failed_services: BTreeSet<ServiceKey>,
    /// Whether a policy exports through an instance the daemon lacks: its instances are read
    /// again soon (a daemon that just started may not have loaded its configuration yet).
    instances_missing: bool,
    instance_backoff: crate::backoff::Backoff,
}

/// What woke a pass.
#[derive(Clone, Copy, Debug, Default)]
struct PassKind {
    /// Re-read the daemon's instances and check it still holds the fragment.
    check_daemon: bool,
    /// Re-add every address so its lifetime starts again.
    refresh: bool,
    /// The template directory changed.
    reload_templates: bool,
}

impl Agent {
    fn facts_member(&self, facts: &[NodeInterface], routed: BTreeSet<String>) -> Member {
        me_from_facts(&self.cfg, facts, routed)
    }

    /// Recomputes the live members; true when they changed.
    fn update_members(&mut self, me: &Member) -> bool {
        let now = Instant::now();
        // The cache's own objects: a renewal event must not cost a copy of every Lease.
        let leases = self.leases.state();
        self.liveness.observe(&leases, now);
        let members = self.liveness.members(&leases, me, now);
        self.metrics.live_nodes.set(members.len() as i64);
        let changed = members != self.members;
        if changed {
            let names: Vec<&str> = members.iter().map(|m| m.node.as_str()).collect();
            tracing::info!(nodes = ?names, "live nodes changed");
        }
        self.members = members;
        changed
    }

    /// (Re)loads the templates. A set that does not load (a bad edit of the ConfigMap) leaves
    /// the last good one in use and is reported until it is fixed.
    fn load_templates(&mut self) -> anyhow::Result<()> {
        match Templates::load(self.cfg.daemon, self.cfg.templates.as_deref()) {
            Ok(t) => {
                if self.template_error.take().is_some() || self.templates.is_some() {
                    tracing::info!("templates loaded");
                }
                self.templates = Some(t);
                Ok(())
            }
            Err(e) if self.templates.is_some() => {
                tracing::warn!(error = %e, "templates not loaded; the last good ones stay in use");
                self.template_error = Some(e.to_string());
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn pass(&mut self, kind: PassKind) -> anyhow::Result<bool> {
        let started = Instant::now();
        let cfg = self.cfg.clone();
        // Without its instances the daemon gets nothing: a fragment rendered for no instance
        // would take every `redistribute` line away from a daemon that is merely slow.
        let mut instance_error = None;
        if kind.check_daemon || self.instances.is_none() {
            match self.cfg.driver.instances().await {
                Ok(i) => self.instances = Some(i),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the daemon's routing instances");
                    instance_error =
                        Some(format!("cannot read the daemon's routing instances: {e}"));
                }
            }
        }
        if kind.reload_templates || self.templates.is_none() {
            self.load_templates()?;
        }
        let facts = self.nl.interfaces().await?;

        // Inputs from the caches.
        let current_pools: Vec<AddressPool> =
            self.pools.state().iter().map(|p| (**p).clone()).collect();
        let crate::last_valid::Effective {
            objects: pools,
            problems: mut pool_problems,
        } = self.last_valid_pools.with_deleted(&current_pools);
        let current_policies: Vec<RoutingPolicy> = self
            .policies
            .state()
            .iter()
            .map(|p| (**p).clone())
            .collect();
        self.last_valid_policies
            .forget_deleted(&current_policies, []);
        let effective_policies = self.last_valid_policies.effective(&current_policies);
        let policies = effective_policies.objects;
        pool_problems.extend(effective_policies.problems);
        let node_labels = self
            .nodes
            .state()
            .iter()
            .find(|n| n.name_any() == cfg.node)
            .map(|n| n.labels().clone())
            .unwrap_or_default();
        let namespace_labels = crate::watch::labels_by_name(&self.namespaces);
        let no_labels = BTreeMap::new();
        let mut inputs: Vec<Input> = self
            .services
            .state()
            .iter()
            .filter_map(|s| {
                let (addresses, local_traffic, withdraw_without_endpoints) =
                    service_input(s, &cfg)?;
                let labels = namespace_labels
                    .get(&addresses.key.namespace)
                    .unwrap_or(&no_labels);
                Some(Input {
                    request: ipam::ServiceRequest::from_service(s, labels),
                    addresses,
                    local_traffic,
                    withdraw_without_endpoints,
                })
            })
            .collect();
        inputs.sort_by(|a, b| a.addresses.key.cmp(&b.addresses.key));
        let parsed: Vec<ipam::Pool> = pools
            .iter()
            .filter_map(|p| ipam::Pool::from_spec(&p.name_any(), &p.spec).ok())
            .collect();
        attribute_pools(&mut inputs, &parsed);
        let modes: BTreeMap<String, PoolMode> =
            pools.iter().map(|p| (p.name_any(), p.spec.mode)).collect();
        inputs.retain(|i| modes.contains_key(&i.addresses.pool));
        self.last_valid_pools.forget_deleted(
            &current_pools,
            inputs.iter().map(|i| i.addresses.pool.as_str()),
        );
        let all: Vec<ServiceAddresses> = inputs.iter().map(|i| i.addresses.clone()).collect();

        // Render first: it also says which routed pools this node announces.
        let instances = self.instances.clone().unwrap_or_default();
        let mut built = crate::render::build(&RenderInput {
            node: Some(&cfg.node),
            node_labels: &node_labels,
            lb_interface: &cfg.lb_interface,
            pools: &pools,
            policies: &policies,
            services: &all,
            instances: &instances,
        });
        if self.instances.is_none() {
            // Rendered for no instance only to learn what this node exports; "missing" would
            // be noise.
            built.problems.retain(|p| p.reason != "InstanceMissing");
        }
        let fragment = self
            .templates
            .as_ref()
            .expect("loaded above")
            .render(&built.data)?;
        self.instances_missing = built.problems.iter().any(|p| p.reason == "InstanceMissing");

        // Election.
        let me = self.facts_member(&facts, built.exported_pools.clone());
        self.me.send_if_modified(|m| {
            let changed = m.as_ref() != Some(&me);
            *m = Some(me.clone());
            changed
        });
        self.update_members(&me);
        let readiness = endpoints::readiness(&self.slices.state());
        let none = Readiness::default();
        let candidates: Vec<Candidate> = inputs
            .iter()
            .map(|i| Candidate {
                service: &i.addresses,
                mode: modes[&i.addresses.pool],
                local_traffic: i.local_traffic,
                withdraw_without_endpoints: i.withdraw_without_endpoints,
                endpoints: readiness.get(&i.addresses.key).unwrap_or(&none),
            })
            .collect();
        let decisions = election::elect(&candidates, &self.members, &cfg.lb_interface);
        let mine = election::held_here(&decisions, &cfg.node, &all);
        let planned = plan::plan(&mine, &pools, &cfg.lb_interface, &facts);

        // Addresses.
        let mut ok = self
            .converge_addresses(&planned, &facts, kind.refresh)
            .await;

        // Daemon, only when the fragment changed (or to repair it), and only with its
        // instances known.
        if self.instances.is_none() {
            ok = false;
        } else if let Some(result) = self.applier.sync(&fragment, kind.check_daemon).await {
            if let Some(last) = &self.applier.last {
                self.metrics
                    .daemon_applies
                    .get_or_create(&ResultLabels {
                        result: last.label().into(),
                    })
                    .inc();
            }
            if result.is_err() {
                ok = false;
                // The base configuration may have changed (an instance added): read it again.
                self.instances = None;
            }
        }

        // Reports.
        let mut problems: BTreeSet<String> =
            built.problems.iter().map(ToString::to_string).collect();
        problems.extend(planned.unplaced.iter().cloned());
        problems.extend(pool_problems);
        problems.extend(instance_error);
        if let Some(e) = &self.template_error {
            problems.insert(format!(
                "templates: {e} (the last good templates stay in use)"
            ));
        }
        for p in built.problems.iter().filter(|p| p.policy.is_some()) {
            if !self.problems.contains(&p.to_string()) {
                let _ = self.writes.send(Write::PolicyEvent {
                    policy: p.policy.clone().unwrap_or_default(),
                    event: EventSpec {
                        warning: true,
                        reason: p.reason,
                        note: format!("on node {}: {}", cfg.node, p.message),
                    },
                });
            }
        }
        self.problems = problems;
        self.report_services(&decisions);
        self.report_node();
        self.metrics.passes.inc();
        self.metrics
            .pass_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(ok)
    }

    async fn converge_addresses(
        &mut self,
        planned: &plan::Plan,
        facts: &[NodeInterface],
        refresh: bool,
    ) -> bool {
        let cfg = &self.cfg;
        let mut ok = true;
        self.address_errors.clear();
        let outcomes = self
            .nl
            .converge_node(
                &planned.interfaces,
                facts,
                &cfg.lb_interface,
                Some(cfg.address_lifetime),
                refresh,
            )
            .await;
        crate::garp::announce_all(
            outcomes
                .iter()
                .filter_map(crate::netlink::InterfaceOutcome::acquired),
        );
        let mut held = BTreeMap::new();
        let (mut local, mut routed) = (0i64, 0i64);
        for o in outcomes {
            match o.result {
                Ok(c) => {
                    self.metrics.acquired.inc_by(c.added.len() as u64);
                    self.metrics.released.inc_by(c.removed as u64);
                    if o.interface == cfg.lb_interface {
                        routed += o.desired.len() as i64;
                    } else {
                        local += o.desired.len() as i64;
                    }
                    held.insert(o.interface, o.desired);
                }
                Err(e) => {
                    ok = false;
                    self.metrics.netlink_errors.inc();
                    self.address_errors.push(format!("{}: {e}", o.interface));
                }
            }
        }
        for (kind, n) in [("local", local), ("routed", routed)] {
            self.metrics
                .addresses
                .get_or_create(&KindLabels { kind: kind.into() })
                .set(n);
        }
        self.held = held;
        ok
    }

    /// Events for services this node was elected to hold but could not place, and the notes on
    /// services nobody announces that this node reports on. Which nodes announce a service is
    /// written by the allocator, from every node's NodeState: agents never write Services.
    fn report_services(&mut self, decisions: &[Decision]) {
        let mut failed = BTreeSet::new();
        let mut notes = Vec::new();
        for d in decisions {
            if d.held_by(&self.cfg.node) && !self.address_errors.is_empty() {
                failed.insert(d.key.clone());
                if !self.failed_services.contains(&d.key) {
                    let _ = self.writes.send(Write::ServiceEvent {
                        key: d.key.clone(),
                        event: EventSpec {
                            warning: true,
                            reason: "AnnounceFailed",
                            note: format!(
                                "node {} cannot hold the address: {}",
                                self.cfg.node,
                                self.address_errors.join("; ")
                            ),
                        },
                    });
                }
            }
            if d.reporter.as_deref() == Some(self.cfg.node.as_str())
                && d.announcing().is_empty()
                && let Some(reason) = d.unheld_reason()
            {
                notes.push(ServiceNote {
                    service: d.key.to_string(),
                    reason,
                });
            }
        }
        self.failed_services = failed;
        self.not_announced = notes;
    }

    fn report_node(&mut self) {
        let problems: Vec<String> = self.problems.iter().cloned().collect();
        let last_apply: Option<LastApply> = self.applier.last.clone();
        let last_apply_time = self
            .applier
            .last_time
            .map(|t| humantime::format_rfc3339_seconds(t).to_string());
        let old = self
            .last_status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let s = status::node_status(
            &status::NodeReport {
                daemon: self.cfg.daemon.name(),
                held: &self.held,
                lb_interface: &self.cfg.lb_interface,
                address_errors: &self.address_errors,
                last_apply: last_apply.as_ref(),
                last_apply_time: last_apply_time.as_deref(),
                problems: &problems,
                not_announced: &self.not_announced,
            },
            &old,
            &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ),
        );
        if self
            .last_status
            .as_ref()
            .is_none_or(|old| status::status_differs(old, &s))
        {
            self.last_status = Some(s.clone());
            let _ = self.writes.send(Write::NodeStatus(s));
        }
    }

    /// Graceful shutdown: take every address off (so other nodes can take over local ones
    /// and routers stop sending traffic here), then delete the Lease so the others act at once.
    async fn leave(&mut self) {
        for (iface, _) in std::mem::take(&mut self.held) {
            if let Ok(Some(index)) = self.nl.link_index(&iface).await
                && let Err(e) = self.nl.converge(index, &BTreeSet::new(), None, false).await
            {
                tracing::warn!(interface = %iface, error = %e, "could not remove addresses");
            }
        }
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.cfg.lease_namespace);
        let name = membership::lease_name(&self.cfg.node);
        match tokio::time::timeout(
            Duration::from_secs(3),
            api.delete(&name, &Default::default()),
        )
        .await
        {
            Ok(Ok(_)) | Ok(Err(kube::Error::Api(_))) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not delete the node lease"),
            Err(_) => tracing::warn!("deleting the node lease timed out"),
        }
        tracing::info!("addresses withdrawn and node lease deleted");
    }
}

pub async fn run(
    client: Client,
    cfg: Config,
    metrics: Arc<AgentMetrics>,
    health: Arc<Health>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let trigger = Arc::new(Notify::new());
    let lease_events = Arc::new(Notify::new());
    let slice_resource = endpoints::slice_resource(&client).await?;
    tracing::info!(version = %slice_resource.version, "reading EndpointSlices");
    let services = cache(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        "services",
        crate::watch::slim_service,
        trigger.clone(),
    );
    let slices = cache_with(
        Api::<DynamicObject>::all_with(client.clone(), &slice_resource),
        slice_resource.clone(),
        watcher::Config::default(),
        "endpointslices",
        |s: &mut DynamicObject| s.managed_fields_mut().clear(),
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
    let leases = cache(
        Api::<Lease>::namespaced(client.clone(), &cfg.lease_namespace),
        membership::lease_watch(),
        "leases",
        keep,
        lease_events.clone(),
    );
    let nodes = cache(
        Api::<Node>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={}", cfg.node)),
        "node",
        |n: &mut Node| {
            n.managed_fields_mut().clear();
            n.status = None;
        },
        trigger.clone(),
    );
    // Namespaces as metadata only: their labels decide which pools admit a service.
    let namespaces = cache(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watcher::Config::default(),
        "namespaces",
        keep,
        trigger.clone(),
    );
    tokio::select! {
        _ = cancel.cancelled() => return Ok(()),
        r = async {
            namespaces.wait_until_ready().await?;
            services.wait_until_ready().await?;
            slices.wait_until_ready().await?;
            pools.wait_until_ready().await?;
            policies.wait_until_ready().await?;
            leases.wait_until_ready().await?;
            nodes.wait_until_ready().await
        } => r?,
    }
    tracing::info!(
        services = services.state().len(),
        leases = leases.state().len(),
        "caches synced"
    );

    let nl = Netlink::connect()?;
    let mut link_changes = Netlink::changes()?;
    // Templates from a directory (a ConfigMap volume) are watched: a reviewed change rolls out
    // without a new image. ConfigMap updates swap a symlink, hence the recursive watch.
    let (template_tx, mut template_changes) = mpsc::unbounded_channel();
    let _template_watch = match &cfg.templates {
        Some(dir) => {
            let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
                if ev.is_ok() {
                    let _ = template_tx.send(());
                }
            })?;
            notify::Watcher::watch(&mut w, dir, notify::RecursiveMode::Recursive)?;
            Some(w)
        }
        None => None,
    };
    let (writes, writes_rx) = mpsc::unbounded_channel();
    tokio::spawn(writer(
        client.clone(),
        cfg.node.clone(),
        metrics.clone(),
        writes_rx,
    ));
    let (me_tx, me_rx) = watch::channel(None);
    let (reachable_tx, mut reachable) = watch::channel(true);
    let lease_task = tokio::spawn(renew_lease(
        client.clone(),
        cfg.clone(),
        me_rx,
        reachable_tx,
        cancel.clone(),
    ));

    let mut agent = Agent {
        applier: Applier::new(cfg.driver.clone()),
        cfg: cfg.clone(),
        client,
        nl,
        instances: None,
        templates: None,
        template_error: None,
        last_valid_pools: Default::default(),
        last_valid_policies: Default::default(),
        metrics: metrics.clone(),
        writes,
        services,
        slices,
        pools,
        policies,
        leases,
        nodes,
        namespaces,
        liveness: membership::Liveness::new(&cfg.node),
        members: vec![],
        me: me_tx,
        held: BTreeMap::new(),
        not_announced: vec![],
        address_errors: vec![],
        problems: BTreeSet::new(),
        last_status: None,
        failed_services: BTreeSet::new(),
        instances_missing: false,
        instance_backoff: Default::default(),
    };
    let mut restarts = crate::daemon::restarts::watch_or_warn(&cfg.driver);
    metrics.api_reachable.set(1);

    let mut resync = tokio::time::interval(cfg.resync);
    resync.tick().await;
    let mut refresh = tokio::time::interval(cfg.address_lifetime / 3);
    refresh.tick().await;
    let mut kind = PassKind {
        check_daemon: true,
        refresh: true,
        reload_templates: true,
    };
    loop {
        let retry = match agent.pass(kind).await {
            Ok(true) if agent.instances_missing => {
                Some((agent.instance_backoff.fail() / 4).min(cfg.resync))
            }
            Ok(true) => {
                agent.instance_backoff.reset();
                None
            }
            Ok(false) => Some(agent.applier.backoff().unwrap_or(Duration::from_secs(1))),
            Err(e) => {
                tracing::warn!(error = %e, "pass failed; nothing was withdrawn");
                Some(Duration::from_secs(2))
            }
        };
        health.set_ready(true);
        let retry_at = retry.map(|d| Instant::now() + d);
        kind = PassKind::default();
        // Wait for something that matters.
        loop {
            let sleep_until = |t: Option<Instant>| async move {
                match t {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => {
                    agent.leave().await;
                    lease_task.abort();
                    return Ok(());
                }
                _ = trigger.notified() => break,
                _ = lease_events.notified() => {
                    let me = agent.me.borrow().clone().unwrap_or_default();
                    if agent.update_members(&me) { break }
                }
                Ok(()) = reachable.changed() => {
                    // Membership freezes by itself while our renewals do not get through (see
                    // membership::Liveness); this is for people and metrics.
                    let up = *reachable.borrow_and_update();
                    metrics.api_reachable.set(i64::from(up));
                    if up {
                        tracing::info!("node lease renewed again");
                    } else {
                        tracing::warn!("cannot renew the node lease: nobody is judged dead and nothing is withdrawn until it works again");
                    }
                }
                Some(()) = template_changes.recv() => {
                    // Let the writer finish (a ConfigMap update is several events).
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    while template_changes.try_recv().is_ok() {}
                    kind.reload_templates = true;
                    break;
                }
                Some(()) = link_changes.recv() => {
                    // Let a burst of changes settle, then see whether the node's facts moved.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    while link_changes.try_recv().is_ok() {}
                    if let Ok(facts) = agent.nl.interfaces().await {
                        let current = agent.me.borrow().clone();
                        let routed = current.as_ref().map(|m| m.routed_pools.clone()).unwrap_or_default();
                        if current.as_ref() != Some(&agent.facts_member(&facts, routed)) {
                            break;
                        }
                    }
                }
                Some(daemon) = crate::daemon::restarts::next(&mut restarts) => {
                    crate::daemon::restarts::settle(&mut restarts).await;
                    tracing::info!(daemon, "daemon started; checking what it holds");
                    agent.applier.retry_now();
                    agent.instance_backoff.reset();
                    kind.check_daemon = true;
                    break;
                }
                _ = resync.tick() => {
                    if restarts.is_none() {
                        // The daemon may have been installed or started since.
                        restarts = crate::daemon::restarts::watch(&cfg.driver).ok();
                    }
                    kind.check_daemon = true;
                    break;
                }
                _ = refresh.tick() => { kind.refresh = true; break }
                _ = sleep_until(retry_at) => {
                    kind.check_daemon = true;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            node: "n1".into(),
            class: crate::api::DEFAULT_LB_CLASS.into(),
            require_class: false,
            lease_namespace: membership::DEFAULT_NAMESPACE.into(),
            lease_duration: Duration::from_secs(2),
            renew_period: Duration::from_millis(500),
            address_lifetime: Duration::from_secs(30),
            lb_interface: "kube-lb0".into(),
            daemon: DaemonKind::Frr,
            driver: Driver::Frr(crate::daemon::frr::FrrDriver::new(
                None,
                crate::daemon::frr::FrrApply::Diff,
            )),
            templates: None,
            resync: Duration::from_secs(30),
        }
    }

    fn service(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn service_input_reads_addresses_pool_and_traffic_policy() {
        let s = service(json!({
            "metadata": { "name": "web", "namespace": "default", "annotations": {
                annotations::POOL_USED: "p", annotations::WITHDRAW_WHEN_NO_ENDPOINTS: "true" } },
            "spec": { "type": "LoadBalancer", "externalTrafficPolicy": "Local" },
            "status": { "loadBalancer": { "ingress": [ { "ip": "203.0.113.5" } ] } },
        }));
        let (a, local, withdraw) = service_input(&s, &cfg()).unwrap();
        assert_eq!(a.pool, "p");
        assert_eq!(
            a.addresses,
            ["203.0.113.5".parse::<std::net::IpAddr>().unwrap()]
        );
        assert!(local && withdraw);

        // Another class, no address yet, or not a LoadBalancer: not ours to announce.
        for v in [
            json!({ "metadata": { "name": "x", "namespace": "d", "annotations": { annotations::POOL_USED: "p" } },
                    "spec": { "type": "LoadBalancer", "loadBalancerClass": "other" },
                    "status": { "loadBalancer": { "ingress": [ { "ip": "203.0.113.5" } ] } } }),
            json!({ "metadata": { "name": "x", "namespace": "d", "annotations": { annotations::POOL_USED: "p" } },
                    "spec": { "type": "LoadBalancer" } }),
            json!({ "metadata": { "name": "x", "namespace": "d", "annotations": { annotations::POOL_USED: "p" } },
                    "spec": { "type": "ClusterIP" },
                    "status": { "loadBalancer": { "ingress": [ { "ip": "203.0.113.5" } ] } } }),
        ] {
            assert!(service_input(&service(v), &cfg()).is_none());
        }
    }

    #[test]
    fn pool_used_is_checked_against_the_pools() {
        let pool = |name: &str, namespaces: &[&str]| {
            let spec: crate::api::AddressPoolSpec = serde_json::from_value(json!({
                "addresses": ["203.0.113.0/28"],
                "allocation": { "namespaces": namespaces },
            }))
            .unwrap();
            ipam::Pool::from_spec(name, &spec).unwrap()
        };
        let pools = [pool("premium", &["gold"]), pool("standard", &[])];
        let s = service(json!({
            "metadata": { "name": "web", "namespace": "tenant", "annotations": {
                annotations::POOL_USED: "premium",
                annotations::BGP_COMMUNITIES: "65535:666" } },
            "spec": { "type": "LoadBalancer" },
            "status": { "loadBalancer": { "ingress": [ { "ip": "203.0.113.5" } ] } },
        }));
        let (addresses, local_traffic, withdraw_without_endpoints) =
            service_input(&s, &cfg()).unwrap();
        let mut inputs = [Input {
            request: ipam::ServiceRequest::from_service(&s, &BTreeMap::new()),
            addresses,
            local_traffic,
            withdraw_without_endpoints,
        }];
        attribute_pools(&mut inputs, &pools);
        assert_eq!(inputs[0].addresses.pool, "standard");
        assert!(inputs[0].addresses.admitted);
        // Only premium holds it: kept and announced from premium, granted nothing.
        attribute_pools(&mut inputs, &pools[..1]);
        assert_eq!(inputs[0].addresses.pool, "premium");
        assert!(!inputs[0].addresses.admitted);
    }

    #[test]
    fn the_node_offers_subnets_of_interfaces_that_are_up() {
        let facts = [
            NodeInterface {
                name: "eth0".into(),
                index: 2,
                subnets: vec!["10.0.0.0/24".parse().unwrap()],
                up: true,
                mac: None,
            },
            NodeInterface {
                name: "eth1".into(),
                index: 3,
                subnets: vec!["10.1.0.0/24".parse().unwrap()],
                up: false,
                mac: None,
            },
            NodeInterface {
                name: "kube-lb0".into(),
                index: 4,
                subnets: vec!["10.2.0.0/24".parse().unwrap()],
                up: true,
                mac: None,
            },
        ];
        let me = me_from_facts(&cfg(), &facts, BTreeSet::new());
        assert_eq!(
            me.subnets,
            vec![("eth0".to_string(), "10.0.0.0/24".parse().unwrap())]
        );
    }
}
