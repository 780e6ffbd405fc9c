//! Identifier normalisation for OneID and the privacy scalars built on it
//! (`normalize_phone`, `normalize_email`, `hash_id`, `mask_phone`, `mask_email`).
//!
//! Matching only works if every channel's spelling of the same identifier ends
//! up byte-identical, so each rule here is deliberately small and documented:
//!
//! | type | normal form |
//! |---|---|
//! | `phone` | E.164 (`+8613800138000`) via the `phonenumber` crate; `None` unless valid |
//! | `email` | trimmed, lower-case; `None` unless exactly one `@` with text on both sides |
//! | `*_sha256` | trimmed, lower-case hex; `None` unless 64 hex digits |
//! | anything else | trimmed; `None` if empty |
//!
//! Type names are compared after trimming, case-insensitively.
//!
//! Phone parsing through the library costs ~10 µs a number (and every regex
//! match in it takes one global mutex), too slow for the millions of distinct
//! phones OneID sees. So [`normalize_phone`] first tries a fast path (~0.2 µs)
//! for the overwhelmingly common shapes (digits with simple separators,
//! optionally `+<cc>` or the region's IDD prefix, and masked numbers such as
//! `138****8000`, which exports are full of and which the library reads as
//! their digits alone). It re-implements only the
//! library's *parsing* of those shapes, and decides validity exactly as the
//! library does, with the library's own metadata patterns (compiled anchored,
//! see `anchored`). Anything else, or anything the fast path is unsure about,
//! goes to the library. The tests `fast_path_agrees_with_library` (200,000
//! generated spellings, odd ones included),
//! `fast_path_agrees_on_every_cn_mobile_prefix` and the property tests
//! `phone_like_strings_agree_with_library` and
//! `composed_spellings_agree_with_library` check the two agree.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use phonenumber::country;
use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use sha2::{Digest, Sha256};

use super::error::OneIdError;

/// The region assumed for phone numbers written without a country code when
/// `userql.default_region` is not set: userql's first users sell in China.
pub const DEFAULT_REGION: &str = "CN";

/// Inputs longer than this are not phone numbers (the longest E.164 number is
/// 15 digits; 64 leaves room for generous formatting). Refusing them early
/// bounds the work the library's regexes can be made to do by hostile input.
const MAX_PHONE_INPUT_LEN: usize = 64;

/// Lower-case hex SHA-256 of the empty string: ad platforms and careless
/// exports hash empty fields, and that value must never link two people.
const SHA256_OF_EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// A default region for phone numbers, validated once so that per-value calls
/// do no string parsing and cannot fail on a bad region.
///
/// Obtain one with [`parse_region`]; `Region::default()` is [`DEFAULT_REGION`].
#[derive(Clone, Copy)]
pub struct Region {
    id: country::Id,
    meta: &'static Metadata,
    /// The region's country calling code (86 for CN).
    code: u16,
    /// The fast path's view of the region's metadata; `None` disables the
    /// fast path (see [`FastPhone::for_region`]).
    fast: Option<&'static FastPhone>,
}

impl Region {
    /// The ISO 3166 code, upper case (e.g. `"CN"`): for messages and SHOW.
    pub fn code(&self) -> &'static str {
        // `meta` is `'static`, so its id is too.
        self.meta.id()
    }

    /// The country calling code of the region (86 for CN).
    pub fn calling_code(&self) -> u16 {
        self.code
    }
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Region").field(&self.code()).finish()
    }
}

impl PartialEq for Region {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Region {}

impl Default for Region {
    /// [`DEFAULT_REGION`]; the bundled metadata always contains it (checked by
    /// a unit test), so this cannot fail at run time.
    fn default() -> Self {
        parse_region(DEFAULT_REGION)
            .expect("the bundled phone metadata includes the default region")
    }
}

/// Parses an ISO 3166 two-letter region code (case-insensitive, trimmed) for
/// phone normalisation.
///
/// This is the one place a region can be wrong, so callers parse it once (per
/// setting, or per distinct SQL argument) and report the error, and the hot
/// per-value functions take an infallible [`Region`].
pub fn parse_region(code: &str) -> Result<Region, OneIdError> {
    parse_region_for("region", code)
}

/// [`parse_region`] with the setting name to blame in the error.
pub(crate) fn parse_region_for(setting: &'static str, code: &str) -> Result<Region, OneIdError> {
    let bad = || OneIdError::UnknownRegion {
        setting,
        value: code.to_string(),
    };
    let trimmed = code.trim();
    if trimmed.len() != 2 || !trimmed.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(bad());
    }
    let upper = trimmed.to_ascii_uppercase();
    let id = country::Id::from_str(&upper).map_err(|_| bad())?;
    // Every `Id` has an enum variant, but not all have metadata; the library
    // would panic parsing with such a region, so refuse it here.
    let meta: &'static Metadata = DATABASE.by_id(upper.as_str()).ok_or_else(bad)?;
    Ok(Region {
        id,
        meta,
        code: meta.country_code(),
        fast: FastPhone::for_region(meta),
    })
}

/// Normalises a phone number to E.164 (`+8613800138000`), reading numbers
/// without a country code as numbers of `region`.
///
/// `None` when it does not parse or is not a valid number for its country
/// (so typos and placeholder numbers such as `00000000000` never link
/// customers). Accepts the usual spellings: `+86 138-0013-8000`,
/// `13800138000`, `(+86)13800138000`, `0086 13800138000`, surrounding
/// whitespace. Inputs longer than 64 bytes are refused as not a phone number.
/// Extensions are dropped (E.164 has none).
pub fn normalize_phone(raw: &str, region: Region) -> Option<String> {
    let mut out = String::new();
    normalize_phone_into(raw, region, &mut out).then_some(out)
}

