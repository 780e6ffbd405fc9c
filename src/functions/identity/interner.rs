//! A compact string interner: every distinct string is stored once in one
//! arena and named by a `u32`.
//!
//! OneID sees tens of millions of identifier rows; a `String` per row (24
//! bytes of header plus a heap block) would alone blow the memory budget. Here
//! a distinct string costs its bytes, a 4-byte end offset and about 10 bytes
//! of hash table, and repeated strings cost nothing.
//!
//! Strings can carry a `u32` tag that is part of their identity (the id type
//! of a raw value, the family of a normalised key), so `("phone", "123")` and
//! `("member_no", "123")` are different entries without building a combined
//! string per row.

use std::hash::BuildHasher;

use super::error::OneIdError;
pub(crate) use crate::functions::prefetch::prefetch;

/// Distance, in strings, between the prefetch stages of a batch lookup (see
/// [`Interner::prefetch_lookups`]): far enough for a miss to complete
/// (~100 ns) before the next stage needs it, near enough that the lines are
/// still cached when the lookup comes.
const LOOKUP_AHEAD: usize = 8;

/// Marks an empty hash-table slot.
const EMPTY: u64 = 0;

/// The hash bits a slot keeps (the low half holds the id + 1).
const HASH_BITS: u64 = 0xFFFF_FFFF_0000_0000;

/// Where a hash starts probing in a table of `mask + 1` slots: its high
/// 32 bits first (kept in the slot, so growing needs no rehash), then the low
/// bits for tables beyond 2³² slots.
#[inline]
fn position(hash: u64, mask: usize) -> usize {
    (hash.rotate_left(32) as usize) & mask
}

/// Interned strings, their ids dense from 0 in insertion order.
#[derive(Debug, Clone)]
pub struct Interner {
    text: String,
    /// `ends[i]` is where string `i` ends in `text`; it starts where `i - 1` ends.
    ends: Vec<u32>,
    /// Tag of each string; left empty by untagged interners (all tags 0).
    tags: Vec<u32>,
    tagged: bool,
    /// Open-addressing table: `(hash >> 32) << 32 | (id + 1)`, or [`EMPTY`].
    /// Keeping 32 hash bits in the slot lets a probe skip most non-matching
    /// strings without touching the arena.
    slots: Vec<u64>,
    /// Per-interner random seed, so crafted inputs cannot predict collisions.
    seed: u64,
}

impl Default for Interner {
    fn default() -> Self {
        Interner::new()
    }
}

impl Interner {
    /// An interner whose strings all have tag 0.
    pub fn new() -> Self {
        Interner {
            text: String::new(),
            ends: Vec::new(),
            tags: Vec::new(),
            tagged: false,
            slots: Vec::new(),
            seed: std::collections::hash_map::RandomState::new().hash_one(0x5EED_u64),
        }
    }

    /// An interner that stores a tag per string (4 more bytes each).
    pub fn new_tagged() -> Self {
        Interner {
            tagged: true,
            ..Interner::new()
        }
    }

    /// An interner with room for `strings` strings of `bytes` bytes in all,
    /// so that filling it never rehashes (rehashing a table of millions of
    /// entries costs a cache miss per entry).
    pub fn with_capacity(strings: usize, bytes: usize, tagged: bool) -> Self {
        let mut interner = Interner {
            tagged,
            ..Interner::new()
        };
        interner.text.reserve(bytes);
        interner.ends.reserve(strings);
        if tagged {
            interner.tags.reserve(strings);
        }
        interner.slots = vec![EMPTY; table_size(strings)];
        interner
    }

    /// Makes room for `strings` more strings of `bytes` bytes in all (the
    /// arenas only; the hash table grows as it fills).
    pub fn reserve(&mut self, strings: usize, bytes: usize) {
        self.text.reserve(bytes);
        self.ends.reserve(strings);
        if self.tagged {
            self.tags.reserve(strings);
        }
    }

    /// Grows the hash table (by doubling, as interning one by one would) so
    /// that `strings` more strings fit without growing it again.
    pub(crate) fn reserve_index(&mut self, strings: usize) {
        if self.slots.is_empty() || (self.ends.len() + strings) * 8 > self.slots.len() * 7 {
            let wanted = table_size(self.ends.len() + strings);
            if wanted > self.slots.len() {
                self.rebuild_index(wanted.max(self.slots.len() * 2));
            }
        }
    }

