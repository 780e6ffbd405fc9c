//! The true people behind the demo data, generated one at a time from `(seed, index)`: their
//! identifiers (one real mobile, an email, one or two devices, a WeChat account), the channels
//! they use, and when and how much they buy.
//!
//! Everything a person needs to be unique (mobile, email, account numbers) comes from a
//! bijective scramble of the person's index, so no two people ever collide by chance; the only
//! identifiers shared between people are the deliberate ones (household tablets, junk values).

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::writers::{DAYS, SPAN, day_of};

/// The most people the generator supports: account numbers are 8-digit scrambles of the index.
pub(crate) const MAX_PEOPLE: usize = 100_000_000;

/// Channel groups (one bit each). The brand app is one group with two channels: its user table
/// and its event log.
pub(crate) mod group {
    pub(crate) const TMALL: u8 = 1;
    pub(crate) const APP: u8 = 2;
    pub(crate) const WEBSHOP: u8 = 4;
    pub(crate) const POS: u8 = 8;
    pub(crate) const WECHAT: u8 = 16;
    pub(crate) const ADS: u8 = 32;
    /// Groups whose rows are orders.
    pub(crate) const ORDERS: u8 = TMALL | WEBSHOP | POS;
}

/// How likely each group is to be picked, in picking order.
const GROUP_WEIGHTS: [(u8, f64); 6] = [
    (group::TMALL, 0.62),
    (group::APP, 0.50),
    (group::WECHAT, 0.42),
    (group::ADS, 0.32),
    (group::POS, 0.30),
    (group::WEBSHOP, 0.24),
];

/// Valid Chinese mobile prefixes (libphonenumber's CN mobile ranges), the common ones repeated.
const MOBILE_PREFIXES: [u64; 40] = [
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 130, 135, 136, 137, 138, 139, 150, 151, 152,
    153, 155, 156, 157, 158, 159, 150, 158, 159, 180, 181, 182, 183, 185, 186, 187, 188, 189, 170,
    177, 199,
];

/// Test numbers and junk typed into phone fields; real people never get these.
pub(crate) const TEST_NUMBERS: [u64; 2] = [13_800_138_000, 13_800_000_000];

const SURNAMES: [&str; 20] = [
    "wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou", "xu", "sun", "ma",
    "zhu", "hu", "guo", "he", "lin", "luo", "gao",
];
const GIVEN: [&str; 30] = [
    "wei", "fang", "na", "min", "jing", "li", "qiang", "lei", "jun", "yang", "yong", "yan", "jie",
    "juan", "tao", "ming", "chao", "xiulan", "xia", "ping", "gang", "hui", "yu", "xin", "hao",
    "yi", "ting", "lu", "bo", "rui",
];
const WEB_DOMAINS: [&str; 6] = [
    "gmail.com",
    "outlook.com",
    "icloud.com",
    "hotmail.com",
    "foxmail.com",
    "sina.com",
];

/// The kinds of identifier scramble; each gives every person a distinct 8-digit number.
#[derive(Clone, Copy)]
pub(crate) enum Space {
    Phone = 0,
    Email,
    Nick,
    AppUser,
    Webshop,
    Member,
    AdUser,
}

/// A bijection of `0..10^8` (multiply by a unit modulo 10^8, then add).
#[derive(Clone, Copy)]
struct Scramble {
    mul: u64,
    add: u64,
}

impl Scramble {
    fn new(seed: u64, salt: u64) -> Self {
        let h = splitmix(seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut mul = 10_000_000 + h % 80_000_000;
        while mul.is_multiple_of(2) || mul.is_multiple_of(5) {
            mul += 1;
        }
        Scramble {
            mul,
            add: splitmix(h) % 100_000_000,
        }
    }

    fn apply(self, i: u64) -> u64 {
        (self.mul * i + self.add) % 100_000_000
    }
}

/// A 64-bit mixer (SplitMix64's finaliser): index-derived decisions that must not depend on
/// the order people are generated in.
pub(crate) fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform float in `[0, 1)`.
pub(crate) fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A standard normal variate (Box–Muller).
pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u = 1.0 - unit(rng);
    let v = unit(rng);
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// An exponential variate with the given mean.
pub(crate) fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    -(1.0 - unit(rng)).ln() * mean
}