/// [`normalize_phone`] writing into a reusable buffer (cleared first); returns
/// whether `out` holds a number. Lets the resolver normalise millions of
/// values without an allocation each.
pub(crate) fn normalize_phone_into(raw: &str, region: Region, out: &mut String) -> bool {
    out.clear();
    if raw.len() > MAX_PHONE_INPUT_LEN {
        return false;
    }
    match fast_phone(raw, region, out) {
        Fast::Valid => true,
        Fast::Invalid => {
            out.clear();
            false
        }
        Fast::Unsupported => {
            out.clear();
            library_phone_into(raw, region, out)
        }
    }
}

/// The library's answer alone, without the fast path: the reference the fast
/// path is tested against.
pub(crate) fn library_phone_into(raw: &str, region: Region, out: &mut String) -> bool {
    out.clear();
    if raw.len() > MAX_PHONE_INPUT_LEN {
        return false;
    }
    // The library indexes strings and unwraps internally; a panic there must
    // not take the server down, and an unparseable phone is simply `None`.
    let result = catch_unwind(AssertUnwindSafe(|| {
        let number = phonenumber::parse(Some(region.id), raw).ok()?;
        if !phonenumber::is_valid(&number) {
            return None;
        }
        let mut s = String::new();
        write!(s, "{}", number.format().mode(phonenumber::Mode::E164)).ok()?;
        Some(s)
    }));
    match result {
        Ok(Some(s)) => {
            out.push_str(&s);
            true
        }
        _ => false,
    }
}

/// Outcome of the fast path: a definite answer, or "ask the library".
enum Fast {
    Valid,
    Invalid,
    Unsupported,
}

/// Country calling codes known to the metadata, indexed by code (< 1000).
/// Country codes are prefix-free, so the first known 1–3 digit prefix is *the*
/// country code, exactly as the library extracts it.
fn known_calling_codes() -> &'static [bool] {
    static CODES: OnceLock<Vec<bool>> = OnceLock::new();
    CODES.get_or_init(|| {
        let mut codes = vec![false; 1000];
        for meta in DATABASE.iter() {
            if let Some(slot) = codes.get_mut(usize::from(meta.country_code())) {
                *slot = true;
            }
        }
        codes
    })
}

/// The country code at the start of `digits` (first known 1–3 digit prefix)
/// and its length.
fn calling_code_prefix(digits: &[u8]) -> Option<(u16, usize)> {
    let codes = known_calling_codes();
    let mut value: u16 = 0;
    for (i, &d) in digits.iter().take(3).enumerate() {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        value = value * 10 + u16::from(d);
        if codes.get(usize::from(value)).copied().unwrap_or(false) {
            return Some((value, i + 1));
        }
    }
    None
}

/// A metadata pattern compiled for the fast path: `Some((0, end))` when it
/// matches at the start of the input.
type Matcher = Box<dyn Fn(&str) -> Option<(usize, usize)> + Send + Sync>;

/// Compiles a metadata pattern anchored at the start: `^(?:pattern)`, with
/// the library's options (`ignore_whitespace`), through the library's own
/// regex cache (so no regex dependency of ours) and removed from that cache
/// again at once (so the library's cache keeps its entries).
///
/// Why anchored: the library only ever asks whether a pattern matches *at
/// the start* (`find(..).start() == 0`), and the leftmost-first match of an
/// unanchored search starts at 0 exactly when an anchored search matches,
/// with the same end. Anchored, the CN patterns take ~30 ns instead of
/// 100–5000 ns, and no global mutex is taken per match.
fn anchored(source: &str) -> Option<Matcher> {
    let wrapped = format!("^(?:\n{source}\n)");
    let cache = DATABASE.cache();
    let mut guard = cache.lock().ok()?;
    let regex = guard
        .configure(&wrapped, |b| b.ignore_whitespace(true))
        .ok()?
        .clone();
    guard.remove(&wrapped);
    // Each thread matches with its own clone of the regex. A regex shared
    // by threads hands out its search scratch space through a pool that is
    // fast only for the one thread that used it first; every other thread
    // takes a slower locked path on every match, which cost more than the
    // matching itself when OneID normalises millions of phones on worker
    // threads. A clone is cheap (the compiled program is shared).
    static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
    let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
    let clone_for_this_thread = move || -> LocalMatcher {
        let own = regex.clone();
        Box::new(move |s: &str| own.find(s).map(|m| (m.start(), m.end())))
    };
    Some(Box::new(move |s: &str| {
        THREAD_MATCHERS.with(|matchers| {
            let mut matchers = matchers.borrow_mut();
            if matchers.len() <= slot {
                matchers.resize_with(slot + 1, || None);
            }
            let matcher = matchers[slot].get_or_insert_with(&clone_for_this_thread);
            matcher(s)
        })
    }))
}

/// One thread's own copy of a [`Matcher`]'s regex (see [`anchored`]).
type LocalMatcher = Box<dyn Fn(&str) -> Option<(usize, usize)>>;

