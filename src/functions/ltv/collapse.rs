//! Collapsing equal customer histories into distinct weighted rows: the
//! step that makes fitting on millions of customers cheap (a likelihood
//! evaluation costs per distinct row, and real summaries repeat a lot: every
//! customer without a repeat purchase and the same age is one row).
//!
//! Each column's values are first replaced by their rank in a sorted
//! dictionary of the column's distinct values (small integers, found through
//! a direct table, as whole-number days and weeks are, or a hash map); the
//! ranks of a row are packed into one `u64` and the keys radix-sorted, so
//! that equal rows become neighbours. Ranks also serve the evaluation: a
//! quantity that depends on one column's value is computed once per
//! dictionary entry.

use rustc_hash::FxHashMap;

/// Values below this that are whole numbers are looked up in a table
/// instead of a hash map.
const DIRECT_LIMIT: usize = 1 << 16;

/// Maps values to dense ids in order of first appearance.
pub struct Dictionary {
    values: Vec<f64>,
    direct: Vec<u32>,
    hashed: FxHashMap<u64, u32>,
}

impl Dictionary {
    /// An empty dictionary.
    pub fn new() -> Self {
        Dictionary {
            values: Vec::new(),
            direct: vec![u32::MAX; DIRECT_LIMIT],
            hashed: FxHashMap::default(),
        }
    }

    /// The id of `value` (−0 and 0 are one value), new ids counting up
    /// from 0.
    #[inline(always)]
    pub fn id(&mut self, value: f64) -> u32 {
        // −0 and 0 are one value.
        let value = value + 0.0;
        // In range, a cast to i32 and back keeps exactly the whole numbers
        // (and i32 casts are one instruction, unlike usize's).
        if (0.0..DIRECT_LIMIT as f64).contains(&value) && f64::from(value as i32) == value {
            let slot = value as i32 as usize;
            let id = self.direct[slot];
            if id != u32::MAX {
                return id;
            }
            let id = self.values.len() as u32;
            self.direct[slot] = id;
            self.values.push(value);
            return id;
        }
        let next = self.values.len() as u32;
        let id = *self.hashed.entry(value.to_bits()).or_insert(next);
        if id == next {
            self.values.push(value);
        }
        id
    }

    /// The distinct values ascending, and each first-appearance id's rank.
    pub fn into_sorted(self) -> (Vec<f64>, Vec<u32>) {
        self.sorted()
    }

    /// As [`Dictionary::into_sorted`], keeping the dictionary (to look ids up again).
    pub fn sorted(&self) -> (Vec<f64>, Vec<u32>) {
        let mut order: Vec<u32> = (0..self.values.len() as u32).collect();
        order
            .sort_unstable_by(|&a, &b| self.values[a as usize].total_cmp(&self.values[b as usize]));
        let mut rank = vec![0u32; order.len()];
        for (r, &id) in order.iter().enumerate() {
            rank[id as usize] = r as u32;
        }
        let sorted = order.iter().map(|&id| self.values[id as usize]).collect();
        (sorted, rank)
    }
}

impl Default for Dictionary {
    fn default() -> Self {
        Dictionary::new()
    }
}

/// The values marked in `seen` ascending, and each value's rank among them.
pub fn ranks_of_seen(seen: &[bool]) -> (Vec<f64>, Vec<u32>) {
    let mut values = Vec::new();
    let mut rank = vec![0u32; seen.len()];
    for (v, _) in seen.iter().enumerate().filter(|(_, seen)| **seen) {
        rank[v] = values.len() as u32;
        values.push(v as f64);
    }
    (values, rank)
}

/// The laid-out rows of one frequency x: `start..end`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Group {
    pub x: f64,
    pub start: usize,
    pub end: usize,
}

/// Lays keys out one after another from `start`, key 0 first (the offsets of
/// a counting sort): pushes a [`Group`] for each key that has rows, with x
/// `x_of(key)`, and returns where each key's first row goes and where the
/// last key's rows end.
pub fn lay_out(
    counts: &[usize],
    x_of: impl Fn(usize) -> f64,
    mut start: usize,
    groups: &mut Vec<Group>,
) -> (Vec<usize>, usize) {
    let mut next = vec![0usize; counts.len()];
    for (key, &count) in counts.iter().enumerate() {
        next[key] = start;
        if count > 0 {
            groups.push(Group {
                x: x_of(key),
                start,
                end: start + count,
            });
            start += count;
        }
    }
    (next, start)
}

