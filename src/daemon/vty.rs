//! FRR's vty sockets: the channel `vtysh` itself uses to reach each daemon. routelb keeps one
//! connection per daemon open, so an apply costs only the daemons' own work: no process start,
//! and no connecting to every daemon first, which is most of a `vtysh -c` run's 20–100 ms.
//!
//! The protocol (FRR's lib/vty.c in vtysh mode): a command goes out NUL-terminated; the daemon
//! answers with its output, then three NUL bytes and the command's status (FRR's `CMD_*`).
//! A connection starts in view mode, so the first command is `enable`.
//!
//! Like vtysh, a configuration line goes to the daemons that take it: `ip prefix-list` to
//! zebra, bgpd, ospfd…; `set community` only to bgpd. routelb learns which from the daemons'
//! answers ([`learn`]): a daemon answering "unknown command" does not get that kind of line
//! again, and a daemon that does not know a block's opening line (`router bgp` in zebra) skips
//! the block.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::Mutex;

use super::DaemonError;
use super::frr_config::{self, Change};

/// FRR's `CMD_SUCCESS`.
pub const SUCCESS: u8 = 0;
/// FRR's `CMD_ERR_NO_MATCH`: the daemon does not know the command.
pub const UNKNOWN: u8 = 2;
/// FRR's `CMD_WARNING_CONFIG_FAILED`.
pub const COMMIT_FAILED: u8 = 13;

/// How long one command may take. A batch commit of thousands of lines in a large
/// configuration takes seconds; a daemon that does not answer in this time is treated as gone.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// From this many prefix-list lines in a row on, a daemon gets them as one batch
/// (`XFRR_start_configuration` … `XFRR_end_configuration`, as `vtysh -f` sends a file): one
/// commit at the end instead of one per line. FRR commits by validating, diffing and copying
/// its whole configuration, so each commit costs the same whatever it carries (20–45 ms of
/// daemon CPU at 5,000 entries on the test machine): 10 lines one by one took 221 ms, in one
/// batch 39 ms. Hence from two lines on; a single line needs no framing.
pub const BATCH_FROM_LINES: usize = 2;

/// From this many deferrable entries on, a load is a bulk one: what the announced addresses
/// need is sent (and committed) first, the rest after ([`super::drift::urgent_first`]).
pub const BULK_FROM_LINES: usize = 50;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u8,
    pub output: String,
}

impl Reply {
    pub fn ok(&self) -> bool {
        self.status == SUCCESS
    }

    /// The daemon's message, without FRR's `% ` markers and blank lines.
    pub fn message(&self) -> String {
        let lines: Vec<&str> = self
            .output
            .lines()
            .map(|l| l.trim().trim_start_matches('%').trim())
            .filter(|l| !l.is_empty())
            .collect();
        if lines.is_empty() {
            format!("status {}", self.status)
        } else {
            lines.join("; ")
        }
    }
}

/// One open vty connection to one daemon, in enable mode.
pub struct Connection {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl Connection {
    pub async fn open(path: &Path) -> io::Result<Connection> {
        let stream = UnixStream::connect(path).await?;
        let mut c = Connection {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        };
        let r = c.command("enable").await?;
        if !r.ok() {
            return Err(io::Error::other(format!("enable: {}", r.message())));
        }
        Ok(c)
    }

