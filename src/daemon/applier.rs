//! Keeps a daemon on the desired fragment: applies changes, keeps the last good fragment when a
//! new one is refused (rolling back a half-applied change), and notices a daemon that lost
//! routelb's objects (a restart) so they are applied again.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::drift::Finding;
use super::{ApplyOutcome, DaemonError, Driver};

/// The outcome of the last attempt, for status and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LastApply {
    Applied { hash: String },
    Unchanged { hash: String },
    Refused { hash: String, message: String },
    Failed { message: String },
}

impl LastApply {
    /// A short label for metrics: `applied`, `unchanged`, `refused` or `failed`.
    pub fn label(&self) -> &'static str {
        match self {
            LastApply::Applied { .. } => "applied",
            LastApply::Unchanged { .. } => "unchanged",
            LastApply::Refused { .. } => "refused",
            LastApply::Failed { .. } => "failed",
        }
    }
}

pub struct Applier {
    driver: Driver,
    last_good: Option<String>,
    pub last: Option<LastApply>,
    /// When the last attempt started.
    pub last_time: Option<std::time::SystemTime>,
    failures: u32,
    next_attempt: Option<Instant>,
    /// What the last probe found that a full read then showed was not so (a show format this
    /// FRR prints differently): not repaired again while the probe finds exactly this.
    refuted: Option<Vec<Finding>>,
    /// What the previous probe found: a repair loads the bulk only once two probes in a row
    /// agree ([`Applier::repair_drift`]).
    previous_findings: Option<Vec<Finding>>,
}

/// Objects another tool removed or changed, found by a probe, and their repair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriftRepair {
    pub findings: Vec<Finding>,
    pub time: std::time::SystemTime,
    /// The repair's apply, or why it failed.
    pub result: Result<ApplyOutcome, String>,
}

impl DriftRepair {
    /// What was lost or changed, one item per object (at most 20, then a count).
    pub fn lost(&self) -> Vec<String> {
        super::drift::describe(&self.findings, 20)
    }

    /// The daemons that lost something.
    pub fn daemons(&self) -> std::collections::BTreeSet<&str> {
        self.findings.iter().map(|f| f.daemon.as_str()).collect()
    }
}

