//! The BIRD driver: routelb owns one file that the base bird.conf includes. A new fragment is
//! written atomically, checked with `configure check`, then applied with `configure timeout`
//! and confirmed, so an apply that breaks BIRD's control socket undoes itself.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::process::Command;

use super::{ApplyOutcome, DaemonError, bird_config};
use crate::render::model::Instances;

#[derive(Clone, Debug)]
pub struct BirdDriver {
    pub socket: PathBuf,
    pub include: PathBuf,
    pub birdc: PathBuf,
    /// How long BIRD waits for `configure confirm` before undoing a reconfiguration.
    pub confirm_timeout: Duration,
}

impl BirdDriver {
    pub fn new(socket: PathBuf, include: PathBuf) -> Self {
        BirdDriver {
            socket,
            include,
            birdc: "birdc".into(),
            confirm_timeout: Duration::from_secs(30),
        }
    }

    async fn birdc(&self, args: &[&str]) -> Result<String, DaemonError> {
        let (ok, text) = self.birdc_raw(args).await?;
        if ok {
            Ok(text)
        } else {
            Err(DaemonError::Rejected(bird_message(&text)))
        }
    }

    /// Runs birdc; returns whether it exited successfully and everything it printed.
    async fn birdc_raw(&self, args: &[&str]) -> Result<(bool, String), DaemonError> {
        let out = Command::new(&self.birdc)
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .output()
            .await
            .map_err(|e| {
                DaemonError::Unreachable(format!("cannot run {}: {e}", self.birdc.display()))
            })?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if text.contains("Unable to connect") || text.contains("Unable to create socket") {
            return Err(DaemonError::Unreachable(text.trim().to_string()));
        }
        Ok((out.status.success(), text))
    }

    pub async fn instances(&self) -> Result<Instances, DaemonError> {
        Ok(bird_config::instances_from_show(
            &self.birdc(&["show", "protocols", "all"]).await?,
        ))
    }

    /// Whether BIRD runs routelb's fragment: the include file holds it and `routelb_direct`
    /// exists (it does not after BIRD started with a broken or missing file).
    pub async fn in_sync(&self, fragment: &str) -> Result<bool, DaemonError> {
        let on_disk = std::fs::read_to_string(&self.include).unwrap_or_default();
        if on_disk != fragment {
            return Ok(false);
        }
        let protocols = self.birdc(&["show", "protocols"]).await?;
        Ok(protocols.lines().any(|l| l.starts_with("routelb_direct")))
    }

    fn write_include(&self, text: &str) -> Result<(), DaemonError> {
        Ok(crate::files::write_durably(&self.include, text, 0o644)?)
    }

    /// Where the include's last good content waits while a new fragment is checked. BIRD's
    /// `configure check` reads the include itself, so the candidate must be there during the
    /// check; should routelb die before it restores a refused one, the next apply (its next
    /// start) puts this back first.
    fn journal(&self) -> PathBuf {
        let mut name = self.include.file_name().unwrap_or_default().to_os_string();
        name.push(".last-good");
        self.include.with_file_name(name)
    }

    /// Keeps the include's current content (or that there was none) aside while a new one is
    /// checked: `+` and the content, or `-`.
    fn begin_journal(&self, previous: Option<&str>) -> Result<(), DaemonError> {
        let entry = match previous {
            Some(p) => format!("+{p}"),
            None => "-".to_string(),
        };
        Ok(crate::files::write_durably(&self.journal(), &entry, 0o600)?)
    }

