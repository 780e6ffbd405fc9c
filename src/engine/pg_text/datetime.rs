//! Dates and timestamps in PostgreSQL's text forms (DateStyle `ISO, MDY`).
//!
//! Input accepts what `date_in` / `timestamp_in` accept for the forms clients and CSV
//! files use: `2024-01-05`, `2024/01/05`, `20240105`, `01/05/2024` (month first),
//! an optional time `10:30[:15[.123456]]` after a space or `T` (`24:00:00` is the next
//! midnight), an optional zone (`Z`, `+08`, `+08:00`, `+0800`, `UTC`, `Asia/Shanghai`),
//! `BC`, and `epoch`. Fractions finer than the column keeps are rounded (half up). A
//! `timestamp` (without time zone) ignores a zone written in its input, as PostgreSQL
//! does; a `timestamptz` without one is in the session's `TimeZone`. `infinity` cannot be
//! stored and is refused.
//!
//! Output is PostgreSQL's ISO style: `2025-01-16 10:59:55`, fractions without trailing
//! zeros, `timestamptz` in the session's zone with its offset (`+08`, `+05:30`), years
//! before 1 as `0044-03-15 BC`.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike};
use datafusion::arrow::array::timezone::Tz;
use std::fmt::Write;

use crate::error::{UserqlError, sqlstate};

const INVALID_DATETIME_FORMAT: &str = sqlstate::INVALID_DATETIME_FORMAT;
const DATETIME_FIELD_OVERFLOW: &str = sqlstate::DATETIME_FIELD_OVERFLOW;

fn syntax(type_name: &str, input: &str) -> UserqlError {
    UserqlError::new(
        INVALID_DATETIME_FORMAT,
        format!("invalid input syntax for type {type_name}: \"{input}\""),
    )
}

fn out_of_range(input: &str) -> UserqlError {
    UserqlError::new(
        DATETIME_FIELD_OVERFLOW,
        format!("date/time field value out of range: \"{input}\""),
    )
}

/// A timestamp read from text: the wall-clock time as written and the zone written
/// with it, if any.
struct Parsed {
    local: NaiveDateTime,
    /// Nanoseconds past `local`'s whole second, 0..=999_999_999 (kept apart so rounding
    /// to the column's unit can carry into the next second).
    nanos: u32,
    zone: Option<Zone>,
}

enum Zone {
    Fixed(chrono::FixedOffset),
    Named(Tz),
}

fn special(text: &str, type_name: &str, input: &str) -> Result<Option<Parsed>, UserqlError> {
    match text.to_ascii_lowercase().as_str() {
        "epoch" => Ok(Some(Parsed {
            local: NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .ok_or_else(|| out_of_range(input))?,
            nanos: 0,
            zone: Some(Zone::Fixed(chrono::FixedOffset::east_opt(0).expect("UTC"))),
        })),
        "infinity" | "+infinity" | "-infinity" => Err(UserqlError::unsupported(format!(
            "{type_name} value \"{input}\" cannot be stored: infinite dates and timestamps are not supported"
        ))),
        "now" | "today" | "tomorrow" | "yesterday" => Err(UserqlError::unsupported(format!(
            "\"{input}\" is read from the clock; write the {type_name} itself, or use now() / current_date"
        ))),
        _ => Ok(None),
    }
}

/// Split a leading date (`2024-01-05`, `2024/1/5`, `20240105`, `01/05/2024`).
fn parse_date_part(s: &str) -> Option<(NaiveDate, &str)> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '-' || c == '/' || c == '.'))
        .unwrap_or(s.len());
    let (head, rest) = s.split_at(end);
    // A trailing '-' starts a zone only after a time, never directly after a date.
    let fields: Vec<&str> = head.split(['-', '/', '.']).collect();
    let num = |f: &str| f.parse::<i32>().ok();
    let (y, m, d) = match fields.as_slice() {
        [ymd] if ymd.len() == 8 => (num(&ymd[0..4])?, num(&ymd[4..6])?, num(&ymd[6..8])?),
        [a, b, c] if a.len() >= 3 => (num(a)?, num(b)?, num(c)?),
        // Month first, as PostgreSQL reads `01/05/2024` under DateStyle MDY.
        [a, b, c] if c.len() >= 3 && !head.contains('-') => (num(c)?, num(a)?, num(b)?),
        _ => return None,
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(y, m as u32, d as u32)?;
    Some((date, rest))
}

