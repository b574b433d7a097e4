//! Standalone mode: the whole pipeline on one host, with a directory of manifests in place of
//! the Kubernetes API. Manifests → IPAM (allocations kept in a state file) → plan → netlink,
//! and → fragment → daemon when it changed. The directory is watched, so adding, editing or
//! deleting a file takes effect at once.
//!
//! What each pass decides is computed without I/O ([`allocate`], [`plan::plan`], rendering);
//! the session around it reads files and interfaces, writes the state file, converges addresses
//! and drives the daemon, in that order, so addresses never wait for the daemon.

pub mod state;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use serde::Serialize;

use crate::api::{AddressPool, RoutingPolicy};
use crate::backoff::Backoff;
use crate::daemon::applier::Applier;
use crate::daemon::{Driver, restarts};
use crate::manifests::{self, Manifests};
use crate::netlink::Netlink;
use crate::offline::{self, HeldAddresses};
use crate::plan;
use crate::render::model::Instances;
use crate::render::{DaemonKind, Templates};
use crate::service::ServiceAddresses;
use kube::ResourceExt;
pub use state::State;

pub struct Options {
    pub config: PathBuf,
    pub state: PathBuf,
    pub daemon: DaemonKind,
    pub driver: Driver,
    pub templates: Option<PathBuf>,
    pub lb_interface: String,
    pub node: Option<String>,
    /// How often the daemon is checked for lost objects (a restart) even when nothing changed.
    pub resync: Duration,
}

/// What IPAM decided for the directory, and the state to keep.
pub struct Allocated {
    pub assigned: Vec<ServiceAddresses>,
    /// The pools and policies to plan and render from: each as it is, or as it was last valid.
    pub pools: Vec<AddressPool>,
    pub policies: Vec<RoutingPolicy>,
    pub state: State,
    /// Everything a user should know: invalid pools and policies, services without
    /// addresses, ignored state entries.
    pub notes: Vec<String>,
}

/// IPAM over the directory with what services held before (pure). Pools and policies that
/// stopped being valid keep their last valid definition, deleted pools stay while services
/// hold their addresses, and state entries naming an unknown pool for an address no pool
/// holds are dropped. Which pool a Service's addresses belong to, and so what the pool's
/// policies grant it, is decided from the pools in use, whatever the state file says.
pub fn allocate(m: &Manifests, previous: &State) -> Allocated {
    let mut pools_memory = previous.pools.clone();
    let in_use = pools_memory.with_deleted(&m.pools);
    let known: Vec<String> = m
        .pools
        .iter()
        .map(|p| p.name_any())
        .chain(pools_memory.0.keys().cloned())
        .collect();
    let (trusted, mut notes) = previous.trusted(&in_use.objects, &known);
    let mut assigned = offline::assignments_with(m, &trusted);
    pools_memory.forget_deleted(&m.pools, assigned.assigned.iter().map(|a| a.pool.as_str()));
    // Invalid pools are reported from here, with what happens to them.
    let pools = pools_memory.with_deleted(&m.pools);
    let parsed: Vec<crate::ipam::Pool> = pools
        .objects
        .iter()
        .filter_map(|p| crate::ipam::Pool::from_spec(&p.name_any(), &p.spec).ok())
        .collect();
    for (svc, request) in assigned.assigned.iter_mut().zip(&assigned.requests) {
        svc.attribute(request, &parsed);
    }
    let mut policies_memory = previous.policies.clone();
    policies_memory.forget_deleted(&m.policies, []);
    let policies = policies_memory.effective(&m.policies);
    notes.extend(pools.problems);
    notes.extend(policies.problems);
    notes.extend(assigned.notes);
    let services = assigned
        .assigned
        .iter()
        .map(|a| {
            (
                a.key.to_string(),
                HeldAddresses {
                    pool: a.pool.clone(),
                    addresses: a.addresses.clone(),
                },
            )
        })
        .collect();
    Allocated {
        assigned: assigned.assigned,
        pools: pools.objects,
        policies: policies.objects,
        state: State {
            services,
            pools: pools_memory,
            policies: policies_memory,
        },
        notes,
    }
}

