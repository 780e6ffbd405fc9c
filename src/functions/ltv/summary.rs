//! `clv_summary`: one customer's orders → (frequency, recency, t, monetary_value),
//! the inputs of the BG/NBD and Gamma-Gamma models.
//!
//! The definitions are those of `summary_data_from_transaction_data` in the
//! Python `lifetimes` package (0.11.3), the reference users compare against:
//!
//! - every timestamp is replaced by the start of its unit period (pandas'
//!   `to_period(freq).to_timestamp()`): the day; the week starting Monday
//!   (pandas' `W` is `W-SUN`, weeks ending on Sunday); the first of the month;
//! - orders in the same period collapse into one purchase whose amount is the
//!   sum of theirs;
//! - `frequency` = number of periods with a purchase after the first one;
//! - `recency` = (start of the last purchase period − start of the first), and
//!   `t` = (start of `as_of`'s period − start of the first), both in units:
//!   days, weeks (whole numbers: both ends are Mondays), or months of
//!   30.436875 days (numpy's `timedelta64(1, 'M')`, the average Gregorian
//!   month — so month recency and `t` are not whole numbers);
//! - `monetary_value` = mean of the purchase amounts of the repeat periods
//!   (the first period's amount is left out), 0 when frequency is 0.
//!
//! One difference on purpose: orders after `as_of` are ignored at full
//! timestamp precision. `lifetimes` compares whole periods and so keeps
//! orders later in `as_of`'s own period (an order at 15:00 when `as_of` is
//! 09:00 the same day, or on Friday when `as_of` is Tuesday of that week).
//! Both agree whenever no order falls after `as_of` inside its period, for
//! example for dates without a time of day and a daily unit.
//!
//! Timestamps are `i64` microseconds since the Unix epoch (Arrow's
//! `Timestamp(Microsecond)`), read as UTC wall-clock time: the glue converts
//! other precisions and time zones before calling.

use super::error::LtvError;
use super::whole::WholeTallies;

/// Microseconds in one day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days in numpy's month (`timedelta64(1, 'M')` = 365.2425 / 12 days), the
/// length `lifetimes` divides month spans by.
pub const DAYS_PER_MONTH: f64 = 30.436875;

/// The unit of `recency` and `t`, and of a BG/NBD model fitted on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimeUnit {
    /// Calendar days (UTC).
    #[default]
    Day,
    /// Weeks starting Monday.
    Week,
    /// Calendar months; spans measured in 30.436875-day months.
    Month,
}

impl TimeUnit {
    /// Parses the SQL spelling, `'day'`, `'week'` or `'month'` (any case,
    /// surrounding spaces ignored).
    pub fn parse(text: &str) -> Option<TimeUnit> {
        match text.trim().to_ascii_lowercase().as_str() {
            "day" => Some(TimeUnit::Day),
            "week" => Some(TimeUnit::Week),
            "month" => Some(TimeUnit::Month),
            _ => None,
        }
    }

    /// The SQL spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeUnit::Day => "day",
            TimeUnit::Week => "week",
            TimeUnit::Month => "month",
        }
    }

    /// Length of one unit in days, the divisor of period spans.
    #[inline(always)]
    pub fn days(self) -> f64 {
        match self {
            TimeUnit::Day => 1.0,
            TimeUnit::Week => 7.0,
            TimeUnit::Month => DAYS_PER_MONTH,
        }
    }

    /// Units per month as `lifetimes`' `customer_lifetime_value` counts them
    /// (its `factor`): 30 days, 4.345 weeks, 1 month.
    pub fn units_per_month(self) -> f64 {
        match self {
            TimeUnit::Day => 30.0,
            TimeUnit::Week => 4.345,
            TimeUnit::Month => 1.0,
        }
    }

    /// The first day of the period after the one starting at `start`.
    #[inline(always)]
    fn next_period_start(self, start: i64) -> i64 {
        match self {
            TimeUnit::Day => start + 1,
            TimeUnit::Week => start + 7,
            TimeUnit::Month => match month_index(start) {
                Some(i) => MONTH_STARTS[i + 1],
                None => {
                    let (year, month, _) = civil_from_days(start);
                    start + days_in_month(year, month)
                }
            },
        }
    }

    /// The first day (days since 1970-01-01) of the period holding `day`.
    #[inline(always)]
    fn period_start(self, day: i64) -> i64 {
        match self {
            TimeUnit::Day => day,
            // 1970-01-01 was a Thursday: day + 3 counts from a Monday.
            TimeUnit::Week => day - (day + 3).rem_euclid(7),
            TimeUnit::Month => match month_index(day) {
                Some(i) => MONTH_STARTS[i],
                None => {
                    let (_, _, day_of_month) = civil_from_days(day);
                    day - i64::from(day_of_month - 1)
                }
            },
        }
    }
}