/// Rows grouped by the value of one column: `order[starts[g]..starts[g + 1]]`
/// are the rows (in input order) whose value is `keys[g]`, keys ascending.
#[derive(Debug, Clone)]
pub struct Grouping {
    /// The distinct values, ascending.
    pub keys: Vec<f64>,
    /// Row indices, group after group.
    pub order: Vec<usize>,
    /// Where each group starts in `order`, and its end.
    pub starts: Vec<usize>,
}

/// Groups rows by `key` with a counting sort: linear, for when rows are
/// many and merging equal rows would not pay for its sort.
pub fn group_by(key: &[f64]) -> Grouping {
    let mut dictionary = Dictionary::new();
    let ids: Vec<u32> = key.iter().map(|&v| dictionary.id(v)).collect();
    let (keys, rank) = dictionary.into_sorted();
    let mut starts = vec![0usize; keys.len() + 1];
    for &id in &ids {
        starts[rank[id as usize] as usize + 1] += 1;
    }
    for g in 1..starts.len() {
        starts[g] += starts[g - 1];
    }
    let mut next = starts.clone();
    let mut order = vec![0usize; key.len()];
    for (row, &id) in ids.iter().enumerate() {
        let group = rank[id as usize] as usize;
        order[next[group]] = row;
        next[group] += 1;
    }
    Grouping {
        keys,
        order,
        starts,
    }
}

/// Customer histories of `K` values each, with a count per row: a model's fitting
/// aggregate state. Adding is a push, the states of partitions merge by concatenation,
/// and [`WeightedRows::collapse`] keeps only the distinct rows (with summed counts).
#[derive(Debug, Clone)]
pub struct WeightedRows<const K: usize> {
    columns: [Vec<f64>; K],
    counts: Vec<u64>,
    customers: u64,
}

impl<const K: usize> Default for WeightedRows<K> {
    fn default() -> Self {
        WeightedRows {
            columns: std::array::from_fn(|_| Vec::new()),
            counts: Vec::new(),
            customers: 0,
        }
    }
}

impl<const K: usize> WeightedRows<K> {
    /// Adds `count` customers with the values `row` (nothing for 0).
    pub fn push(&mut self, row: [f64; K], count: u64) {
        if count > 0 {
            for (column, value) in self.columns.iter_mut().zip(row) {
                column.push(value);
            }
            self.counts.push(count);
            self.customers += count;
        }
    }

    /// Adds every row of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (column, theirs) in self.columns.iter_mut().zip(&other.columns) {
            column.extend_from_slice(theirs);
        }
        self.counts.extend_from_slice(&other.counts);
        self.customers += other.customers;
    }

    /// Customers added (the sum of the counts).
    pub fn customers(&self) -> u64 {
        self.customers
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Column `k`'s values.
    pub fn column(&self, k: usize) -> &[f64] {
        &self.columns[k]
    }

    /// Each row's count.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Row `i`'s values and count.
    pub fn row(&self, i: usize) -> ([f64; K], u64) {
        (std::array::from_fn(|k| self.columns[k][i]), self.counts[i])
    }

    /// The distinct rows, ordered by the columns in order, column `k` looked up in
    /// dictionary `dictionary_of[k]` (as [`collapse`]).
    pub fn collapsed(&self, dictionary_of: [usize; K]) -> Collapsed<K> {
        collapse(
            std::array::from_fn(|k| self.columns[k].as_slice()),
            dictionary_of,
            Some(&self.counts),
        )
    }

    /// Replaces the rows by the distinct ones, their counts summed.
    pub fn collapse(&mut self, dictionary_of: [usize; K]) {
        let Collapsed { dictionaries, rows } = self.collapsed(dictionary_of);
        self.columns = std::array::from_fn(|k| {
            let values = &dictionaries[dictionary_of[k]];
            rows.iter().map(|(id, _)| values[id[k] as usize]).collect()
        });
        self.counts = rows.iter().map(|(_, count)| *count).collect();
    }
}

