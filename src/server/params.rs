//! Bound parameters → values. Text-format parameters are read by PostgreSQL's input rules
//! (the engine's `pg_text`), like the same text in a literal: `'{a,"b c"}'` for a `text[]`
//! parameter is an array, `'\x41'` for `bytea` one byte. Binary-format parameters are
//! decoded by arrow-pg, whose binary codecs follow PostgreSQL's send/receive formats,
//! except the object-identifier types (`oid`, `regclass`, ... and their arrays), which
//! arrow has no type for: a `$n::oid[]` is announced as `oid[]`, as PostgreSQL does
//! (asyncpg's type introspection binds `$1::oid[]` and has no `int4[]` codec before it),
//! and its binary value is read here into the `int4` list the plan holds.

use datafusion::arrow::array::timezone::Tz;
use std::sync::Arc;

use datafusion::arrow::array::{Int32Array, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{ParamValues, ScalarValue};
use pgwire::api::Type;
use pgwire::api::portal::Portal;
use pgwire::api::stmt::StoredStatement;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::extendedquery::Bind;

use super::errors::to_pg;
use crate::engine::pg_text;
use crate::error::{UserqlError, sqlstate};

/// The object-identifier types the statement text casts its parameters to
/// (`$1::oid[]`), by parameter index: PostgreSQL announces these types for such
/// parameters, while the plan, which holds oids as `int4`, would announce `int4`.
pub fn declared_oid_types(sql: &str) -> Vec<(usize, Type)> {
    let bytes = sql.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\'' {
            in_string = !in_string;
            i += 1;
            continue;
        }
        if in_string || b != b'$' {
            i += 1;
            continue;
        }
        let digits_end = (i + 1..bytes.len())
            .find(|&j| !bytes[j].is_ascii_digit())
            .unwrap_or(bytes.len());
        let Ok(n) = sql[i + 1..digits_end].parse::<usize>() else {
            i += 1;
            continue;
        };
        let rest = sql[digits_end..].trim_start();
        i = digits_end;
        let Some(rest) = rest.strip_prefix("::") else {
            continue;
        };
        let rest = rest.trim_start();
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let array = rest[name_len..].trim_start().starts_with("[]");
        let ty = match (rest[..name_len].to_ascii_lowercase().as_str(), array) {
            ("oid", false) => Type::OID,
            ("oid", true) => Type::OID_ARRAY,
            ("regclass", false) => Type::REGCLASS,
            ("regclass", true) => Type::REGCLASS_ARRAY,
            ("regtype", false) => Type::REGTYPE,
            ("regtype", true) => Type::REGTYPE_ARRAY,
            ("regproc", false) => Type::REGPROC,
            ("regproc", true) => Type::REGPROC_ARRAY,
            _ => continue,
        };
        if n > 0 {
            found.push((n - 1, ty));
        }
    }
    found
}

/// Whether `ty` is an object-identifier type (4-byte unsigned on the wire) or an array
/// of one.
fn oid_kind(ty: &Type) -> Option<bool> {
    match *ty {
        Type::OID | Type::REGCLASS | Type::REGTYPE | Type::REGPROC => Some(false),
        Type::OID_ARRAY | Type::REGCLASS_ARRAY | Type::REGTYPE_ARRAY | Type::REGPROC_ARRAY => {
            Some(true)
        }
        _ => None,
    }
}

fn bad_binary(i: usize) -> PgWireError {
    to_pg(UserqlError::new(
        sqlstate::INVALID_BINARY_REPRESENTATION,
        format!("parameter ${} is not a valid binary oid value", i + 1),
    ))
}

/// An `oid` / `oid[]` parameter in binary format, as the `int4` / `int4[]` value the
/// plan holds (oids above `i32::MAX` wrap, as PostgreSQL's `oid`-to-`int4` cast does).
fn decode_binary_oid(raw: Option<&[u8]>, array: bool, i: usize) -> PgWireResult<ScalarValue> {
    let element = Arc::new(Field::new_list_field(DataType::Int32, true));
    let Some(bytes) = raw else {
        return Ok(if array {
            ScalarValue::List(Arc::new(ListArray::new_null(element, 1)))
        } else {
            ScalarValue::Int32(None)
        });
    };
    let word = |at: usize| -> PgWireResult<i32> {
        bytes
            .get(at..at + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| bad_binary(i))
    };
    if !array {
        if bytes.len() != 4 {
            return Err(bad_binary(i));
        }
        return Ok(ScalarValue::Int32(Some(word(0)?)));
    }
    // ndim, has-null flag, element type, then (length, lower bound) per dimension.
    let ndim = word(0)?;
    let mut values: Vec<Option<i32>> = Vec::new();
    if ndim > 1 {
        return Err(to_pg(UserqlError::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!(
                "parameter ${}: multi-dimensional arrays are not supported",
                i + 1
            ),
        )));
    }
    if ndim == 1 {
        let len = word(12)?;
        let mut at = 20;
        for _ in 0..len.max(0) {
            let n = word(at)?;
            at += 4;
            if n < 0 {
                values.push(None);
            } else if n == 4 {
                values.push(Some(word(at)?));
                at += 4;
            } else {
                return Err(bad_binary(i));
            }
        }
        if at != bytes.len() {
            return Err(bad_binary(i));
        }
    }
    let list = ListArray::new(
        element,
        OffsetBuffer::from_lengths([values.len()]),
        Arc::new(Int32Array::from(values)),
        None,
    );
    Ok(ScalarValue::List(Arc::new(list)))
}

