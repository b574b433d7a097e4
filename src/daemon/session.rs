//! What a role (agent or standalone) keeps of its daemon between passes, and its one retry
//! policy for it: the applier (last good fragment, backoff after failed applies), the daemon's
//! routing instances (read again on a check, after a failure, and soon while one a policy needs
//! is missing), and the templates (a set that stops loading leaves the last good one in use).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::Driver;
use super::applier::{Applier, DriftRepair};
use crate::backoff::Backoff;
use crate::render::model::Instances;
use crate::render::{DaemonKind, TemplateError, Templates};

pub struct DaemonSession {
    pub applier: Applier,
    driver: Driver,
    instances: Option<Instances>,
    /// Retries while the daemon does not answer.
    unreachable: Backoff,
    /// Retries while an instance a policy needs is missing: a daemon that just started may
    /// not have loaded its configuration yet.
    missing: Backoff,
    templates: TemplateSet,
    /// Periodic resyncs since the daemon was last read in full ([`Self::resync`]).
    resyncs_since_full_read: u32,
}

/// Every how many periodic resyncs the daemon's running configuration is read in full when a
/// cheap probe stands in for the others (5 min at the default 30 s). A full read costs each
/// FRR daemon 50–70 ms of CPU at 5,000 prefix-list entries; the probe, well under 1 ms.
pub const FULL_READ_EVERY: u32 = 10;

/// What a periodic resync calls for.
#[derive(Debug)]
pub enum Resync {
    /// Read the daemon in full (its instances and routelb's objects) in a pass.
    FullRead,
    /// The probe stood in for the full read; what it found and repaired, if anything.
    Probed(Option<DriftRepair>),
}

/// The templates in use, from a directory or built in.
struct TemplateSet {
    daemon: DaemonKind,
    dir: Option<PathBuf>,
    current: Option<Templates>,
    /// Why the templates on disk were not loaded, while they are not.
    error: Option<String>,
}

/// What the daemon step of a pass should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DaemonNext {
    /// In sync: nothing until something changes.
    Idle,
    /// Try again (reading the daemon afresh) after this.
    RetryIn(Duration),
}

impl DaemonSession {
    pub fn new(driver: Driver, daemon: DaemonKind, templates: Option<PathBuf>) -> DaemonSession {
        DaemonSession {
            applier: Applier::new(driver.clone()),
            driver,
            instances: None,
            unreachable: Backoff::default(),
            missing: Backoff::default(),
            templates: TemplateSet {
                daemon,
                dir: templates,
                current: None,
                error: None,
            },
            resyncs_since_full_read: 0,
        }
    }

    /// A periodic resync: the cheap drift probe, and a full read of the daemon only every
    /// [`FULL_READ_EVERY`]th time — or each time when there is no probe to stand in (BIRD,
    /// whose fragment is routelb's own file), nothing applied yet to compare with, or the
    /// instances are unknown. What only the full read sees (a prefix-list entry rewritten in
    /// place under the same sequence number, a routing instance added to the base) waits for
    /// it; a daemon restart does not (it is watched for), nor a failed apply.
    pub async fn resync(&mut self, announced: Vec<IpAddr>) -> Resync {
        self.resyncs_since_full_read += 1;
        let probe_stands_in = self.driver.has_probe()
            && self.applier.last_good().is_some()
            && self.instances.is_some()
            && self.resyncs_since_full_read < FULL_READ_EVERY;
        if !probe_stands_in {
            return Resync::FullRead;
        }
        Resync::Probed(self.probe_and_repair(announced, true).await)
    }

    /// The daemon's routing instances, as last read; None when they could not be.
    pub fn instances(&self) -> Option<&Instances> {
        self.instances.as_ref()
    }

    /// Reads the instances when asked (`check`) or unknown. Without them the daemon gets
    /// nothing: a fragment rendered for no instance would take every `redistribute` line
    /// away from a daemon that is merely slow. Returns why they could not be read.
    pub async fn refresh_instances(&mut self, check: bool) -> Option<String> {
        if !(check || self.instances.is_none()) {
            return None;
        }
        match self.driver.instances().await {
            Ok(i) => {
                self.instances = Some(i);
                self.unreachable.reset();
                self.resyncs_since_full_read = 0;
                None
            }
            Err(e) => {
                self.instances = None;
                Some(format!("cannot read the daemon's routing instances: {e}"))
            }
        }
    }

