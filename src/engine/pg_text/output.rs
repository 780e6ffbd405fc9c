//! Typed values → PostgreSQL's text output: what a text-format result column, `COPY TO`
//! and an array element look like in PostgreSQL, so drivers, CSV consumers and people
//! read the same text from userql.
//!
//! `t`/`f`; floats as shortest round-trip digits, exponent form outside 1e-4..1e15
//! (1e6 for `real`), `Infinity`/`NaN`; numerics with their scale; `2025-01-16 10:59:55`
//! with fractions trimmed; `timestamptz` in the session's zone with its offset; `bytea` as
//! `\x0102`; intervals in the `postgres` style (`1 day 02:00:00`); arrays as
//! `{a,"b c",NULL}`; records as `(a,b)`.

use std::fmt::Write;

use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Decimal256Type, DurationMicrosecondType,
    DurationMillisecondType, DurationNanosecondType, DurationSecondType, Float16Type, Float32Type,
    Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, IntervalDayTimeType,
    IntervalMonthDayNanoType, IntervalUnit, IntervalYearMonthType, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use super::array_literal::write_element;
use super::datetime;

/// Session settings that change how values print.
#[derive(Clone, Debug)]
pub struct TextOptions {
    /// PostgreSQL's `extra_float_digits`: above 0, shortest exact digits; otherwise
    /// 15 (6 for `real`) plus this many significant digits.
    pub extra_float_digits: i32,
    /// The session's `TimeZone`, for `timestamptz`.
    pub time_zone: Tz,
}

impl Default for TextOptions {
    fn default() -> Self {
        Self {
            extra_float_digits: 1,
            time_zone: "+00:00".parse().expect("UTC parses"),
        }
    }
}

/// Writes the values of one column as PostgreSQL text; built once per batch column.
pub struct ColumnText {
    array: ArrayRef,
    kind: Kind,
    options: TextOptions,
}

enum Kind {
    Plain,
    Bool,
    Float32,
    Float64,
    Decimal(u8),
    Text,
    Binary,
    Date,
    Timestamp(i64, bool),
    Time(i64),
    Interval,
    List(Box<ColumnText>),
    Struct(Vec<ColumnText>),
    /// A dictionary's values decoded once.
    Dictionary(Box<ColumnText>),
    /// Types PostgreSQL has no text form for here: Arrow's display.
    Fallback,
}

