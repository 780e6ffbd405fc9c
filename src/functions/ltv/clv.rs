//! Customer lifetime value: BG/NBD purchases × Gamma-Gamma value, discounted
//! month by month, exactly as `lifetimes` 0.11.3's
//! `GammaGammaFitter.customer_lifetime_value`.
//!
//! That function sums, for months i = 1..=horizon,
//!
//! ```text
//! value · (E[purchases by i·f] − E[purchases by (i−1)·f]) / (1 + d)^i
//! ```
//!
//! where E is the BG/NBD conditional expectation (`predict`), f the number
//! of time units in a month (`factor`: 30 for days, 4.345 for weeks, 1 for
//! months — a "month" of 30 days, not the summary's 30.436875), d the monthly
//! discount rate and value the Gamma-Gamma conditional expected average
//! transaction value. Since E = N(x, T, t) · P(alive) and only N depends on
//! the horizon, the discounted sum of N's monthly increments is computed
//! once per (x, T), all month ends in one pass over the hypergeometric
//! series, and shared by every customer with that frequency and age.
//!
//! The horizon is a whole number of months: `lifetimes` sums
//! `range(1, time + 1)`, so a fractional `time` would count a whole extra
//! month; the glue should refuse one.

use rustc_hash::FxHashMap;

use super::bgnbd::{BgNbdParams, BgNbdPredictor, is_whole};
use super::collapse::{Dictionary, ranks_of_seen};
use super::error::LtvError;
use super::expectation::NumeratorSeries;
use super::gamma_gamma::{GammaGammaParams, conditional_expected_average_profit};
use super::summary::{SummaryColumns, TimeUnit};
use super::vector_math;
use super::whole::{WHOLE_BLOCK, WHOLE_LIMIT, index_of, is_index};

/// The horizon, discounting and time unit of a CLV.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClvSettings {
    /// Months summed over (`lifetimes`' `time`, default 12).
    pub horizon_months: u32,
    /// Discount rate per month (`discount_rate`, default 0.01).
    pub monthly_discount_rate: f64,
    /// The time unit of recency, t and the BG/NBD parameters (`freq`).
    pub unit: TimeUnit,
}

impl Default for ClvSettings {
    /// 12 months, 1 % a month, days: `lifetimes`' defaults and `ltv()`'s.
    fn default() -> Self {
        ClvSettings {
            horizon_months: 12,
            monthly_discount_rate: 0.01,
            unit: TimeUnit::Day,
        }
    }
}

/// The CLV of one customer with history (x, t_x, T) and mean repeat
/// transaction value `m`.
///
/// # Errors
/// As [`ClvPredictor::new`] and [`ClvPredictor::clv`].
#[allow(clippy::too_many_arguments)]
pub fn customer_lifetime_value(
    bgnbd: &BgNbdParams,
    gamma_gamma: &GammaGammaParams,
    x: f64,
    t_x: f64,
    t: f64,
    m: f64,
    settings: &ClvSettings,
) -> Result<f64, LtvError> {
    ClvPredictor::new(*bgnbd, *gamma_gamma, *settings)?.clv(x, t_x, t, m)
}

/// What a customer's (x, T) decides for the whole horizon: the expected
/// purchases of the customer if alive (N at the end of the horizon) and the
/// discounted sum of N's monthly increments.
#[derive(Debug, Clone, Copy, PartialEq)]
struct HorizonSums {
    purchases: f64,
    discounted: f64,
}

/// The horizon as `lifetimes` steps through it: month ends i·f
/// (i = 0..=months, f units per month) and the discount factors
/// 1/(1+d)^i.
#[derive(Debug, Clone)]
struct Horizon {
    ends: Vec<f64>,
    discounts: Vec<f64>,
}

impl Horizon {
    fn new(settings: &ClvSettings) -> Self {
        let factor = settings.unit.units_per_month();
        let months = settings.horizon_months;
        Horizon {
            ends: (0..=months).map(|i| f64::from(i) * factor).collect(),
            discounts: (0..=months)
                .map(|i| (1.0 + settings.monthly_discount_rate).powf(-f64::from(i)))
                .collect(),
        }
    }

    /// The sums for frequency `x` (its series) and age `t`.
    fn sums(
        &self,
        series: &mut NumeratorSeries,
        alpha: f64,
        t: f64,
        scratch: &mut Vec<f64>,
    ) -> HorizonSums {
        scratch.resize(self.ends.len(), 0.0);
        series.numerators(alpha, t, &self.ends, scratch);
        let discounted = (1..self.ends.len())
            .map(|i| (scratch[i] - scratch[i - 1]) * self.discounts[i])
            .sum();
        HorizonSums {
            purchases: scratch.last().copied().unwrap_or(0.0),
            discounted,
        }
    }
}

