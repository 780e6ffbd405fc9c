//! The BG/NBD model (Fader, Hardie & Lee 2005, "Counting Your Customers the
//! Easy Way"): its likelihood, maximum-likelihood fit, P(alive) and the
//! conditional expected number of purchases.
//!
//! Each customer buys as a Poisson process with rate λ ~ Gamma(r, α) (α a
//! rate, so α has the unit of time) and after every repeat purchase drops
//! out for good with probability p ~ Beta(a, b). A customer's history is
//! (x, t_x, T): repeat purchases, age at the last one, age now.
//!
//! The fit is what `lifetimes` 0.11.3's `BetaGeoFitter` (penalizer 0)
//! computes: the maximum of the same likelihood, found over log-parameters
//! with times divided by the largest T (as `lifetimes` does, for
//! conditioning; α is scaled back). `lifetimes` minimises the mean negative
//! log-likelihood with BFGS; the optimum is the same, and this one is found
//! to a gradient norm of 1e-9 on that mean.
//!
//! Speed: equal histories are collapsed into one weighted tuple first (Fader
//! and Hardie fit this way too: exact, and the number of distinct tuples is
//! what an evaluation costs). Within an evaluation everything that depends
//! only on x (the Gamma and digamma functions) is computed once per distinct
//! x, and ln(α+v), 1/(α+v) once per distinct time value v, leaving one `exp`
//! and one `ln_1p` per tuple with a repeat purchase and two multiply-adds
//! per tuple without. Above [`MERGE_UP_TO`] customers only those without a
//! repeat purchase are merged (per T, in linear time) and the others grouped
//! by x: with more than [`SUBSAMPLE_ABOVE`] tuples the optimiser first fits
//! a systematic subsample and then needs only about five evaluations of all
//! the data (see [`super::optimize`]), fewer than a sort to merge them would
//! cost. Evaluations of more than 40,000 tuples run on several threads.

use rustc_hash::FxHashMap;
use statrs::function::gamma::{digamma, ln_gamma};

use super::collapse::{
    Collapsed, Dictionary, Group, WeightedRows, collapse, lay_out, ranks_of_seen,
};
use super::error::LtvError;
use super::expectation::NumeratorSeries;
use super::optimize::{MIN_CUSTOMERS, fit_log_parameters};
use super::summary::SummaryColumns;
use super::vector_math;
use super::whole::{WHOLE_BLOCK, WHOLE_LIMIT, WholeTallies, index_of, is_index, whole_index};

const MODEL: &str = "BG/NBD";

/// Fitted (or given) BG/NBD parameters: λ ~ Gamma(shape r, rate α),
/// p ~ Beta(a, b). α is in the time unit of the data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbdParams {
    /// Shape of the purchase-rate distribution.
    pub r: f64,
    /// Rate (scale of time) of the purchase-rate distribution.
    pub alpha: f64,
    /// First shape of the dropout-probability distribution.
    pub a: f64,
    /// Second shape of the dropout-probability distribution.
    pub b: f64,
}

impl BgNbdParams {
    /// Checks that every parameter is a positive finite number.
    ///
    /// # Errors
    /// [`LtvError::InvalidParams`] naming the first bad parameter.
    pub fn validate(&self) -> Result<(), LtvError> {
        for (name, value) in [
            ("r", self.r),
            ("alpha", self.alpha),
            ("a", self.a),
            ("b", self.b),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(LtvError::InvalidParams {
                    model: MODEL,
                    reason: format!("{name} = {value}; every parameter must be a positive number"),
                });
            }
        }
        Ok(())
    }
}

/// A fitted BG/NBD model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbdFit {
    /// The maximum-likelihood parameters.
    pub params: BgNbdParams,
    /// The total log-likelihood at them, in the data's time unit (the
    /// number Fader, Hardie & Lee report: −9582.4 on CDNOW in weeks).
    pub log_likelihood: f64,
    /// Customers fitted on.
    pub n: u64,
}

/// Whether `x` is a whole number from 0 to 2^53 (beyond, doubles are all
/// whole and no count is that large). Written with an integer cast rather
/// than `fract`, which is a library call on baseline x86-64.
#[inline]
pub(crate) fn is_whole(x: f64) -> bool {
    (0.0..=9_007_199_254_740_992.0).contains(&x) && (x as i64) as f64 == x
}

/// Checks one customer's history: x a whole number ≥ 0, 0 ≤ t_x ≤ T, all
/// finite. (One test on the way through; which rule failed is worked out
/// only on failure, as this runs for every customer.)
#[inline]
fn check_history(x: f64, t_x: f64, t: f64) -> Result<(), LtvError> {
    let finite = 0.0..f64::INFINITY;
    if is_whole(x) && finite.contains(&t_x) && finite.contains(&t) && t_x <= t {
        Ok(())
    } else {
        Err(history_error(x, t_x, t))
    }
}

#[cold]
fn history_error(x: f64, t_x: f64, t: f64) -> LtvError {
    let finite = 0.0..f64::INFINITY;
    if !is_whole(x) {
        LtvError::InvalidInput {
            what: "frequency",
            value: x,
            expected: "a whole number >= 0",
        }
    } else if !finite.contains(&t_x) {
        LtvError::InvalidInput {
            what: "recency",
            value: t_x,
            expected: "a finite number >= 0",
        }
    } else if !finite.contains(&t) {
        LtvError::InvalidInput {
            what: "t",
            value: t,
            expected: "a finite number >= 0",
        }
    } else {
        LtvError::RecencyAfterAge { recency: t_x, t }
    }
}

/// One customer's log-likelihood and its gradient with respect to
/// (ln r, ln α, ln a, ln b), in log space throughout (ln Γ differences and a
/// log-sum-exp of the two terms), so that it stays finite for large counts
/// and long histories.
///
/// # Errors
/// Invalid parameters or history, or a result that is not finite.
pub fn log_likelihood(
    params: &BgNbdParams,
    x: f64,
    t_x: f64,
    t: f64,
) -> Result<(f64, [f64; 4]), LtvError> {
    params.validate()?;
    check_history(x, t_x, t)?;
    let BgNbdParams { r, alpha, a, b } = *params;
    let parts = XParts::new(params, x);
    let mut sums = TupleSums::default();
    let (ln_t, inv_t) = ((alpha + t).ln(), 1.0 / (alpha + t));
    if x > 0.0 {
        let at = [[ln_t, inv_t], [(alpha + t_x).ln(), 1.0 / (alpha + t_x)]];
        sums.add_repeats(
            &parts,
            &at,
            &[Tuple {
                t: 0,
                t_x: 1,
                w: 1.0,
            }],
        );
    } else {
        sums.add_first_only(ln_t, inv_t, 1.0);
    }
    let (ll, g) = parts.finish(params, 1.0, &sums);
    let gradient = [g[0] * r, g[1] * alpha, g[2] * a, g[3] * b];
    if !ll.is_finite() || gradient.iter().any(|v| !v.is_finite()) {
        return Err(LtvError::NonFinite {
            what: "the BG/NBD log-likelihood",
        });
    }
    Ok((ll, gradient))
}

/// The per-x parts of the likelihood (A1 + A2 of Fader & Hardie's note 004)
/// and their derivatives with respect to the parameters themselves.
#[derive(Debug, Clone, Copy)]
struct XParts {
    x: f64,
    /// r + x.
    rx: f64,
    ll: f64,
    d_r: f64,
    d_a: f64,
    d_b: f64,
    /// ln a − ln(b + x − 1): the constant of the dropped-out term's log
    /// ratio.
    c_x: f64,
}