    pub async fn command(&mut self, cmd: &str) -> io::Result<Reply> {
        if cmd.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "NUL in command",
            ));
        }
        tokio::time::timeout(COMMAND_TIMEOUT, self.exchange(cmd))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("no answer to '{cmd}'")))?
    }

    async fn exchange(&mut self, cmd: &str) -> io::Result<Reply> {
        let mut out = Vec::with_capacity(cmd.len() + 1);
        out.extend_from_slice(cmd.as_bytes());
        out.push(0);
        self.stream.write_all(&out).await?;
        self.buf.clear();
        loop {
            // Straight into the heap buffer: a stack array would live in every future that
            // awaits a command.
            self.buf.reserve(64 * 1024);
            let n = self.stream.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "daemon closed the connection",
                ));
            }
            let len = self.buf.len();
            if len >= 4 && self.buf[len - 4..len - 1] == [0, 0, 0] {
                return Ok(Reply {
                    status: self.buf[len - 1],
                    output: String::from_utf8_lossy(&self.buf[..len - 4]).into_owned(),
                });
            }
        }
    }

    /// Whether the daemon still holds the connection: a daemon that restarted closed it. Asks
    /// the kernel directly (tokio's `try_read` answers from its own idea of readiness).
    fn alive(&self) -> bool {
        use std::os::fd::AsRawFd;
        let mut probe = [0u8; 1];
        // SAFETY: a one-byte peek into a local buffer on a socket this connection owns.
        let n = unsafe {
            libc::recv(
                self.stream.as_raw_fd(),
                probe.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        // Nothing to read is the only healthy state between commands: end of file means the
        // daemon closed it, and stray bytes mean the exchange is out of step.
        n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
    }
}

/// What one daemon answered to a list of changes: per change, the replies to its context lines
/// then its lines, up to where the daemon stopped (a refused context line skips the rest of
/// that change; a refusal other than "unknown command" stops the daemon's run).
pub type Answers = Vec<Vec<Reply>>;

/// Reads the daemons' answers to the changes each was sent. The first refusal other than
/// "unknown command" is an error. Each "unknown command" teaches a kind of line, in its
/// context ([`frr_config::kind_in`]), that the daemon does not take: returned as (daemon, kind).
pub fn learn(
    plan: &BTreeMap<String, Vec<Change>>,
    answers: &BTreeMap<String, Answers>,
) -> Result<Vec<(String, String)>, String> {
    let mut unknown = Vec::new();
    for (daemon, changes) in plan {
        let Some(per_change) = answers.get(daemon) else {
            continue;
        };
        for (change, replies) in changes.iter().zip(per_change) {
            for (j, (line, reply)) in change.all_lines().zip(replies).enumerate() {
                if reply.ok() {
                    continue;
                }
                if reply.status != UNKNOWN {
                    return Err(format!("{daemon} refused '{line}': {}", reply.message()));
                }
                let context = &change.context[..j.min(change.context.len())];
                unknown.push((daemon.clone(), frr_config::kind_in(context, line)));
            }
        }
    }
    Ok(unknown)
}

/// Whether a change may sit in a batch: a top-level prefix-list line. FRR commits a batch
/// early, and throws the result away, before any command that is not YANG-based (`router …`,
/// `address-family`, even `exit`), so only runs of these go into one.
fn batchable(change: &Change) -> bool {
    change.context.is_empty()
        && change.lines.iter().all(|l| {
            let l = l.strip_prefix("no ").unwrap_or(l);
            l.starts_with("ip prefix-list ") || l.starts_with("ipv6 prefix-list ")
        })
}

/// FRR reports a commit that failed inside another command's output ("% Configuration
/// failed."), with that command's status 0: count it as the refusal it is.
fn with_commit_failure(mut r: Reply) -> Reply {
    if r.ok() && r.output.contains("Configuration failed") {
        r.status = COMMIT_FAILED;
    }
    r
}

/// Sends one change from the top of configuration mode, and back to it.
async fn send_change(conn: &mut Connection, change: &Change) -> io::Result<(Vec<Reply>, bool)> {
    let mut replies = Vec::new();
    let mut entered = 0;
    let mut stop = false;
    for ctx in &change.context {
        let r = with_commit_failure(conn.command(ctx).await?);
        let ok = r.ok();
        stop = !ok && r.status != UNKNOWN;
        replies.push(r);
        if !ok {
            break;
        }
        entered += 1;
    }
    if entered == change.context.len() {
        for line in &change.lines {
            let r = with_commit_failure(conn.command(line).await?);
            stop = !r.ok() && r.status != UNKNOWN;
            replies.push(r);
            if stop {
                break;
            }
        }
    }
    for _ in 0..entered {
        let r = with_commit_failure(conn.command("exit").await?);
        if !r.ok() {
            // The refusal belongs to what was just sent.
            if let Some(last) = replies.last_mut() {
                *last = r;
            }
            stop = true;
        }
    }
    Ok((replies, stop))
}

/// Sends `changes` to one daemon, from enable mode and back to it. Runs of at least
/// [`BATCH_FROM_LINES`] prefix-list lines go as one batch.
async fn configure_one(conn: &mut Connection, changes: &[Change]) -> io::Result<Answers> {
    if changes.is_empty() {
        return Ok(vec![]);
    }
    let r = conn.command("configure terminal").await?;
    if !r.ok() {
        return Err(io::Error::other(format!(
            "configure terminal: {}",
            r.message()
        )));
    }
    let mut answers: Answers = Vec::with_capacity(changes.len());
    let mut i = 0;
    'runs: while i < changes.len() {
        let run = changes[i..].iter().take_while(|c| batchable(c)).count();
        let batch = run >= BATCH_FROM_LINES;
        let end = if run > 0 { i + run } else { i + 1 };
        if batch {
            conn.command("XFRR_start_configuration").await?;
        }
        for change in &changes[i..end] {
            let (replies, stop) = send_change(conn, change).await?;
            answers.push(replies);
            if stop && !batch {
                break 'runs;
            }
            if stop {
                break;
            }
        }
        if batch {
            // The commit happens here; its refusal belongs to the batch's last line.
            let r = conn.command("XFRR_end_configuration").await?;
            let failed = !r.ok();
            if failed && let Some(last) = answers.iter_mut().rev().find_map(|a| a.last_mut()) {
                *last = r;
            }
            let stopped = answers.len() < end;
            if failed || stopped {
                break 'runs;
            }
        }
        i = end;
    }
    conn.command("end").await?;
    Ok(answers)
}