/// The fragment for what was allocated; its problems (missing instances, refused per-service
/// attributes) come back with it.
pub fn render(
    m: &Manifests,
    a: &Allocated,
    templates: &Templates,
    node: Option<&str>,
    lb_interface: &str,
    instances: &Instances,
) -> Result<offline::Offline, crate::render::TemplateError> {
    offline::render_assigned(
        m,
        offline::Decided {
            pools: &a.pools,
            policies: &a.policies,
            services: &a.assigned,
        },
        templates,
        node,
        lb_interface,
        instances,
    )
}

fn templates(opts: &Options) -> Result<Templates, crate::render::TemplateError> {
    Templates::load(opts.daemon, opts.templates.as_deref())
}

/// What `--dry-run` shows.
#[derive(Serialize)]
pub struct DryRun {
    /// Which Service gets which addresses, from which pool.
    pub services: Vec<DryRunService>,
    /// Interface → addresses this node would hold (`address/length`).
    pub interfaces: std::collections::BTreeMap<String, Vec<String>>,
    pub notes: Vec<String>,
    pub daemon: &'static str,
    pub fragment: String,
}

#[derive(Serialize)]
pub struct DryRunService {
    pub service: String,
    pub pool: String,
    pub addresses: Vec<std::net::IpAddr>,
}

/// Computes what a pass would do, touching nothing; needs no root.
pub fn dry_run(opts: &Options) -> anyhow::Result<DryRun> {
    let m = manifests::load_dir(&opts.config)?;
    let instances = match offline::base_in_dir(&opts.config, opts.daemon) {
        Some((_, text)) => offline::instances_from_base(opts.daemon, &text),
        None => offline::assume_all_instances(64512),
    };
    let a = allocate(&m, &state::load(&opts.state)?);
    let planned = plan::plan(&a.assigned, &a.pools, &opts.lb_interface, &[]);
    let rendered = render(
        &m,
        &a,
        &templates(opts)?,
        opts.node.as_deref(),
        &opts.lb_interface,
        &instances,
    )?;
    let mut notes = m.warnings.clone();
    notes.extend(a.notes.iter().cloned());
    notes.extend(planned.unplaced.iter().cloned());
    notes.extend(rendered.problems.iter().map(ToString::to_string));
    Ok(DryRun {
        services: a
            .assigned
            .iter()
            .map(|s| DryRunService {
                service: s.key.to_string(),
                pool: s.pool.clone(),
                addresses: s.addresses.clone(),
            })
            .collect(),
        interfaces: planned
            .interfaces
            .iter()
            .map(|(i, addrs)| {
                (
                    i.clone(),
                    addrs
                        .iter()
                        .map(|(ip, len)| format!("{ip}/{len}"))
                        .collect(),
                )
            })
            .collect(),
        notes,
        daemon: opts.daemon.name(),
        fragment: rendered.fragment,
    })
}

impl DryRun {
    /// The plain-text form: one section per question a user asks before running it.
    pub fn text(&self) -> String {
        let mut out = String::from("# services\n");
        for s in &self.services {
            let addrs: Vec<String> = s.addresses.iter().map(ToString::to_string).collect();
            out.push_str(&format!(
                "{}\t{}\tpool {}\n",
                s.service,
                addrs.join(","),
                s.pool
            ));
        }
        out.push_str("\n# addresses this node would hold\n");
        for (iface, addrs) in &self.interfaces {
            for a in addrs {
                out.push_str(&format!("{iface}\t{a}\n"));
            }
        }
        for n in &self.notes {
            out.push_str(&format!("# note: {n}\n"));
        }
        out.push_str(&format!("\n# {} fragment\n{}", self.daemon, self.fragment));
        out
    }
}

