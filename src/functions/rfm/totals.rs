//! Per-customer order totals (first and last order time, order count, amount sum) for
//! `bigint` customer ids: plain Rust, no DataFusion.
//!
//! `rfm` spends most of its time here: 10M orders of 1M customers are 10M random updates
//! of a 1M-entry table. DataFusion's generic hash aggregate keeps the keys in one table
//! and each aggregate in an array of its own, so a row touches five cache lines; here a
//! customer's key and all four totals share one 40-byte slot of an open-addressing table,
//! so a row mostly touches one. Each input partition fills its own [`ShardedTotals`]; the
//! shards (split by hash) are then merged shard by shard, in parallel.

use crate::functions::prefetch::prefetch;

/// One customer's totals. `orders == 0` marks an empty slot.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub customer_id: i64,
    pub orders: i64,
    /// Microseconds.
    pub first: i64,
    /// Microseconds.
    pub last: i64,
    pub amount: f64,
}

impl Totals {
    fn add(&mut self, ts: i64, amount: f64) {
        self.orders += 1;
        self.first = self.first.min(ts);
        self.last = self.last.max(ts);
        self.amount += amount;
    }

    fn merge(&mut self, other: &Totals) {
        self.orders += other.orders;
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        self.amount += other.amount;
    }
}

