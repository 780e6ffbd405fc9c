//! Union-find plus the constraints checked at every union: split overrides
//! (cannot-link pairs) and type limits (at most n distinct values of a type
//! per customer).
//!
//! Type limits need, per component, the set of distinct limited keys it
//! holds. Most components are one person's few records holding the same
//! values, so a component refers to a record's own list while that list still
//! is the union, and only materialises a merged list when values differ.

use std::collections::HashMap;

use super::error::OneIdError;
use super::graph::NONE;
use super::keys::{Families, Normalized};
use super::union_find::UnionFind;

/// Marks a set reference as "the own list of this record rank" (type limits).
const OWN_OF: u32 = 1 << 31;

/// Result of one attempted link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Already one customer.
    Together,
    /// Joined.
    Merged,
    /// Refused: a split pair would end up together.
    SplitBlocked,
    /// Refused: a limited family would exceed its limit.
    LimitBlocked,
}

/// Union-find plus the constraints checked at every union: what threads linking
/// plain components of their own share ([`Constraints`]) and what each keeps
/// ([`LinkState`]).
pub(super) struct Merger {
    pub(super) shared: Constraints,
    pub(super) state: LinkState,
}

/// The union-find and the type limits: read by every linking thread, each
/// changing only the union-find's sets of its own components.
pub(super) struct Constraints {
    pub(super) uf: UnionFind,
    limits: Vec<u32>,
    /// Per record rank, its usable keys of limited families as
    /// `(limit slot << 32 | key)`, sorted (CSR).
    own_start: Vec<u32>,
    own: Vec<u64>,
}

/// What one linking thread keeps for its components: merged limited-key sets
/// (the roots' union-find tags point into them) and split pairs by root.
#[derive(Default)]
pub(super) struct LinkState {
    sets: Vec<Vec<u64>>,
    free_sets: Vec<u32>,
    scratch: Vec<u64>,
    /// Per root holding split records: the records it must never join.
    forbidden: HashMap<u32, Vec<u32>>,
}

impl Merger {
    pub(super) fn new(
        n: u32,
        families: &Families,
        normalized: &Normalized,
        pairs: &[u64],
        key_start: &[u32],
        usable: impl Fn(u32) -> bool,
    ) -> Result<Self, OneIdError> {
        let mut merger = Constraints {
            // Tag per root: where its component's limited keys are. `NONE`:
            // the root's own list; `OWN_OF | rank`: another record's own list
            // (that record already holds them all); else an index into the
            // linking thread's `LinkState::sets`.
            uf: UnionFind::with_tag(n, NONE),
            limits: families.limits.clone(),
            own_start: Vec::new(),
            own: Vec::new(),
        };
        if merger.limits.is_empty() {
            return Ok(Merger::from(merger));
        }
        if n >= OWN_OF {
            return Err(OneIdError::CapacityExceeded {
                what: "more than 2 billion records with type limits",
            });
        }
        // Limited slot of each key, from one sequential pass (255 limited
        // types at most, so a byte).
        if merger.limits.len() >= usize::from(u8::MAX) {
            return Err(OneIdError::CapacityExceeded {
                what: "more than 255 types in userql.oneid_type_limits",
            });
        }
        let key_count = normalized.keys.len() as u32;
        let slot_of_key: Vec<u8> = (0..key_count)
            .map(
                |k| match families.limit_slot[normalized.keys.tag(k) as usize] {
                    NONE => u8::MAX,
                    slot if usable(k) => slot as u8,
                    _ => u8::MAX,
                },
            )
            .collect();
        // (rank, key) of every limited holding, read sequentially from the
        // key-sorted pairs, then sorted by record.
        let mut own: Vec<u64> = Vec::new();
        for k in 0..key_count {
            if slot_of_key[k as usize] != u8::MAX {
                let range = key_start[k as usize] as usize..key_start[k as usize + 1] as usize;
                own.extend(
                    pairs[range]
                        .iter()
                        .map(|&p| ((p & 0xFFFF_FFFF) << 32) | u64::from(k)),
                );
            }
        }
        own.sort_unstable();
        let mut own_start = vec![0u32; n as usize + 1];
        for e in &mut own {
            let (rank, k) = ((*e >> 32) as usize, *e as u32);
            own_start[rank + 1] += 1;
            *e = (u64::from(slot_of_key[k as usize]) << 32) | u64::from(k);
        }
        drop(slot_of_key);
        for i in 0..n as usize {
            own_start[i + 1] += own_start[i];
        }
        // Within a record, by (slot, key) as `limits_allow` expects.
        for r in 0..n as usize {
            let (s, e) = (own_start[r] as usize, own_start[r + 1] as usize);
            if e - s > 1 {
                own[s..e].sort_unstable();
            }
        }
        merger.own = own;
        merger.own_start = own_start;
        Ok(Merger::from(merger))
    }

