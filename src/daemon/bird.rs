//! The BIRD driver: routelb owns one include file per BIRD daemon — BIRD 2's one daemon, or
//! BIRD 1.x's `bird` (IPv4) and `bird6` (IPv6), each with its own control socket and include.
//! Each daemon's include is applied the same way ([`super::bird_daemon`]): written durably,
//! checked with `configure check`, applied with `configure timeout` and confirmed, so an apply
//! that breaks BIRD's control socket undoes itself; `routelb_direct` must exist afterwards.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::process::Command;

use super::bird_config::{self, Dialect};
use super::bird_daemon::BirdDaemon;
use super::{ApplyOutcome, DaemonError};
use crate::render::model::Instances;

/// Which BIRD: chosen by `--daemon bird|bird1`, and checked against the version each daemon
/// names in its greeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BirdVersion {
    Bird2,
    Bird1,
}

#[derive(Clone, Debug)]
pub struct BirdDriver {
    pub version: BirdVersion,
    /// BIRD 2: one. BIRD 1.x: `bird`, then `bird6`.
    pub daemons: Vec<BirdDaemon>,
    /// How long BIRD waits for `configure confirm` before undoing a reconfiguration.
    pub confirm_timeout: Duration,
}

impl BirdDriver {
    /// BIRD 2: one daemon, one include for both families.
    pub fn new(socket: PathBuf, include: PathBuf) -> Self {
        BirdDriver {
            version: BirdVersion::Bird2,
            daemons: vec![BirdDaemon {
                name: "bird",
                socket,
                include,
            }],
            confirm_timeout: Duration::from_secs(30),
        }
    }

    /// BIRD 1.x: `bird` for IPv4 and `bird6` for IPv6, each with its socket and include.
    pub fn bird1(socket: PathBuf, include: PathBuf, socket6: PathBuf, include6: PathBuf) -> Self {
        BirdDriver {
            version: BirdVersion::Bird1,
            daemons: vec![
                BirdDaemon {
                    name: "bird",
                    socket,
                    include,
                },
                BirdDaemon {
                    name: "bird6",
                    socket: socket6,
                    include: include6,
                },
            ],
            confirm_timeout: Duration::from_secs(30),
        }
    }

    /// Every daemon's control socket.
    pub fn sockets(&self) -> impl Iterator<Item = &Path> {
        self.daemons.iter().map(|d| d.socket.as_path())
    }

