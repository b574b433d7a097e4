//! The FRR driver: talks to a running FRR (optionally in a pathspace) through its daemons' vty
//! sockets, the way vtysh does, over connections it keeps open ([`super::vty`]). `diff` mode
//! sends only the changed lines of routelb's own objects; `reload` mode hands a full file to
//! `frr-reload.py` for teams that prefer it. Configuration objects of a new shape are first
//! checked with `vtysh --dryrun`, FRR's own parser.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::process::Command;

use super::drift;
use super::frr_config::{self, Owned};
use super::rip_withdraw;
use super::vty::{self, Vty};
use super::{ApplyOutcome, DaemonError};
use crate::render::model::Instances;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FrrApply {
    /// Send only the changed lines of routelb's objects to the daemons.
    Diff,
    /// Write the full configuration and run frr-reload.py --reload.
    Reload,
}

#[derive(Clone, Debug)]
pub struct FrrDriver {
    pub pathspace: Option<String>,
    pub mode: FrrApply,
    pub vtysh: PathBuf,
    pub reload_script: PathBuf,
    vty: Arc<Vty>,
    /// routelb's objects as each daemon holds them, when known: after a successful apply, or
    /// after reading the running configuration. Cleared on any error, on a resync and when a
    /// daemon restarted, so the next apply reads the daemons again.
    known: Arc<Mutex<Option<Held>>>,
    /// What the drift probe expects of each daemon, computed from `known` at the first probe
    /// after it changed.
    expected: Arc<Mutex<Option<Arc<Expectations>>>>,
    /// Per daemon, the kinds of line ([`frr_config::kind_in`]) it answered "unknown command"
    /// to: it is not sent them again, and not expected to hold them.
    ignores: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
    /// The shapes ([`shape`]) of configuration objects (a prefix-list line, a route-map entry, a
    /// router context with its redistribute lines) that already passed `vtysh --dryrun`: only
    /// objects of a new shape are checked again.
    validated: Arc<Mutex<Validated>>,
    /// The addresses announced now ([`FrrDriver::set_announced`]).
    announced: Arc<Mutex<Vec<std::net::IpAddr>>>,
    /// Whether a bulk load sends only its urgent part ([`FrrDriver::set_urgent_only`]).
    urgent_only: Arc<std::sync::atomic::AtomicBool>,
    /// Probes so far: every [`PROBE_EVERYTHING_EVERY`]th asks everything, the others the
    /// prefix-list summaries only.
    probes: Arc<std::sync::atomic::AtomicU32>,
}

/// Every how many drift probes one asks the route-maps and redistribute lines too (2 s at the
/// default 500 ms); the others ask the prefix-list summaries alone, and more only when those
/// show a loss. Lost lists are still found within a probe, a changed route-map within four.
pub const PROBE_EVERYTHING_EVERY: u32 = 4;

/// routelb's objects in each daemon, by daemon name.
type Held = BTreeMap<String, Owned>;

/// What passed `vtysh --dryrun`: the shapes, and the units of those shapes already seen (by
/// [`frr_config::unit_hash`]), which need no shape computed again.
#[derive(Debug, Default)]
struct Validated {
    shapes: HashSet<String>,
    units: HashSet<u64>,
}

/// What the drift probe expects of each daemon, by daemon name.
type Expectations = BTreeMap<String, drift::Expected>;

/// Where FRR keeps its daemons' vty sockets: Debian's and FRR's own packages use /var/run/frr.
pub const DEFAULT_VTY_DIR: &str = "/var/run/frr";

impl FrrDriver {
    pub fn new(pathspace: Option<String>, mode: FrrApply) -> Self {
        Self::with_vty_dir(pathspace, mode, DEFAULT_VTY_DIR.into())
    }

    /// A driver for FRR built with another run directory (`--localstatedir`); a pathspace is
    /// a subdirectory of it.
    pub fn with_vty_dir(pathspace: Option<String>, mode: FrrApply, vty_dir: PathBuf) -> Self {
        let dir = match &pathspace {
            Some(p) => vty_dir.join(p),
            None => vty_dir,
        };
        FrrDriver {
            pathspace,
            mode,
            vtysh: "vtysh".into(),
            reload_script: "/usr/lib/frr/frr-reload.py".into(),
            vty: Arc::new(Vty::new(dir)),
            known: Arc::default(),
            expected: Arc::default(),
            ignores: Arc::default(),
            validated: Arc::default(),
            announced: Arc::default(),
            urgent_only: Arc::default(),
            probes: Arc::default(),
        }
    }

