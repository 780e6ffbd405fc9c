//! Maximum-likelihood fitting: argmin's L-BFGS and BFGS with a Moré-Thuente
//! line search (scipy's `minimize`, and so `lifetimes`, uses BFGS), over the
//! logarithms of the (positive) model parameters.
//!
//! The models hand in one function that returns the objective and fills its
//! gradient in the same pass (the expensive parts are shared); argmin asks
//! for the cost and the gradient separately, so the last evaluation is kept
//! and answered again. The best point seen is remembered as well: a line
//! search that fails because it cannot improve on a point already at the
//! optimum (double precision exhausted) still ends in a usable result.
//!
//! Large data sets are fitted in two steps: first on a systematic subsample
//! (every k-th customer in the sorted order of histories: a stratified
//! sample), which is cheap and lands near the optimum; then on all the data
//! from there, BFGS starting with the inverse of the subsample's Hessian, so
//! that its first steps are Newton steps and a handful of full evaluations
//! suffice where 30 to 50 are needed from a cold start.

use std::cell::RefCell;

use argmin::core::{CostFunction, Executor, Gradient, State, TerminationReason, TerminationStatus};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::{BFGS, LBFGS};

use super::error::LtvError;

/// The fewest customers a model is fitted to: with fewer, the three or four
/// parameters are not determined by the data in any useful sense (and SQL
/// users get a clear error instead of an arbitrary answer).
pub const MIN_CUSTOMERS: u64 = 10;

/// Bound on |ln θ| of a fitted parameter (on the scaled data): beyond it
/// (a factor of 5·10⁸ either way) the parameter has run off to 0 or
/// infinity.
pub const LOG_PARAM_LIMIT: f64 = 20.0;

/// The objectives are not evaluated at points with some |ln θ| beyond this
/// (a quadratic wall stands there instead): the differences of ln Γ of huge
/// arguments are all rounding error, and a "better" value found there would
/// be noise.
pub const LOG_PARAM_EVALUATION_LIMIT: f64 = 25.0;

/// Largest standard error of a fitted ln θ accepted as a result: 10 means
/// the data leave the parameter uncertain by a factor of e¹⁰ ≈ 22,000
/// either way. On CDNOW's 2357 customers they are 0.05 to 0.5 (so still
/// below 10 with a few dozen customers); on a ridge towards a boundary they
/// are far larger, or the curvature is not positive at all.
pub const MAX_LOG_STANDARD_ERROR: f64 = 10.0;

/// The name and value of the first log-parameter beyond
/// [`LOG_PARAM_LIMIT`] (or not finite), for "ran off" messages.
fn ran_off<'n>(names: &[&'n str], theta: &[f64]) -> Option<(&'n str, f64)> {
    names
        .iter()
        .zip(theta)
        .find(|(_, t)| t.is_nan() || t.abs() > LOG_PARAM_LIMIT)
        .map(|(name, t)| (*name, t.exp()))
}

/// When a minimisation counts as converged.
#[derive(Debug, Clone, Copy)]
pub struct Tolerances {
    /// Stop when the Euclidean norm of the gradient is below this.
    pub gradient: f64,
    /// A point whose gradient norm is below this is accepted when the
    /// optimiser stops for another reason (no further progress possible).
    pub accept_gradient: f64,
    /// Iteration limit.
    pub max_iterations: u64,
}

/// The tolerances of the fits: a gradient norm of 1e-9 on the mean negative
/// log-likelihood (`lifetimes` stops at 1e-7), 1e-6 accepted when double
/// precision runs out first.
pub const FIT_TOLERANCES: Tolerances = Tolerances {
    gradient: 1e-9,
    accept_gradient: 1e-6,
    max_iterations: 1000,
};

/// The tolerances of a subsample's fit, only a starting point: near enough
/// for Newton steps, and stopping before the line search runs into the
/// limits of double precision (on a small sample the cost stops resolving
/// improvements around a gradient norm of 1e-9, and the optimiser would
/// spend hundreds of evaluations there).
const SUBSAMPLE_TOLERANCES: Tolerances = Tolerances {
    gradient: 1e-6,
    accept_gradient: 1e-4,
    max_iterations: 200,
};

