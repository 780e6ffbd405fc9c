//! Disjoint sets over dense `u32` ids: the connected-components core of OneID.
//!
//! Three `u32`s per element (12 bytes) instead of `usize`s: at tens of
//! millions of records the difference is hundreds of megabytes. The parent,
//! the set size and a caller's tag share one node, so the random access that
//! finds a root also brings its size and tag into cache.

/// One element: its parent, the size of its set (meaningful at roots) and a
/// free `u32` the caller keeps per root.
#[derive(Debug, Clone, Copy)]
struct Node {
    parent: u32,
    size: u32,
    tag: u32,
}

/// Union-find with union by size and path halving (near-constant amortised
/// cost per operation, no recursion), with a `u32` tag per root.
#[derive(Debug, Clone)]
pub struct UnionFind {
    nodes: Vec<Node>,
}

impl UnionFind {
    /// `n` singleton sets `0..n`, tags 0.
    pub fn new(n: u32) -> Self {
        UnionFind::with_tag(n, 0)
    }

    /// `n` singleton sets `0..n`, every tag `tag`.
    pub fn with_tag(n: u32, tag: u32) -> Self {
        UnionFind {
            nodes: (0..n)
                .map(|i| Node {
                    parent: i,
                    size: 1,
                    tag,
                })
                .collect(),
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

    /// The representative of `x`'s set. `x` must be `< len()`.
    #[inline]
    pub fn find(&mut self, mut x: u32) -> u32 {
        loop {
            let p = self.nodes[x as usize].parent;
            if p == x {
                return x;
            }
            let gp = self.nodes[p as usize].parent;
            self.nodes[x as usize].parent = gp;
            x = gp;
        }
    }

    /// The parent of `x` without path compression (0 if out of range): a
    /// cheap read that pulls `x`'s node into cache ahead of a `find`.
    #[inline]
    pub fn peek_parent(&self, x: u32) -> u32 {
        self.nodes.get(x as usize).map_or(0, |n| n.parent)
    }

    /// The tag of `root` (what the caller last set there).
    #[inline]
    pub fn tag(&self, root: u32) -> u32 {
        self.nodes[root as usize].tag
    }

    /// Sets the tag of `root`.
    #[inline]
    pub fn set_tag(&mut self, root: u32, tag: u32) {
        self.nodes[root as usize].tag = tag;
    }

    /// Merges the sets whose representatives are `ra` and `rb` (both roots,
    /// distinct) and returns the new representative: the root of the larger
    /// set, keeping trees shallow; on equal sizes the smaller id, so the
    /// result is a function of the sequence of unions alone.
    #[inline]
    pub fn union_roots(&mut self, ra: u32, rb: u32) -> u32 {
        let (sa, sb) = (self.nodes[ra as usize].size, self.nodes[rb as usize].size);
        let (big, small) = if sa > sb || (sa == sb && ra < rb) {
            (ra, rb)
        } else {
            (rb, ra)
        };
        self.nodes[small as usize].parent = big;
        self.nodes[big as usize].size = sa + sb;
        big
    }

    /// Size of the set whose representative is `root`.
    pub fn root_size(&self, root: u32) -> u32 {
        self.nodes.get(root as usize).map_or(0, |n| n.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unions_and_finds() {
        let mut uf = UnionFind::new(6);
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
    fn long_chains_stay_fast() {
        let n = 1_000_000;
        let mut uf = UnionFind::new(n);
        for i in 1..n {
            let (a, b) = (uf.find(i - 1), uf.find(i));
            uf.union_roots(a, b);
        }
        let root = uf.find(0);
        assert_eq!(uf.root_size(root), n);
        assert_eq!(uf.find(n - 1), root);
    }
}