impl XParts {
    fn new(p: &BgNbdParams, x: f64) -> Self {
        let BgNbdParams { r, alpha, a, b } = *p;
        let ln_alpha = alpha.ln();
        if x == 0.0 {
            return XParts {
                x,
                rx: r,
                ll: r * ln_alpha,
                d_r: ln_alpha,
                d_a: 0.0,
                d_b: 0.0,
                c_x: 0.0,
            };
        }
        let (psi_ab, psi_abx) = (digamma(a + b), digamma(a + b + x));
        XParts {
            x,
            rx: r + x,
            ll: ln_gamma(r + x) - ln_gamma(r) + r * ln_alpha + ln_gamma(a + b) + ln_gamma(b + x)
                - ln_gamma(b)
                - ln_gamma(a + b + x),
            d_r: digamma(r + x) - digamma(r) + ln_alpha,
            d_a: psi_ab - psi_abx,
            d_b: psi_ab + digamma(b + x) - digamma(b) - psi_abx,
            c_x: a.ln() - (b + x - 1.0).ln(),
        }
    }

    /// The log-likelihood of all customers with this x (total weight `w`,
    /// tuple sums `s`) and its gradient with respect to (r, α, a, b).
    fn finish(&self, p: &BgNbdParams, w: f64, s: &TupleSums) -> (f64, [f64; 4]) {
        let BgNbdParams { r, alpha, a, b } = *p;
        let mut ll = w * self.ll - self.rx * s.ln_t;
        let mut g = [
            w * self.d_r - s.ln_t,
            w * r / alpha - self.rx * s.inv_t,
            w * self.d_a,
            w * self.d_b,
        ];
        if self.x > 0.0 {
            ll += s.softplus;
            g[0] -= s.s_diff;
            g[1] += self.rx * s.s_inv_diff;
            g[2] += s.s / a;
            g[3] -= s.s / (b + self.x - 1.0);
        }
        (ll, g)
    }
}

/// Weighted sums over the tuples of one x. With d = A4 − A3 =
/// ln a − ln(b+x−1) − (r+x)(ln(α+t_x) − ln(α+T)), a repeat customer's
/// likelihood is A1 + A2 + A3 + softplus(d), and σ(d) is the share of the
/// dropped-out term in it.
#[derive(Debug, Clone, Copy, Default)]
struct TupleSums {
    /// Σ w ln(α+T).
    ln_t: f64,
    /// Σ w / (α+T).
    inv_t: f64,
    /// Σ w softplus(d).
    softplus: f64,
    /// Σ w σ(d).
    s: f64,
    /// Σ w σ(d) (ln(α+t_x) − ln(α+T)).
    s_diff: f64,
    /// Σ w σ(d) (1/(α+T) − 1/(α+t_x)).
    s_inv_diff: f64,
}

impl TupleSums {
    /// A customer without repeat purchases (only A3 depends on the tuple).
    #[inline]
    fn add_first_only(&mut self, ln_t: f64, inv_t: f64, w: f64) {
        self.ln_t += w * ln_t;
        self.inv_t += w * inv_t;
    }

    /// Customers with repeat purchases, at most [`SUM_BLOCK`] of them, in
    /// the order of the tuples; returns their total weight. The exponentials
    /// and logarithms of the whole block are taken at once (vectorised).
    #[inline]
    fn add_repeats(&mut self, parts: &XParts, at: &[[f64; 2]], block: &[Tuple]) -> f64 {
        let n = block.len();
        let mut d = [0.0; SUM_BLOCK];
        let mut diff = [0.0; SUM_BLOCK];
        let mut inv_diff = [0.0; SUM_BLOCK];
        for (i, tuple) in block.iter().enumerate() {
            let ([ln_t, inv_t], [ln_tx, inv_tx]) = (at[tuple.t as usize], at[tuple.t_x as usize]);
            self.ln_t += tuple.w * ln_t;
            self.inv_t += tuple.w * inv_t;
            diff[i] = ln_tx - ln_t;
            d[i] = parts.c_x - parts.rx * diff[i];
            inv_diff[i] = inv_t - inv_tx;
        }
        let mut softplus = [0.0; SUM_BLOCK];
        let mut sigma = [0.0; SUM_BLOCK];
        vector_math::softplus_sigmoid(&d[..n], &mut softplus[..n], &mut sigma[..n]);
        let mut weight = 0.0;
        for (i, tuple) in block.iter().enumerate() {
            self.softplus += tuple.w * softplus[i];
            let ws = tuple.w * sigma[i];
            self.s += ws;
            self.s_diff += ws * diff[i];
            self.s_inv_diff += ws * inv_diff[i];
            weight += tuple.w;
        }
        weight
    }
}

/// The memory key of an (x, T, horizon): their bits, −0 read as 0.
type HistoryKey = (u64, u64, u64);

fn history_key(x: f64, t: f64, horizon: f64) -> HistoryKey {
    (
        (x + 0.0).to_bits(),
        (t + 0.0).to_bits(),
        (horizon + 0.0).to_bits(),
    )
}

/// Customer histories to fit on, each with a count: the state of the
/// fitting aggregate. Adding is a push (rows are collapsed into distinct
/// histories when fitted, or by [`BgNbdData::collapse`] to make a partial
/// state small), and states of partitions merge by concatenation. Collapsing
/// is exact: the likelihood of equal histories is one term times their
/// count.
#[derive(Debug, Clone, Default)]
pub struct BgNbdData {
    /// Columns x, T, t_x: the order the distinct histories are sorted in.
    rows: WeightedRows<3>,
}

/// Dictionaries of [`BgNbdData`]'s columns: T and t_x share one.
const DICTIONARY_OF: [usize; 3] = [0, 1, 1];

impl BgNbdData {
    /// No customers.
    pub fn new() -> Self {
        BgNbdData::default()
    }

    /// Adds one customer with frequency `x`, recency `t_x` and age `t`.
    ///
    /// # Errors
    /// [`LtvError::InvalidInput`] for a fractional, negative or non-finite
    /// value or a recency other than 0 at frequency 0;
    /// [`LtvError::RecencyAfterAge`] when `t_x > t`.
    pub fn add(&mut self, x: f64, t_x: f64, t: f64) -> Result<(), LtvError> {
        self.add_count(x, t_x, t, 1)
    }

    /// Adds `count` customers with the same history.
    ///
    /// # Errors
    /// As [`BgNbdData::add`].
    pub fn add_count(&mut self, x: f64, t_x: f64, t: f64, count: u64) -> Result<(), LtvError> {
        check_fit_history(x, t_x, t)?;
        self.rows.push([x, t, t_x], count);
        Ok(())
    }

    /// Adds every customer of `other`.
    pub fn merge(&mut self, other: &BgNbdData) {
        self.rows.merge(&other.rows);
    }

    /// Number of customers added.
    pub fn customers(&self) -> u64 {
        self.rows.customers()
    }

    /// Number of rows held (distinct histories after
    /// [`BgNbdData::collapse`]).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no customer was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Replaces the rows by the distinct histories with summed counts.
    pub fn collapse(&mut self) {
        self.rows.collapse(DICTIONARY_OF);
    }

    /// The rows as (x, t_x, T, count).
    pub fn iter(&self) -> impl Iterator<Item = (f64, f64, f64, u64)> + '_ {
        (0..self.rows.len()).map(|i| {
            let ([x, t, t_x], count) = self.rows.row(i);
            (x, t_x, t, count)
        })
    }

    /// The maximum-likelihood fit.
    ///
    /// # Errors
    /// [`LtvError::DegenerateInput`] for fewer than [`MIN_CUSTOMERS`]
    /// customers, no repeat purchase at all, or every age 0;
    /// [`LtvError::NotConverged`] when the optimiser does not reach the
    /// maximum or the data do not determine some parameter (it runs off to
    /// 0 or infinity).
    pub fn fit(&self) -> Result<BgNbdFit, LtvError> {
        if self.customers() < MIN_CUSTOMERS {
            return Err(too_few(self.customers()));
        }
        // Checked as they were added.
        prepare(
            self.rows.column(0),
            self.rows.column(2),
            self.rows.column(1),
            Some(self.rows.counts()),
            false,
        )?
        .fit()
    }
}

