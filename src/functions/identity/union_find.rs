//! Disjoint sets over dense `u32` ids: the connected-components core of OneID.
//!
//! Three `u32`s per element (12 bytes) instead of `usize`s: at tens of
//! millions of records the difference is hundreds of megabytes. The parent,
//! the set size and a caller's tag share one node, so the random access that
//! finds a root also brings its size and tag into cache.
//!
//! The fields are relaxed atomics (plain loads and stores on the machines we run
//! on), so that threads can share one structure, each linking sets of its own: the
//! link phase runs plain components on several threads (see
//! [`linking`](super::linking)). Used that way, no two threads ever touch the same
//! set; the atomics make an overlap a wrong answer rather than undefined behaviour.

use std::sync::atomic::{AtomicU32, Ordering};

/// One element: its parent, the size of its set (meaningful at roots) and a
/// free `u32` the caller keeps per root.
#[derive(Debug)]
struct Node {
    parent: AtomicU32,
    size: AtomicU32,
    tag: AtomicU32,
}

impl Node {
    fn new(parent: u32, size: u32, tag: u32) -> Self {
        Node {
            parent: AtomicU32::new(parent),
            size: AtomicU32::new(size),
            tag: AtomicU32::new(tag),
        }
    }

    #[inline]
    fn parent(&self) -> u32 {
        self.parent.load(Ordering::Relaxed)
    }

    #[inline]
    fn size(&self) -> u32 {
        self.size.load(Ordering::Relaxed)
    }
}

/// Union-find with union by size and path halving (near-constant amortised
/// cost per operation, no recursion), with a `u32` tag per root.
#[derive(Debug)]
pub struct UnionFind {
    nodes: Vec<Node>,
}

impl Clone for UnionFind {
    fn clone(&self) -> Self {
        UnionFind {
            nodes: self
                .nodes
                .iter()
                .map(|n| Node::new(n.parent(), n.size(), n.tag.load(Ordering::Relaxed)))
                .collect(),
        }
    }
}

impl UnionFind {
    /// `n` singleton sets `0..n`, tags 0.
    pub fn new(n: u32) -> Self {
        UnionFind::with_tag(n, 0)
    }

