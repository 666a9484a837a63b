//! Which node should serve each tenant: a pure function of the tenants,
//! where they are now and the live nodes, so every node computes the same
//! answer from the same metadata and only ever acts on its own part (it
//! releases tenants assigned elsewhere, places tenants assigned to it).
//!
//! - **Balanced**: every node gets `floor(tenants / nodes)` or one more,
//!   so no live node sits idle while another holds two more than it.
//! - **Sticky**: a tenant stays on its current live node while that node is
//!   within its share, so a node joining takes only the overflow of the
//!   others and a node leaving gives out only its own tenants.
//! - **Spread by hashing**: a tenant that must move (or was never placed)
//!   goes to the first node with room in its own rendezvous order
//!   (highest `hash(tenant, node)` first), so different tenants prefer
//!   different nodes and the order never depends on list order.

use std::collections::{BTreeMap, BTreeSet};

/// A tenant and the node serving it now, if that node is live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantAt {
    pub tenant: String,
    pub current: Option<String>,
}

/// The node each tenant should be served by. Empty when no node is live.
pub fn assign(tenants: &[TenantAt], live_nodes: &[String]) -> BTreeMap<String, String> {
    let nodes: BTreeSet<&str> = live_nodes.iter().map(String::as_str).collect();
    let mut out = BTreeMap::new();
    if nodes.is_empty() {
        return out;
    }
    let mut sorted: Vec<&TenantAt> = tenants.iter().collect();
    sorted.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    sorted.dedup_by(|a, b| a.tenant == b.tenant);
    let mut slots = Slots {
        floor: sorted.len() / nodes.len(),
        extras: sorted.len() % nodes.len(),
        load: nodes.iter().map(|n| (*n, 0)).collect(),
    };
    let mut homeless = Vec::new();
    // Stay where you are while your node has room.
    for t in &sorted {
        match t.current.as_deref() {
            Some(n) if slots.take(n) => {
                out.insert(t.tenant.clone(), n.to_string());
            }
            _ => homeless.push(*t),
        }
    }
    // Everyone else: the first node with room in the tenant's own order.
    // There is always one: the slots add up to the number of tenants.
    for t in homeless {
        let mut order: Vec<&str> = nodes.iter().copied().collect();
        order.sort_by_key(|n| std::cmp::Reverse(score(&t.tenant, n)));
        if let Some(node) = order.into_iter().find(|n| slots.take(n)) {
            out.insert(t.tenant.clone(), node.to_string());
        }
    }
    out
}

/// Room on the nodes: each holds `floor` tenants, and `extras` of them one
/// more.
struct Slots<'a> {
    floor: usize,
    extras: usize,
    load: BTreeMap<&'a str, usize>,
}

impl Slots<'_> {
    /// Takes a slot on `node`; false when it is full (or not live).
    fn take(&mut self, node: &str) -> bool {
        let Some(load) = self.load.get_mut(node) else {
            return false;
        };
        if *load < self.floor {
            *load += 1;
            true
        } else if *load == self.floor && self.extras > 0 {
            *load += 1;
            self.extras -= 1;
            true
        } else {
            false
        }
    }
}

/// Rendezvous weight of `node` for `tenant`: FNV-1a over both, with a
/// separator no name contains, finished by a 64-bit mixer.
fn score(tenant: &str, node: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tenant.bytes().chain([b'/']).chain(node.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    fn unplaced(tenants: &[String]) -> Vec<TenantAt> {
        tenants
            .iter()
            .map(|t| TenantAt {
                tenant: t.clone(),
                current: None,
            })
            .collect()
    }

    fn placed(assignment: &BTreeMap<String, String>) -> Vec<TenantAt> {
        assignment
            .iter()
            .map(|(t, n)| TenantAt {
                tenant: t.clone(),
                current: Some(n.clone()),
            })
            .collect()
    }

    fn moved(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> usize {
        a.iter().filter(|(t, n)| b.get(*t) != Some(*n)).count()
    }

    #[test]
    fn a_joining_node_takes_only_the_overflow_and_a_leaving_one_gives_only_its_own() {
        let tenants = names("tenant-", 60);
        let three = names("node-", 3);
        let before = assign(&unplaced(&tenants), &three);
        let loads: BTreeMap<&String, usize> = three
            .iter()
            .map(|n| (n, before.values().filter(|v| *v == n).count()))
            .collect();
        assert!(loads.values().all(|l| *l == 20), "{loads:?}");

        let four = names("node-", 4);
        let after = assign(&placed(&before), &four);
        assert_eq!(
            moved(&before, &after),
            15,
            "only the new node's share moves"
        );
        assert!(
            before
                .iter()
                .filter(|(t, n)| after[*t] != **n)
                .all(|(t, _)| after[t] == "node-3")
        );

        let survivors = four[1..].to_vec();
        let mut at = placed(&after);
        for t in &mut at {
            if t.current.as_deref() == Some("node-0") {
                t.current = None;
            }
        }
        let shrunk = assign(&at, &survivors);
        assert!(
            after
                .iter()
                .filter(|(_, n)| *n != "node-0")
                .all(|(t, n)| shrunk[t] == *n),
            "tenants of surviving nodes stay put"
        );
        assert!(assign(&at, &[]).is_empty());
    }

    proptest! {
        #[test]
        fn every_tenant_gets_a_live_node_and_loads_differ_by_at_most_one(
            tenants in proptest::collection::btree_set("[a-z]{1,6}", 0..80),
            nodes in proptest::collection::btree_set("[a-z]{1,4}", 1..7),
            stale in proptest::collection::vec(0usize..10, 80),
        ) {
            let tenants: Vec<String> = tenants.into_iter().collect();
            let nodes: Vec<String> = nodes.into_iter().collect();
            // Some tenants sit on live nodes, some on nodes now gone.
            let at: Vec<TenantAt> = tenants
                .iter()
                .zip(stale.iter())
                .map(|(t, s)| TenantAt {
                    tenant: t.clone(),
                    current: match s {
                        0..=5 => nodes.get(*s).cloned(),
                        _ => None,
                    },
                })
                .collect();
            let out = assign(&at, &nodes);
            prop_assert_eq!(out.len(), at.len());
            // Within one of each other: floor(T/N) or ceil(T/N) each.
            let floor = at.len() / nodes.len();
            let share = at.len().div_ceil(nodes.len());
            for n in &nodes {
                let load = out.values().filter(|v| *v == n).count();
                prop_assert!((floor..=share).contains(&load), "{} holds {}", n, load);
            }
            prop_assert!(out.values().all(|v| nodes.contains(v)));
            // The same answer whatever order the inputs come in.
            let mut reversed = at.clone();
            reversed.reverse();
            let mut nodes_reversed = nodes.clone();
            nodes_reversed.reverse();
            prop_assert_eq!(assign(&reversed, &nodes_reversed), out.clone());
            // Stable: assigning again from the result moves nothing.
            prop_assert_eq!(assign(&placed(&out), &nodes), out);
        }
    }
}