    /// The running configuration, every daemon's merged as `vtysh -c 'show running-config'`
    /// shows it.
    pub async fn running_config(&self) -> Result<String, DaemonError> {
        let trees = self
            .vty
            .running_configs()
            .await?
            .iter()
            .map(|(_, text)| frr_config::parse(text))
            .collect();
        Ok(frr_config::units(&frr_config::merge(trees)).concat())
    }

    /// What `daemon` (`bgpd`, `ospfd`…) answers to a show command, over the kept
    /// connection; `Ok(None)` when that daemon does not run, `Rejected` when it refuses the
    /// command.
    pub async fn show(&self, daemon: &str, command: &str) -> Result<Option<String>, DaemonError> {
        match self.vty.show(daemon, command).await? {
            None => Ok(None),
            Some(r) if r.ok() => Ok(Some(r.output)),
            Some(r) => Err(DaemonError::Rejected(format!(
                "{daemon}: {command}: {}",
                r.message()
            ))),
        }
    }

    /// The directory holding the daemons' vty sockets.
    pub fn vty_dir(&self) -> &std::path::Path {
        self.vty.dir()
    }

    /// Drops what is known of the daemon's objects: the next apply reads them again. For a
    /// resync, which must notice objects lost to a restart or edited by hand.
    pub fn forget(&self) {
        self.set_known(None);
    }

    /// The routing instances in the running configuration.
    pub async fn instances(&self) -> Result<Instances, DaemonError> {
        Ok(frr_config::instances(&frr_config::parse(
            &self.running_config().await?,
        )))
    }

    /// Checks a fragment with vtysh's own parser, without touching the daemon. Objects of a
    /// shape checked before pass without spawning vtysh.
    pub async fn validate(&self, fragment: &str) -> Result<(), DaemonError> {
        self.validate_units(&frr_config::parse(fragment)).await
    }

    /// [`Self::validate`] for a parsed fragment's units. A unit seen before (by a hash of its
    /// lines) costs a lookup; only new ones are written out and have their shape computed: on
    /// a pass over thousands of pool entries, one changed entry is one shape.
    async fn validate_units(&self, tree: &[frr_config::Node]) -> Result<(), DaemonError> {
        let (fresh, text) = {
            let seen = self.validated.lock().expect("not poisoned");
            let fresh: Vec<(u64, String, String)> = tree
                .iter()
                .map(|n| (frr_config::unit_hash(n), n))
                .filter(|(h, _)| !seen.units.contains(h))
                .map(|(h, n)| {
                    let u = frr_config::unit(n);
                    (h, shape(&u), u)
                })
                .collect();
            let text: String = fresh
                .iter()
                .filter(|(_, shape, _)| !seen.shapes.contains(shape))
                .map(|(_, _, u)| u.as_str())
                .collect();
            (fresh, text)
        };
        if !text.is_empty() {
            self.validate_uncached(&text).await?;
        }
        let mut seen = self.validated.lock().expect("not poisoned");
        if seen.units.len() > 200_000 || seen.shapes.len() > 200_000 {
            seen.units.clear();
            seen.shapes.clear();
        }
        for (h, shape, _) in fresh {
            seen.units.insert(h);
            seen.shapes.insert(shape);
        }
        Ok(())
    }

    async fn validate_uncached(&self, fragment: &str) -> Result<(), DaemonError> {
        let file = super::temp_file("frr-fragment", fragment)?;
        let out = Command::new(&self.vtysh)
            .args(["--dryrun", "-f"])
            .arg(file.path())
            .output()
            .await
            .map_err(|e| {
                DaemonError::Unreachable(format!("cannot run {}: {e}", self.vtysh.display()))
            })?;
        if out.status.success() {
            Ok(())
        } else {
            let msg = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            Err(DaemonError::Invalid(msg.trim().to_string()))
        }
    }

    /// Whether routelb's objects in the running configuration are exactly the fragment's: in
    /// each daemon, the share of them it takes (before this driver applied anything and so
    /// learned the shares: in all daemons together, as vtysh shows them). False after a daemon
    /// restart that lost them, or after someone edited them by hand.
    pub async fn in_sync(&self, fragment: &str) -> Result<bool, DaemonError> {
        let desired = frr_config::owned(&frr_config::parse(fragment));
        let learned = !self.ignores.lock().expect("not poisoned").is_empty();
        if !learned {
            let running = frr_config::parse(&self.running_config().await?);
            return Ok(frr_config::owned(&running) == desired);
        }
        let held = self.read_held().await?;
        Ok(self.shares(&held, &desired) == held)
    }