    /// `n` singleton sets `0..n`, every tag `tag`.
    pub fn with_tag(n: u32, tag: u32) -> Self {
        UnionFind {
            nodes: (0..n).map(|i| Node::new(i, 1, tag)).collect(),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The representative of `x`'s set, halving the path on the way. `x` must be
    /// `< len()`. Threads may call this at once on sets no other thread changes.
    #[inline]
    pub fn find(&self, mut x: u32) -> u32 {
        loop {
            let p = self.nodes[x as usize].parent();
            if p == x {
                return x;
            }
            let gp = self.nodes[p as usize].parent();
            self.nodes[x as usize].parent.store(gp, Ordering::Relaxed);
            x = gp;
        }
    }

    /// The parent of `x` without path compression (0 if out of range): a
    /// cheap read that pulls `x`'s node into cache ahead of a `find`.
    #[inline]
    pub fn peek_parent(&self, x: u32) -> u32 {
        self.nodes.get(x as usize).map_or(0, Node::parent)
    }

    /// The tag of `root` (what the caller last set there).
    #[inline]
    pub fn tag(&self, root: u32) -> u32 {
        self.nodes[root as usize].tag.load(Ordering::Relaxed)
    }

    /// Sets the tag of `root`.
    #[inline]
    pub fn set_tag(&self, root: u32, tag: u32) {
        self.nodes[root as usize].tag.store(tag, Ordering::Relaxed);
    }

    /// Merges the sets whose representatives are `ra` and `rb` (both roots,
    /// distinct) and returns the new representative: the root of the larger
    /// set, keeping trees shallow; on equal sizes the smaller id, so the
    /// result is a function of the sequence of unions alone.
    #[inline]
    pub fn union_roots(&self, ra: u32, rb: u32) -> u32 {
        let (sa, sb) = (
            self.nodes[ra as usize].size(),
            self.nodes[rb as usize].size(),
        );
        let (big, small) = if sa > sb || (sa == sb && ra < rb) {
            (ra, rb)
        } else {
            (rb, ra)
        };
        self.nodes[small as usize]
            .parent
            .store(big, Ordering::Relaxed);
        self.nodes[big as usize]
            .size
            .store(sa + sb, Ordering::Relaxed);
        big
    }

    /// Size of the set whose representative is `root`.
    pub fn root_size(&self, root: u32) -> u32 {
        self.nodes.get(root as usize).map_or(0, Node::size)
    }

    /// The representative of `x`'s set, without compressing the path (a read
    /// only). `x` must be `< len()`.
    #[inline]
    pub fn root(&self, mut x: u32) -> u32 {
        loop {
            let p = self.nodes[x as usize].parent();
            if p == x {
                return x;
            }
            x = p;
        }
    }

    /// The sets numbered in order of their smallest element: the number of each
    /// element's set, and per set its smallest element and its size. On `threads`
    /// threads; the same numbers at any count.
    pub fn numbered_sets(&self, threads: usize) -> NumberedSets {
        let n = self.nodes.len();
        if threads <= 1 || n < 2 {
            return self.numbered_sets_here();
        }
        let share = n.div_ceil(threads);
        let ranges: Vec<std::ops::Range<usize>> = (0..n)
            .step_by(share)
            .map(|start| start..(start + share).min(n))
            .collect();
        let this = self;
        // Each element's root, and each root's smallest element.
        let mut set_of = vec![0u32; n];
        let least: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(u32::MAX)).collect();
        std::thread::scope(|scope| {
            for (range, out) in ranges.iter().zip(set_of.chunks_mut(share)) {
                let least = &least;
                scope.spawn(move || {
                    for (x, slot) in range.clone().zip(out) {
                        let root = this.root(x as u32);
                        *slot = root;
                        least[root as usize].fetch_min(x as u32, Ordering::Relaxed);
                    }
                });
            }
        });
        let is_first = |x: usize| least[set_of[x] as usize].load(Ordering::Relaxed) == x as u32;
        // Sets per range, so that each range numbers its own from where the
        // ranges before it end.
        let counts: Vec<usize> = std::thread::scope(|scope| {
            let counting: Vec<_> = ranges
                .iter()
                .map(|range| {
                    let is_first = &is_first;
                    scope.spawn(move || range.clone().filter(|&x| is_first(x)).count())
                })
                .collect();
            counting
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let sets: usize = counts.iter().sum();
        let mut first = vec![0u32; sets];
        let mut size = vec![0u32; sets];
        std::thread::scope(|scope| {
            let (mut first_rest, mut size_rest) = (&mut first[..], &mut size[..]);
            for (range, &count) in ranges.iter().zip(&counts) {
                let (firsts, after) = std::mem::take(&mut first_rest).split_at_mut(count);
                first_rest = after;
                let (sizes, after) = std::mem::take(&mut size_rest).split_at_mut(count);
                size_rest = after;
                let is_first = &is_first;
                let set_of = &set_of;
                scope.spawn(move || {
                    for (at, x) in range.clone().filter(|&x| is_first(x)).enumerate() {
                        firsts[at] = x as u32;
                        sizes[at] = this.root_size(set_of[x]);
                    }
                });
            }
        });
        // Roots now name their set's number, then every element takes its root's.
        for (number, &x) in first.iter().enumerate() {
            least[set_of[x as usize] as usize].store(number as u32, Ordering::Relaxed);
        }
        std::thread::scope(|scope| {
            for out in set_of.chunks_mut(share) {
                let least = &least;
                scope.spawn(move || {
                    for slot in out {
                        *slot = least[*slot as usize].load(Ordering::Relaxed);
                    }
                });
            }
        });
        NumberedSets {
            set_of,
            first,
            size,
        }
    }

    /// [`UnionFind::numbered_sets`] on this thread: one pass in element order
    /// (each root's slot holds its set's number as soon as any member is seen).
    fn numbered_sets_here(&self) -> NumberedSets {
        let n = self.nodes.len();
        let mut set_of = vec![u32::MAX; n];
        let (mut first, mut size) = (Vec::new(), Vec::new());
        for x in 0..n {
            let root = self.find(x as u32) as usize;
            let number = match set_of[root] {
                u32::MAX => {
                    first.push(x as u32);
                    size.push(self.root_size(root as u32));
                    (first.len() - 1) as u32
                }
                number => number,
            };
            set_of[x] = number;
            set_of[root] = number;
        }
        NumberedSets {
            set_of,
            first,
            size,
        }
    }
}

/// What [`UnionFind::numbered_sets`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberedSets {
    /// The number of each element's set.
    pub set_of: Vec<u32>,
    /// The smallest element of each set.
    pub first: Vec<u32>,
    /// The size of each set.
    pub size: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unions_and_finds() {
        let uf = UnionFind::new(6);
        let r = uf.union_roots(0, 1);
        let r2 = uf.find(2);
        let r = uf.union_roots(r, r2);
        assert_eq!(uf.root_size(r), 3);
        assert_eq!(uf.find(0), uf.find(2));
        assert_ne!(uf.find(0), uf.find(3));
        let (a, b) = (uf.find(4), uf.find(5));
        uf.union_roots(a, b);
        assert_eq!(uf.find(4), uf.find(5));
        assert_eq!(uf.len(), 6);
        let root = uf.find(4);
        uf.set_tag(root, 9);
        let root5 = uf.find(5);
        assert_eq!(uf.tag(root5), 9);
        assert_eq!(UnionFind::with_tag(2, 7).tag(1), 7);
    }

    #[test]
    fn sets_are_numbered_alike_on_any_thread_count() {
        let n = 100_000u32;
        let uf = UnionFind::new(n);
        // Sets of every element with the same residue mod 7919 (scrambled), and a
        // few long chains.
        for x in 0..n {
            let y = (x.wrapping_mul(2_654_435_761) % n) % 7919;
            if y != x {
                let (a, b) = (uf.find(x), uf.find(y));
                if a != b {
                    uf.union_roots(a, b);
                }
            }
        }
        let one = uf.clone().numbered_sets(1);
        assert_eq!(one.first.len(), one.size.len());
        assert_eq!(
            one.size.iter().map(|&s| s as usize).sum::<usize>(),
            n as usize
        );
        assert!(one.first.windows(2).all(|w| w[0] < w[1]));
        for (x, &set) in one.set_of.iter().enumerate() {
            assert!(one.first[set as usize] <= x as u32);
        }
        for threads in [2, 3, 8] {
            assert_eq!(uf.clone().numbered_sets(threads), one, "{threads} threads");
        }
        assert_eq!(UnionFind::new(0).numbered_sets(4).first.len(), 0);
    }

    #[test]
    fn long_chains_stay_fast() {
        let n = 1_000_000;
        let uf = UnionFind::new(n);
        for i in 1..n {
            let (a, b) = (uf.find(i - 1), uf.find(i));
            uf.union_roots(a, b);
        }
        let root = uf.find(0);
        assert_eq!(uf.root_size(root), n);
        assert_eq!(uf.find(n - 1), root);
    }
}
