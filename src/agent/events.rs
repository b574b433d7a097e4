//! The agent's event loop as named events: [`Sources::next`] waits for whichever comes first
//! and only says which (no I/O in its `select!`); [`handle`] decides, one function per event,
//! whether it calls for a pass and of what kind.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, Interval};
use tokio_util::sync::CancellationToken;

use super::pass::{Agent, PassKind};
use super::tasks::Write;
use crate::backoff::sleep_until;
use crate::daemon::applier::DriftRepair;
use crate::daemon::restarts::{self, RestartWatch};
use crate::daemon::session;
use crate::metrics::{AgentMetrics, DaemonLabels};
use crate::netlink::Netlink;
use crate::status::EventSpec;

/// What can wake the agent.
#[derive(Debug)]
pub enum Event {
    /// SIGTERM: leave gracefully.
    Cancelled,
    /// A watched object other than a node Lease changed.
    CachesChanged,
    /// A node Lease changed (every renewal of every node): read them soon.
    LeasesChanged,
    /// Time to read the node Leases ([`crate::coalesce::LEASES`] after the last read).
    LeasesDue,
    /// This node's Lease renewals started or stopped getting through.
    Reachability(bool),
    /// The template directory changed.
    TemplatesChanged,
    /// An interface or address changed.
    LinksChanged,
    /// A daemon (re)started: its socket appeared.
    DaemonStarted(String),
    Resync,
    /// Time to re-add addresses so their lifetime starts again.
    Refresh,
    /// A failed or incomplete pass asked to be retried now.
    Retry,
    /// Time to ask the daemon what it really advertises.
    Verify,
    /// Time to probe FRR for routelb objects another tool removed or changed.
    DriftProbe,
    /// A Service's kube-proxy grace ended: a plain pass announces it (the daemon is not read
    /// again for this, as a retry would).
    GraceOver,
    /// A BFD session of fast failover went up or down, or the daemon stopped (or started)
    /// answering about them.
    BfdChanged,
    /// A fast-failover guard ran out: a peer down long enough, or sessions up long enough.
    FailoverGuard,
}

/// Everything the loop waits on.
pub struct Sources {
    pub cancel: CancellationToken,
    pub changed: Arc<Notify>,
    pub leases_changed: Arc<Notify>,
    /// Reads of the node Leases, coalesced.
    pub leases: crate::coalesce::Coalesce,
    pub reachable: watch::Receiver<bool>,
    pub template_changes: mpsc::UnboundedReceiver<()>,
    pub link_changes: mpsc::UnboundedReceiver<()>,
    pub restarts: Option<RestartWatch>,
    pub resync: Interval,
    pub refresh: Interval,
    pub retry_at: Option<Instant>,
    /// The periodic verification of what the daemon advertises, and one soon after a change.
    pub verify: Interval,
    pub verify_at: Option<Instant>,
    /// The drift probe's timer; none when disabled.
    pub drift_probe: Option<Interval>,
    /// When a Service held back for kube-proxy may be announced ([`super::proxy_grace`]).
    pub grace_over_at: Option<Instant>,
    /// Fast failover's BFD looks ([`super::tasks::watch_bfd`]).
    pub bfd_looks: watch::Receiver<super::fast_failover::BfdLook>,
    /// When a fast-failover guard runs out.
    pub failover_at: Option<Instant>,
}

/// When to retry after a pass: as the pass asks, but never later than a retry still pending
/// (none if the pass asks for none). Passes woken by other events must not push a retry back
/// forever: an agent whose daemon's bgpd came up after its first read of the instances kept
/// `InstanceMissing` for minutes on the real cluster, each cache event's pass postponing the
/// retry that would have read the daemon again.
fn next_retry(pending: Option<Instant>, asked: Option<Instant>, now: Instant) -> Option<Instant> {
    match (pending, asked) {
        (Some(p), Some(a)) if p > now => Some(p.min(a)),
        (_, asked) => asked,
    }
}

impl Sources {
    /// After a pass: a retry (reading the daemon afresh), the end of a kube-proxy grace, the
    /// end of a fast-failover guard, and a verification, each that long from now.
    pub fn schedule(
        &mut self,
        retry: Option<Duration>,
        grace_over: Option<Duration>,
        failover: Option<Duration>,
        verify: Duration,
    ) {
        let now = Instant::now();
        self.retry_at = next_retry(self.retry_at, retry.map(|d| now + d), now);
        self.grace_over_at = grace_over.map(|d| now + d);
        self.failover_at = failover.map(|d| now + d);
        self.verify_at = Some(now + verify);
    }

