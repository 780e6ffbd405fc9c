//! Result rows on the wire: text-format columns carry PostgreSQL's text of each value
//! (the engine's `pg_text`), binary-format columns arrow-pg's binary encoding.
//!
//! arrow-pg's text encoding prints some types unlike PostgreSQL (timestamps always with
//! six fraction digits, `inf` for infinity); drivers parse what PostgreSQL prints, so the
//! text is ours.
//!
//! A batch's rows are written one after another into one buffer and each `DataRow` is a
//! slice of it: one allocation per ~64 KiB of rows instead of a growing buffer per row
//! (streaming millions of rows spent a third of its time in the allocator).

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::RecordBatch;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql};

use crate::engine::pg_text::{ColumnText, TextOptions};

/// The largest buffer a batch's rows start in; a row that does not fit starts another.
const BATCH_BUFFER: usize = 64 * 1024;

/// Rows written back to back into one buffer, each taken as a `DataRow` slice of it.
struct BatchRows {
    buffer: BytesMut,
    fields: i16,
}

impl BatchRows {
    fn new(capacity: usize) -> Self {
        Self {
            buffer: BytesMut::with_capacity(capacity),
            fields: 0,
        }
    }

    /// One field in text form (`None`: SQL NULL).
    fn put_text(&mut self, text: Option<&str>) {
        match text {
            None => self.buffer.put_i32(-1),
            Some(text) => {
                self.buffer.put_i32(text.len() as i32);
                self.buffer.put_slice(text.as_bytes());
            }
        }
        self.fields += 1;
    }
}

impl arrow_pg::encoder::Encoder for BatchRows {
    type Item = DataRow;

    fn encode_field<T>(&mut self, value: &T, field: &FieldInfo) -> PgWireResult<()>
    where
        T: ToSql + ToSqlText + Sized,
    {
        let at = self.buffer.len();
        self.buffer.put_i32(-1);
        let is_null = match field.format() {
            FieldFormat::Text => {
                value.to_sql_text(field.datatype(), &mut self.buffer, field.format_options())?
            }
            FieldFormat::Binary => value.to_sql(field.datatype(), &mut self.buffer)?,
        };
        if let IsNull::No = is_null {
            let length = (self.buffer.len() - at - 4) as i32;
            self.buffer[at..at + 4].copy_from_slice(&length.to_be_bytes());
        }
        self.fields += 1;
        Ok(())
    }

    fn take_row(&mut self) -> DataRow {
        let row = DataRow::new(self.buffer.split(), self.fields);
        self.fields = 0;
        row
    }
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
    let rows = batch.num_rows();
    let mut out = BatchRows::new((rows * columns.len() * 16).clamp(64, BATCH_BUFFER));
    let mut cell = String::new();
    let mut encoded = Vec::with_capacity(rows);
    for row in 0..rows {
        let written = (|| -> PgWireResult<()> {
            for (i, field) in fields.iter().enumerate() {
                match &columns[i] {
                    Some(column) if column.is_null(row) => out.put_text(None),
                    Some(column) => {
                        cell.clear();
                        column.write(row, &mut cell);
                        out.put_text(Some(&cell));
                    }
                    None => arrow_pg::encoder::encode_value(
                        &mut out,
                        batch.column(i),
                        row,
                        batch.schema_ref().field(i),
                        field,
                    )?,
                }
            }
            Ok(())
        })();
        let row = arrow_pg::encoder::Encoder::take_row(&mut out);
        encoded.push(written.map(|()| row));
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use pgwire::api::Type;

    fn field(name: &str, ty: Type, format: FieldFormat) -> FieldInfo {
        FieldInfo::new(name.into(), None, None, ty, format)
    }

    /// Each row's fields as the wire carries them: length-prefixed bytes, `None` for -1.
    fn fields_of(row: &DataRow) -> Vec<Option<Vec<u8>>> {
        let mut data = &row.data[..];
        (0..row.field_count)
            .map(|_| {
                let length = i32::from_be_bytes(data[..4].try_into().unwrap());
                data = &data[4..];
                (length >= 0).then(|| {
                    let (value, rest) = data.split_at(length as usize);
                    data = rest;
                    value.to_vec()
                })
            })
            .collect()
    }

    /// Every row of `batch` encoded with `fields`, as the wire carries its fields.
    fn encoded(fields: Vec<FieldInfo>, batch: &RecordBatch) -> Vec<Vec<Option<Vec<u8>>>> {
        encode_batch(&Arc::new(fields), batch, &TextOptions::default())
            .iter()
            .map(|row| fields_of(row.as_ref().unwrap()))
            .collect()
    }

    #[test]
    fn rows_are_separate_messages_with_text_and_binary_fields_and_nulls() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(7), None, Some(-1)])),
                Arc::new(StringArray::from(vec![Some("a"), Some("bé"), None])),
            ],
        )
        .unwrap();
        let text_fields = vec![
            field("id", Type::INT8, FieldFormat::Text),
            field("name", Type::TEXT, FieldFormat::Text),
        ];
        let t = |s: &str| Some(s.as_bytes().to_vec());
        assert_eq!(
            encoded(text_fields, &batch),
            vec![
                vec![t("7"), t("a")],
                vec![None, t("bé")],
                vec![t("-1"), None]
            ]
        );
        let mixed = vec![
            field("id", Type::INT8, FieldFormat::Binary),
            field("name", Type::TEXT, FieldFormat::Text),
        ];
        assert_eq!(
            encoded(mixed, &batch),
            vec![
                vec![Some(7i64.to_be_bytes().to_vec()), t("a")],
                vec![None, t("bé")],
                vec![Some((-1i64).to_be_bytes().to_vec()), None]
            ]
        );
    }

    #[test]
    fn a_batch_larger_than_one_buffer_keeps_every_row_whole() {
        let n = 20_000;
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Utf8, false)]));
        let values: Vec<String> = (0..n).map(|i| format!("row {i}")).collect();
        let batch = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(values.clone()))])
            .unwrap();
        let fields = Arc::new(vec![field("v", Type::TEXT, FieldFormat::Text)]);
        let rows = encode_batch(&fields, &batch, &TextOptions::default());
        assert_eq!(rows.len(), n);
        for (row, value) in rows.iter().zip(&values) {
            assert_eq!(
                fields_of(row.as_ref().unwrap()),
                vec![Some(value.as_bytes().to_vec())]
            );
        }
    }
}