/// murmur3's 64-bit finaliser: every key bit reaches the top bits, which pick the shard
/// and the slot, so ids that differ only in high or only in low bits spread alike.
fn mix(key: i64) -> u64 {
    let mut h = key as u64;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// How many orders ahead [`ShardedTotals::add_all`] prefetches: enough for a miss
/// (~100 ns) to complete before its row comes.
const AHEAD: usize = 16;

const SLOT_BYTES: usize = std::mem::size_of::<Totals>();

/// An open-addressing (linear probing) table of [`Totals`], at most half full.
#[derive(Debug, Clone)]
pub struct TotalsTable {
    slots: Vec<Totals>,
    len: usize,
    /// log2 of `slots.len()`.
    bits: u32,
}

impl TotalsTable {
    const MIN_BITS: u32 = 8;

    pub fn new() -> Self {
        Self {
            slots: vec![Totals::default(); 1 << Self::MIN_BITS],
            len: 0,
            bits: Self::MIN_BITS,
        }
    }

    /// Customers held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the slots take.
    pub fn bytes(&self) -> usize {
        self.slots.len() * SLOT_BYTES
    }

    fn needs_growth(&self) -> bool {
        (self.len + 1) * 2 > self.slots.len()
    }

    /// The slot `hash` starts probing at: the hash's bits below the `skip` top ones (those
    /// pick the shard).
    fn start(&self, hash: u64, skip: u32) -> usize {
        ((hash << skip) >> (64 - self.bits)) as usize
    }

    /// The slot of `customer_id`: its own, or the empty one it would take.
    fn find(&self, customer_id: i64, hash: u64, skip: u32) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = self.start(hash, skip);
        loop {
            let slot = &self.slots[i];
            if slot.orders == 0 || slot.customer_id == customer_id {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self, skip: u32) {
        let old = std::mem::replace(
            &mut self.slots,
            vec![Totals::default(); 1 << (self.bits + 1)],
        );
        self.bits += 1;
        for slot in old.into_iter().filter(|s| s.orders != 0) {
            let i = self.find(slot.customer_id, mix(slot.customer_id), skip);
            self.slots[i] = slot;
        }
    }

    fn add(&mut self, customer_id: i64, hash: u64, skip: u32, ts: i64, amount: f64) {
        let mut i = self.find(customer_id, hash, skip);
        if self.slots[i].orders == 0 {
            if self.needs_growth() {
                self.grow(skip);
                i = self.find(customer_id, hash, skip);
            }
            self.len += 1;
            self.slots[i] = Totals {
                customer_id,
                orders: 0,
                first: ts,
                last: ts,
                amount: 0.0,
            };
        }
        self.slots[i].add(ts, amount);
    }

    fn merge_slot(&mut self, other: &Totals, skip: u32) {
        let hash = mix(other.customer_id);
        let mut i = self.find(other.customer_id, hash, skip);
        if self.slots[i].orders == 0 {
            if self.needs_growth() {
                self.grow(skip);
                i = self.find(other.customer_id, hash, skip);
            }
            self.len += 1;
            self.slots[i] = *other;
        } else {
            self.slots[i].merge(other);
        }
    }

    /// The customers, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &Totals> {
        self.slots.iter().filter(|s| s.orders != 0)
    }
}

impl Default for TotalsTable {
    fn default() -> Self {
        Self::new()
    }
}

/// Totals split into `2^shard_bits` tables by the top bits of the key's hash, so that the
/// tables of several partitions can be merged shard by shard, in parallel.
#[derive(Debug, Clone)]
pub struct ShardedTotals {
    shards: Vec<TotalsTable>,
    shard_bits: u32,
}

impl ShardedTotals {
    /// At least `shards` shards (rounded up to a power of two, at most 64).
    pub fn new(shards: usize) -> Self {
        let shard_bits = shards.clamp(1, 64).next_power_of_two().trailing_zeros();
        Self {
            shards: (0..1 << shard_bits).map(|_| TotalsTable::new()).collect(),
            shard_bits,
        }
    }

    /// The shard of `hash`.
    fn shard(&self, hash: u64) -> usize {
        if self.shard_bits == 0 {
            0
        } else {
            (hash >> (64 - self.shard_bits)) as usize
        }
    }

    /// Bytes the tables take.
    pub fn bytes(&self) -> usize {
        self.shards.iter().map(TotalsTable::bytes).sum()
    }

    /// Adds one order.
    pub fn add(&mut self, customer_id: i64, ts: i64, amount: f64) {
        let hash = mix(customer_id);
        let shard = self.shard(hash);
        let skip = self.shard_bits;
        self.shards[shard].add(customer_id, hash, skip, ts, amount);
    }

    /// Adds orders `i` of `ids`, `ts` and `amounts` (of equal length). The slots of the
    /// orders [`AHEAD`] rows on are prefetched, so that their cache misses overlap.
    pub fn add_all(&mut self, ids: &[i64], ts: &[i64], amounts: &[f64]) {
        let hashes: Vec<u64> = ids.iter().map(|&id| mix(id)).collect();
        let skip = self.shard_bits;
        for (i, &hash) in hashes.iter().enumerate() {
            if let Some(&ahead) = hashes.get(i + AHEAD) {
                let table = &self.shards[self.shard(ahead)];
                let slot = table.start(ahead, skip);
                // A slot may straddle two cache lines: the next slot starts in the second.
                prefetch(&table.slots, slot);
                prefetch(&table.slots, slot + 1);
            }
            let shard = self.shard(hash);
            self.shards[shard].add(ids[i], hash, skip, ts[i], amounts[i]);
        }
    }

    /// Splits into the shards, for [`merge_shards`].
    pub fn into_shards(self) -> Vec<TotalsTable> {
        self.shards
    }

    pub fn shard_bits(&self) -> u32 {
        self.shard_bits
    }
}

/// One shard's tables from every partition merged into one (the largest absorbs the rest).
/// `shard_bits` as in the [`ShardedTotals`] they came from.
pub fn merge_shards(mut tables: Vec<TotalsTable>, shard_bits: u32) -> TotalsTable {
    let Some(largest) = (0..tables.len()).max_by_key(|&i| tables[i].len()) else {
        return TotalsTable::new();
    };
    let mut into = tables.swap_remove(largest);
    for table in &tables {
        for slot in table.iter() {
            into.merge_slot(slot, shard_bits);
        }
    }
    into
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn reference(orders: &[(i64, i64, f64)]) -> BTreeMap<i64, (i64, i64, i64, f64)> {
        let mut want: BTreeMap<i64, (i64, i64, i64, f64)> = BTreeMap::new();
        for &(c, ts, a) in orders {
            let e = want.entry(c).or_insert((0, ts, ts, 0.0));
            e.0 += 1;
            e.1 = e.1.min(ts);
            e.2 = e.2.max(ts);
            e.3 += a;
        }
        want
    }

    fn collected(tables: &[TotalsTable]) -> BTreeMap<i64, (i64, i64, i64, f64)> {
        let mut got = BTreeMap::new();
        for t in tables {
            for s in t.iter() {
                let before = got.insert(s.customer_id, (s.orders, s.first, s.last, s.amount));
                assert!(before.is_none(), "customer {} in two shards", s.customer_id);
            }
        }
        got
    }

    #[test]
    fn grows_past_many_customers_and_keeps_each_once() {
        let mut totals = ShardedTotals::new(4);
        for round in 0..3 {
            for c in 0..10_000i64 {
                totals.add(c * 1_000_003 - 5_000_000, round * 10 + c % 7, 1.5);
            }
        }
        let tables = totals.into_shards();
        assert_eq!(tables.iter().map(TotalsTable::len).sum::<usize>(), 10_000);
        let got = collected(&tables);
        assert_eq!(got[&-5_000_000], (3, 0, 20, 4.5));
        for t in &tables {
            assert!(t.len() * 2 <= t.bytes() / SLOT_BYTES);
        }
    }

    #[test]
    fn extreme_ids_are_customers_like_any_other() {
        let mut totals = ShardedTotals::new(1);
        for c in [i64::MIN, -1, 0, 1, i64::MAX] {
            totals.add(c, 5, 1.0);
            totals.add(c, -5, 2.0);
        }
        let got = collected(&totals.into_shards());
        assert_eq!(got.len(), 5);
        assert!(got.values().all(|v| *v == (2, -5, 5, 3.0)));
    }

    proptest! {
        /// However the orders are split between partitions and shards, the merged totals
        /// are those of one pass over all orders.
        #[test]
        fn partitions_merge_to_one_pass(
            orders in proptest::collection::vec((-50i64..50, -1000i64..1000, 0u32..1000), 0..400),
            partitions in 1usize..4,
            shards in 1usize..9,
        ) {
            let orders: Vec<(i64, i64, f64)> = orders
                .into_iter()
                .map(|(c, t, a)| (c * 7_777_777_777, t, a as f64 / 4.0))
                .collect();
            let mut parts: Vec<ShardedTotals> = (0..partitions).map(|_| ShardedTotals::new(shards)).collect();
            for (i, &(c, t, a)) in orders.iter().enumerate() {
                if i % 2 == 0 {
                    parts[i % partitions].add(c, t, a);
                } else {
                    parts[i % partitions].add_all(&[c], &[t], &[a]);
                }
            }
            let (ids, rest): (Vec<i64>, Vec<(i64, f64)>) = orders.iter().map(|&(c, t, a)| (c, (t, a))).unzip();
            let (ts, amounts): (Vec<i64>, Vec<f64>) = rest.into_iter().unzip();
            let mut whole = ShardedTotals::new(shards);
            whole.add_all(&ids, &ts, &amounts);
            prop_assert_eq!(collected(&whole.into_shards()), reference(&orders));
            let bits = parts[0].shard_bits();
            let mut by_shard: Vec<Vec<TotalsTable>> = (0..1 << bits).map(|_| Vec::new()).collect();
            for part in parts {
                for (s, table) in part.into_shards().into_iter().enumerate() {
                    by_shard[s].push(table);
                }
            }
            let merged: Vec<TotalsTable> = by_shard.into_iter().map(|t| merge_shards(t, bits)).collect();
            prop_assert_eq!(collected(&merged), reference(&orders));
        }
    }
}
