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

/// Scores 1..=`bins` for `values`, higher values scoring higher, ties scoring equal.
pub fn scores<T: PartialOrd + Copy>(values: &[T], bins: u32) -> Vec<u32> {
    let n = values.len();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_unstable_by(|&a, &b| {
        values[a as usize]
            .partial_cmp(&values[b as usize])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut out = vec![1u32; n];
    if n <= 1 {
        return out;
    }
    let denominator = (n - 1) as f64;
    let mut block_start = 0usize;
    for (pos, &i) in order.iter().enumerate() {
        let v = values[i as usize];
        if pos > 0 && values[order[pos - 1] as usize] != v {
            block_start = pos;
        }
        // percent_rank and the product in double precision, exactly as SQL engines compute
        // `floor(bins * percent_rank() OVER (...))`, so a reference query agrees row for row.
        let percent_rank = block_start as f64 / denominator;
        let step = (bins as f64 * percent_rank).floor();
        out[i as usize] = (1 + step as u32).min(bins);
    }
    out
}

/// One customer's totals over their orders (at or before `as_of`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomerTotals {
    /// Whole days from the last order to `as_of`.
    pub recency_days: i64,
    /// Number of orders.
    pub frequency: i64,
    /// Sum of the amounts.
    pub monetary: f64,
}

/// The three scores of every customer, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RfmScores {
    pub r: Vec<u32>,
    pub f: Vec<u32>,
    pub m: Vec<u32>,
}

/// Score every customer; `bins` must be in [`BINS`].
pub fn score_all(customers: &[CustomerTotals], bins: u32) -> RfmScores {
    // Fewer days since the last order is better: rank on the negated days.
    let recency: Vec<i64> = customers.iter().map(|c| -c.recency_days).collect();
    let frequency: Vec<i64> = customers.iter().map(|c| c.frequency).collect();
    let monetary: Vec<f64> = customers.iter().map(|c| c.monetary).collect();
    RfmScores {
        r: scores(&recency, bins),
        f: scores(&frequency, bins),
        m: scores(&monetary, bins),
    }
}

/// The averages the value classes compare against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Averages {
    pub recency_days: f64,
    pub frequency: f64,
    pub monetary: f64,
}

/// Averages over all customers (`None` for none).
pub fn averages(customers: &[CustomerTotals]) -> Option<Averages> {
    if customers.is_empty() {
        return None;
    }
    let n = customers.len() as f64;
    let (mut r, mut f, mut m) = (0.0, 0.0, 0.0);
    for c in customers {
        r += c.recency_days as f64;
        f += c.frequency as f64;
        m += c.monetary;
    }
    Some(Averages {
        recency_days: r / n,
        frequency: f / n,
        monetary: m / n,
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
        assert_eq!(scores(&[1, 2, 2, 3, 9], 5), vec![1, 2, 2, 4, 5]);
        assert_eq!(scores(&[9, 3, 2, 2, 1], 5), vec![5, 4, 2, 2, 1]);
        assert_eq!(scores(&[7, 7, 7], 5), vec![1, 1, 1]);
        assert_eq!(scores(&[42], 5), vec![1]);
        assert_eq!(scores::<i64>(&[], 5), Vec::<u32>::new());
        assert_eq!(scores(&[1, 2], 5), vec![1, 5]);
        assert_eq!(scores(&[1.5, 0.5, 1.5], 3), vec![2, 1, 2]);
    }

    #[test]
    fn recency_ranks_oldest_first() {
        let customers = [
            CustomerTotals {
                recency_days: 300,
                frequency: 1,
                monetary: 10.0,
            },
            CustomerTotals {
                recency_days: 1,
                frequency: 9,
                monetary: 900.0,
            },
            CustomerTotals {
                recency_days: 30,
                frequency: 3,
                monetary: 50.0,
            },
        ];
        let s = score_all(&customers, 5);
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

    proptest! {
        /// The rule as written: a score is set by how many values are smaller, so it is
        /// the same for equal values, never decreases with the value, and does not
        /// depend on the order of the input.
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