    /// Records that `a` and `b` (ranks) must never be in one customer.
    pub(super) fn forbid(&mut self, a: u32, b: u32) {
        self.state.forbid(a, b);
    }

    /// Joins the customers of `a` and `b` unless a constraint refuses.
    pub(super) fn try_link(&mut self, a: u32, b: u32, enforce_limits: bool) -> Outcome {
        self.state.try_link(&self.shared, a, b, enforce_limits)
    }
}

impl From<Constraints> for Merger {
    fn from(shared: Constraints) -> Self {
        Merger {
            shared,
            state: LinkState::default(),
        }
    }
}

impl Constraints {
    /// Reads the first memory a link involving record `rank` needs (its
    /// union-find node, its own key list), so a later access hits cache.
    pub(super) fn touch(&self, rank: u32) -> u64 {
        let own = self.own_start.get(rank as usize).copied().unwrap_or(0);
        u64::from(self.uf.peek_parent(rank)) ^ u64::from(own)
    }

    /// The limited keys a record holds itself.
    fn own_list(&self, rank: u32) -> &[u64] {
        let (s, e) = (
            self.own_start[rank as usize] as usize,
            self.own_start[rank as usize + 1] as usize,
        );
        &self.own[s..e]
    }

    /// Where the component rooted at `root` keeps its limited keys, as stored
    /// in its union-find tag (never `NONE`).
    fn set_ref(&self, root: u32) -> u32 {
        match self.uf.tag(root) {
            NONE => OWN_OF | root,
            r => r,
        }
    }
}

impl LinkState {
    /// Records that `a` and `b` (ranks, still unlinked) must never be in one
    /// customer.
    pub(super) fn forbid(&mut self, a: u32, b: u32) {
        self.forbidden.entry(a).or_default().push(b);
        self.forbidden.entry(b).or_default().push(a);
    }

    /// The limited keys of the component rooted at `root`.
    fn set<'a>(&'a self, shared: &'a Constraints, root: u32) -> &'a [u64] {
        match shared.set_ref(root) {
            r if r & OWN_OF != 0 => shared.own_list(r & !OWN_OF),
            i => &self.sets[i as usize],
        }
    }

    /// Returns a merged-set vector to the free list.
    fn release(&mut self, set_ref: u32) {
        if set_ref & OWN_OF == 0
            && let Some(v) = self.sets.get_mut(set_ref as usize)
        {
            v.clear();
            self.free_sets.push(set_ref);
        }
    }

    /// Joins the customers of `a` and `b` unless a constraint refuses. Every
    /// record this touches must be in components this state links alone.
    pub(super) fn try_link(
        &mut self,
        shared: &Constraints,
        a: u32,
        b: u32,
        enforce_limits: bool,
    ) -> Outcome {
        let (ra, rb) = (shared.uf.find(a), shared.uf.find(b));
        if ra == rb {
            return Outcome::Together;
        }
        if self.split_blocks(shared, ra, rb) {
            return Outcome::SplitBlocked;
        }
        if enforce_limits
            && !shared.limits.is_empty()
            && !limits_allow(self.set(shared, ra), self.set(shared, rb), &shared.limits)
        {
            return Outcome::LimitBlocked;
        }
        self.merge(shared, ra, rb);
        Outcome::Merged
    }

    /// Whether some split pair has one record under `ra` and one under `rb`.
    fn split_blocks(&mut self, shared: &Constraints, ra: u32, rb: u32) -> bool {
        if self.forbidden.is_empty() {
            return false;
        }
        let la = self.forbidden.get(&ra).map_or(0, Vec::len);
        let lb = self.forbidden.get(&rb).map_or(0, Vec::len);
        // Pairs are recorded under both roots: one empty side means no pair.
        if la == 0 || lb == 0 {
            return false;
        }
        let (from, target) = if la <= lb { (ra, rb) } else { (rb, ra) };
        self.forbidden
            .get(&from)
            .is_some_and(|list| list.iter().any(|&x| shared.uf.find(x) == target))
    }

