//! The best-ranked nodes of each local address, kept from pass to pass (pure: the agent owns
//! one and hands it to every election, as it does its last-valid memory). Ranking an address
//! costs a SHA-256 per node on its subnet: 5,000 nodes on one subnet and 50,000 addresses make
//! 250 million per pass. Kept, an address costs nothing while its subnet's nodes stay; a node
//! joining costs one hash per address it could hold, a node leaving nothing unless it was among
//! an address's best (then, rarely, one ranking of that address).

use std::cmp::Reverse;
use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{Member, rank};

/// How many best-ranked nodes are kept per address: enough that the nodes ahead of the holder
/// can leave without a new ranking.
const KEPT: usize = 4;

/// Nodes in rank order for one address: highest rank first, ties to the smallest name, as
/// [`super::ranked`] orders them.
pub type Key = (Reverse<u64>, String);

#[derive(Clone, Debug, Default)]
struct Best {
    /// The first nodes of the address's able nodes in rank order, exactly.
    first: Vec<Key>,
    /// Whether `first` holds every able node.
    complete: bool,
}

/// The best-ranked able nodes per local address, and the members they were ranked over.
#[derive(Clone, Debug, Default)]
pub struct Ranks {
    /// The subnets of each member at the last update.
    subnets: HashMap<String, Vec<IpNet>>,
    best: HashMap<IpAddr, Best>,
}

impl Ranks {
    /// Brings the kept ranks up to `members` (the live members the next election sees):
    /// for each node that joined, left or changed subnets, the addresses it could or could no
    /// longer hold.
    pub fn update(&mut self, members: &[Member]) {
        let now: HashMap<String, Vec<IpNet>> = members
            .iter()
            .map(|m| (m.node.clone(), m.subnets.iter().map(|(_, s)| *s).collect()))
            .collect();
        let none = Vec::new();
        let changed: Vec<(&String, &Vec<IpNet>, &Vec<IpNet>)> = now
            .iter()
            .map(|(n, s)| (n, self.subnets.get(n).unwrap_or(&none), s))
            .chain(
                self.subnets
                    .iter()
                    .filter(|(n, _)| !now.contains_key(*n))
                    .map(|(n, s)| (n, s, &none)),
            )
            .filter(|(_, before, after)| before != after)
            .collect();
        for (node, before, after) in changed {
            let within = |subnets: &[IpNet], a: &IpAddr| subnets.iter().any(|s| s.contains(a));
            self.best.retain(|address, best| {
                let (was, is) = (within(before, address), within(after, address));
                if was && !is {
                    best.first.retain(|(_, n)| n != node);
                    // Nobody known left to hold it: rank again when asked.
                    !best.first.is_empty() || best.complete
                } else {
                    if is && !was {
                        best.insert((Reverse(rank(node, &address.to_string())), node.clone()));
                    }
                    true
                }
            });
        }
        self.subnets = now;
    }

    /// The able nodes of `address` (its subnets' members: `able`) in rank order, as far as
    /// kept, or all of them: `(nodes, complete)`. Ranks them when not kept yet.
    pub fn best<'a>(
        &mut self,
        address: IpAddr,
        able: impl FnOnce() -> Vec<&'a Member>,
    ) -> (&[Key], bool) {
        let best = self.best.entry(address).or_insert_with(|| {
            let subject = address.to_string();
            let mut all: Vec<Key> = able()
                .into_iter()
                .map(|m| (Reverse(rank(&m.node, &subject)), m.node.clone()))
                .collect();
            all.sort();
            let complete = all.len() <= KEPT;
            all.truncate(KEPT);
            Best {
                first: all,
                complete,
            }
        });
        (&best.first, best.complete)
    }

    /// Forgets the addresses not in `keep` (Services gone).
    pub fn keep_only(&mut self, keep: &std::collections::HashSet<IpAddr>) {
        self.best.retain(|a, _| keep.contains(a));
    }
}

impl Best {
    /// A node that became able: in place if it ranks among the kept, or if all are kept.
    fn insert(&mut self, key: Key) {
        let at = self.first.partition_point(|k| *k < key);
        if at < self.first.len() || self.complete {
            self.first.insert(at, key);
            if self.first.len() > KEPT {
                self.first.truncate(KEPT);
                self.complete = false;
            }
        }
    }
}
