//! PostgreSQL's text forms of values, both ways, in one place.
//!
//! Every path that turns text into a stored value — a string literal written into a typed
//! column (`INSERT`, `UPDATE`, `'...'::type`), `COPY FROM` in text and CSV, text-format
//! parameters — reads it with [`input`]; every path that turns a value into text — text
//! result columns on the wire, `COPY TO` — writes it with [`output`]. Both follow
//! PostgreSQL 15's `*_in` / `*_out` functions for the types userql stores, so a value
//! written as text reads back as the same text, and what PostgreSQL would refuse is an
//! error (22P02, 22003, 22007, 22008), never a silently different value.

pub mod array_literal;
pub mod datetime;
pub mod input;
pub mod output;

use datafusion::arrow::array::timezone::Tz;
use datafusion::config::ConfigOptions;

pub use output::{ColumnText, TextOptions};

/// The session's time zone as DataFusion keeps it (`TimeZone`, UTC by default).
pub fn session_zone(options: &ConfigOptions) -> Tz {
    options
        .execution
        .time_zone
        .as_deref()
        .and_then(|z| z.parse::<Tz>().ok())
        .unwrap_or_else(utc)
}

/// UTC.
pub fn utc() -> Tz {
    "+00:00".parse().expect("a fixed offset parses")
}