/// Messages logged once while they hold, not once per pass.
#[derive(Default)]
struct Notes(BTreeSet<String>);

impl Notes {
    fn log(&mut self, current: impl IntoIterator<Item = String>) {
        let current: BTreeSet<String> = current.into_iter().collect();
        for n in current.difference(&self.0) {
            tracing::warn!("{n}");
        }
        self.0 = current;
    }
}

/// Why the next pass happens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Wake {
    /// Re-read the daemon's instances and compare with what it runs: a resync, a restart, a
    /// retry after a failure.
    check_daemon: bool,
    /// Only the daemon needs another attempt (a retry, a restart): the directory and the
    /// host's addresses are as the last pass left them.
    daemon_only: bool,
}

/// What the last pass read and placed, kept for a retry of the daemon alone.
struct Placed {
    m: Manifests,
    a: Allocated,
    addresses_ok: bool,
}

/// How a pass ended: when to run again if nothing else happens first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Everything converged: wait for a change.
    Idle,
    /// Something failed or waits for the daemon: run again (checking the daemon) after this.
    RetryIn(Duration),
    /// The directory does not parse: wait for the next edit; nothing was touched.
    WaitForEdit,
}

/// What a running standalone keeps between passes, so a Service change costs reading the
/// directory, IPAM and netlink only: the daemon's instances and the templates are read again
/// only on a resync, a restart or after a failure, and the state file is written only when it
/// changes.
struct Session {
    opts: Options,
    nl: Netlink,
    applier: Applier,
    state: State,
    _lock: state::Lock,
    instances: Option<Instances>,
    templates: Option<Templates>,
    backoff: Backoff,
    /// Retries while the daemon does not answer.
    daemon_backoff: Backoff,
    /// Retries while an instance a policy needs is missing: FRR may be up before it has
    /// loaded its configuration.
    instance_backoff: Backoff,
    notes: Notes,
    placed: Option<Placed>,
}

impl Session {
    fn new(opts: Options) -> anyhow::Result<Session> {
        // Nothing is touched before the state file is ours and readable.
        let lock = state::lock(&opts.state)?;
        let state = state::load(&opts.state)?;
        Ok(Session {
            nl: Netlink::connect()?,
            applier: Applier::new(opts.driver.clone()),
            state,
            _lock: lock,
            instances: None,
            templates: None,
            backoff: Backoff::default(),
            daemon_backoff: Backoff::default(),
            instance_backoff: Backoff::default(),
            notes: Notes::default(),
            placed: None,
            opts,
        })
    }

    /// One pass: read, allocate, save the state, converge addresses, then the daemon. A retry
    /// of the daemon alone (the host's part converged, no edit since) reuses what the last
    /// pass read: a daemon that stays down costs a failed connect per backoff step, not a
    /// pass over every Service.
    async fn pass(&mut self, wake: Wake) -> Next {
        let reuse = wake.daemon_only && self.placed.is_some();
        let placed = match self.placed.take() {
            Some(p) if reuse => p,
            _ => match self.read_and_place().await {
                Ok(p) => p,
                Err(next) => return next,
            },
        };
        let (daemon_next, problems) = self.sync_daemon(&placed.m, &placed.a, wake).await;
        let mut notes = placed.m.warnings.clone();
        notes.extend(placed.a.notes.iter().cloned());
        notes.extend(problems);
        self.notes.log(notes);
        let addresses_ok = placed.addresses_ok;
        if addresses_ok {
            self.placed = Some(placed);
        }
        match (addresses_ok, daemon_next) {
            (true, next) => {
                self.backoff.reset();
                next
            }
            (false, Next::RetryIn(d)) => Next::RetryIn(d.min(self.backoff.fail())),
            (false, _) => Next::RetryIn(self.backoff.fail()),
        }
    }