/// A seconds-of-day with the evening-heavy shape of online shopping.
pub(crate) fn time_of_day(rng: &mut ChaCha8Rng, from_hour: u32, to_hour: u32) -> u32 {
    // Two draws, keep the later: skews towards the evening.
    let span = (to_hour - from_hour) * 3600;
    let a = rng.gen_range(0..span);
    let b = rng.gen_range(0..span);
    from_hour * 3600 + if unit(rng) < 0.6 { a.max(b) } else { a }
}

/// A device identifier: an Android OAID (lower-case UUID) or an iOS IDFA (upper-case UUID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Device {
    pub(crate) id: u128,
    pub(crate) ios: bool,
}

impl Device {
    fn random(rng: &mut ChaCha8Rng, ios: bool) -> Self {
        let id = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
        // Make it look like a version-4 UUID, and never all zeros.
        let id = (id & !(0xF000u128 << 64)) | (0x4000u128 << 64) | 1;
        Device { id, ios }
    }

    /// Appends the UUID text form.
    pub(crate) fn push(self, out: &mut Vec<u8>) {
        const LOWER: &[u8; 16] = b"0123456789abcdef";
        const UPPER: &[u8; 16] = b"0123456789ABCDEF";
        let hex = if self.ios { UPPER } else { LOWER };
        for i in 0..32 {
            if matches!(i, 8 | 12 | 16 | 20) {
                out.push(b'-');
            }
            let nibble = (self.id >> (124 - 4 * i)) & 15;
            out.push(hex[nibble as usize]);
        }
    }
}

/// One purchase, before it is written as a row of the channel it was made in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Order {
    /// Seconds after 2024-01-01 00:00:00.
    pub(crate) ts: u32,
    pub(crate) cents: u64,
    /// The group (tmall, webshop or pos) of the order.
    pub(crate) group: u8,
}

/// A junk identifier deliberately planted in a one-channel person's phone field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Junk {
    /// `00000000000` typed by a POS cashier (blocked as an all-same-digit value).
    Zeros,
    /// `13800138000`, the number cashiers use when a walk-in will not give theirs.
    CashierNumber,
    /// `13800000000`, a fake number typed at the web shop checkout.
    FakeNumber,
    /// `unknown` in a Tmall export.
    Unknown,
}

impl Junk {
    const ALL: [Junk; 4] = [
        Junk::Zeros,
        Junk::CashierNumber,
        Junk::FakeNumber,
        Junk::Unknown,
    ];

    /// The text written in the phone field.
    pub(crate) fn value(self) -> &'static str {
        match self {
            Junk::Zeros => "00000000000",
            Junk::CashierNumber => "13800138000",
            Junk::FakeNumber => "13800000000",
            Junk::Unknown => "unknown",
        }
    }

    /// The only group a person with this junk value appears in.
    fn group(self) -> u8 {
        match self {
            Junk::Zeros | Junk::CashierNumber => group::POS,
            Junk::FakeNumber => group::WEBSHOP,
            Junk::Unknown => group::TMALL,
        }
    }
}

/// Everything fixed by the seed and the number of people.
pub(crate) struct Universe {
    people: u64,
    base: ChaCha8Rng,
    scrambles: [Scramble; 7],
    /// In each of the first `junk_per_value` strides of `junk_stride` people, four carry a junk
    /// value (one per kind); zero disables junk people (tiny data sets).
    junk_stride: u64,
    junk_per_value: u64,
    household_salt: u64,
}

/// One household in this many consecutive triples of people shares a tablet.
const HOUSEHOLD_EVERY: u64 = 500;

