//! The summary of `bigint` customers without a global sort: each input partition
//! scatters its orders into buckets by a hash of the customer id as it reads them
//! ([`Scattered`]); then each bucket's orders from every partition are grouped by
//! customer in cache and each customer summarised ([`summarize_buckets`]), ranges of
//! buckets on several threads. Plain Rust; `sql` feeds it Arrow batches.

use std::mem::MaybeUninit;

use super::error::LtvError;
use super::summary::{self, Order, SummaryColumns, TimeUnit};
use crate::functions::mix::{mix, unmix};

/// One order of a `bigint` customer: (hash of customer_id, order_ts, amount). The hash
/// ([`mix`]) picks the bucket and the slot within it, and gives the id back
/// ([`unmix`]).
type HashedOrder = (u64, i64, f64);

/// Buckets each input partition scatters its orders into, by a hash of the customer
/// id, so a customer's orders from every partition meet in one bucket. At a few
/// million orders a bucket holds a few thousand, grouped in cache.
const BUCKETS: usize = 512;

/// Bits of the hash that pick the bucket.
const BUCKET_BITS: u32 = BUCKETS.trailing_zeros();

/// Orders per summarising thread (below it, fewer threads).
const ORDERS_PER_THREAD: usize = 100_000;

/// Orders staged per bucket before they are copied to it together: 192 bytes, three
/// whole cache lines.
const STAGED: usize = 8;

/// Orders per chunk of a bucket (a multiple of [`STAGED`], so staged orders always
/// fill the room left in the last chunk or start a new one).
const CHUNK: usize = 64 * STAGED;

/// Room for [`CHUNK`] orders, on a cache-line boundary: each flush of [`STAGED`]
/// orders then covers whole lines (see [`stream_staged`]).
#[repr(C, align(64))]
struct Chunk([MaybeUninit<HashedOrder>; CHUNK]);

/// One input partition's orders of `bigint` customers, scattered into [`BUCKETS`].
///
/// Orders are first staged in a small buffer per bucket (96 KiB for all of them, well
/// within a core's L2 cache) and copied to their bucket eight at a time: writing each
/// order straight to one of 512 places far apart in memory touches a different page
/// each time, and the address translations alone cost more than the copying. A bucket
/// is a list of fixed-size chunks, so it grows without copying what it holds.
pub struct Scattered {
    buckets: Vec<Vec<Box<Chunk>>>,
    /// Orders copied to each bucket (its chunks hold them in order, all full but the last).
    flushed: Box<[usize; BUCKETS]>,
    staged: Box<[[HashedOrder; STAGED]; BUCKETS]>,
    staged_len: Box<[u8; BUCKETS]>,
    /// The latest order time seen (the default `as_of`).
    latest: Option<i64>,
    /// Chunks held.
    chunks: usize,
}

impl Default for Scattered {
    fn default() -> Self {
        Scattered::new()
    }
}

impl Scattered {
    pub fn new() -> Self {
        Scattered {
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            flushed: Box::new([0; BUCKETS]),
            staged: Box::new([[(0, 0, 0.0); STAGED]; BUCKETS]),
            staged_len: Box::new([0; BUCKETS]),
            latest: None,
            chunks: 0,
        }
    }

    /// Adds the orders of one batch, column by column.
    pub fn extend(&mut self, ids: &[i64], ts: &[i64], amounts: &[f64]) {
        if let Some(&latest) = ts.iter().max() {
            self.latest = self.latest.max(Some(latest));
        }
        for ((&id, &ts), &amount) in ids.iter().zip(ts).zip(amounts) {
            let hash = mix(id);
            let bucket = (hash as usize) & (BUCKETS - 1);
            let len = usize::from(self.staged_len[bucket]);
            self.staged[bucket][len] = (hash, ts, amount);
            if len + 1 == STAGED {
                self.flush(bucket);
            } else {
                self.staged_len[bucket] = (len + 1) as u8;
            }
        }
        // The streamed orders are visible to whichever thread summarises them.
        stream_fence();
    }

