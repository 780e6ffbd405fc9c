//! The customer-operations SQL functions, one module per family. Each family registers
//! its own functions through `register(ctx)`; [`register_all`] is the only list.
//!
//! Architecture invariant: algorithm code in these modules never imports `pgwire`.

pub mod identity;
pub mod input;

use datafusion::prelude::SessionContext;

/// Register every userql function family on a context.
pub fn register_all(ctx: &SessionContext) {
    identity::register(ctx);
}
