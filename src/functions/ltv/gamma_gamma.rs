//! The Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005,
//! "RFM and CLV: Using Iso-Value Curves"; Fader & Hardie's note 025): its
//! likelihood, maximum-likelihood fit and the conditional expected average
//! transaction value.
//!
//! A customer's transaction values are Gamma(p, ν) with ν ~ Gamma(q, v)
//! across customers; what is observed is the mean m of the x repeat
//! transactions. The fit is what `lifetimes` 0.11.3's `GammaGammaFitter`
//! (penalizer 0, no q constraint) computes: the maximum of the same
//! likelihood over customers with frequency > 0, found over log-parameters.
//! Amounts are divided by their mean during the fit, for conditioning (v is
//! scaled back; the maximum is the same).
//!
//! Per evaluation, the Gamma and digamma functions are computed once per
//! distinct x; each (x, m) tuple costs one `ln` and one division. Equal
//! pairs are merged up to [`MERGE_UP_TO`] customers; beyond, amounts are
//! rarely equal, so the pairs are only grouped by x, a subsample is fitted
//! first and all the data are evaluated about five times (see
//! [`super::optimize`]), on several threads.
//!
//! Where `lifetimes` differs: its expected value with q ≤ 1 is a meaningless
//! (negative or infinite) number; here it is an error, since the population
//! mean v·p/(q−1) does not exist.

use statrs::function::gamma::{digamma, ln_gamma};

use super::bgnbd::{SUM_BLOCK, ceil, is_whole, threads_for};
use super::collapse::{Collapsed, Group, WeightedRows, collapse, group_by, lay_out};
use super::error::LtvError;
use super::optimize::{MIN_CUSTOMERS, fit_log_parameters};
use super::summary::SummaryColumns;
use super::vector_math;
use super::whole::{WHOLE_BLOCK, WHOLE_LIMIT, index_of, is_index, whole_index};

const MODEL: &str = "Gamma-Gamma";

/// Gamma-Gamma parameters: transaction values ~ Gamma(shape p, rate ν),
/// ν ~ Gamma(shape q, rate v). v is in the currency of the amounts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGammaParams {
    /// Shape of a customer's transaction values.
    pub p: f64,
    /// Shape of the rate across customers.
    pub q: f64,
    /// Rate of the rate across customers (an amount of money).
    pub v: f64,
}

impl GammaGammaParams {
    /// Checks that every parameter is a positive finite number.
    ///
    /// # Errors
    /// [`LtvError::InvalidParams`] naming the first bad parameter.
    pub fn validate(&self) -> Result<(), LtvError> {
        for (name, value) in [("p", self.p), ("q", self.q), ("v", self.v)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(LtvError::InvalidParams {
                    model: MODEL,
                    reason: format!("{name} = {value}; every parameter must be a positive number"),
                });
            }
        }
        Ok(())
    }

    /// The population mean transaction value, v·p/(q−1).
    ///
    /// # Errors
    /// [`LtvError::InvalidParams`] for invalid parameters or q ≤ 1 (the mean
    /// does not exist: spend is too heavy-tailed).
    pub fn population_mean(&self) -> Result<f64, LtvError> {
        self.validate()?;
        if self.q <= 1.0 {
            return Err(LtvError::InvalidParams {
                model: MODEL,
                reason: format!(
                    "q = {}; the expected transaction value exists only for q > 1",
                    self.q
                ),
            });
        }
        Ok(self.v * self.p / (self.q - 1.0))
    }
}

/// A fitted Gamma-Gamma model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGammaFit {
    /// The maximum-likelihood parameters.
    pub params: GammaGammaParams,
    /// The total log-likelihood at them (amounts in their own currency).
    pub log_likelihood: f64,
    /// Customers fitted on (those with frequency > 0).
    pub n: u64,
}

/// Checks a frequency: a whole number ≥ 0.
fn check_frequency(x: f64) -> Result<(), LtvError> {
    if is_whole(x) {
        Ok(())
    } else {
        Err(LtvError::InvalidInput {
            what: "frequency",
            value: x,
            expected: "a whole number >= 0",
        })
    }
}

/// One customer's log-likelihood (frequency `x` > 0, mean repeat
/// transaction value `m` > 0) and its gradient with respect to
/// (ln p, ln q, ln v).
///
/// # Errors
/// Invalid parameters or inputs, or a non-finite result.
pub fn log_likelihood(
    params: &GammaGammaParams,
    x: f64,
    m: f64,
) -> Result<(f64, [f64; 3]), LtvError> {
    params.validate()?;
    check_frequency(x)?;
    if x == 0.0 {
        return Err(LtvError::InvalidInput {
            what: "frequency",
            value: x,
            expected: "> 0: the spend model is defined by repeat transactions",
        });
    }
    check_monetary(m)?;
    let parts = XParts::new(params, x);
    let sums = TupleSums {
        ln_m: m.ln(),
        ln_xmv: (x * m + params.v).ln(),
        inv_xmv: 1.0 / (x * m + params.v),
    };
    let (ll, g) = parts.finish(params, 1.0, &sums);
    let gradient = [g[0] * params.p, g[1] * params.q, g[2] * params.v];
    if !ll.is_finite() || gradient.iter().any(|v| !v.is_finite()) {
        return Err(LtvError::NonFinite {
            what: "the Gamma-Gamma log-likelihood",
        });
    }
    Ok((ll, gradient))
}