/// Everything `ltv()` reports for one customer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LtvScore {
    /// P(alive) now.
    pub p_alive: f64,
    /// Expected purchases over the whole horizon (`horizon_months` months
    /// of [`TimeUnit::units_per_month`] units).
    pub expected_purchases: f64,
    /// Gamma-Gamma conditional expected average transaction value.
    pub expected_avg_value: f64,
    /// Customer lifetime value over the horizon.
    pub clv: f64,
}

/// CLVs of many customers under one pair of models, remembering the
/// horizon sums per (x, T) and the hypergeometric coefficients per x. Keep
/// one per batch or per query; for a whole table at once,
/// [`score_customers`] is faster.
#[derive(Debug, Clone)]
pub struct ClvPredictor {
    bgnbd: BgNbdPredictor,
    gamma_gamma: GammaGammaParams,
    horizon: Horizon,
    sums: FxHashMap<(u64, u64), HorizonSums>,
    scratch: Vec<f64>,
}

impl ClvPredictor {
    /// A predictor for the two models and `settings`.
    ///
    /// # Errors
    /// [`LtvError::InvalidParams`] for invalid parameters of either model or
    /// a Gamma-Gamma q ≤ 1 (no expected transaction value);
    /// [`LtvError::InvalidInput`] for a discount rate that is not a finite
    /// number above −1.
    pub fn new(
        bgnbd: BgNbdParams,
        gamma_gamma: GammaGammaParams,
        settings: ClvSettings,
    ) -> Result<Self, LtvError> {
        gamma_gamma.population_mean()?;
        let d = settings.monthly_discount_rate;
        if !(d.is_finite() && d > -1.0) {
            return Err(LtvError::InvalidInput {
                what: "monthly discount rate",
                value: d,
                expected: "a finite number > -1 (0.01 is 1 % a month)",
            });
        }
        Ok(ClvPredictor {
            bgnbd: BgNbdPredictor::new(bgnbd)?,
            gamma_gamma,
            horizon: Horizon::new(&settings),
            sums: FxHashMap::default(),
            scratch: Vec::new(),
        })
    }

    /// How many results it remembers (a measure of the memory it holds).
    pub fn remembered(&self) -> usize {
        self.sums.len() + self.bgnbd.remembered()
    }

    /// The BG/NBD predictor inside, for P(alive) and expected purchases over
    /// other horizons.
    pub fn bgnbd(&mut self) -> &mut BgNbdPredictor {
        &mut self.bgnbd
    }

    /// The CLV of a customer with history (x, t_x, T) and mean repeat
    /// transaction value `m` (ignored when x = 0).
    ///
    /// # Errors
    /// Invalid history or monetary value, or a non-finite result.
    pub fn clv(&mut self, x: f64, t_x: f64, t: f64, m: f64) -> Result<f64, LtvError> {
        Ok(self.score(x, t_x, t, m)?.clv)
    }

    /// Everything `ltv()` reports for one customer.
    ///
    /// # Errors
    /// Invalid history or monetary value, or a non-finite result.
    pub fn score(&mut self, x: f64, t_x: f64, t: f64, m: f64) -> Result<LtvScore, LtvError> {
        BgNbdPredictor::check(x, t_x, t)?;
        let expected_avg_value = conditional_expected_average_profit(&self.gamma_gamma, x, m)?;
        let key = ((x + 0.0).to_bits(), (t + 0.0).to_bits());
        let sums = match self.sums.get(&key) {
            Some(&sums) => sums,
            None => {
                let alpha = self.bgnbd.params().alpha;
                let sums = self
                    .horizon
                    .sums(self.bgnbd.series(x), alpha, t, &mut self.scratch);
                self.sums.insert(key, sums);
                sums
            }
        };
        let p_alive = self.bgnbd.p_alive_checked(x, t_x, t);
        finite_score(LtvScore {
            p_alive,
            expected_purchases: sums.purchases * p_alive,
            expected_avg_value,
            clv: expected_avg_value * sums.discounted * p_alive,
        })
    }
}

