//! A stable LSD radix sort by an `i64` key, for the orders the customer functions group
//! by a `bigint` id.
//!
//! Only the bits that differ between the keys are sorted on, in at most 11-bit digits
//! (customer ids spanning a million values take two passes), each pass a scatter
//! through a histogram that stays in L1. On the few thousand orders of one bucket (see
//! `ltv::sql`), all in cache, that is a few nanoseconds an order, where a comparison
//! sort costs tens.

/// Widest digit: a histogram of 2^11 counters is 16 KiB.
const MAX_DIGIT_BITS: u32 = 11;

/// The items of `runs`, one after the other, sorted by `key` (ascending, stable: equal
/// keys keep their order, earlier runs first). `a` and `b` are scratch space the
/// result lies in, kept by the caller so that sorting many small runs allocates
/// rarely; they only grow.
pub fn sort_runs_by_i64_key<'x, T: Copy, K: Fn(&T) -> i64>(
    runs: &[&[T]],
    a: &'x mut Vec<T>,
    b: &'x mut Vec<T>,
    key: K,
) -> &'x [T] {
    // Signed order as unsigned: flip the sign bit.
    let unsigned = |item: &T| (key(item) as u64) ^ (1 << 63);
    let n: usize = runs.iter().map(|r| r.len()).sum();
    let Some(first) = runs.iter().find_map(|r| r.first()).copied() else {
        return &a[..0];
    };
    let first_key = unsigned(&first);
    let mut differ = 0u64;
    for run in runs {
        for item in run.iter() {
            differ |= unsigned(item) ^ first_key;
        }
    }
    if a.len() < n {
        a.resize(n, first);
    }
    if differ == 0 {
        let mut at = 0;
        for run in runs {
            a[at..at + run.len()].copy_from_slice(run);
            at += run.len();
        }
        return &a[..n];
    }
    if b.len() < n {
        b.resize(n, first);
    }
    // Digits of equal width over the bits from the lowest to the highest that differ.
    let low = differ.trailing_zeros();
    let span = 64 - differ.leading_zeros() - low;
    let passes = span.div_ceil(MAX_DIGIT_BITS);
    let width = span.div_ceil(passes);
    let mask = (1u64 << width) - 1;
    let digit = |item: &T, pass: u32| ((unsigned(item) >> (low + pass * width)) & mask) as usize;
    let size = 1usize << width;
    let mut counts = vec![0usize; size * passes as usize];
    for run in runs {
        for item in run.iter() {
            for pass in 0..passes {
                counts[pass as usize * size + digit(item, pass)] += 1;
            }
        }
    }
    // Histogram counts to first positions.
    for histogram in counts.chunks_mut(size) {
        let mut sum = 0;
        for slot in histogram.iter_mut() {
            let c = *slot;
            *slot = sum;
            sum += c;
        }
    }
    // The first pass reads the runs; later ones go back and forth between a and b.
    let (mut from, mut to) = (b, a);
    let next = &mut counts[..size];
    for run in runs {
        for item in run.iter() {
            let d = digit(item, 0);
            to[next[d]] = *item;
            next[d] += 1;
        }
    }
    for pass in 1..passes {
        std::mem::swap(&mut from, &mut to);
        let next = &mut counts[pass as usize * size..(pass as usize + 1) * size];
        for item in from[..n].iter() {
            let d = digit(item, pass);
            to[next[d]] = *item;
            next[d] += 1;
        }
    }
    &to[..n]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sorted(runs: &[&[(i64, usize)]]) -> Vec<(i64, usize)> {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        sort_runs_by_i64_key(runs, &mut a, &mut b, |i| i.0).to_vec()
    }

    #[test]
    fn extremes_and_negatives() {
        let keys = [5, i64::MIN, -1, 0, i64::MAX, -300, 1 << 40, 7];
        let items: Vec<(i64, usize)> = keys.iter().map(|&k| (k, 0)).collect();
        let got: Vec<i64> = sorted(&[&items]).iter().map(|i| i.0).collect();
        assert_eq!(got, vec![i64::MIN, -300, -1, 0, 5, 7, 1 << 40, i64::MAX]);
    }

    #[test]
    fn nothing_and_equal_keys() {
        assert!(sorted(&[&[], &[]]).is_empty());
        assert_eq!(sorted(&[&[(3, 1)], &[(3, 0)]]), vec![(3, 1), (3, 0)]);
    }

    proptest! {
        /// The same order as the standard library's stable sort of the runs one after
        /// the other, ties included, with scratch space reused from sort to sort (left
        /// longer than the next sort needs).
        #[test]
        fn sorts_as_a_stable_sort(
            sorts in proptest::collection::vec(
                (
                    proptest::collection::vec(
                        prop_oneof![-5i64..5, any::<i64>(), 0i64..1_000_000, 0i64..(1 << 40)],
                        0..300,
                    ),
                    0usize..300,
                ),
                1..4,
            ),
        ) {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for (keys, split) in sorts {
                let items: Vec<(i64, usize)> = keys.iter().copied().zip(0..).collect();
                let (left, right) = items.split_at(split.min(items.len()));
                let mut want = items.clone();
                want.sort_by_key(|i| i.0);
                let got = sort_runs_by_i64_key(&[left, right], &mut a, &mut b, |i| i.0);
                prop_assert_eq!(got, &want[..]);
            }
        }
    }
}
