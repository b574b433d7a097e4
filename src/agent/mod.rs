//! The node agent: one per node, beside FRR or BIRD. It turns allocated addresses into
//! addresses on this node's interfaces and announcements:
//!
//! ```text
//! events (events.rs): watch caches (caches.rs), netlink, templates, daemon restarts, timers
//!   └─► pass (pass.rs): snapshot ─► decide::resolve (pools/policies in use, Services, template
//!         data, what this node offers) ─► members (node Leases) ─► decide::place (election,
//!         plan) ─► netlink + GARP/NA ─► daemon (only when the fragment changed) ─► decide::report
//!   └─► background (tasks.rs): this node's Lease, NodeState status and Events
//! ```
//!
//! Pure parts: [`decide`], [`endpoints`], [`proxy_grace`], [`status`], and [`crate::election`],
//! [`crate::plan`], [`crate::render`], [`crate::membership`]; the rest only gathers inputs and
//! carries decisions out.

pub mod caches;
pub mod decide;
pub mod drain;
pub mod endpoints;
pub mod events;
pub mod fast_failover;
pub mod pass;
pub mod proxy_grace;
pub mod readiness;
pub mod revision;
pub mod routing_health;
pub mod status;
pub mod status_pace;
pub mod tasks;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::daemon::Driver;
use crate::daemon::session::DaemonNext;
use crate::metrics::{AgentMetrics, Health};
use crate::netlink::Netlink;
use crate::render::DaemonKind;
use caches::Caches;
use events::{Event, Sources};
use pass::{Agent, PassKind};

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
    /// How often FRR is probed for objects another tool removed or changed; zero: never.
    pub drift_probe: Duration,
    /// How long a node waits, after a Service appeared or its endpoints became ready, before
    /// it starts announcing it: kube-proxy's time to program it ([`proxy_grace`]).
    pub kube_proxy_grace: Duration,
    pub drain: DrainConfig,
    /// The staged rollout of routing changes this node follows.
    pub rollout: crate::rollout::Follow,
}

/// How this node drains ([`drain`]).
#[derive(Clone, Debug, Default)]
pub struct DrainConfig {
    /// How long the routes stay, less preferred, before they are withdrawn.
    pub time: Duration,
    /// Taint keys that drain the node like a cordon.
    pub taints: Vec<String>,
    pub attributes: crate::render::drain::DrainAttributes,
}

pub async fn run(
    client: Client,
    cfg: Config,
    metrics: Arc<AgentMetrics>,
    health: Arc<Health>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let caches = Caches::start(&client, &cfg).await?;
    tokio::select! {
        _ = cancel.cancelled() => return Ok(()),
        r = caches.wait_until_ready() => r?,
    }
    tracing::info!(
        services = caches.services.state().len(),
        leases = caches.leases.state().len(),
        "caches synced"
    );
    let (_template_watch, template_changes) = events::watch_templates(cfg.templates.as_deref())?;
    let (writes, writes_rx) = mpsc::unbounded_channel();
    tokio::spawn(tasks::writer(
        client.clone(),
        cfg.node.clone(),
        metrics.clone(),
        writes_rx,
    ));
    let (me_tx, me_rx) = watch::channel(None);
    let (reachable_tx, reachable) = watch::channel(true);
    let lease_task = tokio::spawn(tasks::renew_lease(
        client.clone(),
        cfg.clone(),
        me_rx,
        reachable_tx,
        cancel.clone(),
    ));
    let (fast_failover, bfd_looks) = start_bfd_reader(&cfg, &cancel);
    let mut sources = Sources {
        cancel: cancel.clone(),
        changed: caches.changed.clone(),
        leases_changed: caches.leases_changed.clone(),
        leases: crate::coalesce::Coalesce::new(crate::coalesce::LEASES),
        reachable,
        template_changes,
        link_changes: events::link_changes()?,
        restarts: crate::daemon::restarts::watch_or_warn(&cfg.driver),
        resync: skip_first_tick(cfg.resync).await,
        refresh: skip_first_tick(crate::address_refresh::period(cfg.address_lifetime)).await,
        drift_probe: events::probe_timer(cfg.drift_probe),
        retry_at: None,
        verify: skip_first_tick(verify::PERIOD).await,
        verify_at: None,
        grace_over_at: None,
        bfd_looks,
        failover_at: None,
    };
    let nl = Netlink::connect()?;
    let mut agent = Agent::new(cfg.clone(), nl, caches, metrics.clone(), writes, me_tx);
    agent.fast_failover = fast_failover;
    metrics.api_reachable.set(1);
    let mut kind = PassKind::first();
    let started = tokio::time::Instant::now();
    loop {
        let next = after_pass(&mut agent, kind).await;
        report_readiness(&agent, &health, started.elapsed());
        sources.schedule(next.retry, next.grace_over, next.failover, verify::SETTLE);
        kind = PassKind::default();
        loop {
            let event = sources.next().await;
            if matches!(event, Event::Cancelled) {
                return leave(&mut agent, client, &cfg, lease_task).await;
            }
            let pass_due =
                events::handle(event, &mut agent, &mut sources, &metrics, &mut kind).await;
            report_readiness(&agent, &health, started.elapsed());
            if pass_due {
                break;
            }
        }
    }
}