fn finite_score(score: LtvScore) -> Result<LtvScore, LtvError> {
    for (what, value) in [
        ("P(alive)", score.p_alive),
        ("the expected number of purchases", score.expected_purchases),
        (
            "the expected average transaction value",
            score.expected_avg_value,
        ),
        ("the customer lifetime value", score.clv),
    ] {
        if !value.is_finite() {
            return Err(LtvError::NonFinite { what });
        }
    }
    Ok(score)
}

/// The columns of `ltv()`'s predictions, one value per customer in input
/// order (ready to become Arrow arrays without copying).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LtvScores {
    /// P(alive) now.
    pub p_alive: Vec<f64>,
    /// Expected purchases over the horizon.
    pub expected_purchases: Vec<f64>,
    /// Conditional expected average transaction value.
    pub expected_avg_value: Vec<f64>,
    /// Customer lifetime value.
    pub clv: Vec<f64>,
}

/// Largest number of (x, T) combinations indexed by a dense table (beyond
/// it, a hash map).
const DENSE_PAIRS: usize = 1 << 22;

/// Customers scored together (their logarithms and exponentials taken at once).
const SCORE_BLOCK: usize = 256;

/// Customers per thread when scoring (below it, one thread).
const CUSTOMERS_PER_THREAD: usize = 100_000;

/// Scores every customer (`frequency[i]`, `recency[i]`, `t[i]`,
/// `monetary_value[i]`): P(alive), expected purchases and CLV over the
/// horizon of `settings`, and the expected average transaction value — the
/// same numbers as [`ClvPredictor::score`], computed for a whole table.
///
/// The horizon sums are computed once per distinct (x, T) (values mapped to
/// dense ids, so that a customer costs a table lookup, not a hash), sorted
/// by x so that each frequency's hypergeometric coefficients are built once;
/// both that and the per-customer pass run on several threads for large
/// inputs.
///
/// # Errors
/// As [`ClvPredictor::new`] and [`ClvPredictor::score`] (the first invalid
/// customer); [`LtvError::InvalidInput`] when the slices differ in length.
pub fn score_customers(
    bgnbd: &BgNbdParams,
    gamma_gamma: &GammaGammaParams,
    settings: &ClvSettings,
    frequency: &[f64],
    recency: &[f64],
    t: &[f64],
    monetary_value: &[f64],
) -> Result<LtvScores, LtvError> {
    // Validates the parameters and settings.
    ClvPredictor::new(*bgnbd, *gamma_gamma, *settings)?;
    let customers = Customers::new(frequency, recency, t, monetary_value)?;
    customers.score(bgnbd, gamma_gamma, settings)
}

/// The distinct (x rank, T rank) pairs of `n` customers, packed (x rank in the high
/// half), in order of first appearance, and each customer's pair: through a dense table
/// of every pair when that is not too large, a hash map otherwise.
fn pair_indices(
    n: usize,
    x_len: usize,
    t_len: usize,
    mut ranks_of: impl FnMut(usize) -> (u32, u32),
) -> (Vec<u64>, Vec<u32>) {
    let pair_of = |(x, t): (u32, u32)| (u64::from(x) << 32) | u64::from(t);
    let mut pairs: Vec<u64> = Vec::new();
    let mut pair_index = vec![0u32; n];
    if x_len.saturating_mul(t_len) <= DENSE_PAIRS {
        let mut slot = vec![u32::MAX; x_len * t_len];
        for (i, index) in pair_index.iter_mut().enumerate() {
            let (x, t) = ranks_of(i);
            let cell = &mut slot[x as usize * t_len + t as usize];
            if *cell == u32::MAX {
                *cell = pairs.len() as u32;
                pairs.push(pair_of((x, t)));
            }
            *index = *cell;
        }
    } else {
        let mut slot: FxHashMap<u64, u32> = FxHashMap::default();
        for (i, index) in pair_index.iter_mut().enumerate() {
            let pair = pair_of(ranks_of(i));
            let next = pairs.len() as u32;
            *index = *slot.entry(pair).or_insert(next);
            if *index == next {
                pairs.push(pair);
            }
        }
    }
    (pairs, pair_index)
}

/// Checks a block of customers as [`Customers::new`] must, all tests combined without
/// a branch per customer; a block that fails is read again customer by customer for
/// the first one's error.
#[inline]
fn check_block(x: &[f64], t_x: &[f64], t: &[f64], m: &[f64]) -> Result<(), LtvError> {
    let mut valid = true;
    for (((&x, &t_x), &t), &m) in x.iter().zip(t_x).zip(t).zip(m) {
        let finite = 0.0..f64::INFINITY;
        valid &= is_whole(x)
            & finite.contains(&t_x)
            & finite.contains(&t)
            & (t_x <= t)
            & finite.contains(&m);
    }
    if valid {
        return Ok(());
    }
    for (((&x, &t_x), &t), &m) in x.iter().zip(t_x).zip(t).zip(m) {
        BgNbdPredictor::check(x, t_x, t)?;
        if !(m.is_finite() && m >= 0.0) {
            return Err(LtvError::InvalidInput {
                what: "monetary_value",
                value: m,
                expected: "a finite number >= 0",
            });
        }
    }
    Ok(())
}

