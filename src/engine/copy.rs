//! `COPY table FROM STDIN` and `COPY table|(query) TO STDOUT`, in PostgreSQL's text and
//! CSV formats — what psql's `\copy`, psycopg's `copy()` and pgjdbc's `CopyManager` send.
//!
//! The formats are plain Rust ([`decode`], [`encode_batch`]); the session glue plans the
//! statement and writes the decoded rows through the table's `INSERT` path, so a COPY is
//! one Delta commit like any other write.

use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray, StringBuilder};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::TableReference;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::collect;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};

use super::pg_text::{ColumnText, TextOptions};
use super::session::{CommandTag, Outcome, Session};
use crate::error::{UserqlError, sqlstate};

/// Rows per batch when decoding COPY data.
const BATCH_ROWS: usize = 8192;

/// The text or CSV format of a COPY, with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFormat {
    /// CSV (`true`) or PostgreSQL's text format.
    pub csv: bool,
    pub delimiter: u8,
    /// How NULL is spelled: `\N` in text, the empty unquoted field in CSV.
    pub null: String,
    /// CSV: the first line names the columns.
    pub header: bool,
    pub quote: u8,
    pub escape: u8,
}

impl CopyFormat {
    fn text() -> Self {
        Self {
            csv: false,
            delimiter: b'\t',
            null: "\\N".into(),
            header: false,
            quote: b'"',
            escape: b'"',
        }
    }

    fn csv() -> Self {
        Self {
            csv: true,
            delimiter: b',',
            null: String::new(),
            header: false,
            quote: b'"',
            escape: b'"',
        }
    }
}

/// A planned COPY.
#[derive(Debug, Clone)]
pub enum CopyStatement {
    /// `COPY t [(cols)] FROM STDIN`.
    From(CopyIn),
    /// `COPY t|(query) TO STDOUT`: the query to run.
    To { sql: String, format: CopyFormat },
}

/// Where the rows of a `COPY FROM STDIN` go.
#[derive(Debug, Clone)]
pub struct CopyIn {
    pub table: TableReference,
    /// The table's columns, in order.
    pub schema: SchemaRef,
    /// Positions in `schema` of the columns the data holds, in data order.
    pub columns: Vec<usize>,
    pub format: CopyFormat,
}

fn one_byte(c: char, what: &str) -> Result<u8, UserqlError> {
    if c.is_ascii() {
        Ok(c as u8)
    } else {
        Err(UserqlError::unsupported(format!(
            "COPY {what} must be a single one-byte character"
        )))
    }
}

/// The format a COPY's options ask for.
fn format_of(
    options: &[CopyOption],
    legacy: &[CopyLegacyOption],
) -> Result<CopyFormat, UserqlError> {
    let csv = options
        .iter()
        .any(|o| matches!(o, CopyOption::Format(f) if f.value.eq_ignore_ascii_case("csv")))
        || legacy.iter().any(|o| matches!(o, CopyLegacyOption::Csv(_)));
    let mut format = if csv {
        CopyFormat::csv()
    } else {
        CopyFormat::text()
    };
    for o in options {
        match o {
            CopyOption::Format(f) => match f.value.to_ascii_lowercase().as_str() {
                "csv" | "text" => {}
                other => {
                    return Err(UserqlError::unsupported(format!(
                        "COPY format \"{other}\" is not supported"
                    ))
                    .with_hint("use FORMAT text or FORMAT csv"));
                }
            },
            CopyOption::Delimiter(c) => format.delimiter = one_byte(*c, "delimiter")?,
            CopyOption::Null(s) => format.null = s.clone(),
            CopyOption::Header(h) => format.header = *h,
            CopyOption::Quote(c) => format.quote = one_byte(*c, "quote")?,
            CopyOption::Escape(c) => format.escape = one_byte(*c, "escape")?,
            CopyOption::Encoding(e)
                if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
            CopyOption::Freeze(_) => {}
            other => {
                return Err(UserqlError::unsupported(format!(
                    "COPY option {other} is not supported"
                )));
            }
        }
    }
    for o in legacy {
        match o {
            CopyLegacyOption::Delimiter(c) => format.delimiter = one_byte(*c, "delimiter")?,
            CopyLegacyOption::Null(s) => format.null = s.clone(),
            CopyLegacyOption::Header => format.header = true,
            CopyLegacyOption::Csv(csv_options) => {
                for c in csv_options {
                    match c {
                        CopyLegacyCsvOption::Header => format.header = true,
                        CopyLegacyCsvOption::Quote(q) => format.quote = one_byte(*q, "quote")?,
                        CopyLegacyCsvOption::Escape(e) => format.escape = one_byte(*e, "escape")?,
                        other => {
                            return Err(UserqlError::unsupported(format!(
                                "COPY option {other} is not supported"
                            )));
                        }
                    }
                }
            }
            CopyLegacyOption::Binary => {
                return Err(UserqlError::unsupported("COPY BINARY is not supported")
                    .with_hint("use the text or CSV format"));
            }
            other => {
                return Err(UserqlError::unsupported(format!(
                    "COPY option {other} is not supported"
                )));
            }
        }
    }
    if format.header && !format.csv {
        return Err(UserqlError::unsupported(
            "COPY HEADER is available only in CSV mode",
        ));
    }
    Ok(format)
}

