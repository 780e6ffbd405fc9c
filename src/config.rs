//! `userql.toml`: the server section, session-setting defaults and the channels.
//!
//! Parsing is strict (`deny_unknown_fields`) because a misspelt key that is silently
//! ignored is worse than a refusal: the user would believe a channel is mapped when
//! it is not. Every problem becomes one [`ConfigError`] naming the key or column.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default listen address: loopback only, on the port beside PostgreSQL's.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5433";
/// Default name of the one database (DataFusion catalog) the server exposes.
pub const DEFAULT_DATABASE: &str = "userql";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./userql-data";

/// Everything that can be wrong with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown / mistyped key.
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value is syntactically fine but not acceptable.
    #[error("invalid config {key}: {message}")]
    Invalid { key: String, message: String },
}

/// The whole `userql.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listener, data directory, database name, limits.
    #[serde(default)]
    pub server: ServerConfig,
    /// Defaults for `userql.*` session settings (keys with or without the `userql.` prefix).
    #[serde(default)]
    pub settings: BTreeMap<String, toml::Value>,
    /// The sources of customer records.
    #[serde(default)]
    pub channels: Vec<ChannelConfig>,
    /// `[[users]]`: who may connect (none: trust, loopback only).
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// `[privacy]`: what role `read` sees masked.
    #[serde(default)]
    pub privacy: PrivacyConfig,
    /// `[cluster]`: run queries on a Ballista cluster (none: on this machine).
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// Folder the relative paths in this file are resolved against.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Where the server keeps the tables users write, and the demo data.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The database (catalog) name clients connect to.
    #[serde(default = "default_database")]
    pub database: String,
    /// Maximum concurrent client connections.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Memory limit for query execution, e.g. `"4GB"`; unlimited when absent.
    #[serde(default)]
    pub memory_limit: Option<String>,
    /// PEM certificate chain; with `tls_key`, TLS is offered.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Refuse connections that did not negotiate TLS (FATAL 28000 at startup).
    #[serde(default)]
    pub require_tls: bool,
    /// A file channel whose files total at most this many MiB is kept decoded in memory
    /// between queries (re-read when a file changes); 0 reads the files every time.
    #[serde(default = "default_channel_cache_mb")]
    pub channel_cache_mb: u64,
    /// Seconds a stored table's data file stays on disk after the table's commits stop
    /// using it (compaction, DELETE, UPDATE and overwrites replace files); a scan running
    /// longer than this after such a commit could find its files gone.
    #[serde(default = "default_vacuum_retention_secs")]
    pub vacuum_retention_secs: u64,
    /// Threads for the CPU-heavy work of a statement (query partitions, OneID, RFM,
    /// LTV); 0 for every CPU the process may use (affinity and cgroup quota).
    #[serde(default)]
    pub threads: usize,
}

/// `[[users]]`: one login.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The user name clients log in with.
    pub name: String,
    /// `read`, `write` or `admin`.
    pub role: crate::security::Role,
    /// A SCRAM-SHA-256 verifier in PostgreSQL's format (`userql passwd` prints one).
    pub password: String,
}

/// `[cluster]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The scheduler, `df://HOST:PORT` or `HOST:PORT`; queries over channels and stored
    /// tables then run on its executors.
    #[serde(default)]
    pub scheduler: Option<crate::cluster::SchedulerAddr>,
}

/// `[privacy]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Identifier type → masking function (`mask_phone`, `mask_email`, `mask_all`),
    /// applied for role `read`.
    #[serde(default)]
    pub mask: BTreeMap<String, String>,
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_string()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR)
}
fn default_database() -> String {
    DEFAULT_DATABASE.to_string()
}
fn default_channel_cache_mb() -> u64 {
    64
}
fn default_vacuum_retention_secs() -> u64 {
    3600
}
fn default_max_connections() -> usize {
    100
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            data_dir: default_data_dir(),
            database: default_database(),
            max_connections: default_max_connections(),
            memory_limit: None,
            tls_cert: None,
            tls_key: None,
            require_tls: false,
            channel_cache_mb: default_channel_cache_mb(),
            vacuum_retention_secs: default_vacuum_retention_secs(),
            threads: 0,
        }
    }
}

