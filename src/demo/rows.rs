//! Writing one person's planned records: channel rows, ground-truth rows, identifier counts.

use sha2::{Digest, Sha256};

use super::DemoError;
use super::channels::{
    ADS, APP_EVENTS, APP_USERS, CHANNELS, POS, STORES, TMALL, WEBSHOP, WECHAT, campaign,
};
use super::people::{Base36, Device, Person, Space, Universe, group};
use super::plan::{DeviceRef, Plan, Show};
use super::writers::{SPAN, Sink, day_of, push_padded, push_u64, push_yymmdd};

/// Appends a mobile in one of the formats seen in real exports.
fn push_phone(out: &mut Vec<u8>, phone: u64, format: u8) {
    let (a, b, c) = (phone / 100_000_000, phone / 10_000 % 10_000, phone % 10_000);
    let (prefix, sep): (&[u8], &[u8]) = match format {
        1 => (b"+86", b""),
        2 => (b"+86 ", b"-"),
        3 => (b"", b" "),
        4 => (b"+86-", b"-"),
        5 => (b"", b"-"),
        _ => (b"", b""),
    };
    out.extend_from_slice(prefix);
    push_u64(out, a);
    out.extend_from_slice(sep);
    push_padded(out, b, 4);
    out.extend_from_slice(sep);
    push_padded(out, c, 4);
}

/// Appends the email as shown by a channel: canonical, capitalised, upper-case, or with a stray
/// space before or after.
fn push_email(out: &mut Vec<u8>, email: &str, style: u8) {
    match style {
        1 => {
            let mut chars = email.bytes();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_uppercase());
            }
            out.extend(chars);
        }
        2 => out.extend(email.bytes().map(|b| b.to_ascii_uppercase())),
        3 => {
            out.push(b' ');
            out.extend_from_slice(email.as_bytes());
        }
        4 => {
            out.extend_from_slice(email.as_bytes());
            out.push(b' ');
        }
        _ => out.extend_from_slice(email.as_bytes()),
    }
}

fn tier(value: u64, thresholds: &[u64], names: &'static [&'static str]) -> &'static str {
    let i = thresholds.iter().filter(|&&t| value >= t).count();
    names[i.min(names.len() - 1)]
}

/// Counts the distinct non-empty identifiers of one record, as the `identities` view will.
#[derive(Default)]
pub(crate) struct IdCounter {
    seen: Vec<u64>,
    /// Identifier rows so far.
    pub(crate) total: usize,
}