thread_local! {
    /// This thread's regex clones, indexed by the slot [`anchored`] gave each
    /// matcher (a few dozen per region at most, built once per process).
    static THREAD_MATCHERS: std::cell::RefCell<Vec<Option<LocalMatcher>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// `Descriptor::is_match` of the library, on a taken-out regex.
struct Pattern {
    lengths: Vec<u16>,
    matcher: Matcher,
}

impl Pattern {
    fn new(desc: &Descriptor) -> Option<Self> {
        Some(Pattern {
            lengths: desc.possible_length().to_vec(),
            matcher: anchored(desc.national_number().as_str())?,
        })
    }

    fn is_match(&self, value: &str) -> bool {
        let length_ok = self.lengths.is_empty()
            || u16::try_from(value.len()).is_ok_and(|len| self.lengths.contains(&len));
        length_ok && (self.matcher)(value).is_some_and(|(start, _)| start == 0)
    }
}

/// What the fast path needs of one region's metadata.
struct FastPhone {
    /// International (IDD) prefix, e.g. `00` for CN.
    idd: Option<Matcher>,
    /// National prefix for parsing (trunk and carrier-selection codes).
    national_prefix_for_parsing: Option<Matcher>,
    national_prefix: Option<String>,
    /// The calling code's digits, e.g. `86`.
    code_digits: String,
    general: Pattern,
    /// Mobile first: the usual hit.
    typed: Vec<Pattern>,
}

impl FastPhone {
    /// The fast path for a region, built once per region for the life of the
    /// process (a few hundred regions at most). `None` when the calling code
    /// is shared by several regions (e.g. NANPA `+1`: the library would pick
    /// the region by leading digits) or a pattern cannot be taken out.
    fn for_region(meta: &'static Metadata) -> Option<&'static FastPhone> {
        static BUILT: OnceLock<Mutex<HashMap<String, Option<&'static FastPhone>>>> =
            OnceLock::new();
        let mut built = BUILT.get_or_init(Default::default).lock().ok()?;
        if let Some(fast) = built.get(meta.id()) {
            return *fast;
        }
        let fast = FastPhone::build(meta).map(|f| &*Box::leak(Box::new(f)));
        built.insert(meta.id().to_string(), fast);
        fast
    }

    fn build(meta: &'static Metadata) -> Option<FastPhone> {
        let code = meta.country_code();
        let sole_region = DATABASE
            .region(&code)
            .is_some_and(|regions| regions.len() == 1 && regions[0] == meta.id());
        if !sole_region {
            return None;
        }
        let d = meta.descriptors();
        let typed: [Option<&Descriptor>; 10] = [
            d.mobile(),
            d.fixed_line(),
            d.toll_free(),
            d.premium_rate(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
        ];
        Some(FastPhone {
            idd: match meta.international_prefix() {
                Some(re) => Some(anchored(re.as_str())?),
                None => None,
            },
            national_prefix_for_parsing: match meta.national_prefix_for_parsing() {
                Some(re) => Some(anchored(re.as_str())?),
                None => None,
            },
            national_prefix: meta.national_prefix().map(str::to_string),
            code_digits: code.to_string(),
            general: Pattern::new(d.general())?,
            typed: typed
                .iter()
                .flatten()
                .map(|desc| Pattern::new(desc))
                .collect::<Option<Vec<_>>>()?,
        })
    }

    /// Where the IDD pattern matches at the start of `digits`, its end.
    fn idd_end(&self, digits: &str) -> Option<usize> {
        let (start, end) = (self.idd.as_ref()?)(digits)?;
        (start == 0).then_some(end)
    }

    /// The library's validity test for a national significant number:
    /// `number_type != Unknown`, i.e. the general pattern matches and so does
    /// at least one typed pattern.
    fn valid_national(&self, nsn: &str) -> bool {
        self.general.is_match(nsn) && self.typed.iter().any(|p| p.is_match(nsn))
    }
}

/// Parses the common shapes without the library's general parser and decides
/// validity with the library's metadata. Returns `Unsupported` for anything
/// where the library's parser could do something this code does not model:
/// letters or unusual punctuation, another country's code, national or
/// carrier prefixes to strip, numbers starting with the country code digits.
fn fast_phone(raw: &str, region: Region, out: &mut String) -> Fast {
    let Some(fast) = region.fast else {
        return Fast::Unsupported;
    };
    let s = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    let mut buf = [0u8; 20];
    let mut n = 0usize;
    let mut plus = false;
    let mut star = false;
    // Digits between the '+' and the first RFC 3966 separator (see below).
    let mut digits_before_separator: Option<usize> = None;
    for b in s.bytes() {
        match b {
            b'0'..=b'9' => {
                let Some(slot) = buf.get_mut(n) else {
                    return Fast::Unsupported;
                };
                *slot = b;
                n += 1;
            }
            b'-' | b'.' | b'(' | b')' => {
                if plus && digits_before_separator.is_none() {
                    digits_before_separator = Some(n);
                }
            }
            b' ' => {}
            // Masked numbers (`138****8000`, as CRM exports show them) are
            // common. Without a '+', the library drops '*' like the other
            // separators: its RFC 3966 parser stops at the '*' and fails, so
            // the natural-language parser runs, treats '*' as allowed
            // punctuation and keeps only digits. The answer is therefore the
            // one for the digits alone, which this path computes. With a '+'
            // the RFC 3966 parser can take the '*' into a country code; leave
            // that to the library (checked after the loop).
            b'*' => star = true,
            b'+' if n == 0 && !plus => plus = true,
            _ => return Fast::Unsupported,
        }
    }
    if star && plus {
        return Fast::Unsupported;
    }
    // Without spaces the library first tries RFC 3966 syntax, where
    // everything between '+' and the first separator is the country code
    // (`+8618-0248...` is country 8618, invalid). Only accept that shape when
    // the run is exactly this region's code.
    if plus
        && !raw.contains(' ')
        && digits_before_separator.is_some_and(|k| k != fast.code_digits.len())
    {
        return Fast::Unsupported;
    }
    let digits = &buf[..n];
    let Ok(digits_str) = std::str::from_utf8(digits) else {
        return Fast::Unsupported;
    };
    if n < 4 {
        return Fast::Unsupported;
    }
    let nsn: &str = if plus {
        // After a '+', the library would strip a following IDD too.
        if fast.idd_end(digits_str).is_some() {
            return Fast::Unsupported;
        }
        match calling_code_prefix(digits) {
            Some((code, len)) if code == region.code => &digits_str[len..],
            _ => return Fast::Unsupported,
        }
    } else if let Some(end) = fast.idd_end(digits_str) {
        let rest = &digits[end..];
        // The library keeps the IDD when a 0 follows it, and refuses very
        // short remainders; leave those cases to it.
        if rest.len() <= 3 || rest[0] == b'0' {
            return Fast::Unsupported;
        }
        match calling_code_prefix(rest) {
            Some((code, len)) if code == region.code => &digits_str[end + len..],
            _ => return Fast::Unsupported,
        }
    } else {
        // The library may read a leading country code without '+' (e.g.
        // `8613800138000`) by heuristics; leave those to it.
        if digits_str.starts_with(fast.code_digits.as_str()) {
            return Fast::Unsupported;
        }
        digits_str
    };
    if nsn.len() < 3 || nsn.len() > 17 || nsn.starts_with('0') {
        return Fast::Unsupported;
    }
    if fast
        .national_prefix
        .as_deref()
        .is_some_and(|p| nsn.starts_with(p))
    {
        return Fast::Unsupported;
    }
    // National prefixes for parsing include carrier-selection codes (e.g.
    // 17951 in CN) that the library strips under conditions not modelled here.
    if let Some(npfp) = &fast.national_prefix_for_parsing
        && npfp(nsn).is_some_and(|(start, _)| start == 0)
    {
        return Fast::Unsupported;
    }
    if !fast.valid_national(nsn) {
        return Fast::Invalid;
    }
    out.clear();
    out.push('+');
    out.push_str(&fast.code_digits);
    out.push_str(nsn);
    Fast::Valid
}

/// Normalises an email address: trimmed and lower-cased.
///
/// `None` unless the result has exactly one `@` with a non-empty local part
/// and a non-empty domain, and no whitespace or control characters. Nothing
/// provider-specific is done (no Gmail dot or `+tag` folding): those rules
/// change who an address belongs to on other providers, and a wrong link is
/// worse than a missed one.
pub fn normalize_email(raw: &str) -> Option<String> {
    let mut out = String::new();
    normalize_email_into(raw, &mut out).then_some(out)
}

/// [`normalize_email`] into a reusable buffer; returns whether `out` is set.
pub(crate) fn normalize_email_into(raw: &str, out: &mut String) -> bool {
    out.clear();
    let t = raw.trim();
    let Some((local, domain)) = t.split_once('@') else {
        return false;
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return false;
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if t.is_ascii() {
        out.push_str(t);
        out.make_ascii_lowercase();
    } else {
        out.push_str(&t.to_lowercase());
    }
    true
}

/// What an `id_type` means for normalisation; derived once per distinct type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// `phone`: E.164.
    Phone,
    /// `email`: trimmed, lower-case.
    Email,
    /// `<family>_sha256`: already hashed, lower-case hex.
    Hashed,
    /// Any other type: trimmed, compared exactly.
    Other,
}

/// Canonical spelling of an id type: trimmed and lower-cased, so `Phone ` and
/// `phone` are one type.
pub fn canonical_type(id_type: &str) -> String {
    let t = id_type.trim();
    if t.is_ascii() {
        t.to_ascii_lowercase()
    } else {
        t.to_lowercase()
    }
}

/// The normalisation rule for an id type (any spelling; see [`canonical_type`]).
pub fn id_kind(id_type: &str) -> IdKind {
    let t = id_type.trim();
    if t.eq_ignore_ascii_case("phone") {
        IdKind::Phone
    } else if t.eq_ignore_ascii_case("email") {
        IdKind::Email
    } else if t.len() >= 7
        && t.is_char_boundary(t.len() - 7)
        && t[t.len() - 7..].eq_ignore_ascii_case("_sha256")
    {
        IdKind::Hashed
    } else {
        IdKind::Other
    }
}

/// The identifier family of a canonical type: `phone_sha256` and `phone` are
/// both family `phone`, because a hashed phone is the same identifier in
/// another form (that is what makes hashed matching work).
pub fn type_family(canonical: &str) -> &str {
    canonical.strip_suffix("_sha256").unwrap_or(canonical)
}

/// Normalises one identifier by its type (see the module table); `None` when
/// it cannot be used for matching.
pub fn normalize_id(id_type: &str, raw: &str, region: Region) -> Option<String> {
    let mut out = String::new();
    normalize_kind_into(id_kind(id_type), raw, region, &mut out).then_some(out)
}

/// [`normalize_id`] for an already classified type, into a reusable buffer.
pub(crate) fn normalize_kind_into(
    kind: IdKind,
    raw: &str,
    region: Region,
    out: &mut String,
) -> bool {
    out.clear();
    match kind {
        IdKind::Phone => normalize_phone_into(raw, region, out),
        IdKind::Email => normalize_email_into(raw, out),
        IdKind::Hashed => {
            let t = raw.trim();
            if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return false;
            }
            out.push_str(t);
            out.make_ascii_lowercase();
            true
        }
        IdKind::Other => {
            let t = raw.trim();
            if t.is_empty() {
                return false;
            }
            out.push_str(t);
            true
        }
    }
}

/// Lower-case hex SHA-256 of the UTF-8 normalised value: the form ad platforms
/// take hashed audiences in (E.164 with its `+` for phones, the trimmed
/// lower-case address for emails, the trimmed value for other types).
///
/// For `*_sha256` types the value is already a hash: its normalised hex is
/// returned unchanged rather than hashed again, so `hash_id` is idempotent.
/// `None` when the value does not normalise.
pub fn hash_id(id_type: &str, value: &str, region: Region) -> Option<String> {
    let kind = id_kind(id_type);
    let mut norm = String::new();
    if !normalize_kind_into(kind, value, region, &mut norm) {
        return None;
    }
    if kind == IdKind::Hashed {
        return Some(norm);
    }
    let mut out = String::with_capacity(64);
    sha256_hex_into(&norm, &mut out);
    Some(out)
}

/// Appends the lower-case hex SHA-256 of `value` to `out`.
pub(crate) fn sha256_hex_into(value: &str, out: &mut String) {
    let digest = Sha256::digest(value.as_bytes());
    let mut hex_buf = [0u8; 64];
    // Encoding 32 bytes into a 64-byte buffer cannot fail.
    if hex::encode_to_slice(digest, &mut hex_buf).is_ok() {
        out.extend(hex_buf.iter().map(|&b| char::from(b)));
    }
}

/// Masks a phone number for display: `13812345678` → `138****5678`.
///
/// Rules, applied to the digits (separators ` -.()` are ignored; any other
/// character gives `None`, as does an input without digits):
/// - 8 or more digits: first 3, `****`, last 4 (always four stars, so the
///   mask does not reveal the length);
/// - 3 to 7 digits: `****` and the last 2 (keeping 3 + 4 would show it all);
/// - 1 or 2 digits: `****`.
///
/// With a leading `+` the country code is kept and the rest masked:
/// `+86 138 1234 5678` → `+86 138****5678` (the country code is the first
/// 1–3 digit prefix that is a known calling code; if none is, all digits are
/// masked after the `+`). An IDD prefix such as `0086` is not interpreted.
pub fn mask_phone(raw: &str) -> Option<String> {
    let s = raw.trim();
    let mut digits = String::new();
    let mut plus = false;
    for c in s.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            '+' if digits.is_empty() && !plus => plus = true,
            _ => return None,
        }
    }
    if digits.is_empty() {
        return None;
    }
    if plus {
        if let Some((code, len)) = calling_code_prefix(digits.as_bytes())
            && len < digits.len()
        {
            return Some(format!("+{code} {}", mask_digits(&digits[len..])));
        }
        return Some(format!("+{}", mask_digits(&digits)));
    }
    Some(mask_digits(&digits))
}

