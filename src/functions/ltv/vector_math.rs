//! `exp` and `ln` of many numbers at once, for the likelihood and scoring loops.
//!
//! The system's `exp` and `ln` are one call per number, which keeps the compiler from
//! vectorising the loops around them: on a million customers they were a sixth of
//! `ltv()`'s CPU. Here each is a short, branch-free polynomial over plain arithmetic and
//! bit operations that the compiler turns into SIMD code, compiled twice — for the
//! baseline instruction set and for AVX2 — with the wider one chosen at run time. Every
//! operation is an IEEE-rounded add, multiply or divide (no fused multiply-add), so both
//! versions give the same bits on any machine.
//!
//! Accuracy (tested against the system's functions): within 2 units in the last place
//! over the whole range of finite doubles, including subnormal results of `exp` and
//! subnormal arguments of `ln`; the special values as IEEE says (`ln` of 0 is −∞, of a
//! negative number NaN; `exp` overflows to ∞ and underflows to 0).
//!
//! The methods are the classic ones (Tang; Cody & Waite): `exp` reduces y = n ln 2 + r
//! with |r| ≤ ln 2 / 2 and sums the Taylor series of e^r to the r¹³ term (truncation
//! below 10⁻¹⁷ relative); `ln` writes x = 2^k (1 + f) with 1 + f in [√½, √2) and uses
//! ln(1 + f) = 2 atanh(s), s = f / (2 + f), arranged so that f itself is exact and the
//! rounding of s only touches a small correction.

/// ln 2 split so that n · `LN2_HI` is exact for the |n| < 2²¹ used here.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
/// ln 2 − `LN2_HI`.
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// 1.5 · 2⁵²: adding it rounds a number of magnitude below 2⁵¹ to an integer, which
/// then sits in the low bits of the sum.
const ROUND: f64 = 6_755_399_441_055_744.0;
/// 2⁵², for reading a small integer out of a double's bits.
const TWO_52: f64 = 4_503_599_627_370_496.0;
/// Above this, e^y overflows.
const EXP_OVERFLOW: f64 = 709.782_712_893_384;
/// Below this, e^y rounds to 0.
const EXP_UNDERFLOW: f64 = -745.133_219_101_941_1;

/// 1/k! for k = 2..=13, the Taylor coefficients of e^r after 1 + r.
const EXP_TAYLOR: [f64; 12] = {
    let mut c = [0.0; 12];
    let mut factorial = 1.0;
    let mut k = 2;
    while k <= 13 {
        factorial *= k as f64;
        c[k - 2] = 1.0 / factorial;
        k += 1;
    }
    c
};

/// 2 / (2k + 1) for k = 1..=10: 2 atanh(s) = 2s + s · Σ_k 2/(2k+1) · z^k, z = s².
const ATANH_SERIES: [f64; 10] = {
    let mut c = [0.0; 10];
    let mut k = 1;
    while k <= 10 {
        c[k - 1] = 2.0 / (2 * k + 1) as f64;
        k += 1;
    }
    c
};

/// 2^n for n in −1022..=1023, from its bits.
#[inline(always)]
fn pow2(n: i64) -> f64 {
    f64::from_bits(((n + 1023) as u64) << 52)
}

/// e^y.
#[inline(always)]
fn exp_one(y: f64) -> f64 {
    // Clamped so that the reduction below stays exact; the limits are put back at
    // the end.
    let yc = y.clamp(-1100.0, 800.0);
    let t = yc * std::f64::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let n_int = (t.to_bits() as i64) - (ROUND.to_bits() as i64);
    let r = (yc - n * LN2_HI) - n * LN2_LO;
    let mut q = EXP_TAYLOR[11];
    for &c in EXP_TAYLOR[..11].iter().rev() {
        q = q * r + c;
    }
    // e^r = 1 + r + r² q.
    let p = 1.0 + (r + r * r * q);
    // 2^n as two factors, so that neither leaves the range of normal numbers and a
    // subnormal result is rounded once, at the last product.
    let half = ((n_int + 2048) >> 1) - 1024;
    let e = p * pow2(half) * pow2(n_int - half);
    let e = if y > EXP_OVERFLOW { f64::INFINITY } else { e };
    let e = if y < EXP_UNDERFLOW { 0.0 } else { e };
    if y.is_nan() { y } else { e }
}

/// ln x.
#[inline(always)]
fn ln_one(x: f64) -> f64 {
    // Subnormal arguments are scaled into the normal range first.
    let subnormal = x < f64::MIN_POSITIVE;
    let scaled = if subnormal { x * TWO_52 * 4.0 } else { x };
    let bits = scaled.to_bits();
    let biased = f64::from_bits((bits >> 52) | TWO_52.to_bits()) - TWO_52;
    let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let big = m > std::f64::consts::SQRT_2;
    let m = if big { m * 0.5 } else { m };
    let k = biased - 1023.0 + if big { 1.0 } else { 0.0 } - if subnormal { 54.0 } else { 0.0 };
    // Exact: m is within a factor of 2 of 1.
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let mut series = ATANH_SERIES[9];
    for &c in ATANH_SERIES[..9].iter().rev() {
        series = series * z + c;
    }
    let r = z * series;
    // ln(1 + f) = f − f²/2 + s (f²/2 + R), each part small beside f.
    let half_square = 0.5 * f * f;
    let ln = k * LN2_HI - ((half_square - (s * (half_square + r) + k * LN2_LO)) - f);
    let ln = if x == f64::INFINITY { x } else { ln };
    let ln = if x == 0.0 { f64::NEG_INFINITY } else { ln };
    if x < 0.0 || x.is_nan() { f64::NAN } else { ln }
}