pub fn fragment_hash(fragment: &str) -> String {
    let d = Sha256::digest(fragment.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl Applier {
    pub fn new(driver: Driver) -> Self {
        Applier {
            driver,
            last_good: None,
            last: None,
            last_time: None,
            failures: 0,
            next_attempt: None,
            refuted: None,
            previous_findings: None,
        }
    }

    pub fn driver(&self) -> &Driver {
        &self.driver
    }

    /// The fragment the daemon last accepted.
    pub fn last_good(&self) -> Option<&str> {
        self.last_good.as_deref()
    }

    /// How long to wait before retrying after failures: 1 s doubling to 60 s.
    pub fn backoff(&self) -> Option<Duration> {
        (self.failures > 0).then(|| {
            Duration::from_secs(1u64 << self.failures.min(6).saturating_sub(1))
                .min(Duration::from_secs(60))
        })
    }

    /// Makes the next attempt due at once: the daemon just (re)started, so waiting out a
    /// backoff earned while it was down would only delay the repair.
    pub fn retry_now(&mut self) {
        self.next_attempt = None;
    }

    /// Whether a retry is due (always true when nothing failed).
    pub fn due(&self) -> bool {
        self.next_attempt.is_none_or(|t| Instant::now() >= t)
    }

    /// Applies `fragment` when it differs from the last good one, or when `recheck` asks to
    /// compare with what the daemon runs (a resync) — unless a retry after a failure is not due
    /// yet. Logs the outcome; `None` when nothing was attempted.
    pub async fn sync(
        &mut self,
        fragment: &str,
        recheck: bool,
    ) -> Option<Result<ApplyOutcome, DaemonError>> {
        let changed = self.last_good() != Some(fragment);
        if !(changed || recheck) || !self.due() {
            return None;
        }
        if recheck {
            // A resync must see objects lost to a daemon restart or a hand edit.
            self.driver.forget();
        }
        let result = self.converge(fragment).await;
        match &result {
            Ok(o) if o.changed && !changed => tracing::warn!(
                lines = o.commands,
                ms = o.elapsed.as_millis() as u64,
                "the daemon no longer held routelb's objects as applied (a restart, another tool): restored"
            ),
            Ok(o) if o.changed => tracing::info!(
                lines = o.commands,
                ms = o.elapsed.as_millis() as u64,
                "fragment applied"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?self.backoff(), "fragment not applied; the last good one stays")
            }
        }
        Some(result)
    }

    /// Probes the daemon for objects another tool removed or changed since the last good
    /// apply (`everything`: the route-maps too, whatever the probe's turn) and, when it finds
    /// some, repairs them from a full read. `None` when nothing was
    /// found (or there is nothing to compare with, or a retry after a failure is not due).
    pub async fn repair_drift(&mut self, everything: bool) -> Option<DriftRepair> {
        let good = self.last_good.clone()?;
        if !self.due() {
            return None;
        }
        let findings = match self.driver.probe(everything).await {
            Ok(Some(p)) if !p.findings.is_empty() => p.findings,
            // The lists are whole and the rest was not asked: no news either way.
            Ok(Some(p)) if !p.complete => return None,
            Ok(_) => {
                self.refuted = None;
                self.previous_findings = None;
                return None;
            }
            Err(e) => {
                tracing::debug!(error = %e, "drift probe failed");
                return None;
            }
        };
        if self.refuted.as_ref() == Some(&findings) {
            return None;
        }
        let time = std::time::SystemTime::now();
        // Another tool's removal still under way (a second or more at thousands of entries)
        // shows other losses at each probe. Loading the bulk from a read taken half-way kept
        // the daemon busy for seconds while the tool went on removing what that read still
        // saw, the Service's entries among them. So until two probes in a row agree, only what
        // the announced addresses need is put back; the bulk follows from a read taken after.
        let settled = self.previous_findings.as_ref() == Some(&findings);
        self.previous_findings = Some(findings.clone());
        self.driver.forget();
        self.driver.set_urgent_only(!settled);
        let result = self.converge(&good).await;
        self.driver.set_urgent_only(false);
        let lost = super::drift::describe(&findings, 20).join("; ");
        match &result {
            Ok(o) if !o.changed => {
                tracing::debug!(found = %lost, "the probe's findings did not hold on a full read");
                self.refuted = Some(findings);
                return None;
            }
            Ok(o) => tracing::warn!(
                %lost,
                lines = o.commands,
                ms = o.elapsed.as_millis() as u64,
                "routelb's objects were removed or changed by another tool: restored"
            ),
            Err(e) => tracing::warn!(
                %lost,
                error = %e,
                "routelb's objects were removed or changed by another tool; restoring them failed"
            ),
        }
        Some(DriftRepair {
            findings,
            time,
            result: result.map_err(|e| e.to_string()),
        })
    }

    /// Brings the daemon to `fragment`. The driver compares with what the daemon runs, so this
    /// also repairs a daemon that restarted or was edited by hand. On refusal the daemon is put
    /// back on the last good fragment.
    pub async fn converge(&mut self, fragment: &str) -> Result<ApplyOutcome, DaemonError> {
        let hash = fragment_hash(fragment);
        self.last_time = Some(std::time::SystemTime::now());
        match self.driver.apply(fragment).await {
            Ok(outcome) => {
                if outcome.changed {
                    self.refuted = None;
                }
                self.last_good = Some(fragment.to_string());
                self.failures = 0;
                self.next_attempt = None;
                self.last = Some(if outcome.changed {
                    LastApply::Applied { hash }
                } else {
                    LastApply::Unchanged { hash }
                });
                Ok(outcome)
            }
            Err(e) => {
                self.failures += 1;
                self.next_attempt = self.backoff().map(|d| Instant::now() + d);
                self.last = Some(match &e {
                    DaemonError::Unreachable(m) => LastApply::Failed { message: m.clone() },
                    DaemonError::BaseConfigNoInclude(_) => LastApply::Failed {
                        message: e.to_string(),
                    },
                    DaemonError::File(f) => LastApply::Failed {
                        message: f.to_string(),
                    },
                    DaemonError::Invalid(m) | DaemonError::Rejected(m) => LastApply::Refused {
                        hash,
                        message: m.clone(),
                    },
                });
                if let (DaemonError::Rejected(_), Some(good)) = (&e, self.last_good.clone()) {
                    // Part of the change may have gone in before the daemon refused a line.
                    if let Err(rollback) = self.driver.apply(&good).await {
                        tracing::warn!(error = %rollback, "could not restore the last good fragment");
                    }
                }
                Err(e)
            }
        }
    }
}
