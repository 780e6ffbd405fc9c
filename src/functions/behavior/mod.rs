//! Behaviour — funnels and retention with ClickHouse's `windowFunnel` / `retention`
//! semantics. `funnel` and `retention` are plain Rust; `udaf` is the aggregate glue. The
//! SQL semantics are in `README.md` beside this file.

pub mod funnel;
pub mod retention;
pub mod udaf;

use datafusion::prelude::SessionContext;

use super::docs::{FunctionDoc, FunctionKind};

/// The behaviour functions as `\df` lists them.
pub const DOCS: &[FunctionDoc] = &[
    FunctionDoc {
        name: "window_funnel",
        kind: FunctionKind::Aggregate,
        arguments: "window_seconds bigint, ts timestamp without time zone, VARIADIC conditions boolean[]",
        result: "integer",
        description: "How many steps of a funnel a group's rows reach within the window, as ClickHouse's windowFunnel",
        volatility: 'i',
    },
    FunctionDoc {
        name: "window_funnel",
        kind: FunctionKind::Aggregate,
        arguments: "window_seconds bigint, mode text, ts timestamp without time zone, VARIADIC conditions boolean[]",
        result: "integer",
        description: "window_funnel with ClickHouse's modes (strict_deduplication, strict_order, allow_reentry, strict_increase, strict_once)",
        volatility: 'i',
    },
    FunctionDoc {
        name: "retention",
        kind: FunctionKind::Aggregate,
        arguments: "VARIADIC conditions boolean[]",
        result: "integer[]",
        description: "Retention flags as ClickHouse's retention: element 1 when some row met cond1, element k when some row met cond1 and some row met condk",
        volatility: 'i',
    },
];

/// Register the behaviour aggregates.
pub fn register(ctx: &SessionContext) {
    udaf::register(ctx);
}