/// File formats a channel can be read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelFormat {
    /// Comma separated, with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// Newline-delimited JSON objects.
    #[serde(alias = "json", alias = "jsonl")]
    Ndjson,
    /// A Delta Lake table directory.
    Delta,
}

impl ChannelFormat {
    /// The format implied by a path's extension, if any.
    pub fn from_path(path: &str) -> Option<Self> {
        let lower = path.to_ascii_lowercase();
        let trimmed = lower.trim_end_matches(['/', '*']);
        if trimmed.ends_with(".csv") || trimmed.ends_with(".csv.gz") {
            Some(Self::Csv)
        } else if trimmed.ends_with(".parquet") {
            Some(Self::Parquet)
        } else if trimmed.ends_with(".ndjson")
            || trimmed.ends_with(".jsonl")
            || trimmed.ends_with(".json")
        {
            Some(Self::Ndjson)
        } else {
            None
        }
    }

    /// The lower-case name used in the config file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Parquet => "parquet",
            Self::Ndjson => "ndjson",
            Self::Delta => "delta",
        }
    }
}

/// `[[channels]]`: one source of customer records.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Table name under schema `channels`.
    pub name: String,
    /// A file, a folder or a glob, relative to the config file.
    pub path: String,
    /// Format; inferred from the extension when absent (a folder with no hint: Delta if it has
    /// a `_delta_log`).
    #[serde(default)]
    pub format: Option<ChannelFormat>,
    /// The channel's own user key column.
    pub record_key: String,
    /// `id_type = "column"` pairs for the `identities` view.
    #[serde(default)]
    pub ids: BTreeMap<String, String>,
    /// The channel's rows are orders.
    #[serde(default)]
    pub orders: Option<OrdersMapping>,
    /// The channel's rows are events.
    #[serde(default)]
    pub events: Option<EventsMapping>,
}

/// `[channels.orders]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersMapping {
    /// Order timestamp column.
    pub ts: String,
    /// Order amount column.
    pub amount: String,
}

/// `[channels.events]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsMapping {
    /// Event timestamp column.
    pub ts: String,
    /// Event name column.
    pub event: String,
}

impl ChannelConfig {
    /// Every column the mapping refers to, with the config key that names it.
    pub fn mapped_columns(&self) -> Vec<(String, &str)> {
        let mut cols = vec![("record_key".to_string(), self.record_key.as_str())];
        for (id_type, col) in &self.ids {
            cols.push((format!("ids.{id_type}"), col.as_str()));
        }
        if let Some(o) = &self.orders {
            cols.push(("orders.ts".into(), o.ts.as_str()));
            cols.push(("orders.amount".into(), o.amount.as_str()));
        }
        if let Some(e) = &self.events {
            cols.push(("events.ts".into(), e.ts.as_str()));
            cols.push(("events.event".into(), e.event.as_str()));
        }
        cols
    }

