//! `retention`: did users who did the first thing also do each of the others? This
//! is the plain-Rust core (no DataFusion); it gives ClickHouse's `retention`
//! answer on the same rows.
//!
//! # `retention(cond1, ..., condN) → INT[]`
//!
//! An array of `N` zeros and ones:
//!
//! - element 1 is 1 when some row met `cond1`;
//! - element `k` (k > 1) is 1 when some row met `cond1` **and** some row met
//!   `condk` (the same row or another), else 0.
//!
//! There is no order and no window: typically each condition names a period
//! (`ts >= DATE '2024-01-01' AND ts < DATE '2024-01-02'` for day 0, the next
//! day for day 1, …), and the conditions do the time arithmetic. 2 to 32
//! conditions. A row with a NULL condition is skipped completely (the SQL layer
//! drops it), as ClickHouse skips a row with a NULL argument. No rows give all
//! zeros, e.g. `{0,0,0}`.
//!
//! # Representation
//!
//! The state is the set of conditions met by any row, as a `u32` bit mask (bit `i`
//! = condition `i + 1`). Partial states merge by OR, so the answer cannot depend
//! on row order or partitioning.

use thiserror::Error;

/// Fewest conditions `retention` takes: with one there is nothing to retain.
pub const MIN_RETENTION_CONDITIONS: usize = 2;

/// Most conditions `retention` takes (the width of the state's mask).
pub const MAX_RETENTION_CONDITIONS: usize = 32;

/// Everything `retention` can refuse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RetentionError {
    /// Fewer than [`MIN_RETENTION_CONDITIONS`] or more than
    /// [`MAX_RETENTION_CONDITIONS`] conditions.
    #[error("retention: expected 2 to 32 conditions, got {count}")]
    ConditionCount {
        /// How many conditions the call had.
        count: usize,
    },
}

/// Checks the number of conditions of a call: 2 to 32.
pub fn check_condition_count(count: usize) -> Result<(), RetentionError> {
    if (MIN_RETENTION_CONDITIONS..=MAX_RETENTION_CONDITIONS).contains(&count) {
        Ok(())
    } else {
        Err(RetentionError::ConditionCount { count })
    }
}

/// What a `retention` accumulator holds for one group: which conditions some row
/// met.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RetentionState {
    met: u32,
}

impl RetentionState {
    /// No row seen.
    pub fn new() -> Self {
        RetentionState::default()
    }

    /// A state from its serialized form ([`RetentionState::bits`]).
    pub fn from_bits(met: u32) -> Self {
        RetentionState { met }
    }

    /// The serialized form: bit `i` set when some row met condition `i + 1`.
    pub fn bits(&self) -> u32 {
        self.met
    }

    /// Adds one row: the mask of the conditions it met.
    #[inline]
    pub fn push(&mut self, mask: u32) {
        self.met |= mask;
    }

    /// Adds a partial state from another partition.
    #[inline]
    pub fn merge(&mut self, other: RetentionState) {
        self.met |= other.met;
    }

    /// The result as a bit mask over the first `n` conditions: bit `i` is element
    /// `i + 1` of the array. That is all of `met` when condition 1 was met, nothing
    /// otherwise. `n` is clamped to [`MAX_RETENTION_CONDITIONS`].
    pub fn result_bits(&self, n: usize) -> u32 {
        if self.met & 1 == 0 {
            return 0;
        }
        let all = if n >= MAX_RETENTION_CONDITIONS {
            u32::MAX
        } else {
            (1u32 << n) - 1
        };
        self.met & all
    }

    /// The result array: `n` elements (clamped to [`MAX_RETENTION_CONDITIONS`]),
    /// each 0 or 1.
    pub fn evaluate(&self, n: usize) -> Vec<u8> {
        let bits = self.result_bits(n);
        (0..n.min(MAX_RETENTION_CONDITIONS))
            .map(|i| u8::from(bits >> i & 1 == 1))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retention(rows: &[u32], n: usize) -> Vec<u8> {
        let mut s = RetentionState::new();
        for &m in rows {
            s.push(m);
        }
        s.evaluate(n)
    }

    #[test]
    fn first_element_is_whether_condition_one_was_met() {
        assert_eq!(retention(&[0b001], 3), vec![1, 0, 0]);
        assert_eq!(retention(&[0b110], 3), vec![0, 0, 0]);
    }

    #[test]
    fn later_elements_need_condition_one_too() {
        assert_eq!(retention(&[0b001, 0b100], 3), vec![1, 0, 1]);
        assert_eq!(retention(&[0b100, 0b010], 3), vec![0, 0, 0]);
    }

    #[test]
    fn the_same_row_may_meet_several_conditions() {
        assert_eq!(retention(&[0b111], 3), vec![1, 1, 1]);
    }

    #[test]
    fn no_order_between_conditions() {
        assert_eq!(retention(&[0b010, 0b001], 2), vec![1, 1]);
    }

    #[test]
    fn no_rows_give_all_zeros() {
        assert_eq!(retention(&[], 3), vec![0, 0, 0]);
        assert_eq!(RetentionState::new().result_bits(3), 0);
    }

    #[test]
    fn thirty_two_conditions() {
        assert_eq!(retention(&[u32::MAX], 32), vec![1; 32]);
        assert_eq!(
            RetentionState::from_bits(u32::MAX).result_bits(32),
            u32::MAX
        );
        assert_eq!(retention(&[1 | 1 << 31], 32)[31], 1);
    }

    #[test]
    fn bits_beyond_n_are_ignored() {
        assert_eq!(retention(&[0b1001], 3), vec![1, 0, 0]);
    }

    #[test]
    fn merging_is_or_and_round_trips() {
        let mut a = RetentionState::new();
        a.push(0b001);
        let mut b = RetentionState::new();
        b.push(0b100);
        let b = RetentionState::from_bits(b.bits());
        a.merge(b);
        assert_eq!(a.evaluate(3), vec![1, 0, 1]);
    }

    #[test]
    fn condition_counts_are_checked() {
        assert!(check_condition_count(2).is_ok());
        assert!(check_condition_count(32).is_ok());
        assert_eq!(
            check_condition_count(1),
            Err(RetentionError::ConditionCount { count: 1 })
        );
        assert_eq!(
            check_condition_count(33),
            Err(RetentionError::ConditionCount { count: 33 })
        );
    }

    mod laws {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any split into partial states gives the answer of the whole.
            #[test]
            fn splits_do_not_matter(rows in prop::collection::vec(0u32..32, 0..20), cut in any::<prop::sample::Index>(), n in 2usize..6) {
                let whole = retention(&rows, n);
                let at = cut.index(rows.len() + 1);
                let mut left = RetentionState::new();
                rows[..at].iter().for_each(|&m| left.push(m));
                let mut right = RetentionState::new();
                rows[at..].iter().for_each(|&m| right.push(m));
                right.merge(left);
                prop_assert_eq!(right.evaluate(n), whole);
            }
        }
    }
}