    /// Moves a full staging buffer to its bucket.
    #[inline]
    fn flush(&mut self, bucket: usize) {
        let at = self.flushed[bucket] % CHUNK;
        let chunks = &mut self.buckets[bucket];
        if at == 0 {
            // SAFETY: `Chunk` is an array of `MaybeUninit`, for which any bytes,
            // initialised or not, are a valid value.
            chunks.push(unsafe { Box::<Chunk>::new_uninit().assume_init() });
            self.chunks += 1;
        }
        let last = chunks.last_mut().expect("a chunk with room");
        let to = <&mut [_; STAGED]>::try_from(&mut last.0[at..at + STAGED]).expect("STAGED orders");
        stream_staged(to, &self.staged[bucket]);
        self.flushed[bucket] += STAGED;
        self.staged_len[bucket] = 0;
    }

    /// A bucket's orders in the order they came: its chunks, then those still staged.
    fn runs(&self, bucket: usize) -> impl Iterator<Item = &[HashedOrder]> {
        let flushed = self.flushed[bucket];
        let staged = usize::from(self.staged_len[bucket]);
        self.buckets[bucket]
            .iter()
            .enumerate()
            .map(move |(k, chunk)| {
                let len = (flushed - k * CHUNK).min(CHUNK);
                // SAFETY: the first `flushed` orders of a bucket, `CHUNK` per chunk,
                // were written by `flush` (and fenced by `extend`).
                unsafe { std::slice::from_raw_parts(chunk.0.as_ptr().cast::<HashedOrder>(), len) }
            })
            .chain(std::iter::once(&self.staged[bucket][..staged]))
    }

    /// Bytes held, for the memory pool.
    pub fn bytes(&self) -> usize {
        (self.chunks * CHUNK + BUCKETS * STAGED) * std::mem::size_of::<HashedOrder>()
    }
}

/// Copies a full staging buffer to its place in a chunk with non-temporal stores.
/// The place is three whole cache lines (the chunk starts on a line and every flush
/// is 192 bytes), so the stores fill whole lines and go to memory without the lines
/// being read first: scattering writes each order's line once instead of reading it
/// in and writing it back, and the orders do not push out of cache what the
/// partition's reading keeps there.
#[inline(always)]
fn stream_staged(to: &mut [MaybeUninit<HashedOrder>; STAGED], from: &[HashedOrder; STAGED]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `to` and `from` are both `STAGED` orders (192 bytes) long, so the
    // twelve 16-byte loads and stores stay inside them; `to` starts on a 64-byte
    // boundary (a `Chunk` is aligned to 64 and `flush` writes at multiples of 192
    // bytes from its start), as the aligned streaming store needs; `from` is read
    // with unaligned loads. SSE2 is part of the x86_64 baseline.
    unsafe {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
        let src = from.as_ptr().cast::<__m128i>();
        let dst = to.as_mut_ptr().cast::<__m128i>();
        for i in 0..STAGED * size_of::<HashedOrder>() / 16 {
            _mm_stream_si128(dst.add(i), _mm_loadu_si128(src.add(i)));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for (slot, order) in to.iter_mut().zip(from) {
        slot.write(*order);
    }
}

/// Orders the streaming stores before any later store (the hand-over of a
/// partition's orders to the summarising threads): x86's ordinary release ordering
/// does not cover them.
#[inline]
fn stream_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a store fence has no operands and no effect on program state.
    unsafe {
        std::arch::x86_64::_mm_sfence();
    }
}

/// Every customer's summary: ids and summaries side by side, and the `as_of` used.
pub struct BucketSummaries {
    pub keys: Vec<i64>,
    pub columns: SummaryColumns,
    pub as_of: i64,
}

/// Summaries of the customers in `parts` as of `as_of` (default: the latest order),
/// bucket after bucket, the buckets split into contiguous ranges, one per thread (the
/// hash spreads orders evenly). `None` when there are no orders. Customers come out in
/// an order fixed by their ids' hashes (not by how the input was split).
pub fn summarize_buckets(
    parts: &[Scattered],
    as_of: Option<i64>,
    unit: TimeUnit,
) -> Result<Option<BucketSummaries>, LtvError> {
    let Some(as_of) = as_of.or_else(|| parts.iter().filter_map(|p| p.latest).max()) else {
        return Ok(None);
    };
    let orders = orders_in(parts, 0..BUCKETS);
    let available = crate::threads::available();
    let threads = orders.div_ceil(ORDERS_PER_THREAD).clamp(1, available);
    let per_thread = BUCKETS.div_ceil(threads);
    let summarised: Vec<Result<(Vec<i64>, SummaryColumns), LtvError>> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|i| {
                    let range = (i * per_thread).min(BUCKETS)..((i + 1) * per_thread).min(BUCKETS);
                    // Room for a customer per three orders, grown when there are more
                    // (the first thread's for every thread's customers, appended to it).
                    // Room for one per order would never grow, but columns that large
                    // come fresh from the system on every call, a page fault per 4 KiB
                    // written: a tenth more CPU for the summaries of 1M customers.
                    let room = if i == 0 {
                        orders
                    } else {
                        orders_in(parts, range.clone())
                    } / 3;
                    scope.spawn(move || summarize_bucket_range(parts, range, as_of, unit, room))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("summarising panicked"))
                .collect()
        });
    let mut parts = summarised.into_iter();
    let Some(first) = parts.next() else {
        return Ok(None);
    };
    // The others' customers are appended to the first thread's columns, which have
    // room for them at up to three orders a customer (see above).
    let (mut keys, mut columns) = first?;
    for part in parts {
        let (mut k, mut c) = part?;
        keys.append(&mut k);
        columns.append(&mut c);
    }
    Ok(Some(BucketSummaries {
        keys,
        columns,
        as_of,
    }))
}

