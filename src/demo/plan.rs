//! How one person shows up in every channel, decided before anything is written.
//!
//! Every record of a person is planned first, then checked: a record that shares no usable
//! identifier with the rest of the person's records (a Tmall buyer whose orders all carry masked
//! mobiles, a mini-program user who never authorised a phone, an ad click with a zeroed IDFA) is
//! given the person's phone, except for a small, deliberate share that stays unlinkable, as in
//! real data. That keeps OneID's achievable recall high and known.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::channels::{ADS, APP_EVENTS, APP_USERS, POS, PROVINCES, TMALL, WEBSHOP, WECHAT};
use super::people::{Device, Person, group, time_of_day, unit};
use super::writers::{DAYS, SPAN};

/// How a phone appears in one row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Show {
    /// The real number in one of the formats of `rows::push_phone`.
    Full(u8),
    /// `138****8000`: not linkable.
    Masked,
    #[default]
    Missing,
    Junk(&'static str),
}

/// Link bits: which of the person's identifiers a record carries in linkable form.
mod link {
    pub(super) const PHONE: u8 = 1;
    pub(super) const EMAIL: u8 = 2;
    pub(super) const DEVICE0: u8 = 4;
    pub(super) const DEVICE1: u8 = 8;
    pub(super) const TABLET: u8 = 16;
    pub(super) const UNIONID: u8 = 32;
    pub(super) const APP_USER: u8 = 64;
}

/// Share of naturally unlinkable records (per channel) left unlinkable on purpose.
const KEEP_UNLINKABLE: [f64; 7] = [0.03, 0.0, 0.0, 0.03, 0.03, 0.025, 0.03];

/// Which device of a person an app session or ad click used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeviceRef {
    Own(usize),
    Tablet,
}

impl DeviceRef {
    fn bit(self) -> u8 {
        match self {
            DeviceRef::Own(0) => link::DEVICE0,
            DeviceRef::Own(_) => link::DEVICE1,
            DeviceRef::Tablet => link::TABLET,
        }
    }

    pub(crate) fn device(self, p: &Person) -> Device {
        match self {
            DeviceRef::Own(i) => p.devices[i],
            DeviceRef::Tablet => p.tablet.unwrap_or(p.devices[0]),
        }
    }
}

/// One row of the app event log.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AppEvent {
    pub(crate) ts: u32,
    pub(crate) event: &'static str,
    pub(crate) device: DeviceRef,
    pub(crate) sku: u32,
}

/// One row of the mini-program log.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WxEvent {
    pub(crate) ts: u32,
    pub(crate) event: &'static str,
    pub(crate) page: &'static str,
}

/// One row of the ad click log.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdClick {
    pub(crate) ts: u32,
    pub(crate) action: &'static str,
}

/// How one person appears in every channel, decided before anything is written.
#[derive(Default)]
pub(crate) struct Plan {
    pub(crate) present: [bool; 7],
    /// Phone display per order (parallel to `Person::orders`).
    pub(crate) order_show: Vec<Show>,
    pub(crate) pos_show: Show,
    pub(crate) tmall_member: bool,
    pub(crate) province: &'static str,
    pub(crate) app_email: Option<u8>,
    pub(crate) app_unionid: bool,
    pub(crate) app_device: usize,
    pub(crate) registered: u32,
    pub(crate) app_events: Vec<AppEvent>,
    pub(crate) webshop_email: u8,
    pub(crate) wx_events: Vec<WxEvent>,
    pub(crate) wx_unionid: bool,
    pub(crate) wx_auth_from: Option<usize>,
    pub(crate) wx_phone_format: u8,
    pub(crate) ad_clicks: Vec<AdClick>,
    pub(crate) ad_device: Option<DeviceRef>,
    pub(crate) ad_sha: bool,
    pub(crate) locked: bool,
}

