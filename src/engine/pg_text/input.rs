//! Text → typed values by PostgreSQL's input rules: what `'...'::type`, an `INSERT` of a
//! string into a typed column, `COPY FROM` and text-format parameters all go through.
//!
//! Arrow's own casts read some text differently from PostgreSQL — a string cast to a list
//! becomes a one-element list, a string cast to binary keeps its characters (`'\x41'`
//! would store four bytes) — so every type a stored table can hold is read here instead,
//! and a value that PostgreSQL would refuse is an error with PostgreSQL's SQLSTATE,
//! never a changed value.

use std::sync::Arc;

use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{
    Array, ArrayRef, BinaryBuilder, BinaryViewBuilder, BooleanBuilder, Date32Builder,
    Decimal128Builder, Float32Builder, Float64Builder, Int8Builder, Int16Builder, Int32Builder,
    Int64Builder, LargeBinaryBuilder, LargeStringBuilder, ListArray, PrimitiveBuilder,
    StringBuilder, StringViewBuilder, new_null_array,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{
    DataType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};

use super::array_literal::{self, Element};
use super::datetime;
use crate::error::{UserqlError, sqlstate};

/// Whether this module reads text into `target` itself (otherwise Arrow's cast does).
pub fn handles(target: &DataType) -> bool {
    use DataType::*;
    match target {
        Boolean
        | Int8
        | Int16
        | Int32
        | Int64
        | Float32
        | Float64
        | Decimal128(_, _)
        | Date32
        | Timestamp(_, _)
        | Binary
        | LargeBinary
        | BinaryView
        | Utf8
        | LargeUtf8
        | Utf8View => true,
        List(item) | LargeList(item) => handles(item.data_type()),
        _ => false,
    }
}

/// Read text values (`None` is NULL) as a column of `target`. `zone` is the session's
/// time zone, for `timestamptz` text written without one.
pub fn parse_column(
    values: &[Option<&str>],
    target: &DataType,
    zone: &Tz,
) -> Result<ArrayRef, UserqlError> {
    use DataType::*;
    Ok(match target {
        Boolean => {
            let mut b = BooleanBuilder::with_capacity(values.len());
            for v in values {
                b.append_option(v.map(parse_bool).transpose()?);
            }
            Arc::new(b.finish())
        }
        Int8 => ints::<Int8Builder, i8>(values, "tinyint", Int8Builder::with_capacity)?,
        Int16 => ints::<Int16Builder, i16>(values, "smallint", Int16Builder::with_capacity)?,
        Int32 => ints::<Int32Builder, i32>(values, "integer", Int32Builder::with_capacity)?,
        Int64 => ints::<Int64Builder, i64>(values, "bigint", Int64Builder::with_capacity)?,
        Float32 => {
            let mut b = Float32Builder::with_capacity(values.len());
            for v in values {
                b.append_option(v.map(parse_real).transpose()?);
            }
            Arc::new(b.finish())
        }
        Float64 => {
            let mut b = Float64Builder::with_capacity(values.len());
            for v in values {
                b.append_option(v.map(parse_double).transpose()?);
            }
            Arc::new(b.finish())
        }
        Decimal128(p, s) => {
            let mut b = Decimal128Builder::with_capacity(values.len())
                .with_precision_and_scale(*p, *s)
                .map_err(UserqlError::from)?;
            for v in values {
                b.append_option(v.map(|t| parse_numeric(t, *p, *s)).transpose()?);
            }
            Arc::new(b.finish())
        }
        Date32 => {
            let mut b = Date32Builder::with_capacity(values.len());
            for v in values {
                b.append_option(v.map(datetime::parse_date).transpose()?);
            }
            Arc::new(b.finish())
        }
        Timestamp(unit, tz) => {
            let with_zone = tz.as_ref().map(|_| zone);
            match unit {
                TimeUnit::Second => {
                    timestamps::<TimestampSecondType>(values, with_zone, tz, 1_000_000_000)?
                }
                TimeUnit::Millisecond => {
                    timestamps::<TimestampMillisecondType>(values, with_zone, tz, 1_000_000)?
                }
                TimeUnit::Microsecond => {
                    timestamps::<TimestampMicrosecondType>(values, with_zone, tz, 1_000)?
                }
                TimeUnit::Nanosecond => {
                    timestamps::<TimestampNanosecondType>(values, with_zone, tz, 1)?
                }
            }
        }
        Binary => {
            let mut b = BinaryBuilder::with_capacity(values.len(), 0);
            for v in values {
                b.append_option(v.map(parse_bytea).transpose()?);
            }
            Arc::new(b.finish())
        }
        LargeBinary => {
            let mut b = LargeBinaryBuilder::with_capacity(values.len(), 0);
            for v in values {
                b.append_option(v.map(parse_bytea).transpose()?);
            }
            Arc::new(b.finish())
        }
        BinaryView => {
            let mut b = BinaryViewBuilder::with_capacity(values.len());
            for v in values {
                b.append_option(v.map(parse_bytea).transpose()?);
            }
            Arc::new(b.finish())
        }
        Utf8 => {
            let mut b = StringBuilder::with_capacity(values.len(), 0);
            for v in values {
                b.append_option(*v);
            }
            Arc::new(b.finish())
        }
        LargeUtf8 => {
            let mut b = LargeStringBuilder::with_capacity(values.len(), 0);
            for v in values {
                b.append_option(*v);
            }
            Arc::new(b.finish())
        }
        Utf8View => {
            let mut b = StringViewBuilder::with_capacity(values.len());
            for v in values {
                b.append_option(*v);
            }
            Arc::new(b.finish())
        }
        List(item) => {
            let mut elements: Vec<Option<String>> = Vec::new();
            let mut offsets = Vec::with_capacity(values.len() + 1);
            offsets.push(0i32);
            let mut valid = Vec::with_capacity(values.len());
            for v in values {
                if let Some(text) = v {
                    for e in array_literal::parse(text)? {
                        elements.push(match e {
                            Element::Null => None,
                            Element::Text(t) => Some(t),
                        });
                    }
                }
                valid.push(v.is_some());
                let end = i32::try_from(elements.len()).map_err(|_| {
                    UserqlError::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, "array too large")
                })?;
                offsets.push(end);
            }
            let refs: Vec<Option<&str>> = elements.iter().map(|e| e.as_deref()).collect();
            let child = parse_column(&refs, item.data_type(), zone)?;
            if !item.is_nullable() && child.null_count() > 0 {
                return Err(UserqlError::new(
                    sqlstate::NOT_NULL_VIOLATION,
                    "array elements may not be NULL here",
                ));
            }
            Arc::new(
                ListArray::try_new(
                    item.clone(),
                    OffsetBuffer::new(offsets.into()),
                    child,
                    Some(NullBuffer::from(valid)),
                )
                .map_err(UserqlError::from)?,
            )
        }
        LargeList(item) => {
            // Read as a list, then widen the offsets.
            let as_list = parse_column(values, &List(item.clone()), zone)?;
            cast_with_options(&as_list, target, &strict()).map_err(UserqlError::from)?
        }
        other => {
            // Types no stored table holds (intervals, structs...): Arrow's reading.
            let strings: ArrayRef = Arc::new(
                values
                    .iter()
                    .copied()
                    .collect::<datafusion::arrow::array::StringArray>(),
            );
            if values.iter().all(Option::is_none) {
                new_null_array(other, values.len())
            } else {
                cast_with_options(&strings, other, &strict()).map_err(UserqlError::from)?
            }
        }
    })
}

