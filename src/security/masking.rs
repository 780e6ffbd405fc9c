//! Which identifier types are masked for role `read`, and how.
//!
//! `[privacy] mask = { phone = "mask_phone", email = "mask_email" }` names, per identifier
//! type, the masking function applied to every channel column mapped to that type. The
//! masks are applied where the values are read (the channel scan), so everything built on
//! them — `identities`, the built-in and stored views, ad-hoc queries — sees only masked
//! values, and a filter on a masked column compares masked values (no probing of raw ones).

use std::collections::BTreeMap;

use crate::config::ChannelConfig;
use crate::functions::identity::normalize;

/// A masking function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaskFn {
    /// `mask_phone`: `138****5678`.
    Phone,
    /// `mask_email`: `z***@example.com`.
    Email,
    /// `mask_all`: every value becomes `****`.
    All,
}

impl MaskFn {
    /// The function names `[privacy] mask` accepts.
    pub const NAMES: [&'static str; 3] = ["mask_phone", "mask_email", "mask_all"];

    /// The function of a name in the config.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "mask_phone" => Some(Self::Phone),
            "mask_email" => Some(Self::Email),
            "mask_all" => Some(Self::All),
            _ => None,
        }
    }

    /// The function's SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Phone => "mask_phone",
            Self::Email => "mask_email",
            Self::All => "mask_all",
        }
    }

    /// The masked form of a raw value. `None` (SQL NULL) when the value cannot be masked
    /// safely — an unparseable phone or address is hidden entirely rather than shown raw.
    pub fn apply(self, raw: &str) -> Option<String> {
        match self {
            Self::Phone => normalize::mask_phone(raw),
            Self::Email => normalize::mask_email(raw),
            Self::All => Some("****".to_string()),
        }
    }
}

/// The masks of a session: empty for roles `write` and `admin`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaskPolicy {
    by_type: BTreeMap<String, MaskFn>,
}

impl MaskPolicy {
    /// The policy of a `[privacy] mask` table; an unknown function name is an error naming it.
    pub fn from_config(mask: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut by_type = BTreeMap::new();
        for (id_type, function) in mask {
            let f = MaskFn::from_name(function).ok_or_else(|| {
                format!(
                    "{id_type} = {function:?}: unknown masking function (use one of {})",
                    MaskFn::NAMES.join(", ")
                )
            })?;
            by_type.insert(id_type.trim().to_string(), f);
        }
        Ok(Self { by_type })
    }

    /// Nothing is masked.
    pub fn is_empty(&self) -> bool {
        self.by_type.is_empty()
    }

    /// The mask of an identifier type, if it is masked.
    pub fn for_type(&self, id_type: &str) -> Option<MaskFn> {
        self.by_type.get(id_type.trim()).copied()
    }

    /// The masked columns of a channel: each column mapped to a masked identifier type
    /// (a column mapped to several masked types takes the first type's mask, by name).
    pub fn columns_of(&self, channel: &ChannelConfig) -> Vec<(String, MaskFn)> {
        let mut out: Vec<(String, MaskFn)> = Vec::new();
        for (id_type, column) in &channel.ids {
            if let Some(f) = self.for_type(id_type)
                && !out.iter().any(|(c, _)| c == column)
            {
                out.push((column.clone(), f));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_from_config_names_bad_functions() {
        let mut m = BTreeMap::new();
        m.insert("phone".to_string(), "mask_phone".to_string());
        m.insert("email".to_string(), "MASK_EMAIL".to_string());
        let p = MaskPolicy::from_config(&m).unwrap();
        assert_eq!(p.for_type("phone"), Some(MaskFn::Phone));
        assert_eq!(p.for_type("email"), Some(MaskFn::Email));
        assert_eq!(p.for_type("openid"), None);
        m.insert("openid".to_string(), "hide".to_string());
        let err = MaskPolicy::from_config(&m).unwrap_err();
        assert!(
            err.contains("openid") && err.contains("mask_phone"),
            "{err}"
        );
    }

    #[test]
    fn masks_never_return_the_raw_value() {
        assert_eq!(
            MaskFn::Phone.apply("13812345678").as_deref(),
            Some("138****5678")
        );
        assert_ne!(
            MaskFn::Email.apply("zoe@example.com").as_deref(),
            Some("zoe@example.com")
        );
        assert_eq!(MaskFn::All.apply("anything").as_deref(), Some("****"));
    }
}
