//! Constant arguments of the table functions (`as_of`, `period`, `horizon_months`...):
//! DataFusion hands them over simplified to literals; these read them, with clear errors
//! that name the function and the argument.

use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;

use crate::engine::pg_text;
use crate::error::sqlstate;
use crate::functions::input::user_error;

fn literal<'a>(expr: &'a Expr, what: &str, expected: &str) -> Result<&'a ScalarValue> {
    match expr {
        Expr::Literal(v, _) => Ok(v),
        other => Err(user_error(
            sqlstate::DATATYPE_MISMATCH,
            format!("{what} must be a constant {expected}, got {other}"),
        )),
    }
}

/// A text argument (a table name or query, a mode).
pub fn text(expr: &Expr, what: &str) -> Result<String> {
    match literal(expr, what, "text")? {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Ok(s.clone()),
        other => Err(user_error(
            sqlstate::DATATYPE_MISMATCH,
            format!("{what} must be text, got {other} ({})", other.data_type()),
        )),
    }
}

/// A timestamp argument in microseconds since the epoch: a timestamp or date literal, or
/// text read as a timestamp (zone-less text in the session's `zone`). NULL is `None`.
pub fn timestamp(expr: &Expr, what: &str, zone: &Tz) -> Result<Option<i64>> {
    let v = literal(expr, what, "timestamp")?;
    if v.is_null() {
        return Ok(None);
    }
    let micros = match v {
        ScalarValue::TimestampSecond(Some(t), _) => t.checked_mul(1_000_000),
        ScalarValue::TimestampMillisecond(Some(t), _) => t.checked_mul(1_000),
        ScalarValue::TimestampMicrosecond(Some(t), _) => Some(*t),
        ScalarValue::TimestampNanosecond(Some(t), _) => Some(t.div_euclid(1_000)),
        ScalarValue::Date32(Some(d)) => (*d as i64).checked_mul(86_400_000_000),
        ScalarValue::Date64(Some(ms)) => ms.checked_mul(1_000),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => {
            let parsed = pg_text::datetime::parse_timestamp(s, Some(zone), 1_000)
                .map_err(|e| user_error(e.code, format!("{what}: {}", e.message)))?;
            Some(parsed)
        }
        other => {
            return Err(user_error(
                sqlstate::DATATYPE_MISMATCH,
                format!(
                    "{what} must be a timestamp, got {other} ({})",
                    other.data_type()
                ),
            ));
        }
    };
    micros.map(Some).ok_or_else(|| {
        user_error(
            sqlstate::DATETIME_FIELD_OVERFLOW,
            format!("{what} is out of range"),
        )
    })
}

/// An interval argument (`interval '1 month'` or text such as `'7 days'`):
/// (months, days, microseconds).
pub fn interval(expr: &Expr, what: &str) -> Result<(i32, i32, i64)> {
    let v = literal(expr, what, "interval")?;
    let v = match v {
        ScalarValue::Utf8(Some(_))
        | ScalarValue::LargeUtf8(Some(_))
        | ScalarValue::Utf8View(Some(_)) => v
            .cast_to(&DataType::Interval(
                datafusion::arrow::datatypes::IntervalUnit::MonthDayNano,
            ))
            .map_err(|_| {
                user_error(
                    sqlstate::INVALID_DATETIME_FORMAT,
                    format!("{what}: invalid interval {v} (write e.g. '1 month' or '7 days')"),
                )
            })?,
        other => other.clone(),
    };
    let IntervalMonthDayNano {
        months,
        days,
        nanoseconds,
    } = match v {
        ScalarValue::IntervalMonthDayNano(Some(i)) => i,
        ScalarValue::IntervalDayTime(Some(i)) => {
            IntervalMonthDayNano::new(0, i.days, i.milliseconds as i64 * 1_000_000)
        }
        ScalarValue::IntervalYearMonth(Some(m)) => IntervalMonthDayNano::new(m, 0, 0),
        other => {
            return Err(user_error(
                sqlstate::DATATYPE_MISMATCH,
                format!("{what} must be an interval, got {other}"),
            ));
        }
    };
    Ok((months, days, nanoseconds / 1_000))
}

/// A number argument; NULL is `None`.
pub fn number(expr: &Expr, what: &str) -> Result<Option<f64>> {
    let v = literal(expr, what, "number")?;
    if v.is_null() {
        return Ok(None);
    }
    match v.cast_to(&DataType::Float64) {
        Ok(ScalarValue::Float64(f)) if v.data_type().is_numeric() => Ok(f),
        _ => Err(user_error(
            sqlstate::DATATYPE_MISMATCH,
            format!("{what} must be a number, got {v} ({})", v.data_type()),
        )),
    }
}