/// One order of a customer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Order {
    /// When, in microseconds since the Unix epoch (UTC).
    pub ts: i64,
    /// What it was worth; at least 0.
    pub amount: f64,
}

/// The per-customer summary the models are fitted on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClvSummary {
    /// Number of repeat purchase periods.
    pub frequency: u64,
    /// Age at the last purchase, in units (0 when frequency is 0).
    pub recency: f64,
    /// Age at `as_of`, in units.
    pub t: f64,
    /// Mean amount of the repeat purchase periods (0 when frequency is 0).
    pub monetary_value: f64,
}

/// Summaries of many customers, column by column: what the fits and `clv_summary`'s
/// output read (frequency as a double, as the models take it), and, while every
/// summary pushed is in whole numbers (days and weeks), their [`WholeTallies`].
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryColumns {
    pub frequency: Vec<f64>,
    pub recency: Vec<f64>,
    pub t: Vec<f64>,
    pub monetary_value: Vec<f64>,
    tallies: Option<WholeTallies>,
}

impl Default for SummaryColumns {
    fn default() -> Self {
        SummaryColumns::with_capacity(0)
    }
}

impl SummaryColumns {
    /// Room for `customers` without growing.
    pub fn with_capacity(customers: usize) -> Self {
        SummaryColumns {
            frequency: Vec::with_capacity(customers),
            recency: Vec::with_capacity(customers),
            t: Vec::with_capacity(customers),
            monetary_value: Vec::with_capacity(customers),
            tallies: Some(WholeTallies::default()),
        }
    }

    #[inline]
    pub fn push(&mut self, s: &ClvSummary) {
        self.frequency.push(s.frequency as f64);
        self.recency.push(s.recency);
        self.t.push(s.t);
        self.monetary_value.push(s.monetary_value);
        if let Some(tallies) = &mut self.tallies
            && !tallies.add(s.frequency, s.recency, s.t, s.monetary_value)
        {
            self.tallies = None;
        }
    }

    /// Moves every customer of `other` to the end of `self`.
    pub fn append(&mut self, other: &mut SummaryColumns) {
        self.frequency.append(&mut other.frequency);
        self.recency.append(&mut other.recency);
        self.t.append(&mut other.t);
        self.monetary_value.append(&mut other.monetary_value);
        match (&mut self.tallies, &other.tallies) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            _ => self.tallies = None,
        }
        other.tallies = Some(WholeTallies::default());
    }

    /// The tallies of every customer, when all are in whole numbers (and the columns
    /// were only ever filled by [`SummaryColumns::push`]).
    pub fn whole_tallies(&self) -> Option<&WholeTallies> {
        self.tallies
            .as_ref()
            .filter(|tallies| tallies.customers() == self.len())
    }

    pub fn len(&self) -> usize {
        self.frequency.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frequency.is_empty()
    }
}

/// Summarises one customer's orders as of `as_of` (microseconds since the
/// epoch), in `unit`s.
///
/// `orders` is sorted in place (by time, then amount) and is otherwise left
/// as it is; the caller keeps the buffer, so summarising millions of
/// customers allocates nothing here. Orders after `as_of` are ignored (and
/// not validated); `None` when no order is left.
///
/// # Errors
/// [`LtvError::NegativeAmount`] for an amount below zero and
/// [`LtvError::InvalidInput`] for a NaN or infinite amount, among the orders
/// at or before `as_of`.
#[inline]
pub fn clv_summary(
    orders: &mut [Order],
    as_of: i64,
    unit: TimeUnit,
) -> Result<Option<ClvSummary>, LtvError> {
    // One copy of the loop per unit, the calendar arithmetic inlined into it: this runs
    // once per customer, millions of times per `ltv()`.
    match unit {
        TimeUnit::Day => summarize_in::<Days>(orders, as_of),
        TimeUnit::Week => summarize_in::<Weeks>(orders, as_of),
        TimeUnit::Month => summarize_in::<Months>(orders, as_of),
    }
}