/// The point a minimisation ended at.
#[derive(Debug, Clone)]
pub struct Minimum {
    /// Where.
    pub x: Vec<f64>,
    /// The objective there.
    pub value: f64,
    /// Euclidean norm of the gradient there.
    pub gradient_norm: f64,
    /// Objective evaluations (each with its gradient).
    pub evaluations: u64,
}

/// One evaluation: point, value, gradient.
#[derive(Debug, Clone)]
struct Evaluation {
    x: Vec<f64>,
    value: f64,
    gradient: Vec<f64>,
}

/// What the problem remembers between argmin's calls.
#[derive(Debug, Default)]
struct Memory {
    last: Option<Evaluation>,
    best: Option<Evaluation>,
    /// The first point evaluated whose gradient norm met the tolerance.
    converged: Option<Evaluation>,
    evaluations: u64,
}

/// An objective `f(x, gradient_out) -> value` as an argmin problem. The
/// memory is borrowed so that it outlives a run that ends in an error.
struct Problem<'m, F> {
    objective: F,
    memory: &'m RefCell<Memory>,
    /// Gradient norm at which to stop.
    tolerance: f64,
}

/// The error a problem returns to stop argmin once a point has met the
/// tolerance: argmin checks the gradient only at the points its line search
/// accepts, and at the limits of double precision a line search can wander
/// for many evaluations among points that all meet it.
const CONVERGED: &str = "converged";

impl<F: Fn(&[f64], &mut [f64]) -> f64> Problem<'_, F> {
    fn checked(&self, x: &[f64]) -> Result<(f64, Vec<f64>), argmin::core::Error> {
        let evaluation = self.evaluate(x);
        if self.memory.borrow().converged.is_some() {
            return Err(argmin::core::Error::msg(CONVERGED));
        }
        Ok(evaluation)
    }

    fn evaluate(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let mut memory = self.memory.borrow_mut();
        if let Some(last) = &memory.last
            && last.x == x
        {
            return (last.value, last.gradient.clone());
        }
        let mut gradient = vec![0.0; x.len()];
        let mut value = (self.objective)(x, &mut gradient);
        if !value.is_finite() || gradient.iter().any(|g| !g.is_finite()) {
            value = f64::INFINITY;
            gradient.iter_mut().for_each(|g| *g = 0.0);
        }
        memory.evaluations += 1;
        let evaluation = Evaluation {
            x: x.to_vec(),
            value,
            gradient: gradient.clone(),
        };
        if value.is_finite() && memory.best.as_ref().is_none_or(|b| value < b.value) {
            memory.best = Some(evaluation.clone());
        }
        if value.is_finite() && memory.converged.is_none() && norm(&gradient) < self.tolerance {
            memory.converged = Some(evaluation.clone());
        }
        memory.last = Some(evaluation);
        (value, gradient)
    }
}

impl<F: Fn(&[f64], &mut [f64]) -> f64> CostFunction for Problem<'_, F> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, x: &Self::Param) -> Result<Self::Output, argmin::core::Error> {
        Ok(self.checked(x)?.0)
    }
}

impl<F: Fn(&[f64], &mut [f64]) -> f64> Gradient for Problem<'_, F> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, x: &Self::Param) -> Result<Self::Gradient, argmin::core::Error> {
        Ok(self.checked(x)?.1)
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|g| g * g).sum::<f64>().sqrt()
}

/// Why a minimisation failed, and the best point it had seen.
#[derive(Debug, Clone)]
pub struct Failure {
    /// A sentence saying why the optimiser stopped short of the tolerances
    /// (for the caller's [`LtvError::NotConverged`]).
    pub reason: String,
    /// The point with the lowest finite objective, if any.
    pub best: Option<Vec<f64>>,
}