    /// Puts the include back as the journal says it was: its content, or no file.
    fn restore(&self, previous: Option<&str>) -> Result<(), DaemonError> {
        match previous {
            Some(p) => self.write_include(p),
            None => match std::fs::remove_file(&self.include) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(crate::files::FileError::new(&self.include, e).into()),
            },
        }
    }

    /// The include's content, or None when there is none yet.
    fn read_include(&self) -> Result<Option<String>, DaemonError> {
        match std::fs::read_to_string(&self.include) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(crate::files::FileError::new(&self.include, e).into()),
        }
    }

    /// Restores the include from an apply that did not finish (see [`Self::journal`]).
    fn recover_interrupted_apply(&self) -> Result<(), DaemonError> {
        let journal = self.journal();
        let entry = match std::fs::read_to_string(&journal) {
            Ok(entry) => entry,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(crate::files::FileError::new(&journal, e).into()),
        };
        tracing::warn!(include = %self.include.display(), "an earlier apply did not finish; restoring the include's last good content");
        self.restore(entry.strip_prefix('+'))?;
        self.end_journal()
    }

    fn end_journal(&self) -> Result<(), DaemonError> {
        let journal = self.journal();
        match std::fs::remove_file(&journal) {
            Ok(()) => Ok(crate::files::sync_dir(
                journal.parent().unwrap_or(Path::new(".")),
            )?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(crate::files::FileError::new(&journal, e).into()),
        }
    }

    /// Writes the fragment, checks, reconfigures with a timeout and confirms. On any failure the
    /// previous file is restored (and BIRD reconfigured to it if it had been touched).
    pub async fn apply(&self, fragment: &str) -> Result<ApplyOutcome, DaemonError> {
        let started = Instant::now();
        self.recover_interrupted_apply()?;
        if self.in_sync(fragment).await? {
            return Ok(ApplyOutcome {
                changed: false,
                commands: 0,
                elapsed: started.elapsed(),
            });
        }
        let previous = self.read_include()?;
        self.begin_journal(previous.as_deref())?;
        let restore = |why: DaemonError| {
            if let Err(e) = self.restore(previous.as_deref()) {
                tracing::warn!(error = %e, "could not restore the include; the next apply will");
                return why;
            }
            let _ = self.end_journal();
            why
        };
        self.write_include(fragment).map_err(restore)?;
        let (_, check) = self
            .birdc_raw(&["configure", "check"])
            .await
            .map_err(restore)?;
        if !check.contains("Configuration OK") {
            return Err(restore(DaemonError::Invalid(bird_message(&check))));
        }
        let timeout = self.confirm_timeout.as_secs().max(1).to_string();
        let reconf = self
            .birdc(&["configure", "timeout", &timeout])
            .await
            .map_err(restore)?;
        if !(reconf.contains("Reconfigured") || reconf.contains("Reconfiguration in progress")) {
            let err = restore(DaemonError::Rejected(bird_message(&reconf)));
            let _ = self.birdc(&["configure", "undo"]).await;
            return Err(err);
        }
        // Still answering on its socket after the change: keep it.
        self.birdc(&["show", "status"]).await?;
        let confirm = self.birdc(&["configure", "confirm"]).await?;
        if !confirm.contains("confirmed") && !confirm.contains("Reconfiguration confirmed") {
            tracing::debug!(output = %confirm.trim(), "configure confirm");
        }
        self.end_journal()?;
        Ok(ApplyOutcome {
            changed: true,
            commands: 1,
            elapsed: started.elapsed(),
        })
    }

    /// Validates a fragment with BIRD's parser (`bird -p`), against a copy of the base config
    /// whose routelb include points at the fragment. The base's other relative includes are
    /// resolved from `base_dir` (the base's own directory), as BIRD resolves them from the
    /// file that includes them, so they keep working. Needs no running BIRD.
    pub async fn validate_with_base(
        base: &str,
        base_dir: Option<&Path>,
        fragment: &str,
    ) -> Result<(), DaemonError> {
        let frag = super::temp_file("bird-fragment", fragment)?;
        // BIRD resolves a relative include from the including file's directory: the copy is
        // elsewhere, so its includes name the base's directory in full.
        let base_dir = base_dir.map(|d| std::path::absolute(d).unwrap_or_else(|_| d.to_path_buf()));
        let base_dir = base_dir.as_deref();
        let mut replaced = false;
        let conf: String = base
            .lines()
            .map(|l| {
                let t = l.trim_start();
                let Some(path) = t
                    .strip_prefix("include")
                    .and_then(|rest| rest.split('"').nth(1))
                else {
                    return l.to_string();
                };
                if path.contains("routelb") {
                    replaced = true;
                    format!("include \"{}\";", frag.path().display())
                } else if let Some(dir) = base_dir.filter(|_| !path.starts_with('/')) {
                    l.replacen(path, &dir.join(path).display().to_string(), 1)
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        if !replaced {
            return Err(DaemonError::Invalid(
                "the base configuration has no `include \"…routelb….conf\";` line for routelb's fragment".into(),
            ));
        }
        let main = super::temp_file("bird-main", &conf)?;
        let mut cmd = Command::new("bird");
        cmd.arg("-p").arg("-c").arg(main.path());
        if let Some(dir) = base_dir {
            cmd.current_dir(dir);
        }
        let out = cmd
            .output()
            .await
            .map_err(|e| DaemonError::Unreachable(format!("cannot run bird: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(DaemonError::Invalid(bird_message(&format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))))
        }
    }
}

fn bird_message(out: &str) -> String {
    out.lines()
        .filter(|l| !l.starts_with("BIRD ") && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_interrupted_apply_is_undone_before_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let include = dir.path().join("routelb.conf");
        // routelb died after writing a candidate BIRD would refuse, before restoring the last
        // good content it had kept aside.
        std::fs::write(&include, "candidate BIRD refused\n").unwrap();
        std::fs::write(dir.path().join("routelb.conf.last-good"), "+last good\n").unwrap();
        let driver = BirdDriver::new(dir.path().join("no-bird.ctl"), include.clone());
        let r = driver.apply("next fragment\n").await;
        assert!(matches!(r, Err(DaemonError::Unreachable(_))), "{r:?}");
        assert_eq!(std::fs::read_to_string(&include).unwrap(), "last good\n");
        assert!(!dir.path().join("routelb.conf.last-good").exists());

        // The first apply ever (no include before): undone by removing the candidate.
        std::fs::write(&include, "candidate BIRD refused\n").unwrap();
        std::fs::write(dir.path().join("routelb.conf.last-good"), "-").unwrap();
        let _ = driver.apply("next fragment\n").await;
        assert!(!include.exists());
    }
}
