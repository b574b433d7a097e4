//! Makes the test API server (on the host's 127.0.0.1) reachable from inside a lab node's
//! network namespace at the same address, so an agent running there uses the ordinary
//! kubeconfig. The listening socket is created inside the namespace, connections to the
//! server are made from the host namespace; no traffic leaves loopback.
//!
//! `cut(true)` drops every connection and refuses new ones: the node loses the API server,
//! as in an outage.

use std::fs::File;
use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn setns(f: &File) -> io::Result<()> {
    // SAFETY: setns(2) on an open namespace file; affects only the calling thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The next connection on a non-blocking listener; `None` once `stop` is set.
fn accept(listener: &TcpListener, stop: &AtomicBool) -> Option<TcpStream> {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => return Some(client),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(_) => {}
        }
    }
    None
}

/// Copies both ways between two connections, each way in a thread, until either closes.
fn splice(client: TcpStream, server: TcpStream) {
    for (mut from, mut to) in [
        (client.try_clone().unwrap(), server.try_clone().unwrap()),
        (server, client),
    ] {
        std::thread::spawn(move || {
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        });
    }
}

pub struct ApiProxy {
    stop: Arc<AtomicBool>,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl ApiProxy {
    /// Listens on 127.0.0.1:`port` inside `netns` and forwards to 127.0.0.1:`port` here.
    /// Listens in `netns` on the port of the API server that `KUBECONFIG` names.
    pub fn start(netns: &str) -> ApiProxy {
        let port = api_server_port();
        let host = File::open("/proc/self/ns/net").expect("own netns");
        let target = File::open(format!("/var/run/netns/{netns}")).expect("lab netns exists");
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (s, c, o) = (stop.clone(), cut.clone(), open.clone());
        std::thread::spawn(move || {
            setns(&target).expect("enter the lab netns");
            let listener = TcpListener::bind(("127.0.0.1", port));
            setns(&host).expect("back to the host netns");
            let listener = match listener {
                Ok(l) => l,
                Err(e) => {
                    tx.send(Err(e)).unwrap();
                    return;
                }
            };
            listener.set_nonblocking(true).unwrap();
            tx.send(Ok(())).unwrap();
            while let Some(client) = accept(&listener, &s) {
                if c.load(Ordering::Relaxed) {
                    drop(client);
                    continue;
                }
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut open = o.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                splice(client, server);
            }
        });
        rx.recv()
            .unwrap()
            .unwrap_or_else(|e| panic!("proxy in {netns} on port {port}: {e}"));
        ApiProxy { stop, cut, open }
    }

    /// Cuts the node off the API server (drops connections, refuses new ones), or restores it.
    pub fn cut(&self, off: bool) {
        self.cut.store(off, Ordering::Relaxed);
        if off {
            for s in self.open.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for ApiProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut(true);
    }
}

/// The port of the API server in `KUBECONFIG` (control-plane.sh serves on 127.0.0.1,
/// `ROUTELB_K8S_PORT` or 6444).
pub fn api_server_port() -> u16 {
    let config = kube::config::Kubeconfig::read().expect("KUBECONFIG names a kubeconfig");
    let server = config
        .clusters
        .iter()
        .find_map(|c| c.cluster.as_ref()?.server.clone())
        .expect("the kubeconfig names a server");
    server
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in the API server's address {server}"))
}

/// The other way round: a port on the host's loopback that reaches 127.0.0.1:`port` inside a
/// lab node's namespace (an agent's /metrics, for a Prometheus on the host). Stops when dropped.
#[allow(dead_code)] // the monitoring test
pub struct PortForward {
    pub host_port: u16,
    stop: Arc<AtomicBool>,
}

#[allow(dead_code)] // the monitoring test
impl PortForward {
    pub fn start(netns: &str, port: u16) -> PortForward {
        let host = File::open("/proc/self/ns/net").expect("own netns");
        let target = File::open(format!("/var/run/netns/{netns}")).expect("lab netns exists");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host_port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            while let Some(client) = accept(&listener, &s) {
                client.set_nonblocking(false).unwrap();
                setns(&target).expect("enter the lab netns");
                let server = TcpStream::connect(("127.0.0.1", port));
                setns(&host).expect("back to the host netns");
                if let Ok(server) = server {
                    splice(client, server);
                }
            }
        });
        PortForward { host_port, stop }
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