/// Distinct rows with their counts.
#[derive(Debug, Clone)]
pub struct Collapsed<const K: usize> {
    /// Each dictionary's distinct values, ascending.
    pub dictionaries: Vec<Vec<f64>>,
    /// Distinct rows: the rank of each column's value in its dictionary,
    /// and how many rows were equal to it; ordered by the columns in order.
    pub rows: Vec<([u32; K], u64)>,
}

/// Collapses rows given as `K` columns of equal length, each looked up in
/// dictionary `dictionary_of[k]` (columns holding the same kind of value,
/// such as recency and age, can share one), with a count per row (1 each
/// when `None`).
pub fn collapse<const K: usize>(
    columns: [&[f64]; K],
    dictionary_of: [usize; K],
    counts: Option<&[u64]>,
) -> Collapsed<K> {
    let n = columns.first().map_or(0, |c| c.len());
    let dictionary_count = dictionary_of.iter().max().map_or(0, |m| m + 1);
    let mut dictionaries: Vec<Dictionary> =
        (0..dictionary_count).map(|_| Dictionary::new()).collect();
    // Column by column: one dictionary and one column at a time in cache.
    let mut ids: Vec<[u32; K]> = vec![[0u32; K]; n];
    for k in 0..K {
        let dictionary = &mut dictionaries[dictionary_of[k]];
        for (id, &value) in ids.iter_mut().zip(columns[k]) {
            id[k] = dictionary.id(value);
        }
    }
    let (sorted, ranks): (Vec<Vec<f64>>, Vec<Vec<u32>>) = dictionaries
        .into_iter()
        .map(Dictionary::into_sorted)
        .unzip();
    let bits: [u32; K] = std::array::from_fn(|k| {
        let size = sorted[dictionary_of[k]].len().max(1) as u64;
        64 - (size - 1).leading_zeros()
    });
    let total_bits: u32 = bits.iter().sum();
    let rank = |id: &[u32; K]| -> [u32; K] {
        std::array::from_fn(|k| ranks[dictionary_of[k]][id[k] as usize])
    };

    let mut rows: Vec<([u32; K], u64)> = Vec::new();
    if total_bits <= 64 {
        let pack = |id: [u32; K]| {
            let mut key = 0u64;
            for k in 0..K {
                key = (key << bits[k]) | u64::from(id[k]);
            }
            key
        };
        let unpack = |mut key: u64| {
            let mut id = [0u32; K];
            for k in (0..K).rev() {
                id[k] = (key & ((1u64 << bits[k]) - 1)) as u32;
                key >>= bits[k];
            }
            id
        };
        let mut distinct: Vec<(u64, u64)> = Vec::new();
        let mut count_run = |key: u64, count: u64| match distinct.last_mut() {
            Some((last, c)) if *last == key => *c += count,
            _ => distinct.push((key, count)),
        };
        if let Some(counts) = counts.filter(|c| c.iter().any(|&c| c != 1)) {
            let mut keyed: Vec<(u64, u64)> = ids
                .iter()
                .zip(counts)
                .map(|(id, &c)| (pack(rank(id)), c))
                .collect();
            radix_sort(&mut keyed, total_bits, |item| item.0);
            for (key, count) in keyed {
                count_run(key, count);
            }
        } else {
            // The usual case, one row per customer: sort the keys alone.
            let mut keys: Vec<u64> = ids.iter().map(|id| pack(rank(id))).collect();
            radix_sort(&mut keys, total_bits, |k| *k);
            for key in keys {
                count_run(key, 1);
            }
        }
        rows = distinct
            .into_iter()
            .map(|(key, count)| (unpack(key), count))
            .collect();
    } else {
        let count = |row: usize| counts.map_or(1, |c| c[row]);
        let mut ranked: Vec<([u32; K], u64)> = ids
            .iter()
            .enumerate()
            .map(|(row, id)| (rank(id), count(row)))
            .collect();
        ranked.sort_unstable_by_key(|item| item.0);
        for (id, count) in ranked {
            match rows.last_mut() {
                Some((last, c)) if *last == id => *c += count,
                _ => rows.push((id, count)),
            }
        }
    }
    Collapsed {
        dictionaries: sorted,
        rows,
    }
}

