//! CPU time of processes, for the benchmarks' cost figures.

use std::path::Path;

/// CPU seconds (user + system) a process has used; `self` for this one.
pub fn cpu_s(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which may hold spaces, in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // utime and stime: fields 14 and 15 (1-based), 11 and 12 after the state.
    (ticks(11) + ticks(12)) / hz
}

/// The CPU seconds of FRR's `daemons` whose pid files are in `vty_dir`, together.
pub fn frr_cpu_s(vty_dir: &Path, daemons: &[&str]) -> f64 {
    daemons
        .iter()
        .filter_map(|d| std::fs::read_to_string(vty_dir.join(format!("{d}.pid"))).ok())
        .map(|pid| cpu_s(pid.trim()))
        .sum()
}
