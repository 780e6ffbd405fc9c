//! The `oneid_links()` explanation: why each pair of records is, or is not,
//! one customer.

use super::graph::{NONE, Resolution};
use super::interner::Interner;
use super::keys::KEY_HASHED_FORM;

/// Why a pair of records is, or is not, linked (the `reason` column of
/// `oneid_links`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkReason {
    /// The shared value joined them (or they were already one customer).
    Linked,
    /// The value is junk (built-in block list or `oneid_blocked_values`).
    JunkValue,
    /// More records share the value than `oneid_max_records_per_value`.
    SharedTooWidely,
    /// Joining would exceed a type limit.
    TypeLimit,
    /// Joining would put a split override pair together.
    SplitOverride,
    /// A link override joined them.
    LinkOverride,
}

impl LinkReason {
    /// The SQL text of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkReason::Linked => "linked",
            LinkReason::JunkValue => "junk_value",
            LinkReason::SharedTooWidely => "shared_too_widely",
            LinkReason::TypeLimit => "type_limit",
            LinkReason::SplitOverride => "split_override",
            LinkReason::LinkOverride => "link_override",
        }
    }
}

/// One explained pair, in compact ids.
#[derive(Debug, Clone, Copy)]
pub(super) struct LinkRecord {
    pub(super) record: u32,
    pub(super) linked: u32,
    /// The shared key, or `NONE` for a link override.
    pub(super) key: u32,
    pub(super) used: bool,
    pub(super) reason: LinkReason,
}

/// Explanation rows plus the key tables they refer to.
#[derive(Debug, Default)]
pub(super) struct LinkDetails {
    pub(super) rows: Vec<LinkRecord>,
    pub(super) keys: Interner,
    pub(super) key_flags: Vec<u8>,
    pub(super) family_names: Vec<String>,
    /// `<family>_sha256`, shown for keys only known as a hash.
    pub(super) family_hashed_names: Vec<String>,
}

/// A resolution with its link explanation: what `oneid_links()` returns.
///
/// **Pair scheme.** A value shared by k records yields k − 1 rows, not
/// k(k−1)/2 (a junk value on 10,000 records would otherwise be 50 million
/// rows): each holder other than the first (in canonical order) is paired
/// with the anchor it joined (`used`, `linked`; usually the first holder), or,
/// when it joined none, with the first holder and the reason (`type_limit`,
/// `split_override`; `used` false). Junk and too-widely-shared values pair
/// every other holder with the first one, `used` false. Link overrides come
/// first, one row per distinct pair of present records, with null type and
/// value: `link_override` when applied, `split_override` when a split
/// prevented it. `used` means the link was applied or was consistent with the
/// customers at that point (both records already one customer).
#[derive(Debug)]
pub struct Explanation<'g> {
    resolution: Resolution<'g>,
    details: LinkDetails,
}

/// One output row of `oneid_links()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkRow<'a> {
    /// The record this row explains.
    pub record_id: &'a str,
    /// The record it was (or would have been) linked to.
    pub linked_record_id: &'a str,
    /// Family of the shared identifier (`phone`, or `phone_sha256` when only
    /// its hash is known); `None` for override rows.
    pub id_type: Option<&'a str>,
    /// The normalised shared value (E.164, lower-case email, ...; the hash
    /// when only hashes were given); `None` for override rows.
    pub id_value: Option<&'a str>,
    /// Whether the link was applied.
    pub used: bool,
    /// Why.
    pub reason: LinkReason,
}

impl<'g> Explanation<'g> {
    /// Pairs a resolution with the link rows recorded while computing it.
    pub(super) fn new(resolution: Resolution<'g>, details: LinkDetails) -> Self {
        Explanation {
            resolution,
            details,
        }
    }

    /// The customers (same as [`IdentityGraph::resolve`]).
    pub fn resolution(&self) -> &Resolution<'g> {
        &self.resolution
    }

    /// Number of explanation rows.
    pub fn link_count(&self) -> usize {
        self.details.rows.len()
    }

    /// The explanation rows: overrides first, then keys in link order.
    pub fn links(&self) -> impl ExactSizeIterator<Item = LinkRow<'_>> + '_ {
        let d = &self.details;
        let records = self.resolution.records();
        d.rows.iter().map(move |r| {
            let (id_type, id_value) = if r.key == NONE {
                (None, None)
            } else {
                let family = d.keys.tag(r.key) as usize;
                let hashed_form = d
                    .key_flags
                    .get(r.key as usize)
                    .is_some_and(|f| f & KEY_HASHED_FORM != 0);
                let names = if hashed_form {
                    &d.family_hashed_names
                } else {
                    &d.family_names
                };
                let name = names.get(family).map_or("", String::as_str);
                (Some(name), Some(d.keys.get(r.key)))
            };
            LinkRow {
                record_id: records.get(r.record),
                linked_record_id: records.get(r.linked),
                id_type,
                id_value,
                used: r.used,
                reason: r.reason,
            }
        })
    }
}