/// Fits the model to one history per customer: `frequency[i]`,
/// `recency[i]`, `t[i]`.
///
/// # Errors
/// As [`BgNbdData::add`] and [`BgNbdData::fit`]; [`LtvError::InvalidInput`]
/// when the slices differ in length.
pub fn fit(frequency: &[f64], recency: &[f64], t: &[f64]) -> Result<BgNbdFit, LtvError> {
    if frequency.len() != recency.len() || frequency.len() != t.len() {
        return Err(LtvError::InvalidInput {
            what: "number of recency or t values",
            value: recency.len().min(t.len()) as f64,
            expected: "one frequency, recency and t per customer",
        });
    }
    let customers = frequency.len() as u64;
    if customers < MIN_CUSTOMERS {
        // The first invalid history is the better message, if there is one.
        for ((&x, &t_x), &age) in frequency.iter().zip(recency).zip(t) {
            check_fit_history(x, t_x, age)?;
        }
        return Err(too_few(customers));
    }
    let started = std::time::Instant::now();
    fit_laid_out(started, prepare(frequency, recency, t, None, true)?)
}

/// [`fit`] of summaries: laid out from their [`WholeTallies`] when they have them (they
/// are valid histories by construction, and counted already), as [`fit`] otherwise.
///
/// # Errors
/// As [`fit`].
pub fn fit_summaries(h: &SummaryColumns) -> Result<BgNbdFit, LtvError> {
    match h.whole_tallies() {
        Some(tallies) if h.len() > MERGE_UP_TO => {
            let started = std::time::Instant::now();
            fit_laid_out(
                started,
                prepare_tallied(&h.frequency, &h.recency, &h.t, tallies)?,
            )
        }
        _ => fit(&h.frequency, &h.recency, &h.t),
    }
}

/// Fits laid-out data, logging how long the layout since `started` took.
fn fit_laid_out(started: std::time::Instant, prepared: Prepared) -> Result<BgNbdFit, LtvError> {
    tracing::debug!(
        model = MODEL,
        layout_ms = started.elapsed().as_secs_f64() * 1e3,
        histories = prepared.tuples.len(),
        "fit layout"
    );
    prepared.fit()
}

fn too_few(customers: u64) -> LtvError {
    LtvError::DegenerateInput {
        model: MODEL,
        reason: format!("{customers} customers; at least {MIN_CUSTOMERS} are needed"),
    }
}

/// A history as the fit accepts it: as the predictions do, and recency 0 at
/// frequency 0.
#[inline]
fn check_fit_history(x: f64, t_x: f64, t: f64) -> Result<(), LtvError> {
    check_history(x, t_x, t)?;
    if x == 0.0 && t_x != 0.0 {
        return Err(zero_frequency_recency(t_x));
    }
    Ok(())
}

#[cold]
fn zero_frequency_recency(t_x: f64) -> LtvError {
    LtvError::InvalidInput {
        what: "recency",
        value: t_x,
        expected: "0 when frequency is 0 (recency is the age at the last repeat purchase)",
    }
}

/// Above this many rows, histories are only grouped by x, not merged: the
/// fit then evaluates all the data only a handful of times (after the
/// subsample), and merging would cost more than it saves.
const MERGE_UP_TO: usize = 100_000;

/// The data laid out for the fit: equal histories merged (up to
/// [`MERGE_UP_TO`] rows) or grouped by x; each history checked first when
/// `check` (in the same pass over the data).
fn prepare(
    x: &[f64],
    t_x: &[f64],
    t: &[f64],
    counts: Option<&[u64]>,
    check: bool,
) -> Result<Prepared, LtvError> {
    if x.len() <= MERGE_UP_TO {
        if check {
            for ((&x, &t_x), &age) in x.iter().zip(t_x).zip(t) {
                check_fit_history(x, t_x, age)?;
            }
        }
        let Collapsed { dictionaries, rows } = collapse([x, t, t_x], [0, 1, 1], counts);
        let xs = &dictionaries[0];
        let tuples = rows.iter().map(|(id, count)| {
            (
                xs[id[0] as usize],
                Tuple {
                    t: id[1],
                    t_x: id[2],
                    w: *count as f64,
                },
            )
        });
        return Prepared::new(dictionaries[1].clone(), tuples, rows.len());
    }
    match prepare_whole(x, t_x, t, counts, check) {
        Some(prepared) => prepared,
        None => prepare_grouped(x, t_x, t, counts, check),
    }
}

/// What [`prepare_whole`] answers for a block that failed its tests: read row by row,
/// `None` at the first value that is not a whole number in range, the error of the
/// first invalid history when `check`.
#[cold]
fn whole_block_refused(
    x: &[f64],
    t_x: &[f64],
    t: &[f64],
    check: bool,
) -> Option<Result<Prepared, LtvError>> {
    let whole = |v: f64| whole_index(v).is_some();
    for i in 0..x.len() {
        if !(whole(x[i]) && whole(t[i]) && whole(t_x[i])) {
            return None;
        }
        if check && let Err(e) = check_fit_history(x[i], t_x[i], t[i]) {
            return Some(Err(e));
        }
    }
    // Unreachable: the block failed a test one of the above repeats.
    None
}

/// [`prepare_grouped`]'s layout when every x, t_x and T is a whole number below
/// [`WHOLE_LIMIT`] (frequencies always are; so are ages in days and weeks): values
/// index tables directly, where the general path looks each one up in a dictionary and
/// keeps the ids. `None`, having read no further, at the first value that is not.
fn prepare_whole(
    x: &[f64],
    t_x: &[f64],
    t: &[f64],
    counts: Option<&[u64]>,
    check: bool,
) -> Option<Result<Prepared, LtvError>> {
    let weight = |row: usize| counts.map_or(1.0, |c| c[row] as f64);
    let mut time_seen = vec![false; WHOLE_LIMIT];
    // Weights without repeat purchases per T; rows per x (those with repeat purchases
    // from 1 up; row 0's count is never used).
    let mut first_only_by_t = vec![0.0; WHOLE_LIMIT];
    let mut per_x = vec![0usize; WHOLE_LIMIT];
    let mut largest_x = 0;
    // A block at a time, without a branch per row (a third of the customers have no
    // repeat purchase, in no pattern a branch predictor could follow): every value is
    // tested and the tests are combined, every row counted (in tables as large as any
    // whole value can index), and only then is the block's verdict looked at. A block
    // with a value that is not whole or a history that is not valid is read again row
    // by row, to stop exactly where the general path would.
    for start in (0..x.len()).step_by(WHOLE_BLOCK) {
        let end = (start + WHOLE_BLOCK).min(x.len());
        let mut valid = true;
        for i in start..end {
            let (xv, tv, t_xv) = (x[i] + 0.0, t[i] + 0.0, t_x[i] + 0.0);
            let (xi, ti, t_xi) = (index_of(xv), index_of(tv), index_of(t_xv));
            valid &= is_index(xv, xi) & is_index(tv, ti) & is_index(t_xv, t_xi);
            if check {
                // check_fit_history for whole values: recency within the age, and 0
                // without repeat purchases.
                valid &= (t_xv <= tv) & ((xi != 0) | (t_xi == 0));
            }
            time_seen[ti] = true;
            time_seen[t_xi] = true;
            first_only_by_t[ti] += if xi == 0 { weight(i) } else { 0.0 };
            per_x[xi] += 1;
            largest_x = largest_x.max(xi);
        }
        if !valid {
            return whole_block_refused(&x[start..end], &t_x[start..end], &t[start..end], check);
        }
    }
    per_x.truncate(largest_x + 1);
    Some(lay_out_whole(
        x,
        t_x,
        t,
        counts,
        &time_seen,
        &first_only_by_t,
        &per_x,
    ))
}

/// [`prepare_whole`]'s layout from summaries' [`WholeTallies`]: the counting done.
fn prepare_tallied(
    x: &[f64],
    t_x: &[f64],
    t: &[f64],
    tallies: &WholeTallies,
) -> Result<Prepared, LtvError> {
    let first_only_by_t: Vec<f64> = tallies
        .first_only_by_t
        .iter()
        .map(|&count| count as f64)
        .collect();
    lay_out_whole(
        x,
        t_x,
        t,
        None,
        &tallies.time_seen,
        &first_only_by_t,
        &tallies.repeat_by_x,
    )
}