impl Plan {
    /// Plans every record of `p`.
    pub(crate) fn build(&mut self, rng: &mut ChaCha8Rng, p: &Person) {
        self.present = [false; 7];
        self.locked = p.junk.is_some();
        self.order_show.clear();
        for o in &p.orders {
            let show = match o.group {
                group::TMALL => pick_show(rng, 0.22, 0.04, 0.01, &[(0, 0.7), (1, 0.15), (2, 0.15)]),
                group::WEBSHOP => pick_show(
                    rng,
                    0.0,
                    0.08,
                    0.02,
                    &[(0, 0.5), (2, 0.2), (5, 0.15), (1, 0.15)],
                ),
                _ => Show::Missing,
            };
            self.order_show.push(show);
        }
        self.present[TMALL] = p.groups & group::TMALL != 0;
        self.present[WEBSHOP] = p.groups & group::WEBSHOP != 0;
        self.present[POS] = p.groups & group::POS != 0;
        self.tmall_member = unit(rng) < 0.7;
        self.province = PROVINCES[rng.gen_range(0..PROVINCES.len())];
        self.pos_show = if unit(rng) < 0.02 {
            Show::Missing
        } else {
            pick_show(rng, 0.0, 0.0, 0.0, &[(3, 0.35), (4, 0.2), (0, 0.45)])
        };
        self.webshop_email =
            pick_format(rng, &[(0, 0.55), (1, 0.2), (2, 0.05), (3, 0.1), (4, 0.1)]);
        if let Some(j) = p.junk {
            // One-channel people with a junk phone: every phone field holds the junk value.
            for s in &mut self.order_show {
                *s = Show::Junk(j.value());
            }
            self.pos_show = Show::Junk(j.value());
        }
        self.plan_app(rng, p);
        self.plan_wechat(rng, p);
        self.plan_ads(rng, p);
        self.ensure_links(rng, p);
    }