fn check_monetary(m: f64) -> Result<(), LtvError> {
    if m.is_finite() && m > 0.0 {
        Ok(())
    } else {
        Err(LtvError::InvalidInput {
            what: "monetary_value",
            value: m,
            expected: "a number > 0 for a customer with frequency > 0 (leave out customers whose repeat orders are all free)",
        })
    }
}

/// The per-x parts of the likelihood and their derivatives with respect to
/// (p, q, v).
#[derive(Debug, Clone, Copy)]
struct XParts {
    x: f64,
    /// lnΓ(px+q) − lnΓ(px) − lnΓ(q) + q ln v + px ln x.
    ll: f64,
    d_p: f64,
    d_q: f64,
}

impl XParts {
    fn new(params: &GammaGammaParams, x: f64) -> Self {
        let GammaGammaParams { p, q, v } = *params;
        let px = p * x;
        let (ln_x, ln_v) = (x.ln(), v.ln());
        let psi_pxq = digamma(px + q);
        XParts {
            x,
            ll: ln_gamma(px + q) - ln_gamma(px) - ln_gamma(q) + q * ln_v + px * ln_x,
            d_p: x * (psi_pxq - digamma(px) + ln_x),
            d_q: psi_pxq - digamma(q) + ln_v,
        }
    }

    /// The log-likelihood of customers with this x (total weight `w`, sums
    /// `s`) and its gradient with respect to (p, q, v).
    fn finish(&self, params: &GammaGammaParams, w: f64, s: &TupleSums) -> (f64, [f64; 3]) {
        let GammaGammaParams { p, q, v } = *params;
        let px = p * self.x;
        let ll = w * self.ll + (px - 1.0) * s.ln_m - (px + q) * s.ln_xmv;
        let g = [
            w * self.d_p + self.x * (s.ln_m - s.ln_xmv),
            w * self.d_q - s.ln_xmv,
            w * q / v - (px + q) * s.inv_xmv,
        ];
        (ll, g)
    }
}

/// Weighted sums over the (x, m) tuples of one x.
#[derive(Debug, Clone, Copy, Default)]
struct TupleSums {
    /// Σ w ln m.
    ln_m: f64,
    /// Σ w ln(x m + v).
    ln_xmv: f64,
    /// Σ w / (x m + v).
    inv_xmv: f64,
}

/// Customers with frequency > 0, each (x, m) with a count: the state of the
/// fitting aggregate. Adding is a push (rows are collapsed into distinct
/// pairs when fitted, or by [`GammaGammaData::collapse`]), and states of
/// partitions merge by concatenation.
#[derive(Debug, Clone, Default)]
pub struct GammaGammaData {
    /// Columns x and m.
    rows: WeightedRows<2>,
}

/// Dictionaries of [`GammaGammaData`]'s columns: one each.
const DICTIONARY_OF: [usize; 2] = [0, 1];

impl GammaGammaData {
    /// No customers.
    pub fn new() -> Self {
        GammaGammaData::default()
    }

    /// Adds one customer; one with frequency 0 is left out (the model is
    /// fitted on repeat transactions only) and its monetary value not read.
    ///
    /// # Errors
    /// [`LtvError::InvalidInput`] for a fractional, negative or non-finite
    /// frequency, or a monetary value that is not a positive number at
    /// frequency > 0.
    pub fn add(&mut self, x: f64, m: f64) -> Result<(), LtvError> {
        self.add_count(x, m, 1)
    }

    /// Adds `count` customers with the same (x, m).
    ///
    /// # Errors
    /// As [`GammaGammaData::add`].
    pub fn add_count(&mut self, x: f64, m: f64, count: u64) -> Result<(), LtvError> {
        check_frequency(x)?;
        if x == 0.0 {
            return Ok(());
        }
        check_monetary(m)?;
        self.rows.push([x, m], count);
        Ok(())
    }

    /// Adds every customer of `other`.
    pub fn merge(&mut self, other: &GammaGammaData) {
        self.rows.merge(&other.rows);
    }

    /// Number of customers added (with frequency > 0).
    pub fn customers(&self) -> u64 {
        self.rows.customers()
    }

    /// Number of rows held (distinct pairs after
    /// [`GammaGammaData::collapse`]).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no customer was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Replaces the rows by the distinct (x, m) pairs with summed counts.
    pub fn collapse(&mut self) {
        self.rows.collapse(DICTIONARY_OF);
    }

