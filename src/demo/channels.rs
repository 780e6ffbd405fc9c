//! The demo channels: what each system's export looks like. `CHANNELS` is the single source of
//! the files' columns, the generated `userql.toml`, and the test's reference linker.

use super::writers::{Format, day_of};

/// One channel of the demo: a file and how its columns map to userql's roles.
pub(crate) struct ChannelSpec {
    /// Table name under schema `channels`.
    pub(crate) name: &'static str,
    /// File name inside the output folder.
    pub(crate) file: &'static str,
    pub(crate) format: Format,
    /// One line for the config comment.
    pub(crate) about: &'static str,
    /// The channel's own user key column.
    pub(crate) record_key: &'static str,
    /// Columns in file order.
    pub(crate) columns: &'static [&'static str],
    /// `(id_type, column)` pairs.
    pub(crate) ids: &'static [(&'static str, &'static str)],
    /// `(ts, amount)` columns when rows are orders.
    pub(crate) orders: Option<(&'static str, &'static str)>,
    /// `(ts, event)` columns when rows are events.
    pub(crate) events: Option<(&'static str, &'static str)>,
}

pub(crate) const TMALL: usize = 0;
pub(crate) const APP_USERS: usize = 1;
pub(crate) const APP_EVENTS: usize = 2;
pub(crate) const WEBSHOP: usize = 3;
pub(crate) const POS: usize = 4;
pub(crate) const WECHAT: usize = 5;
pub(crate) const ADS: usize = 6;

/// The demo channels, in file-writing and ground-truth order.
pub(crate) const CHANNELS: [ChannelSpec; 7] = [
    ChannelSpec {
        name: "tmall",
        file: "tmall_orders.csv",
        format: Format::Csv,
        about: "Tmall flagship store order export: one row per order; mobiles vary in format, some masked or missing",
        record_key: "buyer_nick",
        columns: &[
            "order_id",
            "buyer_nick",
            "mobile",
            "province",
            "paid_at",
            "payment",
            "member_level",
            "points",
        ],
        ids: &[("tmall_nick", "buyer_nick"), ("phone", "mobile")],
        orders: Some(("paid_at", "payment")),
        events: None,
    },
    ChannelSpec {
        name: "app_users",
        file: "app_users.csv",
        format: Format::Csv,
        about: "The brand app's user table: login phone, email, last device, WeChat login; levels silver/gold/platinum",
        record_key: "user_id",
        columns: &[
            "user_id",
            "phone",
            "email",
            "device_id",
            "os",
            "wechat_unionid",
            "member_level",
            "points",
            "registered_at",
        ],
        ids: &[
            ("app_user_id", "user_id"),
            ("phone", "phone"),
            ("email", "email"),
            ("device_id", "device_id"),
            ("unionid", "wechat_unionid"),
        ],
        orders: None,
        events: None,
    },
    ChannelSpec {
        name: "app_events",
        file: "app_events.ndjson",
        format: Format::Ndjson,
        about: "The brand app's event log: sessions from app_open to pay_success, per device",
        record_key: "user_id",
        columns: &[
            "user_id",
            "device_id",
            "platform",
            "event_time",
            "event",
            "sku",
        ],
        ids: &[("app_user_id", "user_id"), ("device_id", "device_id")],
        orders: None,
        events: Some(("event_time", "event")),
    },
    ChannelSpec {
        name: "webshop",
        file: "webshop_orders.ndjson",
        format: Format::Ndjson,
        about: "The brand's own web shop orders: account email (mixed case, stray spaces) and delivery phone",
        record_key: "account_id",
        columns: &[
            "order_no",
            "account_id",
            "email",
            "phone",
            "created_at",
            "total",
            "items",
        ],
        ids: &[
            ("webshop_account", "account_id"),
            ("email", "email"),
            ("phone", "phone"),
        ],
        orders: Some(("created_at", "total")),
        events: None,
    },
    ChannelSpec {
        name: "pos",
        file: "pos_transactions.csv",
        format: Format::Csv,
        about: "Offline store POS transactions of loyalty members; levels classic/silver/gold/diamond",
        record_key: "member_no",
        columns: &[
            "txn_id",
            "member_no",
            "phone",
            "store_code",
            "txn_time",
            "amount",
            "level",
            "points",
        ],
        ids: &[("member_no", "member_no"), ("phone", "phone")],
        orders: Some(("txn_time", "amount")),
        events: None,
    },
    ChannelSpec {
        name: "wechat",
        file: "wechat_miniprogram.csv",
        format: Format::Csv,
        about: "WeChat mini-program page events: OpenID, UnionID, phone once the user authorised it",
        record_key: "openid",
        columns: &["openid", "unionid", "phone", "event_time", "event", "page"],
        ids: &[
            ("openid", "openid"),
            ("unionid", "unionid"),
            ("phone", "phone"),
        ],
        orders: None,
        events: Some(("event_time", "event")),
    },
    ChannelSpec {
        name: "ads",
        file: "ads_clicks.csv",
        format: Format::Csv,
        about: "Ad platform click log: device id (zeroed when tracking is denied) and hashed phone",
        record_key: "ad_user",
        columns: &[
            "click_id",
            "ad_user",
            "device_id",
            "os",
            "phone_sha256",
            "click_time",
            "campaign",
            "action",
        ],
        ids: &[
            ("ad_user", "ad_user"),
            ("device_id", "device_id"),
            ("phone_sha256", "phone_sha256"),
        ],
        orders: None,
        events: Some(("click_time", "action")),
    },
];

/// Stores of the offline POS channel.
pub(crate) const STORES: [&str; 30] = [
    "SH001", "SH002", "SH003", "SH004", "SH005", "SH006", "BJ001", "BJ002", "BJ003", "BJ004",
    "BJ005", "GZ001", "GZ002", "GZ003", "GZ004", "SZ001", "SZ002", "SZ003", "SZ004", "HZ001",
    "HZ002", "HZ003", "CD001", "CD002", "CD003", "WH001", "WH002", "NJ001", "NJ002", "XA001",
];

pub(crate) const PROVINCES: [&str; 16] = [
    "广东省",
    "浙江省",
    "江苏省",
    "上海市",
    "北京市",
    "山东省",
    "四川省",
    "福建省",
    "湖北省",
    "河南省",
    "湖南省",
    "安徽省",
    "陕西省",
    "天津市",
    "重庆市",
    "辽宁省",
];

/// Campaigns and the days (from 2024-01-01) they ran; `always_on_retargeting` fills the gaps.
pub(crate) fn campaign(day: u32) -> &'static str {
    const RUNS: [(&str, u32, u32); 6] = [
        ("2024_cny_brand", day_of(2024, 1, 15), day_of(2024, 2, 20)),
        ("2024_618_search", day_of(2024, 5, 20), day_of(2024, 6, 20)),
        (
            "2024_double11_live",
            day_of(2024, 10, 15),
            day_of(2024, 11, 12),
        ),
        ("2025_cny_brand", day_of(2025, 1, 5), day_of(2025, 2, 10)),
        ("2025_618_feed", day_of(2025, 5, 15), day_of(2025, 6, 20)),
        (
            "2025_double11_live",
            day_of(2025, 10, 10),
            day_of(2025, 11, 12),
        ),
    ];
    for (name, from, to) in RUNS {
        if (from..=to).contains(&day) {
            return name;
        }
    }
    "always_on_retargeting"
}