/// Minimises `objective` from `x0`: by BFGS starting with `inverse_hessian`
/// when given, else by L-BFGS. A non-finite value or gradient counts as +∞
/// (the line search steps back).
///
/// # Errors
/// A [`Failure`] when the optimiser stops short of the tolerances.
pub fn minimize<F>(
    objective: F,
    x0: &[f64],
    inverse_hessian: Option<Vec<Vec<f64>>>,
    tolerances: &Tolerances,
) -> Result<Minimum, Failure>
where
    F: Fn(&[f64], &mut [f64]) -> f64,
{
    let memory = RefCell::new(Memory::default());
    let problem = Problem {
        objective,
        memory: &memory,
        tolerance: tolerances.gradient,
    };
    let fail = |reason: String, best: Option<Vec<f64>>| Failure { reason, best };
    let (start, _) = problem.evaluate(x0);
    if !start.is_finite() {
        return Err(fail(
            "the likelihood is not finite at the starting point".to_string(),
            None,
        ));
    }
    // From a known curvature, BFGS starting with its inverse (Newton steps
    // at first); from nothing, L-BFGS, whose scaling of the first steps by
    // the observed curvature copes better with an unknown scale than BFGS
    // starting from the identity.
    let outcome = match inverse_hessian {
        Some(inverse_hessian) => {
            let solver = BFGS::new(MoreThuenteLineSearch::new())
                .with_tolerance_grad(tolerances.gradient)
                .and_then(|s| s.with_tolerance_cost(0.0))
                .map_err(|e| fail(e.to_string(), None))?;
            Executor::new(problem, solver)
                .configure(|state| {
                    state
                        .param(x0.to_vec())
                        .inv_hessian(inverse_hessian)
                        .max_iters(tolerances.max_iterations)
                })
                .run()
                .map(|result| result.state().get_termination_status().clone())
        }
        None => {
            let solver = LBFGS::new(MoreThuenteLineSearch::new(), 7)
                .with_tolerance_grad(tolerances.gradient)
                .and_then(|s| s.with_tolerance_cost(0.0))
                .map_err(|e| fail(e.to_string(), None))?;
            Executor::new(problem, solver)
                .configure(|state| {
                    state
                        .param(x0.to_vec())
                        .max_iters(tolerances.max_iterations)
                })
                .run()
                .map(|result| result.state().get_termination_status().clone())
        }
    };
    let reason = match outcome {
        Ok(TerminationStatus::Terminated(TerminationReason::SolverConverged)) => None,
        Ok(other) => Some(other.to_string()),
        // Typically a line search that cannot improve any more; the best
        // point seen decides below.
        Err(error) => Some(format!("the optimiser stopped: {error}")),
    };
    let memory = memory.into_inner();
    let Some(best) = memory.best else {
        return Err(fail("no finite likelihood was found".to_string(), None));
    };
    let gradient_norm = norm(&best.gradient);
    let limit = if reason.is_none() {
        tolerances.gradient.max(tolerances.accept_gradient)
    } else {
        tolerances.accept_gradient
    };
    if gradient_norm > limit {
        let reason = match reason {
            Some(reason) => format!("{reason} with gradient norm {gradient_norm:.3e}"),
            None => format!("stopped with gradient norm {gradient_norm:.3e}"),
        };
        return Err(fail(reason, Some(best.x)));
    }
    Ok(Minimum {
        x: best.x,
        value: best.value,
        gradient_norm,
        evaluations: memory.evaluations,
    })
}

/// The objective read inside the evaluation limit: beyond it, at the
/// nearest point inside plus a quadratic wall, so that it is finite
/// everywhere (the line search cannot cope with infinite values) and rises
/// steeply outside.
fn walled<F>(objective: F) -> impl Fn(&[f64], &mut [f64]) -> f64
where
    F: Fn(&[f64], &mut [f64]) -> f64,
{
    move |theta: &[f64], gradient: &mut [f64]| {
        let limit = LOG_PARAM_EVALUATION_LIMIT;
        if theta.iter().all(|t| t.abs() <= limit) {
            return objective(theta, gradient);
        }
        if theta.iter().any(|t| !t.is_finite()) {
            return f64::INFINITY;
        }
        let inside: Vec<f64> = theta.iter().map(|t| t.clamp(-limit, limit)).collect();
        let mut value = objective(&inside, gradient);
        for ((t, g), i) in theta.iter().zip(gradient.iter_mut()).zip(&inside) {
            let excess = t - i;
            if excess != 0.0 {
                value += excess * excess;
                *g = 2.0 * excess;
            }
        }
        value
    }
}