/// The masking rule of [`mask_phone`] on an ASCII digit string.
fn mask_digits(d: &str) -> String {
    let n = d.len();
    if n >= 8 {
        format!("{}****{}", &d[..3], &d[n - 4..])
    } else if n >= 3 {
        format!("****{}", &d[n - 2..])
    } else {
        "****".to_string()
    }
}

/// Masks an email for display: `Zhang@Example.com` → `z***@example.com`
/// (first character of the local part, `***`, the domain), on the normalised
/// address; `None` when [`normalize_email`] refuses it.
pub fn mask_email(raw: &str) -> Option<String> {
    let norm = normalize_email(raw)?;
    let (local, domain) = norm.split_once('@')?;
    let first = local.chars().next()?;
    Some(format!("{first}***@{domain}"))
}

/// Placeholder words that systems write where an identifier is unknown.
/// Length of the longest of [`JUNK_WORDS`] (checked by a unit test).
const JUNK_WORD_MAX_LEN: usize = 9;

const JUNK_WORDS: &[&str] = &[
    "null",
    "none",
    "nil",
    "unknown",
    "undefined",
    "n/a",
    "#n/a",
    "na",
    "nan",
    "-",
    "0",
    "(null)",
    "\\n",
];

/// The built-in block list: values that many unrelated people "share" because
/// a system filled in a placeholder, so linking on them would merge strangers.
///
/// Case-insensitive, on the trimmed value. Junk is:
/// - empty; `null`, `none`, `nil`, `unknown`, `undefined`, `n/a`, `#n/a`,
///   `na`, `nan`, `-`, `0`, `(null)`, `\N`;
/// - all-zero ids once `-`, `:`, `.` and spaces are removed (the all-zero
///   advertising id `00000000-0000-0000-0000-000000000000`, `00:00:00:00:00:00`);
/// - three or more digits that are all the same (`00000000000`, `11111111111`),
///   also after a leading `+` and a known country code (`+8600000000000`), or
///   with the whole digit run after `+` the same (`+1111111111`);
/// - the SHA-256 of the empty string (a hashed empty field).
///
/// Two-digit runs such as `11` are not junk: short member numbers exist.
pub fn is_junk(value: &str) -> bool {
    let v = value.trim();
    if v.is_empty() {
        return true;
    }
    // Most values are longer than any junk word: one length test skips them.
    if v.len() <= JUNK_WORD_MAX_LEN && JUNK_WORDS.iter().any(|w| v.eq_ignore_ascii_case(w)) {
        return true;
    }
    if v.len() == SHA256_OF_EMPTY.len() && v.eq_ignore_ascii_case(SHA256_OF_EMPTY) {
        return true;
    }
    let mut zeros = 0usize;
    let all_zero = v.chars().all(|c| match c {
        '0' => {
            zeros += 1;
            true
        }
        '-' | ':' | '.' | ' ' => true,
        _ => false,
    });
    if all_zero && zeros > 0 {
        return true;
    }
    if same_digit_run(v.as_bytes()) {
        return true;
    }
    if let Some(rest) = v.strip_prefix('+') {
        // Every normalised phone comes here: its digits are gathered on the
        // stack unless the value is unusually long.
        let keep = |b: &u8| *b != b' ' && *b != b'-';
        let mut stack = [0u8; 64];
        let heap: Vec<u8>;
        let digits: &[u8] = if rest.len() <= stack.len() {
            let mut len = 0usize;
            for b in rest.bytes().filter(keep) {
                stack[len] = b;
                len += 1;
            }
            &stack[..len]
        } else {
            heap = rest.bytes().filter(keep).collect();
            &heap
        };
        if digits.iter().all(u8::is_ascii_digit) {
            if same_digit_run(digits) {
                return true;
            }
            if let Some((_, len)) = calling_code_prefix(digits) {
                return same_digit_run(&digits[len..]);
            }
        }
    }
    false
}