    /// The rows as (x, m, count).
    pub fn iter(&self) -> impl Iterator<Item = (f64, f64, u64)> + '_ {
        (0..self.rows.len()).map(|i| {
            let ([x, m], count) = self.rows.row(i);
            (x, m, count)
        })
    }

    /// The maximum-likelihood fit.
    ///
    /// # Errors
    /// [`LtvError::DegenerateInput`] for fewer than [`MIN_CUSTOMERS`]
    /// customers with frequency > 0; [`LtvError::NotConverged`] when the
    /// optimiser does not reach the maximum or the data do not determine a
    /// parameter (every customer spending the same, for instance).
    pub fn fit(&self) -> Result<GammaGammaFit, LtvError> {
        if self.customers() < MIN_CUSTOMERS {
            return Err(too_few(self.customers()));
        }
        prepare(
            self.rows.column(0),
            self.rows.column(1),
            Some(self.rows.counts()),
        )
        .fit()
    }
}

/// Fits the model to one (frequency, monetary_value) per customer; customers
/// with frequency 0 are left out.
///
/// # Errors
/// As [`GammaGammaData::add`] and [`GammaGammaData::fit`];
/// [`LtvError::InvalidInput`] when the slices differ in length.
pub fn fit(frequency: &[f64], monetary_value: &[f64]) -> Result<GammaGammaFit, LtvError> {
    fit_customers(frequency, monetary_value, false)
}

/// As [`fit`], customers whose repeat purchases are all worth 0 left out as well (the
/// model is of positive spend; `ltv()` fits this way).
///
/// # Errors
/// As [`fit`].
pub fn fit_positive_spend(
    frequency: &[f64],
    monetary_value: &[f64],
) -> Result<GammaGammaFit, LtvError> {
    fit_customers(frequency, monetary_value, true)
}

fn fit_customers(
    frequency: &[f64],
    monetary_value: &[f64],
    skip_zero_spend: bool,
) -> Result<GammaGammaFit, LtvError> {
    if frequency.len() != monetary_value.len() {
        return Err(LtvError::InvalidInput {
            what: "number of monetary values",
            value: monetary_value.len() as f64,
            expected: "one frequency and one monetary value per customer",
        });
    }
    let started = std::time::Instant::now();
    if let Some(prepared) = prepare_whole(frequency, monetary_value, skip_zero_spend) {
        return fit_laid_out(started, prepared?);
    }
    // Room for every customer: never grown, and address space only where unused.
    let mut repeat_x = Vec::with_capacity(frequency.len());
    let mut repeat_m = Vec::with_capacity(frequency.len());
    for (&x, &m) in frequency.iter().zip(monetary_value) {
        check_frequency(x)?;
        if x > 0.0 && !(skip_zero_spend && m == 0.0) {
            check_monetary(m)?;
            repeat_x.push(x);
            repeat_m.push(m);
        }
    }
    let customers = repeat_x.len() as u64;
    if customers < MIN_CUSTOMERS {
        return Err(too_few(customers));
    }
    fit_laid_out(started, prepare(&repeat_x, &repeat_m, None))
}

/// [`fit_positive_spend`] of summaries: laid out from their [`WholeTallies`] when they
/// have them (frequencies whole, amounts valid and counted already), as
/// [`fit_positive_spend`] otherwise.
///
/// # Errors
/// As [`fit`].
pub fn fit_summaries_positive_spend(h: &SummaryColumns) -> Result<GammaGammaFit, LtvError> {
    if let Some(tallies) = h.whole_tallies() {
        let customers: usize = tallies.positive_spend_by_x.iter().sum();
        if customers > MERGE_UP_TO {
            let started = std::time::Instant::now();
            let prepared = lay_out_whole(
                &h.frequency,
                &h.monetary_value,
                true,
                &tallies.positive_spend_by_x,
                customers,
            );
            return fit_laid_out(started, prepared);
        }
    }
    fit_positive_spend(&h.frequency, &h.monetary_value)
}

/// Fits laid-out data, logging how long the layout since `started` took.
fn fit_laid_out(
    started: std::time::Instant,
    prepared: Prepared,
) -> Result<GammaGammaFit, LtvError> {
    tracing::debug!(
        model = MODEL,
        layout_ms = started.elapsed().as_secs_f64() * 1e3,
        "fit layout"
    );
    prepared.fit()
}

fn too_few(customers: u64) -> LtvError {
    LtvError::DegenerateInput {
        model: MODEL,
        reason: format!(
            "{customers} customers with a repeat purchase; at least {MIN_CUSTOMERS} are needed"
        ),
    }
}

/// Above this many rows, pairs are only grouped by x, not merged (amounts
/// are rarely equal, so merging would cost a sort and save little).
const MERGE_UP_TO: usize = 100_000;

/// The data laid out for the fit: equal pairs merged (up to
/// [`MERGE_UP_TO`] rows) or grouped by x.
fn prepare(x: &[f64], m: &[f64], counts: Option<&[u64]>) -> Prepared {
    if x.len() <= MERGE_UP_TO {
        let Collapsed { dictionaries, rows } = collapse([x, m], [0, 1], counts);
        let (xs, ms) = (&dictionaries[0], &dictionaries[1]);
        return Prepared::new(
            rows.iter()
                .map(|(id, count)| (xs[id[0] as usize], ms[id[1] as usize], *count as f64)),
            rows.len(),
        );
    }
    let weight = |row: usize| counts.map_or(1.0, |c| c[row] as f64);
    let grouping = group_by(x);
    let grouping = &grouping;
    Prepared::new(
        (0..grouping.keys.len()).flat_map(|g| {
            let key = grouping.keys[g];
            grouping.order[grouping.starts[g]..grouping.starts[g + 1]]
                .iter()
                .map(move |&row| (key, m[row], weight(row)))
        }),
        x.len(),
    )
}

