//! Growth accounting per period (`lifecycle_flow`): how many customers were active, new,
//! retained, reactivated and dormant in each period. Plain Rust over each customer's
//! sorted order timestamps (microseconds).
//!
//! Periods are `[start, start + period)` for `start = from, from + period, ...` while
//! `start < to`. Activity before `from` counts for "ever" and "before", and the first
//! period's previous period (`[from − period, from)`) is computed from the data like any
//! other. So in every period `active = new + retained + reactivated`, and
//! `dormant(p) = active(p − 1) − retained(p)`.

use chrono::{DateTime, Months, NaiveDateTime};

/// A calendar period: months, then days, then microseconds (as PostgreSQL adds an
/// interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

/// Why periods cannot be laid out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("the period must be positive (got {0})")]
    NotPositive(String),
    #[error("from_ts must be before to_ts")]
    EmptyRange,
    #[error("{0} periods between from_ts and to_ts; at most {MAX_PERIODS} are allowed")]
    TooMany(usize),
    #[error("a period start is outside the supported date range")]
    OutOfRange,
}

/// The most periods one call lays out.
pub const MAX_PERIODS: usize = 100_000;

fn naive(micros: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_micros(micros).map(|d| d.naive_utc())
}

fn micros_of(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_micros()
}

impl Period {
    /// `t + k × period`, month arithmetic on the calendar (Jan 31 + 1 month = Feb 29/28).
    pub fn add_times(&self, t: i64, k: i64) -> Option<i64> {
        let mut at = naive(t)?;
        let months = self.months as i64 * k;
        if months > 0 {
            at = at.checked_add_months(Months::new(u32::try_from(months).ok()?))?;
        } else if months < 0 {
            at = at.checked_sub_months(Months::new(u32::try_from(-months).ok()?))?;
        }
        let micros = micros_of(at)
            .checked_add((self.days as i64 * k).checked_mul(86_400_000_000)?)?
            .checked_add(self.micros.checked_mul(k)?)?;
        Some(micros)
    }

    fn is_positive(&self) -> bool {
        self.months >= 0
            && self.days >= 0
            && self.micros >= 0
            && (self.months > 0 || self.days > 0 || self.micros > 0)
    }
}

/// The periods of one `lifecycle_flow` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Periods {
    /// Start of the period before the first.
    previous_start: i64,
    /// Starts of the periods, then the end of the last one.
    bounds: Vec<i64>,
}

impl Periods {
    /// Lay out the periods from `from` while their start is before `to`.
    pub fn new(period: Period, from: i64, to: i64) -> Result<Self, PeriodError> {
        if !period.is_positive() {
            return Err(PeriodError::NotPositive(format!("{period:?}")));
        }
        if from >= to {
            return Err(PeriodError::EmptyRange);
        }
        let mut bounds = vec![from];
        loop {
            let k = bounds.len() as i64;
            let next = period.add_times(from, k).ok_or(PeriodError::OutOfRange)?;
            bounds.push(next);
            if next >= to {
                break;
            }
            if bounds.len() > MAX_PERIODS {
                let estimate = ((to - from) / (next - from).max(1)) as usize * bounds.len();
                return Err(PeriodError::TooMany(estimate));
            }
        }
        let previous_start = period.add_times(from, -1).ok_or(PeriodError::OutOfRange)?;
        Ok(Self {
            previous_start,
            bounds,
        })
    }

    /// Number of periods.
    pub fn len(&self) -> usize {
        self.bounds.len() - 1
    }

    /// Whether there are none (never: `new` makes at least one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Start of period `p`.
    pub fn start(&self, p: usize) -> i64 {
        self.bounds[p]
    }

    /// End of the last period.
    pub fn end(&self) -> i64 {
        self.bounds[self.bounds.len() - 1]
    }

    /// The period holding `t`: `Some(-1)` for the previous period, `None` outside.
    fn index_of(&self, t: i64) -> Option<isize> {
        if t < self.previous_start || t >= *self.bounds.last()? {
            return None;
        }
        if t < self.bounds[0] {
            return Some(-1);
        }
        Some(self.bounds.partition_point(|&b| b <= t) as isize - 1)
    }
}

/// The counts of one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowCounts {
    pub active: u64,
    pub new: u64,
    pub retained: u64,
    pub reactivated: u64,
    pub dormant: u64,
}

/// Counts per period, fed one customer at a time.
#[derive(Debug, Clone)]
pub struct Flow {
    periods: Periods,
    counts: Vec<FlowCounts>,
    /// Scratch: the periods a customer was active in (−1 is the previous period).
    active: Vec<isize>,
}

impl Flow {
    /// Empty counts for `periods`.
    pub fn new(periods: Periods) -> Self {
        let n = periods.len();
        Self {
            periods,
            counts: vec![FlowCounts::default(); n],
            active: Vec::new(),
        }
    }

