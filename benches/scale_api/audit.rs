//! The API server's audit log (control-plane.sh with ROUTELB_K8S_AUDIT=1): every request but
//! the simulation's, one JSON line each, read from a mark to count each component's requests.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

pub struct AuditLog {
    path: PathBuf,
}

/// Requests by component (`routelb-agent`, `routelb-allocator`, else `other`) and what they
/// did (`patch services/status`).
pub type Requests = BTreeMap<(String, String), u64>;

impl AuditLog {
    pub fn new(path: PathBuf) -> AuditLog {
        assert!(
            path.exists(),
            "{}: no audit log; start the API server with ROUTELB_K8S_AUDIT=1",
            path.display()
        );
        AuditLog { path }
    }

    /// Where the log ends now.
    pub fn mark(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// The requests logged since `mark`.
    pub fn since(&self, mark: u64) -> Requests {
        let mut f = std::fs::File::open(&self.path).expect("the audit log");
        f.seek(SeekFrom::Start(mark)).expect("seek");
        let mut text = String::new();
        f.read_to_string(&mut text).expect("read the audit log");
        let mut out = Requests::new();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let agent = v["userAgent"].as_str().unwrap_or("");
            let component = ["routelb-agent", "routelb-allocator"]
                .into_iter()
                .find(|c| agent.starts_with(c))
                .unwrap_or("other");
            let verb = v["verb"].as_str().unwrap_or("?");
            let object = &v["objectRef"];
            let resource = match (object["resource"].as_str(), object["subresource"].as_str()) {
                (Some(r), Some(sub)) => format!("{r}/{sub}"),
                (Some(r), None) => r.to_string(),
                _ => "-".to_string(),
            };
            *out.entry((component.to_string(), format!("{verb} {resource}")))
                .or_default() += 1;
        }
        out
    }
}

/// A component's requests: (all, writes), where writes create, update, patch or delete.
pub fn of(requests: &Requests, component: &str) -> (u64, u64) {
    let mine = requests.iter().filter(|((c, _), _)| c == component);
    let all = mine.clone().map(|(_, n)| n).sum();
    let writes = mine
        .filter(|((_, what), _)| {
            matches!(
                what.split(' ').next().unwrap_or(""),
                "create" | "update" | "patch" | "delete" | "deletecollection"
            )
        })
        .map(|(_, n)| n)
        .sum();
    (all, writes)
}

/// A component's requests by what they did, for the record.
pub fn breakdown(requests: &Requests, component: &str) -> BTreeMap<String, u64> {
    requests
        .iter()
        .filter(|((c, _), _)| c == component)
        .map(|((_, what), n)| (what.clone(), *n))
        .collect()
}