    /// Each daemon's part of a fragment: all of it (BIRD 2), or the IPv4 and IPv6 includes.
    pub fn parts<'a>(&self, fragment: &'a str) -> Vec<&'a str> {
        match self.version {
            BirdVersion::Bird2 => vec![fragment],
            BirdVersion::Bird1 => {
                let (v4, v6) = crate::render::split_bird1(fragment);
                vec![v4, v6]
            }
        }
    }

    /// Fails when the daemon's greeting names another major version than the driver's.
    fn check_version(&self, daemon: &BirdDaemon, version: &str) -> Result<(), DaemonError> {
        let (want, flag) = match self.version {
            BirdVersion::Bird2 => ("2.", "--daemon bird"),
            BirdVersion::Bird1 => ("1.", "--daemon bird1"),
        };
        if version.starts_with(want) {
            return Ok(());
        }
        let hint = if version.starts_with("1.") {
            "run routelb with --daemon bird1 (--bird-socket/--bird-include for bird, --bird6-socket/--bird6-include for bird6)"
        } else {
            "run routelb with --daemon bird"
        };
        Err(DaemonError::Unreachable(format!(
            "BIRD {version} answers at {} ({}), but routelb runs with {flag}: {hint}",
            daemon.socket.display(),
            daemon.name
        )))
    }

    /// The routing instances: BIRD 2 from `show protocols all`; BIRD 1.x from the files the
    /// daemons read (1.x does not show a BGP protocol's local AS), each daemon's family its own.
    /// Writes an include that exports nothing where there is none yet.
    pub async fn instances(&self) -> Result<Instances, DaemonError> {
        let mut all = Instances::default();
        for (i, d) in self.daemons.iter().enumerate() {
            d.ensure_include()?;
            let found = match self.version {
                BirdVersion::Bird2 => {
                    let (version, reply) = d.command("show protocols all").await?;
                    self.check_version(d, &version)?;
                    bird_config::instances_from_show(&reply.text())
                }
                BirdVersion::Bird1 => {
                    let dialect = [Dialect::Bird1V4, Dialect::Bird1V6][i.min(1)];
                    self.bird1_instances(d, dialect).await?
                }
            };
            all = bird_config::merge(all, found);
        }
        Ok(all)
    }

    async fn bird1_instances(
        &self,
        d: &BirdDaemon,
        dialect: Dialect,
    ) -> Result<Instances, DaemonError> {
        let (version, reply) = d.command("configure check").await?;
        self.check_version(d, &version)?;
        let path = super::bird_daemon::config_path(&reply.text()).ok_or_else(|| {
            DaemonError::Rejected(format!(
                "{} did not say which file it reads: {}",
                d.name,
                reply.text().trim()
            ))
        })?;
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(bird_config::instances_in(&text, dialect)),
            Err(e) => {
                let why = format!(
                    "cannot read {} ({}'s configuration): {e}",
                    path.display(),
                    d.name
                );
                self.bird1_instances_shown(d, dialect, why).await
            }
        }
    }

    /// BIRD 1.x instances from what the daemon shows, when its file cannot be read: enough
    /// unless a BGP protocol's local AS stays unknown (an eBGP session).
    async fn bird1_instances_shown(
        &self,
        d: &BirdDaemon,
        dialect: Dialect,
        why: String,
    ) -> Result<Instances, DaemonError> {
        let shown = d.text("show protocols all").await?;
        let (found, unknown) = bird_config::instances_from_show_bird1(&shown, dialect);
        if unknown.is_empty() {
            tracing::debug!(daemon = d.name, %why, "instances read from show protocols");
            return Ok(found);
        }
        Err(DaemonError::Unreachable(format!(
            "{why}; and BIRD 1.x does not show the local AS of BGP protocol(s) {}: make the file readable to routelb at that path",
            unknown.join(", ")
        )))
    }

    /// Whether every daemon runs its part of the fragment and has `routelb_direct`.
    pub async fn in_sync(&self, fragment: &str) -> Result<bool, DaemonError> {
        for (d, part) in self.daemons.iter().zip(self.parts(fragment)) {
            if !d.in_sync(part).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Applies each daemon's part (see [`BirdDaemon::apply`]): every part is written and
    /// checked first, so a part one daemon refuses leaves every daemon as it was; then each
    /// daemon is reconfigured and confirmed.
    pub async fn apply(&self, fragment: &str) -> Result<ApplyOutcome, DaemonError> {
        let started = Instant::now();
        let mut staged = Vec::new();
        for (d, part) in self.daemons.iter().zip(self.parts(fragment)) {
            match d.stage(part).await {
                Ok(Some(s)) => staged.push((d, s)),
                Ok(None) => {}
                Err(e) => {
                    for (d, s) in staged {
                        d.abandon(s);
                    }
                    return Err(e);
                }
            }
        }
        let reconfigured = staged.len();
        // Every daemon gets its part even when one fails (say bird's base lost the include):
        // the other family keeps working. The first failure is returned.
        let mut failed = None;
        for (d, s) in staged {
            if let Err(e) = d.commit(s, self.confirm_timeout).await {
                failed.get_or_insert(e);
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(ApplyOutcome {
            changed: reconfigured > 0,
            commands: reconfigured,
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

impl BirdDriver {
    /// Validates a BIRD 1.x fragment with BIRD 1.x's own parsers: its IPv4 half with
    /// `<sbin>/bird -p` against `base` (bird.conf), its IPv6 half with `<sbin>/bird6 -p` against
    /// `base6` (bird6.conf), each base's routelb include pointed at its half. Needs no running
    /// BIRD.
    pub async fn validate_bird1(
        base: &str,
        base6: &str,
        fragment: &str,
        sbin: &Path,
    ) -> Result<(), DaemonError> {
        let (v4, v6) = crate::render::split_bird1(fragment);
        for (daemon, base, part) in [("bird", base, v4), ("bird6", base6, v6)] {
            parse_with_include(&sbin.join(daemon), base, part)
                .await
                .map_err(|e| match e {
                    DaemonError::Invalid(m) => DaemonError::Invalid(format!("{daemon}: {m}")),
                    e => e,
                })?;
        }
        Ok(())
    }
}

/// `binary -p` on `base` whose `include "…routelb…";` line points at `part` instead.
async fn parse_with_include(binary: &Path, base: &str, part: &str) -> Result<(), DaemonError> {
    let frag = super::temp_file("bird-fragment", part)?;
    let mut replaced = false;
    let conf: String = base
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("include") && t.contains("routelb") {
                replaced = true;
                format!("include \"{}\";", frag.path().display())
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
    let out = Command::new(binary)
        .arg("-p")
        .arg("-c")
        .arg(main.path())
        .output()
        .await
        .map_err(|e| DaemonError::Unreachable(format!("cannot run {}: {e}", binary.display())))?;
    if out.status.success() {
        return Ok(());
    }
    Err(DaemonError::Invalid(bird_message(&format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))))
}

fn bird_message(out: &str) -> String {
    out.lines()
        .filter(|l| !l.starts_with("BIRD ") && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
