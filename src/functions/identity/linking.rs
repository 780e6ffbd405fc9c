//! The link phase: link overrides, then each key's holders joined in link order,
//! under split overrides and type limits — on one thread, or by plain component on
//! several.
//!
//! # Why several threads give the same customers
//! Whether a join goes ahead depends only on the two customers it would join: the
//! split pairs inside them and the limited keys they hold. A customer never grows
//! beyond the *plain component* of its records — the connected component of the
//! graph with an edge for every usable key between its holders and for every link
//! override — since every join follows one of those edges. So the joins inside one
//! plain component never look at or change anything of another: applying, for each
//! plain component, its own overrides and steps in the global order gives the same
//! union-find, node for node, as applying all of them in the global order, whichever
//! way the components are shared out and however the threads interleave. (A split
//! pair whose records lie in different plain components can never block anything and
//! is dropped.)
//!
//! The plain components come from a lock-free union-find over the same edges (its
//! sets are the components; how its trees look depends on timing, and nothing else
//! reads them). Each component goes to a thread by a hash of its smallest record;
//! each thread applies its components' overrides and then their steps, in order,
//! with a [`LinkState`] of its own on the one shared [`Constraints`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};

use super::merger::{Constraints, LinkState, Outcome};

/// How many distinct anchors a key keeps; bounds the work per holder when
/// splits and limits fragment a widely shared key.
pub(super) const MAX_ANCHORS: usize = 64;

/// How many link steps ahead the link loop touches memory (see there).
pub(super) const LINK_LOOKAHEAD: usize = 8;

/// One key to link: its place in link order and its holders.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct LinkStep {
    /// Family rank (high half) and first holder's rank (low half).
    pub(super) order: u64,
    pub(super) key: u32,
    /// Holders are `pairs[start..start + len]`.
    pub(super) start: u32,
    pub(super) len: u32,
    /// Neither junk nor shared too widely.
    pub(super) usable: bool,
}

impl LinkStep {
    /// The step's holders, as `(key << 32 | rank)` pairs.
    #[inline]
    pub(super) fn holders<'p>(&self, pairs: &'p [u64]) -> &'p [u64] {
        &pairs[self.start as usize..(self.start + self.len) as usize]
    }
}

/// What became of one holder of a key.
pub(super) struct Joined {
    /// The holder's rank.
    pub(super) holder: u32,
    /// The anchor it joined, if any.
    pub(super) anchor: Option<u32>,
    /// Why an anchor refused it (the first refusal), if one did.
    pub(super) refused: Option<Outcome>,
}

/// Joins each other holder of one usable key to the first anchor of that key it
/// can join: the first holder, or an earlier holder that could not join any
/// anchor (at most [`MAX_ANCHORS`]). `report` hears of every holder but the first.
pub(super) fn join_holders(
    shared: &Constraints,
    state: &mut LinkState,
    holders: &[u64],
    anchors: &mut Vec<u32>,
    mut report: impl FnMut(Joined),
) {
    anchors.clear();
    anchors.push(holders[0] as u32);
    for &h in &holders[1..] {
        let h = h as u32;
        let mut joined = None;
        let mut refused = None;
        for &a in anchors.iter() {
            match state.try_link(shared, a, h, true) {
                Outcome::Together | Outcome::Merged => {
                    joined = Some(a);
                    break;
                }
                blocked => {
                    refused.get_or_insert(blocked);
                }
            }
        }
        if joined.is_none() && anchors.len() < MAX_ANCHORS {
            anchors.push(h);
        }
        report(Joined {
            holder: h,
            anchor: joined,
            refused,
        });
    }
}

/// Touches what the steps a little ahead will need — the holders of the step
/// [`LINK_LOOKAHEAD`] ahead (`far`), the union-find nodes and key lists of the first
/// holders of the one half as far (`near`): linking is a chain of dependent cache
/// misses, and touching ahead lets them overlap.
#[inline]
pub(super) fn touch_ahead(
    far: Option<&LinkStep>,
    near: Option<&LinkStep>,
    pairs: &[u64],
    shared: &Constraints,
) -> u64 {
    let mut touched = 0;
    if let Some(far) = far {
        touched ^= pairs[far.start as usize];
    }
    if let Some(near) = near.filter(|near| near.usable) {
        for &h in near.holders(pairs).iter().take(2) {
            touched ^= shared.touch(h as u32);
        }
    }
    touched
}

