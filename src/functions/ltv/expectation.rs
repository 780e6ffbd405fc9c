//! The hypergeometric part of the BG/NBD conditional expectation, computed
//! stably for every parameter value, horizon and history length.
//!
//! Fader, Hardie & Lee (2005), equation (10), gives the expected number of
//! purchases in the next `t` units of a customer with history (x, t_x, T) as
//!
//! ```text
//! E = (a+b+x-1)/(a-1) · [1 − ((α+T)/(α+T+t))^(r+x) · ₂F₁(r+x, b+x; a+b+x−1; z)] · P(alive)
//! z = t / (α+T+t)
//! ```
//!
//! `lifetimes` evaluates ₂F₁ with scipy and falls back to Euler's
//! transformation when that overflows. Here Euler's transformation is applied
//! up front, ₂F₁(r+x, b+x; c; z) = (1−z)^(a−1−r−x) ₂F₁(a+b−1−r, a−1; c; z) with
//! c = a+b+x−1, which turns the bracket into
//!
//! ```text
//! N = c · (1 − (1−z)^(a−1)) / (a−1)  −  (1−z)^(a−1) · H(z),
//! H(z) = Σ_{k≥1} (a+b−1−r)_k (a)_{k−1} / ((c+1)_{k−1} k!) · z^k
//! ```
//!
//! Both parts are free of the apparent poles at a = 1 and c = 0 (the first is
//! an `expm1` quotient, the second has no `a−1` or `c` in a denominator), the
//! series' upper parameters no longer grow with x (so large counts converge
//! faster, not slower), and every term is a product of ratios: no Gamma
//! function of a large argument is ever formed. `E = N · P(alive)`.
//!
//! The series converges like z^k; for z above [`SERIES_MAX_Z`] (horizons
//! long against α+T) N is instead integrated over the dropout probability p,
//! `N = E_p[(1 − (1 + p·t/(α+T))^−(r+x)) / p]` with p ~ Beta(a, b+x), by
//! tanh-sinh quadrature evaluated in log space (it copes with the endpoint
//! singularities of the Beta density and with densities squeezed against 0).

use statrs::function::gamma::ln_gamma;

use super::bgnbd::BgNbdParams;

/// Largest z = t/(α+T+t) summed as a series; beyond it, quadrature.
pub const SERIES_MAX_Z: f64 = 0.9;

/// A series gives up after this many terms and leaves the value to
/// quadrature (never reached for z ≤ [`SERIES_MAX_Z`] with sane parameters).
const MAX_TERMS: usize = 20_000;

/// The coefficients of H for one (parameters, x), kept so that many ages and
/// horizons of customers with the same frequency share them.
#[derive(Debug, Clone)]
pub struct NumeratorSeries {
    /// r + x.
    rx: f64,
    /// a.
    a: f64,
    /// b + x.
    bx: f64,
    /// c = a + b + x − 1.
    c: f64,
    /// a + b − 1 − r, H's first upper parameter.
    upper: f64,
    /// h_k for k = 1, 2, ...
    coefficients: Vec<f64>,
    /// m_k: every later term ratio h_{j+1} z^{j+1} / (h_j z^j), j ≥ k, is at
    /// most z · m_k (infinite while that cannot be bounded yet).
    ratio_bounds: Vec<f64>,
    /// Whether the coefficients overflowed (then quadrature is used).
    overflowed: bool,
}

impl NumeratorSeries {
    /// The series for parameters `p` and frequency `x` (not checked here:
    /// the callers validate).
    pub fn new(p: &BgNbdParams, x: f64) -> Self {
        NumeratorSeries {
            rx: p.r + x,
            a: p.a,
            bx: p.b + x,
            c: p.a + p.b + x - 1.0,
            upper: p.a + p.b - 1.0 - p.r,
            coefficients: Vec::new(),
            ratio_bounds: Vec::new(),
            overflowed: false,
        }
    }