/// Lays out histories in whole numbers, counted: which times occur, the weights of
/// those without repeat purchases per T, the rows with repeat purchases per x (x
/// from 1; any count at 0 is not read).
fn lay_out_whole(
    x: &[f64],
    t_x: &[f64],
    t: &[f64],
    counts: Option<&[u64]>,
    time_seen: &[bool],
    first_only_by_t: &[f64],
    per_x: &[usize],
) -> Result<Prepared, LtvError> {
    let weight = |row: usize| counts.map_or(1.0, |c| c[row] as f64);
    let (times, t_rank) = ranks_of_seen(time_seen);
    // The same layout as `prepare_grouped`: those without repeat purchases by T, then
    // the others by x ascending, each x in input order.
    let mut tuples = Vec::with_capacity(x.len() + 1);
    let mut groups = Vec::new();
    for (v, &w) in first_only_by_t.iter().enumerate() {
        if w > 0.0 {
            tuples.push(Tuple {
                t: t_rank[v],
                t_x: 0,
                w,
            });
        }
    }
    if !tuples.is_empty() {
        groups.push(Group {
            x: 0.0,
            start: 0,
            end: tuples.len(),
        });
    }
    // Room at x = 0 (see below) even when nobody is counted there.
    let mut per_x = per_x.to_vec();
    if per_x.is_empty() {
        per_x.push(0);
    }
    per_x[0] = 0;
    let (mut next, laid_out) = lay_out(&per_x, |xi| xi as f64, tuples.len(), &mut groups);
    // One place past the end takes every row without repeat purchases, so that the
    // loop below does not branch on them either; it is cut off afterwards.
    tuples.resize(
        laid_out + 1,
        Tuple {
            t: 0,
            t_x: 0,
            w: 0.0,
        },
    );
    next[0] = laid_out;
    for i in 0..x.len() {
        let xi = x[i] as usize;
        tuples[next[xi]] = Tuple {
            t: t_rank[t[i] as usize],
            t_x: t_rank[t_x[i] as usize],
            w: weight(i),
        };
        next[xi] += usize::from(xi != 0);
    }
    tuples.truncate(laid_out);
    Prepared::from_groups(times, groups, tuples)
}

/// The general layout of many rows: customers without a repeat purchase differ only
/// in T, and their weights are summed per T; the others are grouped by x with a
/// counting sort.
fn prepare_grouped(
    x: &[f64],
    t_x: &[f64],
    t: &[f64],
    counts: Option<&[u64]>,
    check: bool,
) -> Result<Prepared, LtvError> {
    let weight = |row: usize| counts.map_or(1.0, |c| c[row] as f64);
    // First pass: check, give values dense ids (in order of appearance),
    // count per x and sum the weights without repeat purchases per T.
    let mut xs = Dictionary::new();
    let mut times = Dictionary::new();
    let n = x.len();
    let (mut x_ids, mut t_ids, mut t_x_ids) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut per_x: Vec<usize> = Vec::new();
    let mut first_only_by_id: Vec<f64> = Vec::new();
    for i in 0..n {
        if check {
            check_fit_history(x[i], t_x[i], t[i])?;
        }
        let (x_id, t_id, t_x_id) = (xs.id(x[i]), times.id(t[i]), times.id(t_x[i]));
        if x[i] == 0.0 {
            if first_only_by_id.len() <= t_id as usize {
                first_only_by_id.resize(t_id as usize + 1, 0.0);
            }
            first_only_by_id[t_id as usize] += weight(i);
        } else {
            if per_x.len() <= x_id as usize {
                per_x.resize(x_id as usize + 1, 0);
            }
            per_x[x_id as usize] += 1;
        }
        x_ids.push(x_id);
        t_ids.push(t_id);
        t_x_ids.push(t_x_id);
    }
    let (x_values, x_rank) = xs.into_sorted();
    let (times, t_rank) = times.into_sorted();
    per_x.resize(x_values.len(), 0);
    first_only_by_id.resize(times.len(), 0.0);

    // The tuples in their final order: those without repeat purchases by T,
    // then the others by x (ranks ascending), each x in input order.
    let mut first_only = vec![0.0; times.len()];
    for (id, w) in first_only_by_id.iter().enumerate() {
        first_only[t_rank[id] as usize] = *w;
    }
    let first_only_count = first_only.iter().filter(|w| **w > 0.0).count();
    let mut count_by_rank = vec![0usize; x_values.len()];
    for (id, count) in per_x.iter().enumerate() {
        count_by_rank[x_rank[id] as usize] = *count;
    }
    let mut groups = Vec::with_capacity(x_values.len());
    let mut start = 0;
    if first_only_count > 0 {
        groups.push(Group {
            x: 0.0,
            start,
            end: first_only_count,
        });
        start = first_only_count;
    }
    let (mut next_by_rank, start) =
        lay_out(&count_by_rank, |rank| x_values[rank], start, &mut groups);
    let mut tuples = vec![
        Tuple {
            t: 0,
            t_x: 0,
            w: 0.0
        };
        start
    ];
    // t_x is not read for customers without repeat purchases.
    let mut slot = 0;
    for (rank, &w) in first_only.iter().enumerate() {
        if w > 0.0 {
            tuples[slot] = Tuple {
                t: rank as u32,
                t_x: 0,
                w,
            };
            slot += 1;
        }
    }
    for i in 0..n {
        if x[i] != 0.0 {
            let rank = x_rank[x_ids[i] as usize] as usize;
            tuples[next_by_rank[rank]] = Tuple {
                t: t_rank[t_ids[i] as usize],
                t_x: t_rank[t_x_ids[i] as usize],
                w: weight(i),
            };
            next_by_rank[rank] += 1;
        }
    }
    Prepared::from_groups(times, groups, tuples)
}

/// A distinct history, times as indices into [`Prepared::times`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tuple {
    t: u32,
    t_x: u32,
    w: f64,
}

/// The data laid out for fast evaluation, times divided by the largest T.
#[derive(Debug, PartialEq)]
struct Prepared {
    scale: f64,
    times: Vec<f64>,
    groups: Vec<Group>,
    tuples: Vec<Tuple>,
    total: f64,
    /// Σ w·x, for converting the log-likelihood back to unscaled time.
    sum_x: f64,
}

/// Above this many distinct histories, fit a subsample first (see
/// [`super::optimize`]).
const SUBSAMPLE_ABOVE: usize = 25_000;

/// Customers in that subsample.
const SUBSAMPLE_CUSTOMERS: f64 = 10_000.0;

/// Tuples summed before their total joins the running sum.
pub(crate) const SUM_BLOCK: usize = 256;

/// Distinct histories per thread of an evaluation (below it, one thread).
const TUPLES_PER_THREAD: usize = 40_000;

impl Prepared {
    /// From the sorted distinct times, the groups by x (ascending) and
    /// their tuples.
    fn from_groups(
        times: Vec<f64>,
        groups: Vec<Group>,
        tuples: Vec<Tuple>,
    ) -> Result<Self, LtvError> {
        let (mut total, mut sum_x) = (0.0, 0.0);
        for group in &groups {
            let weight: f64 = tuples[group.start..group.end].iter().map(|t| t.w).sum();
            total += weight;
            sum_x += weight * group.x;
        }
        Prepared::checked(times, groups, tuples, total, sum_x)
    }

    /// From the sorted distinct times and the tuples with their x, in
    /// ascending x (at most `capacity` of them).
    fn new(
        times: Vec<f64>,
        rows: impl Iterator<Item = (f64, Tuple)>,
        capacity: usize,
    ) -> Result<Self, LtvError> {
        let mut groups: Vec<Group> = Vec::new();
        let mut tuples = Vec::with_capacity(capacity);
        let (mut total, mut sum_x) = (0.0, 0.0);
        for (x, tuple) in rows {
            match groups.last_mut() {
                Some(g) if g.x == x => g.end += 1,
                _ => groups.push(Group {
                    x,
                    start: tuples.len(),
                    end: tuples.len() + 1,
                }),
            }
            total += tuple.w;
            sum_x += tuple.w * x;
            tuples.push(tuple);
        }
        Prepared::checked(times, groups, tuples, total, sum_x)
    }