/// Customers checked and laid out for [`score_customers`]: everything that does not
/// depend on the parameters, so it can be done while they are fitted.
pub struct Customers<'c> {
    frequency: &'c [f64],
    recency: &'c [f64],
    t: &'c [f64],
    monetary_value: &'c [f64],
    /// The distinct frequencies, ascending.
    x_values: Vec<f64>,
    /// The distinct ages, ascending.
    t_values: Vec<f64>,
    /// The distinct (x rank, T rank) pairs, packed, and each customer's pair.
    pairs: Vec<u64>,
    pair_index: Vec<u32>,
    /// The pairs' indices in the order of the pairs (x-major).
    by_x: Vec<u32>,
}

impl<'c> Customers<'c> {
    /// Checks every customer and gives its x, T and (x, T) dense ids.
    ///
    /// # Errors
    /// As [`ClvPredictor::score`] (the first invalid customer);
    /// [`LtvError::InvalidInput`] when the slices differ in length.
    pub fn new(
        frequency: &'c [f64],
        recency: &'c [f64],
        t: &'c [f64],
        monetary_value: &'c [f64],
    ) -> Result<Self, LtvError> {
        let n = frequency.len();
        if recency.len() != n || t.len() != n || monetary_value.len() != n {
            return Err(LtvError::InvalidInput {
                what: "number of recency, t or monetary values",
                value: recency.len().min(t.len()).min(monetary_value.len()) as f64,
                expected: "one frequency, recency, t and monetary value per customer",
            });
        }
        // Every customer checked, a block at a time (see `check_block`), and whether
        // every x and T is a whole number below WHOLE_LIMIT, as summaries in days and
        // weeks are: then values index the rank tables directly.
        let mut x_seen = vec![false; WHOLE_LIMIT];
        let mut t_seen = vec![false; WHOLE_LIMIT];
        let mut whole = true;
        for start in (0..n).step_by(WHOLE_BLOCK) {
            let end = (start + WHOLE_BLOCK).min(n);
            let block = start..end;
            check_block(
                &frequency[block.clone()],
                &recency[block.clone()],
                &t[block.clone()],
                &monetary_value[block],
            )?;
            for i in start..end {
                let (x, age) = (frequency[i] + 0.0, t[i] + 0.0);
                let (xi, ti) = (index_of(x), index_of(age));
                whole &= is_index(x, xi) & is_index(age, ti);
                x_seen[xi] = true;
                t_seen[ti] = true;
            }
        }
        if whole {
            return Ok(Customers::laid_out_whole(
                [frequency, recency, t, monetary_value],
                &x_seen,
                &t_seen,
            ));
        }
        // Dense ids from dictionaries, looked up twice rather than kept: cheaper than
        // writing and reading them back.
        let mut xs = Dictionary::new();
        let mut ts = Dictionary::new();
        for i in 0..n {
            xs.id(frequency[i]);
            ts.id(t[i]);
        }
        let (x_values, x_rank) = xs.sorted();
        let (t_values, t_rank) = ts.sorted();
        let (pairs, pair_index) = pair_indices(n, x_values.len(), t_values.len(), |i| {
            (
                x_rank[xs.id(frequency[i]) as usize],
                t_rank[ts.id(t[i]) as usize],
            )
        });
        Ok(Customers::assembled(
            [frequency, recency, t, monetary_value],
            x_values,
            t_values,
            pairs,
            pair_index,
        ))
    }

    /// [`Customers::new`] of summaries: laid out from their
    /// [`WholeTallies`](super::whole::WholeTallies) when they have them (they are valid by
    /// construction, and their values counted already).
    ///
    /// # Errors
    /// As [`Customers::new`].
    pub fn of_summaries(h: &'c SummaryColumns) -> Result<Self, LtvError> {
        let Some(tallies) = h.whole_tallies() else {
            return Customers::new(&h.frequency, &h.recency, &h.t, &h.monetary_value);
        };
        let x_seen: Vec<bool> = (0..tallies.repeat_by_x.len().max(1))
            .map(|x| tallies.has_x(x))
            .collect();
        Ok(Customers::laid_out_whole(
            [&h.frequency, &h.recency, &h.t, &h.monetary_value],
            &x_seen,
            &tallies.t_seen,
        ))
    }

