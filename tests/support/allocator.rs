//! `routelb allocator` processes against the test API server, and their HTTP endpoints.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

/// A free TCP port on loopback (for a process to listen on right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tiny HTTP/1.0 GET on loopback, enough for /metrics and /readyz: the body of a 200.
pub async fn http_get(port: u16, path: &str) -> Option<String> {
    let (ok, body) = http_get_any(port, path).await?;
    ok.then_some(body)
}

/// The same GET whatever the status: whether it was a 200, and the body (a 400's says why).
/// `None` while nothing listens.
pub async fn http_get_any(port: u16, path: &str) -> Option<(bool, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    let ok = head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200");
    Some((ok, body.to_string()))
}

/// A `routelb allocator` process (lease 3 s, renewed every 500 ms), killed when dropped.
pub struct Allocator {
    child: Child,
    pub metrics_port: u16,
}

impl Allocator {
    #[allow(dead_code)] // not the allocator benchmark, which runs it with its defaults
    pub fn start(lease: &str, identity: &str, extra: &[&str]) -> Allocator {
        let metrics_port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_routelb"))
            .args([
                "allocator",
                "--leader-election-lease",
                lease,
                "--identity",
                identity,
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
                "--lease-duration",
                "3s",
                "--renew-period",
                "500ms",
            ])
            .args(extra)
            .env("ROUTELB_LOG_LEVEL", "info,kube=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("routelb binary starts");
        Allocator {
            child,
            metrics_port,
        }
    }

    pub async fn metrics(&self) -> String {
        http_get(self.metrics_port, "/metrics")
            .await
            .unwrap_or_default()
    }

    #[allow(dead_code)] // allocator tests
    pub async fn is_leader(&self) -> bool {
        self.metrics()
            .await
            .lines()
            .any(|l| l == "routelb_is_leader 1")
    }

    /// Whether it answers /readyz: its caches are synced and its loop runs (its leader
    /// election runs from its start).
    #[allow(dead_code)] // allocator tests
    pub async fn is_ready(&self) -> bool {
        http_get(self.metrics_port, "/readyz").await.is_some()
    }

    /// SIGTERM (a leader releases its lease), and waits for the process to exit.
    #[allow(dead_code)] // allocator tests
    pub fn stop_gracefully(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let _ = self.child.wait();
    }

    #[allow(dead_code)] // allocator tests
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Allocator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
