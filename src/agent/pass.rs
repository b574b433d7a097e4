//! One pass of the agent, as a shell around [`super::decide`]: gather a snapshot (caches,
//! netlink, the daemon's instances), decide, then carry the decisions out — addresses,
//! GARP/NA, the daemon's fragment — and hand the reports to the writer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::{mpsc, watch};

use super::caches::Caches;
use super::decide::{self, Identity, Placement, Reported, Resolved, Snapshot};
use super::tasks::Write;
use super::{Config, endpoints, revision, status};
use crate::api::{AddressPool, NodeStateStatus, RoutingPolicy, ServiceNote};
use crate::daemon::applier::LastApply;
use crate::daemon::session::DaemonSession;
use crate::election::{Member, Ranks, Readiness};
use crate::failover;
use crate::ipam::ServiceKey;
use crate::last_valid::Memory;
use crate::membership;
use crate::metrics::{AgentMetrics, DaemonLabels, KindLabels, ResultLabels};
use crate::netlink::{InterfaceOutcome, Netlink};
use crate::node::{IfAddress, NodeInterface};
use crate::plan::Plan;
use crate::render::drain;
use crate::render::model::FragmentData;

/// Why a pass stopped early. Nothing is withdrawn when it does: the next pass starts over.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("reading this node's interfaces: {0}")]
    Netlink(#[from] crate::netlink::NetlinkError),
    #[error("templates: {0}")]
    Templates(#[from] crate::render::TemplateError),
    #[error("routing revision {name}: {error}")]
    Revision { name: String, error: String },
}

impl AgentError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            AgentError::Netlink(_) => "netlink",
            AgentError::Templates(_) => "templates",
            AgentError::Revision { .. } => "revision",
        }
    }
}

/// What woke a pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct PassKind {
    /// Re-read the daemon's instances and check it still holds the fragment.
    pub check_daemon: bool,
    /// Re-add every address so its lifetime starts again.
    pub refresh: bool,
    /// The template directory changed.
    pub reload_templates: bool,
}

impl PassKind {
    /// The agent's first pass: everything read and done afresh.
    pub fn first() -> Self {
        PassKind {
            check_daemon: true,
            refresh: true,
            reload_templates: true,
        }
    }
}

/// Everything a pass needs that outlives it.
pub struct Agent {
    pub cfg: Config,
    pub id: Identity,
    pub nl: Netlink,
    pub daemon: DaemonSession,
    pub caches: Caches,
    pub metrics: Arc<AgentMetrics>,
    pub writes: mpsc::UnboundedSender<Write>,
    memory: Memory,
    /// Local addresses' best-ranked nodes, kept from pass to pass.
    ranks: Ranks,
    liveness: membership::Liveness,
    members: Vec<Member>,
    /// This node as the lease task announces it.
    pub me: watch::Sender<Option<Member>>,
    /// routelb's addresses per interface after the last convergence.
    held: BTreeMap<String, BTreeSet<IfAddress>>,
    address_errors: Vec<String>,
    reported: Reported,
    not_announced: Vec<ServiceNote>,
    problems: BTreeSet<String>,
    last_status: Option<NodeStateStatus>,
    /// The template data of the last pass: which prefixes each protocol should carry.
    pub(super) fragment_data: Option<FragmentData>,
    /// What the daemon advertises, as last verified ([`super::verify`]).
    pub(super) verification: super::verify::State,
    /// The daemon's sessions, as last looked at ([`super::routing_health`]).
    pub(super) routing: super::routing_health::State,
    /// The last repair of objects another tool removed or changed, for NodeState.
    pub last_drift_repair: Option<crate::api::DriftRepairStatus>,
    /// New Services this node waits with until kube-proxy has them.
    proxy_grace: super::proxy_grace::ProxyGrace,
    /// Whether this node serves, drains or is drained ([`super::drain`]).
    pub(super) drain: super::drain::Phase,
    /// The routing revision rendered, and what NodeState says of it ([`super::revision`]).
    pub(super) revision: super::revision::State,
    /// The agent received SIGTERM: it drains before it leaves.
    pub(super) shutting_down: bool,
    first_pass: bool,
    /// BFD peers and the verdict of fast failover ([`super::fast_failover`]).
    pub fast_failover: super::fast_failover::FastFailover,
    /// Each EndpointSlice read once per version ([`endpoints::Readings`]).
    readings: endpoints::Readings,
}