/// `10:30`, `10:30:15`, `10:30:15.123456789`: (time, nanos, rest). `24:00:00` is
/// returned as hour 24 via the `next_day` flag.
fn parse_time_part(s: &str) -> Option<(u32, u32, u32, u32, &str)> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .unwrap_or(s.len());
    let (head, rest) = s.split_at(end);
    let (hms, frac) = match head.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (head, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty() || p.len() > 2) {
        return None;
    }
    let h: u32 = parts[0].parse().ok()?;
    let m: u32 = parts[1].parse().ok()?;
    let sec: u32 = match parts.get(2) {
        Some(p) => p.parse().ok()?,
        None => 0,
    };
    let nanos = match frac {
        None => 0,
        Some(f) if f.is_empty() && parts.len() == 3 => 0,
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) && parts.len() == 3 => {
            // Keep ten digits so rounding to nanoseconds sees the next one.
            let digits: String = f.chars().chain(std::iter::repeat('0')).take(10).collect();
            let tenths_of_nanos: u64 = digits.parse().ok()?;
            (tenths_of_nanos as f64 / 10.0).round() as u32
        }
        _ => return None,
    };
    Some((h, m, sec, nanos, rest))
}

fn parse_zone(s: &str) -> Option<Zone> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") || s.eq_ignore_ascii_case("gmt")
    {
        return chrono::FixedOffset::east_opt(0).map(Zone::Fixed);
    }
    if let Some(sign) = s.chars().next().filter(|c| *c == '+' || *c == '-') {
        let body = &s[1..];
        let (h, rest) = match body.find(':') {
            Some(i) => (&body[..i], Some(&body[i + 1..])),
            None if body.len() > 2 => (&body[..body.len() - 2], Some(&body[body.len() - 2..])),
            None => (body, None),
        };
        let (m, sec) = match rest {
            None => ("0", "0"),
            Some(r) => match r.split_once(':') {
                Some((m, s)) => (m, s),
                None => (r, "0"),
            },
        };
        let (h, m, sec): (i32, i32, i32) = (h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?);
        if h > 15 || m > 59 || sec > 59 {
            return None;
        }
        let total = h * 3600 + m * 60 + sec;
        let total = if sign == '-' { -total } else { total };
        return chrono::FixedOffset::east_opt(total).map(Zone::Fixed);
    }
    s.parse::<Tz>().ok().map(Zone::Named)
}

fn parse(text: &str, type_name: &str) -> Result<Parsed, UserqlError> {
    let input = text;
    let s = text.trim();
    if let Some(p) = special(s, type_name, input)? {
        return Ok(p);
    }
    let (s, bc) = match s
        .strip_suffix("BC")
        .or_else(|| s.strip_suffix("bc"))
        .filter(|r| r.ends_with(' '))
    {
        Some(r) => (r.trim_end(), true),
        None => (s, false),
    };
    let (date, rest) = parse_date_part(s).ok_or_else(|| {
        if s.starts_with(|c: char| c.is_ascii_digit()) && date_shape(s) {
            out_of_range(input)
        } else {
            syntax(type_name, input)
        }
    })?;
    let date = if bc {
        NaiveDate::from_ymd_opt(1 - date.year(), date.month(), date.day())
            .ok_or_else(|| out_of_range(input))?
    } else {
        date
    };
    let rest = rest.trim_start_matches([' ', 'T', 't']);
    let (local, nanos, rest) = if rest.starts_with(|c: char| c.is_ascii_digit()) {
        let (h, m, sec, nanos, rest) =
            parse_time_part(rest).ok_or_else(|| syntax(type_name, input))?;
        let local = if h == 24 && m == 0 && sec == 0 && nanos == 0 {
            date.succ_opt()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .ok_or_else(|| out_of_range(input))?
        } else {
            let time = NaiveTime::from_hms_opt(h, m, sec).ok_or_else(|| out_of_range(input))?;
            date.and_time(time)
        };
        (local, nanos, rest)
    } else {
        let midnight = date
            .and_hms_opt(0, 0, 0)
            .ok_or_else(|| out_of_range(input))?;
        (midnight, 0, rest)
    };
    let rest = rest.trim();
    let zone = if rest.is_empty() {
        None
    } else {
        Some(parse_zone(rest).ok_or_else(|| syntax(type_name, input))?)
    };
    Ok(Parsed { local, nanos, zone })
}