/// A [`TimeUnit`] as a type, for [`summarize_in`].
trait Unit {
    const UNIT: TimeUnit;
}

struct Days;
struct Weeks;
struct Months;

impl Unit for Days {
    const UNIT: TimeUnit = TimeUnit::Day;
}

impl Unit for Weeks {
    const UNIT: TimeUnit = TimeUnit::Week;
}

impl Unit for Months {
    const UNIT: TimeUnit = TimeUnit::Month;
}

/// [`clv_summary`] in unit `U`.
#[inline(always)]
fn summarize_in<U: Unit>(orders: &mut [Order], as_of: i64) -> Result<Option<ClvSummary>, LtvError> {
    let unit = U::UNIT;
    // In time order, equal times by amount, so the sums do not depend on the order the
    // orders came in. Orders logged as they happen mostly come in that order already.
    let order = |x: &Order, y: &Order| x.ts.cmp(&y.ts).then(x.amount.total_cmp(&y.amount));
    if !orders.is_sorted_by(|x, y| order(x, y).is_le()) {
        orders.sort_unstable_by(order);
    }
    let kept = orders.partition_point(|o| o.ts <= as_of);
    let orders = &orders[..kept];
    let Some(first) = orders.first() else {
        return Ok(None);
    };
    // Orders are in time order, so a new period begins exactly when an
    // order's day reaches the end of the current one (the calendar
    // arithmetic runs once per period, not per order).
    let day_of = |ts: i64| ts.div_euclid(MICROS_PER_DAY);
    let first_period = unit.period_start(day_of(first.ts));
    let mut period = first_period;
    let mut period_end = unit.next_period_start(period);
    let mut frequency = 0u64;
    // Amounts of the repeat periods: the current one and the finished ones.
    let mut current = 0.0;
    let mut repeat_total = 0.0;
    for order in orders {
        // One test for both: NaN fails it too.
        if !(order.amount >= 0.0 && order.amount.is_finite()) {
            return Err(bad_amount(order.amount));
        }
        let day = day_of(order.ts);
        if day >= period_end {
            period = unit.period_start(day);
            period_end = unit.next_period_start(period);
            repeat_total += current;
            current = 0.0;
            frequency += 1;
        }
        if period != first_period {
            current += order.amount;
        }
    }
    repeat_total += current;
    let last_period = period;

    let days = unit.days();
    let recency = (last_period - first_period) as f64 / days;
    let t = (unit.period_start(day_of(as_of)) - first_period) as f64 / days;
    let monetary_value = if frequency == 0 {
        0.0
    } else {
        repeat_total / frequency as f64
    };
    Ok(Some(ClvSummary {
        frequency,
        recency,
        t,
        monetary_value,
    }))
}