/// How a pass went, for when to run the next one.
pub struct PassOutcome {
    pub addresses_ok: bool,
    pub daemon_ok: bool,
    /// Whether a policy exports through an instance the daemon lacks.
    pub instances_missing: bool,
    /// When a Service held back for kube-proxy may be announced.
    pub kube_proxy_wait: Option<std::time::Duration>,
    /// When a draining node is to withdraw.
    pub drain_due: Option<std::time::Duration>,
    /// When a fast-failover guard runs out.
    pub failover_next: Option<std::time::Duration>,
}

impl Agent {
    pub fn new(
        cfg: Config,
        nl: Netlink,
        caches: Caches,
        metrics: Arc<AgentMetrics>,
        writes: mpsc::UnboundedSender<Write>,
        me: watch::Sender<Option<Member>>,
    ) -> Agent {
        let cfg_grace = cfg.kube_proxy_grace;
        let readings = endpoints::Readings::new(&cfg.node);
        Agent {
            id: Identity {
                node: cfg.node.clone(),
                lb_interface: cfg.lb_interface.clone(),
                class: cfg.class.clone(),
                require_class: cfg.require_class,
            },
            daemon: DaemonSession::new(cfg.driver.clone(), cfg.daemon, cfg.templates.clone()),
            liveness: membership::Liveness::new(&cfg.node),
            cfg,
            nl,
            caches,
            metrics,
            writes,
            memory: Memory::default(),
            ranks: Ranks::default(),
            members: vec![],
            me,
            held: BTreeMap::new(),
            address_errors: vec![],
            reported: Reported::default(),
            not_announced: vec![],
            problems: BTreeSet::new(),
            last_status: None,
            fragment_data: None,
            verification: Default::default(),
            routing: Default::default(),
            last_drift_repair: None,
            proxy_grace: super::proxy_grace::ProxyGrace::new(cfg_grace),
            drain: super::drain::Phase::Serving,
            revision: Default::default(),
            shutting_down: false,
            first_pass: true,
            fast_failover: super::fast_failover::FastFailover::new(
                watch::channel(Some(vec![])).1,
                watch::channel(None).0,
            ),
            readings,
        }
    }

    /// One pass: gather, decide, carry out.
    pub async fn pass(&mut self, kind: PassKind) -> Result<PassOutcome, AgentError> {
        let started = Instant::now();
        let instance_error = self.daemon.refresh_instances(kind.check_daemon).await;
        if let Some(e) = &instance_error {
            tracing::warn!(error = %e, "daemon not read");
        }
        self.daemon.refresh_templates(kind.reload_templates)?;
        let facts = self.nl.interfaces().await?;
        let inputs = self.revision.inputs(
            &self.cfg.node,
            &self.caches.rollouts.state(),
            &self.caches.revisions.state(),
        );
        let readiness = self.readings.readiness(&self.caches.slices.state());
        let mut resolved = self.resolve(&facts, &inputs, &readiness);
        self.step_drain();
        resolved.me = self.drain.member(resolved.me);
        if self.drain.lowers_preference() {
            drain::drain(&mut resolved.built.data, &self.cfg.drain.attributes);
        }
        self.update_members(&resolved.me);
        let failover = self.step_fast_failover(&resolved);
        resolved.me.cut_off = failover.verdict.cut_off;
        resolved.built.data.bfd = crate::render::model::BfdData::of(&failover.peers);
        let fragment = self.render(&inputs, &resolved.built.data)?;
        self.announce_me(&resolved.me);
        let now = std::time::Instant::now();
        self.proxy_grace
            .observe(now, decide::ready_here(&self.id, &resolved, &readiness));
        let waiting = self.proxy_grace.waiting(now);
        let announced: BTreeSet<std::net::IpAddr> = self.announced().into_iter().collect();
        let held_back = decide::HeldBack {
            services: &waiting.services,
            announced: &announced,
        };
        let fast_members = failover::view(&self.cfg.node, &self.members, &failover.verdict);
        let placement = decide::place(
            &self.id,
            &resolved,
            &decide::Members {
                all: &self.members,
                fast: &fast_members,
                fast_pools: &failover.pools,
            },
            &mut self.ranks,
            &readiness,
            &facts,
            &held_back,
        );
        if !waiting.services.is_empty() {
            tracing::debug!(services = ?waiting.services, "new Services wait for kube-proxy before this node announces them");
        }
        let addresses_ok = self
            .converge_addresses(&placement.plan, &facts, kind.refresh)
            .await;
        let daemon_ok = if self.revision.holds_daemon() {
            false
        } else {
            self.sync_daemon(&fragment, kind.check_daemon).await
        };
        self.record_revision(&inputs, daemon_ok);
        self.plan_pending(&facts, &inputs).await;
        self.report(&resolved, &placement, instance_error, failover.problem);
        self.fragment_data = Some(resolved.built.data);
        self.metrics.passes.inc();
        self.metrics
            .pass_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(PassOutcome {
            addresses_ok,
            daemon_ok,
            instances_missing: resolved.instances_missing,
            kube_proxy_wait: waiting.next,
            drain_due: self.drain.due(std::time::Instant::now()),
            failover_next: failover.verdict.next,
        })
    }

