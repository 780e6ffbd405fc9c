//! LTV — Buy-Till-You-Die models: `clv_summary`, BG/NBD (Fader, Hardie & Lee 2005) and
//! Gamma-Gamma fits, predictions, CLV, and `ltv()` that does it all. The models are plain
//! Rust (`summary`, `bgnbd`, `gamma_gamma`, `clv`, with `optimize`, `expectation` and
//! `collapse` and `whole`); `sql`, `table`, `udaf` and `udf` are the SQL faces. The SQL semantics are
//! in `README.md` beside this file.

pub mod bgnbd;
pub mod buckets;
pub mod clv;
pub mod collapse;
pub mod error;
pub mod expectation;
pub mod gamma_gamma;
pub mod optimize;
pub mod sql;
pub mod summary;
pub mod table;
pub mod udaf;
pub mod udf;
pub mod vector_math;
pub mod whole;

#[cfg(test)]
mod cdnow;

use std::sync::Arc;

use datafusion::prelude::SessionContext;

use super::docs::{FunctionDoc, FunctionKind};

const BGNBD: &str = "record";

/// The LTV functions as `\df` lists them.
pub const DOCS: &[FunctionDoc] = &[
    FunctionDoc {
        name: "clv_summary",
        kind: FunctionKind::Table,
        arguments: "input text, as_of timestamp without time zone DEFAULT NULL, unit text DEFAULT 'day'",
        result: "TABLE(customer_id bigint, frequency bigint, recency double precision, t double precision, monetary_value double precision)",
        description: "Per-customer frequency, recency, age and mean repeat spend as lifetimes' summary_data_from_transaction_data (input columns customer_id, order_ts, amount)",
        volatility: 's',
    },
    FunctionDoc {
        name: "bgnbd_fit",
        kind: FunctionKind::Aggregate,
        arguments: "frequency double precision, recency double precision, t double precision",
        result: BGNBD,
        description: "Maximum-likelihood BG/NBD fit: STRUCT(r, alpha, a, b, log_likelihood, n)",
        volatility: 'i',
    },
    FunctionDoc {
        name: "bgnbd_expected_purchases",
        kind: FunctionKind::Scalar,
        arguments: "params record, horizon double precision, frequency double precision, recency double precision, t double precision",
        result: "double precision",
        description: "Expected purchases in the next horizon units under a BG/NBD fit",
        volatility: 'i',
    },
    FunctionDoc {
        name: "bgnbd_p_alive",
        kind: FunctionKind::Scalar,
        arguments: "params record, frequency double precision, recency double precision, t double precision",
        result: "double precision",
        description: "Probability the customer is still alive under a BG/NBD fit",
        volatility: 'i',
    },
    FunctionDoc {
        name: "gamma_gamma_fit",
        kind: FunctionKind::Aggregate,
        arguments: "frequency double precision, monetary_value double precision",
        result: BGNBD,
        description: "Maximum-likelihood Gamma-Gamma spend fit over customers with repeat purchases: STRUCT(p, q, v, log_likelihood, n)",
        volatility: 'i',
    },
    FunctionDoc {
        name: "gamma_gamma_expected_value",
        kind: FunctionKind::Scalar,
        arguments: "params record, frequency double precision, monetary_value double precision",
        result: "double precision",
        description: "Conditional expected average order value under a Gamma-Gamma fit",
        volatility: 'i',
    },
    FunctionDoc {
        name: "clv",
        kind: FunctionKind::Scalar,
        arguments: "bgnbd_params record, gg_params record, frequency double precision, recency double precision, t double precision, monetary_value double precision, horizon_months double precision, monthly_discount_rate double precision, unit text",
        result: "double precision",
        description: "Discounted expected customer value over the horizon, as lifetimes' customer_lifetime_value",
        volatility: 'i',
    },
    FunctionDoc {
        name: "ltv",
        kind: FunctionKind::Table,
        arguments: "input text, horizon_months integer DEFAULT 12, monthly_discount_rate double precision DEFAULT 0.01, as_of timestamp without time zone DEFAULT NULL, unit text DEFAULT 'day'",
        result: "TABLE(customer_id bigint, frequency bigint, recency double precision, t double precision, monetary_value double precision, p_alive double precision, expected_purchases double precision, expected_avg_value double precision, clv double precision)",
        description: "Summary, BG/NBD and Gamma-Gamma fits and every customer's P(alive), expected purchases, expected order value and CLV in one call",
        volatility: 's',
    },
    FunctionDoc {
        name: "ltv_params",
        kind: FunctionKind::Table,
        arguments: "input text, as_of timestamp without time zone DEFAULT NULL, unit text DEFAULT 'day'",
        result: "TABLE(r double precision, alpha double precision, a double precision, b double precision, bgnbd_log_likelihood double precision, bgnbd_customers bigint, p double precision, q double precision, v double precision, gamma_gamma_log_likelihood double precision, gamma_gamma_customers bigint)",
        description: "The parameters ltv() fits on the same input",
        volatility: 's',
    },
];

/// Register the LTV functions.
pub fn register(ctx: &SessionContext) {
    ctx.register_udtf(
        "clv_summary",
        Arc::new(table::LtvFunction(table::Kind::Summary)),
    );
    ctx.register_udtf("ltv", Arc::new(table::LtvFunction(table::Kind::Ltv)));
    ctx.register_udtf(
        "ltv_params",
        Arc::new(table::LtvFunction(table::Kind::Params)),
    );
    udaf::register(ctx);
    udf::register(ctx);
}
