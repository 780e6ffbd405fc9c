//! The customer-operations SQL functions, one module per family. Each family registers
//! its own functions through `register(ctx)`; [`register_all`] is the only list.
//!
//! Architecture invariant: algorithm code in these modules never imports `pgwire`.

pub mod args;
pub mod behavior;
pub mod compensated_sum;
pub mod docs;
pub mod identity;
pub mod input;
pub mod lifecycle;
pub mod ltv;
pub(crate) mod mix;
pub(crate) mod prefetch;
pub mod rfm;

use datafusion::prelude::SessionContext;

/// Register every userql function family on a context.
pub fn register_all(ctx: &SessionContext) {
    identity::register(ctx);
    rfm::register(ctx);
    lifecycle::register(ctx);
    behavior::register(ctx);
    ltv::register(ctx);
}
