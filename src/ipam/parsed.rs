//! The last parse of each pool, by name ([`super::Pool::from_spec`]). Parsing is pure, so
//! answering from here changes nothing but the time: the answer is given again only for a
//! spec equal to the one it was parsed from.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Pool, PoolError};
use crate::api::AddressPoolSpec;

type Parsed = Result<Pool, PoolError>;

/// Pools remembered at most; past that the memory starts afresh (names of deleted pools
/// would otherwise stay forever).
const REMEMBERED_POOLS: usize = 4096;

static LAST: Mutex<Option<HashMap<String, (AddressPoolSpec, Parsed)>>> = Mutex::new(None);

/// The parse of `spec` for pool `name`: the remembered one when the spec is the same, else
/// `parse`'s, remembered.
pub(super) fn remembered(
    name: &str,
    spec: &AddressPoolSpec,
    parse: impl FnOnce() -> Parsed,
) -> Parsed {
    {
        let last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, parsed)) = last.as_ref().and_then(|m| m.get(name))
            && seen == spec
        {
            return parsed.clone();
        }
    }
    // Parsed without the lock: other threads' pools need not wait.
    let parsed = parse();
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let map = last.get_or_insert_with(HashMap::new);
    if map.len() >= REMEMBERED_POOLS && !map.contains_key(name) {
        map.clear();
    }
    map.insert(name.to_string(), (spec.clone(), parsed.clone()));
    parsed
}

#[cfg(test)]
mod tests {
    use super::super::Pool;
    use crate::api::AddressPoolSpec;

    fn spec(addresses: &[&str]) -> AddressPoolSpec {
        serde_json::from_value(serde_json::json!({ "addresses": addresses })).unwrap()
    }

    /// A pool's spec changing under the same name is parsed anew each time, whatever was
    /// remembered: the answer is always the parse of the spec given.
    #[test]
    fn an_answer_is_the_parse_of_the_spec_given() {
        let name = "parsed-memory-test";
        let specs = [
            spec(&["192.0.2.0/30"]),
            spec(&["192.0.2.0/29"]),
            spec(&["not an address"]),
            spec(&["192.0.2.0/30"]),
            spec(&["192.0.2.0/29"]),
        ];
        for s in specs.iter().chain(specs.iter().rev()) {
            let remembered = Pool::from_spec(name, s).map(|p| p.ranges);
            let fresh = Pool::parse_spec(name, s).map(|p| p.ranges);
            assert_eq!(format!("{remembered:?}"), format!("{fresh:?}"));
        }
    }
}