impl Session {
    /// Plan a COPY statement (STDIN / STDOUT only: files are the client's, not the
    /// server's).
    pub(super) async fn plan_copy(
        &self,
        statement: &Statement,
    ) -> Result<CopyStatement, UserqlError> {
        let Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            ..
        } = statement
        else {
            return Err(UserqlError::unsupported("not a COPY statement"));
        };
        let format = format_of(options, legacy_options)?;
        match (to, target, source) {
            (false, CopyTarget::Stdin, CopySource::Table { table_name, columns }) => {
                let table = super::ddl::object_reference(table_name)?;
                self.check_writable(&table)?;
                let provider = self.ctx.table_provider(table.clone()).await.map_err(|_| {
                    UserqlError::new(
                        sqlstate::UNDEFINED_TABLE,
                        format!("relation \"{table}\" does not exist"),
                    )
                })?;
                let schema = provider.schema();
                let columns = if columns.is_empty() {
                    (0..schema.fields().len()).collect()
                } else {
                    columns
                        .iter()
                        .map(|c| {
                            schema.index_of(&c.value).map_err(|_| {
                                UserqlError::new(
                                    sqlstate::UNDEFINED_COLUMN,
                                    format!(
                                        "column \"{}\" of relation \"{table}\" does not exist",
                                        c.value
                                    ),
                                )
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?
                };
                Ok(CopyStatement::From(CopyIn {
                    table,
                    schema,
                    columns,
                    format,
                }))
            }
            (true, CopyTarget::Stdout, source) => {
                let sql = match source {
                    CopySource::Query(q) => q.to_string(),
                    CopySource::Table { table_name, columns } => {
                        let cols = if columns.is_empty() {
                            "*".to_string()
                        } else {
                            columns
                                .iter()
                                .map(|c| c.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        format!("SELECT {cols} FROM {table_name}")
                    }
                };
                Ok(CopyStatement::To { sql, format })
            }
            (false, CopyTarget::Stdin, CopySource::Query(_)) => Err(UserqlError::new(
                sqlstate::SYNTAX_ERROR,
                "COPY FROM needs a table, not a query",
            )),
            _ => Err(UserqlError::new(
                sqlstate::INSUFFICIENT_PRIVILEGE,
                "COPY to or from a file or program on the server is not allowed",
            )
            .with_hint("use COPY ... FROM STDIN / TO STDOUT (psql's \\copy reads and writes the client's files)")),
        }
    }

    /// Start a planned COPY: for `FROM STDIN` the client sends the rows next; for
    /// `TO STDOUT` the query runs now.
    pub(super) async fn execute_copy(
        &mut self,
        copy: &CopyStatement,
    ) -> Result<Outcome, UserqlError> {
        match copy {
            CopyStatement::From(copy_in) => Ok(Outcome::CopyIn(copy_in.clone())),
            CopyStatement::To { sql, format } => {
                let mut statements = self.parse(sql)?;
                let Some(statement) = statements.pop() else {
                    return Err(UserqlError::new(
                        sqlstate::SYNTAX_ERROR,
                        "COPY needs a query",
                    ));
                };
                let snapshot = self.snapshot();
                let plan = snapshot
                    .state()
                    .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(
                        statement,
                    )))
                    .await?;
                Ok(Outcome::CopyOut(
                    super::snapshot::Rows::planned(plan, snapshot),
                    format.clone(),
                ))
            }
        }
    }

    /// A writer for the rows of a `COPY ... FROM STDIN` (the server feeds it the data as
    /// it arrives, so the COPY needs no memory for all of it).
    pub async fn copy_writer(&self, copy: &CopyIn) -> Result<CopyWriter, UserqlError> {
        let provider = self
            .ctx
            .table_provider(copy.table.clone())
            .await
            .map_err(|_| {
                UserqlError::new(
                    sqlstate::UNDEFINED_TABLE,
                    format!("relation \"{}\" does not exist", copy.table),
                )
            })?;
        Ok(CopyWriter {
            provider,
            state: self.ctx.state(),
            copy: copy.clone(),
        })
    }

    /// Write COPY data held in memory (the `userql query` CLI reads it from stdin).
    pub async fn copy_in(&mut self, copy: &CopyIn, data: &[u8]) -> Result<Outcome, UserqlError> {
        let writer = self.copy_writer(copy).await?;
        let chunks = futures::stream::iter([CopyChunk::Data(data.to_vec()), CopyChunk::Done]);
        let rows = writer.write(chunks).await?;
        self.note_write();
        Ok(Outcome::Command(CommandTag {
            command: "COPY".into(),
            rows: Some(rows as usize),
        }))
    }
}

/// What a client sends during `COPY ... FROM STDIN`.
#[derive(Debug)]
pub enum CopyChunk {
    /// Some bytes of the data, cut anywhere.
    Data(Vec<u8>),
    /// The data is complete: commit.
    Done,
    /// The client gave up (CopyFail): write nothing.
    Failed(String),
}

/// Streams decoded COPY rows into a table through its `INSERT` path: one commit when
/// the client says the data is complete, nothing at all otherwise.
pub struct CopyWriter {
    provider: std::sync::Arc<dyn datafusion::catalog::TableProvider>,
    state: datafusion::execution::context::SessionState,
    copy: CopyIn,
}

impl CopyWriter {
    /// Decode and write `chunks`; the rows written. A stream that ends without
    /// [`CopyChunk::Done`] (a dropped connection) fails and writes nothing.
    pub async fn write<S>(self, chunks: S) -> Result<u64, UserqlError>
    where
        S: futures::Stream<Item = CopyChunk> + Send + Unpin + 'static,
    {
        use futures::StreamExt;
        let copy = &self.copy;
        let decoder = CopyDecoder::new(
            copy.format.clone(),
            copy.schema.clone(),
            copy.columns.clone(),
        )
        .with_time_zone(super::pg_text::session_zone(self.state.config_options()));
        // The writer below may report a failed input only as text; keep the real error.
        let first_error: std::sync::Arc<std::sync::Mutex<Option<UserqlError>>> = Default::default();
        let seen = first_error.clone();
        let decoded = futures::stream::unfold(Some((chunks, decoder)), |state| async move {
            let (mut chunks, mut decoder) = state?;
            loop {
                let step = match chunks.next().await {
                    Some(CopyChunk::Data(data)) => match decoder.push(&data) {
                        Ok(batches) if batches.is_empty() => continue,
                        Ok(batches) => return Some((Ok(batches), Some((chunks, decoder)))),
                        Err(e) => Err(e),
                    },
                    Some(CopyChunk::Done) => decoder.finish(),
                    Some(CopyChunk::Failed(why)) => Err(UserqlError::new(
                        sqlstate::QUERY_CANCELED,
                        format!("COPY from stdin failed: {why}"),
                    )),
                    None => Err(UserqlError::new(
                        sqlstate::CONNECTION_FAILURE,
                        "COPY data ended without CopyDone: nothing was written",
                    )),
                };
                return Some((step, None));
            }
        })
        .flat_map(move |step| {
            let items: Vec<datafusion::common::Result<RecordBatch>> = match step {
                Ok(batches) => batches.into_iter().map(Ok).collect(),
                Err(e) => {
                    seen.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(e.clone());
                    vec![Err(datafusion::error::DataFusionError::External(Box::new(
                        e,
                    )))]
                }
            };
            futures::stream::iter(items)
        });
        let rows = Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                copy.schema.clone(),
                decoded,
            ),
        );
        let input = super::store::table::one_shot_exec(rows)?;
        let written = async {
            let sink = self
                .provider
                .insert_into(&self.state, input, InsertOp::Append)
                .await?;
            collect(sink, self.state.task_ctx()).await
        }
        .await;
        match written {
            Ok(result) => Ok(super::session::affected_rows(&result) as u64),
            Err(e) => Err(first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or_else(|| e.into())),
        }
    }
}

/// Decode COPY data into batches of `schema` (columns not in `columns` are NULL), all at
/// once. The server feeds [`CopyDecoder`] chunk by chunk instead.
pub fn decode(
    data: &[u8],
    format: &CopyFormat,
    schema: &SchemaRef,
    columns: &[usize],
) -> Result<Vec<RecordBatch>, UserqlError> {
    let mut decoder = CopyDecoder::new(format.clone(), schema.clone(), columns.to_vec());
    let mut batches = decoder.push(data)?;
    batches.extend(decoder.finish()?);
    Ok(batches)
}

/// Decodes COPY data as it arrives, in chunks cut anywhere (CopyData messages do not
/// follow rows): whole records are decoded as soon as they are complete, the rest waits
/// for the next chunk.
pub struct CopyDecoder {
    format: CopyFormat,
    schema: SchemaRef,
    columns: Vec<usize>,
    /// Bytes not yet decoded; starts at a record boundary.
    pending: Vec<u8>,
    /// How far `pending` was scanned for record ends, and whether that point is inside
    /// a CSV quoted field.
    scanned: usize,
    in_quote: bool,
    /// End of the last complete record found in `pending`.
    complete: usize,
    /// Records decoded so far (for line numbers in errors).
    lines: usize,
    header_pending: bool,
    /// Saw the `\.` end-of-data marker: the rest is ignored.
    ended: bool,
    /// The session's time zone, for `timestamptz` values written without one.
    zone: Tz,
}

impl CopyDecoder {
    /// A decoder for rows of `schema`, the data holding `columns` in order.
    pub fn new(format: CopyFormat, schema: SchemaRef, columns: Vec<usize>) -> Self {
        let header_pending = format.header;
        Self {
            format,
            schema,
            columns,
            pending: Vec::new(),
            scanned: 0,
            in_quote: false,
            complete: 0,
            lines: 0,
            header_pending,
            ended: false,
            zone: super::pg_text::utc(),
        }
    }