    pub async fn next(&mut self) -> Event {
        let retry = sleep_until(self.retry_at);
        let verify_soon = sleep_until(self.verify_at);
        let grace_over = sleep_until(self.grace_over_at);
        let failover = sleep_until(self.failover_at);
        let leases_due = sleep_until(self.leases.due());
        tokio::select! {
            Ok(()) = self.bfd_looks.changed() => Event::BfdChanged,
            _ = failover => Event::FailoverGuard,
            _ = self.cancel.cancelled() => Event::Cancelled,
            _ = self.changed.notified() => Event::CachesChanged,
            _ = self.leases_changed.notified() => Event::LeasesChanged,
            _ = leases_due => Event::LeasesDue,
            Ok(()) = self.reachable.changed() => Event::Reachability(*self.reachable.borrow_and_update()),
            Some(()) = self.template_changes.recv() => Event::TemplatesChanged,
            Some(()) = self.link_changes.recv() => Event::LinksChanged,
            Some(d) = restarts::next(&mut self.restarts) => Event::DaemonStarted(d),
            _ = self.resync.tick() => Event::Resync,
            _ = self.refresh.tick() => Event::Refresh,
            _ = retry => Event::Retry,
            _ = grace_over => Event::GraceOver,
            _ = self.verify.tick() => Event::Verify,
            _ = verify_soon => Event::Verify,
            _ = session::probe_tick(&mut self.drift_probe) => Event::DriftProbe,
        }
    }
}

/// Whether `event` calls for a pass, and adds to `kind` what that pass must do. `Cancelled` is
/// the caller's.
pub async fn handle(
    event: Event,
    agent: &mut Agent,
    sources: &mut Sources,
    metrics: &AgentMetrics,
    kind: &mut PassKind,
) -> bool {
    match event {
        Event::Cancelled | Event::CachesChanged => true,
        Event::LeasesChanged => {
            sources.leases.ask(std::time::Instant::now());
            false
        }
        Event::LeasesDue => {
            sources.leases.done(std::time::Instant::now());
            on_leases_changed(agent)
        }
        Event::Reachability(up) => on_reachability(up, metrics),
        Event::TemplatesChanged => on_templates_changed(sources, kind).await,
        Event::LinksChanged => on_links_changed(agent, sources).await,
        Event::DaemonStarted(daemon) => on_daemon_started(&daemon, agent, sources, kind).await,
        Event::Resync => on_resync(agent, sources, metrics, kind).await,
        Event::Refresh => {
            kind.refresh = true;
            true
        }
        Event::Retry => {
            kind.check_daemon = true;
            true
        }
        Event::Verify => on_verify(agent, sources).await,
        Event::DriftProbe => on_drift_probe(agent, metrics, kind).await,
        Event::GraceOver | Event::BfdChanged | Event::FailoverGuard => true,
    }
}

/// Looks at the daemon's sessions and verifies what it advertises; never a pass (a filtered
/// prefix is the base's to fix, a session down the network's).
async fn on_verify(agent: &mut Agent, sources: &mut Sources) -> bool {
    let looked = agent.look_at_routing().await;
    let (verified, recheck) = agent.verify().await;
    sources.verify_at = recheck.map(|d| tokio::time::Instant::now() + d);
    // Only a look and a verification that both got answers say how a revision is doing: the
    // figures of an earlier look, stamped now, would pass a hung daemon as healthy.
    if looked && verified {
        agent.note_revision_health();
    }
    agent.report_node();
    false
}

/// Probes FRR for routelb objects another tool removed or changed and repairs them: a Warning
/// Event on this node's NodeState naming them, a metric, `status.lastDriftRepair`. A pass
/// follows only when the repair failed (it reads the daemon afresh).
async fn on_drift_probe(agent: &mut Agent, metrics: &AgentMetrics, kind: &mut PassKind) -> bool {
    let announced = agent.announced();
    let repair = agent.daemon.repair_drift(announced).await;
    on_drift_repair(repair, agent, metrics, kind)
}

/// Reports a drift repair; a pass follows only when it failed.
fn on_drift_repair(
    repair: Option<DriftRepair>,
    agent: &mut Agent,
    metrics: &AgentMetrics,
    kind: &mut PassKind,
) -> bool {
    let Some(repair) = repair else {
        return false;
    };
    for daemon in repair.daemons() {
        metrics
            .drift_repairs
            .get_or_create(&DaemonLabels {
                daemon: daemon.into(),
            })
            .inc();
    }
    let lost = repair.lost();
    let error = repair.result.as_ref().err().cloned();
    let note = match &error {
        None => format!(
            "restored what another tool removed or changed: {}",
            lost.join("; ")
        ),
        Some(e) => format!(
            "another tool removed or changed: {}; restoring failed: {e}",
            lost.join("; ")
        ),
    };
    let _ = agent.writes.send(Write::NodeEvent(EventSpec {
        warning: true,
        reason: "DriftRepaired",
        note,
    }));
    agent.last_drift_repair = Some(crate::api::DriftRepairStatus {
        time: humantime::format_rfc3339_seconds(repair.time).to_string(),
        lost,
        error: error.clone(),
    });
    agent.report_node();
    if error.is_some() {
        kind.check_daemon = true;
    }
    error.is_some()
}