/// Maximum likelihood over log-parameters: minimises `objective`, the mean
/// negative log-likelihood of `n` observations over ln θ (with its
/// gradient), from `start` — or, given `subsample` (the same function on a
/// subsample of the data), first that, then `objective` from the
/// subsample's optimum with its inverse Hessian.
///
/// The result is accepted only where the data determine every parameter:
/// none run off to 0 or infinity (|ln θ| ≤ [`LOG_PARAM_LIMIT`]), a positive
/// curvature, and standard errors of ln θ at most
/// [`MAX_LOG_STANDARD_ERROR`] (from the subsample's curvature when there is
/// one: a stratified sample's Hessian of the mean is the full data's to a
/// few per cent). `lifetimes` raises ConvergenceError in such places too
/// (its BFGS loses precision on the ridge towards the boundary). `hint` is
/// said to the user when a parameter is not determined: what in the data
/// typically causes it.
///
/// # Errors
/// [`LtvError::NotConverged`] saying which parameter is not determined, or
/// why the optimiser stopped.
pub fn fit_log_parameters<F, S>(
    model: &'static str,
    names: &[&str],
    objective: F,
    subsample: Option<S>,
    start: &[f64],
    n: f64,
    hint: &str,
) -> Result<Minimum, LtvError>
where
    F: Fn(&[f64], &mut [f64]) -> f64,
    S: Fn(&[f64], &mut [f64]) -> f64,
{
    let not_converged = |reason: String| LtvError::NotConverged { model, reason };
    let ran_off_error = |name: &str, value: f64| {
        not_converged(format!(
            "parameter {name} ran off to {value:e}; the data do not determine it ({hint})"
        ))
    };
    let evaluations = std::cell::Cell::new(0u32);
    let objective = walled(|theta: &[f64], gradient: &mut [f64]| {
        evaluations.set(evaluations.get() + 1);
        objective(theta, gradient)
    });

    // From a subsample's optimum and curvature, when it has them.
    let started = std::time::Instant::now();
    let mut from = start.to_vec();
    let mut curvature = None;
    if let Some(subsample) = subsample {
        let subsample = walled(subsample);
        if let Ok(minimum) = minimize(&subsample, start, None, &SUBSAMPLE_TOLERANCES)
            && ran_off(names, &minimum.x).is_none()
        {
            curvature = hessian(&subsample, &minimum.x).and_then(|h| invert_positive_definite(&h));
            from = minimum.x;
        }
    }

    let subsampled = started.elapsed();
    let minimum = minimize(&objective, &from, curvature.clone(), &FIT_TOLERANCES);
    tracing::debug!(
        model,
        subsample_ms = subsampled.as_secs_f64() * 1e3,
        full_ms = (started.elapsed() - subsampled).as_secs_f64() * 1e3,
        evaluations = evaluations.get(),
        "fit"
    );
    let minimum = minimum.map_err(|failure| {
        match failure
            .best
            .as_deref()
            .and_then(|best| ran_off(names, best))
        {
            Some((name, value)) => ran_off_error(name, value),
            None => not_converged(failure.reason),
        }
    })?;
    if let Some((name, value)) = ran_off(names, &minimum.x) {
        return Err(ran_off_error(name, value));
    }
    let inverse = match curvature {
        Some(inverse) => inverse,
        None => hessian(&objective, &minimum.x)
            .and_then(|h| invert_positive_definite(&h))
            .ok_or_else(|| {
                not_converged(format!(
                    "the likelihood has no proper maximum there (its curvature is not positive): \
                     it keeps rising towards a boundary ({hint})"
                ))
            })?,
    };
    for (i, name) in names.iter().enumerate() {
        let error = (inverse[i][i] / n).sqrt();
        if error.is_nan() || error > MAX_LOG_STANDARD_ERROR {
            return Err(not_converged(format!(
                "the data do not determine parameter {name} (standard error of ln {name}: \
                 {error:.3}; {hint})"
            )));
        }
    }
    Ok(minimum)
}