/// Applies `links` (override pairs of ranks, in order), then every usable step in
/// order, on `threads` threads by plain component (see the module docs): the same
/// union-find in `shared` as [`LinkState::try_link`] on one thread in that order,
/// with `splits` (pairs of ranks) forbidden.
pub(super) fn link_by_component(
    shared: &Constraints,
    links: &[(u32, u32)],
    splits: &[(u32, u32)],
    steps: &[LinkStep],
    pairs: &[u64],
    threads: usize,
) {
    let n = shared.uf.len();
    let plain = PlainComponents::new(n);
    let share = steps.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for part in steps.chunks(share) {
            let plain = &plain;
            scope.spawn(move || {
                for step in part.iter().filter(|s| s.usable) {
                    let hs = step.holders(pairs);
                    for &h in &hs[1..] {
                        plain.union(hs[0] as u32, h as u32);
                    }
                }
            });
        }
        for &(a, b) in links {
            plain.union(a, b);
        }
    });
    let owner = |rank: u32| plain.owner(rank, threads);
    // The thread of each step, each link override and each split pair inside one
    // plain component (the others can never block anything).
    let mut step_owner = vec![0u8; steps.len()];
    std::thread::scope(|scope| {
        for (part, out) in steps.chunks(share).zip(step_owner.chunks_mut(share)) {
            let owner = &owner;
            scope.spawn(move || {
                for (step, slot) in part.iter().zip(out) {
                    *slot = owner(step.holders(pairs)[0] as u32);
                }
            });
        }
    });
    let link_owner: Vec<u8> = links.iter().map(|&(a, _)| owner(a)).collect();
    let split_owner: Vec<Option<u8>> = splits
        .iter()
        .map(|&(a, b)| (plain.find(a) == plain.find(b)).then(|| owner(a)))
        .collect();
    drop(plain);
    std::thread::scope(|scope| {
        for t in 0..threads as u8 {
            let (step_owner, link_owner, split_owner) = (&step_owner, &link_owner, &split_owner);
            scope.spawn(move || {
                let mut state = LinkState::default();
                for (&(a, b), _) in splits
                    .iter()
                    .zip(split_owner)
                    .filter(|(_, o)| **o == Some(t))
                {
                    state.forbid(a, b);
                }
                for (&(a, b), _) in links.iter().zip(link_owner).filter(|(_, o)| **o == t) {
                    state.try_link(shared, a, b, false);
                }
                // This thread's steps in order, with the next few kept in a window
                // for touching ahead.
                let mut mine = steps
                    .iter()
                    .zip(step_owner)
                    .filter(move |&(step, &o)| o == t && step.usable)
                    .map(|(step, _)| step);
                let mut window: VecDeque<&LinkStep> =
                    mine.by_ref().take(LINK_LOOKAHEAD + 1).collect();
                let mut anchors = Vec::with_capacity(MAX_ANCHORS);
                let mut touched = 0u64;
                while let Some(step) = window.pop_front() {
                    touched ^= touch_ahead(
                        window.get(LINK_LOOKAHEAD - 1).copied(),
                        window.get(LINK_LOOKAHEAD / 2 - 1).copied(),
                        pairs,
                        shared,
                    );
                    join_holders(
                        shared,
                        &mut state,
                        step.holders(pairs),
                        &mut anchors,
                        |_| {},
                    );
                    window.extend(mine.next());
                }
                std::hint::black_box(touched);
            });
        }
    });
}

/// Connected components by a lock-free union-find: a root is only ever linked
/// below a smaller root (by compare-and-swap, retried when another thread got
/// there first), so every parent is smaller than its child and each component's
/// root is its smallest element.
struct PlainComponents {
    parent: Vec<AtomicU32>,
}

impl PlainComponents {
    fn new(n: usize) -> Self {
        PlainComponents {
            parent: (0..n as u32).map(AtomicU32::new).collect(),
        }
    }

    /// The root of `x`, halving the path (each write stores an ancestor, which is
    /// still an ancestor whatever other threads do meanwhile).
    fn find(&self, mut x: u32) -> u32 {
        loop {
            let p = self.parent[x as usize].load(Ordering::Relaxed);
            if p == x {
                return x;
            }
            let gp = self.parent[p as usize].load(Ordering::Relaxed);
            if gp != p {
                self.parent[x as usize].store(gp, Ordering::Relaxed);
            }
            x = gp;
        }
    }

    fn union(&self, a: u32, b: u32) {
        let (mut a, mut b) = (a, b);
        loop {
            let (ra, rb) = (self.find(a), self.find(b));
            if ra == rb {
                return;
            }
            let (low, high) = (ra.min(rb), ra.max(rb));
            if self.parent[high as usize]
                .compare_exchange(high, low, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
            (a, b) = (ra, rb);
        }
    }

    /// The thread, of `threads`, that links `rank`'s component: by a hash of the
    /// component's smallest record.
    fn owner(&self, rank: u32, threads: usize) -> u8 {
        let root = self.find(rank);
        let hash = u64::from(root).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        ((hash * threads as u64) >> 32) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_components_on_several_threads() {
        let n = 60_000u32;
        let plain = PlainComponents::new(n as usize);
        // Edges x + 13 — x, except across 30,000: the components are the
        // residue classes mod 13 below 30,000 and from there on.
        let edges: Vec<(u32, u32)> = (0..n)
            .filter_map(|x| {
                let y = x + 13;
                (y < n && (x < 30_000) == (y < 30_000)).then_some((y, x))
            })
            .collect();
        std::thread::scope(|scope| {
            for part in edges.chunks(edges.len() / 4 + 1) {
                let plain = &plain;
                scope.spawn(move || {
                    for &(a, b) in part {
                        plain.union(a, b);
                    }
                });
            }
        });
        for x in 0..n {
            let root = plain.find(x);
            let expected = if x < 30_000 {
                x % 13
            } else {
                30_000 + (x - 30_000) % 13
            };
            assert_eq!(root, expected, "{x}");
            assert!(plain.owner(x, 5) < 5);
        }
    }
}