    /// Read zone-less `timestamptz` values in `zone` (the session's `TimeZone`).
    pub fn with_time_zone(mut self, zone: Tz) -> Self {
        self.zone = zone;
        self
    }

    /// Take a chunk; returns the batches of the records it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<RecordBatch>, UserqlError> {
        if self.ended {
            return Ok(vec![]);
        }
        self.pending.extend_from_slice(chunk);
        self.scan();
        if self.complete == 0 {
            return Ok(vec![]);
        }
        let cut = self.complete;
        let batches = self.decode_pending(cut)?;
        self.pending.drain(..cut);
        self.scanned -= cut;
        self.complete = 0;
        Ok(batches)
    }

    /// The data ended: decode what is left.
    pub fn finish(mut self) -> Result<Vec<RecordBatch>, UserqlError> {
        if self.ended || self.pending.is_empty() {
            return Ok(vec![]);
        }
        let all = self.pending.len();
        self.decode_pending(all)
    }

    /// Find record ends (newlines outside CSV quotes) in the bytes not scanned yet.
    fn scan(&mut self) {
        let (quote, escape) = (self.format.quote, self.format.escape);
        let bytes = &self.pending;
        let mut i = self.scanned;
        while i < bytes.len() {
            let b = bytes[i];
            if self.format.csv && self.in_quote && b == escape && escape != quote {
                i += 2; // an escaped character inside quotes
                continue;
            }
            if self.format.csv && b == quote {
                self.in_quote = !self.in_quote;
            } else if b == b'\n' && !self.in_quote {
                self.complete = i + 1;
            }
            i += 1;
        }
        self.scanned = i.min(bytes.len());
    }

