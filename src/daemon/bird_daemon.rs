//! One BIRD daemon and the include file routelb owns in its configuration: BIRD 2's one
//! daemon, or BIRD 1.x's `bird` or `bird6`. A new include is written durably, checked with
//! `configure check`, applied with `configure timeout` and confirmed; afterwards
//! `routelb_direct` must exist, else the base configuration no longer includes the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::DaemonError;
use super::bird_ctl::{self, Reply};

/// What routelb writes into an include before it has a fragment: the functions the base's
/// filters call, exporting nothing, so the base configuration always loads.
pub const PLACEHOLDER: &str = "# routelb: no fragment applied yet; routelb owns this file.
function routelb_export_bgp() { return false; }
function routelb_export_ospf() { return false; }
function routelb_export_rip() { return false; }
";

#[derive(Clone, Debug)]
pub struct BirdDaemon {
    /// `bird` (BIRD 2, or BIRD 1.x for IPv4) or `bird6`, for messages.
    pub name: &'static str,
    pub socket: PathBuf,
    pub include: PathBuf,
}

/// Whether `show protocols` lists routelb's direct protocol.
pub fn has_routelb_direct(protocols: &str) -> bool {
    protocols
        .lines()
        .any(|l| l.split_whitespace().next() == Some("routelb_direct"))
}

/// The file BIRD reads its configuration from, as `configure check` names it.
pub fn config_path(check: &str) -> Option<PathBuf> {
    check
        .lines()
        .find_map(|l| l.trim().strip_prefix("Reading configuration from "))
        .map(|p| PathBuf::from(p.trim()))
}

/// A BIRD configuration file and the files it names in `include "…";` lines (one level, no
/// globs): where a base's protocols and filters are.
fn read_with_includes(main: &std::path::Path) -> String {
    let text = std::fs::read_to_string(main).unwrap_or_default();
    let dir = main.parent().unwrap_or(std::path::Path::new("/"));
    let included: String = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("include"))
        .filter_map(|rest| {
            rest.trim()
                .trim_end_matches(';')
                .trim()
                .strip_prefix('"')?
                .strip_suffix('"')
                .map(str::to_string)
        })
        .filter(|path| !path.contains('*'))
        .map(|path| std::fs::read_to_string(dir.join(path)).unwrap_or_default())
        .collect();
    text + &included
}

/// A fragment written and checked, not applied yet: what it replaced.
pub struct Staged(Previous);

/// The include's content before an apply, as the journal keeps it (see
/// [`BirdDaemon::journal`]).
enum Previous {
    Content(String),
    Absent,
}

impl BirdDaemon {
    /// Sends one command; a reply with an error code is `Rejected` with BIRD's message.
    pub async fn command(&self, command: &str) -> Result<(String, Reply), DaemonError> {
        let (version, reply) = bird_ctl::command(&self.socket, command)
            .await
            .map_err(|e| DaemonError::Unreachable(e.to_string()))?;
        if reply.is_error() {
            return Err(DaemonError::Rejected(format!(
                "{} refused {command:?}: {}",
                self.name,
                message(&reply.text())
            )));
        }
        Ok((version, reply))
    }

    pub async fn text(&self, command: &str) -> Result<String, DaemonError> {
        Ok(self.command(command).await?.1.text())
    }

    /// The configuration BIRD reads (its main file and the files it includes by name), and
    /// routelb's include as it is on disk.
    pub async fn configuration(&self) -> Result<(String, String), DaemonError> {
        let include = std::fs::read_to_string(&self.include).unwrap_or_default();
        let check = self.text("configure check").await?;
        let base = config_path(&check)
            .map(|main| read_with_includes(&main))
            .unwrap_or_default();
        Ok((base, include))
    }

