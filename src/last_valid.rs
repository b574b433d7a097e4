//! Bad input loses nothing: a pool or policy edited into something invalid keeps working from
//! its last valid definition, and a deleted pool's definition stays while Services still hold
//! its addresses (they keep them: see IPAM). Pure; the agent keeps these in memory, standalone
//! mode in its state file, so a restart during a bad edit withdraws nothing either.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use kube::core::Selector;

use crate::api::{AddressPool, RoutingPolicy};
use crate::ipam::Pool;

/// An object with a validity check, whose last valid definition is worth remembering.
pub trait Checked: ResourceExt + Clone {
    const KIND: &'static str;
    /// Why the object cannot be used, if it cannot.
    fn check(&self) -> Result<(), String>;
    /// The object as worth remembering: name, labels (policies select pools, and nodes, by
    /// them) and spec; no status or bookkeeping.
    fn remembered(&self) -> Self;
    /// What [`Checked::remembered`] keeps besides name and labels.
    type Spec: PartialEq;
    fn spec(&self) -> &Self::Spec;
    /// Whether `kept` remembers this very definition (labels and spec): nothing to copy.
    fn remembered_as(&self, kept: &Self) -> bool {
        self.spec() == kept.spec() && self.labels() == kept.labels()
    }
}

impl Checked for AddressPool {
    const KIND: &'static str = "AddressPool";

    fn check(&self) -> Result<(), String> {
        Pool::from_spec(&self.name_any(), &self.spec)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn remembered(&self) -> Self {
        let mut kept = AddressPool::new(&self.name_any(), self.spec.clone());
        kept.metadata.labels = self.metadata.labels.clone();
        kept
    }

    type Spec = crate::api::AddressPoolSpec;
    fn spec(&self) -> &Self::Spec {
        &self.spec
    }
}

impl Checked for RoutingPolicy {
    const KIND: &'static str = "RoutingPolicy";