    fn decode_pending(&mut self, upto: usize) -> Result<Vec<RecordBatch>, UserqlError> {
        let text = std::str::from_utf8(&self.pending[..upto]).map_err(|e| {
            UserqlError::new(
                sqlstate::BAD_COPY_FILE_FORMAT,
                format!("COPY data is not valid UTF-8: {e}"),
            )
        })?;
        let (format, schema, columns) = (&self.format, &self.schema, &self.columns);
        let mut batches = Vec::new();
        let mut builders: Vec<StringBuilder> =
            columns.iter().map(|_| StringBuilder::new()).collect();
        let mut rows = 0usize;
        let mut first_line_of_batch = self.lines + 1;
        let mut fields: Vec<Option<String>> = Vec::with_capacity(columns.len());
        let mut rest = text;
        while !rest.is_empty() {
            self.lines += 1;
            let line_no = self.lines;
            fields.clear();
            rest = if format.csv {
                csv_record(rest, format, &mut fields, line_no)?
            } else {
                text_record(rest, format, &mut fields, line_no)?
            };
            if !format.csv && fields.len() == 1 && matches!(&fields[0], Some(s) if s == "\\.") {
                // End-of-data marker of old clients: the rest is ignored.
                self.ended = true;
                rest = "";
            } else if self.header_pending {
                self.header_pending = false;
                first_line_of_batch = line_no + 1;
            } else {
                if fields.len() != columns.len() {
                    return Err(UserqlError::new(
                        sqlstate::BAD_COPY_FILE_FORMAT,
                        format!(
                            "COPY line {line_no}: expected {} columns, found {}",
                            columns.len(),
                            fields.len()
                        ),
                    ));
                }
                for (b, f) in builders.iter_mut().zip(fields.drain(..)) {
                    b.append_option(f);
                }
                rows += 1;
            }
            if rows == BATCH_ROWS || (rest.is_empty() && rows > 0) {
                batches.push(finish_batch(
                    &mut builders,
                    schema,
                    columns,
                    first_line_of_batch,
                    &self.zone,
                )?);
                rows = 0;
                first_line_of_batch = line_no + 1;
            }
        }
        Ok(batches)
    }
}