impl Universe {
    pub(crate) fn new(seed: u64, people: usize) -> Self {
        let people = people as u64;
        let mut scrambles = [Scramble { mul: 1, add: 0 }; 7];
        for (i, s) in scrambles.iter_mut().enumerate() {
            *s = Scramble::new(seed, i as u64 + 1);
        }
        // Enough records per shared test number that the >50-records guard drops it, even when
        // a few of those people are household members instead (at most one in six).
        let junk_per_value = (people / 250).max(70);
        let junk_stride = people / junk_per_value;
        Universe {
            people,
            base: ChaCha8Rng::seed_from_u64(seed),
            scrambles,
            junk_stride: if junk_stride >= 8 { junk_stride } else { 0 },
            junk_per_value,
            household_salt: splitmix(seed ^ 0x686f_7573_6568_6f6c),
        }
    }

    /// The number of people.
    pub(crate) fn people(&self) -> u64 {
        self.people
    }

    /// The person-specific random stream.
    pub(crate) fn rng(&self, index: u64) -> ChaCha8Rng {
        let mut rng = self.base.clone();
        rng.set_stream(index);
        rng
    }

    /// A distinct 8-digit number per person in each identifier space.
    pub(crate) fn scrambled(&self, space: Space, index: u64) -> u64 {
        self.scrambles[space as usize].apply(index)
    }

    fn junk(&self, index: u64) -> Option<Junk> {
        if self.junk_stride == 0 || index / self.junk_stride >= self.junk_per_value {
            return None;
        }
        // Mid-stride, so the files do not open with the junk rows.
        let slot = (index % self.junk_stride).checked_sub(self.junk_stride / 2)?;
        Junk::ALL.get(slot as usize).copied()
    }

    /// The shared tablet of the household `index` belongs to, if any: persons `3b`, `3b+1`
    /// (and sometimes `3b+2`) of one triple `b` in every [`HOUSEHOLD_EVERY`].
    fn household_tablet(&self, index: u64) -> Option<Device> {
        let block = index / 3;
        if block % HOUSEHOLD_EVERY != HOUSEHOLD_EVERY / 2 {
            return None;
        }
        let h = splitmix(self.household_salt ^ block);
        let size = if h.is_multiple_of(5) { 3 } else { 2 };
        if index % 3 >= size {
            return None;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(h);
        Some(Device::random(&mut rng, false))
    }
}

/// One true person. Reused between people: `Universe::fill` overwrites every field.
#[derive(Default)]
pub(crate) struct Person {
    pub(crate) index: u64,
    /// The real mobile, 11 digits.
    pub(crate) phone: u64,
    /// The canonical (lower-case, trimmed) email.
    pub(crate) email: String,
    pub(crate) devices: Vec<Device>,
    /// A tablet shared with the rest of the household.
    pub(crate) tablet: Option<Device>,
    /// WeChat open-platform UnionID and the mini-program OpenID.
    pub(crate) unionid: String,
    pub(crate) openid: String,
    pub(crate) surname: &'static str,
    pub(crate) given: &'static str,
    /// Channel groups this person appears in.
    pub(crate) groups: u8,
    pub(crate) junk: Option<Junk>,
    /// Orders in time order.
    pub(crate) orders: Vec<Order>,
    /// First day the person is active anywhere.
    pub(crate) first_day: u32,
    /// A home store for POS visits (index into the store list).
    pub(crate) home_store: usize,
}

impl Person {
    /// The sum of this person's orders in `groups` (cents), optionally only up to `until`.
    pub(crate) fn spend(&self, groups: u8, until: u32) -> u64 {
        self.orders
            .iter()
            .filter(|o| o.group & groups != 0 && o.ts < until)
            .map(|o| o.cents)
            .sum()
    }
}

impl Universe {
    /// Generates person `index` into `p`, drawing from `rng`.
    pub(crate) fn fill(&self, index: u64, rng: &mut ChaCha8Rng, p: &mut Person, stores: usize) {
        p.index = index;
        // A household member is never one of the junk-value people.
        p.tablet = self.household_tablet(index);
        p.junk = if p.tablet.is_none() {
            self.junk(index)
        } else {
            None
        };

        // Mobile: a random valid prefix and a scrambled, person-unique 8-digit suffix.
        let suffix = self.scrambled(Space::Phone, index);
        let mut prefix = MOBILE_PREFIXES[rng.gen_range(0..MOBILE_PREFIXES.len())];
        if TEST_NUMBERS.contains(&(prefix * 100_000_000 + suffix)) {
            prefix = 199;
        }
        p.phone = prefix * 100_000_000 + suffix;

        p.surname = SURNAMES[rng.gen_range(0..SURNAMES.len())];
        p.given = GIVEN[rng.gen_range(0..GIVEN.len())];
        self.fill_email(index, rng, p);

        p.devices.clear();
        let ios = unit(rng) < 0.3;
        p.devices.push(Device::random(rng, ios));
        if unit(rng) < 0.25 {
            // A second phone or an iPad.
            let ios2 = if ios { true } else { unit(rng) < 0.3 };
            p.devices.push(Device::random(rng, ios2));
        }
        p.unionid.clear();
        push_wechat_id(rng, "o", &mut p.unionid);
        p.openid.clear();
        push_wechat_id(rng, "o", &mut p.openid);

        p.groups = match p.junk {
            Some(j) => j.group(),
            None => pick_groups(rng),
        };
        if p.tablet.is_some() {
            p.groups |= group::APP;
        }
        // Growth: more people start later in the window.
        p.first_day = ((unit(rng).powf(0.8)) * f64::from(DAYS - 1)) as u32;
        p.home_store = rng.gen_range(0..stores);
        fill_orders(rng, p);
    }

