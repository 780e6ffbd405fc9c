//! Histories in whole numbers: frequencies always are, and so are recency and T in days
//! and weeks. Below [`WHOLE_LIMIT`] such values index tables directly, where other
//! values are looked up in dictionaries; [`WholeTallies`] are the counts the fits and
//! the scoring lay their data out by, gathered while the summaries are made, so that
//! none of them needs a pass over the columns of its own to count.

/// Largest whole value (plus one) that indexes tables directly.
pub const WHOLE_LIMIT: usize = 1 << 16;

/// Rows tested together, without a branch per row, before the verdict is looked at.
pub const WHOLE_BLOCK: usize = 1024;

/// `v` (−0 already read as 0) as an index below [`WHOLE_LIMIT`]: the right one when
/// [`is_index`] says so, some index in range otherwise (so a table can be indexed before
/// the verdict is looked at).
#[inline(always)]
pub fn index_of(v: f64) -> usize {
    // Casts to i32 saturate (NaN to 0) and are one instruction, unlike usize's.
    (v as i32 as usize) & (WHOLE_LIMIT - 1)
}

/// Whether `v` is the whole number `index` (from [`index_of`]): in range, a cast to i32
/// and back keeps exactly the whole numbers. Without branches.
#[inline(always)]
pub fn is_index(v: f64, index: usize) -> bool {
    (v >= 0.0) & (v < WHOLE_LIMIT as f64) & (index as f64 == v)
}

/// `v` as an index below [`WHOLE_LIMIT`] when it is a whole number in range (−0 read
/// as 0), for the places that test one value at a time.
#[inline(always)]
pub fn whole_index(v: f64) -> Option<usize> {
    let v = v + 0.0;
    let index = index_of(v);
    is_index(v, index).then_some(index)
}

/// Counts over summaries whose frequency, recency and T are whole numbers below
/// [`WHOLE_LIMIT`] and whose mean spend is finite, kept beside their columns by
/// [`super::summary::SummaryColumns`]. Tables grow to the largest value seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WholeTallies {
    /// Customers with repeat purchases per frequency (none at 0).
    pub repeat_by_x: Vec<usize>,
    /// Of those, the customers whose mean repeat spend is above 0 (the Gamma-Gamma
    /// fit's), per frequency.
    pub positive_spend_by_x: Vec<usize>,
    /// Customers without repeat purchases per T.
    pub first_only_by_t: Vec<usize>,
    /// Whether some customer has this T or this recency.
    pub time_seen: Vec<bool>,
    /// Whether some customer has this T.
    pub t_seen: Vec<bool>,
}

impl WholeTallies {
    /// Counts one customer in; `false`, counting nothing, when its values are not
    /// whole numbers below [`WHOLE_LIMIT`] or its spend is not finite (the tallies
    /// then no longer describe the columns, and are dropped).
    #[inline]
    pub fn add(&mut self, x: u64, t_x: f64, t: f64, monetary_value: f64) -> bool {
        let (Some(ti), Some(t_xi)) = (whole_index(t), whole_index(t_x)) else {
            return false;
        };
        if !(x < WHOLE_LIMIT as u64 && monetary_value.is_finite()) {
            return false;
        }
        let x = x as usize;
        let times = ti.max(t_xi) + 1;
        if self.time_seen.len() < times {
            self.time_seen.resize(times, false);
            self.t_seen.resize(times, false);
        }
        self.time_seen[ti] = true;
        self.time_seen[t_xi] = true;
        self.t_seen[ti] = true;
        if x == 0 {
            grow_to(&mut self.first_only_by_t, ti)[ti] += 1;
        } else {
            grow_to(&mut self.repeat_by_x, x)[x] += 1;
            grow_to(&mut self.positive_spend_by_x, x)[x] += usize::from(monetary_value > 0.0);
        }
        true
    }

    /// Adds the counts of `other`.
    pub fn merge(&mut self, other: &WholeTallies) {
        fn add_to<T: Copy + Default>(mine: &mut Vec<T>, theirs: &[T], add: impl Fn(T, T) -> T) {
            if mine.len() < theirs.len() {
                mine.resize(theirs.len(), T::default());
            }
            for (m, &t) in mine.iter_mut().zip(theirs) {
                *m = add(*m, t);
            }
        }
        add_to(&mut self.repeat_by_x, &other.repeat_by_x, |a, b| a + b);
        add_to(
            &mut self.positive_spend_by_x,
            &other.positive_spend_by_x,
            |a, b| a + b,
        );
        add_to(&mut self.first_only_by_t, &other.first_only_by_t, |a, b| {
            a + b
        });
        add_to(&mut self.time_seen, &other.time_seen, |a, b| a | b);
        add_to(&mut self.t_seen, &other.t_seen, |a, b| a | b);
    }

