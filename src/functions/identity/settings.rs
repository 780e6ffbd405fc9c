//! The `userql.*` settings that steer OneID, parsed from their SQL text forms.
//!
//! Parsing lives here (not in the glue) so that every rule about what a
//! setting means is next to the algorithm that uses it, and so a bad value is
//! reported with the setting's name before any data is read.

use super::error::OneIdError;
use super::normalize::{DEFAULT_REGION, Region, canonical_type, parse_region_for, type_family};

/// Default region for phone numbers written without a country code.
pub const SETTING_DEFAULT_REGION: &str = "userql.default_region";
/// A value shared by more distinct records than this does not link.
pub const SETTING_MAX_RECORDS_PER_VALUE: &str = "userql.oneid_max_records_per_value";
/// Extra junk values, comma separated.
pub const SETTING_BLOCKED_VALUES: &str = "userql.oneid_blocked_values";
/// Per-type caps on distinct values a customer may hold, `type:n,...`.
pub const SETTING_TYPE_LIMITS: &str = "userql.oneid_type_limits";
/// Order in which link types are applied, `type,type,...`.
pub const SETTING_TYPE_PRIORITY: &str = "userql.oneid_type_priority";

/// Default of [`SETTING_MAX_RECORDS_PER_VALUE`]: a household or a shop counter
/// shares a phone among a few people; fifty is far past that and still small
/// enough to stop a placeholder value from merging thousands of customers.
pub const DEFAULT_MAX_RECORDS_PER_VALUE: u32 = 50;

/// Default of [`SETTING_TYPE_PRIORITY`]: strongest evidence first. A member
/// number is issued to one person; a phone almost always is; emails and
/// platform OpenIDs are personal; device ids are shared within families.
pub const DEFAULT_TYPE_PRIORITY: &str = "member_no,phone,email,openid,device_id";

/// Every OneID setting with its default text, for `SET`/`SHOW` registration
/// and for `userql.toml` `[settings]` validation. Type limits and blocked
/// values are empty by default: no merge protection beyond the junk guard
/// until an operator states what is true of their data.
pub const SETTING_DEFAULTS: [(&str, &str); 5] = [
    (SETTING_DEFAULT_REGION, DEFAULT_REGION),
    (SETTING_MAX_RECORDS_PER_VALUE, "50"),
    (SETTING_BLOCKED_VALUES, ""),
    (SETTING_TYPE_LIMITS, ""),
    (SETTING_TYPE_PRIORITY, DEFAULT_TYPE_PRIORITY),
];

/// All knobs of one resolution, already validated.
///
/// Type names in limits and priority are canonical families: trimmed,
/// lower-case, with a `_sha256` suffix removed (a hashed phone *is* a phone,
/// so `phone_sha256` and `phone` share one limit and one priority).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Region for phone numbers without a country code.
    pub default_region: Region,
    /// A normalised value held by more distinct records than this is not used
    /// for linking (reason `shared_too_widely`). At least 1.
    pub max_records_per_value: u32,
    /// Extra junk values: trimmed, lower-case, empty entries dropped. A row's
    /// value is blocked when its trimmed lower-case raw text equals an entry,
    /// or when its normalised form equals the entry normalised as the row's
    /// type (so `13800000000` blocks `+86 138 0000 0000` among phones).
    pub blocked_values: Vec<String>,
    /// `(family, limit)`, sorted by family, limits ≥ 1.
    pub type_limits: Vec<(String, u32)>,
    /// Families in the order their links are applied; families not listed
    /// come after, in name order.
    pub type_priority: Vec<String>,
    /// Threads for normalising values; 0 means the server's (`[server] threads`). Not a SQL
    /// setting: embedding code (and the benches) may want to pin it.
    pub threads: usize,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            default_region: Region::default(),
            max_records_per_value: DEFAULT_MAX_RECORDS_PER_VALUE,
            blocked_values: Vec::new(),
            type_limits: Vec::new(),
            type_priority: parse_type_priority(DEFAULT_TYPE_PRIORITY).unwrap_or_default(),
            threads: 0,
        }
    }
}

impl ResolverConfig {
    /// The threads to resolve on: [`ResolverConfig::threads`], or the server's.
    pub fn thread_count(&self) -> usize {
        match self.threads {
            0 => crate::threads::available(),
            t => t,
        }
        .clamp(1, 64)
    }