/// Orders in the buckets of `range`, over all partitions.
fn orders_in(parts: &[Scattered], range: std::ops::Range<usize>) -> usize {
    parts
        .iter()
        .flat_map(|p| range.clone().flat_map(|b| p.runs(b)).map(<[_]>::len))
        .sum()
}

/// Summaries of the customers of the buckets in `range` (columns with room for
/// `room`): each bucket's orders from every partition grouped by customer
/// ([`group_by_hash`]), then each customer summarised.
fn summarize_bucket_range(
    parts: &[Scattered],
    range: std::ops::Range<usize>,
    as_of: i64,
    unit: TimeUnit,
    room: usize,
) -> Result<(Vec<i64>, SummaryColumns), LtvError> {
    let mut keys = Vec::with_capacity(room);
    let mut columns = SummaryColumns::with_capacity(room);
    let mut grouped: Vec<HashedOrder> = Vec::new();
    let mut slots: Vec<u32> = Vec::new();
    let mut customer: Vec<Order> = Vec::new();
    let mut runs: Vec<&[HashedOrder]> = Vec::new();
    for bucket in range {
        runs.clear();
        runs.extend(parts.iter().flat_map(|part| part.runs(bucket)));
        for run in group_by_hash(&runs, &mut grouped, &mut slots) {
            customer.clear();
            customer.extend(run.iter().map(|&(_, ts, amount)| Order { ts, amount }));
            if let Some(s) = summary::clv_summary(&mut customer, as_of, unit)? {
                keys.push(unmix(run[0].0));
                columns.push(&s);
            }
        }
    }
    Ok((keys, columns))
}