/// The values of `portal`'s parameters. `inferred` are the types the plan implies,
/// `wire_types` the types announced to the client.
pub fn decode<S: Clone>(
    portal: &Portal<S>,
    inferred: &[Option<DataType>],
    wire_types: &[Type],
    zone: &Tz,
) -> PgWireResult<ParamValues> {
    let n = portal.parameters.len();
    let mut ours: Vec<Option<ScalarValue>> = vec![None; n];
    let mut rest = portal.parameters.clone();
    for (i, raw) in portal.parameters.iter().enumerate() {
        if portal.parameter_format.is_binary(i) {
            if let Some(array) = wire_types.get(i).and_then(oid_kind) {
                ours[i] = Some(decode_binary_oid(raw.as_deref(), array, i)?);
                rest[i] = None;
            }
            continue;
        }
        let target = inferred.get(i).cloned().flatten();
        let declared_text = wire_types
            .get(i)
            .is_none_or(|t| matches!(*t, Type::TEXT | Type::VARCHAR | Type::UNKNOWN));
        let target = match target {
            Some(t) if pg_text::input::handles(&t) => t,
            // Untyped text stays text, as an untyped literal would.
            None if declared_text => DataType::Utf8,
            _ => continue,
        };
        let value = match raw {
            None => ScalarValue::try_from(&target).map_err(|e| to_pg(e.into()))?,
            Some(bytes) => {
                let text = std::str::from_utf8(bytes).map_err(|_| {
                    to_pg(UserqlError::new(
                        sqlstate::INVALID_TEXT_REPRESENTATION,
                        format!("parameter ${} is not valid UTF-8", i + 1),
                    ))
                })?;
                let array =
                    pg_text::input::parse_column(&[Some(text)], &target, zone).map_err(|e| {
                        to_pg(UserqlError::new(
                            e.code,
                            format!("{} (parameter ${})", e.message, i + 1),
                        ))
                    })?;
                ScalarValue::try_from_array(array.as_ref(), 0).map_err(|e| to_pg(e.into()))?
            }
        };
        ours[i] = Some(value);
        // arrow-pg sees a NULL in its place, so it never reads this text by its own rules.
        rest[i] = None;
    }
    let values: Vec<ScalarValue> = if ours.iter().all(Option::is_some) {
        ours.into_iter().flatten().collect()
    } else {
        let formats: Vec<i16> = (0..n)
            .map(|i| i16::from(portal.parameter_format.is_binary(i)))
            .collect();
        let bind = Bind::new(Some(portal.name.clone()), None, formats, rest, vec![]);
        // The values read above go to arrow-pg as text NULLs, whatever their type.
        let mut statement = StoredStatement::new(
            portal.statement.id.clone(),
            portal.statement.statement.clone(),
            portal.statement.parameter_types.clone(),
        );
        let mut wire_types = wire_types.to_vec();
        for (i, value) in ours.iter().enumerate() {
            if value.is_some() {
                if let Some(t) = statement.parameter_types.get_mut(i) {
                    *t = Some(Type::TEXT);
                }
                if let Some(t) = wire_types.get_mut(i) {
                    *t = Type::TEXT;
                }
            }
        }
        let others = Portal::try_new(&bind, Arc::new(statement))?;
        let inferred_refs: Vec<Option<&DataType>> = inferred
            .iter()
            .zip(&ours)
            .map(|(t, ours)| if ours.is_some() { None } else { t.as_ref() })
            .collect();
        let wire_refs: Vec<Option<&Type>> = wire_types.iter().map(Some).collect();
        let decoded = arrow_pg::datatypes::df::deserialize_parameters_with_server_types(
            &others,
            &inferred_refs,
            &wire_refs,
        )?;
        let ParamValues::List(decoded) = decoded else {
            return Ok(decoded);
        };
        decoded
            .into_iter()
            .zip(ours)
            .map(|(theirs, ours)| match ours {
                Some(v) => v,
                None => theirs.value().clone(),
            })
            .collect()
    };
    Ok(ParamValues::List(
        values.into_iter().map(Into::into).collect(),
    ))
}