/// Sorts items by a key of `bits` low bits, least significant byte first
/// (stable; linear in the number of items).
fn radix_sort<T: Copy + Default>(items: &mut Vec<T>, bits: u32, key: impl Fn(&T) -> u64) {
    const DIGIT: u32 = 8;
    let mut scratch = vec![T::default(); items.len()];
    let mut shift = 0;
    while shift < bits {
        let mut counts = [0usize; 1 << DIGIT];
        for item in items.iter() {
            counts[((key(item) >> shift) & ((1 << DIGIT) - 1)) as usize] += 1;
        }
        let mut start = 0;
        for count in counts.iter_mut() {
            let c = *count;
            *count = start;
            start += c;
        }
        for item in items.iter() {
            let digit = ((key(item) >> shift) & ((1 << DIGIT) - 1)) as usize;
            scratch[counts[digit]] = *item;
            counts[digit] += 1;
        }
        std::mem::swap(items, &mut scratch);
        shift += DIGIT;
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_and_orders() {
        let x = [1.0, 0.0, 1.0, 2.5, 1.0, -0.0];
        let t = [10.0, 7.0, 10.0, 1e9, 10.0, 7.0];
        let tx = [3.0, 0.0, 3.0, 0.25, 4.0, 0.0];
        let c = collapse([&x[..], &t, &tx], [0, 1, 1], Some(&[1, 1, 2, 1, 1, 5]));
        assert_eq!(c.dictionaries[0], vec![0.0, 1.0, 2.5]);
        assert_eq!(c.dictionaries[1], vec![0.0, 0.25, 3.0, 4.0, 7.0, 10.0, 1e9]);
        let rows: Vec<([f64; 3], u64)> = c
            .rows
            .iter()
            .map(|(id, n)| {
                (
                    [
                        c.dictionaries[0][id[0] as usize],
                        c.dictionaries[1][id[1] as usize],
                        c.dictionaries[1][id[2] as usize],
                    ],
                    *n,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                ([0.0, 7.0, 0.0], 6),
                ([1.0, 10.0, 3.0], 3),
                ([1.0, 10.0, 4.0], 1),
                ([2.5, 1e9, 0.25], 1),
            ]
        );
    }

    #[test]
    fn matches_a_plain_sort_on_many_rows() {
        // Enough distinct values for several radix passes and both lookups.
        let n: u32 = 50_000;
        let x: Vec<f64> = (0..n).map(|i| f64::from((i * 7919) % 37)).collect();
        let t: Vec<f64> = (0..n)
            .map(|i| ((u64::from(i) * 104_729) % 3001) as f64 * 0.5)
            .collect();
        let counts: Vec<u64> = (0..n).map(|i| 1 + (i % 3) as u64).collect();
        let c = collapse([&x[..], &t], [0, 1], Some(&counts));
        let mut expected: Vec<((u64, u64), u64)> = Vec::new();
        let mut plain: Vec<(f64, f64, u64)> =
            (0..n as usize).map(|i| (x[i], t[i], counts[i])).collect();
        plain.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        for (a, b, w) in plain {
            match expected.last_mut() {
                Some((key, count)) if *key == (a.to_bits(), b.to_bits()) => *count += w,
                _ => expected.push(((a.to_bits(), b.to_bits()), w)),
            }
        }
        let got: Vec<((u64, u64), u64)> = c
            .rows
            .iter()
            .map(|(id, w)| {
                (
                    (
                        c.dictionaries[0][id[0] as usize].to_bits(),
                        c.dictionaries[1][id[1] as usize].to_bits(),
                    ),
                    *w,
                )
            })
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn empty_and_single() {
        let c = collapse::<2>([&[], &[]], [0, 1], None);
        assert!(c.rows.is_empty());
        let c = collapse([&[5.0][..]], [0], Some(&[3]));
        assert_eq!(c.rows, vec![([0], 3)]);
        let c = collapse([&[5.0, 5.0][..]], [0], None);
        assert_eq!(c.rows, vec![([0], 2)]);
    }

    #[test]
    fn groups_keep_input_order() {
        let g = group_by(&[3.0, 1.0, 3.0, 0.5, 1.0, 1e300]);
        assert_eq!(g.keys, vec![0.5, 1.0, 3.0, 1e300]);
        assert_eq!(g.starts, vec![0, 1, 3, 5, 6]);
        assert_eq!(g.order, vec![3, 1, 4, 0, 2, 5]);
        let empty = group_by(&[]);
        assert!(empty.keys.is_empty() && empty.order.is_empty() && empty.starts == vec![0]);
    }
}