    fn fill_email(&self, index: u64, rng: &mut ChaCha8Rng, p: &mut Person) {
        use std::fmt::Write as _;
        let token = self.scrambled(Space::Email, index);
        p.email.clear();
        let style = unit(rng);
        // Writing to a String cannot fail.
        let _ = if style < 0.35 {
            write!(p.email, "{}@qq.com", 10_000_000 + token)
        } else if style < 0.6 {
            let domain = if unit(rng) < 0.6 {
                "163.com"
            } else {
                "126.com"
            };
            write!(
                p.email,
                "{}{}{}@{}",
                p.given,
                p.surname,
                Base36(token),
                domain
            )
        } else {
            let domain = WEB_DOMAINS[rng.gen_range(0..WEB_DOMAINS.len())];
            write!(
                p.email,
                "{}.{}.{}@{}",
                p.given,
                p.surname,
                Base36(token),
                domain
            )
        };
    }
}

/// Lower-case base-36 digits of a number (at least one digit).
pub(crate) struct Base36(pub(crate) u64);

impl std::fmt::Display for Base36 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut buf = [0u8; 13];
        let mut i = buf.len();
        let mut v = self.0;
        loop {
            i -= 1;
            buf[i] = DIGITS[(v % 36) as usize];
            v /= 36;
            if v == 0 {
                break;
            }
        }
        // The buffer holds ASCII digits only.
        f.write_str(std::str::from_utf8(&buf[i..]).unwrap_or_default())
    }
}

/// A WeChat-style 28-character id: a prefix and URL-safe base64 characters.
fn push_wechat_id(rng: &mut ChaCha8Rng, prefix: &str, out: &mut String) {
    const CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    out.push_str(prefix);
    let mut bits = 0u64;
    for i in 0..(28 - prefix.len()) {
        if i % 10 == 0 {
            bits = rng.next_u64();
        }
        out.push(char::from(CHARS[(bits & 63) as usize]));
        bits >>= 6;
    }
}