    /// Refuses data without repeat purchases or without age; scales time.
    fn checked(
        times: Vec<f64>,
        groups: Vec<Group>,
        tuples: Vec<Tuple>,
        total: f64,
        sum_x: f64,
    ) -> Result<Self, LtvError> {
        let max_t = times.last().copied().unwrap_or(0.0);
        let scale = if max_t > 0.0 { 1.0 / max_t } else { 1.0 };
        if !groups.iter().any(|g| g.x > 0.0) {
            return Err(LtvError::DegenerateInput {
                model: MODEL,
                reason: "no customer has a repeat purchase (every frequency is 0), so buying \
                         cannot be told apart from dropping out"
                    .to_string(),
            });
        }
        if max_t <= 0.0 {
            return Err(LtvError::DegenerateInput {
                model: MODEL,
                reason: "every customer has t = 0".to_string(),
            });
        }
        Ok(Prepared {
            scale,
            times: times.iter().map(|v| v * scale).collect(),
            groups,
            tuples,
            total,
            sum_x,
        })
    }

    /// A systematic subsample of about `customers` customers: every k-th
    /// customer in the order of the histories (sorted by x, T, t_x), so each
    /// stratum keeps its share.
    fn subsample(&self, customers: f64) -> Prepared {
        let step = (self.total / customers).ceil().max(1.0);
        let mut groups = Vec::new();
        let mut tuples = Vec::new();
        let (mut total, mut sum_x, mut before) = (0.0, 0.0, 0.0);
        for group in &self.groups {
            let start = tuples.len();
            for tuple in &self.tuples[group.start..group.end] {
                // Customers at positions before, ..., before + w − 1; those at
                // multiples of `step` are taken.
                let taken = ceil((before + tuple.w) / step) - ceil(before / step);
                before += tuple.w;
                if taken > 0.0 {
                    tuples.push(Tuple { w: taken, ..*tuple });
                    total += taken;
                    sum_x += taken * group.x;
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
            times: self.times.clone(),
            groups,
            tuples,
            total,
            sum_x,
        }
    }

    /// The log-likelihood (scaled time) of the tuples in `range` and its
    /// gradient with respect to (r, α, a, b).
    fn evaluate_range(
        &self,
        p: &BgNbdParams,
        at: &[[f64; 2]],
        range: std::ops::Range<usize>,
    ) -> (f64, [f64; 4]) {
        let mut ll = 0.0;
        let mut g = [0.0; 4];
        let first = self
            .groups
            .partition_point(|group| group.end <= range.start);
        for group in &self.groups[first..] {
            if group.start >= range.end {
                break;
            }
            let (lo, hi) = (group.start.max(range.start), group.end.min(range.end));
            let parts = XParts::new(p, group.x);
            // Summed in blocks, block totals then added: the rounding error
            // grows with the block size plus the number of blocks instead of
            // the number of tuples, so the optimiser can still see
            // improvements of 1e-15 in the mean on a million customers.
            for block in self.tuples[lo..hi].chunks(SUM_BLOCK) {
                let mut sums = TupleSums::default();
                let mut weight = 0.0;
                if group.x > 0.0 {
                    weight = sums.add_repeats(&parts, at, block);
                } else {
                    for tuple in block {
                        let [ln_t, inv_t] = at[tuple.t as usize];
                        sums.add_first_only(ln_t, inv_t, tuple.w);
                        weight += tuple.w;
                    }
                }
                // Everything is linear in the weight and the sums, so
                // partial groups add up.
                let (block_ll, block_g) = parts.finish(p, weight, &sums);
                ll += block_ll;
                for (total, part) in g.iter_mut().zip(block_g) {
                    *total += part;
                }
            }
        }
        (ll, g)
    }

    /// The total log-likelihood (scaled time) and its gradient with respect
    /// to the log-parameters, on as many threads as the size warrants.
    fn evaluate(&self, p: &BgNbdParams) -> (f64, [f64; 4]) {
        // ln(α+v) and 1/(α+v) side by side: one cache line for both.
        let at: Vec<[f64; 2]> = self
            .times
            .iter()
            .map(|v| {
                let s = p.alpha + v;
                [s.ln(), 1.0 / s]
            })
            .collect();
        let n = self.tuples.len();
        let threads = threads_for(n);
        let (ll, g) = if threads <= 1 {
            self.evaluate_range(p, &at, 0..n)
        } else {
            let chunk = n.div_ceil(threads);
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|i| {
                        let at = &at;
                        let range = (i * chunk).min(n)..((i + 1) * chunk).min(n);
                        scope.spawn(move || self.evaluate_range(p, at, range))
                    })
                    .collect();
                handles.into_iter().fold((0.0, [0.0; 4]), |(ll, mut g), h| {
                    // A panicking worker is a bug; NaN makes the fit fail cleanly.
                    let (part_ll, part_g) = h.join().unwrap_or((f64::NAN, [f64::NAN; 4]));
                    for (total, part) in g.iter_mut().zip(part_g) {
                        *total += part;
                    }
                    (ll + part_ll, g)
                })
            })
        };
        (ll, [g[0] * p.r, g[1] * p.alpha, g[2] * p.a, g[3] * p.b])
    }

    /// The mean negative log-likelihood over log-parameters, for the
    /// optimiser.
    fn objective(&self) -> impl Fn(&[f64], &mut [f64]) -> f64 + '_ {
        move |theta: &[f64], gradient: &mut [f64]| {
            let (ll, g) = self.evaluate(&params_from_logs(theta));
            for (out, gi) in gradient.iter_mut().zip(g) {
                *out = -gi / self.total;
            }
            -ll / self.total
        }
    }

    fn fit(&self) -> Result<BgNbdFit, LtvError> {
        let subsample =
            (self.tuples.len() > SUBSAMPLE_ABOVE).then(|| self.subsample(SUBSAMPLE_CUSTOMERS));
        // lifetimes' starting point: every log-parameter 0.1.
        let minimum = fit_log_parameters(
            MODEL,
            &["r", "alpha", "a", "b"],
            self.objective(),
            subsample.as_ref().map(Prepared::objective),
            &[0.1; 4],
            self.total,
            "typically a -> 0 and b -> infinity when the data show no dropping out, \
             or a and b -> infinity together when all customers look alike; \
             a finer time unit or a longer history helps",
        )?;
        let scaled = params_from_logs(&minimum.x);
        let params = BgNbdParams {
            alpha: scaled.alpha / self.scale,
            ..scaled
        };
        // L(scaled time) = L(time) · scale^−x for each customer.
        let log_likelihood = -minimum.value * self.total + self.sum_x * self.scale.ln();
        if !log_likelihood.is_finite() {
            return Err(LtvError::NonFinite {
                what: "the BG/NBD log-likelihood",
            });
        }
        Ok(BgNbdFit {
            params,
            log_likelihood,
            n: self.total as u64,
        })
    }
}

/// ⌈v⌉ for 0 ≤ v < 2⁶³, inlined (`f64::ceil` is a library call on the baseline
/// instruction set, and subsampling takes two per history).
#[inline]
pub(crate) fn ceil(v: f64) -> f64 {
    let truncated = v as i64 as f64;
    if truncated < v {
        truncated + 1.0
    } else {
        truncated
    }
}

/// Threads for an evaluation over `tuples` distinct rows.
pub(crate) fn threads_for(tuples: usize) -> usize {
    let available = crate::threads::available();
    (tuples / TUPLES_PER_THREAD).clamp(1, available.min(8))
}

fn params_from_logs(theta: &[f64]) -> BgNbdParams {
    BgNbdParams {
        r: theta[0].exp(),
        alpha: theta[1].exp(),
        a: theta[2].exp(),
        b: theta[3].exp(),
    }
}