fn strict() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        ..Default::default()
    }
}

fn ints<B, T>(
    values: &[Option<&str>],
    type_name: &str,
    new: impl Fn(usize) -> B,
) -> Result<ArrayRef, UserqlError>
where
    B: IntAppend<T> + datafusion::arrow::array::ArrayBuilder,
    T: TryFrom<i128>,
{
    let mut b = new(values.len());
    for v in values {
        let parsed = match v {
            None => None,
            Some(text) => {
                let wide = parse_integer(text, type_name)?;
                Some(T::try_from(wide).map_err(|_| int_range(text, type_name))?)
            }
        };
        b.append(parsed);
    }
    Ok(b.finish_array())
}

/// The one method `ints` needs of the integer builders.
trait IntAppend<T> {
    fn append(&mut self, v: Option<T>);
    fn finish_array(&mut self) -> ArrayRef;
}

impl<P: datafusion::arrow::datatypes::ArrowPrimitiveType> IntAppend<P::Native>
    for PrimitiveBuilder<P>
{
    fn append(&mut self, v: Option<P::Native>) {
        self.append_option(v);
    }
    fn finish_array(&mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
}

fn timestamps<T>(
    values: &[Option<&str>],
    with_zone: Option<&Tz>,
    tz: &Option<Arc<str>>,
    unit_nanos: i64,
) -> Result<ArrayRef, UserqlError>
where
    T: datafusion::arrow::datatypes::ArrowTimestampType,
{
    let mut b = PrimitiveBuilder::<T>::with_capacity(values.len());
    for v in values {
        b.append_option(
            v.map(|t| datetime::parse_timestamp(t, with_zone, unit_nanos))
                .transpose()?,
        );
    }
    let array = b.finish();
    Ok(match tz {
        Some(tz) => Arc::new(array.with_timezone(tz.clone())),
        None => Arc::new(array),
    })
}

fn invalid(type_name: &str, input: &str) -> UserqlError {
    UserqlError::new(
        sqlstate::INVALID_TEXT_REPRESENTATION,
        format!("invalid input syntax for type {type_name}: \"{input}\""),
    )
}

fn int_range(input: &str, type_name: &str) -> UserqlError {
    UserqlError::new(
        sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
        format!("value \"{input}\" is out of range for type {type_name}"),
    )
}

/// `boolin`: `t`/`true`/`yes`/`on`/`1` and their opposites, any case, any unique prefix,
/// surrounding whitespace ignored.
pub fn parse_bool(text: &str) -> Result<bool, UserqlError> {
    let s = text.trim().to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| s.len() >= min && word.starts_with(s.as_str());
    if prefix_of("true", 1) || prefix_of("yes", 1) || s == "on" || s == "1" {
        Ok(true)
    } else if prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || s == "0" {
        Ok(false)
    } else {
        Err(invalid("boolean", text))
    }
}

/// `int4in` and kin: optional sign and decimal digits, surrounding whitespace ignored.
pub fn parse_integer(text: &str, type_name: &str) -> Result<i128, UserqlError> {
    let s = text.trim();
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(type_name, text));
    }
    if digits.len() > 30 {
        return Err(int_range(text, type_name));
    }
    s.parse::<i128>().map_err(|_| invalid(type_name, text))
}