    /// Fast failover's share of the pass: its peers for the fragment, and the verdict the
    /// election of its pools uses.
    fn step_fast_failover(&mut self, resolved: &Resolved) -> super::fast_failover::Step {
        let leases = self.caches.leases.state();
        let liveness = &self.liveness;
        self.fast_failover.step(
            &self.cfg.node,
            resolved,
            &self.members,
            |node| liveness.renewal_of(&leases, node),
            || self.cfg.driver.runs_bfd(),
            Instant::now(),
        )
    }

    /// Whether fast failover judges a peer failed (or this node cut off) now: a Lease renewal
    /// may change that.
    pub fn fast_failover_judges_a_peer(&self) -> bool {
        self.fast_failover.judging()
    }

    /// Moves the drain on: from this node's Node object and whether the agent is leaving;
    /// an Event on the NodeState when the phase changes.
    fn step_drain(&mut self) {
        let nodes = self.caches.nodes.state();
        let node = nodes
            .iter()
            .find(|n| kube::ResourceExt::name_any(n.as_ref()) == self.cfg.node);
        let mut reasons = super::drain::reasons(node.map(|n| n.as_ref()), &self.cfg.drain.taints);
        if self.shutting_down {
            reasons.push("shutting down".into());
        }
        let next = super::drain::next(
            &self.drain,
            reasons,
            std::time::Instant::now(),
            self.cfg.drain.time,
            self.first_pass,
        );
        self.first_pass = false;
        if let Some(event) = super::drain::event(&self.drain, &next, self.cfg.drain.time) {
            event.log();
            let _ = self.writes.send(Write::NodeEvent(event));
        }
        self.drain = next;
    }

    /// The one place a failed pass is logged and counted; returns when to try again.
    pub fn error_policy(&self, e: &AgentError) -> std::time::Duration {
        self.metrics
            .pass_errors
            .get_or_create(&KindLabels {
                kind: e.metric_label().into(),
            })
            .inc();
        tracing::warn!(error = %e, "pass failed; nothing was withdrawn");
        std::time::Duration::from_secs(2)
    }

    fn resolve(
        &mut self,
        facts: &[NodeInterface],
        inputs: &revision::Inputs,
        readiness: &BTreeMap<ServiceKey, Readiness>,
    ) -> Resolved {
        let mut memory = std::mem::take(&mut self.memory);
        let resolved = self.resolve_with(facts, inputs, readiness, &mut memory);
        self.memory = memory;
        resolved
    }

