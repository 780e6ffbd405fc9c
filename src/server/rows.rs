//! Result rows on the wire: text-format columns carry PostgreSQL's text of each value
//! (the engine's `pg_text`), binary-format columns arrow-pg's binary encoding.
//!
//! arrow-pg's text encoding prints some types unlike PostgreSQL (timestamps always with
//! six fraction digits, `inf` for infinity); drivers parse what PostgreSQL prints, so the
//! text is ours.

use std::error::Error;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::RecordBatch;
use pgwire::api::Type;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;
use pgwire::types::ToSqlText;
use pgwire::types::format::FormatOptions;
use postgres_types::{IsNull, ToSql};

use crate::engine::pg_text::{ColumnText, TextOptions};

/// Text already in PostgreSQL's output form.
#[derive(Debug)]
struct Preformatted<'a>(&'a str);

impl ToSqlText for Preformatted<'_> {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}

impl ToSql for Preformatted<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        // Only text-format columns get here (see `encode_batch`).
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    postgres_types::to_sql_checked!();
}

/// The DataRows of one batch.
pub fn encode_batch(
    fields: &Arc<Vec<FieldInfo>>,
    batch: &RecordBatch,
    text: &TextOptions,
) -> Vec<PgWireResult<DataRow>> {
    let columns: Vec<Option<ColumnText>> = batch
        .columns()
        .iter()
        .zip(fields.iter())
        .map(|(c, f)| (f.format() == FieldFormat::Text).then(|| ColumnText::new(c, text)))
        .collect();
    let mut encoder = DataRowEncoder::new(fields.clone());
    let mut cell = String::new();
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let encoded = (|| -> PgWireResult<DataRow> {
            for (i, field) in fields.iter().enumerate() {
                match &columns[i] {
                    Some(column) => {
                        let value = if column.is_null(row) {
                            None
                        } else {
                            cell.clear();
                            column.write(row, &mut cell);
                            Some(Preformatted(&cell))
                        };
                        encoder.encode_field_with_type_and_format(
                            &value,
                            field.datatype(),
                            FieldFormat::Text,
                            field.format_options(),
                        )?;
                    }
                    None => arrow_pg::encoder::encode_value(
                        &mut encoder,
                        batch.column(i),
                        row,
                        batch.schema_ref().field(i),
                        field,
                    )?,
                }
            }
            Ok(encoder.take_row())
        })();
        rows.push(encoded);
    }
    rows
}
