//! Continuous HTTP requests from a client network namespace at a fixed rate, as a user's
//! clients would send them through a rollout or a failure: every request a new TCP connection
//! (so the router's ECMP hash spreads them over the nodes), each counted as answered (by which
//! pod) or failed (and why, and when).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// One failed request: when it was due (from the start of the load) and what went wrong.
#[derive(Clone, Debug)]
pub struct Failure {
    pub at: Duration,
    /// Whether the connection was established: a request that fails after that was cut
    /// mid-flight (for instance moved by the router's ECMP rehash to a node that has no state
    /// for it), one that fails before found no working path.
    pub connected: bool,
    pub error: String,
}

/// What a load saw between its start and its stop.
#[derive(Debug, Default)]
pub struct Report {
    pub target: String,
    pub sent: u64,
    pub failures: Vec<Failure>,
    /// Answers per pod name.
    pub answered_by: BTreeMap<String, u64>,
    pub lasted: Duration,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.failures.len()
    }

    /// Failed requests whose connection was never established.
    pub fn not_connected(&self) -> usize {
        self.failures.iter().filter(|f| !f.connected).count()
    }

    /// One line for the test log: counts, the failures' window and a few reasons.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: {} requests in {:.1} s, {} failed",
            self.target,
            self.sent,
            self.lasted.as_secs_f64(),
            self.failed()
        );
        if let (Some(first), Some(last)) = (self.failures.first(), self.failures.last()) {
            s += &format!(
                " (from {:.2} s to {:.2} s; first: {}; last: {})",
                first.at.as_secs_f64(),
                last.at.as_secs_f64(),
                first.error,
                last.error
            );
        }
        let pods: Vec<String> = self
            .answered_by
            .iter()
            .map(|(p, n)| format!("{p} {n}"))
            .collect();
        s + &format!("; answered by: {}", pods.join(", "))
    }
}

/// Failed requests over several reports, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Losses {
    pub sent: u64,
    /// Never connected: no working path (blackholed, refused, unreachable).
    pub found_no_path: usize,
    /// Connected, then failed: cut mid-flight.
    pub cut: usize,
}

pub fn losses(reports: &[Report]) -> Losses {
    let found_no_path = reports.iter().map(Report::not_connected).sum();
    let failed: usize = reports.iter().map(Report::failed).sum();
    Losses {
        sent: reports.iter().map(|r| r.sent).sum(),
        found_no_path,
        cut: failed - found_no_path,
    }
}

/// A running load; [`Load::stop`] ends it and reports.
pub struct Load {
    target: SocketAddr,
    start: Instant,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    dispatcher: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    failures: Mutex<Vec<Failure>>,
    answered_by: Mutex<BTreeMap<String, u64>>,
}

impl Load {
    /// `per_second` GET requests to `target` from network namespace `netns`, open loop: each
    /// is sent at its time on a fixed schedule by a thread of its own, so a request that
    /// hangs until its timeout delays no other and the rate holds through an outage.
    pub fn start(netns: &str, target: SocketAddr, per_second: u32) -> io::Result<Load> {
        let netns_file = Arc::new(File::open(format!("/run/netns/{netns}"))?);
        let period = Duration::from_secs(1) / per_second;
        let start = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let dispatcher = {
            let (stop, shared) = (stop.clone(), shared.clone());
            std::thread::spawn(move || {
                let mut in_flight = Vec::new();
                for slot in 0u32.. {
                    let due = period * slot;
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let (netns, shared) = (netns_file.clone(), shared.clone());
                    in_flight.push(std::thread::spawn(move || {
                        let outcome = in_netns(&netns).map_err(|e| (false, format!("setns: {e}")));
                        match outcome.and_then(|()| request(target)) {
                            Ok(pod) => {
                                *shared.answered_by.lock().unwrap().entry(pod).or_default() += 1
                            }
                            Err((connected, error)) => {
                                shared.failures.lock().unwrap().push(Failure {
                                    at: due,
                                    connected,
                                    error,
                                })
                            }
                        }
                    }));
                    in_flight.retain(|h| !h.is_finished());
                }
                for h in in_flight {
                    let _ = h.join();
                }
            })
        };
        Ok(Load {
            target,
            start,
            stop,
            shared,
            dispatcher: Some(dispatcher),
        })
    }

    /// One load of `per_second` on port 80 of each of `ips`.
    pub fn on_each(netns: &str, ips: &[IpAddr], per_second: u32) -> io::Result<Vec<Load>> {
        ips.iter()
            .map(|ip| Load::start(netns, SocketAddr::new(*ip, 80), per_second))
            .collect()
    }

    /// Ends the load (requests in flight finish) and reports.
    pub fn stop(mut self) -> Report {
        self.halt();
        let mut failures = std::mem::take(&mut *self.shared.failures.lock().unwrap());
        failures.sort_by_key(|f| f.at);
        let answered_by = std::mem::take(&mut *self.shared.answered_by.lock().unwrap());
        Report {
            target: format!("http://{}/", self.target),
            sent: answered_by.values().sum::<u64>() + failures.len() as u64,
            lasted: self.start.elapsed(),
            failures,
            answered_by,
        }
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(d) = self.dispatcher.take() {
            let _ = d.join();
        }
    }
}

/// A load dropped on an early return stops too.
impl Drop for Load {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Moves this thread (only) into the network namespace `netns`: its sockets are that
/// namespace's.
fn in_netns(netns: &File) -> io::Result<()> {
    if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One `GET /` on a new connection: the answering pod's name, or why it failed.
pub fn request(target: SocketAddr) -> Result<String, (bool, String)> {
    let mut s = TcpStream::connect_timeout(&target, REQUEST_TIMEOUT)
        .map_err(|e| (false, format!("connect: {e}")))?;
    exchange(&mut s).map_err(|e| (true, e))
}

fn exchange(s: &mut TcpStream) -> Result<String, String> {
    s.set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(REQUEST_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: routelb-e2e\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let (head, body) = answer.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!("answer: {}", head.lines().next().unwrap_or("")));
    }
    Ok(body.trim().to_string())
}

/// `n` requests one after the other from `netns`: for "answered now" checks after a change
/// has converged.
pub fn requests(netns: &str, target: SocketAddr, n: usize) -> io::Result<Report> {
    let netns_file = File::open(format!("/run/netns/{netns}"))?;
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            in_netns(&netns_file)?;
            let mut report = Report {
                target: format!("http://{target}/"),
                ..Report::default()
            };
            for _ in 0..n {
                report.sent += 1;
                match request(target) {
                    Ok(pod) => *report.answered_by.entry(pod).or_default() += 1,
                    Err((connected, error)) => report.failures.push(Failure {
                        at: start.elapsed(),
                        connected,
                        error,
                    }),
                }
            }
            report.lasted = start.elapsed();
            Ok(report)
        })
        .join()
        .expect("request thread")
    })
}