/// Three or more ASCII digits, all equal.
fn same_digit_run(s: &[u8]) -> bool {
    match s.first() {
        Some(&first) if s.len() >= 3 && first.is_ascii_digit() => s.iter().all(|&b| b == first),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_word_max_len_is_the_longest_word() {
        let longest = JUNK_WORDS.iter().map(|w| w.len()).max();
        assert_eq!(longest, Some(JUNK_WORD_MAX_LEN));
        let long_plus = format!("+{}", "7".repeat(80));
        assert!(is_junk(&long_plus));
        assert!(is_junk(" UNDEFINED "));
        assert!(!is_junk("+86 138 0013 8000"));
        assert!(is_junk("+86 000 0000 0000"));
    }

    fn cn() -> Region {
        Region::default()
    }

    fn lib(raw: &str, region: Region) -> Option<String> {
        let mut out = String::new();
        library_phone_into(raw, region, &mut out).then_some(out)
    }

    #[test]
    fn default_region_is_cn_and_fast() {
        let r = Region::default();
        assert_eq!(r.code(), "CN");
        assert_eq!(r.calling_code(), 86);
        assert!(r.fast.is_some());
    }

    #[test]
    fn parse_region_accepts_codes_case_insensitively() {
        assert_eq!(parse_region(" us ").map(|r| r.code()), Ok("US"));
        assert_eq!(parse_region("gb").map(|r| r.calling_code()), Ok(44));
        // +1 is shared by NANPA regions: no fast path, the library decides.
        assert!(parse_region("US").is_ok_and(|r| r.fast.is_none()));
    }

    #[test]
    fn parse_region_rejects_unknown_codes() {
        for bad in ["", "C", "CHN", "XX", "1A", "中国", "ZZ"] {
            assert!(
                matches!(parse_region(bad), Err(OneIdError::UnknownRegion { .. })),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn phone_spellings_normalise_to_e164() {
        for raw in [
            "+86 138-0013-8000",
            "13800138000",
            "(+86)13800138000",
            "0086 13800138000",
            "  138 0013 8000 ",
            "\t13800138000\n",
            "+8613800138000",
            "138.0013.8000",
            "+86 (138) 0013 8000",
            "8613800138000",
            "17951 13800138000",
            "13800138000 ext 12",
        ] {
            assert_eq!(
                normalize_phone(raw, cn()).as_deref(),
                Some("+8613800138000"),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn phone_landlines_and_foreign_numbers() {
        assert_eq!(
            normalize_phone("010-12345678", cn()).as_deref(),
            Some("+861012345678")
        );
        assert_eq!(
            normalize_phone("+1 650 253 0000", cn()).as_deref(),
            Some("+16502530000")
        );
        let us = parse_region("US").ok();
        assert!(us.is_some());
        if let Some(us) = us {
            assert_eq!(
                normalize_phone("(650) 253-0000", us).as_deref(),
                Some("+16502530000")
            );
        }
    }

    #[test]
    fn invalid_phones_are_none() {
        for raw in [
            "",
            "   ",
            "abc",
            "12345",
            "00000000000",
            "11111111111",
            "+8600000000000",
            "+86 1740 6 123456",
            "１３８００１３８０００",
            "138\t0013 8000",
            "+86 + 138",
            "13800138000138001380001380013800138000138001380001380013800138000",
        ] {
            assert_eq!(normalize_phone(raw, cn()), None, "{raw:?}");
        }
    }

    /// Deterministic generator (xorshift) so the differential test needs no
    /// extra dependency and is reproducible.
    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn generated_phone(g: &mut Gen) -> String {
        const SEPS: [&str; 11] = [" ", "-", ".", "(", ")", "", "", "", "  ", "*", "****"];
        const PREFIXES: [&str; 14] = [
            "", "", "", "+86", "+86 ", "(+86)", "0086", "0086 ", "86", "+1 ", "+852 ", "+", "00",
            "17951",
        ];
        let mut s = String::new();
        s.push_str(PREFIXES[g.below(PREFIXES.len() as u64) as usize]);
        // Mostly CN-mobile-like: 1 + [0-9] + 9 digits; sometimes other lengths.
        let len = match g.below(10) {
            0 => 1 + g.below(16) as usize,
            _ => 11,
        };
        for i in 0..len {
            let d = match (i, g.below(10)) {
                (0, x) if x < 8 => 1,
                _ => g.below(10),
            };
            s.push(char::from(b'0' + d as u8));
            if g.below(5) == 0 {
                s.push_str(SEPS[g.below(SEPS.len() as u64) as usize]);
            }
        }
        match g.below(20) {
            0 => format!("  {s}"),
            1 => format!("{s}\t"),
            2 => format!("{s}a"),
            3 => format!("+{s}"),
            _ => s,
        }
    }

    #[test]
    fn fast_path_agrees_with_library() {
        let region = cn();
        let mut g = Gen(0x9E37_79B9_7F4A_7C15);
        let mut fast_hits = 0usize;
        let n = 200_000;
        for _ in 0..n {
            let raw = generated_phone(&mut g);
            let mut fast_out = String::new();
            let fast = fast_phone(&raw, region, &mut fast_out);
            let reference = lib(&raw, region);
            match fast {
                Fast::Valid => {
                    fast_hits += 1;
                    assert_eq!(Some(fast_out), reference, "fast path differs on {raw:?}");
                }
                Fast::Invalid => {
                    fast_hits += 1;
                    assert_eq!(reference, None, "fast path rejected {raw:?}");
                }
                Fast::Unsupported => {}
            }
        }
        // Many generated shapes are deliberately odd; the common ones are
        // checked in `common_shapes_take_the_fast_path`.
        assert!(
            fast_hits > n / 4,
            "fast path used for only {fast_hits} of {n}"
        );
    }

    #[test]
    fn common_shapes_take_the_fast_path() {
        let region = cn();
        for raw in [
            "13800138000",
            " 13800138000 ",
            "+8613800138000",
            "+86 138-0013-8000",
            "+86-138-0013-8000",
            "(+86)13800138000",
            "0086 13800138000",
            "138 0013 8000",
            "138-0013-8000",
        ] {
            let mut out = String::new();
            assert!(
                matches!(fast_phone(raw, region, &mut out), Fast::Valid),
                "{raw:?} missed the fast path"
            );
        }
    }

    #[test]
    fn masked_phones_take_the_fast_path_and_agree() {
        // The demo's masked display (`rows.rs`), with the spellings exports
        // add around it; every 3-digit mobile prefix with a few tails.
        let region = cn();
        let demo_heads: Vec<u32> = (130..140)
            .chain(150..160)
            .chain(180..190)
            .chain([170, 177, 199])
            .collect();
        for prefix in 100u32..200 {
            for tail in ["0000", "5839", "8000"] {
                for raw in [
                    format!("{prefix}****{tail}"),
                    format!(" {prefix}****{tail} "),
                    format!("{prefix}-****-{tail}"),
                    format!("{prefix} **** {tail}"),
                    format!("0086 {prefix}****{tail}"),
                    format!("86{prefix}****{tail}"),
                    format!("{prefix}****{tail}*"),
                    format!("*{prefix}****{tail}"),
                ] {
                    let mut fast_out = String::new();
                    let reference = lib(&raw, region);
                    match fast_phone(&raw, region, &mut fast_out) {
                        Fast::Valid => assert_eq!(Some(fast_out), reference, "{raw}"),
                        Fast::Invalid => assert_eq!(reference, None, "{raw}"),
                        // Left to the library: a leading `86`, and the
                        // carrier-code heads 11x, 12x, 179 (CN's national
                        // prefix for parsing). The demo's mobile heads
                        // (13x, 15x, 170, 177, 18x, 199) must not be.
                        Fast::Unsupported => assert!(
                            raw.starts_with("86") || !demo_heads.contains(&prefix),
                            "{raw:?} declined"
                        ),
                    }
                }
            }
        }
        // A '+' with a '*' stays with the library (RFC 3966 country codes).
        let mut out = String::new();
        assert!(matches!(
            fast_phone("+86 138****8000", region, &mut out),
            Fast::Unsupported
        ));
        assert!(matches!(
            fast_phone("*+86 138****8000", region, &mut out),
            Fast::Unsupported
        ));
    }

    #[test]
    fn fast_path_agrees_on_every_cn_mobile_prefix() {
        // Validity of 11-digit numbers is decided by their leading digits;
        // cover all 5-digit prefixes with three different tails.
        let region = cn();
        for prefix in 10_000u32..20_000 {
            for tail in ["000000", "583921", "999999"] {
                for raw in [format!("{prefix}{tail}"), format!("+86 {prefix}{tail}")] {
                    let mut fast_out = String::new();
                    let reference = lib(&raw, region);
                    match fast_phone(&raw, region, &mut fast_out) {
                        Fast::Valid => assert_eq!(Some(fast_out), reference, "{raw}"),
                        Fast::Invalid => assert_eq!(reference, None, "{raw}"),
                        Fast::Unsupported => {}
                    }
                }
            }
        }
    }

    #[test]
    fn email_rules() {
        assert_eq!(
            normalize_email("  Zhang.San@Example.COM ").as_deref(),
            Some("zhang.san@example.com")
        );
        assert_eq!(
            normalize_email("ÄBC@Example.de").as_deref(),
            Some("äbc@example.de")
        );
        assert_eq!(
            normalize_email("a+tag@gmail.com").as_deref(),
            Some("a+tag@gmail.com")
        );
        for bad in [
            "",
            "  ",
            "no-at-sign",
            "@example.com",
            "user@",
            "a@b@c",
            "a b@c.com",
            "a@c\u{7}.com",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn normalize_id_by_type() {
        let r = cn();
        assert_eq!(
            normalize_id(" PHONE ", "138 0013 8000", r).as_deref(),
            Some("+8613800138000")
        );
        assert_eq!(
            normalize_id("Email", " A@B.com", r).as_deref(),
            Some("a@b.com")
        );
        let h = "AB".repeat(32);
        assert_eq!(
            normalize_id("phone_SHA256", &format!(" {h} "), r),
            Some(h.to_ascii_lowercase())
        );
        assert_eq!(normalize_id("email_sha256", "abc", r), None);
        assert_eq!(normalize_id("email_sha256", &"g".repeat(64), r), None);
        assert_eq!(
            normalize_id("openid", "  oAbC123 ", r).as_deref(),
            Some("oAbC123")
        );
        assert_eq!(normalize_id("openid", "   ", r), None);
        assert_eq!(normalize_id("", "x", r).as_deref(), Some("x"));
    }

    #[test]
    fn kinds_and_families() {
        assert_eq!(id_kind("Phone"), IdKind::Phone);
        assert_eq!(id_kind("email "), IdKind::Email);
        assert_eq!(id_kind("PHONE_SHA256"), IdKind::Hashed);
        assert_eq!(id_kind("_sha256"), IdKind::Hashed);
        assert_eq!(id_kind("sha256"), IdKind::Other);
        assert_eq!(id_kind("设备_sha256"), IdKind::Hashed);
        assert_eq!(id_kind("é"), IdKind::Other);
        assert_eq!(type_family("phone_sha256"), "phone");
        assert_eq!(type_family("device_id"), "device_id");
        assert_eq!(canonical_type(" Device_ID "), "device_id");
    }

    #[test]
    fn hash_id_hashes_the_normalised_form() {
        let r = cn();
        let expected = {
            let mut s = String::new();
            sha256_hex_into("+8613800138000", &mut s);
            s
        };
        assert_eq!(hash_id("phone", "138-0013-8000", r), Some(expected.clone()));
        assert_eq!(
            hash_id("phone_sha256", &expected.to_uppercase(), r),
            Some(expected)
        );
        // Known vector: sha256("abc").
        assert_eq!(
            hash_id("openid", " abc ", r).as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            hash_id("email", "A@B.COM", r),
            hash_id("email", "a@b.com", r)
        );
        assert_eq!(hash_id("phone", "not a phone", r), None);
        assert_eq!(hash_id("email", "", r), None);
    }

    #[test]
    fn mask_phone_rules() {
        assert_eq!(mask_phone("13812345678").as_deref(), Some("138****5678"));
        assert_eq!(
            mask_phone(" 138-1234-5678 ").as_deref(),
            Some("138****5678")
        );
        assert_eq!(
            mask_phone("+86 138 1234 5678").as_deref(),
            Some("+86 138****5678")
        );
        assert_eq!(
            mask_phone("(+86)13812345678").as_deref(),
            Some("+86 138****5678")
        );
        assert_eq!(
            mask_phone("+1 650 253 0000").as_deref(),
            Some("+1 650****0000")
        );
        assert_eq!(mask_phone("12345678").as_deref(), Some("123****5678"));
        assert_eq!(mask_phone("1234567").as_deref(), Some("****67"));
        assert_eq!(mask_phone("123").as_deref(), Some("****23"));
        assert_eq!(mask_phone("12").as_deref(), Some("****"));
        assert_eq!(mask_phone("+0").as_deref(), Some("+****"));
        assert_eq!(mask_phone("+86").as_deref(), Some("+****"));
        for bad in ["", "  ", "abc", "138x1234", "1+38", "++86 138"] {
            assert_eq!(mask_phone(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn mask_email_rules() {
        assert_eq!(
            mask_email("zhang@example.com").as_deref(),
            Some("z***@example.com")
        );
        assert_eq!(
            mask_email(" Zhang@Example.com").as_deref(),
            Some("z***@example.com")
        );
        assert_eq!(
            mask_email("张三@example.cn").as_deref(),
            Some("张***@example.cn")
        );
        assert_eq!(mask_email("x@y").as_deref(), Some("x***@y"));
        assert_eq!(mask_email("nope"), None);
        assert_eq!(mask_email("@example.com"), None);
    }

    #[test]
    fn junk_values() {
        for junk in [
            "",
            "  ",
            "NULL",
            "null",
            "None",
            "unknown",
            "N/A",
            "na",
            "-",
            "0",
            "\\N",
            "00000000000",
            "11111111111",
            "999",
            "+8600000000000",
            "+86 00000000000",
            "+1111111111",
            "00000000-0000-0000-0000-000000000000",
            "00:00:00:00:00:00",
            "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        ] {
            assert!(is_junk(junk), "{junk:?} should be junk");
        }
        for fine in [
            "+8613800138000",
            "13800138000",
            "a@b.com",
            "11",
            "7",
            "01",
            "oAbC123",
            "00000000-0000-0000-0000-000000000001",
            "+8613333333333",
            "nullable",
            "0a",
        ] {
            assert!(!is_junk(fine), "{fine:?} should not be junk");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 2000,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn phone_like_strings_agree_with_library(raw in "[0-9 +()*\\-.]{0,22}") {
            let region = cn();
            let mut fast_out = String::new();
            let reference = lib(&raw, region);
            match fast_phone(&raw, region, &mut fast_out) {
                Fast::Valid => proptest::prop_assert_eq!(Some(fast_out), reference),
                Fast::Invalid => proptest::prop_assert_eq!(None, reference),
                Fast::Unsupported => {}
            }
        }

        /// Spellings composed the way exports write phones: an optional
        /// prefix (`+86`, `0086`, `86`, another country, a carrier code),
        /// digit groups joined by random separators (masking stars
        /// included), optional surrounding whitespace. The fast path must
        /// either decline or give exactly the library's answer.
        #[test]
        fn composed_spellings_agree_with_library(
            lead in "[ \t]{0,2}",
            prefix in proptest::sample::select(vec![
                "", "", "+86", "+86 ", "+86-", "(+86)", "(+86) ", "0086", "0086 ", "0086-",
                "86", "86 ", "+852 ", "+1 ", "00852", "17951 ", "0", "+", "+0086 ",
            ]),
            groups in proptest::collection::vec(("[0-9]{1,5}", "[ \\-.()*]{0,4}"), 1..6),
            trail in "[ \t*]{0,2}",
        ) {
            let mut raw = format!("{lead}{prefix}");
            for (digits, sep) in &groups {
                raw.push_str(digits);
                raw.push_str(sep);
            }
            raw.push_str(&trail);
            let region = cn();
            let mut fast_out = String::new();
            let reference = lib(&raw, region);
            match fast_phone(&raw, region, &mut fast_out) {
                Fast::Valid => proptest::prop_assert_eq!(Some(fast_out), reference, "{:?}", raw),
                Fast::Invalid => proptest::prop_assert_eq!(None, reference, "{:?}", raw),
                Fast::Unsupported => {}
            }
        }

        #[test]
        fn any_text_is_handled_without_panics(raw in proptest::prelude::any::<String>()) {
            let r = cn();
            let _ = normalize_phone(&raw, r);
            let _ = normalize_email(&raw);
            let _ = mask_phone(&raw);
            let _ = mask_email(&raw);
            let _ = is_junk(&raw);
            for t in ["phone", "email", "phone_sha256", "openid", &raw] {
                let _ = normalize_id(t, &raw, r);
                let _ = hash_id(t, &raw, r);
            }
        }
    }

    #[test]
    fn no_panics_on_odd_input() {
        let r = cn();
        for raw in [
            "+",
            "++",
            "(",
            "+٣",
            "\u{0}",
            "０",
            "+86\u{200b}138",
            "🙂",
            "+999999999999",
            "00",
            "+0086",
        ] {
            let _ = normalize_phone(raw, r);
            let _ = mask_phone(raw);
            let _ = mask_email(raw);
            let _ = is_junk(raw);
            let _ = hash_id("phone", raw, r);
        }
    }
}