/// Read the text columns as the table's types (PostgreSQL's input rules); unlisted
/// columns are NULL.
fn finish_batch(
    builders: &mut [StringBuilder],
    schema: &SchemaRef,
    columns: &[usize],
    first_line: usize,
    zone: &Tz,
) -> Result<RecordBatch, UserqlError> {
    let texts: Vec<StringArray> = builders.iter_mut().map(|b| b.finish()).collect();
    let rows = texts.first().map(|a| a.len()).unwrap_or(0);
    let mut out: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let array = match columns.iter().position(|c| *c == i) {
            Some(pos) => {
                let values: Vec<Option<&str>> = texts[pos].iter().collect();
                super::pg_text::input::parse_column(&values, field.data_type(), zone).map_err(
                    |e| {
                        UserqlError::new(
                            e.code,
                            format!(
                                "{} (column \"{}\", COPY data from line {first_line})",
                                e.message,
                                field.name(),
                            ),
                        )
                    },
                )?
            }
            None => datafusion::arrow::array::new_null_array(field.data_type(), rows),
        };
        if !field.is_nullable() && array.null_count() > 0 {
            return Err(UserqlError::new(
                sqlstate::NOT_NULL_VIOLATION,
                format!(
                    "null value in column \"{}\" violates not-null constraint (COPY data from line {first_line})",
                    field.name()
                ),
            ));
        }
        out.push(array);
    }
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        out,
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// One line of the text format: fields split at the delimiter, backslash escapes
/// decoded, the NULL string as `None`. Returns the rest of the input.
fn text_record<'a>(
    input: &'a str,
    format: &CopyFormat,
    fields: &mut Vec<Option<String>>,
    line_no: usize,
) -> Result<&'a str, UserqlError> {
    let (line, rest) = match input.find('\n') {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => (input, ""),
    };
    let line = line.strip_suffix('\r').unwrap_or(line);
    let delimiter = format.delimiter as char;
    for raw in line.split(delimiter) {
        if raw == format.null {
            fields.push(None);
            continue;
        }
        if !raw.contains('\\') {
            fields.push(Some(raw.to_string()));
            continue;
        }
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('b') => out.push('\u{8}'),
                Some('f') => out.push('\u{c}'),
                Some('v') => out.push('\u{b}'),
                Some('.') if raw == "\\." => out.push_str("\\."),
                Some(other) => out.push(other),
                None => {
                    return Err(UserqlError::new(
                        sqlstate::BAD_COPY_FILE_FORMAT,
                        format!("COPY line {line_no}: backslash at the end of a field"),
                    ));
                }
            }
        }
        fields.push(Some(out));
    }
    Ok(rest)
}