    /// Writes the placeholder when there is no include at all, so that another tool's
    /// `configure` (or BIRD's start) never fails on a missing file.
    pub fn ensure_include(&self) -> Result<(), DaemonError> {
        if self.include.exists() || self.journal().exists() {
            return Ok(());
        }
        tracing::info!(include = %self.include.display(), daemon = self.name, "no include yet; writing an empty one that exports nothing");
        self.write_include(PLACEHOLDER)
    }

    /// Whether BIRD runs `fragment`: the include holds it and `routelb_direct` exists.
    pub async fn in_sync(&self, fragment: &str) -> Result<bool, DaemonError> {
        let on_disk = std::fs::read_to_string(&self.include).unwrap_or_default();
        if on_disk != fragment {
            return Ok(false);
        }
        Ok(has_routelb_direct(&self.text("show protocols").await?))
    }

    /// Writes, checks, reconfigures with a timeout and confirms; the previous include is
    /// restored on any failure before BIRD took the new one. Returns whether BIRD was
    /// reconfigured.
    pub async fn apply(&self, fragment: &str, confirm: Duration) -> Result<bool, DaemonError> {
        match self.stage(fragment).await? {
            Some(staged) => self.commit(staged, confirm).await.map(|()| true),
            None => Ok(false),
        }
    }

    /// The first half of an apply: writes the fragment (its predecessor kept in the journal)
    /// and has BIRD check it. `None` when BIRD already runs it. A refused fragment is undone.
    pub async fn stage(&self, fragment: &str) -> Result<Option<Staged>, DaemonError> {
        self.recover_interrupted_apply()?;
        self.ensure_include()?;
        if self.in_sync(fragment).await? {
            return Ok(None);
        }
        let previous = self.read_include()?;
        self.begin_journal(&previous)?;
        match self.write_and_check(fragment).await {
            Ok(()) => Ok(Some(Staged(previous))),
            Err(e) => Err(self.undo(&previous, e)),
        }
    }

    /// Puts back what [`Self::stage`] replaced, when another daemon refused its part.
    pub fn abandon(&self, staged: Staged) {
        let _ = self.undo(&staged.0, DaemonError::Rejected(String::new()));
    }

    /// The second half: reconfigures with a timeout, confirms once BIRD still answers, and
    /// checks that the base includes the file.
    pub async fn commit(&self, staged: Staged, confirm: Duration) -> Result<(), DaemonError> {
        let timeout = confirm.as_secs().max(1);
        if let Err(e) = self.command(&format!("configure timeout {timeout}")).await {
            let e = self.undo(&staged.0, e);
            let _ = self.command("configure undo").await;
            return Err(e);
        }
        // Still answering on its socket after the change: keep it.
        self.command("show status").await?;
        self.command("configure confirm").await?;
        self.end_journal()?;
        self.confirm_includes().await
    }

    async fn write_and_check(&self, fragment: &str) -> Result<(), DaemonError> {
        self.write_include(fragment)?;
        match self.command("configure check").await {
            Ok((_, r)) if r.text().contains("Configuration OK") => Ok(()),
            Ok((_, r)) => Err(DaemonError::Invalid(message(&r.text()))),
            Err(DaemonError::Rejected(m)) => Err(DaemonError::Invalid(m)),
            Err(e) => Err(e),
        }
    }

    /// After a reconfiguration: `routelb_direct` exists only when the base includes the file.
    async fn confirm_includes(&self) -> Result<(), DaemonError> {
        if has_routelb_direct(&self.text("show protocols").await?) {
            return Ok(());
        }
        let config = self
            .text("configure check")
            .await
            .ok()
            .and_then(|t| config_path(&t))
            .map_or_else(
                || "its configuration".to_string(),
                |p| p.display().to_string(),
            );
        Err(DaemonError::BaseConfigNoInclude(format!(
            "{} was reconfigured but has no protocol routelb_direct: {config} does not include {} (add `include \"{}\";` before the protocols that call routelb_export_*())",
            self.name,
            self.include.display(),
            self.include.display()
        )))
    }