    fn merge(&mut self, shared: &Constraints, ra: u32, rb: u32) {
        let root = shared.uf.union_roots(ra, rb);
        let other = if root == ra { rb } else { ra };
        if let Some(mut moved) = self.forbidden.remove(&other) {
            let list = self.forbidden.entry(root).or_default();
            if list.len() < moved.len() {
                std::mem::swap(list, &mut moved);
            }
            list.append(&mut moved);
        }
        if shared.limits.is_empty() {
            return;
        }
        let (root_ref, other_ref) = (shared.set_ref(root), shared.set_ref(other));
        let mut merged = std::mem::take(&mut self.scratch);
        merged.clear();
        sorted_union(self.set(shared, root), self.set(shared, other), &mut merged);
        let (root_len, other_len) = (self.set(shared, root).len(), self.set(shared, other).len());
        // Records of one person usually hold the same values: when one side
        // already holds the union, share its list instead of copying it.
        if merged.len() == root_len {
            self.release(other_ref);
        } else if merged.len() == other_len {
            self.release(root_ref);
            shared.uf.set_tag(root, other_ref);
        } else {
            let slot = if root_ref & OWN_OF == 0 {
                self.release(other_ref);
                root_ref
            } else if other_ref & OWN_OF == 0 {
                other_ref
            } else if let Some(free) = self.free_sets.pop() {
                free
            } else {
                self.sets.push(Vec::new());
                (self.sets.len() - 1) as u32
            };
            std::mem::swap(&mut self.sets[slot as usize], &mut merged);
            shared.uf.set_tag(root, slot);
        }
        merged.clear();
        self.scratch = merged;
    }
}

/// Sorted union of two sorted lists.
fn sorted_union(a: &[u64], b: &[u64], out: &mut Vec<u64>) {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
}

/// Whether merging two components with limited-key sets `a` and `b` (sorted
/// `(slot << 32 | key)`) keeps every limited family within
/// `max(limit, |a_f|, |b_f|)`.
fn limits_allow(a: &[u64], b: &[u64], limits: &[u32]) -> bool {
    let (mut i, mut j) = (0, 0);
    loop {
        let family = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y) >> 32,
            (Some(&x), None) => x >> 32,
            (None, Some(&y)) => y >> 32,
            (None, None) => return true,
        };
        let (mut ca, mut cb, mut cu) = (0u32, 0u32, 0u32);
        loop {
            let x = a.get(i).copied().filter(|x| x >> 32 == family);
            let y = b.get(j).copied().filter(|y| y >> 32 == family);
            match (x, y) {
                (Some(x), Some(y)) => {
                    cu += 1;
                    if x <= y {
                        i += 1;
                        ca += 1;
                    }
                    if y <= x {
                        j += 1;
                        cb += 1;
                    }
                }
                (Some(_), None) => {
                    i += 1;
                    ca += 1;
                    cu += 1;
                }
                (None, Some(_)) => {
                    j += 1;
                    cb += 1;
                    cu += 1;
                }
                (None, None) => break,
            }
        }
        let limit = limits.get(family as usize).copied().unwrap_or(u32::MAX);
        if cu > limit.max(ca).max(cb) {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(slot, key)` as stored in a set.
    fn e(slot: u64, key: u64) -> u64 {
        (slot << 32) | key
    }

    #[test]
    fn sorted_union_merges_and_deduplicates() {
        let mut out = Vec::new();
        sorted_union(&[1, 3, 5], &[2, 3, 6], &mut out);
        assert_eq!(out, vec![1, 2, 3, 5, 6]);
    }

    #[test]
    fn limits_count_distinct_values_per_limited_type() {
        let limits = [1, 2];
        // Same phone on both sides: still one.
        assert!(limits_allow(&[e(0, 7)], &[e(0, 7)], &limits));
        // Two phones under a limit of one: refused.
        assert!(!limits_allow(&[e(0, 7)], &[e(0, 8)], &limits));
        // Other slot under its limit of two: fine.
        assert!(limits_allow(&[e(1, 1)], &[e(1, 2)], &limits));
        assert!(!limits_allow(&[e(1, 1), e(1, 2)], &[e(1, 3)], &limits));
        // Empty side: nothing new.
        assert!(limits_allow(&[], &[e(0, 7), e(1, 1)], &limits));
        // Already over the limit (an override put it there): may gain records
        // holding nothing new, nothing more.
        assert!(limits_allow(&[e(0, 7), e(0, 8)], &[e(0, 8)], &limits));
        assert!(!limits_allow(&[e(0, 7), e(0, 8)], &[e(0, 9)], &limits));
    }
}
