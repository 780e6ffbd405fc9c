//! Per-customer order totals (first and last order time, order count, amount sum) for
//! `bigint` customer ids: plain Rust, no DataFusion.
//!
//! `rfm` spends most of its time here: 10M orders of 1M customers are 10M random updates
//! of a 1M-entry table. DataFusion's generic hash aggregate keeps the keys in one table
//! and each aggregate in an array of its own, so a row touches five cache lines; here a
//! customer's key and all four totals share one 48-byte slot of an open-addressing table,
//! so a row mostly touches one. All input partitions fill one [`SharedTotals`], split
//! into shards by hash, each shard behind a lock that a partition takes once per a few
//! hundred of its orders ([`Stager`]).

use std::sync::{Arc, Mutex};

use crate::functions::compensated_sum::CompensatedSum;
use crate::functions::mix::mix;
use crate::functions::prefetch::prefetch_whole;

/// One customer's totals. `orders == 0` marks an empty slot.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub customer_id: i64,
    pub orders: i64,
    /// Microseconds.
    pub first: i64,
    /// Microseconds.
    pub last: i64,
    /// Summed with compensation: the same amounts in any order (however the input is
    /// split between threads) give the same total, so customers who spent the same tie.
    amount: CompensatedSum,
}

impl Totals {
    fn add(&mut self, ts: i64, amount: f64) {
        self.orders += 1;
        self.first = self.first.min(ts);
        self.last = self.last.max(ts);
        self.amount.add(amount);
    }

    /// The sum of the amounts.
    pub fn monetary(&self) -> f64 {
        self.amount.value()
    }
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
    const MIN_BITS: u32 = 4;

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
                amount: CompensatedSum::default(),
            };
        }
        self.slots[i].add(ts, amount);
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

/// One customer table for every partition: `2^shard_bits` tables, split by the top bits of
/// the key's hash, each behind a lock of its own. Partitions add their orders through a
/// [`Stager`] each, so a customer seen by several partitions takes one slot, not one per
/// partition, and there is nothing to merge afterwards.
#[derive(Debug)]
pub struct SharedTotals {
    shards: Vec<Mutex<TotalsTable>>,
    shard_bits: u32,
}