    /// Asks each daemon a few small show commands ([`drift`]) and compares the answers with
    /// what it should hold since the last apply: what another tool removed or changed, named.
    /// `None` when nothing is known to compare with (no apply yet, a failure or a resync
    /// since, `reload` mode): the next apply reads the daemons anyway.
    pub async fn probe(&self, everything: bool) -> Result<Option<drift::Probe>, DaemonError> {
        let Some(expected) = self.expected() else {
            return Ok(None);
        };
        let turn = self.probes.fetch_add(1, Ordering::Relaxed);
        let depth = if everything || turn.is_multiple_of(PROBE_EVERYTHING_EVERY) {
            drift::Depth::Everything
        } else {
            drift::Depth::Lists
        };
        let mut findings = self.probe_at(&expected, depth).await?;
        if depth == drift::Depth::Lists && !findings.is_empty() {
            // Something is gone: the whole picture, so that two probes in a row can agree.
            findings = self.probe_at(&expected, drift::Depth::Everything).await?;
            return Ok(Some(drift::Probe {
                findings,
                complete: true,
            }));
        }
        Ok(Some(drift::Probe {
            findings,
            complete: depth == drift::Depth::Everything,
        }))
    }

    async fn probe_at(
        &self,
        expected: &Expectations,
        depth: drift::Depth,
    ) -> Result<Vec<drift::Finding>, DaemonError> {
        let commands = expected
            .iter()
            .map(|(d, e)| (d.clone(), drift::commands(e, depth)))
            .filter(|(_, c)| !c.is_empty())
            .collect();
        let answers = self.vty.show_each(commands).await?;
        let empty = BTreeMap::new();
        Ok(expected
            .iter()
            .flat_map(|(d, e)| drift::compare(d, e, answers.get(d).unwrap_or(&empty)))
            .collect())
    }

    /// What each daemon should answer the probe, while what it holds is known.
    fn expected(&self) -> Option<Arc<Expectations>> {
        let mut cached = self.expected.lock().expect("not poisoned");
        if cached.is_none() {
            let known = self.known.lock().expect("not poisoned");
            *cached = known.as_ref().map(|held| {
                Arc::new(
                    held.iter()
                        .map(|(d, o)| (d.clone(), drift::Expected::of(o)))
                        .collect(),
                )
            });
        }
        cached.clone()
    }

    fn set_known(&self, held: Option<Held>) {
        // Both locks, in this order (as `expected` takes them), so no probe sees one without
        // the other.
        let mut expected = self.expected.lock().expect("not poisoned");
        *self.known.lock().expect("not poisoned") = held;
        *expected = None;
    }

    /// Reads routelb's objects from every daemon's running configuration.
    async fn read_held(&self) -> Result<Held, DaemonError> {
        Ok(self
            .vty
            .running_configs()
            .await?
            .iter()
            .map(|(daemon, text)| (daemon.clone(), frr_config::owned(&frr_config::parse(text))))
            .collect())
    }