/// How many channel groups a person uses (skewed: most use two or three), then which.
fn pick_groups(rng: &mut ChaCha8Rng) -> u8 {
    let u = unit(rng);
    let k = if u < 0.16 {
        1
    } else if u < 0.52 {
        2
    } else if u < 0.82 {
        3
    } else if u < 0.95 {
        4
    } else {
        5
    };
    let mut chosen = 0u8;
    for _ in 0..k {
        let total: f64 = GROUP_WEIGHTS
            .iter()
            .filter(|(g, _)| chosen & g == 0)
            .map(|(_, w)| w)
            .sum();
        let mut x = unit(rng) * total;
        for &(g, w) in &GROUP_WEIGHTS {
            if chosen & g != 0 {
                continue;
            }
            if x < w {
                chosen |= g;
                break;
            }
            x -= w;
        }
    }
    if chosen == 0 {
        chosen = group::TMALL;
    }
    chosen
}

/// Orders over the two years: a first purchase, then repeat purchases at a personal rate until
/// the person drops out (the buy-till-you-die shape), spread over the person's order channels.
fn fill_orders(rng: &mut ChaCha8Rng, p: &mut Person) {
    p.orders.clear();
    let channels = p.groups & group::ORDERS;
    if channels == 0 {
        return;
    }
    let mut groups_buf = [0u8; 3];
    let mut n = 0;
    for g in [group::TMALL, group::WEBSHOP, group::POS] {
        if channels & g != 0 {
            groups_buf[n] = g;
            n += 1;
        }
    }
    let order_groups = &groups_buf[..n];
    let mean_gap_days = (75f64.ln() + 0.7 * normal(rng)).exp().clamp(3.0, 400.0);
    let dropout = rng.gen_range(0.12..0.6);
    let basket = (17_000f64.ln() + 0.6 * normal(rng)).exp();
    let mut t = p.first_day * 86_400 + time_of_day(rng, 8, 24);
    loop {
        p.orders.push(Order {
            ts: t,
            cents: 0,
            group: 0,
        });
        if p.orders.len() >= 40 || unit(rng) < dropout {
            break;
        }
        let next = f64::from(t) + exponential(rng, mean_gap_days) * 86_400.0;
        if next >= f64::from(SPAN) {
            break;
        }
        t = next as u32;
    }
    // Everyone in an order channel has bought there at least once.
    while p.orders.len() < order_groups.len() {
        let day = rng.gen_range(p.first_day..DAYS);
        p.orders.push(Order {
            ts: day * 86_400 + time_of_day(rng, 8, 24),
            cents: 0,
            group: 0,
        });
    }
    // A personal preference between the channels; the first orders cover each channel once.
    let mut prefs = [0f64; 3];
    for w in prefs.iter_mut().take(order_groups.len()) {
        *w = exponential(rng, 1.0);
    }
    let total: f64 = prefs.iter().sum();
    let start = rng.gen_range(0..order_groups.len());
    for (j, o) in p.orders.iter_mut().enumerate() {
        o.group = if j < order_groups.len() {
            order_groups[(start + j) % order_groups.len()]
        } else {
            let mut x = unit(rng) * total;
            let mut g = order_groups[order_groups.len() - 1];
            for (k, &w) in prefs.iter().enumerate().take(order_groups.len()) {
                if x < w {
                    g = order_groups[k];
                    break;
                }
                x -= w;
            }
            g
        };
        let factor = match o.group {
            group::TMALL => 0.9,
            group::POS => 1.15,
            _ => 1.0,
        };
        let mut cents = (basket * factor * (0.35 * normal(rng)).exp()).max(990.0) as u64;
        if o.group == group::POS {
            // Store prices end in whole yuan; some sales in .90.
            cents = cents / 100 * 100 + if unit(rng) < 0.3 { 90 } else { 0 };
        }
        o.cents = cents;
        if o.group == group::TMALL && unit(rng) < 0.12 {
            // Shopping festivals: 6.18 and Double 11.
            let (y, m, _) = super::writers::civil(o.ts / 86_400);
            let festival = if m <= 8 {
                day_of(y, 6, 18)
            } else {
                day_of(y, 11, 11)
            };
            if festival >= p.first_day {
                o.ts = festival * 86_400 + o.ts % 86_400;
            }
        }
    }
    p.orders.sort_by_key(|o| (o.ts, o.group));
}
