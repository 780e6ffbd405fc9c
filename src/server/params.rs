//! Bound parameters → values. Text-format parameters are read by PostgreSQL's input rules
//! (the engine's `pg_text`), like the same text in a literal: `'{a,"b c"}'` for a `text[]`
//! parameter is an array, `'\x41'` for `bytea` one byte. Binary-format parameters are
//! decoded by arrow-pg, whose binary codecs follow PostgreSQL's send/receive formats.

use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ParamValues, ScalarValue};
use pgwire::api::Type;
use pgwire::api::portal::Portal;
use pgwire::messages::extendedquery::Bind;
use pgwire::error::PgWireResult;

use super::errors::to_pg;
use crate::engine::pg_text;
use crate::error::{UserqlError, sqlstate};

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
                let array = pg_text::input::parse_column(&[Some(text)], &target, zone)
                    .map_err(|e| {
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
        let others = Portal::try_new(&bind, portal.statement.clone())?;
        let inferred_refs: Vec<Option<&DataType>> = inferred.iter().map(|t| t.as_ref()).collect();
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
    Ok(ParamValues::List(values.into_iter().map(Into::into).collect()))
}