    fn check(&self) -> Result<(), String> {
        let mut problems = crate::api::values::validate_policy(&self.spec)
            .err()
            .unwrap_or_default();
        for (what, sel) in [
            ("spec.poolSelector", &self.spec.pool_selector),
            ("spec.nodeSelector", &self.spec.node_selector),
        ] {
            if let Some(Err(e)) = sel.clone().map(Selector::try_from) {
                problems.push(format!("{what}: {e}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    fn remembered(&self) -> Self {
        let mut kept = RoutingPolicy::new(&self.name_any(), self.spec.clone());
        kept.metadata.labels = self.metadata.labels.clone();
        kept
    }

    type Spec = crate::api::RoutingPolicySpec;
    fn spec(&self) -> &Self::Spec {
        &self.spec
    }
}

/// Each object's last definition that passed its check, by name.
#[derive(Clone, Debug, PartialEq)]
pub struct LastValid<K>(pub BTreeMap<String, K>);

impl<K> Default for LastValid<K> {
    fn default() -> Self {
        LastValid(BTreeMap::new())
    }
}

pub type LastValidPools = LastValid<AddressPool>;
pub type LastValidPolicies = LastValid<RoutingPolicy>;

/// The objects to work with, and what the user should know about them.
#[derive(Clone, Debug, PartialEq)]
pub struct Effective<K> {
    pub objects: Vec<K>,
    pub problems: Vec<String>,
}

impl<K: Checked> LastValid<K> {
    /// Each object as it is when it passes its check (and remembered), else as it last passed.
    /// One that never passed is left out and reported: nothing is built from a definition that
    /// was refused (a pool's refused aggregate must not reach an interface).
    pub fn effective(&mut self, current: &[K]) -> Effective<K> {
        let mut out = Effective {
            objects: Vec::new(),
            problems: Vec::new(),
        };
        for o in current {
            let name = o.name_any();
            let kind = K::KIND;
            match o.check() {
                Ok(()) => {
                    // A pool of thousands of addresses costs a copy each pass otherwise.
                    if !self.0.get(&name).is_some_and(|kept| o.remembered_as(kept)) {
                        self.0.insert(name, o.remembered());
                    }
                    out.objects.push(o.clone());
                }
                Err(e) => match self.0.get(&name) {
                    Some(good) => {
                        out.problems.push(format!(
                            "{kind} {name} is invalid ({e}); its last valid definition stays in use"
                        ));
                        out.objects.push(good.clone());
                    }
                    None => out.problems.push(format!(
                        "{kind} {name} is invalid ({e}); nothing is announced from it until it is fixed"
                    )),
                },
            }
        }
        out
    }

    /// Forgets remembered objects that no longer exist, except those named in `keep`.
    pub fn forget_deleted<'a>(&mut self, current: &[K], keep: impl IntoIterator<Item = &'a str>) {
        let keep: BTreeSet<&str> = keep.into_iter().collect();
        let current: BTreeSet<String> = current.iter().map(|o| o.name_any()).collect();
        self.0
            .retain(|name, _| current.contains(name) || keep.contains(name.as_str()));
    }
}

impl LastValidPools {
    /// [`LastValid::effective`], plus every remembered pool that no longer exists: Services
    /// keep the addresses of a deleted pool, so its definition stays in use until
    /// [`LastValid::forget_deleted`] drops it (once no Service uses it).
    pub fn with_deleted(&mut self, current: &[AddressPool]) -> Effective<AddressPool> {
        let mut out = self.effective(current);
        let names: BTreeSet<String> = current.iter().map(|p| p.name_any()).collect();
        for (name, good) in &self.0 {
            if !names.contains(name) {
                out.problems.push(format!(
                    "AddressPool {name} was deleted; its addresses stay announced while Services hold them"
                ));
                out.objects.push(good.clone());
            }
        }
        out
    }
}

/// Pools and policies as both the agent and standalone mode keep them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Memory {
    pub pools: LastValidPools,
    pub policies: LastValidPolicies,
}

/// What to work with now, and what the user should know about it.
#[derive(Clone, Debug, PartialEq)]
pub struct InUse {
    /// Each pool as it is or as it was last valid, and deleted pools still remembered.
    pub pools: Vec<AddressPool>,
    /// Each policy as it is or as it was last valid; a deleted policy is forgotten at once
    /// (deleting one is a deliberate withdrawal).
    pub policies: Vec<RoutingPolicy>,
    pub problems: Vec<String>,
}

impl Memory {
    pub fn in_use(&mut self, pools: &[AddressPool], policies: &[RoutingPolicy]) -> InUse {
        let pools = self.pools.with_deleted(pools);
        self.policies.forget_deleted(policies, []);
        let policies = self.policies.effective(policies);
        let mut problems = pools.problems;
        problems.extend(policies.problems);
        InUse {
            pools: pools.objects,
            policies: policies.objects,
            problems,
        }
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

    fn addresses(e: &Effective<AddressPool>, name: &str) -> Vec<String> {
        e.objects
            .iter()
            .find(|p| p.name_any() == name)
            .map(|p| p.spec.addresses.clone())
            .unwrap_or_default()
    }

    #[test]
    fn a_bad_edit_keeps_the_last_valid_definition() {
        let mut memory = LastValidPools::default();
        let good = pool("web", &["203.0.113.0/28"]);
        let e = memory.with_deleted(std::slice::from_ref(&good));
        assert!(e.problems.is_empty());
        let bad = pool("web", &["203.0.113.0/28", "203.0.113.300"]);
        let e = memory.with_deleted(&[bad]);
        assert_eq!(addresses(&e, "web"), ["203.0.113.0/28"]);
        assert!(e.problems[0].contains("203.0.113.300"), "{:?}", e.problems);
        assert!(e.problems[0].contains("last valid definition"));
        // Labels are remembered: policies select pools by them.
        assert_eq!(e.objects[0].labels()["tier"], "gold");
        // The fix is taken at once.
        let fixed = pool("web", &["203.0.113.0/27"]);
        let e = memory.with_deleted(&[fixed]);
        assert_eq!(addresses(&e, "web"), ["203.0.113.0/27"]);
        assert!(e.problems.is_empty());
    }

    #[test]
    fn an_invalid_pool_never_seen_valid_is_reported_as_not_announced() {
        let mut memory = LastValidPools::default();
        let e = memory.with_deleted(&[pool("web", &["nonsense"])]);
        assert!(e.problems[0].contains("nothing is announced from it"));
        assert!(e.objects.is_empty(), "a refused definition is never used");
        assert!(memory.0.is_empty());
    }

    #[test]
    fn a_bad_policy_edit_keeps_the_last_valid_policy() {
        let policy = |communities: usize| {
            let c: Vec<String> = (0..communities).map(|i| format!("64512:{i}")).collect();
            RoutingPolicy::new(
                "upstream",
                serde_json::from_value(serde_json::json!({
                    "protocols": ["bgp"], "bgp": { "communities": c },
                }))
                .unwrap(),
            )
        };
        let mut memory = LastValidPolicies::default();
        assert!(memory.effective(&[policy(3)]).problems.is_empty());
        let e = memory.effective(&[policy(65)]);
        assert_eq!(e.objects[0].spec.bgp.as_ref().unwrap().communities.len(), 3);
        assert!(e.problems[0].contains("at most 64"), "{:?}", e.problems);
        // A deleted policy is a deliberate withdrawal: forgotten at once.
        memory.forget_deleted(&[], []);
        assert!(memory.effective(&[]).objects.is_empty());
    }

    #[test]
    fn a_deleted_pool_stays_while_used() {
        let mut memory = LastValidPools::default();
        memory.with_deleted(&[pool("old", &["198.51.100.0/29"])]);
        let e = memory.with_deleted(&[]);
        assert_eq!(addresses(&e, "old"), ["198.51.100.0/29"]);
        memory.forget_deleted(&[], ["old"]);
        assert_eq!(memory.0.len(), 1, "a service still uses it");
        memory.forget_deleted(&[], []);
        assert!(memory.with_deleted(&[]).objects.is_empty());
    }
}