    fn undo(&self, previous: &Previous, why: DaemonError) -> DaemonError {
        if let Err(e) = self.restore(previous) {
            tracing::warn!(error = %e, "could not restore the include; the next apply will");
            return why;
        }
        let _ = self.end_journal();
        why
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
    fn begin_journal(&self, previous: &Previous) -> Result<(), DaemonError> {
        let entry = match previous {
            Previous::Content(p) => format!("+{p}"),
            Previous::Absent => "-".to_string(),
        };
        Ok(crate::files::write_durably(&self.journal(), &entry, 0o600)?)
    }

    /// Puts the include back as the journal says it was: its content, or no file.
    fn restore(&self, previous: &Previous) -> Result<(), DaemonError> {
        match previous {
            Previous::Content(p) => self.write_include(p),
            Previous::Absent => match std::fs::remove_file(&self.include) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(crate::files::FileError::new(&self.include, e).into()),
            },
        }
    }

    fn read_include(&self) -> Result<Previous, DaemonError> {
        match std::fs::read_to_string(&self.include) {
            Ok(t) => Ok(Previous::Content(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Previous::Absent),
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
        let previous = match entry.strip_prefix('+') {
            Some(p) => Previous::Content(p.to_string()),
            None => Previous::Absent,
        };
        self.restore(&previous)?;
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
}

/// BIRD's reply without its banner and blank lines, on one line.
pub fn message(out: &str) -> String {
    out.lines()
        .filter(|l| !l.starts_with("BIRD ") && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(dir: &Path) -> BirdDaemon {
        BirdDaemon {
            name: "bird",
            socket: dir.join("no-bird.ctl"),
            include: dir.join("routelb.conf"),
        }
    }

    #[tokio::test]
    async fn an_interrupted_apply_is_undone_before_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let d = daemon(dir.path());
        // routelb died after writing a candidate BIRD would refuse, before restoring the last
        // good content it had kept aside.
        std::fs::write(&d.include, "candidate BIRD refused\n").unwrap();
        std::fs::write(dir.path().join("routelb.conf.last-good"), "+last good\n").unwrap();
        let r = d.apply("next fragment\n", Duration::from_secs(30)).await;
        assert!(matches!(r, Err(DaemonError::Unreachable(_))), "{r:?}");
        assert_eq!(std::fs::read_to_string(&d.include).unwrap(), "last good\n");
        assert!(!dir.path().join("routelb.conf.last-good").exists());

        // The first apply ever (no include before): the candidate is removed, and the
        // placeholder takes its place so that the base configuration still loads.
        std::fs::write(&d.include, "candidate BIRD refused\n").unwrap();
        std::fs::write(dir.path().join("routelb.conf.last-good"), "-").unwrap();
        let _ = d.apply("next fragment\n", Duration::from_secs(30)).await;
        assert_eq!(std::fs::read_to_string(&d.include).unwrap(), PLACEHOLDER);
    }

    #[test]
    fn a_missing_include_gets_the_placeholder_and_an_existing_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let d = daemon(dir.path());
        d.ensure_include().unwrap();
        assert_eq!(std::fs::read_to_string(&d.include).unwrap(), PLACEHOLDER);
        std::fs::write(&d.include, "mine\n").unwrap();
        d.ensure_include().unwrap();
        assert_eq!(std::fs::read_to_string(&d.include).unwrap(), "mine\n");
    }

    #[test]
    fn reads_what_bird_says() {
        assert!(has_routelb_direct(
            "Name       Proto      Table      State  Since         Info\nroutelb_direct Direct     ---        up     12:00:00.000\n"
        ));
        assert!(!has_routelb_direct(
            "name     proto    table    state  since       info\ndirect1  Direct   master   up     11:53:55\nroutelb_direct_x Direct master up 1\n"
        ));
        assert_eq!(
            config_path("Reading configuration from /etc/bird/bird6.conf\nConfiguration OK\n"),
            Some(PathBuf::from("/etc/bird/bird6.conf"))
        );
    }
}