    fn plan_app(&mut self, rng: &mut ChaCha8Rng, p: &Person) {
        self.app_events.clear();
        if p.groups & group::APP == 0 {
            return;
        }
        self.present[APP_USERS] = true;
        self.app_email =
            (unit(rng) < 0.45).then(|| pick_format(rng, &[(0, 0.6), (1, 0.3), (2, 0.1)]));
        self.app_unionid = unit(rng) < 0.35;
        self.app_device = if p.devices.len() > 1 && unit(rng) < 0.4 {
            1
        } else {
            0
        };
        let reg_day = p.first_day.saturating_sub(rng.gen_range(0..90));
        self.registered = reg_day * 86_400 + time_of_day(rng, 7, 24);
        if p.tablet.is_none() && unit(rng) < 0.12 {
            return; // registered, never active since
        }
        let mut sessions = 1;
        while sessions < 25 && unit(rng) < 0.55 {
            sessions += 1;
        }
        for s in 0..sessions {
            let device = if p.tablet.is_some() && (s == 0 || unit(rng) < 0.3) {
                DeviceRef::Tablet
            } else if p.devices.len() > 1 && unit(rng) < 0.3 {
                DeviceRef::Own(1)
            } else {
                DeviceRef::Own(0)
            };
            let day = rng.gen_range(reg_day..DAYS);
            let mut ts = (day * 86_400 + time_of_day(rng, 7, 24)).min(SPAN - 3_600);
            let mut push = |ts: u32, event: &'static str, sku: u32| {
                self.app_events.push(AppEvent {
                    ts,
                    event,
                    device,
                    sku,
                });
            };
            push(ts, "app_open", 0);
            if unit(rng) < 0.3 {
                ts += rng.gen_range(5..60);
                push(ts, "search", 0);
            }
            let views = rng.gen_range(1..=3);
            let mut sku = 0;
            for _ in 0..views {
                ts += rng.gen_range(5..120);
                sku = 10_000 + rng.gen_range(0..300);
                push(ts, "view_product", sku);
            }
            if unit(rng) < 0.35 {
                ts += rng.gen_range(5..90);
                push(ts, "add_to_cart", sku);
                if unit(rng) < 0.55 {
                    ts += rng.gen_range(10..300);
                    push(ts, "checkout", sku);
                    if unit(rng) < 0.85 {
                        ts += rng.gen_range(5..60);
                        push(ts, "pay_success", sku);
                    }
                }
            }
        }
        self.app_events.sort_by_key(|e| e.ts);
        self.present[APP_EVENTS] = !self.app_events.is_empty();
    }

    fn plan_wechat(&mut self, rng: &mut ChaCha8Rng, p: &Person) {
        self.wx_events.clear();
        if p.groups & group::WECHAT == 0 {
            return;
        }
        self.present[WECHAT] = true;
        self.wx_unionid = unit(rng) < 0.85;
        let sessions = 1 + usize::from(unit(rng) < 0.45) + usize::from(unit(rng) < 0.2);
        let start = p.first_day.saturating_sub(rng.gen_range(0..30));
        for _ in 0..sessions {
            let day = rng.gen_range(start..DAYS);
            let mut ts = (day * 86_400 + time_of_day(rng, 7, 24)).min(SPAN - 3_600);
            self.wx_events.push(WxEvent {
                ts,
                event: "page_view",
                page: "pages/index/index",
            });
            for _ in 0..rng.gen_range(0..4) {
                ts += rng.gen_range(3..180);
                let u = unit(rng);
                let (event, page) = if u < 0.5 {
                    ("page_view", "pages/goods/detail")
                } else if u < 0.65 {
                    ("add_to_cart", "pages/goods/detail")
                } else if u < 0.75 {
                    ("share", "pages/goods/detail")
                } else if u < 0.9 {
                    ("page_view", "pages/member/center")
                } else {
                    ("pay_success", "pages/order/result")
                };
                self.wx_events.push(WxEvent { ts, event, page });
            }
        }
        self.wx_events.sort_by_key(|e| e.ts);
        self.wx_phone_format = if unit(rng) < 0.8 { 0 } else { 1 };
        self.wx_auth_from = (unit(rng) < 0.55).then(|| rng.gen_range(0..self.wx_events.len()));
    }

    fn plan_ads(&mut self, rng: &mut ChaCha8Rng, p: &Person) {
        self.ad_clicks.clear();
        if p.groups & group::ADS == 0 {
            return;
        }
        self.present[ADS] = true;
        let clicks = 1 + usize::from(unit(rng) < 0.35) + usize::from(unit(rng) < 0.12);
        for _ in 0..clicks {
            let day = if unit(rng) < 0.6 {
                p.first_day.saturating_sub(rng.gen_range(0..60))
            } else {
                rng.gen_range(p.first_day..DAYS)
            };
            let action = if unit(rng) < 0.12 { "convert" } else { "click" };
            self.ad_clicks.push(AdClick {
                ts: day * 86_400 + time_of_day(rng, 7, 24),
                action,
            });
        }
        self.ad_clicks.sort_by_key(|c| c.ts);
        let which = if p.devices.len() > 1 && unit(rng) < 0.3 {
            1
        } else {
            0
        };
        let zeroed = if p.devices[which].ios { 0.6 } else { 0.08 };
        self.ad_device = (unit(rng) >= zeroed).then_some(DeviceRef::Own(which));
        self.ad_sha = unit(rng) < 0.45;
    }

    /// The link bits of each record.
    fn masks(&self, p: &Person) -> [u8; 7] {
        let mut m = [0u8; 7];
        for (o, s) in p.orders.iter().zip(&self.order_show) {
            if matches!(s, Show::Full(_)) {
                match o.group {
                    group::TMALL => m[TMALL] |= link::PHONE,
                    group::WEBSHOP => m[WEBSHOP] |= link::PHONE,
                    _ => {}
                }
            }
        }
        m[WEBSHOP] |= link::EMAIL;
        if matches!(self.pos_show, Show::Full(_)) {
            m[POS] |= link::PHONE;
        }
        m[APP_USERS] = link::PHONE | link::APP_USER | DeviceRef::Own(self.app_device).bit();
        if self.app_email.is_some() {
            m[APP_USERS] |= link::EMAIL;
        }
        if self.app_unionid {
            m[APP_USERS] |= link::UNIONID;
        }
        m[APP_EVENTS] = link::APP_USER;
        for e in &self.app_events {
            m[APP_EVENTS] |= e.device.bit();
        }
        if self.wx_unionid {
            m[WECHAT] |= link::UNIONID;
        }
        if self.wx_auth_from.is_some() {
            m[WECHAT] |= link::PHONE;
        }
        if let Some(d) = self.ad_device {
            m[ADS] |= d.bit();
        }
        if self.ad_sha {
            m[ADS] |= link::PHONE;
        }
        for (i, bits) in m.iter_mut().enumerate() {
            if !self.present[i] {
                *bits = 0;
            }
        }
        m
    }

    /// Which records reach a record carrying the phone, through shared identifiers.
    fn reach(&self, masks: &[u8; 7]) -> [bool; 7] {
        let mut reach = [false; 7];
        for i in 0..7 {
            reach[i] = self.present[i] && masks[i] & link::PHONE != 0;
        }
        loop {
            let mut changed = false;
            for i in 0..7 {
                if !self.present[i] || reach[i] {
                    continue;
                }
                if (0..7).any(|j| reach[j] && masks[i] & masks[j] != 0) {
                    reach[i] = true;
                    changed = true;
                }
            }
            if !changed {
                return reach;
            }
        }
    }

    /// Gives unreachable records the person's phone, except a deliberate few.
    fn ensure_links(&mut self, rng: &mut ChaCha8Rng, p: &Person) {
        if self.present.iter().filter(|&&x| x).count() < 2 || self.locked {
            return;
        }
        let mut reach = self.reach(&self.masks(p));
        if !reach.iter().any(|&r| r)
            && let Some(first) = (0..7).find(|&i| self.present[i])
        {
            self.add_phone(rng, p, first);
            reach = self.reach(&self.masks(p));
        }
        for i in 0..7 {
            if !self.present[i] || reach[i] {
                continue;
            }
            if unit(rng) < KEEP_UNLINKABLE[i] {
                continue;
            }
            self.add_phone(rng, p, i);
            reach = self.reach(&self.masks(p));
        }
    }

    fn add_phone(&mut self, rng: &mut ChaCha8Rng, p: &Person, channel: usize) {
        let wanted = match channel {
            TMALL => group::TMALL,
            WEBSHOP => group::WEBSHOP,
            POS => {
                self.pos_show = Show::Full(0);
                return;
            }
            WECHAT => {
                self.wx_auth_from = Some(rng.gen_range(0..self.wx_events.len()));
                return;
            }
            ADS => {
                self.ad_sha = true;
                return;
            }
            _ => return,
        };
        let candidates = p.orders.iter().filter(|o| o.group == wanted).count();
        if candidates == 0 {
            return;
        }
        let pick = rng.gen_range(0..candidates);
        let slot = p
            .orders
            .iter()
            .enumerate()
            .filter(|(_, o)| o.group == wanted)
            .nth(pick)
            .map(|(i, _)| i);
        if let Some(i) = slot {
            self.order_show[i] = Show::Full(0);
        }
    }
}

fn pick_format(rng: &mut ChaCha8Rng, choices: &[(u8, f64)]) -> u8 {
    let mut x = unit(rng);
    for &(f, w) in choices {
        if x < w {
            return f;
        }
        x -= w;
    }
    choices.last().map_or(0, |c| c.0)
}

fn pick_show(
    rng: &mut ChaCha8Rng,
    masked: f64,
    missing: f64,
    junk: f64,
    formats: &[(u8, f64)],
) -> Show {
    const JUNK: [&str; 4] = ["unknown", "null", "n/a", "00000000000"];
    let u = unit(rng);
    if u < masked {
        Show::Masked
    } else if u < masked + missing {
        Show::Missing
    } else if u < masked + missing + junk {
        Show::Junk(JUNK[rng.gen_range(0..JUNK.len())])
    } else {
        Show::Full(pick_format(rng, formats))
    }
}