/// P(alive | x, t_x, T) (Fader, Hardie & Lee's note 021): 1 for a customer
/// without repeat purchases, else 1 / (1 + a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)),
/// evaluated as a logistic function of the log odds so it neither overflows
/// nor rounds to NaN.
fn p_alive_unchecked(p: &BgNbdParams, x: f64, t_x: f64, t: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let log_odds_dead =
        (p.r + x) * ((t - t_x) / (p.alpha + t_x)).ln_1p() + (p.a / (p.b + x - 1.0)).ln();
    if log_odds_dead > 0.0 {
        let e = (-log_odds_dead).exp();
        e / (1.0 + e)
    } else {
        1.0 / (1.0 + log_odds_dead.exp())
    }
}

/// The probability that a customer with history (x, t_x, T) is still alive.
///
/// # Errors
/// Invalid parameters or history.
pub fn p_alive(params: &BgNbdParams, x: f64, t_x: f64, t: f64) -> Result<f64, LtvError> {
    params.validate()?;
    check_history(x, t_x, t)?;
    Ok(p_alive_unchecked(params, x, t_x, t))
}

fn check_horizon(horizon: f64) -> Result<(), LtvError> {
    if horizon.is_finite() && horizon >= 0.0 {
        Ok(())
    } else {
        Err(LtvError::InvalidInput {
            what: "horizon",
            value: horizon,
            expected: "a finite number of time units >= 0",
        })
    }
}

/// The expected number of purchases in the next `horizon` units of a
/// customer with history (x, t_x, T) (Fader, Hardie & Lee 2005, eq. 10; the
/// hypergeometric part as in [`super::expectation`]).
///
/// # Errors
/// Invalid parameters, horizon or history, or a non-finite result.
pub fn expected_purchases(
    params: &BgNbdParams,
    horizon: f64,
    x: f64,
    t_x: f64,
    t: f64,
) -> Result<f64, LtvError> {
    BgNbdPredictor::new(*params)?.expected_purchases(horizon, x, t_x, t)
}

/// Predictions for many customers under one set of parameters, remembering
/// the hypergeometric coefficients per frequency and the alive-customer
/// expectation per (x, T, horizon): customers share them, and they are the
/// expensive part. Keep one per batch or per query.
#[derive(Debug, Clone)]
pub struct BgNbdPredictor {
    params: BgNbdParams,
    series: FxHashMap<u64, NumeratorSeries>,
    numerators: FxHashMap<HistoryKey, f64>,
}

