//! What the harness measures of a process: its CPU and memory.

use std::process::Child;

/// A process the harness watches (and owns, when it started it).
pub struct Process {
    pid: String,
    child: Option<Child>,
}

impl Process {
    pub fn owned(child: Child) -> Process {
        Process {
            pid: child.id().to_string(),
            child: Some(child),
        }
    }

    pub fn of(pid: &str) -> Process {
        Process {
            pid: pid.to_string(),
            child: None,
        }
    }

    pub fn cpu_s(&self) -> f64 {
        crate::support::cpu::cpu_s(&self.pid)
    }

    /// Resident memory (VmRSS), MiB.
    pub fn rss_mb(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