/// The Hessian of `objective` at `x` by central differences of its
/// gradient, symmetrised; `None` if not finite.
#[allow(clippy::needless_range_loop)] // (i, j) indexing reads as the formulas do
fn hessian<F>(objective: F, x: &[f64]) -> Option<Vec<Vec<f64>>>
where
    F: Fn(&[f64], &mut [f64]) -> f64,
{
    const STEP: f64 = 1e-5;
    let k = x.len();
    let mut h = vec![vec![0.0; k]; k];
    let mut point = x.to_vec();
    let (mut up, mut down) = (vec![0.0; k], vec![0.0; k]);
    for j in 0..k {
        point[j] = x[j] + STEP;
        objective(&point, &mut up);
        point[j] = x[j] - STEP;
        objective(&point, &mut down);
        point[j] = x[j];
        for i in 0..k {
            h[i][j] = (up[i] - down[i]) / (2.0 * STEP);
        }
    }
    for i in 0..k {
        for j in 0..i {
            let mean = 0.5 * (h[i][j] + h[j][i]);
            h[i][j] = mean;
            h[j][i] = mean;
        }
    }
    h.iter().flatten().all(|v| v.is_finite()).then_some(h)
}

/// The inverse of a symmetric positive definite matrix by Cholesky; `None`
/// when it is not positive definite.
#[allow(clippy::needless_range_loop)] // (i, j) indexing reads as the formulas do
fn invert_positive_definite(h: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let k = h.len();
    let mut l = vec![vec![0.0; k]; k];
    for i in 0..k {
        for j in 0..=i {
            let s = h[i][j] - (0..j).map(|m| l[i][m] * l[j][m]).sum::<f64>();
            if i == j {
                if !(s > 0.0 && s.is_finite()) {
                    return None;
                }
                l[i][i] = s.sqrt();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    // Columns of L⁻¹ by forward substitution; H⁻¹ = L⁻ᵀ L⁻¹.
    let mut l_inv = vec![vec![0.0; k]; k];
    for col in 0..k {
        for i in col..k {
            let rhs = if i == col { 1.0 } else { 0.0 };
            let s = rhs - (col..i).map(|m| l[i][m] * l_inv[m][col]).sum::<f64>();
            l_inv[i][col] = s / l[i][i];
        }
    }
    let inverse: Vec<Vec<f64>> = (0..k)
        .map(|i| {
            (0..k)
                .map(|j| (0..k).map(|m| l_inv[m][i] * l_inv[m][j]).sum())
                .collect()
        })
        .collect();
    inverse
        .iter()
        .flatten()
        .all(|v| v.is_finite())
        .then_some(inverse)
}

/// Standard errors of the parameters at a maximum of a likelihood of `n`
/// observations, from `objective` = the mean negative log-likelihood (and its
/// gradient): the square roots of the diagonal of (n·H)⁻¹, H its Hessian.
///
/// # Errors
/// When the Hessian is not positive definite (not a maximum) or not finite.
pub fn standard_errors<F>(objective: F, x: &[f64], n: f64) -> Result<Vec<f64>, String>
where
    F: Fn(&[f64], &mut [f64]) -> f64,
{
    let inverse = hessian(objective, x)
        .and_then(|h| invert_positive_definite(&h))
        .ok_or_else(|| {
            "the likelihood has no proper maximum there (its curvature is not positive)".to_string()
        })?;
    Ok((0..x.len()).map(|i| (inverse[i][i] / n).sqrt()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIGHT: Tolerances = Tolerances {
        gradient: 1e-10,
        accept_gradient: 1e-7,
        max_iterations: 500,
    };

    #[test]
    fn rosenbrock() {
        let f = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let m = minimize(f, &[-1.2, 1.0], None, &TIGHT).unwrap();
        assert!(
            (m.x[0] - 1.0).abs() < 1e-8 && (m.x[1] - 1.0).abs() < 1e-8,
            "{m:?}"
        );
    }

    #[test]
    fn unbounded_objective_is_not_converged() {
        // Decreasing forever along x: the iteration limit ends it.
        let f = |x: &[f64], g: &mut [f64]| {
            g[0] = -1.0;
            -x[0]
        };
        let tolerances = Tolerances {
            max_iterations: 20,
            ..TIGHT
        };
        assert!(minimize(f, &[0.0], None, &tolerances).is_err());
    }

    /// On a quadratic the standard errors are exact: f = ½ xᵀ A x / n with
    /// A = diag(4, 1/4) (mean of n observations) gives errors 1/2 and 2.
    #[test]
    fn standard_errors_of_a_quadratic() {
        let f = |x: &[f64], g: &mut [f64]| {
            g[0] = 4.0 * x[0];
            g[1] = 0.25 * x[1];
            0.5 * (4.0 * x[0] * x[0] + 0.25 * x[1] * x[1])
        };
        let errors = standard_errors(f, &[0.3, -0.2], 1.0).unwrap();
        assert!(
            (errors[0] - 0.5).abs() < 1e-8 && (errors[1] - 2.0).abs() < 1e-8,
            "{errors:?}"
        );
        let errors = standard_errors(f, &[0.0, 0.0], 100.0).unwrap();
        assert!((errors[1] - 0.2).abs() < 1e-8);
        // A saddle is not a maximum of the likelihood.
        let saddle = |x: &[f64], g: &mut [f64]| {
            g[0] = x[0];
            g[1] = -x[1];
            0.5 * (x[0] * x[0] - x[1] * x[1])
        };
        assert!(standard_errors(saddle, &[0.0, 0.0], 1.0).is_err());
    }

    /// A ridge rising towards a boundary: the fit is refused, naming the
    /// parameter, instead of returning wherever the optimiser stopped.
    #[test]
    fn a_parameter_running_off_is_not_a_result() {
        // Mean "negative log-likelihood" falling forever as θ₁ grows.
        let f = |x: &[f64], g: &mut [f64]| {
            g[0] = x[0] - 1.0;
            g[1] = -(-x[1]).exp() / (1.0 + (-x[1]).exp());
            0.5 * (x[0] - 1.0).powi(2) + (-x[1]).exp().ln_1p()
        };
        let outcome = fit_log_parameters(
            "test",
            &["u", "w"],
            f,
            None::<fn(&[f64], &mut [f64]) -> f64>,
            &[0.0, 0.0],
            1000.0,
            "hint",
        );
        assert!(
            matches!(&outcome, Err(LtvError::NotConverged { reason, .. }) if reason.contains('w')),
            "{outcome:?}"
        );
        // A proper maximum passes.
        let g = |x: &[f64], g: &mut [f64]| {
            g[0] = x[0] - 1.0;
            g[1] = 2.0 * (x[1] + 3.0);
            0.5 * (x[0] - 1.0).powi(2) + (x[1] + 3.0).powi(2)
        };
        let m = fit_log_parameters("test", &["u", "w"], g, Some(g), &[0.0, 0.0], 1000.0, "hint")
            .unwrap();
        assert!((m.x[0] - 1.0).abs() < 1e-8 && (m.x[1] + 3.0).abs() < 1e-8);
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn inverse_of_a_positive_definite_matrix() {
        let h = vec![
            vec![4.0, 2.0, 0.6],
            vec![2.0, 2.0, 0.5],
            vec![0.6, 0.5, 3.0],
        ];
        let inverse = invert_positive_definite(&h).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let product: f64 = (0..3).map(|m| h[i][m] * inverse[m][j]).sum();
                assert!((product - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        assert!(invert_positive_definite(&[vec![1.0, 2.0], vec![2.0, 1.0]]).is_none());
    }

    #[test]
    fn infinite_start_is_refused() {
        let f = |_: &[f64], _: &mut [f64]| f64::NAN;
        assert!(minimize(f, &[0.0], None, &TIGHT).is_err());
    }
}