    /// Builds a config from `(name, text)` settings over the defaults; names as
    /// in [`ResolverConfig::set`].
    pub fn from_settings<'a, I>(settings: I) -> Result<Self, OneIdError>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut config = ResolverConfig::default();
        for (name, value) in settings {
            config.set(name, value)?;
        }
        Ok(config)
    }

    /// Applies one setting from its SQL text. The name may be given with or
    /// without the `userql.` prefix, in any case. Unknown names are an error
    /// so typos do not silently fall back to defaults.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), OneIdError> {
        let lowered = name.trim().to_ascii_lowercase();
        let short = lowered.strip_prefix("userql.").unwrap_or(&lowered);
        match short {
            "default_region" => {
                self.default_region = parse_region_for(SETTING_DEFAULT_REGION, value)?;
            }
            "oneid_max_records_per_value" => {
                self.max_records_per_value = parse_max_records_per_value(value)?;
            }
            "oneid_blocked_values" => self.blocked_values = parse_blocked_values(value),
            "oneid_type_limits" => self.type_limits = parse_type_limits(value)?,
            "oneid_type_priority" => self.type_priority = parse_type_priority(value)?,
            _ => {
                return Err(OneIdError::UnknownSetting {
                    name: name.to_string(),
                    known: SETTING_DEFAULTS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        Ok(())
    }

    /// The limit for a family, if any.
    pub fn limit_for(&self, family: &str) -> Option<u32> {
        self.type_limits
            .binary_search_by(|(f, _)| f.as_str().cmp(family))
            .ok()
            .and_then(|i| self.type_limits.get(i))
            .map(|(_, l)| *l)
    }
}

/// Canonical family of a type name written in a setting.
fn setting_family(raw: &str) -> String {
    type_family(&canonical_type(raw)).to_string()
}

/// Parses [`SETTING_MAX_RECORDS_PER_VALUE`]: a whole number ≥ 1.
pub fn parse_max_records_per_value(value: &str) -> Result<u32, OneIdError> {
    match value.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(OneIdError::InvalidSetting {
            setting: SETTING_MAX_RECORDS_PER_VALUE,
            value: value.to_string(),
            reason: "expected a whole number between 1 and 4294967295".to_string(),
        }),
    }
}

/// Parses [`SETTING_BLOCKED_VALUES`]: comma-separated, each trimmed and
/// lower-cased; empty entries are ignored (so a trailing comma is harmless).
/// Never fails: any text is a list of values.
pub fn parse_blocked_values(value: &str) -> Vec<String> {
    let mut out: Vec<String> = value
        .split(',')
        .map(|v| v.trim().to_lowercase())
        .filter(|v| !v.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Parses [`SETTING_TYPE_LIMITS`]: `type:n` pairs, comma separated, n ≥ 1;
/// the empty string means no limits. A family listed twice is an error (it
/// would be ambiguous which limit holds), including `phone` with
/// `phone_sha256`.
pub fn parse_type_limits(value: &str) -> Result<Vec<(String, u32)>, OneIdError> {
    let err = |reason: String| OneIdError::InvalidSetting {
        setting: SETTING_TYPE_LIMITS,
        value: value.to_string(),
        reason,
    };
    let mut out: Vec<(String, u32)> = Vec::new();
    if value.trim().is_empty() {
        return Ok(out);
    }
    for entry in value.split(',') {
        let entry = entry.trim();
        let Some((name, limit)) = entry.split_once(':') else {
            return Err(err(format!(
                "entry {entry:?} is not of the form type:limit (e.g. 'member_no:1,phone:3')"
            )));
        };
        let family = setting_family(name);
        if family.is_empty() {
            return Err(err(format!("entry {entry:?} has an empty type name")));
        }
        let limit = match limit.trim().parse::<u32>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(err(format!(
                    "limit in {entry:?} must be a whole number of at least 1"
                )));
            }
        };
        if out.iter().any(|(f, _)| *f == family) {
            return Err(err(format!("type {family:?} is listed more than once")));
        }
        out.push((family, limit));
    }
    out.sort();
    Ok(out)
}

/// Parses [`SETTING_TYPE_PRIORITY`]: type names, comma separated, strongest
/// first; the empty string means "all types in name order". Empty entries and
/// repeated families are errors (a typo there silently changes which links
/// win).
pub fn parse_type_priority(value: &str) -> Result<Vec<String>, OneIdError> {
    let err = |reason: String| OneIdError::InvalidSetting {
        setting: SETTING_TYPE_PRIORITY,
        value: value.to_string(),
        reason,
    };
    let mut out: Vec<String> = Vec::new();
    if value.trim().is_empty() {
        return Ok(out);
    }
    for entry in value.split(',') {
        let family = setting_family(entry);
        if family.is_empty() {
            return Err(err("contains an empty type name".to_string()));
        }
        if out.contains(&family) {
            return Err(err(format!("type {family:?} is listed more than once")));
        }
        out.push(family);
    }
    Ok(out)
}

/// What an override row asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OverrideAction {
    /// Force the two records into one customer (unless a split forbids it).
    Link,
    /// Keep the two records in different customers, whatever links them.
    Split,
}

