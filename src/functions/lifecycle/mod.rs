//! Lifecycle — stages (new, growing, mature, at_risk, churned), reactivation and growth
//! accounting per period. `stage` and `flow` are plain Rust; `activity` collects each
//! customer's sorted activity; `table` (`lifecycle`, `lifecycle_flow`) and `udf`
//! (`lifecycle_stage`) are the SQL faces. The SQL semantics are in `README.md` beside
//! this file.

pub mod activity;
pub mod flow;
pub mod stage;
pub mod table;
pub mod udf;

use std::sync::Arc;

use datafusion::prelude::SessionContext;

use super::docs::{FunctionDoc, FunctionKind};

/// The lifecycle functions as `\df` lists them.
pub const DOCS: &[FunctionDoc] = &[
    FunctionDoc {
        name: "lifecycle_stage",
        kind: FunctionKind::Scalar,
        arguments: "first_order_ts timestamp without time zone, last_order_ts timestamp without time zone, order_count bigint, as_of timestamp without time zone",
        result: "text",
        description: "The lifecycle stage (new, growing, mature, at_risk, churned) under the userql.lifecycle_* settings",
        volatility: 's',
    },
    FunctionDoc {
        name: "lifecycle",
        kind: FunctionKind::Table,
        arguments: "input text, as_of timestamp without time zone DEFAULT NULL, period interval DEFAULT '30 days'",
        result: "TABLE(customer_id bigint, stage text, previous_stage text, reactivated boolean)",
        description: "Each customer's lifecycle stage at as_of and one period earlier, and whether they came back (input columns customer_id, order_ts)",
        volatility: 's',
    },
    FunctionDoc {
        name: "lifecycle_flow",
        kind: FunctionKind::Table,
        arguments: "input text, period interval, from_ts timestamp without time zone, to_ts timestamp without time zone",
        result: "TABLE(period_start timestamp without time zone, active bigint, new bigint, retained bigint, reactivated bigint, dormant bigint)",
        description: "Growth accounting per period: active = new + retained + reactivated, and dormant customers",
        volatility: 's',
    },
];

/// Register the lifecycle functions.
pub fn register(ctx: &SessionContext) {
    udf::register(ctx);
    ctx.register_udtf("lifecycle", Arc::new(table::LifecycleFunction));
    ctx.register_udtf("lifecycle_flow", Arc::new(table::LifecycleFlowFunction));
}
