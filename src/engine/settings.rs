//! The `userql.*` session settings.
//!
//! They live in DataFusion's config as an extension with prefix `userql`, so every
//! session carries its own copy (cloned from the server defaults), `SET userql.x = v`
//! changes only that session, and functions read them from the `Session` they are
//! planned in — no globals. Each setting is validated when it is set, so a typo is
//! refused at `SET` time (SQLSTATE 22023) rather than at the first query that uses it.

use std::any::Any;
use std::collections::BTreeMap;

use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::error::{DataFusionError, Result};

/// How a setting's text value is checked.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A whole number in `min..=max`.
    Int { min: i64, max: i64 },
    /// One of a fixed set of words.
    OneOf(&'static [&'static str]),
    /// A two-letter region code (ISO 3166-1 alpha-2), upper-cased on the way in.
    Region,
    /// `type:n,type:n`.
    TypeLimits,
    /// Free text (lists, table names); checked by the function that uses it.
    Text,
}

/// One known setting.
#[derive(Debug)]
pub struct SettingSpec {
    /// Name without the `userql.` prefix.
    pub name: &'static str,
    /// Default value as text.
    pub default: &'static str,
    /// What it does, shown by `SHOW ALL` and `pg_settings`.
    pub description: &'static str,
    kind: Kind,
}

/// Every `userql.*` setting, in the order `SHOW ALL` lists them.
pub const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        name: "default_region",
        default: "CN",
        description: "Region (ISO 3166 code) for phone numbers written without a country code",
        kind: Kind::Region,
    },
    SettingSpec {
        name: "oneid_max_records_per_value",
        default: "50",
        description: "OneID ignores an identifier value shared by more records than this",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
    },
    SettingSpec {
        name: "oneid_blocked_values",
        default: "",
        description: "Comma-separated identifier values OneID never links on (besides the built-in junk list)",
        kind: Kind::Text,
    },
    SettingSpec {
        name: "oneid_type_limits",
        default: "",
        description: "Merge protection, e.g. 'member_no:1,phone:3': most distinct values of a type one customer may hold",
        kind: Kind::TypeLimits,
    },
    SettingSpec {
        name: "oneid_type_priority",
        default: "member_no,phone,email,unionid,openid,device_id",
        description: "Order in which OneID applies links by identifier type (unlisted types follow, by name)",
        kind: Kind::Text,
    },
    SettingSpec {
        name: "oneid_overrides",
        default: "",
        description: "Table (record_a, record_b, action) of manual 'link' / 'split' overrides for OneID",
        kind: Kind::Text,
    },
    SettingSpec {
        name: "oneid_previous",
        default: "",
        description: "Table (record_id, one_id) of an earlier OneID run, to keep customer ids stable",
        kind: Kind::Text,
    },
    SettingSpec {
        name: "rfm_bins",
        default: "5",
        description: "Number of RFM score bins (2 to 100; segments need 5)",
        kind: Kind::Int { min: 2, max: 100 },
    },
    SettingSpec {
        name: "rfm_language",
        default: "en",
        description: "Language of RFM segment and value-class labels: en or zh",
        kind: Kind::OneOf(&["en", "zh"]),
    },
    SettingSpec {
        name: "lifecycle_new_days",
        default: "30",
        description: "Lifecycle: a first order within this many days is 'new'",
        kind: Kind::Int {
            min: 1,
            max: 100_000,
        },
    },
    SettingSpec {
        name: "lifecycle_active_days",
        default: "90",
        description: "Lifecycle: no order for longer than this is 'at_risk'",
        kind: Kind::Int {
            min: 1,
            max: 100_000,
        },
    },
    SettingSpec {
        name: "lifecycle_churn_days",
        default: "180",
        description: "Lifecycle: no order for longer than this is 'churned'",
        kind: Kind::Int {
            min: 1,
            max: 100_000,
        },
    },
    SettingSpec {
        name: "lifecycle_mature_orders",
        default: "5",
        description: "Lifecycle: this many orders make a customer 'mature'",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
    },
];

/// Look up a setting by name (without prefix, case-insensitive).
pub fn spec(name: &str) -> Option<&'static SettingSpec> {
    let name = name.to_ascii_lowercase();
    SETTINGS.iter().find(|s| s.name == name)
}

/// A session's `userql.*` values.
#[derive(Debug, Clone)]
pub struct UserqlSettings {
    values: BTreeMap<&'static str, String>,
}

impl Default for UserqlSettings {
    fn default() -> Self {
        Self {
            values: SETTINGS
                .iter()
                .map(|s| (s.name, s.default.to_string()))
                .collect(),
        }
    }
}

impl ConfigExtension for UserqlSettings {
    const PREFIX: &'static str = "userql";
}