/// The drift probe's timer (see [`session::probe_timer`]).
pub fn probe_timer(period: Duration) -> Option<Interval> {
    session::probe_timer(period)
}

/// A pass only if somebody came or went: renewals arrive from every node all the time.
fn on_leases_changed(agent: &mut Agent) -> bool {
    let me = agent.last_me().unwrap_or_default();
    // A renewal of a peer fast failover judged failed may prove it alive: a pass decides.
    agent.update_members(&me) || agent.fast_failover_judges_a_peer()
}

/// For people and metrics: membership freezes by itself while this node's renewals do not get
/// through (see [`crate::membership::Liveness`]).
fn on_reachability(up: bool, metrics: &AgentMetrics) -> bool {
    metrics.api_reachable.set(i64::from(up));
    if up {
        tracing::info!("node lease renewed again");
    } else {
        tracing::warn!(
            "cannot renew the node lease: nobody is judged dead and nothing is withdrawn until it works again"
        );
    }
    false
}

/// Lets the writer finish (a ConfigMap update is several events), then reloads.
async fn on_templates_changed(sources: &mut Sources, kind: &mut PassKind) -> bool {
    tokio::time::sleep(Duration::from_millis(100)).await;
    while sources.template_changes.try_recv().is_ok() {}
    kind.reload_templates = true;
    true
}

/// Lets a burst of changes settle, then a pass only if the node's facts moved.
async fn on_links_changed(agent: &mut Agent, sources: &mut Sources) -> bool {
    tokio::time::sleep(Duration::from_millis(20)).await;
    while sources.link_changes.try_recv().is_ok() {}
    match agent.nl.interfaces().await {
        Ok(facts) => agent.facts_changed(&facts),
        Err(_) => false,
    }
}

/// Repairs a restarted daemon at once, whatever backoff it earned while it was down.
async fn on_daemon_started(
    daemon: &str,
    agent: &mut Agent,
    sources: &mut Sources,
    kind: &mut PassKind,
) -> bool {
    restarts::settle(&mut sources.restarts).await;
    agent.daemon.daemon_started(daemon);
    kind.check_daemon = true;
    true
}

/// The cheap probe, or every so often a pass that reads the daemon in full
/// ([`session::DaemonSession::resync`]).
async fn on_resync(
    agent: &mut Agent,
    sources: &mut Sources,
    metrics: &AgentMetrics,
    kind: &mut PassKind,
) -> bool {
    if sources.restarts.is_none() {
        // The daemon may have been installed or started since.
        sources.restarts = restarts::watch(&agent.cfg.driver).ok();
    }
    let announced = agent.announced();
    match agent.daemon.resync(announced).await {
        session::Resync::FullRead => {
            kind.check_daemon = true;
            true
        }
        session::Resync::Probed(repair) => on_drift_repair(repair, agent, metrics, kind),
    }
}

/// Opens the netlink change stream and, when templates come from a directory, watches it (a
/// ConfigMap volume: a reviewed change rolls out without a new image; its updates swap a
/// symlink, hence the recursive watch). Only edits wake the agent: loading the templates
/// reads them, and each read is an event too.
pub fn watch_templates(
    dir: Option<&std::path::Path>,
) -> anyhow::Result<(
    Option<notify::RecommendedWatcher>,
    mpsc::UnboundedReceiver<()>,
)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let Some(dir) = dir else {
        return Ok((None, rx));
    };
    let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok_and(|e| crate::files::changes_content(&e.kind)) {
            let _ = tx.send(());
        }
    })?;
    notify::Watcher::watch(&mut w, dir, notify::RecursiveMode::Recursive)?;
    Ok((Some(w), rx))
}

/// The netlink change stream.
pub fn link_changes() -> anyhow::Result<mpsc::UnboundedReceiver<()>> {
    Ok(Netlink::changes()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_never_postpones_a_pending_retry() {
        let now = Instant::now();
        let s = Duration::from_secs(1);
        // a pending retry stays when the pass asks for a later one
        assert_eq!(
            next_retry(Some(now + s), Some(now + 4 * s), now),
            Some(now + s)
        );
        // and gives way to a sooner one
        assert_eq!(
            next_retry(Some(now + 4 * s), Some(now + s), now),
            Some(now + s)
        );
        // one that fired is replaced; none asked, none kept
        assert_eq!(
            next_retry(Some(now), Some(now + 4 * s), now),
            Some(now + 4 * s)
        );
        assert_eq!(next_retry(Some(now + s), None, now), None);
    }
}