    /// Total bytes of the interned strings.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Frees the hash index (about 10 bytes a string). Reading by id still
    /// works; [`Interner::lookup`] scans until [`Interner::ensure_index`] or the
    /// next [`Interner::intern`] rebuilds the index. For tables that are
    /// complete and only read by id from now on.
    pub fn drop_index(&mut self) {
        self.slots = Vec::new();
    }

    /// Builds the hash index if it was dropped, so that [`Interner::lookup`] is fast
    /// again (it is correct either way).
    pub fn ensure_index(&mut self) {
        if self.slots.is_empty() && !self.ends.is_empty() {
            self.rebuild_index(table_size(self.ends.len()));
        }
    }

    /// Lays interners end to end: the strings of `parts[k]` follow those of
    /// `parts[k - 1]`, ids shifted by the strings before them. The parts must not
    /// share a string (each string's id would be ambiguous). The result has no hash
    /// index (see [`Interner::ensure_index`]); each part is freed as soon as it is
    /// copied.
    pub(crate) fn concat(parts: Vec<Interner>) -> Result<Interner, OneIdError> {
        let strings: usize = parts.iter().map(Interner::len).sum();
        let bytes: usize = parts.iter().map(Interner::text_len).sum();
        if strings >= u32::MAX as usize - 1 {
            return Err(OneIdError::CapacityExceeded {
                what: "more than 4 billion distinct strings",
            });
        }
        if bytes > u32::MAX as usize {
            return Err(OneIdError::CapacityExceeded {
                what: "more than 4 GiB of distinct identifier text",
            });
        }
        let mut parts = parts.into_iter();
        let Some(mut whole) = parts.next() else {
            return Ok(Interner::new());
        };
        whole.drop_index();
        whole.text.reserve_exact(bytes - whole.text.len());
        whole.ends.reserve_exact(strings - whole.ends.len());
        if whole.tagged {
            whole.tags.reserve_exact(strings - whole.tags.len());
        }
        for mut part in parts {
            part.drop_index();
            // Checked above: every end fits in u32.
            let base = whole.text.len() as u32;
            whole.text.push_str(&part.text);
            whole.ends.extend(part.ends.iter().map(|&end| end + base));
            if whole.tagged {
                whole.tags.extend(part.tags.iter().copied());
            }
        }
        Ok(whole)
    }

    /// Replaces every tag `t` by `map[t]` (each string keeps its text and id). The
    /// hash index, which hashes the tags, is dropped.
    pub(crate) fn retag(&mut self, map: &[u32]) {
        self.drop_index();
        for tag in &mut self.tags {
            *tag = map[*tag as usize];
        }
    }

