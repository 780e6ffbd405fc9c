//! Errors of the LTV core: inputs the models cannot use, fits that do not
//! converge, results that are not finite numbers.
//!
//! The DataFusion glue converts these once into its own error type; every
//! message says what was wrong with the data and, where there is one, what to
//! do about it. No function of the core returns a NaN or infinite number as if
//! it were a result: it returns one of these instead.

use thiserror::Error;

/// Everything the BG/NBD, Gamma-Gamma, CLV and summary code can refuse.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LtvError {
    /// An order with a negative amount (a refund booked as an order, say);
    /// the spend model needs amounts of at least zero.
    #[error(
        "order amount {amount} is negative: clv_summary needs amounts >= 0 (filter refunds out or net them against their orders first)"
    )]
    NegativeAmount {
        /// The amount as given.
        amount: f64,
    },

    /// A customer whose last purchase is later than the end of the
    /// observation (`recency > t`): the summary columns do not belong together.
    #[error(
        "recency {recency} is greater than t {t}: recency (age at the last purchase) can be at most t (age at as_of)"
    )]
    RecencyAfterAge {
        /// The recency as given.
        recency: f64,
        /// The age as given.
        t: f64,
    },

    /// An input value outside what the model is defined for: NaN or infinite
    /// numbers, negative or fractional frequencies, negative ages.
    #[error("invalid {what} {value}: {expected}")]
    InvalidInput {
        /// Which input (`frequency`, `recency`, `t`, `monetary_value`, `horizon`, ...).
        what: &'static str,
        /// The value as given.
        value: f64,
        /// What the model expects instead.
        expected: &'static str,
    },

    /// Model parameters (given to a prediction) that are not positive finite
    /// numbers, or that the prediction is undefined for.
    #[error("invalid {model} parameters: {reason}")]
    InvalidParams {
        /// `BG/NBD` or `Gamma-Gamma`.
        model: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// Data a model cannot be fitted to: too few customers, or no repeat
    /// purchases at all (the likelihood then has no maximum).
    #[error("cannot fit {model}: {reason}")]
    DegenerateInput {
        /// `BG/NBD` or `Gamma-Gamma`.
        model: &'static str,
        /// What about the data makes the fit impossible.
        reason: String,
    },

    /// The optimiser stopped without reaching the maximum of the likelihood
    /// (iteration limit, a failed line search, parameters running off to zero
    /// or infinity).
    #[error("{model} fit did not converge: {reason}")]
    NotConverged {
        /// `BG/NBD` or `Gamma-Gamma`.
        model: &'static str,
        /// What the optimiser reported.
        reason: String,
    },

    /// A computation overflowed or produced NaN; the inputs are too extreme
    /// for double precision.
    #[error("{what} is not a finite number for these inputs")]
    NonFinite {
        /// What was being computed.
        what: &'static str,
    },
}
