//! Identity — OneID: normalisation, the identity graph, and their SQL faces.
//!
//! The algorithm modules (`normalize`, `graph` and its parts) are plain Rust with no
//! DataFusion; `udf.rs` (scalars) and `table.rs` (`oneid`, `oneid_links`, the cached
//! `customer_ids`) are the thin glue.

mod bucket_sort;
pub mod cluster;
pub mod error;
pub mod graph;
pub mod ingest;
pub mod interner;
pub mod keys;
mod linking;
pub mod links;
pub mod merger;
pub mod normalize;
pub mod partwise;
pub mod settings;
mod shards;
pub mod stable_ids;
pub mod union_find;

pub mod table;
pub mod udf;

use datafusion::prelude::SessionContext;

use super::docs::{FunctionDoc, FunctionKind};

/// The identity functions as `\df` lists them.
pub const DOCS: &[FunctionDoc] = &[
    FunctionDoc {
        name: "oneid",
        kind: FunctionKind::Table,
        arguments: "input text",
        result: "TABLE(record_id text, one_id bigint, component_size bigint)",
        description: "OneID: resolve records that share a normalised identifier into customers (input columns record_id, id_type, id_value)",
        volatility: 's',
    },
    FunctionDoc {
        name: "oneid_links",
        kind: FunctionKind::Table,
        arguments: "input text",
        result: "TABLE(record_id text, linked_record_id text, id_type text, id_value text, used boolean, reason text)",
        description: "OneID explained: every pair of records sharing an identifier and why it was or was not used",
        volatility: 's',
    },
    FunctionDoc {
        name: "normalize_phone",
        kind: FunctionKind::Scalar,
        arguments: "phone text, region text DEFAULT NULL",
        result: "text",
        description: "A phone number in E.164 (+8613800138000), or NULL when it is not a valid number; region defaults to userql.default_region",
        volatility: 's',
    },
    FunctionDoc {
        name: "normalize_email",
        kind: FunctionKind::Scalar,
        arguments: "email text",
        result: "text",
        description: "An email address trimmed and lower-cased",
        volatility: 'i',
    },
    FunctionDoc {
        name: "hash_id",
        kind: FunctionKind::Scalar,
        arguments: "id_type text, value text",
        result: "text",
        description: "Lower-case SHA-256 hex of the normalised identifier, the form ad platforms take hashed audiences in",
        volatility: 's',
    },
    FunctionDoc {
        name: "mask_phone",
        kind: FunctionKind::Scalar,
        arguments: "phone text",
        result: "text",
        description: "A phone number with its middle digits masked (138****5678)",
        volatility: 'i',
    },
    FunctionDoc {
        name: "mask_email",
        kind: FunctionKind::Scalar,
        arguments: "email text",
        result: "text",
        description: "An email address with its local part masked (z***@example.com)",
        volatility: 'i',
    },
];

/// Register the identity functions.
pub fn register(ctx: &SessionContext) {
    udf::register(ctx);
    cluster::register(ctx);
    table::register(ctx);
}