/// One CSV record (quoted fields may span lines). An unquoted field equal to the NULL
/// string is `None`; a quoted empty field is the empty string.
fn csv_record<'a>(
    input: &'a str,
    format: &CopyFormat,
    fields: &mut Vec<Option<String>>,
    line_no: usize,
) -> Result<&'a str, UserqlError> {
    let bytes = input.as_bytes();
    let (delim, quote, escape) = (format.delimiter, format.quote, format.escape);
    let mut i = 0;
    loop {
        // One field.
        let mut value = Vec::new();
        let mut quoted = false;
        let start = i;
        while i < bytes.len() {
            let b = bytes[i];
            if b == quote {
                quoted = true;
                i += 1;
                loop {
                    if i >= bytes.len() {
                        return Err(UserqlError::new(
                            sqlstate::BAD_COPY_FILE_FORMAT,
                            format!("COPY line {line_no}: unterminated CSV quoted field"),
                        ));
                    }
                    let c = bytes[i];
                    if c == escape && i + 1 < bytes.len() && bytes[i + 1] == quote {
                        value.push(quote);
                        i += 2;
                    } else if c == quote {
                        i += 1;
                        break;
                    } else {
                        value.push(c);
                        i += 1;
                    }
                }
            } else if b == delim || b == b'\n' || b == b'\r' {
                break;
            } else {
                value.push(b);
                i += 1;
            }
        }
        let raw = &input[start..i];
        if !quoted && raw == format.null {
            fields.push(None);
        } else {
            // Only ASCII bytes were removed, so the value is still UTF-8.
            fields.push(Some(String::from_utf8_lossy(&value).into_owned()));
        }
        if i >= bytes.len() {
            return Ok("");
        }
        match bytes[i] {
            b if b == delim => i += 1,
            b'\r' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'\n' {
                    i += 1;
                }
                return Ok(&input[i..]);
            }
            _ => return Ok(&input[i + 1..]),
        }
    }
}

/// Encode a batch as COPY rows, one buffer per row (with its newline), each value in
/// PostgreSQL's text form.
pub fn encode_batch(
    batch: &RecordBatch,
    format: &CopyFormat,
    text: &TextOptions,
) -> Result<Vec<Vec<u8>>, UserqlError> {
    let columns: Vec<ColumnText> = batch
        .columns()
        .iter()
        .map(|c| ColumnText::new(c, text))
        .collect();
    let mut rows = Vec::with_capacity(batch.num_rows());
    let mut cell = String::new();
    for row in 0..batch.num_rows() {
        let mut line = Vec::with_capacity(64);
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                line.push(format.delimiter);
            }
            if column.is_null(row) {
                line.extend_from_slice(format.null.as_bytes());
                continue;
            }
            cell.clear();
            column.write(row, &mut cell);
            if format.csv {
                write_csv_field(&mut line, &cell, format);
            } else {
                write_text_field(&mut line, &cell, format.delimiter);
            }
        }
        line.push(b'\n');
        rows.push(line);
    }
    Ok(rows)
}

/// The header line of a CSV COPY TO.
pub fn encode_header(schema: &SchemaRef, format: &CopyFormat) -> Vec<u8> {
    let mut line = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        if i > 0 {
            line.push(format.delimiter);
        }
        write_csv_field(&mut line, f.name(), format);
    }
    line.push(b'\n');
    line
}

fn write_text_field(out: &mut Vec<u8>, value: &str, delimiter: u8) {
    for b in value.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' if delimiter == b'\t' => out.extend_from_slice(b"\\t"),
            b if b == delimiter => {
                out.push(b'\\');
                out.push(b);
            }
            b => out.push(b),
        }
    }
}