    /// [`Self::resolve`] with the pools' and policies' memory given: a plan resolves with a
    /// copy, which it throws away.
    fn resolve_with(
        &self,
        facts: &[NodeInterface],
        inputs: &revision::Inputs,
        readiness: &BTreeMap<ServiceKey, Readiness>,
        memory: &mut Memory,
    ) -> Resolved {
        let services = self.caches.services.state();
        let pools: Vec<AddressPool> = crate::watch::owned(&self.caches.pools);
        let policies: Vec<RoutingPolicy> = crate::watch::owned(&self.caches.policies);
        let policies = revision::policies(inputs, policies);
        let namespace_labels = crate::watch::labels_by_name(&self.caches.namespaces);
        let node_labels = self.caches.node_labels(&self.cfg.node);
        let snapshot = Snapshot {
            services: &services,
            pools: &pools,
            policies: &policies,
            namespace_labels: &namespace_labels,
            node_labels: &node_labels,
            facts,
            instances: self.daemon.instances(),
            readiness,
        };
        decide::resolve(&self.id, &snapshot, memory)
    }

    /// The addresses this node announces now (on the load-balancer interface).
    pub fn announced(&self) -> Vec<std::net::IpAddr> {
        self.held
            .get(&self.cfg.lb_interface)
            .map(|a| a.iter().map(|(ip, _)| *ip).collect())
            .unwrap_or_default()
    }

    /// Hands this node's facts to the lease task when they changed.
    fn announce_me(&self, me: &Member) {
        self.me.send_if_modified(|m| {
            let changed = m.as_ref() != Some(me);
            *m = Some(me.clone());
            changed
        });
    }

    /// The member this node last announced.
    pub fn last_me(&self) -> Option<Member> {
        self.me.borrow().clone()
    }

