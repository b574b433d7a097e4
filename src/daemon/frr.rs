//! The FRR driver: talks to a running FRR through `vtysh` (optionally in a pathspace).
//! `diff` mode sends only the changed lines of routelb's own objects; `reload` mode hands a full
//! file to `frr-reload.py` for teams that prefer it.

use std::path::PathBuf;
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
}

impl FrrDriver {
    pub fn new(pathspace: Option<String>, mode: FrrApply) -> Self {
        FrrDriver {
            pathspace,
            mode,
            vtysh: "vtysh".into(),
            reload_script: "/usr/lib/frr/frr-reload.py".into(),
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
        let running = frr_config::owned(&frr_config::parse(&self.running_config().await?));
        Ok(running == frr_config::owned(&frr_config::parse(fragment)))
    }

    /// Validates, then applies the fragment. The running configuration is read first so only
    /// what differs is sent; afterwards it is read again to confirm FRR took every line.
    pub async fn apply(&self, fragment: &str) -> Result<ApplyOutcome, DaemonError> {
        self.validate(fragment).await?;
        let started = Instant::now();
        let running_text = self.running_config().await?;
        let running = frr_config::owned(&frr_config::parse(&running_text));
        let desired: Owned = frr_config::owned(&frr_config::parse(fragment));
        let groups = frr_config::diff(&running, &desired);
        if groups.is_empty() {
            return Ok(ApplyOutcome {
                changed: false,
                commands: 0,
                elapsed: started.elapsed(),
            });
        }
        let commands = groups.iter().map(Vec::len).sum();
        match self.mode {
            FrrApply::Diff => {
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
            }
            FrrApply::Reload => {
                let full = frr_config::full_config(&running_text, fragment);
                let file = super::temp_file("frr-full", &full)?;
                let mut cmd = Command::new("python3");
                cmd.arg(&self.reload_script).arg("--reload").arg("--stdout");
                if let Some(p) = &self.pathspace {
                    cmd.args(["--pathspace", p]);
                }
                let out = cmd.arg(file.path()).output().await.map_err(|e| {
                    DaemonError::Unreachable(format!("cannot run frr-reload.py: {e}"))
                })?;
                if !out.status.success() {
                    return Err(DaemonError::Rejected(format!(
                        "frr-reload.py failed: {}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    )));
                }
            }
        }
        let after = frr_config::owned(&frr_config::parse(&self.running_config().await?));
        if after != desired {
            let left = frr_config::diff(&after, &desired);
            return Err(DaemonError::Rejected(format!(
                "FRR did not take every line; still differing: {}",
                left.iter()
                    .map(|g| g.join(" / "))
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        Ok(ApplyOutcome {
            changed: true,
            commands,
            elapsed: started.elapsed(),
        })
    }
}