/// The layout [`prepare`] gives many customers (more than [`MERGE_UP_TO`] with a
/// repeat purchase) when every frequency is a whole number below [`WHOLE_LIMIT`]
/// (as summaries' always are), built straight from the summary columns: frequencies
/// index the groups directly, so the repeat customers are checked and counted per x
/// in one pass and laid out in a second, without collecting them first or looking
/// any value up. `None`, having built nothing, for fewer customers or another
/// frequency; the same tuples in the same order as [`prepare`] otherwise.
fn prepare_whole(
    frequency: &[f64],
    monetary_value: &[f64],
    skip_zero_spend: bool,
) -> Option<Result<Prepared, LtvError>> {
    let kept = |x: f64, m: f64| is_kept(x, m, skip_zero_spend);
    let mut per_x = vec![0usize; WHOLE_LIMIT];
    let mut customers = 0;
    // A block at a time, without a branch per customer (as BG/NBD's `prepare_whole`):
    // a block that fails a test is read again customer by customer.
    for (x, m) in frequency
        .chunks(WHOLE_BLOCK)
        .zip(monetary_value.chunks(WHOLE_BLOCK))
    {
        let mut valid = true;
        for (&x, &m) in x.iter().zip(m) {
            let x = x + 0.0;
            let xi = index_of(x);
            let k = kept(x, m);
            valid &= is_index(x, xi) & (!k | (m.is_finite() & (m > 0.0)));
            per_x[xi] += usize::from(k);
            customers += usize::from(k);
        }
        if !valid {
            return whole_block_refused(x, m, kept);
        }
    }
    if customers <= MERGE_UP_TO {
        return None;
    }
    Some(Ok(lay_out_whole(
        frequency,
        monetary_value,
        skip_zero_spend,
        &per_x,
        customers,
    )))
}

/// Whether a customer is fitted: with repeat purchases and, when `skip_zero_spend`,
/// spend above 0. Without branches.
#[inline(always)]
fn is_kept(x: f64, m: f64, skip_zero_spend: bool) -> bool {
    (x > 0.0) & !(skip_zero_spend & (m == 0.0))
}

/// Lays out the customers kept (`customers` of them, counted per x in `per_x`), whose
/// frequencies are whole numbers below [`WHOLE_LIMIT`] and amounts valid.
fn lay_out_whole(
    frequency: &[f64],
    monetary_value: &[f64],
    skip_zero_spend: bool,
    per_x: &[usize],
    customers: usize,
) -> Prepared {
    let kept = |x: f64, m: f64| is_kept(x, m, skip_zero_spend);
    // Where each x's amounts go: x ascending, each x in input order (as `group_by`).
    let mut groups = Vec::new();
    let (mut next, _) = lay_out(per_x, |x| x as f64, 0, &mut groups);
    // The tuples hold the raw amounts at first; one place past the end takes those left
    // out (so that the loop does not branch on them), cut off afterwards.
    let mut tuples = vec![
        Tuple {
            xm: 0.0,
            ln_m: 0.0,
            w: 1.0
        };
        customers + 1
    ];
    for (&x, &m) in frequency.iter().zip(monetary_value) {
        let xi = x as usize;
        let k = kept(x, m);
        let slot = if k { next[xi] } else { customers };
        tuples[slot].xm = m;
        next[xi] += usize::from(k);
    }
    tuples.truncate(customers);
    // As `Prepared::new` sums them: in the order of the layout.
    let spend: f64 = tuples.iter().map(|t| t.xm).sum();
    let total = customers as f64;
    let scale = total / spend;
    for group in &groups {
        for tuple in &mut tuples[group.start..group.end] {
            let m = tuple.xm * scale;
            tuple.xm = group.x * m;
            tuple.ln_m = m;
        }
    }
    take_logarithms(&mut tuples);
    Prepared {
        scale,
        groups,
        tuples,
        total,
    }
}

/// What [`prepare_whole`] answers for a block that failed its tests: read customer by
/// customer, `None` at the first frequency that is not a whole number in range, the
/// error of the first bad amount of a customer kept.
#[cold]
fn whole_block_refused(
    frequency: &[f64],
    monetary_value: &[f64],
    kept: impl Fn(f64, f64) -> bool,
) -> Option<Result<Prepared, LtvError>> {
    for (&x, &m) in frequency.iter().zip(monetary_value) {
        // `None` at a frequency that is not a whole number in range.
        whole_index(x)?;
        if kept(x, m)
            && let Err(e) = check_monetary(m)
        {
            return Some(Err(e));
        }
    }
    // Unreachable: the block failed a test one of the above repeats.
    None
}