/// `float8in`: a decimal number, `NaN` or `Infinity` (also `inf`), any case; a finite
/// value too large or too small for the type is an error, not infinity or zero.
pub fn parse_double(text: &str) -> Result<f64, UserqlError> {
    parse_float(text, "double precision", |v| v)
}

/// `float4in`.
pub fn parse_real(text: &str) -> Result<f32, UserqlError> {
    let v = parse_float(text, "real", |v| v as f32 as f64)?;
    Ok(v as f32)
}

fn parse_float(
    text: &str,
    type_name: &str,
    narrow: impl Fn(f64) -> f64,
) -> Result<f64, UserqlError> {
    let s = text.trim();
    let lower = s.to_ascii_lowercase();
    let unsigned = lower.strip_prefix(['+', '-']).unwrap_or(&lower);
    if matches!(unsigned, "nan" | "inf" | "infinity") {
        return lower.parse::<f64>().map_err(|_| invalid(type_name, text));
    }
    if !unsigned
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'))
        || !unsigned.bytes().any(|b| b.is_ascii_digit())
    {
        return Err(invalid(type_name, text));
    }
    let v: f64 = s.parse().map_err(|_| invalid(type_name, text))?;
    let narrowed = narrow(v);
    let mantissa = unsigned.split(['e']).next().unwrap_or("");
    let nonzero = mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b));
    if narrowed.is_infinite() || (narrowed == 0.0 && nonzero) {
        return Err(UserqlError::new(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            format!("\"{s}\" is out of range for type {type_name}"),
        ));
    }
    Ok(v)
}