    /// Makes sure h_k exists (k counted from 1); false on overflow.
    fn extend_to(&mut self, k: usize) -> bool {
        while self.coefficients.len() < k && !self.overflowed {
            let next = self.coefficients.len() + 1;
            let h = match self.coefficients.last() {
                None => self.upper,
                Some(&prev) => {
                    let j = (next - 1) as f64;
                    prev * (self.upper + j) * (self.a + j - 1.0) / ((self.c + j) * (j + 1.0))
                }
            };
            if !h.is_finite() {
                self.overflowed = true;
                break;
            }
            let kf = next as f64;
            let bound = if self.upper + kf < 0.0 {
                f64::INFINITY
            } else {
                // (upper+j)/(c+j) and (a+j−1)/(j+1) are monotone in j and tend
                // to 1, so their values at k or 1 bound them for all j ≥ k.
                let f1 = (self.upper + kf) / (self.c + kf);
                let f2 = (self.a + kf - 1.0) / (kf + 1.0);
                f1.max(1.0) * f2.max(1.0)
            };
            self.coefficients.push(h);
            self.ratio_bounds.push(bound);
        }
        !self.overflowed
    }

    /// N for a customer of age `age` (T) and horizon `horizon` (t), with
    /// scale `alpha`: the expected purchases of a customer known to be
    /// alive, E[(1 − (1 + p·τ)^−(r+x)) / p] over p ~ Beta(a, b+x),
    /// τ = t/(α+T).
    pub fn numerator(&mut self, alpha: f64, age: f64, horizon: f64) -> f64 {
        let mut out = [0.0];
        self.numerators(alpha, age, &[horizon], &mut out);
        out[0]
    }

    /// N for several horizons of one customer at once (`out[i]` for
    /// `horizons[i]`): the series' coefficients and powers, or the
    /// quadrature's nodes, are shared.
    pub fn numerators(&mut self, alpha: f64, age: f64, horizons: &[f64], out: &mut [f64]) {
        let taus: Vec<f64> = horizons.iter().map(|h| h / (alpha + age)).collect();
        let zs: Vec<f64> = taus.iter().map(|tau| tau / (1.0 + tau)).collect();
        let mut by_quadrature = Vec::new();
        let mut active = Vec::new();
        for (i, &h) in horizons.iter().enumerate() {
            if h <= 0.0 {
                out[i] = 0.0;
            } else if zs[i] <= SERIES_MAX_Z {
                active.push(i);
            } else {
                by_quadrature.push(i);
            }
        }
        let (am1, c) = (self.a - 1.0, self.c);
        let finish = |tau: f64, h: f64| {
            let ln_1mz = -tau.ln_1p();
            let e1 = if am1 == 0.0 {
                -ln_1mz
            } else {
                -(am1 * ln_1mz).exp_m1() / am1
            };
            c * e1 - (am1 * ln_1mz).exp() * h
        };
        // All series horizons advance together; the one with the largest z
        // converges last (every term grows with z), so its stopping rule
        // ends them all.
        if let Some(&last) = active.iter().max_by(|&&i, &&j| zs[i].total_cmp(&zs[j])) {
            let z_max = zs[last];
            let active_z: Vec<f64> = active.iter().map(|&i| zs[i]).collect();
            let mut powers = vec![1.0; active.len()];
            let mut sums = vec![0.0; active.len()];
            let last = active.iter().position(|&i| i == last).unwrap_or(0);
            let mut converged = false;
            for k in 1..=MAX_TERMS {
                if !self.extend_to(k) {
                    break;
                }
                let h = self.coefficients[k - 1];
                for ((power, sum), z) in powers.iter_mut().zip(sums.iter_mut()).zip(&active_z) {
                    *power *= z;
                    *sum += h * *power;
                }
                let rho = z_max * self.ratio_bounds[k - 1];
                let term = h * powers[last];
                // h = 0: a non-positive integer upper parameter ends the
                // series.
                if h == 0.0
                    || (rho < 1.0 && term.abs() * rho <= 1e-17 * (1.0 - rho) * sums[last].abs())
                {
                    converged = true;
                    break;
                }
            }
            if converged && sums.iter().all(|s| s.is_finite()) {
                for (&i, sum) in active.iter().zip(sums) {
                    out[i] = finish(taus[i], sum);
                }
            } else {
                by_quadrature.append(&mut active);
            }
        }
        if !by_quadrature.is_empty() {
            let quad_taus: Vec<f64> = by_quadrature.iter().map(|&i| taus[i]).collect();
            let mut quad_out = vec![0.0; quad_taus.len()];
            numerators_by_quadrature(self.rx, self.a, self.bx, &quad_taus, &mut quad_out);
            for (&i, value) in by_quadrature.iter().zip(quad_out) {
                out[i] = value;
            }
        }
    }
}