/// Replaces each tuple's `ln_m`, which holds m, by ln m: a block at a time, vectorised.
fn take_logarithms(tuples: &mut [Tuple]) {
    let (mut m, mut ln_m) = ([0.0; SUM_BLOCK], [0.0; SUM_BLOCK]);
    for block in tuples.chunks_mut(SUM_BLOCK) {
        let n = block.len();
        for (m, tuple) in m.iter_mut().zip(block.iter()) {
            *m = tuple.ln_m;
        }
        vector_math::ln(&m[..n], &mut ln_m[..n]);
        for (tuple, &l) in block.iter_mut().zip(&ln_m) {
            tuple.ln_m = l;
        }
    }
}

/// One distinct (x, m), m scaled: x·m.
#[derive(Debug, Clone, Copy)]
struct Tuple {
    xm: f64,
    ln_m: f64,
    w: f64,
}

/// The data laid out for evaluation, amounts divided by their mean.
struct Prepared {
    scale: f64,
    groups: Vec<Group>,
    tuples: Vec<Tuple>,
    total: f64,
}

/// Above this many distinct pairs, fit a subsample first (see
/// [`super::optimize`]).
const SUBSAMPLE_ABOVE: usize = 25_000;

/// Customers in that subsample.
const SUBSAMPLE_CUSTOMERS: f64 = 10_000.0;

impl Prepared {
    /// From (x, m, weight) rows in ascending x (at most `capacity`).
    fn new(rows: impl Iterator<Item = (f64, f64, f64)> + Clone, capacity: usize) -> Self {
        let (total, spend) = rows
            .clone()
            .fold((0.0, 0.0), |(t, s), (_, m, w)| (t + w, s + m * w));
        let scale = total / spend;
        let mut groups: Vec<Group> = Vec::new();
        let mut tuples = Vec::with_capacity(capacity);
        for (x, m, w) in rows {
            match groups.last_mut() {
                Some(g) if g.x == x => g.end += 1,
                _ => groups.push(Group {
                    x,
                    start: tuples.len(),
                    end: tuples.len() + 1,
                }),
            }
            let m = m * scale;
            // ln m is filled in below, for many at once.
            tuples.push(Tuple {
                xm: x * m,
                ln_m: m,
                w,
            });
        }
        take_logarithms(&mut tuples);
        Prepared {
            scale,
            groups,
            tuples,
            total,
        }
    }

    /// A systematic subsample of about `customers` customers (every k-th in
    /// the order of the pairs, sorted by x and m).
    fn subsample(&self, customers: f64) -> Prepared {
        let step = (self.total / customers).ceil().max(1.0);
        let mut groups = Vec::new();
        let mut tuples = Vec::new();
        let (mut total, mut before) = (0.0, 0.0);
        for group in &self.groups {
            let start = tuples.len();
            for tuple in &self.tuples[group.start..group.end] {
                let taken = ceil((before + tuple.w) / step) - ceil(before / step);
                before += tuple.w;
                if taken > 0.0 {
                    tuples.push(Tuple { w: taken, ..*tuple });
                    total += taken;
                }
            }
            if tuples.len() > start {
                groups.push(Group {
                    x: group.x,
                    start,
                    end: tuples.len(),
                });
            }
        }
        Prepared {
            scale: self.scale,
            groups,
            tuples,
            total,
        }
    }

    /// Log-likelihood (scaled amounts) of the tuples in `range` and its
    /// gradient with respect to (p, q, v).
    fn evaluate_range(
        &self,
        params: &GammaGammaParams,
        range: std::ops::Range<usize>,
    ) -> (f64, [f64; 3]) {
        let mut ll = 0.0;
        let mut g = [0.0; 3];
        let first = self
            .groups
            .partition_point(|group| group.end <= range.start);
        for group in &self.groups[first..] {
            if group.start >= range.end {
                break;
            }
            let (lo, hi) = (group.start.max(range.start), group.end.min(range.end));
            let parts = XParts::new(params, group.x);
            // In blocks, for accuracy (see the BG/NBD evaluation).
            for block in self.tuples[lo..hi].chunks(SUM_BLOCK) {
                let mut sums = TupleSums::default();
                let mut weight = 0.0;
                let mut xmv = [0.0; SUM_BLOCK];
                let mut ln_xmv = [0.0; SUM_BLOCK];
                let n = block.len();
                for (s, tuple) in xmv.iter_mut().zip(block) {
                    *s = tuple.xm + params.v;
                }
                vector_math::ln(&xmv[..n], &mut ln_xmv[..n]);
                for (i, tuple) in block.iter().enumerate() {
                    sums.ln_m += tuple.w * tuple.ln_m;
                    sums.ln_xmv += tuple.w * ln_xmv[i];
                    sums.inv_xmv += tuple.w / xmv[i];
                    weight += tuple.w;
                }
                // Linear in the weight and the sums: partial groups add up.
                let (block_ll, block_g) = parts.finish(params, weight, &sums);
                ll += block_ll;
                for (total, part) in g.iter_mut().zip(block_g) {
                    *total += part;
                }
            }
        }
        (ll, g)
    }

