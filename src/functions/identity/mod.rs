//! Identity — OneID: normalisation, the identity graph, and their SQL faces.
//!
//! The algorithm modules (`normalize`, `graph` and its parts) are plain Rust with no
//! DataFusion; `udf.rs` (scalars) and `table.rs` (`oneid`, `oneid_links`, the cached
//! `customer_ids`) are the thin glue.

pub mod error;
pub mod graph;
pub mod interner;
pub mod keys;
pub mod links;
pub mod merger;
pub mod normalize;
pub mod settings;
pub mod stable_ids;
pub mod union_find;

pub mod table;
pub mod udf;

use datafusion::prelude::SessionContext;

/// Register the identity functions.
pub fn register(ctx: &SessionContext) {
    udf::register(ctx);
    table::register(ctx);
}
