//! RFM scores from per-customer totals: plain Rust, no DataFusion.
//!
//! A score is the customer's place in the distribution of one measure:
//! `score = min(bins, 1 + floor(bins × percent_rank))`, where `percent_rank` is
//! `(rank − 1) / (n − 1)` (0 when n = 1) and equal values share the rank of the first of
//! their block — so equal values always get equal scores, and the result does not
//! depend on row order (unlike `NTILE`, which splits ties arbitrarily). Higher is
//! better: recency ranks oldest first (most days since the last order scores 1), frequency
//! and monetary value rank smallest first.

/// The `rfm_bins` a score may have.
pub const BINS: std::ops::RangeInclusive<u32> = 2..=100;

/// A measure that can be scored: mapped to a `u64` that sorts as the value does.
pub trait Measure: Copy {
    /// Order-preserving key: `a < b` exactly when `a.key() < b.key()`, equal values equal.
    fn key(self) -> u64;
}

impl Measure for i64 {
    fn key(self) -> u64 {
        (self as u64) ^ (1 << 63)
    }
}

impl Measure for f64 {
    /// `-0.0` equals `0.0`, and every NaN is one value above all numbers (as PostgreSQL
    /// orders `double precision`).
    fn key(self) -> u64 {
        let v = if self.is_nan() { f64::NAN } else { self + 0.0 };
        let bits = v.to_bits();
        if bits >> 63 == 1 {
            !bits
        } else {
            bits | (1 << 63)
        }
    }
}

/// Scores 1..=`bins` for `values`, higher values scoring higher, ties scoring equal.
pub fn scores<T: Measure>(values: &[T], bins: u32) -> Vec<u32> {
    let n = values.len();
    if n <= 1 {
        return vec![1; n];
    }
    let keys: Vec<u64> = values.iter().map(|v| v.key()).collect();
    let denominator = (n - 1) as f64;
    // percent_rank and the product in double precision, exactly as SQL engines compute
    // `floor(bins * percent_rank() OVER (...))`, so a reference query agrees row for row.
    let score = |smaller: usize| -> u32 {
        let percent_rank = smaller as f64 / denominator;
        (1 + (bins as f64 * percent_rank).floor() as u32).min(bins)
    };
    let (lo, hi) = keys
        .iter()
        .fold((u64::MAX, 0), |(lo, hi), &k| (lo.min(k), hi.max(k)));
    let span = hi - lo;
    if span <= (2 * n as u64).max(4096) {
        // Few distinct values (days, order counts): count them, no sort.
        let mut smaller = vec![0usize; span as usize + 1];
        for &k in &keys {
            smaller[(k - lo) as usize] += 1;
        }
        let mut below = 0;
        for slot in smaller.iter_mut() {
            let count = *slot;
            *slot = below;
            below += count;
        }
        return keys
            .iter()
            .map(|&k| score(smaller[(k - lo) as usize]))
            .collect();
    }
    // Many distinct values (amounts): a score only depends on which of the `bins`
    // intervals `smaller` falls in. `smaller(v) >= t` exactly when the t-th smallest
    // value is below `v`, so the values at the few rank thresholds — selected, not
    // sorted — settle every score.
    let thresholds: Vec<usize> = (2..=bins)
        .map(|s| {
            // The least `smaller` scoring at least `s` (score(n - 1) = bins, so one exists).
            let (mut lo, mut hi) = (0usize, n - 1);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if score(mid) < s {
                    lo = mid + 1
                } else {
                    hi = mid
                }
            }
            lo
        })
        .collect();
    let mut ranked = keys.clone();
    let mut cuts = Vec::with_capacity(thresholds.len());
    if thresholds.len() > 16 {
        ranked.sort_unstable();
        cuts.extend(thresholds.iter().map(|&t| ranked[t - 1]));
    } else {
        // Ascending ranks: each selection only reorders what lies above the previous one.
        let mut done = 0usize;
        for &t in &thresholds {
            let rank = t - 1;
            if rank >= done {
                ranked[done..].select_nth_unstable(rank - done);
                done = rank + 1;
            }
            cuts.push(ranked[rank]);
        }
    }
    keys.iter()
        .map(|&k| 1 + cuts.partition_point(|&c| c < k) as u32)
        .collect()
}