    /// Total log-likelihood (scaled amounts) and its gradient with respect
    /// to the log-parameters, on as many threads as the size warrants.
    fn evaluate(&self, params: &GammaGammaParams) -> (f64, [f64; 3]) {
        let n = self.tuples.len();
        let threads = threads_for(n);
        let (ll, g) = if threads <= 1 {
            self.evaluate_range(params, 0..n)
        } else {
            let chunk = n.div_ceil(threads);
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|i| {
                        let range = (i * chunk).min(n)..((i + 1) * chunk).min(n);
                        scope.spawn(move || self.evaluate_range(params, range))
                    })
                    .collect();
                handles.into_iter().fold((0.0, [0.0; 3]), |(ll, mut g), h| {
                    // A panicking worker is a bug; NaN makes the fit fail cleanly.
                    let (part_ll, part_g) = h.join().unwrap_or((f64::NAN, [f64::NAN; 3]));
                    for (total, part) in g.iter_mut().zip(part_g) {
                        *total += part;
                    }
                    (ll + part_ll, g)
                })
            })
        };
        (ll, [g[0] * params.p, g[1] * params.q, g[2] * params.v])
    }

    /// The mean negative log-likelihood over log-parameters.
    fn objective(&self) -> impl Fn(&[f64], &mut [f64]) -> f64 + '_ {
        move |theta: &[f64], gradient: &mut [f64]| {
            let (ll, g) = self.evaluate(&params_from_logs(theta));
            for (out, gi) in gradient.iter_mut().zip(g) {
                *out = -gi / self.total;
            }
            -ll / self.total
        }
    }

    fn fit(&self) -> Result<GammaGammaFit, LtvError> {
        let subsample =
            (self.tuples.len() > SUBSAMPLE_ABOVE).then(|| self.subsample(SUBSAMPLE_CUSTOMERS));
        // lifetimes' starting point, every log-parameter 0.1 (amounts here are
        // scaled to mean 1, so v starts near its usual place).
        let minimum = fit_log_parameters(
            MODEL,
            &["p", "q", "v"],
            self.objective(),
            subsample.as_ref().map(Prepared::objective),
            &[0.1; 3],
            self.total,
            "do all customers spend about the same?",
        )?;
        let scaled = params_from_logs(&minimum.x);
        let params = GammaGammaParams {
            v: scaled.v / self.scale,
            ..scaled
        };
        // m is a density variable: scaling amounts by c divides each
        // customer's likelihood by c, so ll(amounts) = ll(scaled) + ln c.
        let log_likelihood = -minimum.value * self.total + self.total * self.scale.ln();
        if !log_likelihood.is_finite() {
            return Err(LtvError::NonFinite {
                what: "the Gamma-Gamma log-likelihood",
            });
        }
        Ok(GammaGammaFit {
            params,
            log_likelihood,
            n: self.total as u64,
        })
    }
}

fn params_from_logs(theta: &[f64]) -> GammaGammaParams {
    GammaGammaParams {
        p: theta[0].exp(),
        q: theta[1].exp(),
        v: theta[2].exp(),
    }
}