    /// Customers counted.
    pub fn customers(&self) -> usize {
        self.repeat_by_x.iter().sum::<usize>() + self.first_only_by_t.iter().sum::<usize>()
    }

    /// Whether some customer has frequency `x`.
    pub fn has_x(&self, x: usize) -> bool {
        if x == 0 {
            self.first_only_by_t.iter().any(|&c| c > 0)
        } else {
            self.repeat_by_x.get(x).is_some_and(|&c| c > 0)
        }
    }
}

/// `table`, grown with zeros to hold index `at`.
#[inline(always)]
fn grow_to(table: &mut Vec<usize>, at: usize) -> &mut Vec<usize> {
    if table.len() <= at {
        table.resize(at + 1, 0);
    }
    table
}

/// `n` customers' summaries in whole days, as a two-year order log gives them: a third
/// without repeat purchases, a tenth of the others with free repeat orders only.
#[cfg(test)]
pub(crate) fn simulated_summaries(n: usize, seed: u64) -> super::summary::SummaryColumns {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut columns = super::summary::SummaryColumns::with_capacity(n);
    for _ in 0..n {
        let t = f64::from(rng.gen_range(0..730u32));
        let x: u64 = if rng.gen_bool(0.35) || t == 0.0 {
            0
        } else {
            rng.gen_range(1..40)
        };
        let recency = if x == 0 {
            0.0
        } else {
            f64::from(rng.gen_range(1..=t as u32))
        };
        let monetary_value = if x == 0 || rng.gen_range(0..10) == 0 {
            0.0
        } else {
            rng.gen_range(1.0..300.0)
        };
        columns.push(&super::summary::ClvSummary {
            frequency: x,
            recency,
            t,
            monetary_value,
        });
    }
    columns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_exactly_the_whole_numbers_in_range() {
        for v in [0.0, -0.0 + 0.0, 1.0, 730.0, 65_535.0] {
            assert!(is_index(v, index_of(v)), "{v}");
            assert_eq!(index_of(v) as f64, v);
        }
        for v in [
            -1.0,
            0.5,
            65_536.0,
            1e300,
            f64::NAN,
            f64::INFINITY,
            -f64::INFINITY,
        ] {
            assert!(!is_index(v, index_of(v)), "{v}");
            assert!(index_of(v) < WHOLE_LIMIT);
        }
    }

    #[test]
    fn tallies_count_and_merge() {
        let mut a = WholeTallies::default();
        assert!(a.add(0, 0.0, 10.0, 0.0));
        assert!(a.add(2, 5.0, 10.0, 3.5));
        assert!(a.add(2, 7.0, 12.0, 0.0));
        let mut b = WholeTallies::default();
        assert!(b.add(1, 3.0, 4.0, 1.0));
        assert!(b.add(0, 0.0, 4.0, 0.0));
        assert!(!b.add(1, 0.5, 4.0, 1.0));
        assert!(!b.add(1, 1.0, 4.0, f64::INFINITY));
        assert!(!b.add(1 << 16, 1.0, 4.0, 1.0));
        a.merge(&b);
        assert_eq!(a.repeat_by_x, vec![0, 1, 2]);
        assert_eq!(a.positive_spend_by_x, vec![0, 1, 1]);
        assert_eq!(a.first_only_by_t[4], 1);
        assert_eq!(a.first_only_by_t[10], 1);
        assert_eq!(a.customers(), 5);
        let seen =
            |table: &[bool]| -> Vec<usize> { (0..table.len()).filter(|&v| table[v]).collect() };
        assert_eq!(seen(&a.time_seen), vec![0, 3, 4, 5, 7, 10, 12]);
        assert_eq!(seen(&a.t_seen), vec![4, 10, 12]);
        assert!(a.has_x(0) && a.has_x(1) && a.has_x(2) && !a.has_x(3));
    }

    #[test]
    fn summary_columns_keep_tallies_while_whole() {
        let mut columns = simulated_summaries(1000, 3);
        let tallies = columns.whole_tallies().expect("whole days").clone();
        assert_eq!(tallies.customers(), 1000);
        let mut more = simulated_summaries(500, 4);
        let theirs = more.whole_tallies().unwrap().clone();
        columns.append(&mut more);
        let mut merged = tallies.clone();
        merged.merge(&theirs);
        assert_eq!(columns.whole_tallies(), Some(&merged));
        assert_eq!(more.whole_tallies().map(WholeTallies::customers), Some(0));
        // A month-unit age is not whole: no tallies from then on.
        columns.push(&super::super::summary::ClvSummary {
            frequency: 1,
            recency: 0.5,
            t: 1.5,
            monetary_value: 2.0,
        });
        assert_eq!(columns.whole_tallies(), None);
        // Nor for columns filled other than by `push`.
        let mut direct = simulated_summaries(10, 5);
        direct.frequency.push(1.0);
        assert_eq!(direct.whole_tallies(), None);
    }
}