    /// Each daemon's share of `desired`: a `router <protocol>` block goes to that protocol's
    /// daemon only (sent to all, `router ospf` would enter `router ospf6` in ospf6d: FRR
    /// completes abbreviated keywords); prefix-lists and route-maps to the daemons of those
    /// routers, which are the ones that use them; to the others (zebra, staticd…) only what
    /// none of those takes. Each line only to daemons that have not answered "unknown
    /// command" to its kind. vtysh sends a prefix-list to every daemon, but each copy costs
    /// its daemon a commit of its whole configuration (20–45 ms at 5,000 entries): zebra's
    /// copy doubled the CPU of every change and, on a small machine, its wall time.
    fn shares(&self, held: &Held, desired: &Owned) -> Held {
        const BFDD: &str = "bfdd";
        let ignores = self.ignores.lock().expect("not poisoned");
        let routers: BTreeSet<&String> = desired
            .redistribute
            .keys()
            .filter_map(|(path, _)| path.first())
            .collect();
        let takes = |d: &str| {
            let mut skip = ignores.get(d).cloned().unwrap_or_default();
            // The `bfd` node is bfdd's alone.
            skip.insert(frr_config::BFD.to_string());
            skip.extend(
                routers
                    .iter()
                    .filter(|r| frr_config::router_daemon(r).as_deref() != Some(d))
                    .map(|r| frr_config::kind(r)),
            );
            desired.without(&skip)
        };
        let users: BTreeSet<String> = routers
            .iter()
            .filter_map(|r| frr_config::router_daemon(r))
            .filter(|d| held.contains_key(d))
            .collect();
        let mut shares: Held = users.iter().map(|d| (d.clone(), takes(d))).collect();
        // Fast failover's BFD blocks go to bfdd, and nothing else does (a prefix-list would
        // cost it a commit for nothing).
        if !desired.bfd.is_empty() && held.contains_key(BFDD) {
            shares.insert(
                BFDD.to_string(),
                Owned {
                    bfd: desired.bfd.clone(),
                    ..Owned::default()
                },
            );
        }
        let users: BTreeSet<String> = shares.keys().cloned().collect();
        let others: Held = {
            let of_users: Vec<&Owned> = shares.values().collect();
            held.keys()
                .filter(|d| !users.contains(*d))
                .map(|d| (d.clone(), takes(d).beyond(&of_users)))
                .collect()
        };
        shares.extend(others);
        shares
    }

    /// Validates, then applies the fragment, sending only what differs from what the daemons
    /// hold. A refused line clears what is known, so the next apply starts from the daemons'
    /// real state.
    pub async fn apply(&self, fragment: &str) -> Result<ApplyOutcome, DaemonError> {
        let started = Instant::now();
        let tree = frr_config::parse(fragment);
        self.validate_units(&tree).await?;
        self.vty.refresh().await?;
        if self.vty.take_restarted() {
            // A daemon restarted, came or went: read what they hold, and learn again what
            // each takes (it may be another version now).
            self.forget();
            self.ignores.lock().expect("not poisoned").clear();
        }
        let desired: Owned = frr_config::owned(&tree);
        let result = async {
            self.drain_rip(&desired).await?;
            match self.mode {
                FrrApply::Diff => self.apply_diff(&desired).await,
                FrrApply::Reload => {
                    // frr-reload.py reads the daemons itself; nothing to track here.
                    self.forget();
                    self.apply_reload(fragment, &desired).await
                }
            }
        }
        .await;
        if result.is_err() {
            self.forget();
        }
        result.map(|commands| ApplyOutcome {
            changed: commands > 0,
            commands,
            elapsed: started.elapsed(),
        })
    }

    /// Before a RIP or RIPng base gets its redistribute line back, makes routelb's entries
    /// announce its prefixes as unreachable and waits for the daemon's next regular update to
    /// carry that: the neighbours drop them at once, instead of after their 180 s timeout (see
    /// [`rip_withdraw`]). Rare (routelb's RIP line goes away) and up to one update interval
    /// long (30 s by default).
    async fn drain_rip(&self, desired: &Owned) -> Result<(), DaemonError> {
        // Runs before every apply: compared with `desired` itself (only its redistribute keys
        // matter, and a RIP line is held by ripd or ripngd alone), not with each daemon's
        // share, which would copy every prefix entry once per daemon on each Service change.
        let held = self.current().await?;
        let plan: BTreeMap<String, Vec<frr_config::Change>> = held
            .iter()
            .map(|(d, h)| (d.clone(), rip_withdraw::drain(h, desired)))
            .filter(|(_, changes)| !changes.is_empty())
            .collect();
        if plan.is_empty() {
            return Ok(());
        }
        self.forget();
        let answers = self.vty.configure(plan.clone()).await?;
        vty::learn(&plan, &answers).map_err(DaemonError::Rejected)?;
        let mut wait = Duration::ZERO;
        for daemon in plan.keys() {
            let status = self
                .show(daemon, rip_withdraw::status_command(daemon))
                .await?
                .unwrap_or_default();
            wait = wait.max(rip_withdraw::until_next_update(&status));
        }
        tracing::info!(
            daemons = ?plan.keys().collect::<Vec<_>>(),
            wait_s = wait.as_secs(),
            "routelb's RIP prefixes announced unreachable; the base's redistribute line comes \
             back after the next regular update"
        );
        tokio::time::sleep(wait).await;
        Ok(())
    }