/// `numeric_in` for `numeric(precision, scale)`: rounded half away from zero to `scale`
/// digits; more integer digits than `precision - scale` is an overflow (22003).
pub fn parse_numeric(text: &str, precision: u8, scale: i8) -> Result<i128, UserqlError> {
    let s = text.trim();
    let (negative, unsigned) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if unsigned.eq_ignore_ascii_case("nan") || unsigned.to_ascii_lowercase().starts_with("inf") {
        return Err(UserqlError::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!(
                "numeric value \"{s}\" cannot be stored in a numeric({precision},{scale}) column"
            ),
        ));
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => {
            let e: i64 = unsigned[i + 1..]
                .parse()
                .map_err(|_| invalid("numeric", text))?;
            (&unsigned[..i], e)
        }
        None => (unsigned, 0),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((a, b)) => (a, b),
        None => (mantissa, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid("numeric", text));
    }
    // value = digits × 10^(exponent - frac_len); wanted: round(value × 10^scale).
    let digits: Vec<u8> = int_part
        .bytes()
        .chain(frac_part.bytes())
        .map(|b| b - b'0')
        .skip_while(|d| *d == 0)
        .collect();
    let shift = exponent - frac_part.len() as i64 + scale as i64;
    let overflow = || {
        let int_digits = precision as i64 - scale as i64;
        UserqlError::new(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            format!(
                "numeric field overflow: \"{s}\" does not fit numeric({precision},{scale}), \
                 which must round to an absolute value less than 10^{int_digits}"
            ),
        )
    };
    let mut kept: Vec<u8>;
    if shift >= 0 {
        if digits.len() as i64 + shift > precision as i64 && !digits.is_empty() {
            return Err(overflow());
        }
        kept = digits.clone();
        kept.extend(std::iter::repeat_n(
            0,
            if digits.is_empty() { 0 } else { shift as usize },
        ));
    } else {
        let drop = (-shift) as usize;
        if drop > digits.len() {
            // Every digit is dropped and the first dropped one is a leading zero.
            kept = Vec::new();
        } else {
            kept = digits[..digits.len() - drop].to_vec();
            if digits.get(digits.len() - drop).is_some_and(|d| *d >= 5) {
                round_up(&mut kept);
            }
        }
    }
    let first = kept.iter().position(|d| *d != 0).unwrap_or(kept.len());
    let kept = &kept[first..];
    if kept.len() > precision as usize {
        return Err(overflow());
    }
    let mut value: i128 = 0;
    for d in kept {
        value = value * 10 + *d as i128;
    }
    Ok(if negative { -value } else { value })
}

/// Add one to a decimal digit string, growing it on carry.
fn round_up(digits: &mut Vec<u8>) {
    for d in digits.iter_mut().rev() {
        if *d == 9 {
            *d = 0;
        } else {
            *d += 1;
            return;
        }
    }
    digits.insert(0, 1);
}