/// Runs `$body` (a function over slices, marked `#[inline(always)]`) compiled for
/// AVX-512 or AVX2 when the processor has it (eight or four numbers at a time), else
/// for the baseline (two).
macro_rules! dispatch {
    ($body:ident, ($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            fn avx512($($arg: $ty),*) {
                $body($($arg),*)
            }

            #[target_feature(enable = "avx2")]
            fn avx2($($arg: $ty),*) {
                $body($($arg),*)
            }

            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the processor was just found to have AVX-512.
                return unsafe { avx512($($arg),*) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the processor was just found to have AVX2.
                return unsafe { avx2($($arg),*) };
            }
        }
        $body($($arg),*)
    };
}

#[inline(always)]
fn exp_body(y: &[f64], out: &mut [f64]) {
    for (o, &v) in out.iter_mut().zip(y) {
        *o = exp_one(v);
    }
}

#[inline(always)]
fn ln_body(x: &[f64], out: &mut [f64]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = ln_one(v);
    }
}

#[inline(always)]
fn softplus_sigmoid_body(d: &[f64], softplus: &mut [f64], sigmoid: &mut [f64]) {
    for ((&d, sp), sg) in d.iter().zip(softplus.iter_mut()).zip(sigmoid.iter_mut()) {
        let e = exp_one(-d.abs());
        let inv = 1.0 / (1.0 + e);
        *sg = if d >= 0.0 { inv } else { e * inv };
        *sp = d.max(0.0) + ln_one(1.0 + e);
    }
}

#[inline(always)]
fn sigmoid_body(d: &[f64], out: &mut [f64]) {
    for (o, &d) in out.iter_mut().zip(d) {
        let e = exp_one(-d.abs());
        let inv = 1.0 / (1.0 + e);
        *o = if d >= 0.0 { inv } else { e * inv };
    }
}

#[inline(always)]
fn ln_1p_body(u: &[f64], out: &mut [f64]) {
    for (o, &u) in out.iter_mut().zip(u) {
        // ln(1 + u) corrected for the rounding of 1 + u (Goldberg's method).
        let w = 1.0 + u;
        let corrected = ln_one(w) - ((w - 1.0) - u) / w;
        *o = if w == 1.0 { u } else { corrected };
    }
}

/// `out[i] = e^y[i]` for the common length of the two slices.
pub fn exp(y: &[f64], out: &mut [f64]) {
    dispatch!(exp_body, (y: &[f64], out: &mut [f64]));
}

/// `out[i] = ln x[i]` for the common length of the two slices.
pub fn ln(x: &[f64], out: &mut [f64]) {
    dispatch!(ln_body, (x: &[f64], out: &mut [f64]));
}

/// `out[i] = ln(1 + u[i])`, accurate for small u as well.
pub fn ln_1p(u: &[f64], out: &mut [f64]) {
    dispatch!(ln_1p_body, (u: &[f64], out: &mut [f64]));
}

/// The logistic σ(d) = 1 / (1 + e^−d) of each d, without overflow.
pub fn sigmoid(d: &[f64], out: &mut [f64]) {
    dispatch!(sigmoid_body, (d: &[f64], out: &mut [f64]));
}

