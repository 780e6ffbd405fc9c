//! A parallel bucket sort for the resolver's large sorts: the (key, record) pairs and
//! the link steps.
//!
//! Each thread counts its share of the inputs per bucket; every item is then written
//! straight into its place (buckets in order, shares in input order within a bucket),
//! and the buckets are sorted side by side. When the buckets partition the sort order
//! (every item of bucket `b` sorts before every item of bucket `b + 1`), sorted
//! buckets in order are the whole array sorted: for a total order, the same array at
//! any thread count. No memory is needed beyond the output itself.

use std::ops::Range;

/// Sorts the items of inputs `0..len` (input `i` gives `item_of(i)`, or nothing) on
/// `threads` threads. `bucket_of(i)` is the bucket of input `i`'s item (`None` exactly
/// when it gives none), below `buckets`; `sort` sorts one bucket. Buckets must partition
/// the order `sort` sorts by.
pub(super) fn bucket_sorted<T>(
    len: usize,
    threads: usize,
    buckets: usize,
    bucket_of: impl Fn(usize) -> Option<usize> + Sync,
    item_of: impl Fn(usize) -> Option<T> + Sync,
    sort: impl Fn(&mut [T]) + Sync,
) -> Vec<T>
where
    T: Copy + Default + Send + Sync,
{
    if threads <= 1 || len == 0 || buckets <= 1 {
        let mut items: Vec<T> = (0..len).filter_map(&item_of).collect();
        sort(&mut items);
        return items;
    }
    let share = len.div_ceil(threads);
    let shares: Vec<Range<usize>> = (0..len)
        .step_by(share)
        .map(|start| start..(start + share).min(len))
        .collect();
    // Items per (share, bucket).
    let counts: Vec<Vec<usize>> = on_threads(&shares, |share| {
        let mut counts = vec![0usize; buckets];
        for i in share.clone() {
            if let Some(b) = bucket_of(i) {
                counts[b] += 1;
            }
        }
        counts
    });
    let bucket_len = |b: usize| counts.iter().map(|c| c[b]).sum::<usize>();
    let mut items = vec![T::default(); (0..buckets).map(bucket_len).sum()];

    // Each share's place in each bucket, then the items written there.
    let mut places: Vec<Vec<&mut [T]>> = shares.iter().map(|_| Vec::new()).collect();
    let mut rest = &mut items[..];
    for b in 0..buckets {
        for (share_places, share_counts) in places.iter_mut().zip(&counts) {
            let (place, after) = std::mem::take(&mut rest).split_at_mut(share_counts[b]);
            share_places.push(place);
            rest = after;
        }
    }
    std::thread::scope(|scope| {
        for (share, mut places) in shares.iter().zip(places) {
            let (bucket_of, item_of) = (&bucket_of, &item_of);
            scope.spawn(move || {
                let mut next = vec![0usize; buckets];
                for i in share.clone() {
                    if let (Some(b), Some(item)) = (bucket_of(i), item_of(i)) {
                        places[b][next[b]] = item;
                        next[b] += 1;
                    }
                }
            });
        }
    });

    // The buckets sorted side by side: each to the thread with the least so far.
    let mut work: Vec<(usize, Vec<&mut [T]>)> = (0..threads).map(|_| (0, Vec::new())).collect();
    let mut rest = &mut items[..];
    for b in 0..buckets {
        let (slice, after) = std::mem::take(&mut rest).split_at_mut(bucket_len(b));
        rest = after;
        if let Some((load, slices)) = work.iter_mut().min_by_key(|(load, _)| *load) {
            *load += slice.len();
            slices.push(slice);
        }
    }
    std::thread::scope(|scope| {
        for (_, slices) in work {
            let sort = &sort;
            scope.spawn(move || slices.into_iter().for_each(sort));
        }
    });
    items
}

/// `f` of each share, each on a thread of its own, in share order.
fn on_threads<R: Send>(shares: &[Range<usize>], f: impl Fn(&Range<usize>) -> R + Sync) -> Vec<R> {
    std::thread::scope(|scope| {
        let running: Vec<_> = shares
            .iter()
            .map(|share| {
                let f = &f;
                scope.spawn(move || f(share))
            })
            .collect();
        running
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_sorted_array_on_any_thread_count() {
        let value = |i: usize| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 44;
        // Every third input gives no item; buckets are ranges of the value.
        let bucket_of = |buckets: usize| {
            move |i: usize| (!i.is_multiple_of(3)).then(|| (value(i) as usize * buckets) >> 20)
        };
        let item_of = |i: usize| (!i.is_multiple_of(3)).then(|| value(i));
        let sort = |s: &mut [u64]| s.sort_unstable();
        let one = bucket_sorted(100_000, 1, 16, bucket_of(16), item_of, sort);
        assert_eq!(one.len(), 66_666);
        assert!(one.windows(2).all(|w| w[0] <= w[1]));
        for threads in 2..=7 {
            for buckets in [2, 5, 64] {
                let many =
                    bucket_sorted(100_000, threads, buckets, bucket_of(buckets), item_of, sort);
                assert_eq!(many, one, "{threads} threads, {buckets} buckets");
            }
        }
        assert!(bucket_sorted(0, 4, 8, bucket_of(8), item_of, sort).is_empty());
    }
}