/// `byteain`: `\x` then hex digit pairs (whitespace between pairs allowed), or the
/// escape format (`\\` is a backslash, `\ooo` an octal byte, anything else itself).
pub fn parse_bytea(text: &str) -> Result<Vec<u8>, UserqlError> {
    if let Some(hex) = text
        .strip_prefix("\\x")
        .or_else(|| text.strip_prefix("\\X"))
    {
        let mut out = Vec::with_capacity(hex.len() / 2);
        let mut high: Option<u8> = None;
        for c in hex.chars() {
            if c.is_ascii_whitespace() && high.is_none() {
                continue;
            }
            let v = c
                .to_digit(16)
                .ok_or_else(|| invalid_bytea(format!("invalid hexadecimal digit: \"{c}\"")))?
                as u8;
            match high.take() {
                None => high = Some(v),
                Some(h) => out.push(h << 4 | v),
            }
        }
        if high.is_some() {
            return Err(invalid_bytea(
                "invalid hexadecimal data: odd number of digits".to_string(),
            ));
        }
        return Ok(out);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1..i + 4) {
            _ if bytes.get(i + 1) == Some(&b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some([a, b, c])
                if (b'0'..=b'3').contains(a)
                    && (b'0'..=b'7').contains(b)
                    && (b'0'..=b'7').contains(c) =>
            {
                out.push((a - b'0') << 6 | (b - b'0') << 3 | (c - b'0'));
                i += 4;
            }
            _ => return Err(invalid("bytea", text)),
        }
    }
    Ok(out)
}