fn unit_nanos(unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

impl ColumnText {
    /// A writer for `array`'s values.
    pub fn new(array: &ArrayRef, options: &TextOptions) -> Self {
        use DataType::*;
        let kind = match array.data_type() {
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => Kind::Plain,
            Boolean => Kind::Bool,
            Float16 | Float32 => Kind::Float32,
            Float64 => Kind::Float64,
            Decimal128(_, s) | Decimal256(_, s) => Kind::Decimal((*s).max(0) as u8),
            Utf8 | LargeUtf8 | Utf8View => Kind::Text,
            Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => Kind::Binary,
            Date32 | Date64 => Kind::Date,
            Timestamp(unit, tz) => Kind::Timestamp(unit_nanos(unit), tz.is_some()),
            Time32(unit) | Time64(unit) => Kind::Time(unit_nanos(unit)),
            Interval(_) | Duration(_) => Kind::Interval,
            List(_) => Kind::List(Box::new(ColumnText::new(
                array.as_list::<i32>().values(),
                options,
            ))),
            LargeList(_) => Kind::List(Box::new(ColumnText::new(
                array.as_list::<i64>().values(),
                options,
            ))),
            FixedSizeList(_, _) => Kind::List(Box::new(ColumnText::new(
                array.as_fixed_size_list().values(),
                options,
            ))),
            Struct(_) => Kind::Struct(
                array
                    .as_struct()
                    .columns()
                    .iter()
                    .map(|c| ColumnText::new(c, options))
                    .collect(),
            ),
            Dictionary(_, values) => {
                match datafusion::arrow::compute::cast(array.as_ref(), values) {
                    Ok(decoded) => Kind::Dictionary(Box::new(ColumnText::new(&decoded, options))),
                    Err(_) => Kind::Fallback,
                }
            }
            _ => Kind::Fallback,
        };
        Self {
            array: array.clone(),
            kind,
            options: options.clone(),
        }
    }

    /// Whether row `row` is NULL (the caller writes no text for it).
    pub fn is_null(&self, row: usize) -> bool {
        self.array.is_null(row)
    }

    /// Append row `row`'s text to `out` (the row must not be NULL).
    pub fn write(&self, row: usize, out: &mut String) {
        let a = self.array.as_ref();
        match &self.kind {
            Kind::Plain => write_integer(a, row, out),
            Kind::Bool => out.push(if a.as_boolean().value(row) { 't' } else { 'f' }),
            Kind::Float32 => {
                let v = match a.data_type() {
                    DataType::Float16 => a.as_primitive::<Float16Type>().value(row).to_f32(),
                    _ => a.as_primitive::<Float32Type>().value(row),
                };
                write_real(out, v, self.options.extra_float_digits);
            }
            Kind::Float64 => write_double(
                out,
                a.as_primitive::<Float64Type>().value(row),
                self.options.extra_float_digits,
            ),
            Kind::Decimal(scale) => {
                let digits = match a.data_type() {
                    DataType::Decimal256(_, _) => {
                        a.as_primitive::<Decimal256Type>().value(row).to_string()
                    }
                    _ => a.as_primitive::<Decimal128Type>().value(row).to_string(),
                };
                write_decimal(out, &digits, *scale as usize);
            }
            Kind::Text => out.push_str(match a.data_type() {
                DataType::LargeUtf8 => a.as_string::<i64>().value(row),
                DataType::Utf8View => a.as_string_view().value(row),
                _ => a.as_string::<i32>().value(row),
            }),
            Kind::Binary => {
                let bytes = match a.data_type() {
                    DataType::LargeBinary => a.as_binary::<i64>().value(row),
                    DataType::BinaryView => a.as_binary_view().value(row),
                    DataType::FixedSizeBinary(_) => a.as_fixed_size_binary().value(row),
                    _ => a.as_binary::<i32>().value(row),
                };
                out.push_str("\\x");
                for b in bytes {
                    let _ = write!(out, "{b:02x}");
                }
            }
            Kind::Date => {
                let days = match a.data_type() {
                    DataType::Date64 => a
                        .as_primitive::<Date64Type>()
                        .value(row)
                        .div_euclid(86_400_000) as i32,
                    _ => a.as_primitive::<Date32Type>().value(row),
                };
                datetime::write_date(out, days);
            }
            Kind::Timestamp(unit, zoned) => {
                let v = match a.data_type() {
                    DataType::Timestamp(TimeUnit::Second, _) => {
                        a.as_primitive::<TimestampSecondType>().value(row)
                    }
                    DataType::Timestamp(TimeUnit::Millisecond, _) => {
                        a.as_primitive::<TimestampMillisecondType>().value(row)
                    }
                    DataType::Timestamp(TimeUnit::Microsecond, _) => {
                        a.as_primitive::<TimestampMicrosecondType>().value(row)
                    }
                    _ => a.as_primitive::<TimestampNanosecondType>().value(row),
                };
                if *zoned {
                    datetime::write_timestamptz(out, v, *unit, &self.options.time_zone);
                } else {
                    datetime::write_timestamp(out, v, *unit);
                }
            }
            Kind::Time(unit) => {
                let v: i64 = match a.data_type() {
                    DataType::Time32(TimeUnit::Second) => {
                        a.as_primitive::<Time32SecondType>().value(row) as i64
                    }
                    DataType::Time32(_) => {
                        a.as_primitive::<Time32MillisecondType>().value(row) as i64
                    }
                    DataType::Time64(TimeUnit::Microsecond) => {
                        a.as_primitive::<Time64MicrosecondType>().value(row)
                    }
                    _ => a.as_primitive::<Time64NanosecondType>().value(row),
                };
                let nanos = v as i128 * *unit as i128;
                write_clock(out, nanos, false);
            }
            Kind::Interval => {
                let (months, days, nanos) = interval_parts(a, row);
                write_interval(out, months, days, nanos);
            }
            Kind::List(items) => {
                let range = match a.data_type() {
                    DataType::LargeList(_) => {
                        let offsets = a.as_list::<i64>().value_offsets();
                        offsets[row] as usize..offsets[row + 1] as usize
                    }
                    DataType::FixedSizeList(_, n) => {
                        let n = *n as usize;
                        row * n..(row + 1) * n
                    }
                    _ => {
                        let offsets = a.as_list::<i32>().value_offsets();
                        offsets[row] as usize..offsets[row + 1] as usize
                    }
                };
                out.push('{');
                let mut element = String::new();
                for (n, i) in range.enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    if items.is_null(i) {
                        out.push_str("NULL");
                    } else if matches!(items.kind, Kind::List(_)) {
                        items.write(i, out);
                    } else {
                        element.clear();
                        items.write(i, &mut element);
                        write_element(out, &element);
                    }
                }
                out.push('}');
            }
            Kind::Struct(fields) => {
                out.push('(');
                let mut field = String::new();
                for (n, f) in fields.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    if f.is_null(row) {
                        continue;
                    }
                    field.clear();
                    f.write(row, &mut field);
                    write_record_field(out, &field);
                }
                out.push(')');
            }
            Kind::Dictionary(values) => {
                if !values.is_null(row) {
                    values.write(row, out);
                }
            }
            Kind::Fallback => {
                match ArrayFormatter::try_new(a, &FormatOptions::default().with_null("")) {
                    Ok(f) => {
                        let _ = write!(out, "{}", f.value(row));
                    }
                    Err(e) => {
                        let _ = write!(out, "({e})");
                    }
                }
            }
        }
    }

    /// Row `row` as a new string, `None` for NULL.
    pub fn text(&self, row: usize) -> Option<String> {
        if self.is_null(row) {
            return None;
        }
        let mut s = String::new();
        self.write(row, &mut s);
        Some(s)
    }
}

