//! Errors of the OneID core: bad settings, bad override rows, inputs too big for
//! the compact (u32-indexed) representation.
//!
//! The DataFusion glue converts these once into its own error type; every
//! variant names the setting and the value so the SQL user knows what to fix.

use thiserror::Error;

/// Everything the identity-resolution core can refuse.
///
/// Normalisation itself never errors (an unusable identifier is `None`, not an
/// error); only configuration and capacity problems do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OneIdError {
    /// A region that is not an ISO 3166 two-letter code known to the phone
    /// metadata; named separately because it is the most common typo.
    #[error(
        "invalid value {value:?} for {setting}: expected an ISO 3166 two-letter region code known to the phone number metadata, such as 'CN' or 'US'"
    )]
    UnknownRegion {
        /// The setting or argument that carried the region.
        setting: &'static str,
        /// The text as given.
        value: String,
    },

    /// A setting whose text could not be parsed.
    #[error("invalid value {value:?} for {setting}: {reason}")]
    InvalidSetting {
        /// Full setting name, e.g. `userql.oneid_type_limits`.
        setting: &'static str,
        /// The text as given.
        value: String,
        /// What is wrong and what is expected.
        reason: String,
    },

    /// A setting name this module does not know.
    #[error("unknown OneID setting {name:?}; known settings: {known}")]
    UnknownSetting {
        /// The name as given.
        name: String,
        /// Comma-separated list of the known names.
        known: String,
    },

    /// An override row whose action is neither `link` nor `split`.
    #[error("invalid override action {value:?}: expected 'link' or 'split'")]
    InvalidOverrideAction {
        /// The action text as given.
        value: String,
    },

    /// The input does not fit the compact representation (u32 indices, 4 GiB
    /// string arenas); far beyond what one machine resolves in memory.
    #[error("OneID input too large: {what}")]
    CapacityExceeded {
        /// Which limit was hit.
        what: &'static str,
    },

    /// A broken invariant inside the resolver: a bug, never the input's fault.
    #[error("internal OneID error: {0}")]
    Internal(&'static str),
}
