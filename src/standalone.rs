//! Standalone mode: the whole pipeline on one host, with a directory of manifests in place of
//! the Kubernetes API. Manifests → IPAM (allocations kept in a state file) → plan → netlink,
//! and → fragment → daemon when it changed. The directory is watched, so adding, editing or
//! deleting a file takes effect at once.

use std::collections::BTreeSet;
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
    notes.extend(
        rendered
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.reason, p.message)),
    );
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

/// One pass: read, plan, converge addresses, and the daemon if the fragment changed (or when
/// `check_daemon`, to repair a restarted daemon). Returns whether everything converged.
async fn pass(
    opts: &Options,
    nl: &Netlink,
    applier: &mut Applier,
    check_daemon: bool,
) -> anyhow::Result<bool> {
    // A directory that does not parse changes nothing: what is announced stays announced.
    let m = manifests::load_dir(&opts.config)?;
    let held = load_state(&opts.state);
    let node_ifaces = nl.interfaces().await?;
    let instances = opts.driver.instances().await?;
    let c = compute(
        &m,
        &held,
        &templates(opts)?,
        opts.node.as_deref(),
        &opts.lb_interface,
        &node_ifaces,
        &instances,
    )?;
    for n in &c.notes {
        tracing::warn!("{n}");
    }
    save_state(&opts.state, &c.held)?;

    // Addresses: the load-balancer interface first (created if needed), then every interface
    // that should hold, or still holds, routelb's addresses.
    let (lb_index, kind) = nl.ensure_lb_interface(&opts.lb_interface).await?;
    tracing::debug!(?kind, "load-balancer interface");
    let mut ok = true;
    for iface in node_ifaces
        .iter()
        .map(|i| i.name.clone())
        .chain([opts.lb_interface.clone()])
        .collect::<BTreeSet<_>>()
    {
        let index = if iface == opts.lb_interface {
            lb_index
        } else {
            nl.link_index(&iface).await?.unwrap_or(0)
        };
        if index == 0 {
            continue;
        }
        let desired = c.plan.interfaces.get(&iface).cloned().unwrap_or_default();
        match nl.converge(index, &desired, None).await {
            Ok((0, 0)) => {}
            Ok((added, removed)) => {
                tracing::info!(interface = %iface, added, removed, "addresses converged")
            }
            Err(e) => {
                ok = false;
                tracing::warn!(interface = %iface, error = %e, "could not converge addresses");
            }
        }
    }

    let changed = applier.last_good() != Some(c.fragment.as_str());
    if (changed || check_daemon) && applier.due() {
        match applier.converge(&c.fragment).await {
            Ok(o) if o.changed => tracing::info!(
                lines = o.commands,
                ms = o.elapsed.as_millis() as u64,
                "fragment applied"
            ),
            Ok(_) => {}
            Err(e) => {
                ok = false;
                tracing::warn!(error = %e, retry_in = ?applier.backoff(), "fragment not applied; the last good one stays");
            }
        }
    }
    Ok(ok)
}

/// Converges once, or keeps converging as the directory changes until `cancel`.
pub async fn run(
    opts: Options,
    once: bool,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let nl = Netlink::connect()?;
    let mut applier = Applier::new(opts.driver.clone());
    if once {
        return match pass(&opts, &nl, &mut applier, true).await? {
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
    watcher.watch(&opts.config, RecursiveMode::NonRecursive)?;
    let mut resync = tokio::time::interval(opts.resync);
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
        match pass(&opts, &nl, &mut applier, check_daemon).await {
            Ok(true) => retry = None,
            Ok(false) => retry = Some(applier.backoff().unwrap_or(Duration::from_secs(1))),
            Err(e) => {
                tracing::warn!(error = %e, "pass failed; nothing was withdrawn");
                retry = Some(Duration::from_secs(2));
            }
        }
    }
    Ok(())
}