    /// Recomputes the live members; true when they changed.
    pub fn update_members(&mut self, me: &Member) -> bool {
        let now = Instant::now();
        // The cache's own objects: a renewal event must not cost a copy of every Lease.
        let leases = self.caches.leases.state();
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

    /// Whether this node's facts differ from what it last announced (a link event that
    /// matters).
    pub fn facts_changed(&self, facts: &[NodeInterface]) -> bool {
        let current = self.last_me();
        let routed = current
            .as_ref()
            .map(|m| m.routed_pools.clone())
            .unwrap_or_default();
        let mut fresh = self.drain.member(decide::member(&self.id, facts, routed));
        // (whether fast failover finds this node cut off is not a fact of its interfaces)
        fresh.cut_off = current.as_ref().is_some_and(|m| m.cut_off);
        current.as_ref() != Some(&fresh)
    }

    /// Puts the planned addresses on, takes the others off, announces what was acquired.
    async fn converge_addresses(
        &mut self,
        plan: &Plan,
        facts: &[NodeInterface],
        refresh: bool,
    ) -> bool {
        let held = plan.interfaces.values().map(BTreeSet::len).sum();
        let lifetime = crate::address_refresh::lifetime(self.cfg.address_lifetime, held);
        let outcomes = self
            .nl
            .converge_node(
                &plan.interfaces,
                facts,
                &self.cfg.lb_interface,
                Some(lifetime),
                refresh.then(|| crate::address_refresh::period(self.cfg.address_lifetime)),
            )
            .await;
        crate::garp::announce_all(outcomes.iter().filter_map(InterfaceOutcome::acquired));
        self.record_outcomes(outcomes)
    }

    /// What the interfaces now hold, errors and metrics; true when every interface converged.
    fn record_outcomes(&mut self, outcomes: Vec<InterfaceOutcome>) -> bool {
        self.address_errors.clear();
        let mut held = BTreeMap::new();
        let (mut local, mut routed) = (0i64, 0i64);
        for o in outcomes {
            match o.result {
                Ok(c) => {
                    self.metrics.acquired.inc_by(c.added.len() as u64);
                    self.metrics.released.inc_by(c.removed as u64);
                    if o.interface == self.cfg.lb_interface {
                        routed += o.desired.len() as i64;
                    } else {
                        local += o.desired.len() as i64;
                    }
                    held.insert(o.interface, o.desired);
                }
                Err(e) => {
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
        self.address_errors.is_empty()
    }

    /// The daemon, only when the fragment changed (or to repair it), and only with its
    /// instances known; true when it holds the fragment.
    /// The fragment, from the revision's templates when it carries any. A revision that does
    /// not render is reported (the rollout halts on it) and fails the pass: the daemon keeps
    /// the last good fragment.
    fn render(
        &mut self,
        inputs: &revision::Inputs,
        data: &FragmentData,
    ) -> Result<String, AgentError> {
        let revision::Inputs::Revision { name, content } = inputs else {
            if self.revision.status().is_some() {
                tracing::info!("no routing revision to follow: rendering the live RoutingPolicies");
            }
            self.revision.live();
            return Ok(self.daemon.templates().render(data)?);
        };
        let rendered = match self.revision.templates(name, content, self.cfg.daemon) {
            Ok(Some(templates)) => templates.render(data).map_err(|e| e.to_string()),
            Ok(None) => self
                .daemon
                .templates()
                .render(data)
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("templates: {e}")),
        };
        rendered.map_err(|error| {
            self.revision.failed(name, error.clone());
            self.report_node();
            AgentError::Revision {
                name: name.clone(),
                error,
            }
        })
    }

    /// What NodeState says of the revision: applied (with the routing health just before as
    /// the baseline), or refused by the daemon. A daemon out of reach says nothing yet.
    fn record_revision(&mut self, inputs: &revision::Inputs, daemon_ok: bool) {
        let revision::Inputs::Revision { name, .. } = inputs else {
            return;
        };
        let now = now_rfc3339();
        match &self.daemon.applier.last {
            _ if daemon_ok => {
                let before =
                    revision::counts(&self.routing.tracker, self.verification.last.as_ref(), &now);
                if self.revision.applied(name, &now, before.clone()) {
                    tracing::info!(revision = %name, ?before, "routing revision applied");
                }
            }
            Some(LastApply::Refused { message, .. }) => {
                tracing::warn!(revision = %name, "the daemon refused the routing revision");
                self.revision
                    .failed(name, format!("the daemon refused its fragment: {message}"))
            }
            _ => {}
        }
    }

    /// When the rollout rolls out a revision this node does not render yet: what the daemon
    /// would change with it, for `routelb plan` (once per target revision).
    async fn plan_pending(&mut self, facts: &[NodeInterface], rendering: &revision::Inputs) {
        let rollouts = self.caches.rollouts.state();
        let Some(name) = revision::pending_name(rendering, &rollouts) else {
            self.revision.pending = None;
            return;
        };
        // Once per target; again only after a plan that failed (the daemon busy).
        let planned = self.revision.pending.as_ref();
        if planned.is_some_and(|p| p.name == name && p.error.is_none()) {
            return;
        }
        let target = revision::pending_target(rendering, &rollouts, &self.caches.revisions.state());
        let Some((name, content)) = target else {
            return;
        };
        let inputs = revision::Inputs::Revision {
            name: name.clone(),
            content,
        };
        let readiness = self.readings.readiness(&self.caches.slices.state());
        let resolved = self.resolve_with(facts, &inputs, &readiness, &mut self.memory.clone());
        let revision::Inputs::Revision { content, .. } = &inputs else {
            unreachable!("built above")
        };
        let templates = content
            .templates_of(self.cfg.daemon.name())
            .map(|sources| crate::render::Templates::from_sources(self.cfg.daemon, &sources));
        let fragment = match &templates {
            Some(Ok(t)) => t.render(&resolved.built.data).map_err(|e| e.to_string()),
            Some(Err(e)) => Err(e.to_string()),
            None => self
                .daemon
                .templates()
                .render(&resolved.built.data)
                .map_err(|e| e.to_string()),
        };
        let planned = match fragment {
            Ok(fragment) => crate::impact::live::plan(&self.cfg.driver, &fragment)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("templates: {e}")),
        };
        self.revision.pending = Some(revision::pending(&name, planned));
        self.report_node();
    }

    /// After a look at the routing: the health since the revision was applied.
    pub fn note_revision_health(&mut self) {
        let now = k8s_openapi::jiff::Timestamp::now();
        let soaking = revision::soaking(
            &self.caches.rollouts.state(),
            self.revision.applied_at(),
            now,
        );
        let counts = revision::counts(
            &self.routing.tracker,
            self.verification.last.as_ref(),
            &now.to_string(),
        );
        if let Some(counts) = counts {
            self.revision.looked(counts, soaking);
        }
    }

    async fn sync_daemon(&mut self, fragment: &str, check: bool) -> bool {
        let before = self.daemon.applier.last_time;
        let ok = self.daemon.sync(fragment, check).await;
        if self.daemon.applier.last_time != before
            && let Some(last) = &self.daemon.applier.last
        {
            self.metrics
                .daemon_applies
                .get_or_create(&ResultLabels {
                    result: last.label().into(),
                })
                .inc();
            let configured = matches!(last.label(), "applied" | "unchanged");
            self.metrics
                .daemon_configured
                .get_or_create(&DaemonLabels {
                    daemon: self.cfg.daemon.name().to_string(),
                })
                .set(i64::from(configured));
        }
        ok
    }

    /// Events, NodeState: what [`decide::report`] says, each Event once.
    fn report(
        &mut self,
        r: &Resolved,
        p: &Placement,
        instance_error: Option<String>,
        failover_problem: Option<String>,
    ) {
        let template_problem = self
            .daemon
            .template_problem()
            .into_iter()
            .chain(self.revision.problem.clone())
            .chain(failover_problem);
        let reports = decide::report(
            &self.id,
            &self.reported,
            r,
            p,
            &self.address_errors,
            instance_error.into_iter().chain(template_problem),
        );
        for (policy, event) in reports.policy_events {
            let _ = self.writes.send(Write::PolicyEvent { policy, event });
        }
        for (key, event) in reports.service_events {
            let _ = self.writes.send(Write::ServiceEvent { key, event });
        }
        self.reported = reports.reported;
        self.not_announced = reports.not_announced;
        self.problems = reports.problems;
        self.report_node();
    }

    /// routelb's prefixes on the load-balancer interface, as the daemon sees them.
    pub(super) fn lb_prefixes(&self) -> BTreeSet<ipnet::IpNet> {
        self.held
            .get(&self.cfg.lb_interface)
            .into_iter()
            .flatten()
            .filter_map(|(ip, len)| ipnet::IpNet::new(*ip, *len).ok())
            .map(|n| n.trunc())
            .collect()
    }

    pub(super) fn report_node(&mut self) {
        let problems: Vec<String> = self.problems.iter().cloned().collect();
        let last_apply_time = self
            .daemon
            .applier
            .last_time
            .map(|t| humantime::format_rfc3339_seconds(t).to_string());
        let old = self
            .last_status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let mut s = status::node_status(
            &status::NodeReport {
                daemon: self.cfg.daemon.name(),
                held: &self.held,
                lb_interface: &self.cfg.lb_interface,
                address_errors: &self.address_errors,
                last_apply: self.daemon.applier.last.as_ref(),
                last_apply_time: last_apply_time.as_deref(),
                problems: &problems,
                not_announced: &self.not_announced,
                advertised: self.verification.last.as_ref(),
                drain: &self.drain,
                routing: Some(&self.routing.tracker).filter(|t| t.looked()),
            },
            &old,
            &Time(k8s_openapi::jiff::Timestamp::now()),
        );
        s.last_drift_repair = self.last_drift_repair.clone();
        s.revision = self.revision.status();
        s.pending_revision = self.revision.pending.clone();
        s.fast_failover = self.fast_failover.status();
        let urgent = match &self.last_status {
            None => true,
            Some(old) if status::status_differs(old, &s) => status::urgent(old, &s),
            Some(_) => return,
        };
        self.last_status = Some(s.clone());
        let _ = self.writes.send(Write::NodeStatus {
            status: Box::new(s),
            urgent,
            nodes: self.members.len(),
        });
    }

    /// Graceful shutdown, first half: take every address off, so other nodes can take over
    /// local ones and routers stop sending traffic here.
    pub async fn withdraw_all(&mut self) {
        for (iface, _) in std::mem::take(&mut self.held) {
            if let Ok(Some(index)) = self.nl.link_index(&iface).await
                && let Err(e) = self
                    .nl
                    .converge(
                        index,
                        &BTreeSet::new(),
                        None,
                        None,
                        crate::netlink::AsSource::Allowed,
                    )
                    .await
            {
                tracing::warn!(interface = %iface, error = %e, "could not remove addresses");
            }
        }
    }
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}
