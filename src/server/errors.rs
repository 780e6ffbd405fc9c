//! Engine errors onto the wire: a [`UserqlError`] becomes an ErrorResponse with its SQLSTATE.
//!
//! The SQLSTATE itself is decided in `crate::error`; this module only converts, and
//! [`ErrorMapper`] catches errors that reach pgwire still boxed (a failure while rows
//! are being streamed, a parameter that does not decode) so none goes out as XX000
//! when we know better.

use pgwire::api::{ClientInfo, ErrorHandler};
use pgwire::error::{ErrorInfo, PgWireError};

use crate::error::{UserqlError, from_boxed};

/// `ERROR`-severity wire error for an engine error.
pub fn to_pg(e: UserqlError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(e)))
}

/// The ErrorResponse fields for an engine error.
pub fn error_info(e: UserqlError) -> ErrorInfo {
    let mut info = ErrorInfo::new("ERROR".to_string(), e.code.to_string(), e.message);
    info.hint = e.hint;
    info
}

/// A `FATAL` error, which ends the connection (authentication, unknown database).
pub fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_string(),
        code.to_string(),
        message.into(),
    )))
}

/// The one `ErrorHandler`: reclassifies boxed errors and logs every error sent.
#[derive(Debug, Default)]
pub struct ErrorMapper;

impl ErrorHandler for ErrorMapper {
    fn on_error<C>(&self, client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        if let PgWireError::ApiError(inner) = error {
            let mapped = from_boxed(inner.as_ref());
            *error = to_pg(mapped);
        }
        tracing::debug!(peer = %client.socket_addr(), "sending error: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::error::DataFusionError;

    #[test]
    fn boxed_datafusion_errors_keep_their_code() {
        let mut err = PgWireError::ApiError(Box::new(DataFusionError::Plan(
            "table 'x' not found".into(),
        )));
        if let PgWireError::ApiError(inner) = &err {
            let mapped = from_boxed(inner.as_ref());
            err = to_pg(mapped);
        }
        let info: ErrorInfo = err.into();
        assert_eq!(info.code, "42P01");
    }
}