/// ln(1 + e^v) without overflow or loss for large |v|.
pub(crate) fn softplus(v: f64) -> f64 {
    v.max(0.0) + (-v.abs()).exp().ln_1p()
}

/// N = E[(1 − (1 + p·τ)^−rx) / p] over p ~ Beta(a, bx) by tanh-sinh
/// quadrature: p = (1 + tanh s)/2, s = (π/2)·sinh u, every factor in logs so
/// that p and 1 − p can be far below the smallest double.
pub fn numerator_by_quadrature(rx: f64, a: f64, bx: f64, tau: f64) -> f64 {
    let mut out = [0.0];
    numerators_by_quadrature(rx, a, bx, &[tau], &mut out);
    out[0]
}

/// [`numerator_by_quadrature`] for several τ at once, sharing the nodes.
pub fn numerators_by_quadrature(rx: f64, a: f64, bx: f64, taus: &[f64], out: &mut [f64]) {
    use std::f64::consts::PI;
    const STEP: f64 = 1.0 / 32.0;
    let ln_beta = ln_gamma(a) + ln_gamma(bx) - ln_gamma(a + bx);
    let ln_rx_taus: Vec<f64> = taus.iter().map(|tau| (rx * tau).ln()).collect();
    out.iter_mut().for_each(|o| *o = 0.0);
    // Beyond these u the integrand is below e^-40 of its scale: p^a and
    // (1−p)^bx have decayed (ln p ≈ 2s for s → −∞, ln(1−p) ≈ −2s for s → ∞).
    let u_low = -(40.0 / (PI * a)).asinh() - 1.0;
    let u_high = (40.0 / (PI * bx)).asinh() + 1.0;
    let first = (u_low / STEP).floor() as i64;
    let last = (u_high / STEP).ceil() as i64;
    for i in first..=last {
        let u = i as f64 * STEP;
        let s = 0.5 * PI * u.sinh();
        let ln_p = -softplus(-2.0 * s);
        let ln_q = -softplus(2.0 * s);
        // Everything but 1 − (1+pτ)^−rx, which depends on τ.
        let ln_common = (a - 1.0) * ln_p + bx * ln_q + (PI * u.cosh()).ln() - ln_beta;
        if ln_p < -700.0 {
            // p underflows: 1 − (1+pτ)^−rx = rx·p·τ to double precision.
            for (o, ln_rx_tau) in out.iter_mut().zip(&ln_rx_taus) {
                *o += (ln_common + ln_rx_tau + ln_p).exp();
            }
        } else if ln_common.abs() < 700.0 {
            let (p, common) = (ln_p.exp(), ln_common.exp());
            for (o, tau) in out.iter_mut().zip(taus) {
                *o += common * -(-rx * (p * tau).ln_1p()).exp_m1();
            }
        } else {
            let p = ln_p.exp();
            for (o, tau) in out.iter_mut().zip(taus) {
                *o += (ln_common + (-(-rx * (p * tau).ln_1p()).exp_m1()).ln()).exp();
            }
        }
    }
    out.iter_mut().for_each(|o| *o *= STEP);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(r: f64, alpha: f64, a: f64, b: f64) -> BgNbdParams {
        BgNbdParams { r, alpha, a, b }
    }

    fn rel(x: f64, y: f64) -> f64 {
        (x - y).abs() / y.abs().max(1e-300)
    }

    /// The series and the quadrature agree where both apply, across
    /// parameter regimes: a < 1, a = 1, a > 1, a + b < 1, large x.
    #[test]
    fn series_matches_quadrature() {
        let cases = [
            params(0.243, 4.414, 0.793, 2.426),
            params(0.243, 4.414, 1.0, 2.426),
            params(2.5, 10.0, 3.5, 7.0),
            params(0.5, 1.0, 0.3, 0.4),
            params(0.05, 0.2, 0.08, 0.9),
            params(8.0, 3.0, 12.0, 40.0),
        ];
        for p in cases {
            for x in [0.0, 1.0, 2.0, 7.0, 60.0, 1000.0] {
                let mut series = NumeratorSeries::new(&p, x);
                for age in [0.0, 1.0, 38.86, 400.0] {
                    for horizon in [0.1, 1.0, 10.0, 39.0, 200.0] {
                        let tau = horizon / (p.alpha + age);
                        if tau / (1.0 + tau) > SERIES_MAX_Z {
                            continue;
                        }
                        let s = series.numerator(p.alpha, age, horizon);
                        let q = numerator_by_quadrature(p.r + x, p.a, p.b + x, tau);
                        assert!(
                            rel(s, q) < 1e-11,
                            "{p:?} x={x} T={age} t={horizon}: series {s} quadrature {q}"
                        );
                    }
                }
            }
        }
    }

    /// For a short horizon N ≈ (r+x)·t/(α+T) (a customer alive buys at rate
    /// λ, whose posterior mean is (r+x)/(α+T)).
    #[test]
    fn short_horizon_limit() {
        let p = params(0.243, 4.414, 0.793, 2.426);
        for x in [0.0, 3.0, 100.0] {
            let mut series = NumeratorSeries::new(&p, x);
            let t = 1e-7;
            let n = series.numerator(p.alpha, 20.0, t);
            let expected = (p.r + x) * t / (p.alpha + 20.0);
            assert!(rel(n, expected) < 1e-6, "x={x}: {n} vs {expected}");
        }
        assert_eq!(
            NumeratorSeries::new(&p, 1.0).numerator(p.alpha, 1.0, 0.0),
            0.0
        );
    }

    /// Long horizons (z near 1) use quadrature and stay below the limit
    /// E[1/p] = (a+b+x−1)/(a−1) for a > 1, growing with the horizon.
    /// Several horizons at once give what one at a time gives, across the
    /// series/quadrature boundary.
    #[test]
    fn many_horizons_at_once() {
        let p = params(0.243, 30.9, 0.793, 2.426);
        for x in [0.0, 1.0, 12.0] {
            for age in [0.0, 3.0, 50.0, 700.0] {
                let horizons: Vec<f64> = (0..=12).map(|i| f64::from(i) * 30.0).collect();
                let mut together = vec![0.0; horizons.len()];
                NumeratorSeries::new(&p, x).numerators(p.alpha, age, &horizons, &mut together);
                for (h, value) in horizons.iter().zip(&together) {
                    let alone = NumeratorSeries::new(&p, x).numerator(p.alpha, age, *h);
                    assert!(
                        (value - alone).abs() <= 1e-13 * alone.abs(),
                        "{x} {age} {h}: {value} vs {alone}"
                    );
                }
            }
        }
    }

    #[test]
    fn long_horizons_increase_towards_the_limit() {
        let p = params(0.5, 0.01, 2.0, 3.0);
        let mut series = NumeratorSeries::new(&p, 2.0);
        let limit = (p.a + p.b + 2.0 - 1.0) / (p.a - 1.0);
        let mut previous = 0.0;
        for horizon in [1.0, 10.0, 1e3, 1e5, 1e8] {
            let n = series.numerator(p.alpha, 0.0, horizon);
            assert!(n.is_finite() && n > previous && n < limit, "{horizon}: {n}");
            previous = n;
        }
        assert!(rel(previous, limit) < 1e-2);
    }
}