/// The three measures of every customer over their orders (at or before `as_of`), one
/// slice each, customer `i` at index `i` of all three.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measures<'a> {
    /// Whole days from the last order to `as_of`.
    pub recency_days: &'a [i64],
    /// Number of orders.
    pub frequency: &'a [i64],
    /// Sum of the amounts.
    pub monetary: &'a [f64],
}

impl Measures<'_> {
    pub fn len(&self) -> usize {
        self.recency_days.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recency_days.is_empty()
    }
}

/// The three scores of every customer, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RfmScores {
    pub r: Vec<u32>,
    pub f: Vec<u32>,
    pub m: Vec<u32>,
}

/// From this many customers on, the three measures are ranked on threads of their own.
const PARALLEL_FROM: usize = 50_000;

/// Score every customer; `bins` must be in [`BINS`].
pub fn score_all(customers: Measures<'_>, bins: u32) -> RfmScores {
    // Fewer days since the last order is better: rank on the negated days.
    let recency = || {
        let negated: Vec<i64> = customers.recency_days.iter().map(|d| -d).collect();
        scores(&negated, bins)
    };
    if customers.len() < PARALLEL_FROM {
        return RfmScores {
            r: recency(),
            f: scores(customers.frequency, bins),
            m: scores(customers.monetary, bins),
        };
    }
    // The three rankings are independent: one thread each.
    std::thread::scope(|scope| {
        let r = scope.spawn(recency);
        let f = scope.spawn(|| scores(customers.frequency, bins));
        let m = scores(customers.monetary, bins);
        RfmScores {
            r: r.join().expect("recency scoring panicked"),
            f: f.join().expect("frequency scoring panicked"),
            m,
        }
    })
}

/// The averages the value classes compare against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Averages {
    pub recency_days: f64,
    pub frequency: f64,
    pub monetary: f64,
}

/// Averages over all customers (`None` for none).
pub fn averages(customers: Measures<'_>) -> Option<Averages> {
    if customers.is_empty() {
        return None;
    }
    let n = customers.len() as f64;
    let sum_ints = |values: &[i64]| values.iter().map(|&v| v as f64).sum::<f64>();
    Some(Averages {
        recency_days: sum_ints(customers.recency_days) / n,
        frequency: sum_ints(customers.frequency) / n,
        monetary: customers.monetary.iter().sum::<f64>() / n,
    })
}

