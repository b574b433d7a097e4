//! Standalone mode: the whole pipeline on one host, with a directory of manifests in place of
//! the Kubernetes API. Manifests → IPAM (allocations kept in a state file) → plan → netlink,
//! and → fragment → daemon when it changed. The directory is watched, so adding, editing or
//! deleting a file takes effect at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::daemon::Driver;
use crate::daemon::applier::Applier;
use crate::manifests::{self, Manifests};
use crate::netlink::Netlink;
use crate::offline::{self, Held, HeldAddresses};
use crate::plan::{self, Plan};
use crate::render::{DaemonKind, Templates};

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

fn load_state(path: &Path) -> Held {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn save_state(path: &Path, held: &Held) -> std::io::Result<()> {
    crate::daemon::bird::write_atomically(
        path,
        &serde_json::to_string_pretty(held).expect("serializes"),
    )
}

/// The plan and fragment for the directory as it is now, without touching anything: what
/// `--dry-run` prints.
pub struct Computed {
    pub plan: Plan,
    pub fragment: String,
    pub held: Held,
    pub notes: Vec<String>,
}

pub fn compute(
    m: &Manifests,
    held: &Held,
    templates: &Templates,
    opts_node: Option<&str>,
    lb_interface: &str,
    node_ifaces: &[plan::NodeInterface],
    instances: &crate::render::Instances,
) -> Result<Computed, crate::render::TemplateError> {
    let (assigned, failures) = offline::assignments_with(m, held);
    let plan = plan::plan(&assigned, &m.pools, lb_interface, node_ifaces);
    let rendered =
        offline::render_assigned(m, &assigned, templates, opts_node, lb_interface, instances)?;
    let mut notes = failures;
    notes.extend(plan.unplaced.iter().cloned());
    notes.extend(rendered.problems.iter().map(ToString::to_string));
    let held = assigned
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
    Ok(Computed {
        plan,
        fragment: rendered.fragment,
        held,
        notes,
    })
}

fn templates(opts: &Options) -> Result<Templates, crate::render::TemplateError> {
    Templates::load(opts.daemon, opts.templates.as_deref())
}

/// Prints the planned addresses per interface and the fragment; needs no root.
pub fn dry_run(opts: &Options) -> anyhow::Result<()> {
    let m = manifests::load_dir(&opts.config)?;
    let instances = match offline::base_in_dir(&opts.config, opts.daemon) {
        Some((_, text)) => offline::instances_from_base(opts.daemon, &text),
        None => offline::assume_all_instances(64512),
    };
    let c = compute(
        &m,
        &load_state(&opts.state),
        &templates(opts)?,
        opts.node.as_deref(),
        &opts.lb_interface,
        &[],
        &instances,
    )?;
    println!("# addresses this node would hold");
    for (iface, addrs) in &c.plan.interfaces {
        for (ip, len) in addrs {
            println!("{iface}\t{ip}/{len}");
        }
    }
    for n in &c.notes {
        println!("# note: {n}");
    }
    println!("\n# {} fragment", opts.daemon.name());
    print!("{}", c.fragment);
    Ok(())
}

/// What a running standalone keeps between passes, so a Service change costs reading the
/// directory, IPAM and netlink only: the daemon's instances and the templates are read again
/// only on a resync or after a failure, and the state file is written only when it changes.
struct Session {
    opts: Options,
    nl: Netlink,
    applier: Applier,
    held: Held,
    instances: Option<crate::render::Instances>,
    templates: Option<Templates>,
}

impl Session {
    fn new(opts: Options) -> anyhow::Result<Session> {
        Ok(Session {
            nl: Netlink::connect()?,
            applier: Applier::new(opts.driver.clone()),
            held: load_state(&opts.state),
            instances: None,
            templates: None,
            opts,
        })
    }

    /// One pass: read, plan, converge addresses, and the daemon if the fragment changed (or
    /// when `check_daemon`, to repair a restarted daemon). Returns whether everything converged.
    async fn pass(&mut self, check_daemon: bool) -> anyhow::Result<bool> {
        let opts = &self.opts;
        // A directory that does not parse changes nothing: what is announced stays announced.
        let m = manifests::load_dir(&opts.config)?;
        if check_daemon || self.instances.is_none() || self.templates.is_none() {
            self.instances = Some(opts.driver.instances().await?);
            self.templates = Some(templates(opts)?);
        }
        let (Some(instances), Some(templates)) = (&self.instances, &self.templates) else {
            unreachable!("just loaded")
        };
        let node_ifaces = self.nl.interfaces().await?;
        let c = compute(
            &m,
            &self.held,
            templates,
            opts.node.as_deref(),
            &opts.lb_interface,
            &node_ifaces,
            instances,
        )?;
        for n in &c.notes {
            tracing::warn!("{n}");
        }
        if c.held != self.held {
            save_state(&opts.state, &c.held)?;
            self.held = c.held.clone();
        }

        // Addresses on every interface that should hold, or still holds, routelb's addresses.
        let mut ok = self
            .nl
            .converge_node(
                &c.plan.interfaces,
                &node_ifaces,
                &opts.lb_interface,
                None,
                false,
            )
            .await
            .iter()
            .all(|o| o.result.is_ok());

        if let Some(Err(_)) = self.applier.sync(&c.fragment, check_daemon).await {
            ok = false;
            // The base configuration may have changed (an instance added): read it again.
            self.instances = None;
        }
        Ok(ok)
    }
}

/// Converges once, or keeps converging as the directory changes until `cancel`.
pub async fn run(
    opts: Options,
    once: bool,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let config = opts.config.clone();
    let mut session = Session::new(opts)?;
    if once {
        return match session.pass(true).await? {
            true => Ok(()),
            false => anyhow::bail!("did not converge; see the warnings above"),
        };
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // Only manifests matter: the state file (often in the same directory) must not wake us.
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let touches_manifest = ev.is_ok_and(|e| {
            e.paths
                .iter()
                .any(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        });
        if touches_manifest {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&config, RecursiveMode::NonRecursive)?;
    let mut resync = tokio::time::interval(session.opts.resync);
    let mut retry: Option<Duration> = None;
    loop {
        let mut check_daemon = false;
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(()) = rx.recv() => {
                // Let an editor finish writing, and take a burst of events as one change.
                tokio::time::sleep(Duration::from_millis(50)).await;
                while rx.try_recv().is_ok() {}
            }
            _ = resync.tick() => check_daemon = true,
            _ = tokio::time::sleep(retry.unwrap_or(Duration::from_secs(3600))) => check_daemon = true,
        }
        match session.pass(check_daemon).await {
            Ok(true) => retry = None,
            Ok(false) => retry = Some(session.applier.backoff().unwrap_or(Duration::from_secs(1))),
            Err(e) => {
                tracing::warn!(error = %e, "pass failed; nothing was withdrawn");
                retry = Some(Duration::from_secs(2));
            }
        }
    }
    Ok(())
}