    /// Reads the directory, allocates, records the state and converges the host's addresses.
    async fn read_and_place(&mut self) -> Result<Placed, Next> {
        let m = match manifests::load_dir(&self.opts.config) {
            Ok(m) => m,
            Err(e) => {
                // What is announced stays announced until the directory parses again.
                self.notes.log([format!(
                    "{e}; nothing changes until the directory parses again"
                )]);
                return Err(Next::WaitForEdit);
            }
        };
        let a = allocate(&m, &self.state);
        if a.state != self.state {
            // Addresses are placed only once the state file records them: a crash must not
            // leave a Service on an address the next start would give to another.
            if let Err(e) = state::save(&self.opts.state, &a.state) {
                let wait = self.backoff.fail();
                tracing::warn!(error = %e, retry_in = ?wait, "cannot save the state; nothing new is placed until it can be");
                return Err(Next::RetryIn(wait));
            }
            self.state = a.state.clone();
        }
        let addresses_ok = self.converge_addresses(&a).await;
        Ok(Placed { m, a, addresses_ok })
    }

    /// Places routelb's addresses; true when every interface converged.
    async fn converge_addresses(&mut self, a: &Allocated) -> bool {
        let node_ifaces = match self.nl.interfaces().await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read this host's interfaces");
                return false;
            }
        };
        let planned = plan::plan(&a.assigned, &a.pools, &self.opts.lb_interface, &node_ifaces);
        for n in &planned.unplaced {
            tracing::debug!("{n}");
        }
        let outcomes = self
            .nl
            .converge_node(
                &planned.interfaces,
                &node_ifaces,
                &self.opts.lb_interface,
                None,
                false,
            )
            .await;
        crate::garp::announce_all(
            outcomes
                .iter()
                .filter_map(crate::netlink::InterfaceOutcome::acquired),
        );
        outcomes.iter().all(|o| o.result.is_ok())
    }

    /// Renders against the daemon's instances and applies when the fragment changed (or to
    /// check it). Returns when to come back, and the problems to report.
    async fn sync_daemon(
        &mut self,
        m: &Manifests,
        a: &Allocated,
        wake: Wake,
    ) -> (Next, Vec<String>) {
        let mut problems = Vec::new();
        if wake.check_daemon || self.instances.is_none() {
            match self.opts.driver.instances().await {
                Ok(i) => {
                    self.instances = Some(i);
                    self.daemon_backoff.reset();
                }
                Err(e) => {
                    problems.push(format!("cannot read the daemon's routing instances: {e}"));
                    self.instances = None;
                    return (Next::RetryIn(self.daemon_backoff.fail()), problems);
                }
            }
        }
        if wake.check_daemon || self.templates.is_none() {
            match templates(&self.opts) {
                Ok(t) => self.templates = Some(t),
                Err(e) if self.templates.is_some() => {
                    problems.push(format!("templates: {e} (the last good ones stay in use)"))
                }
                Err(e) => {
                    problems.push(format!("templates: {e}; nothing is applied to the daemon"));
                    return (Next::WaitForEdit, problems);
                }
            }
        }
        let (Some(instances), Some(templates)) = (&self.instances, &self.templates) else {
            unreachable!("read above")
        };
        let rendered = match render(
            m,
            a,
            templates,
            self.opts.node.as_deref(),
            &self.opts.lb_interface,
            instances,
        ) {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("{e}; the daemon keeps its last good fragment"));
                return (Next::WaitForEdit, problems);
            }
        };
        problems.extend(rendered.problems.iter().map(ToString::to_string));
        let instance_missing = rendered
            .problems
            .iter()
            .any(|p| p.reason == "InstanceMissing");
        if let Some(Err(_)) = self
            .applier
            .sync(&rendered.fragment, wake.check_daemon)
            .await
        {
            // The base configuration may have changed (an instance added): read it again.
            self.instances = None;
            let wait = self.applier.backoff().unwrap_or(Duration::from_secs(1));
            return (Next::RetryIn(wait), problems);
        }
        if instance_missing {
            // Read the instances again soon: a daemon that just started may not have loaded
            // its configuration yet, and the network team may be adding the instance.
            let wait = self.instance_backoff.fail() / 4;
            return (Next::RetryIn(wait.min(self.opts.resync)), problems);
        }
        self.instance_backoff.reset();
        (Next::Idle, problems)
    }

    /// A daemon (re)started: what it lost is repaired at once, whatever backoff it earned.
    fn daemon_started(&mut self, daemon: &str) {
        tracing::info!(daemon, "daemon started; checking what it holds");
        self.applier.retry_now();
        self.instance_backoff.reset();
        self.daemon_backoff.reset();
    }
}

