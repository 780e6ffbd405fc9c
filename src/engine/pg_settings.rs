//! The PostgreSQL settings clients send and read (`search_path`, `application_name`,
//! `DateStyle`, `extra_float_digits`, `statement_timeout`, ...).
//!
//! They are stored, like `userql.*`, as a DataFusion config extension, so `SHOW`,
//! `current_setting()` and `pg_settings` all read one per-session copy. Most are
//! accepted and reported back without changing behaviour (userql always speaks UTF8 and
//! ISO dates); the ones with an effect are `search_path` (default schema),
//! `statement_timeout` and `TimeZone`.

use std::any::Any;
use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::error::{DataFusionError, Result};

/// `(name, default, description)` for every PostgreSQL setting userql knows.
pub const PG_SETTINGS: &[(&str, &str, &str)] = &[
    ("application_name", "", "Name of the client application"),
    (
        "client_encoding",
        "UTF8",
        "Client character set (only UTF8)",
    ),
    (
        "client_min_messages",
        "notice",
        "Lowest message level sent to the client",
    ),
    ("datestyle", "ISO, MDY", "Display format for dates"),
    (
        "default_transaction_isolation",
        "read committed",
        "Isolation of new transactions",
    ),
    (
        "default_transaction_read_only",
        "off",
        "Whether new transactions are read-only",
    ),
    (
        "extra_float_digits",
        "1",
        "Extra digits for floating-point output",
    ),
    (
        "idle_in_transaction_session_timeout",
        "0",
        "Accepted for compatibility",
    ),
    ("integer_datetimes", "on", "Datetimes are 64-bit integers"),
    (
        "jit",
        "off",
        "Accepted for compatibility: userql compiles no queries",
    ),
    ("intervalstyle", "postgres", "Display format for intervals"),
    ("lc_collate", "C", "Collation locale"),
    ("lc_ctype", "C", "Character classification locale"),
    ("lc_messages", "C", "Message locale"),
    ("lc_monetary", "C", "Monetary locale"),
    ("lc_numeric", "C", "Numeric locale"),
    ("lc_time", "C", "Time locale"),
    ("lock_timeout", "0", "Accepted for compatibility"),
    ("max_identifier_length", "63", "Longest identifier"),
    ("max_index_keys", "32", "Most columns in an index key"),
    (
        "search_path",
        "\"$user\", public",
        "Schemas searched for unqualified names",
    ),
    ("server_encoding", "UTF8", "Server character set"),
    (
        "server_version",
        "15.0",
        "PostgreSQL version userql is compatible with",
    ),
    (
        "server_version_num",
        "150000",
        "PostgreSQL version as a number",
    ),
    (
        "session_authorization",
        "userql",
        "The user of this session",
    ),
    (
        "standard_conforming_strings",
        "on",
        "Backslashes in literals are plain characters",
    ),
    (
        "statement_timeout",
        "0",
        "Cancel statements running longer than this (0: never)",
    ),
    ("synchronous_commit", "on", "Accepted for compatibility"),
    ("timezone", "UTC", "Time zone for timestamps with time zone"),
    (
        "transaction_isolation",
        "read committed",
        "Isolation of the current transaction",
    ),
    (
        "transaction_read_only",
        "off",
        "Whether the transaction is read-only",
    ),
];

/// Settings that only `SHOW` may read.
const READ_ONLY: &[&str] = &[
    "integer_datetimes",
    "lc_collate",
    "lc_ctype",
    "max_identifier_length",
    "max_index_keys",
    "server_encoding",
    "server_version",
    "server_version_num",
    "session_authorization",
];

/// Canonical lower-case name of a PostgreSQL setting, accepting the aliases clients use.
pub fn canonical_name(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    match lower.as_str() {
        "time zone" | "time_zone" => "timezone".into(),
        "transaction isolation level" => "transaction_isolation".into(),
        "names" => "client_encoding".into(),
        _ => lower,
    }
}

/// Whether `name` (canonical) is a PostgreSQL setting userql knows.
pub fn is_known(name: &str) -> bool {
    PG_SETTINGS.iter().any(|(n, _, _)| *n == name)
}

/// A session's PostgreSQL settings.
#[derive(Debug, Clone)]
pub struct PgSettings {
    values: BTreeMap<&'static str, String>,
    /// The connection's process id as the client knows it (`pg_backend_pid()`).
    backend_pid: i32,
}