    async fn current(&self) -> Result<Held, DaemonError> {
        let known = self.known.lock().expect("not poisoned").clone();
        match known {
            Some(k) => Ok(k),
            None => {
                // Kept: the RIP drain check and the diff that follows read the daemons once.
                let held = self.read_held().await?;
                self.set_known(Some(held.clone()));
                Ok(held)
            }
        }
    }

    /// Sends each daemon the difference between what it holds and its share of `desired`, and
    /// learns from "unknown command" answers which lines are not its share. Returns how many
    /// distinct lines went out.
    async fn apply_diff(&self, desired: &Owned) -> Result<usize, DaemonError> {
        let held = self.current().await?;
        let uncovered = |shares: &Held| {
            let all: Vec<&Owned> = shares.values().collect();
            desired.uncovered(&all).map(|line| {
                let daemons: Vec<&str> = shares.keys().map(String::as_str).collect();
                DaemonError::Rejected(format!(
                    "no FRR daemon ({}) takes '{line}'",
                    daemons.join(", ")
                ))
            })
        };
        let mut shares = self.shares(&held, desired);
        if let Some(e) = uncovered(&shares) {
            return Err(e);
        }
        let plan: BTreeMap<String, Vec<frr_config::Change>> = held
            .iter()
            .map(|(d, h)| (d.clone(), frr_config::diff(h, &shares[d])))
            .filter(|(_, changes)| !changes.is_empty())
            .collect();
        let lines: BTreeSet<(&[String], &String)> = plan
            .values()
            .flatten()
            .flat_map(|c| c.lines.iter().map(|l| (c.context.as_slice(), l)))
            .collect();
        let lines = lines.len();
        if !plan.is_empty() {
            let unknown = self.send(plan).await?;
            // Shares change only when a daemon refused a kind of line it had taken before.
            if !unknown.is_empty() {
                let before = self.ignores.lock().expect("not poisoned").clone();
                {
                    let mut ignores = self.ignores.lock().expect("not poisoned");
                    for (daemon, kind) in unknown {
                        ignores.entry(daemon).or_default().insert(kind);
                    }
                }
                shares = self.shares(&held, desired);
                if let Some(e) = uncovered(&shares) {
                    // What no daemon took is a bad line, not something to stop sending.
                    *self.ignores.lock().expect("not poisoned") = before;
                    return Err(e);
                }
            }
        }
        self.set_known(Some(shares));
        Ok(lines)
    }

    /// Sends a plan, in two steps when it is a bulk load: what the announced addresses need
    /// first ([`drift::urgent_first`]), so their routes do not wait for thousands of other
    /// entries. Returns each "unknown command" answer as (daemon, kind of line).
    ///
    /// The rest goes as one batch: loaded in steps (tried: 500 entries a commit), the Service's
    /// route came back after the whole load, 6 s at 5,000 entries instead of 0.13 s (p50),
    /// presumably because each prefix-list commit restarts bgpd's route-map delay timer.
    async fn send(
        &self,
        plan: BTreeMap<String, Vec<frr_config::Change>>,
    ) -> Result<Vec<(String, String)>, DaemonError> {
        let announced = self.announced.lock().expect("not poisoned").clone();
        let (mut first, mut later) = (BTreeMap::new(), BTreeMap::new());
        for (daemon, changes) in plan {
            let (now, after) = drift::urgent_first(&changes, &announced, vty::BULK_FROM_LINES);
            first.insert(daemon.clone(), now);
            if !after.is_empty() {
                later.insert(daemon, after);
            }
        }
        if self.urgent_only.load(Ordering::Relaxed) && !later.is_empty() {
            tracing::debug!("bulk entries held back until the other tool is done");
            later.clear();
        }
        let mut unknown = Vec::new();
        for step in [first, later].into_iter().filter(|p| !p.is_empty()) {
            let answers = self.vty.configure(step.clone()).await?;
            unknown.extend(vty::learn(&step, &answers).map_err(DaemonError::Rejected)?);
        }
        Ok(unknown)
    }

    /// While set, a bulk load sends only what the announced addresses need and leaves the
    /// other entries out (what is known still counts them as sent, so the next probe finds
    /// them missing): for a repair while another tool may still be removing routelb's objects
    /// ([`super::applier::Applier::repair_drift`]).
    pub fn set_urgent_only(&self, urgent_only: bool) {
        self.urgent_only.store(urgent_only, Ordering::Relaxed);
    }