impl BgNbdPredictor {
    /// A predictor for `params`.
    ///
    /// # Errors
    /// [`LtvError::InvalidParams`] unless every parameter is positive and
    /// finite.
    pub fn new(params: BgNbdParams) -> Result<Self, LtvError> {
        params.validate()?;
        Ok(BgNbdPredictor {
            params,
            series: FxHashMap::default(),
            numerators: FxHashMap::default(),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &BgNbdParams {
        &self.params
    }

    /// How many results it remembers (a measure of the memory it holds).
    pub fn remembered(&self) -> usize {
        self.series.len() + self.numerators.len()
    }

    /// P(alive); see [`p_alive`].
    ///
    /// # Errors
    /// Invalid history.
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> Result<f64, LtvError> {
        check_history(x, t_x, t)?;
        Ok(p_alive_unchecked(&self.params, x, t_x, t))
    }

    /// Expected purchases in the next `horizon` units; see
    /// [`expected_purchases`].
    ///
    /// # Errors
    /// Invalid horizon or history, or a non-finite result.
    pub fn expected_purchases(
        &mut self,
        horizon: f64,
        x: f64,
        t_x: f64,
        t: f64,
    ) -> Result<f64, LtvError> {
        check_horizon(horizon)?;
        check_history(x, t_x, t)?;
        let value =
            self.alive_purchases(horizon, x, t) * p_alive_unchecked(&self.params, x, t_x, t);
        if value.is_finite() {
            Ok(value)
        } else {
            Err(LtvError::NonFinite {
                what: "the expected number of purchases",
            })
        }
    }

    /// The expected purchases in the next `horizon` units of a customer with
    /// frequency `x` and age `t` who is alive now (the first factor of
    /// eq. 10), remembered per (x, T, horizon); the arguments must have been
    /// checked.
    fn alive_purchases(&mut self, horizon: f64, x: f64, t: f64) -> f64 {
        let key = history_key(x, t, horizon);
        if let Some(&n) = self.numerators.get(&key) {
            return n;
        }
        let alpha = self.params.alpha;
        let n = self.series(x).numerator(alpha, t, horizon);
        self.numerators.insert(key, n);
        n
    }

    /// The hypergeometric coefficients of frequency `x` (checked).
    pub(crate) fn series(&mut self, x: f64) -> &mut NumeratorSeries {
        let params = self.params;
        self.series
            .entry((x + 0.0).to_bits())
            .or_insert_with(|| NumeratorSeries::new(&params, x))
    }

    /// Checks a history as the predictions do.
    pub(crate) fn check(x: f64, t_x: f64, t: f64) -> Result<(), LtvError> {
        check_history(x, t_x, t)
    }

    /// P(alive) of a checked history.
    pub(crate) fn p_alive_checked(&self, x: f64, t_x: f64, t: f64) -> f64 {
        p_alive_unchecked(&self.params, x, t_x, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The paper's CDNOW estimates (weeks).
    const CDNOW: BgNbdParams = BgNbdParams {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
    };

    /// The likelihood written out directly (Fader, Hardie & Lee 2005,
    /// eq. 6), in plain floating point: fine for small counts.
    fn direct_likelihood(p: &BgNbdParams, x: f64, t_x: f64, t: f64) -> f64 {
        let beta = |u: f64, v: f64| (ln_gamma(u) + ln_gamma(v) - ln_gamma(u + v)).exp();
        let gamma_part = (ln_gamma(p.r + x) - ln_gamma(p.r)).exp() * p.alpha.powf(p.r);
        let alive = beta(p.a, p.b + x) / beta(p.a, p.b) * gamma_part / (p.alpha + t).powf(p.r + x);
        let dropped = if x > 0.0 {
            beta(p.a + 1.0, p.b + x - 1.0) / beta(p.a, p.b) * gamma_part
                / (p.alpha + t_x).powf(p.r + x)
        } else {
            0.0
        };
        alive + dropped
    }

    #[test]
    fn likelihood_matches_the_direct_formula() {
        for (x, t_x, t) in [
            (0.0, 0.0, 30.0),
            (1.0, 2.0, 38.0),
            (5.0, 30.0, 32.0),
            (12.0, 0.5, 40.0),
        ] {
            let (ll, _) = log_likelihood(&CDNOW, x, t_x, t).unwrap();
            let direct = direct_likelihood(&CDNOW, x, t_x, t).ln();
            assert!(
                (ll - direct).abs() < 1e-12 * direct.abs().max(1.0),
                "{x} {t_x} {t}: {ll} vs {direct}"
            );
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let theta = [CDNOW.r.ln(), CDNOW.alpha.ln(), CDNOW.a.ln(), CDNOW.b.ln()];
        for (x, t_x, t) in [
            (0.0, 0.0, 30.0),
            (1.0, 2.0, 38.0),
            (7.0, 30.0, 32.0),
            (300.0, 200.0, 400.0),
        ] {
            let (_, gradient) = log_likelihood(&CDNOW, x, t_x, t).unwrap();
            for i in 0..4 {
                let h = 1e-6;
                let at = |delta: f64| {
                    let mut th = theta;
                    th[i] += delta;
                    log_likelihood(&params_from_logs(&th), x, t_x, t).unwrap().0
                };
                let numeric = (at(h) - at(-h)) / (2.0 * h);
                assert!(
                    (gradient[i] - numeric).abs() < 1e-6 * numeric.abs().max(1.0),
                    "({x}, {t_x}, {t}) d/dθ{i}: {} vs {numeric}",
                    gradient[i]
                );
            }
        }
    }

    /// x = 10,000 purchases over T = 10,000 days: every quantity stays a
    /// finite number (direct formulas overflow Γ and the powers here).
    #[test]
    fn huge_counts_stay_finite() {
        let daily = BgNbdParams {
            alpha: CDNOW.alpha * 7.0,
            ..CDNOW
        };
        for (x, t_x) in [(10_000.0, 10_000.0), (10_000.0, 9_000.0), (10_000.0, 1.0)] {
            let (ll, gradient) = log_likelihood(&daily, x, t_x, 10_000.0).unwrap();
            assert!(ll.is_finite() && gradient.iter().all(|g| g.is_finite()));
            let alive = p_alive(&daily, x, t_x, 10_000.0).unwrap();
            assert!((0.0..=1.0).contains(&alive), "{alive}");
            for horizon in [1.0, 365.0, 1e6] {
                let e = expected_purchases(&daily, horizon, x, t_x, 10_000.0).unwrap();
                assert!(e.is_finite() && e >= 0.0, "{x} {t_x} {horizon}: {e}");
            }
        }
        // Someone buying every day for 10,000 days is alive and keeps buying
        // about once a day.
        let e = expected_purchases(&daily, 30.0, 10_000.0, 10_000.0, 10_000.0).unwrap();
        assert!((e - 30.0).abs() < 1.0, "{e}");
        // ... and one silent for the last 9,999 days is gone.
        assert!(p_alive(&daily, 10_000.0, 1.0, 10_000.0).unwrap() < 1e-300);

        // A fit with such customers among ordinary ones.
        let mut data = BgNbdData::new();
        data.add_count(0.0, 0.0, 10_000.0, 500).unwrap();
        data.add_count(1.0, 300.0, 10_000.0, 200).unwrap();
        data.add_count(5.0, 5000.0, 9_000.0, 100).unwrap();
        data.add_count(30.0, 8000.0, 10_000.0, 30).unwrap();
        data.add_count(10_000.0, 10_000.0, 10_000.0, 3).unwrap();
        data.add_count(2.0, 100.0, 10_000.0, 50).unwrap();
        let fit = data.fit().unwrap();
        assert!(fit.log_likelihood.is_finite());
        fit.params.validate().unwrap();
    }

    #[test]
    fn degenerate_inputs_are_refused() {
        let mut zeros = BgNbdData::new();
        zeros.add_count(0.0, 0.0, 30.0, 100).unwrap();
        zeros.add_count(0.0, 0.0, 20.0, 100).unwrap();
        assert!(matches!(zeros.fit(), Err(LtvError::DegenerateInput { .. })));

        let few = fit(&[1.0, 0.0, 2.0], &[5.0, 0.0, 9.0], &[10.0, 10.0, 12.0]);
        assert!(
            matches!(few, Err(LtvError::DegenerateInput { .. })),
            "{few:?}"
        );

        let mut ageless = BgNbdData::new();
        ageless.add_count(0.0, 0.0, 0.0, 100).unwrap();
        ageless.add_count(1.0, 0.0, 0.0, 100).unwrap();
        assert!(matches!(
            ageless.fit(),
            Err(LtvError::DegenerateInput { .. })
        ));

        let mut data = BgNbdData::new();
        assert_eq!(
            data.add(2.0, 31.0, 30.0),
            Err(LtvError::RecencyAfterAge {
                recency: 31.0,
                t: 30.0
            })
        );
        for (x, t_x, t) in [
            (1.5, 1.0, 2.0),
            (-1.0, 0.0, 2.0),
            (f64::NAN, 0.0, 1.0),
            (1.0, -1.0, 2.0),
            (1.0, 1.0, f64::INFINITY),
            (0.0, 1.0, 2.0),
        ] {
            assert!(
                matches!(data.add(x, t_x, t), Err(LtvError::InvalidInput { .. })),
                "({x}, {t_x}, {t})"
            );
        }
        assert_eq!(data.customers(), 0);
        assert!(matches!(
            fit(&[1.0], &[1.0, 2.0], &[3.0]),
            Err(LtvError::InvalidInput { .. })
        ));
    }

    #[test]
    fn predictions_refuse_bad_params_and_inputs() {
        let bad = BgNbdParams { a: -1.0, ..CDNOW };
        assert!(matches!(
            p_alive(&bad, 1.0, 1.0, 2.0),
            Err(LtvError::InvalidParams { .. })
        ));
        let nan = BgNbdParams {
            r: f64::NAN,
            ..CDNOW
        };
        assert!(matches!(
            expected_purchases(&nan, 1.0, 1.0, 1.0, 2.0),
            Err(LtvError::InvalidParams { .. })
        ));
        assert!(matches!(
            expected_purchases(&CDNOW, -1.0, 1.0, 1.0, 2.0),
            Err(LtvError::InvalidInput { .. })
        ));
        assert!(matches!(
            p_alive(&CDNOW, 1.0, 3.0, 2.0),
            Err(LtvError::RecencyAfterAge { .. })
        ));
        assert_eq!(p_alive(&CDNOW, 0.0, 0.0, 50.0), Ok(1.0));
        assert_eq!(expected_purchases(&CDNOW, 0.0, 3.0, 10.0, 20.0), Ok(0.0));
    }

    /// Properties a reader expects: P(alive) falls with the time since the
    /// last purchase; expected purchases rise with the horizon and with x at
    /// a recent last purchase.
    #[test]
    fn predictions_move_the_right_way() {
        let mut previous = 1.0;
        for t_x in [30.0, 20.0, 10.0, 1.0] {
            let alive = p_alive(&CDNOW, 3.0, t_x, 30.0).unwrap();
            assert!(alive < previous);
            previous = alive;
        }
        let mut previous = 0.0;
        for horizon in [1.0, 10.0, 39.0, 100.0, 1000.0] {
            let e = expected_purchases(&CDNOW, horizon, 3.0, 25.0, 30.0).unwrap();
            assert!(e > previous);
            previous = e;
        }
        let mut previous = 0.0;
        for x in [0.0, 1.0, 5.0, 20.0] {
            let e = expected_purchases(&CDNOW, 39.0, x, 29.0, 30.0).unwrap();
            assert!(e > previous);
            previous = e;
        }
    }

    /// Simulated histories rounded to whole weeks, so that many repeat.
    fn simulated_weeks(n: usize, seed: u64) -> Vec<(f64, f64, f64)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let age = (26.0 + 26.0 * rng.r#gen::<f64>()).floor();
                let (x, t_x, t) = simulate_customer(&mut rng, &CDNOW, age);
                let t_x = if x > 0.0 {
                    t_x.floor().max(1.0).min(t)
                } else {
                    0.0
                };
                (x, t_x, t)
            })
            .collect()
    }

    #[test]
    fn collapsing_and_merging_are_exact() {
        let histories = simulated_weeks(3000, 7);
        let mut one = BgNbdData::new();
        let mut left = BgNbdData::new();
        let mut right = BgNbdData::new();
        for (i, &(x, t_x, t)) in histories.iter().enumerate() {
            one.add(x, t_x, t).unwrap();
            if i % 3 == 0 { &mut left } else { &mut right }
                .add(x, t_x, t)
                .unwrap();
        }
        left.merge(&right);
        assert_eq!(one.customers(), 3000);
        assert_eq!(left.customers(), 3000);
        let mut collapsed = one.clone();
        collapsed.collapse();
        assert!(collapsed.len() < 1500, "{}", collapsed.len());
        assert_eq!(collapsed.customers(), 3000);
        assert_eq!(collapsed.fit().unwrap(), one.fit().unwrap());
        let (a, b) = (one.fit().unwrap(), left.fit().unwrap());
        assert_eq!(a, b);
        // The same as the per-customer likelihood summed.
        let total: f64 = histories
            .iter()
            .map(|&(x, t_x, t)| log_likelihood(&a.params, x, t_x, t).unwrap().0)
            .sum();
        assert!((total - a.log_likelihood).abs() < 1e-9 * total.abs());
        // And the maximum: every nearby parameter vector does worse.
        for i in 0..4 {
            for step in [-1e-3, 1e-3] {
                let mut theta = [
                    a.params.r.ln(),
                    a.params.alpha.ln(),
                    a.params.a.ln(),
                    a.params.b.ln(),
                ];
                theta[i] += step;
                let nearby: f64 = histories
                    .iter()
                    .map(|&(x, t_x, t)| {
                        log_likelihood(&params_from_logs(&theta), x, t_x, t)
                            .unwrap()
                            .0
                    })
                    .sum();
                assert!(nearby < a.log_likelihood);
            }
        }
    }

    /// Customers who all look alike leave the dropout process undetermined
    /// (a and b run off to infinity together): an error, not parameters.
    /// Summaries laid out from their tallies are laid out as from their columns, and
    /// fitted to the same parameters, bit for bit.
    #[test]
    fn tallied_summaries_fit_as_their_columns() {
        let mut h = SummaryColumns::default();
        for (x, recency, t) in simulated_weeks(150_000, 11) {
            h.push(&crate::functions::ltv::summary::ClvSummary {
                frequency: x as u64,
                recency,
                t,
                monetary_value: 10.0,
            });
        }
        let tallies = h.whole_tallies().expect("whole days");
        assert_eq!(
            prepare_tallied(&h.frequency, &h.recency, &h.t, tallies).unwrap(),
            prepare_whole(&h.frequency, &h.recency, &h.t, None, true)
                .unwrap()
                .unwrap()
        );
        assert_eq!(
            fit_summaries(&h).unwrap(),
            fit(&h.frequency, &h.recency, &h.t).unwrap()
        );
    }

    #[test]
    fn whole_number_layout_is_the_general_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n = 5_000;
        let (mut x, mut t_x, mut t) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let age = rng.gen_range(0..400) as f64;
            let freq = if rng.gen_bool(0.4) {
                0.0
            } else {
                rng.gen_range(1..30) as f64
            };
            let rec = if freq == 0.0 {
                0.0
            } else {
                rng.gen_range(0..=age as u32) as f64
            };
            x.push(freq);
            t_x.push(rec);
            t.push(age);
        }
        // -0 is 0.
        x[3] = -0.0;
        t_x[3] = -0.0;
        let counts: Vec<u64> = (0..n).map(|_| rng.gen_range(0..4)).collect();
        for counts in [None, Some(&counts[..])] {
            let whole = prepare_whole(&x, &t_x, &t, counts, true)
                .expect("every value is whole")
                .unwrap();
            let general = prepare_grouped(&x, &t_x, &t, counts, true).unwrap();
            assert_eq!(whole, general);
        }
        // The first bad history is the one the general path names.
        let mut bad = t_x.clone();
        let row = x.iter().position(|&v| v > 0.0).unwrap();
        bad[row] = t[row] + 1.0;
        assert_eq!(
            prepare_whole(&x, &bad, &t, None, true)
                .unwrap()
                .unwrap_err(),
            prepare_grouped(&x, &bad, &t, None, true).unwrap_err()
        );
        // A fractional age: left to the general path.
        let mut fractional = t.clone();
        fractional[n - 1] += 0.5;
        assert!(prepare_whole(&x, &t_x, &fractional, None, true).is_none());
    }

    #[test]
    fn undetermined_parameters_are_refused() {
        let mut data = BgNbdData::new();
        data.add_count(0.0, 0.0, 30.0, 10).unwrap();
        data.add_count(2.0, 10.0, 30.0, 20).unwrap();
        data.add_count(1.0, 4.0, 25.0, 10).unwrap();
        let outcome = data.fit();
        assert!(
            matches!(outcome, Err(LtvError::NotConverged { .. })),
            "{outcome:?}"
        );
    }

    /// Large inputs take another road (histories grouped by x rather than
    /// merged, a subsample fitted first, several threads): it ends at the
    /// same maximum as merging everything and fitting from a cold start.
    #[test]
    fn large_input_road_reaches_the_same_maximum() {
        let histories = simulated_weeks(150_000, 11);
        let (x, rest): (Vec<f64>, Vec<(f64, f64)>) =
            histories.iter().map(|&(x, t_x, t)| (x, (t_x, t))).unzip();
        let (t_x, t): (Vec<f64>, Vec<f64>) = rest.into_iter().unzip();
        let grouped = fit(&x, &t_x, &t).unwrap();

        let mut merged = BgNbdData::new();
        for &(x, t_x, t) in &histories {
            merged.add(x, t_x, t).unwrap();
        }
        merged.collapse();
        assert!(
            merged.len() < MERGE_UP_TO && merged.len() < SUBSAMPLE_ABOVE,
            "{}",
            merged.len()
        );
        let direct = merged.fit().unwrap();
        assert_eq!(grouped.n, 150_000);
        assert!(
            (grouped.log_likelihood - direct.log_likelihood).abs()
                < 1e-9 * direct.log_likelihood.abs()
        );
        let a = [
            grouped.params.r,
            grouped.params.alpha,
            grouped.params.a,
            grouped.params.b,
        ];
        let b = [
            direct.params.r,
            direct.params.alpha,
            direct.params.a,
            direct.params.b,
        ];
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() < 1e-6 * v, "{a:?} vs {b:?}");
        }
    }

    fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
        // Box-Muller; 1 − u keeps the logarithm's argument in (0, 1].
        let u: f64 = rng.r#gen();
        let v: f64 = rng.r#gen();
        (-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Gamma(shape, rate) by Marsaglia & Tsang (2000), with the u^(1/shape)
    /// boost below shape 1.
    fn gamma_sample(rng: &mut ChaCha8Rng, shape: f64, rate: f64) -> f64 {
        if shape < 1.0 {
            let u: f64 = rng.r#gen();
            return gamma_sample(rng, shape + 1.0, rate) * (1.0 - u).powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let z = standard_normal(rng);
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

    /// One customer of the BG/NBD process observed for `t` from the first
    /// purchase at 0, straight from the model's definition: λ ~ Gamma(r, α),
    /// p ~ Beta(a, b); purchases arrive as a Poisson process of rate λ;
    /// after each repeat purchase the customer drops out with probability p.
    fn simulate_customer(rng: &mut ChaCha8Rng, p: &BgNbdParams, t: f64) -> (f64, f64, f64) {
        let lambda = gamma_sample(rng, p.r, p.alpha);
        let g = gamma_sample(rng, p.a, 1.0);
        let dropout = g / (g + gamma_sample(rng, p.b, 1.0));
        let (mut x, mut t_x, mut now) = (0.0, 0.0, 0.0);
        loop {
            let u: f64 = rng.r#gen();
            now += -(1.0 - u).ln() / lambda;
            if now > t {
                break;
            }
            x += 1.0;
            t_x = now;
            let u: f64 = rng.r#gen();
            if u < dropout {
                break;
            }
        }
        (x, t_x, t)
    }

    /// 100,000 simulated customers with known parameters (observed for 26 to
    /// 104 weeks, a purchase every ~3 weeks on average, half of them gone
    /// after a handful of purchases): every parameter is recovered within 5 %
    /// (over other seeds the errors were at most 1 % for r and α, 2 % for a
    /// and 3 % for b).
    #[test]
    fn recovers_simulated_parameters() {
        let truth = BgNbdParams {
            r: 0.75,
            alpha: 2.5,
            a: 0.8,
            b: 2.5,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(20_050_301);
        let mut data = BgNbdData::new();
        for _ in 0..100_000 {
            let age = 26.0 + 78.0 * rng.r#gen::<f64>();
            let (x, t_x, t) = simulate_customer(&mut rng, &truth, age);
            data.add(x, t_x, t).unwrap();
        }
        let fitted = data.fit().unwrap().params;
        for (name, ours, true_value) in [
            ("r", fitted.r, truth.r),
            ("alpha", fitted.alpha, truth.alpha),
            ("a", fitted.a, truth.a),
            ("b", fitted.b, truth.b),
        ] {
            let error = (ours - true_value).abs() / true_value;
            assert!(error < 0.05, "{name}: {ours} vs {true_value} ({fitted:?})");
        }
    }
}