/// Whether `s` looks like a date whose fields are out of range (`2024-02-30`), so the
/// error says so rather than "invalid syntax".
fn date_shape(s: &str) -> bool {
    let head: String = s
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != 'T')
        .collect();
    let fields: Vec<&str> = head.split(['-', '/']).collect();
    fields.len() == 3
        && fields
            .iter()
            .all(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// Days since 1970-01-01 of a `date` written as text (a time part is ignored, as
/// PostgreSQL ignores it).
pub fn parse_date(text: &str) -> Result<i32, UserqlError> {
    let p = parse(text, "date")?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    Ok((p.local.date() - epoch).num_days() as i32)
}

/// A timestamp written as text, in units of `unit_nanos` nanoseconds since the epoch:
/// for `timestamp` (`zone` is `None`) the wall-clock time as written (any zone in the text
/// ignored); for `timestamptz` the instant, reading a zone-less time in `session_zone`.
pub fn parse_timestamp(
    text: &str,
    with_zone: Option<&Tz>,
    unit_nanos: i64,
) -> Result<i64, UserqlError> {
    let type_name = if with_zone.is_some() {
        "timestamp with time zone"
    } else {
        "timestamp"
    };
    let p = parse(text, type_name)?;
    let seconds = match with_zone {
        None => p.local.and_utc().timestamp(),
        Some(session) => {
            let offset = match &p.zone {
                Some(Zone::Fixed(o)) => *o,
                Some(Zone::Named(tz)) => local_offset(tz, &p.local, text)?,
                None => local_offset(session, &p.local, text)?,
            };
            p.local.and_utc().timestamp() - offset.local_minus_utc() as i64
        }
    };
    let rounded = (p.nanos as i64 + unit_nanos / 2) / unit_nanos;
    seconds
        .checked_mul(1_000_000_000 / unit_nanos)
        .and_then(|v| v.checked_add(rounded))
        .ok_or_else(|| out_of_range(text))
}

/// The offset of `tz` at wall-clock time `local` (the earlier one when the clock was set
/// back; a time skipped by a forward change is read with the offset before it).
fn local_offset(
    tz: &Tz,
    local: &NaiveDateTime,
    input: &str,
) -> Result<chrono::FixedOffset, UserqlError> {
    use chrono::LocalResult;
    match tz.offset_from_local_datetime(local) {
        LocalResult::Single(o) | LocalResult::Ambiguous(o, _) => Ok(o.fix()),
        LocalResult::None => {
            let before = *local - chrono::Duration::hours(3);
            match tz.offset_from_local_datetime(&before) {
                LocalResult::Single(o) | LocalResult::Ambiguous(o, _) => Ok(o.fix()),
                LocalResult::None => Err(out_of_range(input)),
            }
        }
    }
}

/// Write a `date` (days since the epoch) as PostgreSQL prints it.
pub fn write_date(out: &mut String, days: i32) {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    match epoch.checked_add_signed(chrono::Duration::days(days as i64)) {
        Some(d) => write_ymd(out, d.year(), d.month(), d.day()),
        None => out.push_str("(date out of range)"),
    }
}

fn write_ymd(out: &mut String, year: i32, month: u32, day: u32) {
    if year <= 0 {
        let _ = write!(out, "{:04}-{month:02}-{day:02} BC", 1 - year);
    } else {
        let _ = write!(out, "{year:04}-{month:02}-{day:02}");
    }
}

fn write_clock(out: &mut String, t: &NaiveDateTime) {
    let _ = write!(out, "{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
    let nanos = t.nanosecond();
    if nanos != 0 {
        let digits = format!("{nanos:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

fn write_datetime(out: &mut String, t: &NaiveDateTime) {
    let bc = t.year() <= 0;
    let year = if bc { 1 - t.year() } else { t.year() };
    let _ = write!(out, "{year:04}-{:02}-{:02} ", t.month(), t.day());
    write_clock(out, t);
    if bc {
        out.push_str(" BC");
    }
}

/// Split `value` in units of `unit_nanos` into seconds and nanoseconds, rounded to whole
/// microseconds (PostgreSQL's precision: `now()` has nanoseconds here).
fn split(value: i64, unit_nanos: i64) -> (i64, u32) {
    let per_second = 1_000_000_000 / unit_nanos;
    let secs = value.div_euclid(per_second);
    let mut nanos = value.rem_euclid(per_second) * unit_nanos;
    if unit_nanos < 1_000 {
        nanos = (nanos + 500) / 1_000 * 1_000;
    }
    if nanos >= 1_000_000_000 {
        return (secs + 1, (nanos - 1_000_000_000) as u32);
    }
    (secs, nanos as u32)
}

/// Write a `timestamp` (wall-clock time as units since the epoch).
pub fn write_timestamp(out: &mut String, value: i64, unit_nanos: i64) {
    let (secs, nanos) = split(value, unit_nanos);
    match DateTime::from_timestamp(secs, nanos) {
        Some(t) => write_datetime(out, &t.naive_utc()),
        None => out.push_str("(timestamp out of range)"),
    }
}

/// Write a `timestamptz` (an instant) in `zone`, with the zone's offset: `+08`,
/// `+05:30`, `-03:30`.
pub fn write_timestamptz(out: &mut String, value: i64, unit_nanos: i64, zone: &Tz) {
    let (secs, nanos) = split(value, unit_nanos);
    let Some(utc) = DateTime::from_timestamp(secs, nanos) else {
        out.push_str("(timestamp out of range)");
        return;
    };
    let local = utc.with_timezone(zone);
    let offset = local.offset().fix().local_minus_utc();
    let naive = local.naive_local();
    let bc = naive.year() <= 0;
    let year = if bc { 1 - naive.year() } else { naive.year() };
    let _ = write!(out, "{year:04}-{:02}-{:02} ", naive.month(), naive.day());
    write_clock(out, &naive);
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.abs();
    let _ = write!(out, "{sign}{:02}", abs / 3600);
    if abs % 3600 != 0 {
        let _ = write!(out, ":{:02}", abs % 3600 / 60);
        if abs % 60 != 0 {
            let _ = write!(out, ":{:02}", abs % 60);
        }
    }
    if bc {
        out.push_str(" BC");
    }
}

/// The code of an error raised by these parsers, for tests.
#[cfg(test)]
fn code(e: &UserqlError) -> &'static str {
    e.code
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: i64 = 1_000;

    fn utc() -> Tz {
        "+00:00".parse().unwrap()
    }

    fn ts(text: &str) -> String {
        let v = parse_timestamp(text, None, US).unwrap_or_else(|e| panic!("{text}: {e}"));
        let mut out = String::new();
        write_timestamp(&mut out, v, US);
        out
    }

    fn tstz(text: &str, zone: &str) -> String {
        let zone: Tz = zone.parse().unwrap();
        let v = parse_timestamp(text, Some(&zone), US).unwrap_or_else(|e| panic!("{text}: {e}"));
        let mut out = String::new();
        write_timestamptz(&mut out, v, US, &zone);
        out
    }

    fn date(text: &str) -> String {
        let v = parse_date(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let mut out = String::new();
        write_date(&mut out, v);
        out
    }

    #[test]
    fn timestamps_read_and_print_like_postgresql() {
        assert_eq!(ts("2025-01-16 10:59:55"), "2025-01-16 10:59:55");
        assert_eq!(ts("2025-01-16T10:59:55.120"), "2025-01-16 10:59:55.12");
        assert_eq!(ts("2025-01-16 10:59"), "2025-01-16 10:59:00");
        assert_eq!(ts("2025-01-16"), "2025-01-16 00:00:00");
        assert_eq!(ts("  2025-01-16 10:59:55+08  "), "2025-01-16 10:59:55");
        assert_eq!(
            ts("2025-01-16 10:59:55.1234567"),
            "2025-01-16 10:59:55.123457"
        );
        assert_eq!(ts("2025-01-16 23:59:59.9999999"), "2025-01-17 00:00:00");
        assert_eq!(ts("2025-01-16 24:00:00"), "2025-01-17 00:00:00");
        assert_eq!(ts("20250116 01:02:03"), "2025-01-16 01:02:03");
        assert_eq!(ts("01/16/2025 01:02:03"), "2025-01-16 01:02:03");
        assert_eq!(ts("2025/1/6"), "2025-01-06 00:00:00");
        assert_eq!(ts("epoch"), "1970-01-01 00:00:00");
        assert_eq!(ts("1969-12-31 23:59:59.5"), "1969-12-31 23:59:59.5");
        assert_eq!(ts("0044-03-15 12:00:00 BC"), "0044-03-15 12:00:00 BC");
    }

    #[test]
    fn timestamptz_applies_the_written_or_session_zone() {
        assert_eq!(
            tstz("2025-01-16 10:59:55", "+00:00"),
            "2025-01-16 10:59:55+00"
        );
        assert_eq!(
            tstz("2025-01-16 10:59:55+08", "+00:00"),
            "2025-01-16 02:59:55+00"
        );
        assert_eq!(
            tstz("2025-01-16 10:59:55+08:00", "+08:00"),
            "2025-01-16 10:59:55+08"
        );
        assert_eq!(
            tstz("2025-01-16 10:59:55Z", "+05:30"),
            "2025-01-16 16:29:55+05:30"
        );
        assert_eq!(
            tstz("2025-01-16 10:59:55 -0330", "+00:00"),
            "2025-01-16 14:29:55+00"
        );
        assert_eq!(
            tstz("2025-07-01 12:00:00 America/New_York", "+00:00"),
            "2025-07-01 16:00:00+00"
        );
        assert_eq!(
            tstz("2025-07-01 12:00:00", "America/New_York"),
            "2025-07-01 12:00:00-04"
        );
        assert_eq!(
            tstz("2025-01-16 10:59:55.5 UTC", "Asia/Shanghai"),
            "2025-01-16 18:59:55.5+08"
        );
        let _ = utc();
    }

    #[test]
    fn dates_read_and_print_like_postgresql() {
        assert_eq!(date("2024-02-29"), "2024-02-29");
        assert_eq!(date(" 2024-2-9 "), "2024-02-09");
        assert_eq!(date("2024-01-05 10:00:00"), "2024-01-05");
        assert_eq!(date("01/05/2024"), "2024-01-05");
        assert_eq!(date("20240105"), "2024-01-05");
        assert_eq!(date("0001-01-01 BC"), "0001-01-01 BC");
        assert_eq!(date("12345-01-01"), "12345-01-01");
    }

    #[test]
    fn bad_values_are_errors_with_postgresql_codes() {
        for bad in [
            "",
            "abc",
            "2024-01",
            "2024-01-05 10",
            "2024-01-05 1:2:3:4",
            "2024-01-05 10:00 Mars/Base",
        ] {
            let e = parse_timestamp(bad, None, US).expect_err(bad);
            assert_eq!(code(&e), INVALID_DATETIME_FORMAT, "{bad}: {e}");
        }
        for bad in [
            "2024-02-30",
            "2023-02-29",
            "2024-13-01",
            "2024-01-05 25:00:00",
            "2024-01-05 10:61",
        ] {
            let e = parse_timestamp(bad, None, US).expect_err(bad);
            assert!(
                code(&e) == DATETIME_FIELD_OVERFLOW || code(&e) == INVALID_DATETIME_FORMAT,
                "{bad}: {e}"
            );
        }
        assert_eq!(
            code(&parse_date("2024-02-30").unwrap_err()),
            DATETIME_FIELD_OVERFLOW
        );
        assert_eq!(
            code(&parse_date("infinity").unwrap_err()),
            sqlstate::FEATURE_NOT_SUPPORTED
        );
    }
}