/// The orders of `runs` (one bucket's) grouped by hash: each group one customer's
/// orders in the order they came (runs in order). Groups follow the hash bits above
/// the bucket's (a counting sort on them: one slot per order or so, so that a slot
/// rarely holds two customers, and then those are told apart by a small stable sort).
/// `grouped` and `slots` are scratch space kept by the caller.
fn group_by_hash<'g>(
    runs: &[&[HashedOrder]],
    grouped: &'g mut Vec<HashedOrder>,
    slots: &mut Vec<u32>,
) -> impl Iterator<Item = &'g [HashedOrder]> {
    let n: usize = runs.iter().map(|r| r.len()).sum();
    let bits = n.next_power_of_two().trailing_zeros().clamp(4, 20);
    let slot_of = |hash: u64| ((hash >> BUCKET_BITS) & ((1 << bits) - 1)) as usize;
    slots.clear();
    slots.resize((1 << bits) + 1, 0);
    for run in runs {
        for order in run.iter() {
            slots[slot_of(order.0) + 1] += 1;
        }
    }
    // The running total in a register: adding each slot to the one before it in
    // memory waits for the store before (a sixth of this function's time).
    let mut total = 0;
    for slot in slots.iter_mut() {
        total += *slot;
        *slot = total;
    }
    // Every place below n is written before it is read: only ever grown.
    if grouped.len() < n {
        grouped.resize(n, (0, 0, 0.0));
    }
    let grouped = &mut grouped[..n];
    // slots[s] is where slot s's next order goes; afterwards, where slot s + 1 starts.
    for run in runs {
        for &order in run.iter() {
            let next = &mut slots[slot_of(order.0)];
            grouped[*next as usize] = order;
            *next += 1;
        }
    }
    let mut start = 0;
    for &end in &slots[..slots.len() - 1] {
        let slot = &mut grouped[start..end as usize];
        if slot.len() > 1 && slot.iter().any(|o| o.0 != slot[0].0) {
            slot.sort_by_key(|o| o.0);
        }
        start = end as usize;
    }
    grouped.chunk_by(|a, b| a.0 == b.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every customer's orders form one group, in the order they came, whatever
        /// the hashes and however the orders are split into runs.
        #[test]
        fn groups_each_customer_in_arrival_order(
            orders in proptest::collection::vec(
                (prop_oneof![0u64..4, any::<u64>(), (0u64..8).prop_map(|k| k << 40)], 0i64..1000),
                0..600,
            ),
            split in 0usize..600,
        ) {
            let orders: Vec<HashedOrder> =
                orders.iter().map(|&(h, t)| (h, t, 0.0)).collect();
            let (left, right) = orders.split_at(split.min(orders.len()));
            let (mut grouped, mut slots) = (Vec::new(), Vec::new());
            let groups: Vec<Vec<HashedOrder>> =
                group_by_hash(&[left, right], &mut grouped, &mut slots).map(<[_]>::to_vec).collect();
            prop_assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), orders.len());
            let mut seen = std::collections::HashSet::new();
            for group in &groups {
                let hash = group[0].0;
                prop_assert!(seen.insert(hash), "hash {} in two groups", hash);
                let want: Vec<HashedOrder> =
                    orders.iter().filter(|o| o.0 == hash).copied().collect();
                prop_assert_eq!(group, &want);
            }
        }
    }

    #[test]
    fn summaries_do_not_depend_on_the_split_into_partitions() {
        // 3,000 customers, orders of each spread over days and partitions.
        let mut ids = Vec::new();
        let mut ts = Vec::new();
        let mut amounts = Vec::new();
        for i in 0..12_000i64 {
            ids.push((i * 7919) % 3000 - 1500);
            ts.push((i % 97) * summary::MICROS_PER_DAY);
            amounts.push((i % 13) as f64 + 0.25);
        }
        let summarise = |parts: usize| {
            let mut scattered: Vec<Scattered> = (0..parts).map(|_| Scattered::new()).collect();
            for (b, chunk) in (0..ids.len()).collect::<Vec<_>>().chunks(1000).enumerate() {
                let r = chunk[0]..chunk[chunk.len() - 1] + 1;
                scattered[b % parts].extend(&ids[r.clone()], &ts[r.clone()], &amounts[r]);
            }
            summarize_buckets(&scattered, None, TimeUnit::Day)
                .unwrap()
                .unwrap()
        };
        let (one, three) = (summarise(1), summarise(3));
        assert_eq!(one.keys.len(), 3000);
        assert_eq!(one.keys, three.keys);
        assert_eq!(one.columns, three.columns);
        let mut keys = one.keys.clone();
        keys.sort_unstable();
        assert_eq!(keys, (-1500..1500).collect::<Vec<_>>());
    }
}