/// For each d: softplus(d) = ln(1 + e^d) and the logistic σ(d) = 1 / (1 + e^−d), both
/// from one e^−|d| so that neither overflows.
pub fn softplus_sigmoid(d: &[f64], softplus: &mut [f64], sigmoid: &mut [f64]) {
    dispatch!(softplus_sigmoid_body, (d: &[f64], softplus: &mut [f64], sigmoid: &mut [f64])
    );
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Distance in units in the last place between two finite doubles of one sign.
    fn ulps(a: f64, b: f64) -> u64 {
        if a == b {
            return 0;
        }
        assert_eq!(a.is_sign_negative(), b.is_sign_negative(), "{a} vs {b}");
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    fn exp_of(y: f64) -> f64 {
        let mut out = [0.0];
        exp(&[y], &mut out);
        out[0]
    }

    fn ln_of(x: f64) -> f64 {
        let mut out = [0.0];
        ln(&[x], &mut out);
        out[0]
    }

    #[test]
    fn exp_is_within_two_ulps_everywhere() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut ys: Vec<f64> = (0..200_000).map(|_| rng.gen_range(-745.0..710.0)).collect();
        ys.extend((0..100_000).map(|_| rng.gen_range(-1.0..1.0)));
        ys.extend((0..10_000).map(|i| -(i as f64) * 1e-3));
        ys.extend([0.0, -0.0, 1e-300, -1e-300, 709.7, -708.3, -744.9, -745.0]);
        let mut out = vec![0.0; ys.len()];
        exp(&ys, &mut out);
        let worst = ys
            .iter()
            .zip(&out)
            .map(|(&y, &e)| (ulps(e, y.exp()), y))
            .max_by_key(|(u, _)| *u)
            .unwrap();
        assert!(worst.0 <= 2, "{} ulps at {}", worst.0, worst.1);
    }

    #[test]
    fn exp_limits_and_special_values() {
        assert_eq!(exp_of(0.0), 1.0);
        assert_eq!(exp_of(710.0), f64::INFINITY);
        assert_eq!(exp_of(f64::INFINITY), f64::INFINITY);
        assert_eq!(exp_of(-746.0), 0.0);
        assert_eq!(exp_of(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp_of(-1e10), 0.0);
        assert!(exp_of(f64::NAN).is_nan());
        // The smallest subnormal, and a subnormal in the middle of the range.
        assert_eq!(exp_of(-745.0), (-745.0f64).exp());
        assert!(ulps(exp_of(-720.0), (-720.0f64).exp()) <= 2);
    }

    #[test]
    fn ln_is_within_two_ulps_everywhere() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut xs: Vec<f64> = (0..200_000)
            // Every exponent, every mantissa: random bits of positive finite doubles.
            .map(|_| f64::from_bits(rng.gen_range(1..0x7ff0_0000_0000_0000)))
            .collect();
        xs.extend((0..100_000).map(|_| rng.gen_range(0.5..1.5)));
        xs.extend((1..10_000).map(|i| 1.0 + i as f64 * 1e-12));
        xs.extend((1..10_000).map(|i| i as f64));
        xs.extend([
            1.0,
            f64::MIN_POSITIVE,
            5e-324,
            f64::MAX,
            std::f64::consts::SQRT_2,
        ]);
        let mut out = vec![0.0; xs.len()];
        ln(&xs, &mut out);
        let worst = xs
            .iter()
            .zip(&out)
            .map(|(&x, &l)| (ulps(l, x.ln()), x))
            .max_by_key(|(u, _)| *u)
            .unwrap();
        assert!(worst.0 <= 2, "{} ulps at {:e}", worst.0, worst.1);
    }

    #[test]
    fn ln_special_values() {
        assert_eq!(ln_of(1.0), 0.0);
        assert_eq!(ln_of(0.0), f64::NEG_INFINITY);
        assert_eq!(ln_of(-0.0), f64::NEG_INFINITY);
        assert_eq!(ln_of(f64::INFINITY), f64::INFINITY);
        assert!(ln_of(-1.0).is_nan());
        assert!(ln_of(f64::NEG_INFINITY).is_nan());
        assert!(ln_of(f64::NAN).is_nan());
    }

    #[test]
    fn ln_1p_is_accurate_for_small_and_large_arguments() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let us: Vec<f64> = (0..100_000)
            .map(|i| {
                let unit: f64 = rng.gen_range(0.0..1.0);
                // From 1e-20 to 1e6, and a few just above −1.
                if i % 10 == 0 {
                    unit - 1.0 + 1e-9
                } else {
                    10f64.powf(unit * 26.0 - 20.0)
                }
            })
            .collect();
        let mut out = vec![0.0; us.len()];
        ln_1p(&us, &mut out);
        for (&u, &l) in us.iter().zip(&out) {
            assert!(
                ulps(l, u.ln_1p()) <= 3,
                "ln_1p({u:e}) = {l:e}, not {:e}",
                u.ln_1p()
            );
        }
    }

    #[test]
    fn softplus_and_sigmoid_match_their_definitions() {
        let ds: Vec<f64> = (-4000..=4000).map(|i| i as f64 * 0.25).collect();
        let (mut sp, mut sg) = (vec![0.0; ds.len()], vec![0.0; ds.len()]);
        softplus_sigmoid(&ds, &mut sp, &mut sg);
        for ((&d, &sp), &sg) in ds.iter().zip(&sp).zip(&sg) {
            let e = (-d.abs()).exp();
            let want_sp = d.max(0.0) + e.ln_1p();
            let want_sg = if d >= 0.0 {
                1.0 / (1.0 + e)
            } else {
                e / (1.0 + e)
            };
            assert!(
                (sp - want_sp).abs() <= 4e-16 * want_sp.max(1.0),
                "softplus({d})"
            );
            assert!((sg - want_sg).abs() <= 4e-16 * want_sg, "sigmoid({d})");
        }
    }

    #[test]
    fn the_baseline_and_the_wide_versions_give_the_same_bits() {
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let ys: Vec<f64> = (0..10_000).map(|_| rng.gen_range(-50.0..50.0)).collect();
        let (mut wide, mut base) = (vec![0.0; ys.len()], vec![0.0; ys.len()]);
        exp(&ys, &mut wide);
        exp_body(&ys, &mut base);
        assert_eq!(wide, base);
        let xs: Vec<f64> = ys.iter().map(|y| y.abs() * 1e3).collect();
        ln(&xs, &mut wide);
        ln_body(&xs, &mut base);
        assert_eq!(wide, base);
    }
}