    /// Columns that must be read as text whatever their values look like (identifiers keep
    /// their leading zeros: `00000000000` is not the number 0).
    pub fn text_columns(&self) -> Vec<&str> {
        let mut cols = vec![self.record_key.as_str()];
        cols.extend(self.ids.values().map(String::as_str));
        if let Some(e) = &self.events {
            cols.push(e.event.as_str());
        }
        cols.sort_unstable();
        cols.dedup();
        cols
    }
}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, path, &base)
    }

    /// Parse config text; `origin` is only used in messages.
    pub fn parse(text: &str, origin: &Path, base_dir: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string().trim().to_string(),
        })?;
        config.base_dir = if base_dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base_dir.to_path_buf()
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks that need more than the TOML types.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let listen = self.listen_addr()?;
        self.validate_security(listen)?;
        if !is_identifier(&self.server.database) {
            return Err(invalid(
                "server.database",
                format!(
                    "{:?} is not a plain lower-case identifier",
                    self.server.database
                ),
            ));
        }
        if self.server.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        if let Some(limit) = &self.server.memory_limit {
            parse_byte_size(limit).map_err(|m| invalid("server.memory_limit", m))?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, ch) in self.channels.iter().enumerate() {
            let key = format!("channels[{i}]");
            if !is_identifier(&ch.name) {
                return Err(invalid(
                    &format!("{key}.name"),
                    format!(
                        "{:?} must be a lower-case identifier (letters, digits, _)",
                        ch.name
                    ),
                ));
            }
            if !seen.insert(ch.name.as_str()) {
                return Err(invalid(
                    &format!("{key}.name"),
                    format!("channel {:?} is declared twice", ch.name),
                ));
            }
            for id_type in ch.ids.keys() {
                if id_type.trim().is_empty() {
                    return Err(invalid(
                        &format!("channels.{}.ids", ch.name),
                        "empty id type",
                    ));
                }
            }
            if ch.format.is_none()
                && ChannelFormat::from_path(&ch.path).is_none()
                && !self.resolve(&ch.path).join("_delta_log").is_dir()
            {
                return Err(invalid(
                    &format!("channels.{}.format", ch.name),
                    format!(
                        "cannot tell the format of {:?} from its name; set format = \"csv\" | \"parquet\" | \"ndjson\" | \"delta\"",
                        ch.path
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Users, TLS and privacy: a plain-text password, a half-configured certificate or a
    /// non-loopback listener without users refuse to start.
    fn validate_security(&self, listen: SocketAddr) -> Result<(), ConfigError> {
        let mut names = std::collections::BTreeSet::new();
        for (i, user) in self.users.iter().enumerate() {
            let key = format!("users[{i}]");
            if user.name.is_empty() || user.name.contains('\0') {
                return Err(invalid(&format!("{key}.name"), "must be a non-empty name"));
            }
            if !names.insert(user.name.as_str()) {
                return Err(invalid(
                    &format!("{key}.name"),
                    format!("user {:?} is declared twice", user.name),
                ));
            }
            if !crate::security::Verifier::looks_like_one(&user.password) {
                return Err(invalid(
                    &format!("users.{}.password", user.name),
                    "plain-text (or md5) passwords are not accepted: store a SCRAM-SHA-256 verifier, as PostgreSQL keeps in pg_authid.rolpassword (`userql passwd` prints one)",
                ));
            }
            if let Err(e) = user.password.parse::<crate::security::Verifier>() {
                return Err(invalid(
                    &format!("users.{}.password", user.name),
                    e.to_string(),
                ));
            }
        }
        if self.users.is_empty() && !listen.ip().is_loopback() {
            return Err(invalid(
                "server.listen",
                format!(
                    "{listen} is not a loopback address, and with no [[users]] configured anyone who reaches it could connect as anyone; add [[users]] with SCRAM-SHA-256 passwords, or listen on 127.0.0.1"
                ),
            ));
        }
        match (&self.server.tls_cert, &self.server.tls_key) {
            (Some(_), None) => {
                return Err(invalid(
                    "server.tls_key",
                    "tls_cert is set but tls_key is not",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "server.tls_cert",
                    "tls_key is set but tls_cert is not",
                ));
            }
            _ => {}
        }
        if self.server.require_tls && self.server.tls_cert.is_none() {
            return Err(invalid(
                "server.require_tls",
                "require_tls = true needs tls_cert and tls_key",
            ));
        }
        crate::security::MaskPolicy::from_config(&self.privacy.mask)
            .map_err(|m| invalid("privacy.mask", m))?;
        Ok(())
    }

    /// The parsed listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server.listen.parse().map_err(|_| {
            invalid(
                "server.listen",
                format!(
                    "{:?} is not an address like 127.0.0.1:5433",
                    self.server.listen
                ),
            )
        })
    }

    /// A path from the config resolved against the config file's folder.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The `[settings]` table as `(userql.name, value-as-text)` pairs.
    pub fn setting_defaults(&self) -> Vec<(String, String)> {
        self.settings
            .iter()
            .map(|(k, v)| {
                let key = if k.starts_with("userql.") {
                    k.clone()
                } else {
                    format!("userql.{k}")
                };
                let value = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (key, value)
            })
            .collect()
    }
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

/// A lower-case SQL identifier that needs no quoting.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Parse `"512MB"`, `"4GB"`, `"1073741824"` into bytes.
pub fn parse_byte_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_uppercase();
    let (num, mult) = [
        ("TB", 1usize << 40),
        ("GB", 1 << 30),
        ("MB", 1 << 20),
        ("KB", 1 << 10),
        ("B", 1),
    ]
    .iter()
    .find_map(|(suffix, m)| t.strip_suffix(suffix).map(|n| (n.trim().to_string(), *m)))
    .unwrap_or((t.clone(), 1));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 512MB or 4GB"))?;
    if n <= 0.0 {
        return Err(format!("{s:?} must be positive"));
    }
    Ok((n * mult as f64) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("userql.toml"), Path::new("."))
    }

    #[test]
    fn empty_config_has_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.server.listen, DEFAULT_LISTEN);
        assert_eq!(c.server.database, "userql");
        assert_eq!(c.server.threads, 0, "every available CPU");
        assert!(c.channels.is_empty());
    }

    #[test]
    fn threads_setting_parses() {
        let c = parse("[server]\nthreads = 3\n").unwrap();
        assert_eq!(c.server.threads, 3);
        let err = parse("[server]\nthreads = -1\n").unwrap_err().to_string();
        assert!(err.contains("threads"), "{err}");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse("[server]\nlisten_on = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_on"), "{err}");
    }

    #[test]
    fn channel_mapping_parses() {
        let c = parse(
            r#"
[[channels]]
name = "tmall"
path = "t.csv"
record_key = "buyer"
ids = { phone = "mobile" }
[channels.orders]
ts = "paid_at"
amount = "payment"
"#,
        )
        .unwrap();
        let ch = &c.channels[0];
        assert_eq!(ch.ids["phone"], "mobile");
        assert_eq!(ch.orders.as_ref().unwrap().amount, "payment");
        assert_eq!(ch.text_columns(), vec!["buyer", "mobile"]);
    }

    #[test]
    fn bad_channel_name_and_duplicates() {
        let err =
            parse("[[channels]]\nname = \"Bad-Name\"\npath = \"a.csv\"\nrecord_key = \"k\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("channels[0].name"), "{err}");
        let dup = "[[channels]]\nname = \"a\"\npath = \"a.csv\"\nrecord_key = \"k\"\n";
        let err = parse(&format!("{dup}{dup}")).unwrap_err().to_string();
        assert!(err.contains("declared twice"), "{err}");
    }

    #[test]
    fn unknown_format_needs_explicit_format() {
        let err = parse("[[channels]]\nname = \"a\"\npath = \"a.dat\"\nrecord_key = \"k\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("channels.a.format"), "{err}");
    }

    #[test]
    fn bad_listen_is_named() {
        let err = parse("[server]\nlisten = \"nowhere\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.listen"), "{err}");
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("1KB").unwrap(), 1024);
        assert_eq!(parse_byte_size("2 gb").unwrap(), 2 << 30);
        assert!(parse_byte_size("lots").is_err());
    }

    #[test]
    fn settings_get_prefix() {
        let c = parse("[settings]\nrfm_bins = 4\n\"userql.default_region\" = \"US\"\n").unwrap();
        let s = c.setting_defaults();
        assert!(s.contains(&("userql.rfm_bins".into(), "4".into())));
        assert!(s.contains(&("userql.default_region".into(), "US".into())));
    }
}