/// `floor((as_of − last) / 1 day)` for microsecond timestamps.
pub fn whole_days(as_of_micros: i64, last_micros: i64) -> i64 {
    (as_of_micros - last_micros).div_euclid(86_400_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ties_share_the_rank_of_their_block() {
        // percent_rank of [1, 2, 2, 3, 9] = [0, .25, .25, .75, 1]; × 5 → 0, 1.25, 1.25,
        // 3.75, 5 → scores 1, 2, 2, 4, 5.
        assert_eq!(scores(&[1i64, 2, 2, 3, 9], 5), vec![1, 2, 2, 4, 5]);
        assert_eq!(scores(&[9i64, 3, 2, 2, 1], 5), vec![5, 4, 2, 2, 1]);
        assert_eq!(scores(&[7i64, 7, 7], 5), vec![1, 1, 1]);
        assert_eq!(scores(&[42i64], 5), vec![1]);
        assert_eq!(scores::<i64>(&[], 5), Vec::<u32>::new());
        assert_eq!(scores(&[1i64, 2], 5), vec![1, 5]);
        assert_eq!(scores(&[1.5, 0.5, 1.5], 3), vec![2, 1, 2]);
    }

    #[test]
    fn recency_ranks_oldest_first() {
        let customers = Measures {
            recency_days: &[300, 1, 30],
            frequency: &[1, 9, 3],
            monetary: &[10.0, 900.0, 50.0],
        };
        let s = score_all(customers, 5);
        assert_eq!(s.r, vec![1, 5, 3]);
        assert_eq!(s.f, vec![1, 5, 3]);
        assert_eq!(s.m, vec![1, 5, 3]);
    }

    #[test]
    fn whole_days_floor() {
        let day = 86_400_000_000;
        assert_eq!(whole_days(10 * day, 10 * day), 0);
        assert_eq!(whole_days(10 * day, 10 * day - 1), 0);
        assert_eq!(whole_days(10 * day, 9 * day), 1);
        assert_eq!(whole_days(10 * day, 8 * day + 1), 1);
    }

    /// The rule as written, quadratic.
    fn naive(values: &[i64], bins: u32) -> Vec<u32> {
        let n = values.len();
        values
            .iter()
            .map(|v| {
                let smaller = values.iter().filter(|w| *w < v).count();
                if n <= 1 {
                    1
                } else {
                    let percent_rank = smaller as f64 / (n - 1) as f64;
                    (1 + (bins as f64 * percent_rank).floor() as u32).min(bins)
                }
            })
            .collect()
    }

    #[test]
    fn many_customers_score_as_few() {
        // Above the threshold the measures are ranked on threads: same answer.
        let n = PARALLEL_FROM as i64 + 7;
        let recency_days: Vec<i64> = (0..n).map(|i| (i * 7919) % 731).collect();
        let frequency: Vec<i64> = (0..n).map(|i| 1 + (i * 104_729) % 50).collect();
        let cents: Vec<i64> = (0..n).map(|i| (i * 15_485_863) % 1_000_003).collect();
        let monetary: Vec<f64> = cents.iter().map(|&c| c as f64 / 100.0).collect();
        let customers = Measures {
            recency_days: &recency_days,
            frequency: &frequency,
            monetary: &monetary,
        };
        let s = score_all(customers, 5);
        let negated: Vec<i64> = recency_days.iter().map(|d| -d).collect();
        assert_eq!(s.r, naive_sorted(&negated, 5));
        assert_eq!(s.f, naive_sorted(&frequency, 5));
        assert_eq!(s.m, naive_sorted(&cents, 5));
    }

    /// [`naive`] in n log n, for inputs too large to compare pairwise.
    fn naive_sorted(values: &[i64], bins: u32) -> Vec<u32> {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        let n = values.len();
        values
            .iter()
            .map(|v| {
                let smaller = sorted.partition_point(|w| w < v);
                let percent_rank = smaller as f64 / (n - 1) as f64;
                (1 + (bins as f64 * percent_rank).floor() as u32).min(bins)
            })
            .collect()
    }

    proptest! {
        /// The rule as written: a score is set by how many values are smaller, so it is
        /// the same for equal values, never decreases with the value, and does not
        /// depend on the order of the input.
        /// The same rule where the values spread too far to be counted (the sorting
        /// path), for integers and doubles, negative zero and NaN included.
        #[test]
        fn sparse_values_follow_the_rank_rule(
            picks in proptest::collection::vec(0usize..9, 0..80),
            bins in 2u32..40,
        ) {
            let ints = [i64::MIN, -7_000_000_000_000, -3, 0, 5, 1 << 40, 1 << 41, i64::MAX, 12];
            let got = scores(&picks.iter().map(|&p| ints[p]).collect::<Vec<_>>(), bins);
            prop_assert_eq!(got, naive(&picks.iter().map(|&p| ints[p]).collect::<Vec<_>>(), bins));
            let doubles = [f64::NEG_INFINITY, -1e300, -0.0, 0.0, 1e-300, 2.5, 1e300, f64::INFINITY, f64::NAN];
            let values: Vec<f64> = picks.iter().map(|&p| doubles[p]).collect();
            // PostgreSQL's order: -0 = 0, NaN = NaN and above everything.
            let rank = |v: f64| if v.is_nan() { 9.0 } else if v == 0.0 { 3.0 } else { doubles.iter().position(|d| *d == v).unwrap() as f64 };
            let ranks: Vec<i64> = values.iter().map(|&v| rank(v) as i64).collect();
            prop_assert_eq!(scores(&values, bins), naive(&ranks, bins));
        }

        #[test]
        fn scores_follow_the_rank_rule(values in proptest::collection::vec(0i64..20, 0..60), bins in 2u32..12) {
            let got = scores(&values, bins);
            let n = values.len();
            for (i, v) in values.iter().enumerate() {
                let smaller = values.iter().filter(|w| *w < v).count();
                let want = if n <= 1 { 1 } else {
                    let percent_rank = smaller as f64 / (n - 1) as f64;
                    (1 + (bins as f64 * percent_rank).floor() as u32).min(bins)
                };
                prop_assert_eq!(got[i], want);
            }
            let mut reversed = values.clone();
            reversed.reverse();
            let mut back = scores(&reversed, bins);
            back.reverse();
            prop_assert_eq!(back, got);
        }
    }
}