impl IdCounter {
    fn add(&mut self, id_type: u8, value: &[u8]) {
        if value.iter().all(|b| b.is_ascii_whitespace()) {
            return;
        }
        // FNV-1a over the type and the raw value.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(id_type);
        for &b in value {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.seen.push(h);
    }

    fn end_record(&mut self) {
        self.seen.sort_unstable();
        self.seen.dedup();
        self.total += self.seen.len();
        self.seen.clear();
    }
}

/// Reusable text buffers for one row.
#[derive(Default)]
pub(crate) struct Scratch {
    key: Vec<u8>,
    a: Vec<u8>,
    b: Vec<u8>,
    c: Vec<u8>,
}

fn text(v: &[u8]) -> &str {
    // Every buffer is built from ASCII or from `&str` pieces.
    std::str::from_utf8(v).unwrap_or_default()
}

/// Writes every planned record of `p`: channel rows, ground-truth rows and identifier counts.
pub(crate) fn emit(
    plan: &Plan,
    u: &Universe,
    p: &Person,
    sinks: &mut [Sink],
    truth: &mut Sink,
    ids: &mut IdCounter,
    s: &mut Scratch,
) -> Result<(), DemoError> {
    let person_id = p.index + 1;
    let mut truth_row = |channel: usize, key: &[u8]| -> Result<(), DemoError> {
        // `record_id` is `channel:key`, as the server builds it.
        truth.begin_text();
        truth.push_text(CHANNELS[channel].name.as_bytes());
        truth.push_text(b":");
        truth.push_text(key);
        truth.int(person_id);
        truth.end_row()
    };

    if plan.present[TMALL] {
        let nick_token = u.scrambled(Space::Nick, p.index);
        s.key.clear();
        if nick_token % 5 < 3 {
            s.key.extend_from_slice(b"tb");
            push_padded(&mut s.key, p.index % 97, 2);
            push_padded(&mut s.key, nick_token, 8);
        } else {
            s.key.extend_from_slice(p.given.as_bytes());
            s.key.extend_from_slice(p.surname.as_bytes());
            s.key.push(b'_');
            s.key
                .extend_from_slice(Base36(nick_token).to_string().as_bytes());
        }
        let spend = p.spend(group::TMALL, SPAN) / 100;
        let (level, points) = if plan.tmall_member {
            let level = tier(
                spend,
                &[500, 1500, 4000, 10_000],
                &["V1", "V2", "V3", "V4", "V5"],
            );
            (level, spend - spend * (p.index % 7) / 20)
        } else {
            ("", 0)
        };
        ids.add(0, &s.key);
        let sink = &mut sinks[TMALL];
        let mut k = 0;
        for (o, show) in p.orders.iter().zip(&plan.order_show) {
            if o.group != group::TMALL {
                continue;
            }
            s.a.clear();
            push_yymmdd(&mut s.a, o.ts);
            push_padded(&mut s.a, nick_token, 8);
            push_padded(&mut s.a, k, 2);
            k += 1;
            s.b.clear();
            match *show {
                Show::Full(f) => push_phone(&mut s.b, p.phone, f),
                Show::Masked => {
                    push_u64(&mut s.b, p.phone / 100_000_000);
                    s.b.extend_from_slice(b"****");
                    push_padded(&mut s.b, p.phone % 10_000, 4);
                }
                Show::Missing => {}
                Show::Junk(j) => s.b.extend_from_slice(j.as_bytes()),
            }
            ids.add(1, &s.b);
            sink.text(text(&s.a));
            sink.text(text(&s.key));
            sink.text(text(&s.b));
            sink.text(plan.province);
            sink.ts(o.ts);
            sink.money(o.cents);
            sink.text(level);
            if plan.tmall_member {
                sink.int(points);
            } else {
                sink.text("");
            }
            sink.end_row()?;
        }
        ids.end_record();
        truth_row(TMALL, &s.key)?;
    }

    if plan.present[APP_USERS] {
        s.key.clear();
        s.key.push(b'1');
        push_padded(&mut s.key, u.scrambled(Space::AppUser, p.index), 8);
        let sink = &mut sinks[APP_USERS];
        s.a.clear();
        push_phone(&mut s.a, p.phone, 0);
        s.b.clear();
        if let Some(style) = plan.app_email {
            push_email(&mut s.b, &p.email, style);
        }
        s.c.clear();
        let device = DeviceRef::Own(plan.app_device).device(p);
        push_device(&mut s.c, device);
        let synced = day_of(2025, 6, 30) * 86_400;
        let spend = p.spend(group::ORDERS, synced) / 100;
        let level = tier(spend, &[2_000, 8_000], &["silver", "gold", "platinum"]);
        let points = 500 + spend * 10 - spend * 10 * (p.index % 5) / 10;
        sink.text(text(&s.key));
        sink.text(text(&s.a));
        sink.text(text(&s.b));
        sink.text(text(&s.c));
        sink.text(if device.ios { "ios" } else { "android" });
        sink.text(if plan.app_unionid { &p.unionid } else { "" });
        sink.text(level);
        sink.int(points);
        sink.ts(plan.registered);
        sink.end_row()?;
        for (t, v) in [(0u8, &s.key), (1, &s.a), (2, &s.b), (3, &s.c)] {
            ids.add(t, v);
        }
        if plan.app_unionid {
            ids.add(4, p.unionid.as_bytes());
        }
        ids.end_record();
        truth_row(APP_USERS, &s.key)?;

        if plan.present[APP_EVENTS] {
            let sink = &mut sinks[APP_EVENTS];
            ids.add(0, &s.key);
            for e in &plan.app_events {
                let device = e.device.device(p);
                s.c.clear();
                push_device(&mut s.c, device);
                ids.add(1, &s.c);
                s.a.clear();
                if e.sku > 0 {
                    s.a.extend_from_slice(b"SKU");
                    push_u64(&mut s.a, u64::from(e.sku));
                }
                sink.text(text(&s.key));
                sink.text(text(&s.c));
                sink.text(if device.ios { "ios" } else { "android" });
                sink.ts(e.ts);
                sink.text(e.event);
                sink.text(text(&s.a));
                sink.end_row()?;
            }
            ids.end_record();
            truth_row(APP_EVENTS, &s.key)?;
        }
    }

    if plan.present[WEBSHOP] {
        let token = u.scrambled(Space::Webshop, p.index);
        s.key.clear();
        s.key.push(b'5');
        push_padded(&mut s.key, token, 8);
        s.b.clear();
        push_email(&mut s.b, &p.email, plan.webshop_email);
        ids.add(0, &s.key);
        ids.add(1, &s.b);
        let sink = &mut sinks[WEBSHOP];
        let mut k = 0;
        for (o, show) in p.orders.iter().zip(&plan.order_show) {
            if o.group != group::WEBSHOP {
                continue;
            }
            s.a.clear();
            s.a.extend_from_slice(b"WS");
            push_yymmdd(&mut s.a, o.ts);
            push_padded(&mut s.a, token, 8);
            push_padded(&mut s.a, k, 2);
            k += 1;
            s.c.clear();
            match *show {
                Show::Full(f) => push_phone(&mut s.c, p.phone, f),
                Show::Junk(j) => s.c.extend_from_slice(j.as_bytes()),
                Show::Masked | Show::Missing => {}
            }
            ids.add(2, &s.c);
            sink.text(text(&s.a));
            sink.text(text(&s.key));
            sink.text(text(&s.b));
            sink.text(text(&s.c));
            sink.ts(o.ts);
            sink.money(o.cents);
            sink.int(1 + (o.cents / 7 + k) % 4);
            sink.end_row()?;
        }
        ids.end_record();
        truth_row(WEBSHOP, &s.key)?;
    }

    if plan.present[POS] {
        let token = u.scrambled(Space::Member, p.index);
        s.key.clear();
        s.key.extend_from_slice(b"00");
        push_padded(&mut s.key, token, 8);
        s.b.clear();
        match plan.pos_show {
            Show::Full(f) => push_phone(&mut s.b, p.phone, f),
            Show::Junk(j) => s.b.extend_from_slice(j.as_bytes()),
            Show::Masked | Show::Missing => {}
        }
        ids.add(0, &s.key);
        ids.add(1, &s.b);
        let spend = p.spend(group::POS, SPAN) / 100;
        let level = tier(
            spend,
            &[1_000, 3_000, 8_000],
            &["classic", "silver", "gold", "diamond"],
        );
        let points = spend * 2 - spend * 2 * (p.index % 3) / 10;
        let sink = &mut sinks[POS];
        for (k, o) in p
            .orders
            .iter()
            .filter(|o| o.group == group::POS)
            .enumerate()
        {
            let store = if (o.ts / 7 + p.index as u32).is_multiple_of(5) {
                STORES[(p.home_store + 1 + (o.ts as usize % 3)) % STORES.len()]
            } else {
                STORES[p.home_store]
            };
            s.a.clear();
            s.a.extend_from_slice(store.as_bytes());
            push_yymmdd(&mut s.a, o.ts);
            push_padded(&mut s.a, token, 8);
            push_padded(&mut s.a, k as u64, 2);
            sink.text(text(&s.a));
            sink.text(text(&s.key));
            sink.text(text(&s.b));
            sink.text(store);
            sink.ts(o.ts);
            sink.money(o.cents);
            sink.text(level);
            sink.int(points);
            sink.end_row()?;
        }
        ids.end_record();
        truth_row(POS, &s.key)?;
    }

    if plan.present[WECHAT] {
        s.b.clear();
        push_phone(&mut s.b, p.phone, plan.wx_phone_format);
        ids.add(0, p.openid.as_bytes());
        if plan.wx_unionid {
            ids.add(1, p.unionid.as_bytes());
        }
        let sink = &mut sinks[WECHAT];
        for (i, e) in plan.wx_events.iter().enumerate() {
            let authorised = plan.wx_auth_from.is_some_and(|from| i >= from);
            let (event, page) = if plan.wx_auth_from == Some(i) {
                ("authorize_phone", "pages/member/center")
            } else {
                (e.event, e.page)
            };
            sink.text(&p.openid);
            sink.text(if plan.wx_unionid { &p.unionid } else { "" });
            sink.text(if authorised { text(&s.b) } else { "" });
            sink.ts(e.ts);
            sink.text(event);
            sink.text(page);
            sink.end_row()?;
        }
        if plan.wx_auth_from.is_some() {
            ids.add(2, &s.b);
        }
        ids.end_record();
        truth_row(WECHAT, p.openid.as_bytes())?;
    }

    if plan.present[ADS] {
        let token = u.scrambled(Space::AdUser, p.index);
        s.key.clear();
        s.key.push(b'7');
        push_padded(&mut s.key, token, 8);
        push_padded(&mut s.key, p.index % 89, 2);
        let own = DeviceRef::Own(0).device(p);
        let (device, ios) = match plan.ad_device {
            Some(d) => (Some(d.device(p)), d.device(p).ios),
            None => (None, own.ios),
        };
        s.c.clear();
        match device {
            Some(d) => push_device(&mut s.c, d),
            None => {
                s.c.extend_from_slice(b"00000000-0000-0000-0000-000000000000")
            }
        }
        s.b.clear();
        if plan.ad_sha {
            s.a.clear();
            s.a.extend_from_slice(b"+86");
            push_u64(&mut s.a, p.phone);
            let digest = Sha256::digest(&s.a);
            s.b.extend_from_slice(hex::encode(digest).as_bytes());
        }
        ids.add(0, &s.key);
        ids.add(1, &s.c);
        ids.add(2, &s.b);
        let sink = &mut sinks[ADS];
        for (k, c) in plan.ad_clicks.iter().enumerate() {
            s.a.clear();
            s.a.extend_from_slice(b"CK");
            push_yymmdd(&mut s.a, c.ts);
            push_padded(&mut s.a, token, 8);
            push_padded(&mut s.a, k as u64, 2);
            sink.text(text(&s.a));
            sink.text(text(&s.key));
            sink.text(text(&s.c));
            sink.text(if ios { "ios" } else { "android" });
            sink.text(text(&s.b));
            sink.ts(c.ts);
            sink.text(campaign(c.ts / 86_400));
            sink.text(c.action);
            sink.end_row()?;
        }
        ids.end_record();
        truth_row(ADS, &s.key)?;
    }
    Ok(())
}

fn push_device(out: &mut Vec<u8>, d: Device) {
    d.push(out);
}