/// The error for an amount that is negative, NaN or infinite.
#[cold]
fn bad_amount(amount: f64) -> LtvError {
    if amount.is_finite() {
        LtvError::NegativeAmount { amount }
    } else {
        LtvError::InvalidInput {
            what: "order amount",
            value: amount,
            expected: "a finite number >= 0",
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`): exact for every `i64` day an `i64` microsecond
/// timestamp can reach.
pub(crate) const fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// First year of [`MONTH_STARTS`].
const TABLE_FIRST_YEAR: i64 = 1900;

/// Months in [`MONTH_STARTS`] (1900-01 to 2199-12), plus the month after.
const TABLE_MONTHS: usize = 300 * 12;

/// The first day of each month from 1900 to 2199 (and 2200-01): month
/// arithmetic becomes a table lookup for every date a business has, where
/// the calendar formulas cost a hundred instructions per call.
static MONTH_STARTS: [i64; TABLE_MONTHS + 1] = {
    let mut starts = [0i64; TABLE_MONTHS + 1];
    let mut i = 0;
    while i <= TABLE_MONTHS {
        let year = TABLE_FIRST_YEAR + (i / 12) as i64;
        starts[i] = days_from_civil(year, (i % 12) as u32 + 1, 1);
        i += 1;
    }
    starts
};

/// The index in [`MONTH_STARTS`] of the month holding `day`, if in the
/// table.
fn month_index(day: i64) -> Option<usize> {
    let first = MONTH_STARTS[0];
    if day < first || day >= MONTH_STARTS[TABLE_MONTHS] {
        return None;
    }
    // An estimate from the mean month length, then at most a step or two.
    let mut i = (((day - first) as f64 / DAYS_PER_MONTH) as usize).min(TABLE_MONTHS - 1);
    while MONTH_STARTS[i] > day {
        i -= 1;
    }
    while MONTH_STARTS[i + 1] <= day {
        i += 1;
    }
    Some(i)
}

/// Days in a month of the proleptic Gregorian calendar.
fn days_in_month(year: i64, month: u32) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The proleptic Gregorian (year, month, day) of a day since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Microseconds at midnight UTC of a date.
    fn at(year: i64, month: u32, day: u32) -> i64 {
        days_from_civil(year, month, day) * MICROS_PER_DAY
    }

    fn order(ts: i64, amount: f64) -> Order {
        Order { ts, amount }
    }

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        for day in (-800_000..800_000).step_by(37) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn period_starts() {
        // 1997-09-30 was a Tuesday; its W-SUN week starts Monday 1997-09-29.
        let tue = days_from_civil(1997, 9, 30);
        assert_eq!(
            TimeUnit::Week.period_start(tue),
            days_from_civil(1997, 9, 29)
        );
        let sun = days_from_civil(1997, 10, 5);
        assert_eq!(
            TimeUnit::Week.period_start(sun),
            days_from_civil(1997, 9, 29)
        );
        let mon = days_from_civil(1997, 10, 6);
        assert_eq!(TimeUnit::Week.period_start(mon), mon);
        assert_eq!(
            TimeUnit::Month.period_start(tue),
            days_from_civil(1997, 9, 1)
        );
        // Before the epoch too.
        let old = days_from_civil(1960, 2, 29);
        assert_eq!(
            TimeUnit::Month.period_start(old),
            days_from_civil(1960, 2, 1)
        );
        assert_eq!(
            TimeUnit::Week.period_start(old),
            days_from_civil(1960, 2, 29)
        );
    }

    #[test]
    fn months_step_through_the_calendar() {
        // Across the table's edges too.
        let mut start = days_from_civil(1890, 1, 1);
        for year in 1890..2210 {
            for month in 1..=12 {
                assert_eq!(start, days_from_civil(year, month, 1));
                assert_eq!(TimeUnit::Month.period_start(start + 20), start);
                start = TimeUnit::Month.next_period_start(start);
            }
        }
    }

    #[test]
    fn next_periods() {
        let dec = days_from_civil(1999, 12, 1);
        assert_eq!(
            TimeUnit::Month.next_period_start(dec),
            days_from_civil(2000, 1, 1)
        );
        let feb = days_from_civil(2000, 2, 1);
        assert_eq!(
            TimeUnit::Month.next_period_start(feb),
            days_from_civil(2000, 3, 1)
        );
        let mon = days_from_civil(2024, 1, 1);
        assert_eq!(
            TimeUnit::Week.next_period_start(mon),
            days_from_civil(2024, 1, 8)
        );
        assert_eq!(TimeUnit::Day.next_period_start(mon), mon + 1);
    }

    #[test]
    fn same_day_orders_collapse_and_first_is_left_out_of_monetary() {
        let mut orders = vec![
            order(at(2024, 1, 10) + 3_600_000_000, 5.0),
            order(at(2024, 1, 1), 100.0),
            order(at(2024, 1, 10), 10.0),
            order(at(2024, 1, 1) + 1, 50.0),
            order(at(2024, 1, 31), 30.0),
        ];
        let s = clv_summary(&mut orders, at(2024, 2, 10), TimeUnit::Day)
            .unwrap()
            .unwrap();
        assert_eq!(s.frequency, 2);
        assert_eq!(s.recency, 30.0);
        assert_eq!(s.t, 40.0);
        assert_eq!(s.monetary_value, (15.0 + 30.0) / 2.0);
    }

    #[test]
    fn weeks_and_months() {
        let mut orders = vec![
            order(at(2024, 1, 3), 1.0),  // Wed, week of Mon 1 Jan
            order(at(2024, 1, 7), 2.0),  // Sun, same week
            order(at(2024, 1, 8), 4.0),  // Mon, next week
            order(at(2024, 3, 31), 8.0), // Sun, week of Mon 25 Mar
        ];
        let s = clv_summary(&mut orders, at(2024, 4, 2), TimeUnit::Week)
            .unwrap()
            .unwrap();
        assert_eq!((s.frequency, s.recency, s.t), (2, 12.0, 13.0));
        assert_eq!(s.monetary_value, 6.0);

        let s = clv_summary(&mut orders, at(2024, 4, 2), TimeUnit::Month)
            .unwrap()
            .unwrap();
        assert_eq!(s.frequency, 1);
        assert_eq!(s.recency, 60.0 / DAYS_PER_MONTH); // 1 Jan .. 1 Mar 2024
        assert_eq!(s.t, 91.0 / DAYS_PER_MONTH); // 1 Jan .. 1 Apr
        assert_eq!(s.monetary_value, 8.0);
    }

    #[test]
    fn single_period_and_orders_after_as_of() {
        let mut orders = vec![
            order(at(2024, 1, 1), 7.0),
            order(at(2024, 1, 1) + 10, 3.0),
            order(at(2024, 5, 1), -99.0), // after as_of: ignored, not validated
        ];
        let s = clv_summary(&mut orders, at(2024, 1, 11), TimeUnit::Day)
            .unwrap()
            .unwrap();
        assert_eq!(s.frequency, 0);
        assert_eq!(s.recency, 0.0);
        assert_eq!(s.t, 10.0);
        assert_eq!(s.monetary_value, 0.0);

        // An order later on as_of's own day is after as_of.
        let mut orders = vec![order(at(2024, 1, 1), 1.0), order(at(2024, 1, 11) + 5, 1.0)];
        let s = clv_summary(&mut orders, at(2024, 1, 11), TimeUnit::Day)
            .unwrap()
            .unwrap();
        assert_eq!(s.frequency, 0);
        // ... and exactly at as_of is not.
        let mut orders = vec![order(at(2024, 1, 1), 1.0), order(at(2024, 1, 11), 1.0)];
        let s = clv_summary(&mut orders, at(2024, 1, 11), TimeUnit::Day)
            .unwrap()
            .unwrap();
        assert_eq!((s.frequency, s.recency, s.t), (1, 10.0, 10.0));

        let mut late = vec![order(at(2024, 6, 1), 1.0)];
        assert_eq!(
            clv_summary(&mut late, at(2024, 1, 1), TimeUnit::Day),
            Ok(None)
        );
        assert_eq!(clv_summary(&mut [], 0, TimeUnit::Week), Ok(None));
    }

    #[test]
    fn bad_amounts() {
        let mut orders = vec![order(at(2024, 1, 1), 1.0), order(at(2024, 1, 2), -0.5)];
        assert_eq!(
            clv_summary(&mut orders, at(2024, 2, 1), TimeUnit::Day),
            Err(LtvError::NegativeAmount { amount: -0.5 })
        );
        let mut orders = vec![order(at(2024, 1, 1), f64::NAN)];
        assert!(matches!(
            clv_summary(&mut orders, at(2024, 2, 1), TimeUnit::Day),
            Err(LtvError::InvalidInput { .. })
        ));
        // Zero is a valid amount (a free order still counts as a purchase).
        let mut orders = vec![order(at(2024, 1, 1), 0.0), order(at(2024, 1, 2), 0.0)];
        let s = clv_summary(&mut orders, at(2024, 2, 1), TimeUnit::Day)
            .unwrap()
            .unwrap();
        assert_eq!((s.frequency, s.monetary_value), (1, 0.0));
    }

    #[test]
    fn parse_units() {
        assert_eq!(TimeUnit::parse(" Week "), Some(TimeUnit::Week));
        assert_eq!(TimeUnit::parse("month"), Some(TimeUnit::Month));
        assert_eq!(TimeUnit::parse("DAY"), Some(TimeUnit::Day));
        assert_eq!(TimeUnit::parse("days"), None);
        for unit in [TimeUnit::Day, TimeUnit::Week, TimeUnit::Month] {
            assert_eq!(TimeUnit::parse(unit.as_str()), Some(unit));
        }
    }
}
