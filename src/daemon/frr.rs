//! The FRR driver: talks to a running FRR through `vtysh` (optionally in a pathspace).
//! `diff` mode sends only the changed lines of routelb's own objects; `reload` mode hands a full
//! file to `frr-reload.py` for teams that prefer it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::process::Command;

use super::frr_config::{self, Owned};
use super::{ApplyOutcome, DaemonError};
use crate::render::model::Instances;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FrrApply {
    /// Send only the changed lines of routelb's objects through vtysh.
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
    /// routelb's objects as the daemon holds them, when known: after a successful apply, or
    /// after reading the running configuration. Cleared on any error, so the next apply reads
    /// the daemon again. Saves a `show running-config` on every change.
    known: Arc<Mutex<Option<Owned>>>,
    /// Configuration objects (a prefix-list line, a route-map entry, a router context with its
    /// redistribute lines) that already passed `vtysh --dryrun`: only new ones are checked again.
    validated: Arc<Mutex<HashSet<String>>>,
}

impl FrrDriver {
    pub fn new(pathspace: Option<String>, mode: FrrApply) -> Self {
        FrrDriver {
            pathspace,
            mode,
            vtysh: "vtysh".into(),
            reload_script: "/usr/lib/frr/frr-reload.py".into(),
            known: Arc::default(),
            validated: Arc::default(),
        }
    }

    fn base_args(&self) -> Vec<String> {
        match &self.pathspace {
            Some(p) => vec!["-N".into(), p.clone()],
            None => vec![],
        }
    }

    async fn vtysh(&self, args: &[String]) -> Result<String, DaemonError> {
        let mut all = self.base_args();
        all.extend_from_slice(args);
        let out = Command::new(&self.vtysh)
            .args(&all)
            .output()
            .await
            .map_err(|e| {
                DaemonError::Unreachable(format!("cannot run {}: {e}", self.vtysh.display()))
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        // vtysh reports refused commands with lines starting with "%".
        let refused: Vec<&str> = stdout
            .lines()
            .chain(stderr.lines())
            .filter(|l| l.trim_start().starts_with('%'))
            .collect();
        if !out.status.success() || !refused.is_empty() {
            let msg = if refused.is_empty() {
                format!("{}{}", stdout.trim(), stderr.trim())
            } else {
                refused.join("; ")
            };
            if stderr.contains("failed to connect") || stderr.contains("Exiting: failed") {
                return Err(DaemonError::Unreachable(msg));
            }
            return Err(DaemonError::Rejected(msg));
        }
        Ok(stdout)
    }

    pub async fn running_config(&self) -> Result<String, DaemonError> {
        self.vtysh(&["-c".into(), "show running-config".into()])
            .await
    }

    /// The routing instances in the running configuration.
    pub async fn instances(&self) -> Result<Instances, DaemonError> {
        Ok(frr_config::instances(&frr_config::parse(
            &self.running_config().await?,
        )))
    }

    /// Checks a fragment with vtysh's own parser, without touching the daemon.
    pub async fn validate(&self, fragment: &str) -> Result<(), DaemonError> {
        let units = frr_config::units(&frr_config::parse(fragment));
        let fresh: Vec<String> = {
            let seen = self.validated.lock().expect("not poisoned");
            units.into_iter().filter(|u| !seen.contains(u)).collect()
        };
        if fresh.is_empty() {
            return Ok(());
        }
        self.validate_uncached(&fresh.concat()).await?;
        let mut seen = self.validated.lock().expect("not poisoned");
        if seen.len() > 200_000 {
            seen.clear();
        }
        seen.extend(fresh);
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

    /// Whether routelb's objects in the running configuration are exactly the fragment's. False
    /// after a daemon restart that lost them, or after someone edited them by hand.
    pub async fn in_sync(&self, fragment: &str) -> Result<bool, DaemonError> {
        let running = self.read_owned().await?;
        Ok(running == frr_config::owned(&frr_config::parse(fragment)))
    }

    /// Reads routelb's objects from the running configuration and remembers them.
    async fn read_owned(&self) -> Result<Owned, DaemonError> {
        let running = frr_config::owned(&frr_config::parse(&self.running_config().await?));
        *self.known.lock().expect("not poisoned") = Some(running.clone());
        Ok(running)
    }

    /// Validates, then applies the fragment, sending only what differs from what the daemon
    /// holds. A refused line clears what is known, so the next apply starts from the daemon's
    /// real state.
    pub async fn apply(&self, fragment: &str) -> Result<ApplyOutcome, DaemonError> {
        let started = Instant::now();
        self.validate(fragment).await?;
        let desired: Owned = frr_config::owned(&frr_config::parse(fragment));
        let result = match self.mode {
            FrrApply::Diff => self.apply_diff(&desired).await,
            FrrApply::Reload => self.apply_reload(fragment, &desired).await,
        };
        match result {
            Ok(commands) => {
                *self.known.lock().expect("not poisoned") = Some(desired);
                Ok(ApplyOutcome {
                    changed: commands > 0,
                    commands,
                    elapsed: started.elapsed(),
                })
            }
            Err(e) => {
                *self.known.lock().expect("not poisoned") = None;
                Err(e)
            }
        }
    }

    async fn current(&self) -> Result<Owned, DaemonError> {
        let known = self.known.lock().expect("not poisoned").clone();
        match known {
            Some(k) => Ok(k),
            None => self.read_owned().await,
        }
    }

    async fn apply_diff(&self, desired: &Owned) -> Result<usize, DaemonError> {
        let groups = frr_config::diff(&self.current().await?, desired);
        if groups.is_empty() {
            return Ok(0);
        }
        let mut args: Vec<String> = vec!["-c".into(), "configure terminal".into()];
        for g in &groups {
            for cmd in g {
                args.push("-c".into());
                args.push(cmd.clone());
            }
            // Back to the top of configuration mode for the next group.
            args.extend([
                "-c".into(),
                "end".into(),
                "-c".into(),
                "configure terminal".into(),
            ]);
        }
        self.vtysh(&args).await?;
        Ok(groups.iter().map(Vec::len).sum())
    }

    async fn apply_reload(&self, fragment: &str, desired: &Owned) -> Result<usize, DaemonError> {
        let running_text = self.running_config().await?;
        let running = frr_config::owned(&frr_config::parse(&running_text));
        let lines = frr_config::diff(&running, desired)
            .iter()
            .map(Vec::len)
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
