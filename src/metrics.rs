//! Prometheus metrics and the HTTP endpoints `/metrics`, `/healthz`, `/readyz`. Kept apart from
//! the reconcilers: they record into [`Metrics`] and flip [`Health`], nothing more.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: String,
    pub family: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChangeLabels {
    /// `started`, `moved` (no node that announced it still does: a failover, a hand-over),
    /// `changed` (some stay: a node joined or left a routed ECMP set) or `stopped`.
    pub change: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

pub struct Metrics {
    pub allocations: Counter,
    pub allocation_failures: Family<ReasonLabels, Counter>,
    pub releases: Counter,
    pub pool_addresses: Family<PoolLabels, Gauge>,
    pub reconcile_duration: Histogram,
    pub ipam_duration: Histogram,
    pub write_errors: Family<KindLabels, Counter>,
    pub is_leader: Gauge,
    /// The followed rollout: nodes allowed its target, whether it is halted, its Events.
    pub rollout_updated_nodes: Gauge,
    pub rollout_halted: Gauge,
    pub rollout_events: Family<ReasonLabels, Counter>,
    /// Served Services by state: `no_address`, `not_announced`, `announced`.
    pub services: Family<StateLabels, Gauge>,
    /// Changes of the nodes announcing a Service, by `change`.
    pub announcement_changes: Family<ChangeLabels, Counter>,
    /// Node agents of existing nodes by Lease state: `live`, `expired`.
    pub node_agents: Family<StateLabels, Gauge>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let m = Metrics {
            allocations: Counter::default(),
            allocation_failures: Family::<ReasonLabels, Counter>::default(),
            releases: Counter::default(),
            pool_addresses: Family::<PoolLabels, Gauge>::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            ipam_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            write_errors: Family::<KindLabels, Counter>::default(),
            is_leader: Gauge::default(),
            rollout_updated_nodes: Gauge::default(),
            rollout_halted: Gauge::default(),
            rollout_events: Family::<ReasonLabels, Counter>::default(),
            services: Family::<StateLabels, Gauge>::default(),
            announcement_changes: Family::<ChangeLabels, Counter>::default(),
            node_agents: Family::<StateLabels, Gauge>::default(),
            registry: Registry::default(),
        };
        let mut r = Registry::with_prefix("routelb");
        m.register_allocation(&mut r);
        m.register_cluster(&mut r);
        m.start_at_zero();
        Metrics { registry: r, ..m }
    }

    /// What IPAM and the writes of a pass do.
    fn register_allocation(&self, r: &mut Registry) {
        r.register(
            "allocations",
            "Addresses given to services",
            self.allocations.clone(),
        );
        r.register(
            "allocation_failures",
            "Services newly failing to get an address, by reason",
            self.allocation_failures.clone(),
        );
        r.register(
            "releases",
            "Addresses taken back from services",
            self.releases.clone(),
        );
        r.register(
            "pool_addresses",
            "Addresses per pool, family and state (allocated, available)",
            self.pool_addresses.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "One allocation pass: compute and write every change",
            self.reconcile_duration.clone(),
        );
        r.register(
            "ipam_duration_seconds",
            "The pure IPAM computation alone",
            self.ipam_duration.clone(),
        );
        r.register(
            "write_errors",
            "Failed writes to the API server, by object kind",
            self.write_errors.clone(),
        );
        r.register(
            "is_leader",
            "1 while this replica holds the leader lease",
            self.is_leader.clone(),
        );
    }

    /// What the allocator sees of the cluster: the rollout, the Services, the agents.
    fn register_cluster(&self, r: &mut Registry) {
        r.register(
            "rollout_updated_nodes",
            "Nodes allowed the target revision of the followed RoutingRollout",
            self.rollout_updated_nodes.clone(),
        );
        r.register(
            "rollout_halted",
            "1 while the followed RoutingRollout is halted",
            self.rollout_halted.clone(),
        );
        r.register(
            "rollout_events",
            "Steps of the followed RoutingRollout, by Event reason (RolloutHalted, WaveStarted...)",
            self.rollout_events.clone(),
        );
        r.register(
            "services",
            "Served Services by state (no_address, not_announced, announced), as of the last pass",
            self.services.clone(),
        );
        r.register(
            "announcement_changes",
            "Changes of the nodes that announce a Service: started, moved (none of them still does: failover, hand-over), changed (some stay), stopped",
            self.announcement_changes.clone(),
        );
        r.register(
            "node_agents",
            "Node agents of existing nodes by Lease state (live, expired: the agent stopped renewing)",
            self.node_agents.clone(),
        );
    }

    /// Series that exist from the start read 0 on a dashboard instead of "no data", and
    /// rate() over them starts at once.
    fn start_at_zero(&self) {
        for kind in [
            "Service",
            "AddressPool",
            "RoutingPolicy",
            "ControllerRevision",
        ] {
            self.write_errors
                .get_or_create(&KindLabels { kind: kind.into() })
                .inc_by(0);
        }
        for change in ["started", "moved", "changed", "stopped"] {
            self.announcement_changes
                .get_or_create(&ChangeLabels {
                    change: change.into(),
                })
                .inc_by(0);
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Anything `/metrics` can expose.
pub trait Exposition: Send + Sync {
    fn encode(&self) -> String;
}

impl Exposition for Metrics {
    fn encode(&self) -> String {
        Metrics::encode(self)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DaemonLabels {
    pub daemon: String,
}

/// One routing session or adjacency of the node's daemon.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct SessionLabels {
    pub protocol: String,
    /// The VRF, IS-IS area or BIRD protocol; empty for FRR's default VRF. Not `instance`:
    /// Prometheus sets that label to the scraped target.
    pub routing_instance: String,
    pub peer: String,
    pub interface: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionPrefixLabels {
    pub protocol: String,
    pub routing_instance: String,
    pub peer: String,
    pub interface: String,
    /// `received` or `sent`.
    pub direction: String,
}

impl SessionPrefixLabels {
    pub fn new(s: &SessionLabels, direction: &str) -> Self {
        SessionPrefixLabels {
            protocol: s.protocol.clone(),
            routing_instance: s.routing_instance.clone(),
            peer: s.peer.clone(),
            interface: s.interface.clone(),
            direction: direction.into(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub protocol: String,
    /// `up`, `down`, `flapped`, `gone`, `bfd_down`, `bfd_up`.
    pub change: String,
}

/// The node agent's metrics.
pub struct AgentMetrics {
    /// Addresses held, by pool mode (`local`, `routed`).
    pub addresses: Family<KindLabels, Gauge>,
    pub live_nodes: Gauge,
    /// This node's prefixes its daemon advertises to no peer, as last verified.
    pub unadvertised_prefixes: Gauge,
    /// 1 while this agent can renew its Lease.
    pub api_reachable: Gauge,
    pub passes: Counter,
    pub pass_duration: Histogram,
    /// Local addresses this node took over (and announced with GARP/NA).
    pub acquired: Counter,
    pub released: Counter,
    pub netlink_errors: Counter,
    pub daemon_applies: Family<ResultLabels, Counter>,
    /// 1 while the daemon has the fragment last rendered (0: it refused it or the apply
    /// failed, and keeps the last good one).
    pub daemon_configured: Family<DaemonLabels, Gauge>,
    /// Repairs of objects another tool removed or changed, by FRR daemon that lost them.
    pub drift_repairs: Family<DaemonLabels, Counter>,
    pub write_errors: Family<KindLabels, Counter>,
    /// Passes that stopped early, by what failed.
    pub pass_errors: Family<KindLabels, Counter>,
    /// 1 while the daemon's session or adjacency is up.
    pub routing_session_up: Family<SessionLabels, Gauge>,
    pub routing_session_prefixes: Family<SessionPrefixLabels, Gauge>,
    pub routing_session_transitions: Family<TransitionLabels, Counter>,
    registry: Registry,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl AgentMetrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("routelb_agent");
        let m = AgentMetrics {
            addresses: Family::default(),
            live_nodes: Gauge::default(),
            unadvertised_prefixes: Gauge::default(),
            api_reachable: Gauge::default(),
            passes: Counter::default(),
            pass_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            acquired: Counter::default(),
            released: Counter::default(),
            netlink_errors: Counter::default(),
            daemon_applies: Family::default(),
            daemon_configured: Family::default(),
            drift_repairs: Family::default(),
            write_errors: Family::default(),
            pass_errors: Family::default(),
            routing_session_up: Family::default(),
            routing_session_prefixes: Family::default(),
            routing_session_transitions: Family::default(),
            registry: Registry::default(),
        };
        m.register(&mut r);
        for result in ["applied", "unchanged", "refused", "failed"] {
            m.daemon_applies
                .get_or_create(&ResultLabels {
                    result: result.into(),
                })
                .inc_by(0);
        }
        m.write_errors
            .get_or_create(&KindLabels {
                kind: "NodeState".into(),
            })
            .inc_by(0);
        AgentMetrics { registry: r, ..m }
    }

    fn register(&self, r: &mut Registry) {
        self.register_node(r);
        self.register_daemon(r);
    }

    /// What the agent does on its node: addresses, passes, its Lease.
    fn register_node(&self, r: &mut Registry) {
        r.register(
            "addresses",
            "Addresses this node holds, by pool mode",
            self.addresses.clone(),
        );
        r.register(
            "live_nodes",
            "Nodes with a live routelb Lease, as this agent sees them",
            self.live_nodes.clone(),
        );
        r.register(
            "unadvertised_prefixes",
            "This node's load-balancer prefixes its daemon advertises to no peer (verified at the daemon)",
            self.unadvertised_prefixes.clone(),
        );
        r.register(
            "api_reachable",
            "1 while this agent can renew its node Lease",
            self.api_reachable.clone(),
        );
        r.register("passes", "Planning passes", self.passes.clone());
        r.register(
            "pass_duration_seconds",
            "One pass: elect, plan, converge addresses and daemon",
            self.pass_duration.clone(),
        );
        r.register(
            "acquired",
            "Addresses newly put on an interface",
            self.acquired.clone(),
        );
        r.register(
            "released",
            "Addresses taken off an interface",
            self.released.clone(),
        );
        r.register(
            "netlink_errors",
            "Failed interface or address changes",
            self.netlink_errors.clone(),
        );
    }

    /// What the agent sees of its routing daemon.
    fn register_daemon(&self, r: &mut Registry) {
        r.register(
            "daemon_applies",
            "Fragment applications, by result",
            self.daemon_applies.clone(),
        );
        r.register(
            "daemon_configured",
            "1 while the daemon has the fragment last rendered; 0 when it refused it or the apply failed (it keeps the last good one); absent before the first apply",
            self.daemon_configured.clone(),
        );
        r.register(
            "drift_repairs",
            "Repairs of routelb objects another tool removed or changed, by daemon",
            self.drift_repairs.clone(),
        );
        r.register(
            "write_errors",
            "Failed writes to the API server, by object kind",
            self.write_errors.clone(),
        );
        r.register(
            "pass_errors",
            "Passes that stopped early (nothing withdrawn), by what failed",
            self.pass_errors.clone(),
        );
        r.register(
            "routing_session_up",
            "1 while the daemon's routing session or adjacency is up (BGP Established, OSPF Full or 2-Way, IS-IS Up, RIP heard, BFD up)",
            self.routing_session_up.clone(),
        );
        r.register(
            "routing_session_prefixes",
            "Prefixes received from and sent to each routing session, as the daemon counts them",
            self.routing_session_prefixes.clone(),
        );
        r.register(
            "routing_session_transitions",
            "Routing session transitions seen by the agent, by protocol and change",
            self.routing_session_transitions.clone(),
        );
    }
}

impl Exposition for AgentMetrics {
    fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Liveness and readiness, flipped by the roles.
#[derive(Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<dyn Exposition>,
    health: Arc<Health>,
}

/// Serves `/metrics`, `/healthz` and `/readyz` until the process ends.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<dyn Exposition>,
    health: Arc<Health>,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, health });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    axum::serve(listener, app).await?;
    Ok(())
}

async fn metrics_handler(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.health.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: caches not synced yet",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_with_a_known_label_set_start_at_zero() {
        let allocator = Metrics::new().encode();
        for line in [
            r#"routelb_write_errors_total{kind="Service"} 0"#,
            r#"routelb_announcement_changes_total{change="moved"} 0"#,
        ] {
            assert!(allocator.lines().any(|l| l == line), "{allocator}");
        }
        let agent = AgentMetrics::new().encode();
        for line in [
            r#"routelb_agent_daemon_applies_total{result="refused"} 0"#,
            r#"routelb_agent_write_errors_total{kind="NodeState"} 0"#,
        ] {
            assert!(agent.lines().any(|l| l == line), "{agent}");
        }
        assert!(
            !agent.contains("routelb_agent_daemon_configured"),
            "no apply yet: nothing to say"
        );
    }
}