    /// (Re)loads the templates when asked or not loaded yet. A set that does not load leaves
    /// the last good one in use (reported by [`Self::template_problem`]); with none loaded
    /// yet, the error is returned.
    pub fn refresh_templates(&mut self, reload: bool) -> Result<(), TemplateError> {
        let t = &mut self.templates;
        if !(reload || t.current.is_none()) {
            return Ok(());
        }
        match Templates::load(t.daemon, t.dir.as_deref()) {
            Ok(loaded) => {
                if t.error.take().is_some() || t.current.is_some() {
                    tracing::info!("templates loaded");
                }
                t.current = Some(loaded);
                Ok(())
            }
            Err(e) if t.current.is_some() => {
                tracing::warn!(error = %e, "templates not loaded; the last good ones stay in use");
                t.error = Some(e.to_string());
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The templates in use; loaded by [`Self::refresh_templates`] first.
    pub fn templates(&self) -> &Templates {
        self.templates
            .current
            .as_ref()
            .expect("refresh_templates loads them before use")
    }

    /// Why the templates on disk are not in use, while they are not.
    pub fn template_problem(&self) -> Option<String> {
        self.templates
            .error
            .as_ref()
            .map(|e| format!("templates: {e} (the last good templates stay in use)"))
    }

    /// Brings the daemon to `fragment` when it changed, or when `check` asks to compare with
    /// what it runs, and only with its instances known. True when it holds the fragment.
    pub async fn sync(&mut self, fragment: &str, check: bool) -> bool {
        if self.instances.is_none() {
            return false;
        }
        match self.applier.sync(fragment, check).await {
            None | Some(Ok(_)) => true,
            Some(Err(_)) => {
                // The base configuration may have changed (an instance added): read it again.
                self.instances = None;
                false
            }
        }
    }

    /// Probes for objects another tool removed or changed and repairs them (see
    /// [`Applier::repair_drift`]), what the `announced` addresses need first; only while the daemon is known and in sync. A repair that
    /// fails leaves the next pass to read the daemon afresh.
    pub async fn repair_drift(&mut self, announced: Vec<IpAddr>) -> Option<DriftRepair> {
        self.probe_and_repair(announced, false).await
    }

    async fn probe_and_repair(
        &mut self,
        announced: Vec<IpAddr>,
        everything: bool,
    ) -> Option<DriftRepair> {
        self.instances.as_ref()?;
        self.driver.set_announced(announced);
        let repair = self.applier.repair_drift(everything).await?;
        if repair.result.is_err() {
            self.instances = None;
        }
        Some(repair)
    }

    /// When to come back to the daemon after a pass: soon while an instance is missing, with
    /// backoff while it fails or does not answer, never when in sync.
    pub fn next(&mut self, in_sync: bool, instances_missing: bool, resync: Duration) -> DaemonNext {
        if self.instances.is_none() && self.applier.backoff().is_none() {
            return DaemonNext::RetryIn(self.unreachable.fail());
        }
        if !in_sync {
            return DaemonNext::RetryIn(self.applier.backoff().unwrap_or(Duration::from_secs(1)));
        }
        if instances_missing {
            return DaemonNext::RetryIn((self.missing.fail() / 4).min(resync));
        }
        self.missing.reset();
        DaemonNext::Idle
    }

    /// A daemon (re)started: what it lost is repaired at once, whatever backoff it earned.
    pub fn daemon_started(&mut self, daemon: &str) {
        tracing::info!(daemon, "daemon started; checking what it holds");
        self.applier.retry_now();
        self.missing.reset();
        self.unreachable.reset();
    }
}

/// The drift probe's timer; none when disabled. Ticks missed while a pass ran (an apply in
/// flight) are not made up: the next probe comes a period after the pass, so a probe never
/// runs during an apply.
pub fn probe_timer(period: Duration) -> Option<tokio::time::Interval> {
    (!period.is_zero()).then(|| {
        let mut i = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    })
}

/// The next tick of a probe timer; never, without one.
pub async fn probe_tick(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::frr::{FrrApply, FrrDriver};

    fn session() -> DaemonSession {
        let dir = std::env::temp_dir().join("routelb-no-such-frr");
        DaemonSession::new(
            Driver::Frr(FrrDriver::with_vty_dir(None, FrrApply::Diff, dir)),
            DaemonKind::Frr,
            None,
        )
    }

    #[tokio::test]
    async fn an_unreachable_daemon_is_retried_with_backoff_and_gets_nothing() {
        let mut s = session();
        assert!(s.refresh_instances(true).await.is_some());
        assert!(
            !s.sync("ip prefix-list X seq 5 permit 10.0.0.0/8\n", true)
                .await
        );
        let waits: Vec<DaemonNext> = (0..3)
            .map(|_| s.next(false, false, Duration::from_secs(30)))
            .collect();
        assert_eq!(
            waits,
            [1, 2, 4].map(|n| DaemonNext::RetryIn(Duration::from_secs(n)))
        );
        s.daemon_started("bgpd");
        assert_eq!(
            s.next(false, false, Duration::from_secs(30)),
            DaemonNext::RetryIn(Duration::from_secs(1)),
            "a start resets the backoff"
        );
    }

    #[test]
    fn built_in_templates_load_and_stay() {
        let mut s = session();
        s.refresh_templates(false).unwrap();
        assert!(s.template_problem().is_none());
        let _ = s.templates();
    }
}