    /// The addresses announced now, whose prefix-list entries a bulk load sends first.
    pub fn set_announced(&self, addresses: Vec<std::net::IpAddr>) {
        *self.announced.lock().expect("not poisoned") = addresses;
    }

    async fn apply_reload(&self, fragment: &str, desired: &Owned) -> Result<usize, DaemonError> {
        let running_text = self.running_config().await?;
        let running = frr_config::owned(&frr_config::parse(&running_text));
        let lines = frr_config::diff(&running, desired)
            .iter()
            .map(|c| c.lines.len())
            .sum();
        if lines == 0 {
            return Ok(0);
        }
        let full = frr_config::full_config(&running_text, fragment);
        let file = super::temp_file("frr-full", &full)?;
        let mut cmd = Command::new("python3");
        cmd.arg(&self.reload_script).arg("--reload").arg("--stdout");
        if let Some(p) = &self.pathspace {
            cmd.args(["--pathspace", p]);
        }
        let out = cmd
            .arg(file.path())
            .output()
            .await
            .map_err(|e| DaemonError::Unreachable(format!("cannot run frr-reload.py: {e}")))?;
        if !out.status.success() {
            return Err(DaemonError::Rejected(format!(
                "frr-reload.py failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(lines)
    }
}

/// What decides whether vtysh's parser accepts a configuration object, with the values that
/// cannot change that replaced: a prefix or address by its family (its length stays: `ge`/`le`
/// must fit it), a sequence number, and routelb's object names. A new pool prefix or Service
/// thus has the shape of one checked before.
pub fn shape(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for line in unit.split_inclusive('\n') {
        out.push_str(&line[..line.len() - line.trim_start().len()]);
        let mut after_seq = false;
        let words: Vec<String> = line
            .split_whitespace()
            .map(|w| {
                let seq_value = std::mem::replace(&mut after_seq, w == "seq");
                if seq_value && w.parse::<u32>().is_ok_and(|n| n > 0) {
                    "<seq>".to_string()
                } else if w.starts_with(frr_config::PREFIX) && w.len() <= 63 {
                    "<name>".to_string()
                } else if let Ok(net) = w.parse::<ipnet::IpNet>() {
                    match net {
                        ipnet::IpNet::V4(n) => format!("<v4>/{}", n.prefix_len()),
                        ipnet::IpNet::V6(n) => format!("<v6>/{}", n.prefix_len()),
                    }
                } else {
                    match w.parse::<std::net::IpAddr>() {
                        Ok(std::net::IpAddr::V4(_)) => "<v4>".to_string(),
                        Ok(std::net::IpAddr::V6(_)) => "<v6>".to_string(),
                        Err(_) => w.to_string(),
                    }
                }
            })
            .collect();
        out.push_str(&words.join(" "));
        if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::shape;

    #[test]
    fn shapes_hide_values_that_cannot_make_a_line_invalid() {
        let a = shape("ip prefix-list ROUTELB-POOL-web-V4 seq 5 permit 192.0.2.0/24 le 32\n");
        let b = shape("ip prefix-list ROUTELB-SVC-ns.api-V4 seq 25005 permit 10.9.0.0/24 le 32\n");
        assert_eq!(a, b);
        assert_eq!(a, "ip prefix-list <name> seq <seq> permit <v4>/24 le 32\n");
        // The prefix length stays (ge/le must fit it), and so do the family and bad values.
        for other in [
            "ip prefix-list ROUTELB-POOL-web-V4 seq 5 permit 192.0.2.0/33 le 32\n",
            "ip prefix-list ROUTELB-POOL-web-V4 seq 5 permit 2001:db8::/24 le 32\n",
            "ip prefix-list ROUTELB-POOL-web-V4 seq 0 permit 192.0.2.0/24 le 32\n",
            "ip prefix-list TEAM seq 5 permit 192.0.2.0/24 le 32\n",
        ] {
            assert_ne!(a, shape(other), "{other}");
        }
        let rm = "route-map ROUTELB-BGP-V4 permit 50000\n match ip address prefix-list ROUTELB-POOL-a-V4\n set community 64512:100 additive\nexit\n";
        assert_eq!(
            shape(rm),
            "route-map <name> permit 50000\n match ip address prefix-list <name>\n set community 64512:100 additive\nexit\n"
        );
    }
}
