//! RFM — recency, frequency, monetary scores, the R–F segment grid and the eight value
//! classes. `scoring` and `labels` are plain Rust; `table` (`rfm(...)`) and `udf`
//! (`rfm_segment`, `rfm_value_class`) are the SQL faces. The SQL semantics are in
//! `README.md` beside this file.

pub mod labels;
pub mod scoring;
pub mod table;
pub mod totals;
pub mod udf;

use std::sync::Arc;

use datafusion::prelude::SessionContext;

use super::docs::{FunctionDoc, FunctionKind};

/// The RFM functions as `\df` lists them.
pub const DOCS: &[FunctionDoc] = &[
    FunctionDoc {
        name: "rfm",
        kind: FunctionKind::Table,
        arguments: "input text, as_of timestamp without time zone DEFAULT NULL",
        result: "TABLE(customer_id bigint, first_order_ts timestamp without time zone, last_order_ts timestamp without time zone, recency_days bigint, frequency bigint, monetary double precision, r_score integer, f_score integer, m_score integer, rfm_cell text, segment text, value_class text)",
        description: "RFM scores per customer (input columns customer_id, order_ts, amount), tie-consistent quantiles, with segment and value class",
        volatility: 's',
    },
    FunctionDoc {
        name: "rfm_segment",
        kind: FunctionKind::Scalar,
        arguments: "r_score integer, f_score integer",
        result: "text",
        description: "The R-F grid segment (Champions, At Risk, ...) of scores 1..5, in userql.rfm_language",
        volatility: 's',
    },
    FunctionDoc {
        name: "rfm_value_class",
        kind: FunctionKind::Scalar,
        arguments: "recency_days double precision, frequency double precision, monetary double precision, avg_recency_days double precision, avg_frequency double precision, avg_monetary double precision",
        result: "text",
        description: "The eight-class value model (Important Value ... General Recall) against the given averages, in userql.rfm_language",
        volatility: 's',
    },
];

/// Register the RFM functions.
pub fn register(ctx: &SessionContext) {
    ctx.register_udtf("rfm", Arc::new(table::RfmFunction));
    udf::register(ctx);
}