    /// Checked customers whose x and T are whole numbers below [`WHOLE_LIMIT`], the
    /// values that occur marked in `x_seen` and `t_seen`: values index the rank tables.
    fn laid_out_whole(columns: [&'c [f64]; 4], x_seen: &[bool], t_seen: &[bool]) -> Self {
        let [frequency, _, t, _] = columns;
        let (x_values, x_rank) = ranks_of_seen(x_seen);
        let (t_values, t_rank) = ranks_of_seen(t_seen);
        let (pairs, pair_index) =
            pair_indices(frequency.len(), x_values.len(), t_values.len(), |i| {
                (x_rank[index_of(frequency[i])], t_rank[index_of(t[i])])
            });
        Customers::assembled(columns, x_values, t_values, pairs, pair_index)
    }

    /// The customers (frequency, recency, T, monetary value) with their distinct
    /// values, pairs and each one's pair.
    fn assembled(
        [frequency, recency, t, monetary_value]: [&'c [f64]; 4],
        x_values: Vec<f64>,
        t_values: Vec<f64>,
        pairs: Vec<u64>,
        pair_index: Vec<u32>,
    ) -> Self {
        let mut by_x: Vec<u32> = (0..pairs.len() as u32).collect();
        by_x.sort_unstable_by_key(|&p| pairs[p as usize]);
        Customers {
            frequency,
            recency,
            t,
            monetary_value,
            x_values,
            t_values,
            pairs,
            pair_index,
            by_x,
        }
    }

    /// Every customer's scores with these parameters.
    ///
    /// # Errors
    /// As [`ClvPredictor::new`], and [`LtvError::NonFinite`] for a prediction that is
    /// not a finite number.
    pub fn score(
        &self,
        bgnbd: &BgNbdParams,
        gamma_gamma: &GammaGammaParams,
        settings: &ClvSettings,
    ) -> Result<LtvScores, LtvError> {
        ClvPredictor::new(*bgnbd, *gamma_gamma, *settings)?;
        let Customers {
            frequency,
            recency,
            t,
            monetary_value,
            x_values,
            t_values,
            pairs,
            pair_index,
            by_x,
        } = self;
        let n = frequency.len();
        // Horizon sums per pair, x-major so each thread builds few series.
        let horizon = Horizon::new(settings);
        let mut sums = vec![
            HorizonSums {
                purchases: 0.0,
                discounted: 0.0,
            };
            pairs.len()
        ];
        let compute = |chunk: &[u32]| -> Vec<(u32, HorizonSums)> {
            let mut out = Vec::with_capacity(chunk.len());
            let mut current: Option<(u64, NumeratorSeries)> = None;
            let mut scratch = Vec::new();
            for &p in chunk {
                let pair = pairs[p as usize];
                let (x, t) = (
                    x_values[(pair >> 32) as usize],
                    t_values[(pair & 0xffff_ffff) as usize],
                );
                let series = match &mut current {
                    Some((cx, series)) if *cx == pair >> 32 => series,
                    _ => {
                        &mut current
                            .insert((pair >> 32, NumeratorSeries::new(bgnbd, x)))
                            .1
                    }
                };
                out.push((p, horizon.sums(series, bgnbd.alpha, t, &mut scratch)));
            }
            out
        };
        let threads = threads_for_scoring(pairs.len() * 50);
        for (p, value) in in_parallel(by_x, threads, compute) {
            sums[p as usize] = value;
        }

        // Per frequency: the log ratio of the dropped-out term of P(alive) and
        // the weight of the customer's own mean spend.
        let population_mean = gamma_gamma.population_mean()?;
        let c_x: Vec<f64> = x_values
            .iter()
            .map(|&x| {
                if x > 0.0 {
                    (bgnbd.a / (bgnbd.b + x - 1.0)).ln()
                } else {
                    0.0
                }
            })
            .collect();
        let weight_x: Vec<f64> = x_values
            .iter()
            .map(|&x| {
                let px = gamma_gamma.p * x;
                px / (px + gamma_gamma.q - 1.0)
            })
            .collect();

        // A block of customers at a time, from `first`, into the four output columns:
        // P(alive) = σ(−log odds of having dropped out), the logarithms and
        // exponentials of a block taken at once (vectorised).
        let score_block = |first: usize,
                           p_alive: &mut [f64],
                           purchases: &mut [f64],
                           value: &mut [f64],
                           clv: &mut [f64]| {
            let n = p_alive.len();
            let mut ratio = [0.0; SCORE_BLOCK];
            for (j, u) in ratio[..n].iter_mut().enumerate() {
                let i = first + j;
                *u = (t[i] - recency[i]) / (bgnbd.alpha + recency[i]);
            }
            let mut ln_ratio = [0.0; SCORE_BLOCK];
            vector_math::ln_1p(&ratio[..n], &mut ln_ratio[..n]);
            let mut alive_log_odds = [0.0; SCORE_BLOCK];
            let mut x_index = [0usize; SCORE_BLOCK];
            for j in 0..n {
                let i = first + j;
                let x = frequency[i];
                // A pair holds the customer's x rank in its high half.
                x_index[j] = (pairs[pair_index[i] as usize] >> 32) as usize;
                alive_log_odds[j] = if x == 0.0 {
                    f64::INFINITY
                } else {
                    -((bgnbd.r + x) * ln_ratio[j] + c_x[x_index[j]])
                };
            }
            vector_math::sigmoid(&alive_log_odds[..n], p_alive);
            for j in 0..n {
                let i = first + j;
                let w = weight_x[x_index[j]];
                let expected_avg_value = (1.0 - w) * population_mean + w * monetary_value[i];
                let s = sums[pair_index[i] as usize];
                let one = finite_score(LtvScore {
                    p_alive: p_alive[j],
                    expected_purchases: s.purchases * p_alive[j],
                    expected_avg_value,
                    clv: expected_avg_value * s.discounted * p_alive[j],
                })?;
                purchases[j] = one.expected_purchases;
                value[j] = one.expected_avg_value;
                clv[j] = one.clv;
            }
            Ok::<(), LtvError>(())
        };
        let mut scores = LtvScores {
            p_alive: vec![0.0; n],
            expected_purchases: vec![0.0; n],
            expected_avg_value: vec![0.0; n],
            clv: vec![0.0; n],
        };
        // Each thread fills its own stretch of the four columns.
        let threads = threads_for_scoring(n);
        let chunk = n.div_ceil(threads).max(1);
        let mut stretches = scores
            .p_alive
            .chunks_mut(chunk)
            .zip(scores.expected_purchases.chunks_mut(chunk))
            .zip(scores.expected_avg_value.chunks_mut(chunk))
            .zip(scores.clv.chunks_mut(chunk))
            .enumerate();
        let fill = |(k, (((p_alive, purchases), value), clv)): Stretch<'_>| {
            for start in (0..p_alive.len()).step_by(SCORE_BLOCK) {
                let end = (start + SCORE_BLOCK).min(p_alive.len());
                score_block(
                    k * chunk + start,
                    &mut p_alive[start..end],
                    &mut purchases[start..end],
                    &mut value[start..end],
                    &mut clv[start..end],
                )?;
            }
            Ok::<(), LtvError>(())
        };
        if threads <= 1 {
            stretches.try_for_each(fill)?;
        } else {
            std::thread::scope(|scope| {
                let fill = &fill;
                let handles: Vec<_> = stretches
                    .map(|stretch| scope.spawn(move || fill(stretch)))
                    .collect();
                handles.into_iter().try_for_each(|h| {
                    h.join().unwrap_or(Err(LtvError::NonFinite {
                        what: "a prediction (a worker thread failed)",
                    }))
                })
            })?;
        }
        Ok(scores)
    }
}

/// A thread's stretch of the output: its index and its part of the four
/// columns.
type Stretch<'a> = (
    usize,
    (
        ((&'a mut [f64], &'a mut [f64]), &'a mut [f64]),
        &'a mut [f64],
    ),
);

/// Threads for `work` units (customers, or pairs weighted by their cost).
fn threads_for_scoring(work: usize) -> usize {
    let available = crate::threads::available();
    (work / CUSTOMERS_PER_THREAD).clamp(1, available.min(8))
}

/// `f` over contiguous chunks of `items` on `threads` threads, the results
/// concatenated in order.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&[T]) -> Vec<R> + Sync,
) -> Vec<R> {
    if threads <= 1 || items.len() < 2 {
        return f(items);
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| scope.spawn(move || f(c)))
            .collect();
        // A worker can only panic on a bug; fall back to computing its chunk
        // here (which panics the same way, on this thread) rather than unwrap.
        handles
            .into_iter()
            .zip(items.chunks(chunk))
            .flat_map(|(h, c)| h.join().unwrap_or_else(|_| f(c)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BG: BgNbdParams = BgNbdParams {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
    };
    const GG: GammaGammaParams = GammaGammaParams {
        p: 6.25,
        q: 3.74,
        v: 15.44,
    };

    fn weekly() -> ClvSettings {
        ClvSettings {
            unit: TimeUnit::Week,
            ..ClvSettings::default()
        }
    }

    /// Without discounting, the CLV is the value times the expected
    /// purchases over 12 "months" of 4.345 weeks.
    #[test]
    fn undiscounted_is_value_times_purchases() {
        let settings = ClvSettings {
            monthly_discount_rate: 0.0,
            ..weekly()
        };
        let (x, t_x, t, m) = (4.0, 30.0, 38.0, 25.0);
        let clv = customer_lifetime_value(&BG, &GG, x, t_x, t, m, &settings).unwrap();
        let purchases =
            super::super::bgnbd::expected_purchases(&BG, 12.0 * 4.345, x, t_x, t).unwrap();
        let value = conditional_expected_average_profit(&GG, x, m).unwrap();
        assert!(
            (clv - value * purchases).abs() < 1e-12 * clv,
            "{clv} vs {}",
            value * purchases
        );
    }

    #[test]
    fn discounting_lowers_and_horizon_raises() {
        let base = customer_lifetime_value(&BG, &GG, 2.0, 20.0, 38.0, 30.0, &weekly()).unwrap();
        let steeper = ClvSettings {
            monthly_discount_rate: 0.05,
            ..weekly()
        };
        let longer = ClvSettings {
            horizon_months: 24,
            ..weekly()
        };
        assert!(customer_lifetime_value(&BG, &GG, 2.0, 20.0, 38.0, 30.0, &steeper).unwrap() < base);
        assert!(customer_lifetime_value(&BG, &GG, 2.0, 20.0, 38.0, 30.0, &longer).unwrap() > base);
        let none = ClvSettings {
            horizon_months: 0,
            ..weekly()
        };
        assert_eq!(
            customer_lifetime_value(&BG, &GG, 2.0, 20.0, 38.0, 30.0, &none),
            Ok(0.0)
        );
    }

    #[test]
    fn predictor_memory_gives_the_same_answers() {
        let mut predictor = ClvPredictor::new(BG, GG, weekly()).unwrap();
        for (x, t_x, t, m) in [
            (0.0, 0.0, 30.0, 0.0),
            (3.0, 10.0, 30.0, 12.0),
            (3.0, 25.0, 30.0, 40.0),
        ] {
            let direct = customer_lifetime_value(&BG, &GG, x, t_x, t, m, &weekly()).unwrap();
            assert_eq!(predictor.clv(x, t_x, t, m).unwrap(), direct);
            assert_eq!(predictor.clv(x, t_x, t, m).unwrap(), direct);
        }
    }

    /// The batch scorer gives the per-customer predictor's numbers.
    #[test]
    fn batch_scores_equal_single_scores() {
        let daily = BgNbdParams {
            alpha: BG.alpha * 7.0,
            ..BG
        };
        let settings = ClvSettings::default();
        let mut frequency = Vec::new();
        let mut recency = Vec::new();
        let mut t = Vec::new();
        let mut monetary = Vec::new();
        for i in 0..3000u32 {
            let x = f64::from(i % 7) * f64::from(i % 3);
            let age = f64::from(i % 400);
            let t_x = if x > 0.0 {
                (age * f64::from(i % 5) / 4.0).floor()
            } else {
                0.0
            };
            frequency.push(x);
            recency.push(t_x);
            t.push(age);
            monetary.push(if x > 0.0 {
                5.0 + f64::from(i % 11)
            } else {
                0.0
            });
        }
        let scores =
            score_customers(&daily, &GG, &settings, &frequency, &recency, &t, &monetary).unwrap();
        let mut predictor = ClvPredictor::new(daily, GG, settings).unwrap();
        for i in 0..frequency.len() {
            let one = predictor
                .score(frequency[i], recency[i], t[i], monetary[i])
                .unwrap();
            let got = [
                scores.p_alive[i],
                scores.expected_purchases[i],
                scores.expected_avg_value[i],
                scores.clv[i],
            ];
            let want = [
                one.p_alive,
                one.expected_purchases,
                one.expected_avg_value,
                one.clv,
            ];
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() <= 1e-14 * w.abs(), "{i}: {got:?} vs {want:?}");
            }
        }
        // The expected purchases are those over the whole horizon.
        let e = super::super::bgnbd::expected_purchases(&daily, 360.0, 3.0, 100.0, 200.0).unwrap();
        let one = predictor.score(3.0, 100.0, 200.0, 10.0).unwrap();
        assert!((one.expected_purchases - e).abs() < 1e-13 * e);
        assert!(matches!(
            score_customers(&daily, &GG, &settings, &[1.0], &[2.0], &[1.0], &[3.0]),
            Err(LtvError::RecencyAfterAge { .. })
        ));
        assert!(matches!(
            score_customers(&daily, &GG, &settings, &[1.0], &[], &[1.0], &[3.0]),
            Err(LtvError::InvalidInput { .. })
        ));
    }

    #[test]
    fn refuses_bad_settings_and_inputs() {
        let bad_discount = ClvSettings {
            monthly_discount_rate: -1.0,
            ..weekly()
        };
        assert!(matches!(
            ClvPredictor::new(BG, GG, bad_discount),
            Err(LtvError::InvalidInput { .. })
        ));
        let heavy = GammaGammaParams { q: 0.9, ..GG };
        assert!(matches!(
            ClvPredictor::new(BG, heavy, weekly()),
            Err(LtvError::InvalidParams { .. })
        ));
        let mut predictor = ClvPredictor::new(BG, GG, weekly()).unwrap();
        assert!(matches!(
            predictor.clv(2.0, 40.0, 30.0, 10.0),
            Err(LtvError::RecencyAfterAge { .. })
        ));
        assert!(matches!(
            predictor.clv(2.0, 10.0, 30.0, -1.0),
            Err(LtvError::InvalidInput { .. })
        ));
    }

    /// Daily and monthly units give the same CLV for the same customer when
    /// the parameters and history are converted (a 30-day month and the
    /// summary's 30.436875-day month differ, so only day ↔ "30-day month"
    /// is exact).
    #[test]
    fn units_agree_when_converted() {
        let (x, t_x, t, m) = (3.0, 20.0, 38.0, 30.0);
        let weekly_clv = customer_lifetime_value(&BG, &GG, x, t_x, t, m, &weekly()).unwrap();
        let days = 7.0;
        let daily_bg = BgNbdParams {
            alpha: BG.alpha * days,
            ..BG
        };
        let daily = ClvSettings {
            unit: TimeUnit::Day,
            ..weekly()
        };
        let daily_clv =
            customer_lifetime_value(&daily_bg, &GG, x, t_x * days, t * days, m, &daily).unwrap();
        // A week-month is 4.345 weeks = 30.415 days, a day-month 30 days.
        assert!(daily_clv < weekly_clv && daily_clv > 0.95 * weekly_clv);
    }

    /// Customers laid out from summaries' tallies score as from their columns, and the
    /// whole-number layout as the dictionaries' (a fractional age in the mix).
    #[test]
    fn tallied_and_whole_layouts_score_as_the_general_one() {
        let settings = ClvSettings::default();
        let h = crate::functions::ltv::whole::simulated_summaries(20_000, 13);
        let scores = |c: Customers<'_>| c.score(&BG, &GG, &settings).unwrap();
        let general =
            scores(Customers::new(&h.frequency, &h.recency, &h.t, &h.monetary_value).unwrap());
        assert_eq!(scores(Customers::of_summaries(&h).unwrap()), general);
        // One fractional age sends them all through the dictionaries: every other
        // customer scores the same.
        let mut t = h.t.clone();
        t[7] += 0.5;
        let dictionaries =
            scores(Customers::new(&h.frequency, &h.recency, &t, &h.monetary_value).unwrap());
        for (i, (a, b)) in general.clv.iter().zip(&dictionaries.clv).enumerate() {
            assert!(
                i == 7 || a.to_bits() == b.to_bits(),
                "customer {i}: {a} vs {b}"
            );
        }
        assert_ne!(general.clv[7], dictionaries.clv[7]);
        // The first invalid customer is the one named, whichever block it is in.
        let mut bad = h.recency.clone();
        bad[5000] = h.t[5000] + 1.0;
        bad[9000] = -1.0;
        let error = Customers::new(&h.frequency, &bad, &h.t, &h.monetary_value).err();
        assert_eq!(
            error,
            BgNbdPredictor::check(h.frequency[5000], bad[5000], h.t[5000]).err()
        );
        assert!(error.is_some());
    }
}