/// The conditional expected average transaction value of a customer with
/// frequency `x` and mean repeat transaction value `m`: the weighted mean
/// (1 − w)·v·p/(q−1) + w·m with w = p·x/(p·x + q − 1) (note 025, eq. 5;
/// `lifetimes`' `conditional_expected_average_profit`). A customer without
/// repeat purchases gets the population mean.
///
/// # Errors
/// Invalid parameters, q ≤ 1 (no population mean), or invalid inputs.
pub fn conditional_expected_average_profit(
    params: &GammaGammaParams,
    x: f64,
    m: f64,
) -> Result<f64, LtvError> {
    let population_mean = params.population_mean()?;
    check_frequency(x)?;
    if !(m.is_finite() && m >= 0.0) {
        return Err(LtvError::InvalidInput {
            what: "monetary_value",
            value: m,
            expected: "a finite number >= 0",
        });
    }
    let px = params.p * x;
    let weight = px / (px + params.q - 1.0);
    let value = (1.0 - weight) * population_mean + weight * m;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(LtvError::NonFinite {
            what: "the expected average transaction value",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `lifetimes`' CDNOW estimates.
    const CDNOW: GammaGammaParams = GammaGammaParams {
        p: 6.25,
        q: 3.74,
        v: 15.44,
    };

    /// Note 025, eq. 1a, in plain floating point.
    fn direct_likelihood(params: &GammaGammaParams, x: f64, m: f64) -> f64 {
        let GammaGammaParams { p, q, v } = *params;
        let gamma = |z: f64| ln_gamma(z).exp();
        gamma(p * x + q) / (gamma(p * x) * gamma(q))
            * v.powf(q)
            * m.powf(p * x - 1.0)
            * x.powf(p * x)
            / (v + m * x).powf(p * x + q)
    }

    #[test]
    fn likelihood_matches_the_direct_formula() {
        for (x, m) in [(1.0, 20.0), (2.0, 5.5), (5.0, 100.0)] {
            let (ll, _) = log_likelihood(&CDNOW, x, m).unwrap();
            let direct = direct_likelihood(&CDNOW, x, m).ln();
            assert!(
                (ll - direct).abs() < 1e-11 * direct.abs().max(1.0),
                "{x} {m}: {ll} vs {direct}"
            );
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let theta = [CDNOW.p.ln(), CDNOW.q.ln(), CDNOW.v.ln()];
        for (x, m) in [(1.0, 20.0), (3.0, 5.5), (400.0, 12.0)] {
            let (_, gradient) = log_likelihood(&CDNOW, x, m).unwrap();
            for i in 0..3 {
                let h = 1e-6;
                let at = |delta: f64| {
                    let mut th = theta;
                    th[i] += delta;
                    log_likelihood(&params_from_logs(&th), x, m).unwrap().0
                };
                let numeric = (at(h) - at(-h)) / (2.0 * h);
                assert!(
                    (gradient[i] - numeric).abs() < 1e-6 * numeric.abs().max(1.0),
                    "({x}, {m}) d/dθ{i}: {} vs {numeric}",
                    gradient[i]
                );
            }
        }
    }

    #[test]
    fn expected_value_shrinks_towards_the_population_mean() {
        let mean = CDNOW.population_mean().unwrap();
        assert_eq!(
            conditional_expected_average_profit(&CDNOW, 0.0, 0.0),
            Ok(mean)
        );
        let one = conditional_expected_average_profit(&CDNOW, 1.0, 100.0).unwrap();
        let many = conditional_expected_average_profit(&CDNOW, 50.0, 100.0).unwrap();
        assert!(mean < one && one < many && many < 100.0);
        assert!(matches!(
            conditional_expected_average_profit(&CDNOW, 1.0, f64::NAN),
            Err(LtvError::InvalidInput { .. })
        ));
        assert!(matches!(
            conditional_expected_average_profit(&GammaGammaParams { q: 1.0, ..CDNOW }, 1.0, 5.0),
            Err(LtvError::InvalidParams { .. })
        ));
    }

    #[test]
    fn inputs_are_checked() {
        let mut data = GammaGammaData::new();
        // Frequency 0: left out, whatever its monetary value.
        data.add(0.0, 0.0).unwrap();
        data.add(0.0, f64::NAN).unwrap();
        assert_eq!(data.customers(), 0);
        for (x, m) in [
            (1.0, 0.0),
            (1.0, -5.0),
            (2.0, f64::INFINITY),
            (1.5, 3.0),
            (-1.0, 3.0),
        ] {
            assert!(
                matches!(data.add(x, m), Err(LtvError::InvalidInput { .. })),
                "({x}, {m})"
            );
        }
        for _ in 0..9 {
            data.add(1.0, 10.0).unwrap();
        }
        assert!(matches!(data.fit(), Err(LtvError::DegenerateInput { .. })));
        assert!(matches!(
            fit(&[1.0], &[]),
            Err(LtvError::InvalidInput { .. })
        ));
    }

    /// Everyone spending the same leaves p and q undetermined (they run off
    /// to infinity): an error, not parameters.
    #[test]
    fn identical_spend_is_not_a_fit() {
        let frequency: Vec<f64> = (0..200).map(|i| f64::from(1 + i % 4)).collect();
        let monetary = vec![25.0; 200];
        let outcome = fit(&frequency, &monetary);
        assert!(
            matches!(outcome, Err(LtvError::NotConverged { .. })),
            "{outcome:?}"
        );
    }

    /// Gamma(shape, rate) by Marsaglia & Tsang, with the boost below 1.
    fn gamma_sample(rng: &mut ChaCha8Rng, shape: f64, rate: f64) -> f64 {
        if shape < 1.0 {
            let u: f64 = rng.r#gen();
            return gamma_sample(rng, shape + 1.0, rate) * (1.0 - u).powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let (u1, u2): (f64, f64) = (rng.r#gen(), rng.r#gen());
            let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            let v = (1.0 + c * z).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u: f64 = rng.r#gen();
            if (1.0 - u).ln() < 0.5 * z * z + d - d * v + d * v.ln() {
                return d * v / rate;
            }
        }
    }

    /// 100,000 simulated customers (ν ~ Gamma(q, v), each transaction
    /// ~ Gamma(p, ν), 1 to 20 repeat transactions): q recovered within 5 %,
    /// p and v within 10 % — the model sees only each customer's mean, so p
    /// is learnt from how the spread of means shrinks with x and p and v
    /// are uncertain together (over other seeds their errors reached 5 %,
    /// q's 1.5 %); and merged partial data fit the same.
    #[test]
    fn recovers_simulated_parameters() {
        let truth = CDNOW;
        let mut rng = ChaCha8Rng::seed_from_u64(2005);
        let mut all = GammaGammaData::new();
        let mut parts = [GammaGammaData::new(), GammaGammaData::new()];
        for i in 0..100_000 {
            let nu = gamma_sample(&mut rng, truth.q, truth.v);
            let x = rng.gen_range(1..=20);
            let total: f64 = (0..x).map(|_| gamma_sample(&mut rng, truth.p, nu)).sum();
            let (x, m) = (f64::from(x), total / f64::from(x));
            all.add(x, m).unwrap();
            parts[i % 2].add(x, m).unwrap();
        }
        let fitted = all.fit().unwrap();
        for (name, ours, true_value, tolerance) in [
            ("p", fitted.params.p, truth.p, 0.10),
            ("q", fitted.params.q, truth.q, 0.05),
            ("v", fitted.params.v, truth.v, 0.10),
        ] {
            assert!(
                (ours - true_value).abs() / true_value < tolerance,
                "{name}: {ours} vs {true_value} ({fitted:?})"
            );
        }
        let [mut left, right] = parts;
        left.merge(&right);
        assert_eq!(left.fit().unwrap(), fitted);

        // Above 100,000 rows the pairs are grouped, not merged, and a
        // subsample is fitted first: the same maximum.
        let mut frequency = Vec::new();
        let mut monetary = Vec::new();
        for (x, m, count) in all.iter() {
            for _ in 0..count {
                frequency.push(x);
                monetary.push(m);
            }
        }
        let tripled: Vec<f64> = frequency
            .iter()
            .chain(&frequency)
            .chain(&frequency)
            .copied()
            .collect();
        let monetary3: Vec<f64> = monetary
            .iter()
            .chain(&monetary)
            .chain(&monetary)
            .copied()
            .collect();
        let large = fit(&tripled, &monetary3).unwrap();
        assert_eq!(large.n, 300_000);
        for (u, v) in [
            (large.params.p, fitted.params.p),
            (large.params.q, fitted.params.q),
            (large.params.v, fitted.params.v),
        ] {
            assert!((u - v).abs() < 1e-6 * v, "{large:?} vs {fitted:?}");
        }
    }

    /// Summaries laid out from their tallies are fitted as from their columns, bit
    /// for bit.
    #[test]
    fn tallied_summaries_fit_as_their_columns() {
        let h = crate::functions::ltv::whole::simulated_summaries(250_000, 12);
        assert!(
            h.whole_tallies()
                .unwrap()
                .positive_spend_by_x
                .iter()
                .sum::<usize>()
                > MERGE_UP_TO
        );
        assert_eq!(
            fit_summaries_positive_spend(&h).unwrap(),
            fit_positive_spend(&h.frequency, &h.monetary_value).unwrap()
        );
    }

    /// The layout built straight from the summary columns is the general one: the
    /// same groups and tuples, bit for bit, in the same order (customers without a
    /// repeat purchase and those whose repeat orders were all free left out).
    #[test]
    fn whole_number_layout_is_the_general_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(25);
        let (mut frequency, mut monetary) = (Vec::new(), Vec::new());
        for _ in 0..150_000 {
            let x = f64::from(rng.gen_range(0..12u32));
            // Free repeat orders now and then, and never spend without them.
            let free = rng.gen_range(0..10) == 0;
            let m = if x == 0.0 || free {
                0.0
            } else {
                rng.gen_range(1.0..500.0)
            };
            frequency.push(x);
            monetary.push(m);
        }
        let whole = prepare_whole(&frequency, &monetary, true)
            .expect("whole frequencies")
            .unwrap();
        let (mut repeat_x, mut repeat_m) = (Vec::new(), Vec::new());
        for (&x, &m) in frequency.iter().zip(&monetary) {
            if x > 0.0 && m != 0.0 {
                repeat_x.push(x);
                repeat_m.push(m);
            }
        }
        assert!(repeat_x.len() > MERGE_UP_TO);
        let general = prepare(&repeat_x, &repeat_m, None);
        assert_eq!(whole.scale.to_bits(), general.scale.to_bits());
        assert_eq!(whole.total, general.total);
        let groups = |p: &Prepared| -> Vec<(u64, usize, usize)> {
            p.groups
                .iter()
                .map(|g| (g.x.to_bits(), g.start, g.end))
                .collect()
        };
        assert_eq!(groups(&whole), groups(&general));
        let tuples = |p: &Prepared| -> Vec<[u64; 3]> {
            p.tuples
                .iter()
                .map(|t| [t.xm.to_bits(), t.ln_m.to_bits(), t.w.to_bits()])
                .collect()
        };
        assert_eq!(tuples(&whole), tuples(&general));

        // Fewer repeat customers, or a frequency that is not a whole number: the
        // general road.
        assert!(prepare_whole(&frequency[..1000], &monetary[..1000], true).is_none());
        let mut fractional = frequency.clone();
        fractional[7] = 1.5;
        assert!(prepare_whole(&fractional, &monetary, true).is_none());
        // A bad amount is refused as the general road refuses it.
        let mut negative = monetary.clone();
        let at = frequency.iter().position(|&x| x > 0.0).unwrap();
        negative[at] = -1.0;
        assert!(matches!(
            prepare_whole(&frequency, &negative, true),
            Some(Err(LtvError::InvalidInput { .. }))
        ));
    }
}