fn write_csv_field(out: &mut Vec<u8>, value: &str, format: &CopyFormat) {
    let needs_quotes = value.is_empty()
        || value == format.null
        || value
            .bytes()
            .any(|b| b == format.delimiter || b == format.quote || b == b'\n' || b == b'\r');
    if !needs_quotes {
        out.extend_from_slice(value.as_bytes());
        return;
    }
    out.push(format.quote);
    for b in value.bytes() {
        if b == format.quote {
            out.push(format.escape);
        }
        out.push(b);
    }
    out.push(format.quote);
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::BooleanArray;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::DataType;
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("vip", DataType::Boolean, true),
        ]))
    }

    #[test]
    fn text_format_round_trips_escapes_and_nulls() {
        let data = b"1\ta\\tb\tt\n2\t\\N\tf\n3\tline\\nbreak\t\\N\n";
        let batches = decode(data, &CopyFormat::text(), &schema(), &[0, 1, 2]).unwrap();
        let b = &batches[0];
        assert_eq!(b.num_rows(), 3);
        let names = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(names.value(0), "a\tb");
        assert!(names.is_null(1));
        assert_eq!(names.value(2), "line\nbreak");
        let rows = encode_batch(b, &CopyFormat::text(), &TextOptions::default()).unwrap();
        let back: Vec<u8> = rows.concat();
        assert_eq!(back, data.to_vec());
    }

    #[test]
    fn csv_quotes_headers_and_empty_strings() {
        let mut format = CopyFormat::csv();
        format.header = true;
        let data = b"id,name,vip\n1,\"a, \"\"b\"\"\",true\n2,,\n3,\"\",0\r\n4,\"multi\nline\",yes";
        let batches = decode(data, &format, &schema(), &[0, 1, 2]).unwrap();
        let b = &datafusion::arrow::compute::concat_batches(&schema(), &batches).unwrap();
        assert_eq!(b.num_rows(), 4);
        let names = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(names.value(0), "a, \"b\"");
        assert!(names.is_null(1));
        assert_eq!(names.value(2), "");
        assert_eq!(names.value(3), "multi\nline");
        let vip = b.column(2).as_any().downcast_ref::<BooleanArray>().unwrap();
        assert!(vip.value(0) && vip.is_null(1) && !vip.value(2) && vip.value(3));
        let rows = encode_batch(b, &CopyFormat::csv(), &TextOptions::default()).unwrap();
        assert_eq!(rows[0], b"1,\"a, \"\"b\"\"\",t\n");
        assert_eq!(rows[1], b"2,,\n");
        assert_eq!(rows[2], b"3,\"\",f\n");
    }

    /// Data cut into chunks anywhere (inside fields, inside quoted newlines, inside a
    /// multi-byte character) decodes exactly as the whole.
    #[test]
    fn chunked_data_decodes_as_the_whole() {
        let mut format = CopyFormat::csv();
        format.header = true;
        let data = "id,name,vip\n1,\"a,\nb\",t\n2,Zoë,\n3,\"\"\"q\"\"\",f\n".as_bytes();
        let whole = decode(data, &format, &schema(), &[0, 1, 2]).unwrap();
        let whole = datafusion::arrow::compute::concat_batches(&schema(), &whole).unwrap();
        for chunk in 1..data.len() {
            let mut decoder = CopyDecoder::new(format.clone(), schema(), vec![0, 1, 2]);
            let mut batches = Vec::new();
            for piece in data.chunks(chunk) {
                batches.extend(decoder.push(piece).unwrap());
            }
            batches.extend(decoder.finish().unwrap());
            let got = datafusion::arrow::compute::concat_batches(&schema(), &batches).unwrap();
            assert_eq!(got, whole, "chunks of {chunk} bytes");
        }
        assert_eq!(whole.num_rows(), 3);
    }

    #[test]
    fn column_subsets_leave_the_rest_null() {
        let batches = decode(b"x\t7\n", &CopyFormat::text(), &schema(), &[1, 0]).unwrap();
        let b = &batches[0];
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(ids.value(0), 7);
        assert!(b.column(2).is_null(0));
    }

    #[test]
    fn bad_rows_name_the_line_and_column() {
        let e = decode(
            b"1\ta\tt\n2\tb\n",
            &CopyFormat::text(),
            &schema(),
            &[0, 1, 2],
        )
        .unwrap_err();
        assert_eq!(e.code, sqlstate::BAD_COPY_FILE_FORMAT);
        assert!(e.message.contains("line 2"), "{}", e.message);
        let e = decode(b"x\ta\tt\n", &CopyFormat::text(), &schema(), &[0, 1, 2]).unwrap_err();
        assert_eq!(e.code, sqlstate::INVALID_TEXT_REPRESENTATION);
        assert!(e.message.contains("\"id\""), "{}", e.message);
        let e = decode(b"\\N\ta\tt\n", &CopyFormat::text(), &schema(), &[0, 1, 2]).unwrap_err();
        assert_eq!(e.code, sqlstate::NOT_NULL_VIOLATION);
        let e = decode(b"1,\"open", &CopyFormat::csv(), &schema(), &[0, 1, 2]).unwrap_err();
        assert_eq!(e.code, sqlstate::BAD_COPY_FILE_FORMAT);
    }
}