fn invalid_bytea(message: String) -> UserqlError {
    UserqlError::new(sqlstate::INVALID_TEXT_REPRESENTATION, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Field, Int64Type};

    fn utc() -> Tz {
        "+00:00".parse().unwrap()
    }

    #[test]
    fn booleans_take_every_postgresql_spelling() {
        for t in ["t", "TRUE", " true ", "tr", "y", "yes", "on", "1", "On"] {
            assert!(parse_bool(t).unwrap(), "{t}");
        }
        for f in ["f", "false", "FALSE", "n", "no", "off", "of", "0"] {
            assert!(!parse_bool(f).unwrap(), "{f}");
        }
        for bad in ["", "o", "2", "truex", "yess", "nope", "10"] {
            assert_eq!(parse_bool(bad).unwrap_err().code, "22P02", "{bad}");
        }
    }

    #[test]
    fn integers_check_syntax_and_range() {
        assert_eq!(parse_integer(" -42 ", "integer").unwrap(), -42);
        assert_eq!(parse_integer("+7", "integer").unwrap(), 7);
        for bad in ["", "1.0", "1e3", "12a", "- 1", "0x10"] {
            assert_eq!(
                parse_integer(bad, "integer").unwrap_err().code,
                "22P02",
                "{bad}"
            );
        }
        let col = parse_column(&[Some("2147483648")], &DataType::Int32, &utc()).unwrap_err();
        assert_eq!(col.code, "22003");
        assert!(col.message.contains("out of range for type integer"));
        let ok = parse_column(
            &[Some("9223372036854775807"), None],
            &DataType::Int64,
            &utc(),
        )
        .unwrap();
        assert_eq!(ok.as_primitive::<Int64Type>().value(0), i64::MAX);
        assert!(ok.is_null(1));
    }

    #[test]
    fn floats_refuse_what_postgresql_refuses() {
        assert_eq!(parse_double(" 1.5e3 ").unwrap(), 1500.0);
        assert!(parse_double("NaN").unwrap().is_nan());
        assert_eq!(parse_double("-Infinity").unwrap(), f64::NEG_INFINITY);
        assert_eq!(parse_double("inf").unwrap(), f64::INFINITY);
        assert_eq!(parse_double(".5").unwrap(), 0.5);
        assert_eq!(parse_double("1e400").unwrap_err().code, "22003");
        assert_eq!(parse_double("1e-400").unwrap_err().code, "22003");
        assert_eq!(parse_double("0e-400").unwrap(), 0.0);
        assert_eq!(parse_real("1e39").unwrap_err().code, "22003");
        for bad in ["", "abc", "1.2.3x", "1_000", "e5"] {
            assert_eq!(parse_double(bad).unwrap_err().code, "22P02", "{bad}");
        }
    }

    #[test]
    fn numerics_round_half_away_from_zero_and_check_precision() {
        assert_eq!(parse_numeric("1.005", 10, 2).unwrap(), 101);
        assert_eq!(parse_numeric("-1.005", 10, 2).unwrap(), -101);
        assert_eq!(parse_numeric("1.004", 10, 2).unwrap(), 100);
        assert_eq!(parse_numeric("12", 10, 2).unwrap(), 1200);
        assert_eq!(parse_numeric(" 0.5 ", 3, 0).unwrap(), 1);
        assert_eq!(parse_numeric("0.05", 3, 1).unwrap(), 1);
        assert_eq!(parse_numeric("0.004", 3, 2).unwrap(), 0);
        assert_eq!(parse_numeric("0.005", 3, 2).unwrap(), 1);
        assert_eq!(parse_numeric("0.0005", 3, 2).unwrap(), 0);
        assert_eq!(parse_numeric("1.5e2", 10, 2).unwrap(), 15000);
        assert_eq!(parse_numeric("1234.5E-2", 10, 2).unwrap(), 1235);
        assert_eq!(parse_numeric("99.995", 4, 2).unwrap_err().code, "22003");
        assert_eq!(parse_numeric("99.994", 4, 2).unwrap(), 9999);
        assert_eq!(parse_numeric("100", 4, 2).unwrap_err().code, "22003");
        assert_eq!(parse_numeric("0", 4, 2).unwrap(), 0);
        assert_eq!(parse_numeric("-0.000", 4, 2).unwrap(), 0);
        assert_eq!(parse_numeric("5.", 4, 2).unwrap(), 500);
        assert_eq!(parse_numeric("1000", 4, -1).unwrap(), 100);
        for bad in ["", ".", "1.2.3", "abc", "1e", "--1"] {
            assert_eq!(
                parse_numeric(bad, 10, 2).unwrap_err().code,
                "22P02",
                "{bad}"
            );
        }
    }

    #[test]
    fn bytea_reads_hex_and_escape_formats() {
        assert_eq!(parse_bytea("\\x4142").unwrap(), b"AB");
        assert_eq!(parse_bytea("\\x41 42").unwrap(), b"AB");
        assert_eq!(parse_bytea("\\x").unwrap(), b"");
        assert_eq!(parse_bytea("abc").unwrap(), b"abc");
        assert_eq!(parse_bytea("a\\\\b\\001").unwrap(), b"a\\b\x01");
        assert_eq!(parse_bytea("\\x414").unwrap_err().code, "22P02");
        assert_eq!(parse_bytea("\\x4g").unwrap_err().code, "22P02");
        assert_eq!(parse_bytea("a\\9").unwrap_err().code, "22P02");
    }

    #[test]
    fn arrays_parse_elements_by_their_type() {
        let text_list = DataType::List(Arc::new(Field::new("element", DataType::Utf8, true)));
        let col = parse_column(
            &[Some("{p,\"q r\"}"), None, Some("{}"), Some("{a,NULL}")],
            &text_list,
            &utc(),
        )
        .unwrap();
        let list = col.as_list::<i32>();
        let strings = |i: usize| -> Vec<Option<String>> {
            list.value(i)
                .as_string::<i32>()
                .iter()
                .map(|s| s.map(str::to_string))
                .collect()
        };
        assert_eq!(strings(0), vec![Some("p".into()), Some("q r".into())]);
        assert!(list.is_null(1));
        assert!(strings(2).is_empty() && list.is_valid(2));
        assert_eq!(strings(3), vec![Some("a".into()), None]);

        let int_list = DataType::List(Arc::new(Field::new("element", DataType::Int64, true)));
        let e = parse_column(&[Some("{1,x}")], &int_list, &utc()).unwrap_err();
        assert_eq!(e.code, "22P02");
        let e = parse_column(&[Some("1,2")], &int_list, &utc()).unwrap_err();
        assert!(e.message.contains("malformed array literal"), "{e}");

        let nested = DataType::List(Arc::new(Field::new("element", int_list.clone(), true)));
        let col = parse_column(&[Some("{{1,2},{3}}")], &nested, &utc()).unwrap();
        assert_eq!(col.as_list::<i32>().value(0).len(), 2);
    }
}
