//! Fields a manifest holds that its type does not read: their paths, as `serde_ignored` reports
//! them, and the field probably meant, looked up in the type's JSON schema (for routelb's kinds the
//! schema the CRD is generated from, so the API server would know the same fields).

use std::collections::BTreeMap;
use std::sync::Mutex;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde_json::Value;

use super::short;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// The path of an ignored field, without serde's `Option` and newtype steps.
pub fn segments(path: &serde_ignored::Path) -> Vec<Seg> {
    use serde_ignored::Path;
    let mut out = Vec::new();
    let mut p = path;
    loop {
        match p {
            Path::Root => break,
            Path::Seq { parent, index } => {
                out.push(Seg::Index(*index));
                p = parent;
            }
            Path::Map { parent, key } => {
                out.push(Seg::Key(key.clone()));
                p = parent;
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => p = parent,
        }
    }
    out.reverse();
    out
}

/// `spec.ports[0].protocl`, each key shortened if it is long.
pub fn display(segs: &[Seg]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(&short(&k.escape_debug().to_string()));
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The JSON schemas of an object type and of its metadata (routelb's CRD types leave metadata out
/// of theirs), built only when an unknown field needs a suggestion.
pub struct Schemas {
    object: Value,
    metadata: Value,
}

impl Schemas {
    /// The schemas of `T`, built once (per process) and kept: a directory may hold thousands of
    /// Services with a field k8s-openapi does not know yet.
    pub fn of<T: JsonSchema>() -> &'static Schemas {
        static BUILT: Mutex<BTreeMap<&'static str, &'static Schemas>> = Mutex::new(BTreeMap::new());
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        built.entry(std::any::type_name::<T>()).or_insert_with(|| {
            let value = |s: schemars::Schema| s.to_value();
            // One per type read from manifests (five): never freed, never many.
            Box::leak(Box::new(Schemas {
                object: value(schemars::schema_for!(T)),
                metadata: value(schemars::schema_for!(ObjectMeta)),
            }))
        })
    }

    /// The field names known where the last segment of `segs` sits.
    fn known(&self, segs: &[Seg]) -> Vec<String> {
        let Some((_, parent)) = segs.split_last() else {
            return Vec::new();
        };
        let (root, path) = match parent.first() {
            Some(Seg::Key(k)) if k == "metadata" => (&self.metadata, &parent[1..]),
            _ => (&self.object, parent),
        };
        let mut here = vec![root];
        for seg in path {
            here = here
                .into_iter()
                .flat_map(|s| alternatives(root, s))
                .filter_map(|s| match seg {
                    Seg::Key(k) => s.get("properties").and_then(|p| p.get(k)),
                    Seg::Index(_) => s.get("items"),
                })
                .collect();
        }
        let mut names: Vec<String> = here
            .into_iter()
            .flat_map(|s| alternatives(root, s))
            .filter_map(|s| s.get("properties").and_then(Value::as_object))
            .flat_map(|p| p.keys().cloned())
            .collect();
        if parent.is_empty() {
            names.extend(["apiVersion", "kind", "metadata"].map(String::from));
        }
        names.sort();
        names.dedup();
        names
    }

    /// `spec.avoidBuggyIps (did you mean avoidBuggyIPs?)`, or the path alone when no known field
    /// is close.
    pub fn describe(&self, segs: &[Seg]) -> String {
        let path = display(segs);
        let Some(Seg::Key(unknown)) = segs.last() else {
            return path;
        };
        match closest(unknown, &self.known(segs)) {
            Some(meant) => format!("{path} (did you mean {meant}?)"),
            None => path,
        }
    }
}

/// A schema and what it stands for: the target of its `$ref`, the members of its `anyOf`,
/// `oneOf` and `allOf` (an `Option<T>` is `anyOf: [T, null]`), followed a few levels deep.
fn alternatives<'a>(root: &'a Value, s: &'a Value) -> Vec<&'a Value> {
    let mut out = Vec::new();
    let mut todo = vec![(s, 0)];
    while let Some((s, depth)) = todo.pop() {
        out.push(s);
        if depth == 8 {
            continue;
        }
        if let Some(target) = s
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|p| root.pointer(p))
        {
            todo.push((target, depth + 1));
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            for member in s.get(key).and_then(Value::as_array).into_iter().flatten() {
                todo.push((member, depth + 1));
            }
        }
    }
    out
}

/// The known name closest to `unknown` by edit distance, ignoring case, if it is close: at most a
/// quarter of the name's length (and at least one) edits away.
fn closest<'a>(unknown: &str, known: &'a [String]) -> Option<&'a str> {
    if unknown.len() > 128 {
        return None;
    }
    let u = unknown.to_ascii_lowercase();
    let allowed = (unknown.chars().count() / 4).max(1);
    known
        .iter()
        .map(|k| (edit_distance(&u, &k.to_ascii_lowercase()), k))
        .filter(|(d, _)| *d <= allowed)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Edit distance over characters: insertions, deletions, substitutions and swaps of neighbours
/// (optimal string alignment), each one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: the distance between a[..i] and b[..j]; three rows are kept.
    let mut before: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j - 1] + cost).min(prev[j] + 1).min(cur[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AddressPool, RoutingPolicy};
    use k8s_openapi::api::core::v1::Service;

    fn keys(path: &str) -> Vec<Seg> {
        path.split('.')
            .map(|k| match k.parse() {
                Ok(i) => Seg::Index(i),
                Err(_) => Seg::Key(k.into()),
            })
            .collect()
    }

    #[test]
    fn suggestions_come_from_the_schema() {
        let pool = Schemas::of::<AddressPool>();
        for (path, want) in [
            (
                "spec.avoidBuggyIps",
                "spec.avoidBuggyIps (did you mean avoidBuggyIPs?)",
            ),
            ("spec.adresses", "spec.adresses (did you mean addresses?)"),
            ("spec.frobnicate", "spec.frobnicate"),
            ("metadata.lables", "metadata.lables (did you mean labels?)"),
            ("apiversion", "apiversion (did you mean apiVersion?)"),
            (
                "spec.allocation.serviceSelector.matchExpressions.0.operater",
                "spec.allocation.serviceSelector.matchExpressions[0].operater (did you mean operator?)",
            ),
        ] {
            assert_eq!(pool.describe(&keys(path)), want);
        }
        let policy = Schemas::of::<RoutingPolicy>();
        assert_eq!(
            policy.describe(&keys("spec.bgp.comunities")),
            "spec.bgp.comunities (did you mean communities?)"
        );
        let svc = Schemas::of::<Service>();
        assert_eq!(
            svc.describe(&keys("spec.ports.0.protocl")),
            "spec.ports[0].protocl (did you mean protocol?)"
        );
        assert_eq!(
            svc.describe(&keys("spec.loadBalancerClas")),
            "spec.loadBalancerClas (did you mean loadBalancerClass?)"
        );
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("lables", "labels"), 1);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(closest("x", &["y".into(), "xy".into()]), Some("y"));
        assert_eq!(closest("spec", &["status".into()]), None);
    }
}