impl SharedTotals {
    /// At least `shards` shards (rounded up to a power of two, at most 4096).
    pub fn new(shards: usize) -> Self {
        let shard_bits = shards.clamp(1, 4096).next_power_of_two().trailing_zeros();
        Self {
            shards: (0..1 << shard_bits)
                .map(|_| Mutex::new(TotalsTable::new()))
                .collect(),
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

    /// The shards' tables, each customer in exactly one (every [`Stager`] must have been
    /// [finished](Stager::finish)).
    pub fn into_tables(self) -> Vec<TotalsTable> {
        self.shards
            .into_iter()
            .map(|m| m.into_inner().expect("an rfm totals lock was poisoned"))
            .collect()
    }
}

/// How many orders a [`Stager`] gathers for a shard before it takes the shard's lock.
const STAGE: usize = 256;

/// An order waiting in a [`Stager`], with its key's hash (which picked the shard and
/// will pick the slot).
#[derive(Debug, Clone, Copy, Default)]
struct Staged {
    customer_id: i64,
    hash: u64,
    ts: i64,
    amount: f64,
}

/// One partition's way into a [`SharedTotals`]: orders are gathered by shard and a
/// shard's [`STAGE`] orders are added under one taking of its lock (so locks are taken
/// rarely and seldom contended), their slots prefetched [`AHEAD`] orders on.
#[derive(Debug)]
pub struct Stager {
    shared: Arc<SharedTotals>,
    /// `STAGE` orders per shard; shard `s` has `staged_len[s]` of them.
    staged: Vec<Staged>,
    staged_len: Vec<usize>,
    /// Bytes the shared tables grew by while this stager added to them.
    grown: usize,
}

impl Stager {
    pub fn new(shared: Arc<SharedTotals>) -> Self {
        let shards = shared.shards.len();
        Self {
            shared,
            staged: vec![Staged::default(); shards * STAGE],
            staged_len: vec![0; shards],
            grown: 0,
        }
    }

    /// Bytes this stager accounts for: its stage and what the tables grew by through it
    /// (so that the stagers of all partitions together account for the tables once).
    pub fn bytes(&self) -> usize {
        self.staged.len() * std::mem::size_of::<Staged>() + self.grown
    }

    /// Adds one order.
    pub fn add(&mut self, customer_id: i64, ts: i64, amount: f64) {
        let hash = mix(customer_id);
        let shard = self.shared.shard(hash);
        let at = shard * STAGE + self.staged_len[shard];
        self.staged[at] = Staged {
            customer_id,
            hash,
            ts,
            amount,
        };
        self.staged_len[shard] += 1;
        if self.staged_len[shard] == STAGE {
            self.flush(shard);
        }
    }

    /// Adds orders `i` of `ids`, `ts` and `amounts` (of equal length).
    pub fn add_all(&mut self, ids: &[i64], ts: &[i64], amounts: &[f64]) {
        for ((&id, &ts), &amount) in ids.iter().zip(ts).zip(amounts) {
            self.add(id, ts, amount);
        }
    }

    /// Adds shard `shard`'s staged orders to its table.
    fn flush(&mut self, shard: usize) {
        let staged = &self.staged[shard * STAGE..shard * STAGE + self.staged_len[shard]];
        self.staged_len[shard] = 0;
        if staged.is_empty() {
            return;
        }
        let skip = self.shared.shard_bits;
        let mut table = self.shared.shards[shard]
            .lock()
            .expect("an rfm totals lock was poisoned");
        let before = table.bytes();
        for (k, order) in staged.iter().enumerate() {
            if let Some(ahead) = staged.get(k + AHEAD) {
                prefetch_whole(&table.slots, table.start(ahead.hash, skip));
            }
            table.add(order.customer_id, order.hash, skip, order.ts, order.amount);
        }
        self.grown += table.bytes() - before;
    }

    /// Adds every staged order.
    pub fn finish(mut self) {
        for shard in 0..self.staged_len.len() {
            self.flush(shard);
        }
    }
}

/// Every customer's totals, column by column, in shard and slot order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TotalsColumns {
    pub customer_id: Vec<i64>,
    pub first: Vec<i64>,
    pub last: Vec<i64>,
    pub orders: Vec<i64>,
    pub amount: Vec<f64>,
}

/// The tables' customers as columns, written on `threads` threads (each a run of tables
/// into its own part of the columns).
pub fn into_columns(tables: &[TotalsTable], threads: usize) -> TotalsColumns {
    let rows: usize = tables.iter().map(TotalsTable::len).sum();
    let mut out = TotalsColumns {
        customer_id: vec![0; rows],
        first: vec![0; rows],
        last: vec![0; rows],
        orders: vec![0; rows],
        amount: vec![0.0; rows],
    };
    let per_thread = tables.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let (mut ids, mut first, mut last, mut orders, mut amount) = (
            &mut out.customer_id[..],
            &mut out.first[..],
            &mut out.last[..],
            &mut out.orders[..],
            &mut out.amount[..],
        );
        for run in tables.chunks(per_thread) {
            let n: usize = run.iter().map(TotalsTable::len).sum();
            let (i, rest_ids) = std::mem::take(&mut ids).split_at_mut(n);
            let (f, rest_first) = std::mem::take(&mut first).split_at_mut(n);
            let (l, rest_last) = std::mem::take(&mut last).split_at_mut(n);
            let (o, rest_orders) = std::mem::take(&mut orders).split_at_mut(n);
            let (a, rest_amount) = std::mem::take(&mut amount).split_at_mut(n);
            (ids, first, last, orders, amount) =
                (rest_ids, rest_first, rest_last, rest_orders, rest_amount);
            scope.spawn(move || {
                let slots = run.iter().flat_map(TotalsTable::iter);
                for (k, t) in slots.enumerate() {
                    (i[k], f[k], l[k], o[k], a[k]) =
                        (t.customer_id, t.first, t.last, t.orders, t.monetary());
                }
            });
        }
    });
    out
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
                let before = got.insert(s.customer_id, (s.orders, s.first, s.last, s.monetary()));
                assert!(before.is_none(), "customer {} in two shards", s.customer_id);
            }
        }
        got
    }

    /// The tables of `shards` shards after `parts` stagers added their orders.
    fn fill(shards: usize, parts: &[&[(i64, i64, f64)]]) -> Vec<TotalsTable> {
        let shared = Arc::new(SharedTotals::new(shards));
        for orders in parts {
            let mut stager = Stager::new(shared.clone());
            for &(c, t, a) in orders.iter() {
                stager.add(c, t, a);
            }
            stager.finish();
        }
        Arc::try_unwrap(shared).unwrap().into_tables()
    }

    #[test]
    fn grows_past_many_customers_and_keeps_each_once() {
        let orders: Vec<(i64, i64, f64)> = (0..3)
            .flat_map(|round| {
                (0..10_000i64).map(move |c| (c * 1_000_003 - 5_000_000, round * 10 + c % 7, 1.5))
            })
            .collect();
        let tables = fill(4, &[&orders]);
        assert_eq!(tables.iter().map(TotalsTable::len).sum::<usize>(), 10_000);
        let got = collected(&tables);
        assert_eq!(got[&-5_000_000], (3, 0, 20, 4.5));
        for t in &tables {
            assert!(t.len() * 2 <= t.bytes() / SLOT_BYTES);
        }
    }

    #[test]
    fn extreme_ids_are_customers_like_any_other() {
        let orders: Vec<(i64, i64, f64)> = [i64::MIN, -1, 0, 1, i64::MAX]
            .into_iter()
            .flat_map(|c| [(c, 5, 1.0), (c, -5, 2.0)])
            .collect();
        let got = collected(&fill(1, &[&orders]));
        assert_eq!(got.len(), 5);
        assert!(got.values().all(|v| *v == (2, -5, 5, 3.0)));
    }

    #[test]
    fn stagers_account_for_the_tables_once() {
        let shared = Arc::new(SharedTotals::new(8));
        let mut stagers: Vec<Stager> = (0..3).map(|_| Stager::new(shared.clone())).collect();
        for c in 0..50_000i64 {
            stagers[(c % 3) as usize].add(c, c, 1.0);
        }
        let staged: usize = stagers
            .iter()
            .map(|s| s.staged.len() * std::mem::size_of::<Staged>())
            .sum();
        let grown: usize = stagers.iter().map(Stager::bytes).sum::<usize>() - staged;
        stagers.into_iter().for_each(Stager::finish);
        let tables = Arc::try_unwrap(shared).unwrap().into_tables();
        let initial = 8 * TotalsTable::new().bytes();
        // What is still staged at the end may grow the tables further.
        assert!(grown + initial <= tables.iter().map(TotalsTable::bytes).sum());
        assert_eq!(tables.iter().map(TotalsTable::len).sum::<usize>(), 50_000);
    }

    #[test]
    fn columns_hold_every_customer_once_whatever_the_threads() {
        let orders: Vec<(i64, i64, f64)> =
            (0..5_000i64).map(|c| (c * 31 % 4_001, c, 2.0)).collect();
        let tables = fill(16, &[&orders]);
        let want = collected(&tables);
        for threads in [1, 2, 3, 16, 40] {
            let columns = into_columns(&tables, threads);
            let got: BTreeMap<i64, (i64, i64, i64, f64)> = (0..columns.customer_id.len())
                .map(|i| {
                    (
                        columns.customer_id[i],
                        (
                            columns.orders[i],
                            columns.first[i],
                            columns.last[i],
                            columns.amount[i],
                        ),
                    )
                })
                .collect();
            assert_eq!(got.len(), columns.customer_id.len());
            assert_eq!(got, want);
        }
    }

    proptest! {
        /// However the orders are split between partitions (stagers) and shards, the
        /// totals are those of one pass over all orders.
        #[test]
        fn partitions_fill_as_one_pass(
            orders in proptest::collection::vec((-50i64..50, -1000i64..1000, 0u32..1000), 0..700),
            partitions in 1usize..4,
            shards in 1usize..9,
        ) {
            let orders: Vec<(i64, i64, f64)> = orders
                .into_iter()
                .map(|(c, t, a)| (c * 7_777_777_777, t, a as f64 / 4.0))
                .collect();
            let shared = Arc::new(SharedTotals::new(shards));
            let mut stagers: Vec<Stager> = (0..partitions).map(|_| Stager::new(shared.clone())).collect();
            // Interleaved, some one by one and some in slices.
            for (i, chunk) in orders.chunks(3).enumerate() {
                let stager = &mut stagers[i % partitions];
                if i % 2 == 0 {
                    for &(c, t, a) in chunk {
                        stager.add(c, t, a);
                    }
                } else {
                    let ids: Vec<i64> = chunk.iter().map(|o| o.0).collect();
                    let ts: Vec<i64> = chunk.iter().map(|o| o.1).collect();
                    let amounts: Vec<f64> = chunk.iter().map(|o| o.2).collect();
                    stager.add_all(&ids, &ts, &amounts);
                }
            }
            stagers.into_iter().for_each(Stager::finish);
            let tables = Arc::try_unwrap(shared).unwrap().into_tables();
            prop_assert_eq!(collected(&tables), reference(&orders));
        }
    }
}