/// Whether a watched event is an edit of the manifests: a YAML file created, written, renamed
/// or removed (or a ConfigMap-style `..data` swap). Reads, metadata changes and other files
/// (the state file, its lock, editors' swap files) are not.
fn is_edit(ev: &notify::Event, state: &Path) -> bool {
    use notify::EventKind;
    use notify::event::ModifyKind;
    let kind_counts = match ev.kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    };
    // The same files load_dir reads: no names starting with `.` (editors' lock files).
    let manifest = |p: &Path| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
    };
    kind_counts
        && ev
            .paths
            .iter()
            .any(|p| p != state && (manifest(p) || p.file_name().is_some_and(|n| n == "..data")))
}

/// Converges once, or keeps converging as the directory changes until `cancel`.
pub async fn run(
    opts: Options,
    once: bool,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let config = opts.config.clone();
    let state_path = opts.state.clone();
    let resync_every = opts.resync;
    let mut session = Session::new(opts)?;
    if once {
        return match session
            .pass(Wake {
                check_daemon: true,
                daemon_only: false,
            })
            .await
        {
            Next::Idle => Ok(()),
            _ => anyhow::bail!("did not converge; see the warnings above"),
        };
    }
    let (tx, mut edits) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok_and(|e| is_edit(&e, &state_path)) {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&config, RecursiveMode::NonRecursive)?;
    let mut restarts = restarts::watch_or_warn(&session.opts.driver);
    let mut resync = tokio::time::interval(resync_every);
    resync.tick().await;
    let mut wake = Wake {
        check_daemon: true,
        daemon_only: false,
    };
    loop {
        let next = session.pass(wake).await;
        let retry = match next {
            Next::RetryIn(d) => Some(tokio::time::Instant::now() + d),
            Next::Idle | Next::WaitForEdit => None,
        };
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(()) = edits.recv() => Event::Edited,
            Some(daemon) = restarts::next(&mut restarts) => Event::DaemonStarted(daemon),
            _ = resync.tick() => Event::Resync,
            _ = sleep_until(retry) => Event::Retry,
        };
        wake = match event {
            Event::Edited => {
                // Let an editor finish writing, and take a burst of events as one change.
                tokio::time::sleep(Duration::from_millis(50)).await;
                while edits.try_recv().is_ok() {}
                Wake::default()
            }
            Event::DaemonStarted(daemon) => {
                restarts::settle(&mut restarts).await;
                session.daemon_started(&daemon);
                Wake {
                    check_daemon: true,
                    daemon_only: true,
                }
            }
            // The resync also re-converges addresses: someone may have removed one by hand.
            Event::Resync => {
                if restarts.is_none() {
                    // The daemon may have been installed or started since.
                    restarts = restarts::watch(&session.opts.driver).ok();
                }
                Wake {
                    check_daemon: true,
                    daemon_only: false,
                }
            }
            Event::Retry => Wake {
                check_daemon: true,
                daemon_only: true,
            },
        };
    }
    Ok(())
}

/// What woke the loop.
enum Event {
    Edited,
    DaemonStarted(String),
    Resync,
    Retry,
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