impl UserqlSettings {
    /// The text value of a setting (`name` without prefix).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// An integer setting; the value was validated when set.
    pub fn int(&self, name: &str) -> i64 {
        self.get(name)
            .and_then(|v| v.parse().ok())
            .or_else(|| spec(name).and_then(|s| s.default.parse().ok()))
            .unwrap_or(0)
    }

    /// A text setting, empty when unset.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    /// Validate and store a value.
    pub fn set_value(&mut self, name: &str, value: &str) -> Result<()> {
        let spec = spec(name).ok_or_else(|| {
            DataFusionError::Configuration(format!(
                "unrecognized configuration parameter \"userql.{name}\" (known: {})",
                SETTINGS
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let value = validate(spec, value.trim())?;
        self.values.insert(spec.name, value);
        Ok(())
    }
}

fn bad_value(spec: &SettingSpec, value: &str, expected: &str) -> DataFusionError {
    DataFusionError::Configuration(format!(
        "invalid value for parameter \"userql.{}\": \"{value}\" ({expected})",
        spec.name
    ))
}

fn validate(spec: &SettingSpec, value: &str) -> Result<String> {
    match spec.kind {
        Kind::Int { min, max } => match value.parse::<i64>() {
            Ok(n) if n >= min && n <= max => Ok(n.to_string()),
            _ if max == i64::MAX => Err(bad_value(
                spec,
                value,
                &format!("expected a whole number ≥ {min}"),
            )),
            _ => Err(bad_value(
                spec,
                value,
                &format!("expected a whole number from {min} to {max}"),
            )),
        },
        Kind::OneOf(words) => {
            let lower = value.to_ascii_lowercase();
            if words.contains(&lower.as_str()) {
                Ok(lower)
            } else {
                Err(bad_value(
                    spec,
                    value,
                    &format!("expected one of {}", words.join(", ")),
                ))
            }
        }
        Kind::Region => {
            let upper = value.to_ascii_uppercase();
            if upper.len() == 2 && upper.chars().all(|c| c.is_ascii_uppercase()) {
                Ok(upper)
            } else {
                Err(bad_value(
                    spec,
                    value,
                    "expected a two-letter region code such as CN or US",
                ))
            }
        }
        Kind::TypeLimits => {
            for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let ok = part.split_once(':').is_some_and(|(t, n)| {
                    !t.trim().is_empty() && n.trim().parse::<u32>().is_ok_and(|n| n >= 1)
                });
                if !ok {
                    return Err(bad_value(
                        spec,
                        value,
                        "expected type:limit pairs such as 'member_no:1,phone:3'",
                    ));
                }
            }
            Ok(value.to_string())
        }
        Kind::Text => Ok(value.to_string()),
    }
}

impl ExtensionOptions for UserqlSettings {
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
        self.set_value(key, value)
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        SETTINGS
            .iter()
            .map(|s| ConfigEntry {
                key: format!("userql.{}", s.name),
                value: self.get(s.name).map(str::to_string),
                description: s.description,
            })
            .collect()
    }
}

/// The settings of a DataFusion session (defaults when the extension is missing).
pub fn of_session(config: &datafusion::config::ConfigOptions) -> UserqlSettings {
    config
        .extensions
        .get::<UserqlSettings>()
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let mut s = UserqlSettings::default();
        for spec in SETTINGS {
            s.set_value(spec.name, spec.default).unwrap();
        }
        assert_eq!(s.int("rfm_bins"), 5);
        assert_eq!(s.text("default_region"), "CN");
    }

    #[test]
    fn validation_names_the_setting() {
        let mut s = UserqlSettings::default();
        let err = s.set_value("rfm_bins", "many").unwrap_err().to_string();
        assert!(err.contains("userql.rfm_bins"), "{err}");
        assert!(s.set_value("rfm_bins", "1").is_err());
        assert!(s.set_value("rfm_language", "fr").is_err());
        s.set_value("rfm_language", "ZH").unwrap();
        assert_eq!(s.text("rfm_language"), "zh");
        assert!(s.set_value("oneid_type_limits", "phone").is_err());
        s.set_value("oneid_type_limits", "member_no:1, phone:3")
            .unwrap();
        s.set_value("default_region", "us").unwrap();
        assert_eq!(s.text("default_region"), "US");
        let err = s.set_value("no_such", "1").unwrap_err().to_string();
        assert!(
            err.contains("unrecognized configuration parameter"),
            "{err}"
        );
    }

    #[test]
    fn works_through_datafusion_config() {
        let mut opts = datafusion::config::ConfigOptions::new();
        opts.extensions.insert(UserqlSettings::default());
        opts.set("userql.rfm_bins", "4").unwrap();
        assert_eq!(of_session(&opts).int("rfm_bins"), 4);
        assert!(opts.set("userql.rfm_bins", "x").is_err());
    }
}
