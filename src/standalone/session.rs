//! A running standalone between passes, and one pass: read, allocate, record the state,
//! converge the host's addresses, then the daemon.

use std::collections::BTreeSet;
use std::time::Duration;

use super::State;
use super::{Allocated, Options, allocate, render, state};
use crate::backoff::Backoff;
use crate::daemon::session::{DaemonNext, DaemonSession, Resync};
use crate::manifests::{self, Manifests};
use crate::netlink::Netlink;
use crate::plan;

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
pub(super) struct Wake {
    /// Re-read the daemon's instances and compare with what it runs: a resync, a restart, a
    /// retry after a failure.
    pub(super) check_daemon: bool,
    /// Only the daemon needs another attempt (a retry, a restart): the directory and the
    /// host's addresses are as the last pass left them.
    pub(super) daemon_only: bool,
}

/// What the last pass read and placed, kept for a retry of the daemon alone.
struct Placed {
    m: Manifests,
    a: Allocated,
    addresses_ok: bool,
}

/// How a pass ended: when to run again if nothing else happens first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
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
pub(super) struct Session {
    pub(super) opts: Options,
    nl: Netlink,
    daemon: DaemonSession,
    state: State,
    _lock: state::Lock,
    /// Retries after failures on the host's side (the state file, netlink).
    backoff: Backoff,
    notes: Notes,
    placed: Option<Placed>,
    /// What the daemon really advertises, verified in the background.
    verification: super::verify::Background,
    /// routelb's prefixes on the load-balancer interface after the last convergence.
    lb_prefixes: BTreeSet<ipnet::IpNet>,
    /// The state holds pools or policies the state file does not have yet.
    state_unsaved: bool,
}

impl Session {
    pub(super) fn new(opts: Options) -> anyhow::Result<Session> {
        // Nothing is touched before the state file is ours and readable.
        let lock = state::lock(&opts.state)?;
        let state = state::load(&opts.state)?;
        Ok(Session {
            nl: Netlink::connect()?,
            daemon: DaemonSession::new(opts.driver.clone(), opts.daemon, opts.templates.clone()),
            state,
            _lock: lock,
            backoff: Backoff::default(),
            notes: Notes::default(),
            placed: None,
            verification: super::verify::Background::start(opts.driver.clone()),
            lb_prefixes: BTreeSet::new(),
            state_unsaved: false,
            opts,
        })
    }

    /// One pass: read, allocate, save the state, converge addresses, then the daemon. A retry
    /// of the daemon alone (the host's part converged, no edit since) reuses what the last
    /// pass read: a daemon that stays down costs a failed connect per backoff step, not a
    /// pass over every Service.
    pub(super) async fn pass(&mut self, wake: Wake) -> Next {
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
        let addresses_ok = placed.addresses_ok && self.save_unsaved_state();
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

    /// Saves what [`Self::read_and_place`] left for after the daemon; false (a retry) when it
    /// cannot.
    fn save_unsaved_state(&mut self) -> bool {
        if !self.state_unsaved {
            return true;
        }
        match state::save(&self.opts.state, &self.state) {
            Ok(()) => {
                self.state_unsaved = false;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot save the state; retrying");
                false
            }
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
        if a.state.services != self.state.services {
            // Addresses are placed only once the state file records them: a crash must not
            // leave a Service on an address the next start would give to another.
            if let Err(e) = state::save(&self.opts.state, &a.state) {
                let wait = self.backoff.fail();
                tracing::warn!(error = %e, retry_in = ?wait, "cannot save the state; nothing new is placed until it can be");
                return Err(Next::RetryIn(wait));
            }
            self.state = a.state.clone();
            self.state_unsaved = false;
        } else if a.state != self.state {
            // Only the last valid pools and policies changed: no address depends on them
            // being on disk first, so they are saved after the daemon has the change.
            self.state = a.state.clone();
            self.state_unsaved = true;
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
        self.lb_prefixes = planned
            .interfaces
            .get(&self.opts.lb_interface)
            .into_iter()
            .flatten()
            .filter_map(|(ip, len)| ipnet::IpNet::new(*ip, *len).ok().map(|n| n.trunc()))
            .collect();
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
                None,
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
        problems.extend(self.daemon.refresh_instances(wake.check_daemon).await);
        if let Err(e) = self.daemon.refresh_templates(wake.check_daemon) {
            problems.push(format!("templates: {e}; nothing is applied to the daemon"));
            return (Next::WaitForEdit, problems);
        }
        problems.extend(self.daemon.template_problem());
        let Some(instances) = self.daemon.instances() else {
            return (self.daemon_next(false, false), problems);
        };
        let rendered = match render(
            m,
            a,
            self.daemon.templates(),
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
        let missing = rendered.problems.iter().any(|p| p.waits_for_base());
        let in_sync = self
            .daemon
            .sync(&rendered.fragment, wake.check_daemon)
            .await;
        self.verification
            .update(rendered.data, self.lb_prefixes.clone());
        (self.daemon_next(in_sync, missing), problems)
    }

    fn daemon_next(&mut self, in_sync: bool, missing: bool) -> Next {
        match self.daemon.next(in_sync, missing, self.opts.resync) {
            DaemonNext::Idle => Next::Idle,
            DaemonNext::RetryIn(d) => Next::RetryIn(d),
        }
    }

    /// Probes the daemon for objects another tool removed or changed, and repairs them (the
    /// repair logs a warning naming them). True when the repair failed: a pass must read the
    /// daemon afresh.
    pub(super) async fn repair_drift(&mut self) -> bool {
        let announced = self.announced();
        self.daemon
            .repair_drift(announced)
            .await
            .is_some_and(|r| r.result.is_err())
    }

    /// A periodic resync ([`DaemonSession::resync`]): whether the pass after it must read the
    /// daemon in full (its turn, or a repair that failed).
    pub(super) async fn resync(&mut self) -> bool {
        let announced = self.announced();
        match self.daemon.resync(announced).await {
            Resync::FullRead => true,
            Resync::Probed(repair) => repair.is_some_and(|r| r.result.is_err()),
        }
    }

    fn announced(&self) -> Vec<std::net::IpAddr> {
        self.placed
            .iter()
            .flat_map(|p| &p.a.assigned)
            .flat_map(|s| s.addresses.iter().copied())
            .collect()
    }

    /// A daemon (re)started: what it lost is repaired at once, whatever backoff it earned.
    pub(super) fn daemon_started(&mut self, daemon: &str) {
        self.daemon.daemon_started(daemon);
    }
}