/// The connections to one FRR instance's daemons (`/var/run/frr` or `/var/run/frr/<pathspace>`).
pub struct Vty {
    dir: PathBuf,
    conns: Mutex<BTreeMap<String, Connection>>,
    /// Set when a daemon appeared, went away or had to be reconnected since the last
    /// [`Vty::take_restarted`]: what routelb knows of its configuration is stale.
    restarted: AtomicBool,
}

impl std::fmt::Debug for Vty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vty").field("dir", &self.dir).finish()
    }
}

impl Vty {
    pub fn new(dir: PathBuf) -> Vty {
        Vty {
            dir,
            conns: Mutex::default(),
            restarted: AtomicBool::new(false),
        }
    }

    /// Where the daemons' sockets are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a daemon restarted (or came or went) since the last call.
    pub fn take_restarted(&self) -> bool {
        self.restarted.swap(false, Ordering::Relaxed)
    }

    fn mark_restarted(&self) {
        self.restarted.store(true, Ordering::Relaxed);
    }

    /// The daemons with a vty socket, except watchfrr, which holds no routing configuration.
    fn daemons(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(daemon) = name.strip_suffix(".vty")
                && daemon != "watchfrr"
            {
                out.push(daemon.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Takes a live connection to every daemon out of the pool, opening what is missing.
    async fn checkout(&self) -> Result<BTreeMap<String, Connection>, DaemonError> {
        let unreachable = |e: io::Error| {
            DaemonError::Unreachable(format!("FRR vty sockets in {}: {e}", self.dir.display()))
        };
        let daemons = self.daemons().map_err(unreachable)?;
        let mut pool = self.conns.lock().await;
        let had_any = !pool.is_empty();
        let mut out = BTreeMap::new();
        for d in &daemons {
            match pool.remove(d) {
                Some(c) if c.alive() => {
                    out.insert(d.clone(), c);
                }
                old => {
                    // A connection that died, or a daemon that appeared after the first
                    // checkout, means a daemon (re)started; a socket file nobody answers on
                    // does not, unless its daemon answered before.
                    if old.is_some() {
                        self.mark_restarted();
                    }
                    let path = self.dir.join(format!("{d}.vty"));
                    match Connection::open(&path).await {
                        Ok(c) => {
                            if had_any {
                                self.mark_restarted();
                            }
                            out.insert(d.clone(), c);
                        }
                        // FRR leaves a stopped daemon's socket file behind; vtysh skips such
                        // daemons too. One that routelb needs shows up as "no daemon takes".
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
                            ) =>
                        {
                            tracing::debug!(daemon = %d, error = %e, "FRR daemon not running");
                        }
                        Err(e) => return Err(DaemonError::Unreachable(format!("{d}: {e}"))),
                    }
                }
            }
        }
        if out.is_empty() {
            return Err(DaemonError::Unreachable(format!(
                "no FRR daemon answers on a vty socket in {}",
                self.dir.display()
            )));
        }
        if !pool.is_empty() {
            // A daemon that went away.
            self.mark_restarted();
            pool.clear();
        }
        Ok(out)
    }

    async fn checkin(&self, conns: impl IntoIterator<Item = (String, Connection)>) {
        self.conns.lock().await.extend(conns);
    }

    /// Checks every connection, reconnecting what a restarted daemon closed (which
    /// [`Vty::take_restarted`] then reports).
    pub async fn refresh(&self) -> Result<(), DaemonError> {
        let conns = self.checkout().await?;
        self.checkin(conns).await;
        Ok(())
    }

    /// Runs `job` on every daemon at once; a daemon whose connection fails is dropped (and
    /// reconnected next time), and the whole call fails as unreachable.
    async fn on_each<T, F, Fut>(&self, job: F) -> Result<Vec<(String, T)>, DaemonError>
    where
        T: Send + 'static,
        F: Fn(String, Connection) -> Fut,
        Fut: Future<Output = (Connection, io::Result<T>)> + Send + 'static,
    {
        let conns = self.checkout().await?;
        let mut set = tokio::task::JoinSet::new();
        for (daemon, conn) in conns {
            let fut = job(daemon.clone(), conn);
            set.spawn(async move {
                let (conn, result) = fut.await;
                (daemon, conn, result)
            });
        }
        let (mut good, mut results, mut failure) = (Vec::new(), Vec::new(), None);
        while let Some(joined) = set.join_next().await {
            let (daemon, conn, result) =
                joined.map_err(|e| DaemonError::Unreachable(format!("vty task: {e}")))?;
            match result {
                Ok(t) => {
                    results.push((daemon.clone(), t));
                    good.push((daemon, conn));
                }
                Err(e) => failure = Some(format!("{daemon}: {e}")),
            }
        }
        self.checkin(good).await;
        if let Some(f) = failure {
            self.mark_restarted();
            return Err(DaemonError::Unreachable(f));
        }
        results.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(results)
    }

    /// Runs one (show) command on one daemon over its kept connection: what the daemon
    /// answered, or `None` when that daemon does not run. For reading state (advertised
    /// routes, probes) without vtysh.
    pub async fn show(&self, daemon: &str, command: &str) -> Result<Option<Reply>, DaemonError> {
        let mut conns = self.checkout().await?;
        let Some(mut conn) = conns.remove(daemon) else {
            self.checkin(conns).await;
            return Ok(None);
        };
        let reply = conn.command(command).await;
        match reply {
            Ok(r) => {
                conns.insert(daemon.to_string(), conn);
                self.checkin(conns).await;
                Ok(Some(r))
            }
            Err(e) => {
                self.checkin(conns).await;
                self.mark_restarted();
                Err(DaemonError::Unreachable(format!(
                    "{daemon}: {command}: {e}"
                )))
            }
        }
    }

    /// Runs each daemon's (show) commands over its kept connection, all daemons at once: per
    /// daemon, command → what it answered. Daemons not named get nothing; a command a daemon
    /// refuses has no answer. For probes that must stay cheap: no process, no new connection.
    pub async fn show_each(
        &self,
        commands: BTreeMap<String, Vec<String>>,
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, DaemonError> {
        let commands = Arc::new(commands);
        let answers = self
            .on_each(move |daemon, mut conn| {
                let commands = commands.clone();
                async move {
                    let mut out = BTreeMap::new();
                    for c in commands.get(&daemon).map(Vec::as_slice).unwrap_or_default() {
                        match conn.command(c).await {
                            Ok(r) if r.ok() => {
                                out.insert(c.clone(), r.output);
                            }
                            Ok(_) => {}
                            Err(e) => return (conn, Err(e)),
                        }
                    }
                    (conn, Ok(out))
                }
            })
            .await?;
        Ok(answers.into_iter().collect())
    }

    /// Every daemon's running configuration, by daemon.
    pub async fn running_configs(&self) -> Result<Vec<(String, String)>, DaemonError> {
        let replies = self
            .on_each(|_, mut conn| async move {
                let r = conn.command("show running-config").await;
                (conn, r)
            })
            .await?;
        replies
            .into_iter()
            .map(|(daemon, reply)| {
                if reply.ok() {
                    Ok((daemon, reply.output))
                } else {
                    Err(DaemonError::Rejected(format!(
                        "{daemon}: show running-config: {}",
                        reply.message()
                    )))
                }
            })
            .collect()
    }

    /// Sends each daemon its changes, all daemons at once, and returns what each answered.
    pub async fn configure(
        &self,
        plan: BTreeMap<String, Vec<Change>>,
    ) -> Result<BTreeMap<String, Answers>, DaemonError> {
        let plan = Arc::new(plan);
        let answers = self
            .on_each(move |daemon, mut conn| {
                let plan = plan.clone();
                async move {
                    let changes = plan.get(&daemon).map(Vec::as_slice).unwrap_or_default();
                    let r = configure_one(&mut conn, changes).await;
                    (conn, r)
                }
            })
            .await?;
        Ok(answers.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u8, output: &str) -> Reply {
        Reply {
            status,
            output: output.into(),
        }
    }

    fn change(context: &[&str], lines: &[&str]) -> Change {
        Change {
            context: context.iter().map(|s| s.to_string()).collect(),
            lines: lines.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn plan(entries: Vec<(&str, Vec<Change>)>) -> BTreeMap<String, Vec<Change>> {
        entries
            .into_iter()
            .map(|(d, c)| (d.to_string(), c))
            .collect()
    }

    #[test]
    fn unknown_commands_teach_what_a_daemon_does_not_take() {
        let changes = vec![
            change(
                &[],
                &["ip prefix-list ROUTELB-POOL-a-V4 seq 5 permit 192.0.2.0/24"],
            ),
            change(
                &["router bgp 64512", "address-family ipv4 unicast"],
                &["redistribute connected route-map ROUTELB-BGP-V4"],
            ),
            change(
                &["route-map ROUTELB-BGP-V4 permit 10"],
                &[
                    "match ip address prefix-list ROUTELB-POOL-a-V4",
                    "set community 1:1 additive",
                ],
            ),
        ];
        let zebra = vec![
            vec![reply(SUCCESS, "")],
            vec![reply(UNKNOWN, "% Unknown command: router bgp 64512")],
            vec![
                reply(SUCCESS, ""),
                reply(SUCCESS, ""),
                reply(UNKNOWN, "% Unknown command"),
            ],
        ];
        let bgpd = vec![
            vec![reply(SUCCESS, "")],
            vec![reply(SUCCESS, ""), reply(SUCCESS, ""), reply(SUCCESS, "")],
            vec![reply(SUCCESS, ""), reply(SUCCESS, ""), reply(SUCCESS, "")],
        ];
        let p = plan(vec![("bgpd", changes.clone()), ("zebra", changes)]);
        let answers = [("bgpd".to_string(), bgpd), ("zebra".to_string(), zebra)].into();
        assert_eq!(
            learn(&p, &answers),
            Ok(vec![
                ("zebra".to_string(), "router bgp".to_string()),
                (
                    "zebra".to_string(),
                    "route-map <name> > set community".to_string()
                ),
            ])
        );
    }

    #[test]
    fn any_refusal_other_than_unknown_is_an_error() {
        let changes = vec![change(&["router bgp 64512"], &[])];
        let p = plan(vec![("bgpd", changes.clone()), ("zebra", changes)]);
        let answers = [
            (
                "bgpd".to_string(),
                vec![vec![reply(1, "% BGP is already running; AS is 64513\n")]],
            ),
            ("zebra".to_string(), vec![vec![reply(UNKNOWN, "")]]),
        ]
        .into();
        assert_eq!(
            learn(&p, &answers),
            Err("bgpd refused 'router bgp 64512': BGP is already running; AS is 64513".into())
        );
    }

    #[test]
    fn messages_lose_frr_markers() {
        assert_eq!(
            reply(13, "% Invalid prefix range\n\n").message(),
            "Invalid prefix range"
        );
        assert_eq!(reply(1, "").message(), "status 1");
    }
}