    /// Add one customer's activity, timestamps in ascending order.
    pub fn add_customer(&mut self, sorted: &[i64]) {
        let Some(&first_ever) = sorted.first() else {
            return;
        };
        self.active.clear();
        for &t in sorted {
            if let Some(p) = self.periods.index_of(t)
                && self.active.last() != Some(&p)
            {
                self.active.push(p);
            }
        }
        let n = self.counts.len() as isize;
        for (i, &p) in self.active.iter().enumerate() {
            let previous_active = i > 0 && self.active[i - 1] == p - 1;
            if p >= 0 {
                let c = &mut self.counts[p as usize];
                c.active += 1;
                if first_ever >= self.periods.start(p as usize) {
                    c.new += 1;
                } else if previous_active {
                    c.retained += 1;
                } else {
                    c.reactivated += 1;
                }
            }
            let next_active = self.active.get(i + 1) == Some(&(p + 1));
            if p + 1 < n && !next_active {
                self.counts[(p + 1) as usize].dormant += 1;
            }
        }
    }

    /// `(period start, counts)` for every period.
    pub fn finish(self) -> Vec<(i64, FlowCounts)> {
        self.counts
            .into_iter()
            .enumerate()
            .map(|(p, c)| (self.periods.start(p), c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: i64 = 86_400_000_000;

    fn week() -> Period {
        Period {
            months: 0,
            days: 7,
            micros: 0,
        }
    }

    #[test]
    fn periods_follow_the_calendar() {
        let jan31 = micros_of(
            chrono::NaiveDate::from_ymd_opt(2024, 1, 31)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
        );
        let month = Period {
            months: 1,
            days: 0,
            micros: 0,
        };
        let p = Periods::new(month, jan31, jan31 + 40 * DAY).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p.start(1), jan31 + 29 * DAY); // 2024-02-29
        assert_eq!(Periods::new(week(), 0, 1).unwrap().len(), 1);
        assert_eq!(Periods::new(week(), 0, 7 * DAY).unwrap().len(), 1);
        assert_eq!(Periods::new(week(), 0, 7 * DAY + 1).unwrap().len(), 2);
        assert!(
            Periods::new(
                Period {
                    months: 0,
                    days: 0,
                    micros: 0
                },
                0,
                1
            )
            .is_err()
        );
        assert!(Periods::new(week(), 5, 5).is_err());
        assert!(matches!(
            Periods::new(
                Period {
                    months: 0,
                    days: 0,
                    micros: 1
                },
                0,
                DAY
            ),
            Err(PeriodError::TooMany(_))
        ));
    }

    #[test]
    fn a_small_story() {
        // Weeks 0..4 from day 0; activity before day 0 counts as "before".
        let periods = Periods::new(week(), 0, 28 * DAY).unwrap();
        let mut flow = Flow::new(periods);
        flow.add_customer(&[-3 * DAY, DAY, 8 * DAY]); // retained from before, retained, dormant
        flow.add_customer(&[-30 * DAY, 15 * DAY]); // reactivated in week 2, dormant in 3
        flow.add_customer(&[22 * DAY, 23 * DAY]); // new in week 3
        let rows = flow.finish();
        let counts: Vec<FlowCounts> = rows.iter().map(|r| r.1).collect();
        let c = |active, new, retained, reactivated, dormant| FlowCounts {
            active,
            new,
            retained,
            reactivated,
            dormant,
        };
        assert_eq!(counts[0], c(1, 0, 1, 0, 0));
        assert_eq!(counts[1], c(1, 0, 1, 0, 0));
        assert_eq!(counts[2], c(1, 0, 0, 1, 1));
        assert_eq!(counts[3], c(1, 1, 0, 0, 1));
        assert_eq!(rows[3].0, 21 * DAY);
    }

    proptest! {
        /// The accounting identities hold in every period, and each count agrees with
        /// its definition computed the slow way.
        #[test]
        fn counts_reconcile(customers in proptest::collection::vec(
            proptest::collection::vec(-40i64..60, 0..12), 0..40)
        ) {
            let periods = Periods::new(week(), 0, 49 * DAY).unwrap();
            let starts: Vec<i64> = (0..periods.len()).map(|p| periods.start(p)).collect();
            let mut flow = Flow::new(periods.clone());
            let mut sorted_all = Vec::new();
            for days in &customers {
                let mut ts: Vec<i64> = days.iter().map(|d| d * DAY + 3_600_000_000).collect();
                ts.sort_unstable();
                flow.add_customer(&ts);
                sorted_all.push(ts);
            }
            let rows = flow.finish();
            let active_in = |ts: &[i64], lo: i64, hi: i64| ts.iter().any(|&t| t >= lo && t < hi);
            for (p, (start, c)) in rows.iter().enumerate() {
                let end = start + 7 * DAY;
                let prev = start - 7 * DAY;
                let mut want = FlowCounts::default();
                for ts in &sorted_all {
                    let now = active_in(ts, *start, end);
                    let before = active_in(ts, prev, *start);
                    let ever_before = ts.iter().any(|&t| t < *start);
                    if now { want.active += 1; }
                    if now && !ever_before { want.new += 1; }
                    if now && before { want.retained += 1; }
                    if now && !before && ever_before { want.reactivated += 1; }
                    if !now && before { want.dormant += 1; }
                }
                prop_assert_eq!(*c, want, "period {}", p);
                prop_assert_eq!(c.active, c.new + c.retained + c.reactivated);
                prop_assert_eq!(*start, starts[p]);
            }
            for p in 1..rows.len() {
                prop_assert_eq!(rows[p].1.dormant, rows[p - 1].1.active - rows[p].1.retained);
            }
        }
    }
}