/// Fast failover's BFD reader task, which reads only while the pass gives it an interval; the
/// pass's side of it, and the looks for the event loop.
fn start_bfd_reader(
    cfg: &Config,
    cancel: &CancellationToken,
) -> (
    fast_failover::FastFailover,
    watch::Receiver<fast_failover::BfdLook>,
) {
    let (interval_tx, interval) = watch::channel(None);
    let (looks_tx, looks) = watch::channel(Some(vec![]));
    tokio::spawn(tasks::watch_bfd(
        crate::daemon::bfd::BfdReader::new(&cfg.driver),
        interval,
        looks_tx,
        cancel.clone(),
    ));
    (
        fast_failover::FastFailover::new(looks.clone(), interval_tx),
        looks,
    )
}

/// On SIGTERM: first a drain (routes less preferred, local addresses handed over, for the
/// drain time: [`drain`]) unless the node is drained already, then this node's addresses off
/// (routers withdraw) and its Lease deleted, so that the other agents act at once.
async fn leave(
    agent: &mut Agent,
    client: Client,
    cfg: &Config,
    lease_task: tokio::task::JoinHandle<()>,
) -> anyhow::Result<()> {
    agent.shutting_down = true;
    match agent.pass(PassKind::default()).await {
        Ok(o) => {
            if let Some(wait) = o.drain_due {
                tracing::info!(drain = ?wait, "draining before leaving");
                tokio::time::sleep(wait).await;
            }
        }
        Err(e) => {
            agent.error_policy(&e);
        }
    }
    agent.withdraw_all().await;
    tasks::delete_lease(client, cfg).await;
    tracing::info!("addresses withdrawn and node lease deleted");
    lease_task.abort();
    Ok(())
}

/// Flips `/readyz` to ready once [`readiness::ready`] says so (and never back: readiness
/// paces rollouts, the `Advertised` condition reports later trouble).
fn report_readiness(agent: &Agent, health: &Health, since_start: Duration) {
    if health.is_ready() {
        return;
    }
    let progress = readiness::Progress {
        nothing_to_advertise: agent.fragment_data.is_none(),
        advertised: agent.verification.last.as_ref().map(|v| v.verdict.ok),
        since_start,
    };
    if readiness::ready(progress) {
        tracing::info!(?progress, "ready");
        health.set_ready(true);
    }
}

/// When to run the next pass if nothing else happens first.
struct AfterPass {
    /// A retry, which reads the daemon afresh.
    retry: Option<Duration>,
    /// A plain pass, once a Service's kube-proxy grace or the drain time is over.
    grace_over: Option<Duration>,
    /// A plain pass, once a fast-failover guard runs out.
    failover: Option<Duration>,
}

/// Runs a pass; returns when to run the next one.
async fn after_pass(agent: &mut Agent, kind: PassKind) -> AfterPass {
    let o = match agent.pass(kind).await {
        Ok(o) => o,
        Err(e) => {
            return AfterPass {
                retry: Some(agent.error_policy(&e)),
                grace_over: None,
                failover: None,
            };
        }
    };
    let resync = agent.cfg.resync;
    let daemon = match agent.daemon.next(o.daemon_ok, o.instances_missing, resync) {
        DaemonNext::Idle => None,
        DaemonNext::RetryIn(d) => Some(d),
    };
    let retry = if o.addresses_ok {
        daemon
    } else {
        Some(daemon.map_or(Duration::from_secs(1), |d| d.min(Duration::from_secs(1))))
    };
    AfterPass {
        retry,
        grace_over: [o.kube_proxy_wait, o.drain_due].into_iter().flatten().min(),
        failover: o.failover_next,
    }
}

/// An interval whose first tick, which fires at once, is already taken.
async fn skip_first_tick(period: Duration) -> tokio::time::Interval {
    let mut i = tokio::time::interval(period);
    i.tick().await;
    i
}
