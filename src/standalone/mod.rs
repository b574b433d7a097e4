//! Standalone mode: the whole pipeline on one host, with a directory of manifests in place of
//! the Kubernetes API. Manifests → IPAM (allocations kept in a state file) → plan → netlink,
//! and → fragment → daemon when it changed. The directory is watched, so adding, editing or
//! deleting a file takes effect at once.
//!
//! What each pass decides is computed without I/O ([`allocate`], [`plan::plan`], rendering);
//! the session around it reads files and interfaces, writes the state file, converges addresses
//! and drives the daemon, in that order, so addresses never wait for the daemon.

mod dry_run;
mod session;
pub mod state;
mod verify;

pub use dry_run::{DryRun, DryRunService, dry_run};
use session::{Next, Session, Wake};

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::api::{AddressPool, RoutingPolicy};
use crate::backoff::sleep_until;
use crate::daemon::session::{probe_tick, probe_timer};
use crate::daemon::{Driver, restarts};
use crate::manifests::Manifests;
use crate::offline::{self, HeldAddresses};
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
    /// How often the daemon is probed for objects another tool removed or changed (FRR);
    /// zero: never, they wait for the resync.
    pub drift_probe: Duration,
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

/// What a watched event says of the manifests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Edit {
    /// A file is whole in its new state: renamed into place (what editors, tools and
    /// ConfigMap volumes' `..data` swap do), closed after writing, or removed. Read at once.
    Whole,
    /// A file is being created or written in place: wait for it to be closed (or for writes to
    /// stop, [`SETTLE`]) before reading, or a half-written pool would withdraw addresses.
    Partial,
}

/// How long an in-place write may go quiet before the file is read anyway, for writers whose
/// close routelb is not told of (a symlink created in place, a file kept open).
pub(crate) const SETTLE: Duration = Duration::from_millis(50);

/// Whether a watched event is an edit of the manifests, and of which kind: a YAML file (or a
/// ConfigMap-style `..data` swap) created, written, renamed or removed. Reads, metadata
/// changes and other files (the state file, its lock, editors' swap files) are not.
pub(crate) fn edit_of(ev: &notify::Event, state: &Path) -> Option<Edit> {
    use notify::EventKind;
    use notify::event::ModifyKind;
    // The same files load_dir reads: no names starting with `.` (editors' lock files).
    let manifest = |p: &Path| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        !name.starts_with('.') && (name.ends_with(".yaml") || name.ends_with(".yml"))
    };
    let ours = ev
        .paths
        .iter()
        .any(|p| p != state && (manifest(p) || p.file_name().is_some_and(|n| n == "..data")));
    if !(ours && crate::files::changes_content(&ev.kind)) {
        return None;
    }
    Some(match ev.kind {
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => {
            Edit::Partial
        }
        _ => Edit::Whole,
    })
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
        if let Some(edit) = ev.ok().and_then(|e| edit_of(&e, &state_path)) {
            let _ = tx.send(edit);
        }
    })?;
    watcher.watch(&config, RecursiveMode::NonRecursive)?;
    let mut restarts = restarts::watch_or_warn(&session.opts.driver);
    let mut resync = tokio::time::interval(resync_every);
    resync.tick().await;
    let mut probe = probe_timer(session.opts.drift_probe);
    let mut wake = Wake {
        check_daemon: true,
        daemon_only: false,
    };
    loop {
        let retry = match session.pass(wake).await {
            Next::RetryIn(d) => Some(tokio::time::Instant::now() + d),
            Next::Idle | Next::WaitForEdit => None,
        };
        // Events that need no pass (a probe that found nothing) wait for the next one.
        wake = loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                Some(edit) = edits.recv() => Event::Edited(edit),
                Some(daemon) = restarts::next(&mut restarts) => Event::DaemonStarted(daemon),
                _ = resync.tick() => Event::Resync,
                _ = probe_tick(&mut probe) => Event::DriftProbe,
                _ = sleep_until(retry) => Event::Retry,
            };
            if let Some(w) = on_event(event, &mut session, &mut edits, &mut restarts).await {
                break w;
            }
        };
    }
}

/// What woke the loop.
enum Event {
    Edited(Edit),
    DaemonStarted(String),
    Resync,
    DriftProbe,
    Retry,
}

/// What pass an event calls for, if any.
async fn on_event(
    event: Event,
    session: &mut Session,
    edits: &mut tokio::sync::mpsc::UnboundedReceiver<Edit>,
    restarts: &mut Option<restarts::RestartWatch>,
) -> Option<Wake> {
    let daemon_only = Wake {
        check_daemon: true,
        daemon_only: true,
    };
    match event {
        Event::Edited(edit) => {
            whole(edit, edits).await;
            Some(Wake::default())
        }
        Event::DaemonStarted(daemon) => {
            restarts::settle(restarts).await;
            session.daemon_started(&daemon);
            Some(daemon_only)
        }
        // The resync also re-converges addresses: someone may have removed one by hand.
        Event::Resync => {
            if restarts.is_none() {
                // The daemon may have been installed or started since.
                *restarts = restarts::watch(&session.opts.driver).ok();
            }
            Some(Wake {
                check_daemon: session.resync().await,
                daemon_only: false,
            })
        }
        // A repair that failed leaves it to a pass that reads the daemon afresh.
        Event::DriftProbe => session.repair_drift().await.then_some(daemon_only),
        Event::Retry => Some(daemon_only),
    }
}

/// Returns once the manifests are whole: at once after a rename, a close or a removal; after
/// an in-place write, once the writer closed the file or went quiet for [`SETTLE`]. Whatever
/// else queued up (edits made while a pass ran) is taken along: one pass for all of them.
async fn whole(first: Edit, edits: &mut tokio::sync::mpsc::UnboundedReceiver<Edit>) {
    let mut pending = first == Edit::Partial;
    loop {
        while let Ok(edit) = edits.try_recv() {
            pending = edit == Edit::Partial;
        }
        if !pending {
            return;
        }
        match tokio::time::timeout(SETTLE, edits.recv()).await {
            Ok(Some(edit)) => pending = edit == Edit::Partial,
            Ok(None) | Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests;