impl OverrideAction {
    /// Parses the `action` column: `link` or `split`, trimmed, any case.
    pub fn parse(value: &str) -> Result<Self, OneIdError> {
        let t = value.trim();
        if t.eq_ignore_ascii_case("link") {
            Ok(OverrideAction::Link)
        } else if t.eq_ignore_ascii_case("split") {
            Ok(OverrideAction::Split)
        } else {
            Err(OneIdError::InvalidOverrideAction {
                value: value.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = ResolverConfig::default();
        assert_eq!(c.default_region.code(), "CN");
        assert_eq!(c.max_records_per_value, 50);
        assert!(c.blocked_values.is_empty());
        assert!(c.type_limits.is_empty());
        assert_eq!(
            c.type_priority,
            vec!["member_no", "phone", "email", "openid", "device_id"]
        );
        // The default texts parse to the defaults.
        let from_text = ResolverConfig::from_settings(SETTING_DEFAULTS.iter().copied());
        assert_eq!(from_text, Ok(c));
    }

    #[test]
    fn set_by_name_with_or_without_prefix() {
        let mut c = ResolverConfig::default();
        assert!(c.set("USERQL.default_region", "us").is_ok());
        assert_eq!(c.default_region.code(), "US");
        assert!(c.set("oneid_max_records_per_value", " 7 ").is_ok());
        assert_eq!(c.max_records_per_value, 7);
        assert!(matches!(
            c.set("userql.oneid_max_record_per_value", "7"),
            Err(OneIdError::UnknownSetting { .. })
        ));
        assert!(matches!(
            c.set("userql.default_region", "XX"),
            Err(OneIdError::UnknownRegion {
                setting: SETTING_DEFAULT_REGION,
                ..
            })
        ));
    }

    #[test]
    fn max_records_per_value_errors_name_the_setting() {
        for bad in ["0", "-1", "abc", "", "1.5", "99999999999"] {
            match parse_max_records_per_value(bad) {
                Err(OneIdError::InvalidSetting { setting, value, .. }) => {
                    assert_eq!(setting, SETTING_MAX_RECORDS_PER_VALUE);
                    assert_eq!(value, bad);
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
        assert_eq!(parse_max_records_per_value("1"), Ok(1));
    }

    #[test]
    fn blocked_values_are_trimmed_lowercased_deduplicated() {
        assert_eq!(
            parse_blocked_values(" Test , ,test,13800000000,"),
            vec!["13800000000".to_string(), "test".to_string()]
        );
        assert!(parse_blocked_values("").is_empty());
    }

    #[test]
    fn type_limits() {
        assert_eq!(
            parse_type_limits(" Phone:3 , member_no:1"),
            Ok(vec![("member_no".to_string(), 1), ("phone".to_string(), 3)])
        );
        assert_eq!(parse_type_limits(""), Ok(vec![]));
        assert_eq!(
            parse_type_limits("phone_sha256:2"),
            Ok(vec![("phone".to_string(), 2)])
        );
        for bad in [
            "phone",
            "phone:0",
            "phone:x",
            ":3",
            "phone:3,phone_sha256:2",
            "phone:3,",
        ] {
            assert!(
                matches!(
                    parse_type_limits(bad),
                    Err(OneIdError::InvalidSetting {
                        setting: SETTING_TYPE_LIMITS,
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        let mut c = ResolverConfig::default();
        assert!(c.set(SETTING_TYPE_LIMITS, "member_no:1,phone:3").is_ok());
        assert_eq!(c.limit_for("phone"), Some(3));
        assert_eq!(c.limit_for("email"), None);
    }

    #[test]
    fn type_priority() {
        assert_eq!(
            parse_type_priority("Phone, email_sha256"),
            Ok(vec!["phone".to_string(), "email".to_string()])
        );
        assert_eq!(parse_type_priority("  "), Ok(vec![]));
        for bad in ["phone,,email", "phone,PHONE", "phone,"] {
            assert!(parse_type_priority(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn override_actions() {
        assert_eq!(OverrideAction::parse(" LINK "), Ok(OverrideAction::Link));
        assert_eq!(OverrideAction::parse("split"), Ok(OverrideAction::Split));
        assert!(matches!(
            OverrideAction::parse("merge"),
            Err(OneIdError::InvalidOverrideAction { .. })
        ));
    }
}