fn write_integer(a: &dyn Array, row: usize, out: &mut String) {
    let _ = match a.data_type() {
        DataType::Int8 => write!(out, "{}", a.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => write!(out, "{}", a.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => write!(out, "{}", a.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => write!(out, "{}", a.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => write!(out, "{}", a.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => write!(out, "{}", a.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => write!(out, "{}", a.as_primitive::<UInt32Type>().value(row)),
        _ => write!(out, "{}", a.as_primitive::<UInt64Type>().value(row)),
    };
}

/// `float8out`.
pub fn write_double(out: &mut String, v: f64, extra_float_digits: i32) {
    if let Some(special) = special_float(v) {
        out.push_str(special);
        return;
    }
    if extra_float_digits > 0 {
        let mut buf = ryu::Buffer::new();
        write_shortest(out, buf.format_finite(v), 15);
    } else {
        write_g(out, v, (15 + extra_float_digits).max(1) as usize);
    }
}

/// `float4out`.
pub fn write_real(out: &mut String, v: f32, extra_float_digits: i32) {
    if let Some(special) = special_float(v as f64) {
        out.push_str(special);
        return;
    }
    if extra_float_digits > 0 {
        let mut buf = ryu::Buffer::new();
        write_shortest(out, buf.format_finite(v), 6);
    } else {
        write_g(out, v as f64, (6 + extra_float_digits).max(1) as usize);
    }
}

fn special_float(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("Infinity")
    } else if v == f64::NEG_INFINITY {
        Some("-Infinity")
    } else {
        None
    }
}

/// Re-lay ryu's shortest digits the way PostgreSQL does: fixed notation when the
/// leading digit's exponent is in -4..limit, else `d.ddde+XX`.
fn write_shortest(out: &mut String, ryu: &str, limit: i32) {
    let (negative, body) = match ryu.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, ryu),
    };
    let (mantissa, exp) = match body.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all: String = int_part.chars().chain(frac_part.chars()).collect();
    let lead = all.find(|c| c != '0');
    let Some(lead) = lead else {
        out.push_str(if negative { "-0" } else { "0" });
        return;
    };
    let digits = all[lead..].trim_end_matches('0');
    // Exponent of the leading significant digit.
    let x = int_part.len() as i32 - 1 - lead as i32 + exp;
    if negative {
        out.push('-');
    }
    if (-4..limit).contains(&x) {
        if x < 0 {
            out.push_str("0.");
            for _ in 0..(-x - 1) {
                out.push('0');
            }
            out.push_str(digits);
        } else {
            let int_len = x as usize + 1;
            if digits.len() <= int_len {
                out.push_str(digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if x < 0 { '-' } else { '+' }, x.abs());
    }
}

/// C's `%.{precision}g`.
fn write_g(out: &mut String, v: f64, precision: usize) {
    let sci = format!("{:.*e}", precision - 1, v);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let x: i32 = exp.parse().unwrap_or(0);
    if x < -4 || x >= precision as i32 {
        let m = if mantissa.contains('.') {
            mantissa.trim_end_matches('0').trim_end_matches('.')
        } else {
            mantissa
        };
        let _ = write!(out, "{m}e{}{:02}", if x < 0 { '-' } else { '+' }, x.abs());
    } else {
        let decimals = (precision as i32 - 1 - x).max(0) as usize;
        let fixed = format!("{v:.decimals$}");
        let trimmed = if fixed.contains('.') {
            fixed.trim_end_matches('0').trim_end_matches('.')
        } else {
            &fixed
        };
        out.push_str(trimmed);
    }
}

/// An unscaled decimal integer's digits with `scale` of them after the point.
fn write_decimal(out: &mut String, digits: &str, scale: usize) {
    let (negative, digits) = match digits.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, digits),
    };
    if negative {
        out.push('-');
    }
    if scale == 0 {
        out.push_str(digits);
        return;
    }
    if digits.len() <= scale {
        out.push_str("0.");
        for _ in digits.len()..scale {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let (i, f) = digits.split_at(digits.len() - scale);
        out.push_str(i);
        out.push('.');
        out.push_str(f);
    }
}

fn interval_parts(a: &dyn Array, row: usize) -> (i64, i64, i128) {
    match a.data_type() {
        DataType::Interval(IntervalUnit::YearMonth) => (
            a.as_primitive::<IntervalYearMonthType>().value(row) as i64,
            0,
            0,
        ),
        DataType::Interval(IntervalUnit::DayTime) => {
            let v = a.as_primitive::<IntervalDayTimeType>().value(row);
            (0, v.days as i64, v.milliseconds as i128 * 1_000_000)
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = a.as_primitive::<IntervalMonthDayNanoType>().value(row);
            (v.months as i64, v.days as i64, v.nanoseconds as i128)
        }
        // A duration is a difference of timestamps: PostgreSQL's `timestamp - timestamp`
        // gives whole days as days (`1 day 02:00:00`, not `26:00:00`).
        DataType::Duration(unit) => {
            let nanos = match unit {
                TimeUnit::Second => {
                    a.as_primitive::<DurationSecondType>().value(row) as i128 * 1_000_000_000
                }
                TimeUnit::Millisecond => {
                    a.as_primitive::<DurationMillisecondType>().value(row) as i128 * 1_000_000
                }
                TimeUnit::Microsecond => {
                    a.as_primitive::<DurationMicrosecondType>().value(row) as i128 * 1_000
                }
                TimeUnit::Nanosecond => {
                    a.as_primitive::<DurationNanosecondType>().value(row) as i128
                }
            };
            const DAY: i128 = 86_400_000_000_000;
            (0, (nanos / DAY) as i64, nanos % DAY)
        }
        _ => (0, 0, 0),
    }
}

/// `interval_out` in the default `postgres` IntervalStyle.
pub fn write_interval(out: &mut String, months: i64, days: i64, nanos: i128) {
    let mut is_zero = true;
    let mut is_before = false;
    let mut part = |out: &mut String, value: i64, unit: &str| {
        if value == 0 {
            return;
        }
        let _ = write!(
            out,
            "{}{}{value} {unit}{}",
            if is_zero { "" } else { " " },
            if is_before && value > 0 { "+" } else { "" },
            if value != 1 { "s" } else { "" }
        );
        is_before = value < 0;
        is_zero = false;
    };
    part(out, months / 12, "year");
    part(out, months % 12, "mon");
    part(out, days, "day");
    if is_zero || nanos != 0 {
        if !is_zero {
            out.push(' ');
        }
        if nanos < 0 {
            out.push('-');
        } else if is_before {
            out.push('+');
        }
        write_clock(out, nanos.abs(), true);
    }
}

/// `HH:MM:SS[.ffffff]` of a non-negative duration; hours may exceed 24 when `elapsed`.
fn write_clock(out: &mut String, nanos: i128, elapsed: bool) {
    // Microseconds, PostgreSQL's precision.
    let nanos = (nanos + 500) / 1_000 * 1_000;
    let total_secs = nanos / 1_000_000_000;
    let frac = (nanos % 1_000_000_000) as u32;
    let hours = total_secs / 3600;
    let hours = if elapsed { hours } else { hours % 24 };
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        hours,
        total_secs / 60 % 60,
        total_secs % 60
    );
    if frac != 0 {
        let digits = format!("{frac:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

/// A field of a record value, quoted as `record_out` quotes it.
fn write_record_field(out: &mut String, value: &str) {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| matches!(c, '(' | ')' | ',' | '"' | '\\') || c.is_ascii_whitespace());
    if plain {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        BinaryArray, BooleanArray, Decimal128Array, Float32Array, Float64Array, ListArray,
        StringArray, TimestampMicrosecondArray,
    };
    use datafusion::arrow::datatypes::IntervalMonthDayNano;
    use std::sync::Arc;

    fn texts(array: &dyn Array, options: &TextOptions) -> Vec<Option<String>> {
        let array: ArrayRef = datafusion::arrow::array::make_array(array.to_data());
        let col = ColumnText::new(&array, options);
        (0..array.len()).map(|i| col.text(i)).collect()
    }

    fn one(array: &dyn Array) -> String {
        texts(array, &TextOptions::default())[0].clone().unwrap()
    }

    #[test]
    fn doubles_print_like_float8out() {
        // Each pair checked against PostgreSQL 15 with its default extra_float_digits.
        let cases: &[(f64, &str)] = &[
            (1e15, "1e+15"),
            (123456789012345.0, "123456789012345"),
            (1e16, "1e+16"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123.0, "123"),
            (1e20, "1e+20"),
            (1.5e-5, "1.5e-05"),
            (0.1, "0.1"),
            (-0.0, "-0"),
            (0.0, "0"),
            (1e-300, "1e-300"),
            (2.5e-310, "2.5e-310"),
            (1234567890123456789.0, "1.2345678901234568e+18"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
            (-12.25, "-12.25"),
        ];
        for (v, want) in cases {
            let mut s = String::new();
            write_double(&mut s, *v, 1);
            assert_eq!(&s, want, "{v:e}");
        }
        let mut s = String::new();
        write_double(&mut s, 123456789012345678.0, 0);
        assert_eq!(s, "1.23456789012346e+17");
        s.clear();
        write_double(&mut s, 1.234_567_890_123_456_8, 0);
        assert_eq!(s, "1.23456789012346");
        s.clear();
        write_double(&mut s, 1e15, 0);
        assert_eq!(s, "1e+15");
    }

    #[test]
    fn reals_print_like_float4out() {
        let cases: &[(f32, &str)] = &[
            (123456789012345.0, "1.2345679e+14"),
            (1234567.0, "1.234567e+06"),
            (123456.0, "123456"),
            (0.1, "0.1"),
            (1234567890123456789.0, "1.234568e+18"),
        ];
        for (v, want) in cases {
            let a = Float32Array::from(vec![*v]);
            assert_eq!(one(&a), *want);
        }
        let a = Float64Array::from(vec![100000000000000.0]);
        assert_eq!(one(&a), "100000000000000");
    }

    #[test]
    fn scalars_print_like_postgresql() {
        assert_eq!(one(&BooleanArray::from(vec![true])), "t");
        let d = Decimal128Array::from(vec![150, -5, 0])
            .with_precision_and_scale(10, 2)
            .unwrap();
        assert_eq!(
            texts(&d, &TextOptions::default()),
            vec![
                Some("1.50".into()),
                Some("-0.05".into()),
                Some("0.00".into())
            ]
        );
        assert_eq!(one(&BinaryArray::from(vec![&[1u8, 2][..]])), "\\x0102");
        let ts = TimestampMicrosecondArray::from(vec![1_737_025_195_000_000]);
        assert_eq!(one(&ts), "2025-01-16 10:59:55");
        let tz = ts.clone().with_timezone("UTC");
        assert_eq!(one(&tz), "2025-01-16 10:59:55+00");
        let shanghai = TextOptions {
            time_zone: "Asia/Shanghai".parse().unwrap(),
            ..Default::default()
        };
        assert_eq!(
            texts(&tz, &shanghai)[0].as_deref(),
            Some("2025-01-16 18:59:55+08")
        );
    }

    #[test]
    fn intervals_print_in_the_postgres_style() {
        let cases: &[(i32, i32, i64, &str)] = &[
            (0, 1, 2 * 3_600_000_000_000, "1 day 02:00:00"),
            (0, -1, 2 * 3_600_000_000_000, "-1 days +02:00:00"),
            (0, 1, -2 * 3_600_000_000_000, "1 day -02:00:00"),
            (14, 3, 0, "1 year 2 mons 3 days"),
            (0, 0, 0, "00:00:00"),
            (0, 0, 1_500_000_000, "00:00:01.5"),
            (-14, 0, 0, "-1 years -2 mons"),
            (0, 0, 36 * 3_600_000_000_000, "36:00:00"),
            (0, 0, -1_000, "-00:00:00.000001"),
            (1, 0, -1_000_000_000, "1 mon -00:00:01"),
        ];
        for (m, d, n, want) in cases {
            let mut s = String::new();
            write_interval(&mut s, *m as i64, *d as i64, *n as i128);
            assert_eq!(&s, want);
        }
        let a = datafusion::arrow::array::IntervalMonthDayNanoArray::from(vec![
            IntervalMonthDayNano::new(0, 1, 0),
        ]);
        assert_eq!(one(&a), "1 day");
    }

    #[test]
    fn arrays_quote_elements_like_array_out() {
        let values = StringArray::from(vec![Some("a b"), None, Some(""), Some("x")]);
        let list = ListArray::new(
            Arc::new(datafusion::arrow::datatypes::Field::new(
                "item",
                DataType::Utf8,
                true,
            )),
            datafusion::arrow::buffer::OffsetBuffer::new(vec![0, 3, 4].into()),
            Arc::new(values),
            None,
        );
        assert_eq!(
            texts(&list, &TextOptions::default()),
            vec![Some("{\"a b\",NULL,\"\"}".into()), Some("{x}".into())]
        );
        let ts = TimestampMicrosecondArray::from(vec![1_704_103_200_000_000]);
        let list = ListArray::new(
            Arc::new(datafusion::arrow::datatypes::Field::new(
                "item",
                ts.data_type().clone(),
                true,
            )),
            datafusion::arrow::buffer::OffsetBuffer::new(vec![0, 1].into()),
            Arc::new(ts),
            None,
        );
        assert_eq!(one(&list), "{\"2024-01-01 10:00:00\"}");
    }
}