    /// Returns spare capacity of the arenas to the allocator.
    pub fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.tags.shrink_to_fit();
    }

    /// Number of distinct strings.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether nothing has been interned.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The string with id `id` (empty for an unknown id, which callers never
    /// pass: ids only come from this interner).
    pub fn get(&self, id: u32) -> &str {
        let i = id as usize;
        let start = match i.checked_sub(1) {
            Some(prev) => self.ends.get(prev).copied().unwrap_or(0),
            None => 0,
        };
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.text.get(start as usize..end as usize).unwrap_or("")
    }

    /// The tag of string `id` (0 for untagged interners).
    pub fn tag(&self, id: u32) -> u32 {
        self.tags.get(id as usize).copied().unwrap_or(0)
    }

    /// Bytes held, for memory accounting in tests and benches.
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity()
            + 4 * self.ends.capacity()
            + 4 * self.tags.capacity()
            + 8 * self.slots.capacity()
    }

    /// Interns `s` with tag 0.
    pub fn intern(&mut self, s: &str) -> Result<u32, OneIdError> {
        self.intern_tagged(0, s)
    }

    /// Interns `(tag, s)`, returning the existing id if already present. The
    /// tag is ignored by untagged interners.
    pub fn intern_tagged(&mut self, tag: u32, s: &str) -> Result<u32, OneIdError> {
        let hash = self.hasher().hash(tag, s);
        self.intern_prehashed(hash, tag, s)
    }

    /// The hash function of this interner, to compute hashes on other
    /// threads ahead of [`Interner::intern_prehashed`].
    pub(crate) fn hasher(&self) -> InternHasher {
        InternHasher {
            seed: self.seed,
            tagged: self.tagged,
        }
    }

    /// Starts loading, for the lookups of `hashes[i + LOOKUP_AHEAD]`,
    /// `hashes[i + 2 * LOOKUP_AHEAD]` and `hashes[i + 3 * LOOKUP_AHEAD]`, the
    /// next piece of memory each will need. Confirming that a string is
    /// already interned is three dependent cache misses (table slot, end
    /// offsets, text); called once per string of a batch, this starts each
    /// miss three strings-worth of work apart, so they overlap with other
    /// lookups instead of stalling this one.
    #[inline]
    pub(crate) fn prefetch_lookups(&self, hashes: &[u64], i: usize) {
        let Some(mask) = self.slots.len().checked_sub(1) else {
            return;
        };
        if let Some(&h) = hashes.get(i + 3 * LOOKUP_AHEAD) {
            prefetch(&self.slots, position(h, mask));
        }
        if let Some(&h) = hashes.get(i + 2 * LOOKUP_AHEAD)
            && let Some(id) = self.candidate(h, mask)
        {
            prefetch(&self.ends, (id as usize).saturating_sub(1));
        }
        if let Some(&h) = hashes.get(i + LOOKUP_AHEAD)
            && let Some(id) = self.candidate(h, mask)
        {
            self.prefetch_text(id);
        }
    }

    /// The id in the first slot `hash` probes, if its hash bits match.
    #[inline]
    fn candidate(&self, hash: u64, mask: usize) -> Option<u32> {
        let slot = self.slots[position(hash, mask)];
        (slot != EMPTY && slot & HASH_BITS == hash & HASH_BITS)
            .then(|| (slot as u32).wrapping_sub(1))
    }

    /// Starts loading the end offsets of string `id` (the first step of
    /// reading it), for [`Interner::get`] soon after.
    #[inline]
    pub(crate) fn prefetch_offsets(&self, id: u32) {
        prefetch(&self.ends, (id as usize).saturating_sub(1));
    }

    /// Starts loading the text of string `id` (reads its start offset, which
    /// should be cached by an earlier [`Interner::prefetch_offsets`]).
    #[inline]
    pub(crate) fn prefetch_text(&self, id: u32) {
        let start = match (id as usize).checked_sub(1) {
            Some(prev) => self.ends.get(prev).copied().unwrap_or(0),
            None => 0,
        };
        prefetch(self.text.as_bytes(), start as usize);
    }

    /// Appends `(tag, s)` as a new entry without looking it up, even if it
    /// is already present, and returns its id. For arenas where a repeated
    /// string is cheaper to keep twice than to find: raw identifier values
    /// are mostly distinct, and equal ones end up one key when normalised.
    /// Drops the hash index, which would no longer list every string:
    /// [`Interner::lookup`] scans until the index is rebuilt.
    pub(crate) fn append_tagged(&mut self, tag: u32, s: &str) -> Result<u32, OneIdError> {
        if !self.slots.is_empty() {
            self.drop_index();
        }
        self.push_entry(tag, s)
    }

    /// Stores `(tag, s)` as the next id in the arenas (not in the index).
    fn push_entry(&mut self, tag: u32, s: &str) -> Result<u32, OneIdError> {
        let id = u32::try_from(self.ends.len())
            .ok()
            .filter(|&id| id < u32::MAX - 1)
            .ok_or(OneIdError::CapacityExceeded {
                what: "more than 4 billion distinct strings",
            })?;
        let end =
            u32::try_from(self.text.len() + s.len()).map_err(|_| OneIdError::CapacityExceeded {
                what: "more than 4 GiB of distinct identifier text",
            })?;
        self.text.push_str(s);
        self.ends.push(end);
        if self.tagged {
            self.tags.push(tag);
        }
        Ok(id)
    }

    /// [`Interner::intern_tagged`] with `hash` from [`Interner::hasher`].
    pub(crate) fn intern_prehashed(
        &mut self,
        hash: u64,
        tag: u32,
        s: &str,
    ) -> Result<u32, OneIdError> {
        let tag = if self.tagged { tag } else { 0 };
        if self.slots.is_empty() && !self.ends.is_empty() {
            self.rebuild_index(table_size(self.ends.len() + 1));
        }
        if let Some(id) = self.find(hash, tag, s) {
            return Ok(id);
        }
        // Grow at 7/8 load: probes stay short with the hash tag in the slot,
        // and the table stays near 10 bytes per string.
        if (self.ends.len() + 1) * 8 > self.slots.len() * 7 {
            self.rebuild_index(table_size(self.ends.len() + 1).max(self.slots.len() * 2));
        }
        let id = self.push_entry(tag, s)?;
        self.insert_slot(hash, id);
        Ok(id)
    }

    /// The id of `s` with tag 0, if interned.
    pub fn lookup(&self, s: &str) -> Option<u32> {
        self.lookup_tagged(0, s)
    }

    /// The id of `(tag, s)`, if interned.
    pub fn lookup_tagged(&self, tag: u32, s: &str) -> Option<u32> {
        let tag = if self.tagged { tag } else { 0 };
        self.find(hash_str(self.seed, tag, s), tag, s)
    }

    fn find(&self, hash: u64, tag: u32, s: &str) -> Option<u32> {
        if self.slots.is_empty() {
            // No index (dropped, or never built for a concatenation): a scan.
            return (0..self.ends.len() as u32)
                .find(|&id| self.get(id) == s && self.tag(id) == tag);
        }
        let mask = self.slots.len() - 1;
        let want = hash & HASH_BITS;
        let mut pos = position(hash, mask);
        let mut step = 0usize;
        loop {
            let slot = self.slots[pos];
            if slot == EMPTY {
                return None;
            }
            if slot & HASH_BITS == want {
                let id = (slot as u32).wrapping_sub(1);
                if self.get(id) == s && self.tag(id) == tag {
                    return Some(id);
                }
            }
            // Triangular probing visits every slot of a power-of-two table.
            step += 1;
            pos = (pos + step) & mask;
        }
    }

    fn insert_slot(&mut self, hash: u64, id: u32) {
        let mask = self.slots.len() - 1;
        let mut pos = position(hash, mask);
        let mut step = 0usize;
        while self.slots[pos] != EMPTY {
            step += 1;
            pos = (pos + step) & mask;
        }
        self.slots[pos] = (hash & HASH_BITS) | u64::from(id + 1);
    }

    fn rebuild_index(&mut self, new_len: usize) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; new_len]);
        if !old.is_empty() && new_len <= 1 << 32 {
            // A slot keeps the hash's high 32 bits, which is all `position`
            // uses at this size: move entries without rehashing their text.
            for slot in old.into_iter().filter(|&s| s != EMPTY) {
                self.insert_slot(slot & HASH_BITS, (slot as u32).wrapping_sub(1));
            }
        } else {
            for id in 0..self.ends.len() as u32 {
                let hash = hash_str(self.seed, self.tag(id), self.get(id));
                self.insert_slot(hash, id);
            }
        }
    }
}

