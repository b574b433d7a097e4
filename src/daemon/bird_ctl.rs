//! BIRD's control socket, spoken directly (as `birdc` does): one connection per command, so
//! BIRD 2 and BIRD 1.x (`bird` and `bird6`) need no matching `birdc`/`birdc6` binary, and the
//! greeting tells which BIRD answers. The reply parsing is pure.
//!
//! The protocol: BIRD greets with `0001 BIRD 2.0.12 ready.`; each reply line is a four-digit
//! code and `-` (more follows) or ` ` (last line), or a space and a continuation of the previous
//! code. Codes from 8000 are errors (8xxx runtime, 9xxx parse).

use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// A whole reply to one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The code of the last line.
    pub code: u16,
    /// Every line's text, codes removed.
    pub lines: Vec<String>,
}

impl Reply {
    pub fn is_error(&self) -> bool {
        self.code >= 8000
    }

    /// The reply's text, one line per line, as birdc prints it.
    pub fn text(&self) -> String {
        let mut t = self.lines.join("\n");
        t.push('\n');
        t
    }
}

/// One line of a reply: `Some(code, last, text)`, or a continuation `None`-coded line.
fn parse_line(line: &str) -> (Option<(u16, bool)>, &str) {
    let b = line.as_bytes();
    if b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && (b[4] == b' ' || b[4] == b'-') {
        let code = line[..4].parse().unwrap_or(0);
        return (Some((code, b[4] == b' ')), &line[5..]);
    }
    (None, line.strip_prefix(' ').unwrap_or(line))
}

/// Feeds reply lines in; returns the reply once its last line arrived.
#[derive(Default)]
pub struct ReplyReader {
    lines: Vec<String>,
}

impl ReplyReader {
    pub fn push(&mut self, line: &str) -> Option<Reply> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.starts_with('+') {
            return None; // an asynchronous message, not part of the reply
        }
        let (code, text) = parse_line(line);
        self.lines.push(text.to_string());
        match code {
            Some((code, true)) => Some(Reply {
                code,
                lines: std::mem::take(&mut self.lines),
            }),
            _ => None,
        }
    }
}

/// The version in BIRD's greeting (`0001 BIRD 1.6.8 ready.` → `1.6.8`).
pub fn greeting_version(greeting: &str) -> Option<String> {
    let rest = greeting.trim().strip_prefix("0001 BIRD ")?;
    let version = rest.split_whitespace().next()?;
    version
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| version.to_string())
}

/// Why a command got no reply.
#[derive(Debug, thiserror::Error)]
#[error("BIRD at {socket}: {message}")]
pub struct CtlError {
    pub socket: String,
    pub message: String,
}

/// How long one command may take, connection and reply included: a BIRD that stopped
/// answering must not hold an apply for ever.
pub const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Connects, reads the greeting, sends `command`, returns BIRD's version and the reply.
pub async fn command(socket: &Path, command: &str) -> Result<(String, Reply), CtlError> {
    tokio::time::timeout(COMMAND_TIMEOUT, exchange(socket, command))
        .await
        .unwrap_or_else(|_| {
            Err(CtlError {
                socket: socket.display().to_string(),
                message: format!("no answer to {command:?} within {COMMAND_TIMEOUT:?}"),
            })
        })
}

async fn exchange(socket: &Path, command: &str) -> Result<(String, Reply), CtlError> {
    let fail = |message: String| CtlError {
        socket: socket.display().to_string(),
        message,
    };
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| fail(format!("cannot connect: {e}")))?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let greeting = lines
        .next_line()
        .await
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("closed before greeting".into()))?;
    let version = greeting_version(&greeting)
        .ok_or_else(|| fail(format!("unexpected greeting {greeting:?}")))?;
    write
        .write_all(format!("{command}\n").as_bytes())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut reader = ReplyReader::default();
    loop {
        let line = lines
            .next_line()
            .await
            .map_err(|e| fail(e.to_string()))?
            .ok_or_else(|| fail(format!("closed before answering {command:?}")))?;
        if let Some(reply) = reader.push(&line) {
            return Ok((version, reply));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_multi_line_replies_to_their_last_line() {
        let mut r = ReplyReader::default();
        assert_eq!(
            r.push("2002-Name       Proto      Table      State  Since         Info"),
            None
        );
        assert_eq!(
            r.push("1002-routelb_direct Direct  master4 up 12:00:00"),
            None
        );
        assert_eq!(r.push(" continued"), None);
        assert_eq!(r.push("+async message"), None);
        let reply = r.push("0000 ").unwrap();
        assert_eq!(reply.code, 0);
        assert!(!reply.is_error());
        assert_eq!(
            reply.text(),
            "Name       Proto      Table      State  Since         Info\nroutelb_direct Direct  master4 up 12:00:00\ncontinued\n\n"
        );
        let mut r = ReplyReader::default();
        assert_eq!(
            r.push("0002-Reading configuration from /etc/bird.conf"),
            None
        );
        let reply = r
            .push("8002 /etc/bird.conf, line 3: Unable to open included file")
            .unwrap();
        assert!(reply.is_error());
        assert!(reply.text().contains("Unable to open included file"));
    }

    /// A control socket that greets as BIRD 1.6.8 and answers one command as BIRD does.
    #[tokio::test]
    async fn speaks_to_a_control_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bird6.ctl");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            write.write_all(b"0001 BIRD 1.6.8 ready.\n").await.unwrap();
            let mut lines = BufReader::new(read).lines();
            let asked = lines.next_line().await.unwrap().unwrap();
            write
                .write_all(b"0002-Reading configuration from /etc/bird/bird6.conf\n8002 /etc/bird/bird6.conf, line 2: syntax error\n")
                .await
                .unwrap();
            asked
        });
        let (version, reply) = command(&path, "configure check").await.unwrap();
        assert_eq!(server.await.unwrap(), "configure check");
        assert_eq!(version, "1.6.8");
        assert!(reply.is_error());
        assert_eq!(reply.code, 8002);
        assert!(reply.text().contains("line 2: syntax error"));
        let err = command(&dir.path().join("none.ctl"), "show status")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("cannot connect"), "{err}");
    }

    #[test]
    fn the_greeting_names_the_version() {
        assert_eq!(
            greeting_version("0001 BIRD 1.6.8 ready.").as_deref(),
            Some("1.6.8")
        );
        assert_eq!(
            greeting_version("0001 BIRD 2.0.12 ready.\n").as_deref(),
            Some("2.0.12")
        );
        assert_eq!(greeting_version("0001 BIRD ready."), None);
        assert_eq!(greeting_version("hello"), None);
    }
}
