//! Bad input loses nothing: a pool edited into something invalid keeps working from its last
//! valid definition, and a deleted pool's definition stays while Services still hold its
//! addresses (they keep them: see IPAM). Pure; the agent keeps one in memory, standalone mode
//! in its state file, so a restart during a bad edit withdraws nothing either.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;

use crate::api::AddressPool;
use crate::ipam::Pool;

/// Each pool's last definition that parsed, by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LastValidPools(pub BTreeMap<String, AddressPool>);

/// The pools to work with, and what the user should know about them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EffectivePools {
    pub pools: Vec<AddressPool>,
    pub problems: Vec<String>,
}

/// A pool as it is worth remembering: name, labels (policies select pools by them) and spec.
fn remembered(p: &AddressPool) -> AddressPool {
    let mut kept = AddressPool::new(&p.name_any(), p.spec.clone());
    kept.metadata.labels = p.metadata.labels.clone();
    kept
}

impl LastValidPools {
    /// Each pool as it is when it parses (remembered), else as it last parsed, else as it is
    /// (invalid: nothing renders from it, and IPAM reports it); and every remembered pool that
    /// no longer exists, until [`Self::forget_unused`] drops it.
    pub fn effective(&mut self, current: &[AddressPool]) -> EffectivePools {
        let mut out = EffectivePools::default();
        let mut seen = BTreeSet::new();
        for p in current {
            let name = p.name_any();
            seen.insert(name.clone());
            match Pool::from_spec(&name, &p.spec) {
                Ok(_) => {
                    self.0.insert(name, remembered(p));
                    out.pools.push(p.clone());
                }
                Err(e) => match self.0.get(&name) {
                    Some(good) => {
                        out.problems.push(format!(
                            "AddressPool {name} is invalid ({e}); its last valid definition stays in use"
                        ));
                        out.pools.push(good.clone());
                    }
                    None => {
                        out.problems.push(format!(
                            "AddressPool {name} is invalid ({e}); none of its addresses are announced"
                        ));
                        out.pools.push(p.clone());
                    }
                },
            }
        }
        for (name, good) in &self.0 {
            if !seen.contains(name) {
                out.problems.push(format!(
                    "AddressPool {name} was deleted; its addresses stay announced while Services hold them"
                ));
                out.pools.push(good.clone());
            }
        }
        out
    }

    /// Forgets remembered pools that no longer exist and that no service uses.
    pub fn forget_unused<'a>(
        &mut self,
        current: &[AddressPool],
        used: impl IntoIterator<Item = &'a str>,
    ) {
        let used: BTreeSet<&str> = used.into_iter().collect();
        let current: BTreeSet<String> = current.iter().map(|p| p.name_any()).collect();
        self.0
            .retain(|name, _| current.contains(name) || used.contains(name.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::AddressPoolSpec;

    fn pool(name: &str, addresses: &[&str]) -> AddressPool {
        let spec: AddressPoolSpec = serde_json::from_value(serde_json::json!({
            "addresses": addresses,
        }))
        .unwrap();
        let mut p = AddressPool::new(name, spec);
        p.metadata.labels = Some([("tier".to_string(), "gold".to_string())].into());
        p
    }

    fn addresses(e: &EffectivePools, name: &str) -> Vec<String> {
        e.pools
            .iter()
            .find(|p| p.name_any() == name)
            .map(|p| p.spec.addresses.clone())
            .unwrap_or_default()
    }

    #[test]
    fn a_bad_edit_keeps_the_last_valid_definition() {
        let mut memory = LastValidPools::default();
        let good = pool("web", &["203.0.113.0/28"]);
        let e = memory.effective(std::slice::from_ref(&good));
        assert!(e.problems.is_empty());
        let bad = pool("web", &["203.0.113.0/28", "203.0.113.300"]);
        let e = memory.effective(&[bad]);
        assert_eq!(addresses(&e, "web"), ["203.0.113.0/28"]);
        assert!(e.problems[0].contains("203.0.113.300"), "{:?}", e.problems);
        assert!(e.problems[0].contains("last valid definition"));
        // Labels are remembered: policies select pools by them.
        assert_eq!(e.pools[0].labels()["tier"], "gold");
        // The fix is taken at once.
        let fixed = pool("web", &["203.0.113.0/27"]);
        let e = memory.effective(&[fixed]);
        assert_eq!(addresses(&e, "web"), ["203.0.113.0/27"]);
        assert!(e.problems.is_empty());
    }

    #[test]
    fn an_invalid_pool_never_seen_valid_is_reported_as_not_announced() {
        let mut memory = LastValidPools::default();
        let e = memory.effective(&[pool("web", &["nonsense"])]);
        assert!(e.problems[0].contains("none of its addresses are announced"));
        assert!(memory.0.is_empty());
    }

    #[test]
    fn a_deleted_pool_stays_while_used() {
        let mut memory = LastValidPools::default();
        memory.effective(&[pool("old", &["198.51.100.0/29"])]);
        let e = memory.effective(&[]);
        assert_eq!(addresses(&e, "old"), ["198.51.100.0/29"]);
        memory.forget_unused(&[], ["old"]);
        assert_eq!(memory.0.len(), 1, "a service still uses it");
        memory.forget_unused(&[], []);
        assert!(memory.effective(&[]).pools.is_empty());
    }
}