/// The hash function of one [`Interner`] (it is seeded per interner).
#[derive(Debug, Clone, Copy)]
pub(crate) struct InternHasher {
    seed: u64,
    tagged: bool,
}

impl InternHasher {
    /// The hash the interner uses for `(tag, s)`.
    pub(crate) fn hash(&self, tag: u32, s: &str) -> u64 {
        hash_str(self.seed, if self.tagged { tag } else { 0 }, s)
    }
}

/// Power-of-two table size keeping `strings` entries at most 7/8 full.
fn table_size(strings: usize) -> usize {
    (strings.saturating_mul(8) / 7 + 1)
        .next_power_of_two()
        .max(16)
}

/// 64×64→128-bit multiply folded to 64 bits: the core mixing step of fast
/// modern hashes (foldhash, wyhash).
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

const K0: u64 = 0x9E37_79B9_7F4A_7C15;
const K1: u64 = 0xA076_1D64_78BD_642F;
const K2: u64 = 0xE703_7ED1_A0B4_28DB;

/// Fast seeded string hash (8 bytes a step). Not a stable format: only used
/// inside one interner, never persisted or ordered by.
#[inline]
fn hash_str(seed: u64, tag: u32, s: &str) -> u64 {
    let bytes = s.as_bytes();
    let mut h = fold_mul(seed ^ u64::from(tag) ^ K0, (bytes.len() as u64) ^ K1);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = fold_mul(h ^ u64::from_le_bytes(w), K1);
    }
    let rem = chunks.remainder();
    if !rem.is_empty() {
        let mut w = [0u8; 8];
        w[..rem.len()].copy_from_slice(rem);
        h = fold_mul(h ^ u64::from_le_bytes(w), K2);
    }
    fold_mul(h, K0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_once_and_reads_back() -> Result<(), OneIdError> {
        let mut i = Interner::new();
        let a = i.intern("alpha")?;
        let b = i.intern("beta")?;
        assert_eq!(i.intern("alpha")?, a);
        assert_ne!(a, b);
        assert_eq!(i.get(a), "alpha");
        assert_eq!(i.get(b), "beta");
        assert_eq!(i.lookup("beta"), Some(b));
        assert_eq!(i.lookup("gamma"), None);
        assert_eq!(i.len(), 2);
        let e = i.intern("")?;
        assert_eq!(i.get(e), "");
        assert_eq!(i.get(999), "");
        Ok(())
    }

    #[test]
    fn tags_are_part_of_identity() -> Result<(), OneIdError> {
        let mut i = Interner::new_tagged();
        let a = i.intern_tagged(1, "123")?;
        let b = i.intern_tagged(2, "123")?;
        assert_ne!(a, b);
        assert_eq!(i.tag(b), 2);
        assert_eq!(i.lookup_tagged(1, "123"), Some(a));
        assert_eq!(i.lookup_tagged(3, "123"), None);
        Ok(())
    }

    #[test]
    fn index_can_be_dropped_and_rebuilt() -> Result<(), OneIdError> {
        let mut i = Interner::with_capacity(10, 100, true);
        let a = i.intern_tagged(7, "a")?;
        i.drop_index();
        assert_eq!(i.get(a), "a");
        // Without an index a lookup scans: slower, still right.
        assert_eq!(i.lookup_tagged(7, "a"), Some(a));
        assert_eq!(i.lookup_tagged(8, "a"), None);
        assert_eq!(i.intern_tagged(7, "a")?, a);
        assert_eq!(i.lookup_tagged(7, "a"), Some(a));
        i.shrink_to_fit();
        assert_eq!(i.text_len(), 1);
        Ok(())
    }

    #[test]
    fn appending_keeps_repeats_and_lookups_still_work_after() -> Result<(), OneIdError> {
        let mut i = Interner::new_tagged();
        let a = i.intern_tagged(1, "x")?;
        let ids = [
            i.append_tagged(1, "x")?,
            i.append_tagged(2, "y")?,
            i.append_tagged(1, "x")?,
        ];
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!((i.get(3), i.tag(3)), ("x", 1));
        assert_eq!(i.len(), 4);
        // The index was dropped (lookups scan); interning rebuilds it and finds
        // an equal entry.
        assert_eq!(i.lookup_tagged(2, "y"), Some(2));
        let again = i.intern_tagged(1, "x")?;
        assert!(again == a || again == 3);
        assert_eq!(i.lookup_tagged(2, "y"), Some(2));
        Ok(())
    }

    #[test]
    fn concatenation_shifts_ids_and_lookups_find_them() -> Result<(), OneIdError> {
        let template = Interner::new_tagged();
        let mut parts = vec![template.clone(), template.clone(), template];
        for n in 0..300u32 {
            parts[(n % 3) as usize].intern_tagged(n % 2, &format!("s{n}"))?;
        }
        let expected: Vec<(String, u32)> = parts
            .iter()
            .flat_map(|p| (0..p.len() as u32).map(|id| (p.get(id).to_string(), p.tag(id))))
            .collect();
        let mut whole = Interner::concat(parts)?;
        assert_eq!(whole.len(), 300);
        for (id, (s, tag)) in expected.iter().enumerate() {
            assert_eq!(
                (whole.get(id as u32), whole.tag(id as u32)),
                (s.as_str(), *tag)
            );
        }
        assert_eq!(
            whole.lookup_tagged(1, "s7"),
            Some(expected.iter().position(|e| e.0 == "s7").unwrap_or(0) as u32)
        );
        whole.ensure_index();
        for (id, (s, tag)) in expected.iter().enumerate() {
            assert_eq!(whole.lookup_tagged(*tag, s), Some(id as u32));
        }
        assert!(Interner::concat(Vec::new())?.is_empty());
        Ok(())
    }

    #[test]
    fn survives_growth() -> Result<(), OneIdError> {
        let mut i = Interner::new();
        let ids: Vec<u32> = (0..100_000)
            .map(|n| i.intern(&format!("record-{n}")))
            .collect::<Result<_, _>>()?;
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(i.get(*id), format!("record-{n}"));
            assert_eq!(i.lookup(&format!("record-{n}")), Some(*id));
        }
        assert_eq!(i.len(), 100_000);
        Ok(())
    }
}