impl Default for PgSettings {
    fn default() -> Self {
        Self {
            values: PG_SETTINGS
                .iter()
                .map(|(n, d, _)| (*n, d.to_string()))
                .collect(),
            backend_pid: 0,
        }
    }
}

impl ConfigExtension for PgSettings {
    const PREFIX: &'static str = "pg";
}

impl PgSettings {
    /// The value of a setting (canonical name).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Validate and store a value; `name` is canonical.
    pub fn set_value(&mut self, name: &str, value: &str) -> Result<()> {
        let Some((key, _, _)) = PG_SETTINGS.iter().find(|(n, _, _)| *n == name) else {
            return Err(DataFusionError::Configuration(format!(
                "unrecognized configuration parameter \"{name}\""
            )));
        };
        if READ_ONLY.contains(key) {
            return Err(DataFusionError::Configuration(format!(
                "parameter \"{name}\" cannot be changed"
            )));
        }
        let value = match *key {
            "client_encoding" => {
                let v = value
                    .trim()
                    .trim_matches('\'')
                    .to_ascii_uppercase()
                    .replace(['-', '_'], "");
                if v != "UTF8" && v != "UNICODE" {
                    return Err(DataFusionError::Configuration(format!(
                        "invalid value for parameter \"client_encoding\": \"{value}\" (userql speaks UTF8 only)"
                    )));
                }
                "UTF8".to_string()
            }
            "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => {
                let d = parse_duration_ms(value).ok_or_else(|| {
                    DataFusionError::Configuration(format!(
                        "invalid value for parameter \"{name}\": \"{value}\" (expected milliseconds or a duration such as '30s', '5min')"
                    ))
                })?;
                d.as_millis().to_string()
            }
            "extra_float_digits" => match value.trim().parse::<i32>() {
                Ok(n) if (-15..=3).contains(&n) => n.to_string(),
                _ => {
                    return Err(DataFusionError::Configuration(format!(
                        "invalid value for parameter \"extra_float_digits\": \"{value}\" (expected -15 to 3)"
                    )));
                }
            },
            _ => value.to_string(),
        };
        self.values.insert(key, value);
        Ok(())
    }

    /// Record the connected user (read-only for `SET`).
    pub fn set_user(&mut self, user: &str) {
        self.values
            .insert("session_authorization", user.to_string());
    }

    /// Record the connection's process id (what CancelRequest names it by).
    pub fn set_backend_pid(&mut self, pid: i32) {
        self.backend_pid = pid;
    }

    /// The connection's process id.
    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }

    /// `statement_timeout`, or `None` when disabled.
    pub fn statement_timeout(&self) -> Option<Duration> {
        let ms: u64 = self.get("statement_timeout")?.parse().ok()?;
        (ms > 0).then(|| Duration::from_millis(ms))
    }
}

/// Parse a PostgreSQL duration: a bare number is milliseconds; units ms, s, min, h, d.
pub fn parse_duration_ms(value: &str) -> Option<Duration> {
    let v = value.trim().trim_matches('\'').trim().to_ascii_lowercase();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    if n < 0.0 {
        return None;
    }
    let ms = match unit.trim() {
        "" | "ms" => n,
        "s" | "sec" | "secs" | "second" | "seconds" => n * 1e3,
        "min" | "mins" | "minute" | "minutes" => n * 60e3,
        "h" | "hour" | "hours" => n * 3600e3,
        "d" | "day" | "days" => n * 86400e3,
        _ => return None,
    };
    Some(Duration::from_millis(ms as u64))
}

impl ExtensionOptions for PgSettings {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        self.set_value(&canonical_name(key), value)
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        PG_SETTINGS
            .iter()
            .map(|(n, _, d)| ConfigEntry {
                key: n.to_string(),
                value: self.get(n).map(str::to_string),
                description: d,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("1500"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration_ms("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration_ms("'1min'"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration_ms("soon"), None);
    }

    #[test]
    fn set_and_validate() {
        let mut s = PgSettings::default();
        s.set_value("statement_timeout", "2s").unwrap();
        assert_eq!(s.statement_timeout(), Some(Duration::from_secs(2)));
        assert!(s.set_value("client_encoding", "LATIN1").is_err());
        s.set_value("client_encoding", "utf-8").unwrap();
        assert!(s.set_value("server_version", "16").is_err());
        assert!(s.set_value("no_such_thing", "1").is_err());
        assert_eq!(canonical_name("DateStyle"), "datestyle");
        assert_eq!(canonical_name("TIME ZONE"), "timezone");
    }
}
