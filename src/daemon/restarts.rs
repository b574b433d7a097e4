//! Noticing at once that a daemon (re)started, so what it lost is repaired in well under a
//! second instead of at the next resync. Every FRR daemon creates its vty socket
//! (`<dir>/<daemon>.vty`) when it starts, BIRD its control socket: a watch on the socket's
//! directory sees the new socket appear. A daemon that dies is noticed when it comes back,
//! which is when anything can be done about it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use notify::event::{CreateKind, EventKind};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::Driver;

/// Sockets whose appearance means a restart: FRR's `*.vty` in a directory, or BIRD's sockets
/// (BIRD 1.x: `bird`'s and `bird6`'s) in the first one's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Sockets {
    AnyVty(PathBuf),
    Named(PathBuf, Vec<OsString>),
}

impl Sockets {
    fn of(driver: &Driver) -> Sockets {
        match driver {
            Driver::Frr(d) => Sockets::AnyVty(d.vty_dir().to_path_buf()),
            Driver::Bird(d) => {
                let dir = d
                    .sockets()
                    .next()
                    .and_then(Path::parent)
                    .unwrap_or(Path::new("/"))
                    .to_path_buf();
                let names = d
                    .sockets()
                    .filter(|s| s.parent() == Some(dir.as_path()))
                    .filter_map(|s| s.file_name().map(|n| n.to_os_string()))
                    .collect();
                Sockets::Named(dir, names)
            }
        }
    }

    fn dir(&self) -> &Path {
        match self {
            Sockets::AnyVty(d) | Sockets::Named(d, _) => d,
        }
    }

    /// The daemon a created path is the socket of, if it is one.
    fn daemon(&self, path: &Path) -> Option<String> {
        if path.parent() != Some(self.dir()) {
            return None;
        }
        match self {
            Sockets::AnyVty(_) => (path.extension()? == "vty")
                .then(|| path.file_stem()?.to_str().map(str::to_string))
                .flatten()
                .filter(|d| d != "watchfrr"),
            Sockets::Named(_, names) => {
                let name = path.file_name()?;
                names
                    .contains(&name.to_os_string())
                    .then(|| name.to_string_lossy().into_owned())
            }
        }
    }
}

/// Reports, by daemon name, every daemon whose socket appears; keep it alive to keep watching.
pub struct RestartWatch {
    _watcher: notify::RecommendedWatcher,
    pub started: mpsc::UnboundedReceiver<String>,
}

/// The next daemon that started; never, without a watch.
pub async fn next(w: &mut Option<RestartWatch>) -> Option<String> {
    match w {
        Some(w) => w.started.recv().await,
        None => std::future::pending().await,
    }
}

/// Takes a burst of starts as one (FRR starts its daemons together), after letting it settle.
pub async fn settle(w: &mut Option<RestartWatch>) {
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    if let Some(w) = w.as_mut() {
        while w.started.try_recv().is_ok() {}
    }
}

/// Watches the driver's socket directory, or says why it cannot (then a restart is repaired
/// at the next resync).
pub fn watch_or_warn(driver: &Driver) -> Option<RestartWatch> {
    match watch(driver) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the daemon's sockets; a restart is repaired at the next resync");
            None
        }
    }
}

/// Watches the driver's socket directory. Fails when the directory does not exist (the daemon
/// never ran here yet): callers fall back on their resync.
pub fn watch(driver: &Driver) -> notify::Result<RestartWatch> {
    let sockets = Sockets::of(driver);
    let (tx, started) = mpsc::unbounded_channel();
    let dir = sockets.dir().to_path_buf();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let Ok(ev) = ev else { return };
        if !matches!(
            ev.kind,
            EventKind::Create(CreateKind::Any | CreateKind::File | CreateKind::Other)
        ) {
            return;
        }
        for daemon in ev.paths.iter().filter_map(|p| sockets.daemon(p)) {
            let _ = tx.send(daemon);
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(RestartWatch {
        _watcher: watcher,
        started,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_daemon_sockets_count() {
        let frr = Sockets::AnyVty("/var/run/frr/n1".into());
        assert_eq!(
            frr.daemon(Path::new("/var/run/frr/n1/bgpd.vty")).as_deref(),
            Some("bgpd")
        );
        for other in [
            "/var/run/frr/n1/watchfrr.vty",
            "/var/run/frr/n1/bgpd.pid",
            "/var/run/frr/n2/bgpd.vty",
            "/var/run/frr/n1/sub/bgpd.vty",
        ] {
            assert_eq!(frr.daemon(Path::new(other)), None, "{other}");
        }
        let bird = Sockets::Named(
            "/run/bird".into(),
            vec!["bird.ctl".into(), "bird6.ctl".into()],
        );
        assert_eq!(
            bird.daemon(Path::new("/run/bird/bird.ctl")).as_deref(),
            Some("bird.ctl")
        );
        assert_eq!(
            bird.daemon(Path::new("/run/bird/bird6.ctl")).as_deref(),
            Some("bird6.ctl")
        );
        assert_eq!(bird.daemon(Path::new("/run/bird/bird.pid")), None);
    }

    #[tokio::test]
    async fn a_new_socket_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let driver = Driver::Frr(crate::daemon::frr::FrrDriver::with_vty_dir(
            None,
            crate::daemon::frr::FrrApply::Diff,
            dir.path().to_path_buf(),
        ));
        let mut w = watch(&driver).unwrap();
        let _listener =
            std::os::unix::net::UnixListener::bind(dir.path().join("bgpd.vty")).unwrap();
        let daemon = tokio::time::timeout(std::time::Duration::from_secs(10), w.started.recv())
            .await
            .expect("reported")
            .unwrap();
        assert_eq!(daemon, "bgpd");
    }
}
