//! The error a user sees: a PostgreSQL SQLSTATE, a message, and maybe a hint.
//!
//! Architecture invariant: this is the one place that decides SQLSTATEs. The engine
//! converts every failure into a [`UserqlError`] through [`UserqlError::from`]; the wire
//! layer only copies code, message and hint into the ErrorResponse.

use std::fmt;

use datafusion::arrow::error::ArrowError;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;

/// SQLSTATE codes userql answers with (PostgreSQL Appendix A).
pub mod sqlstate {
    /// 0A000
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const INVALID_BINARY_REPRESENTATION: &str = "22P03";
    /// 08001 (as `postgres_fdw` when it cannot reach its remote server)
    pub const SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION: &str = "08001";
    /// 08006
    pub const CONNECTION_FAILURE: &str = "08006";
    /// 08P01
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    /// 22003
    pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
    /// 22012
    pub const DIVISION_BY_ZERO: &str = "22012";
    /// 22023
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    /// 22P02
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    /// 22025
    pub const INVALID_ESCAPE_SEQUENCE: &str = "22025";
    /// 22007
    pub const INVALID_DATETIME_FORMAT: &str = "22007";
    /// 22008
    pub const DATETIME_FIELD_OVERFLOW: &str = "22008";
    /// 22P04
    pub const BAD_COPY_FILE_FORMAT: &str = "22P04";
    /// 22000
    pub const DATA_EXCEPTION: &str = "22000";
    /// 23502
    pub const NOT_NULL_VIOLATION: &str = "23502";
    /// 2BP01
    pub const DEPENDENT_OBJECTS_STILL_EXIST: &str = "2BP01";
    /// 25P01
    pub const NO_ACTIVE_SQL_TRANSACTION: &str = "25P01";
    /// 28P01
    pub const INVALID_PASSWORD: &str = "28P01";
    /// 3D000
    pub const INVALID_CATALOG_NAME: &str = "3D000";
    /// 3F000
    pub const INVALID_SCHEMA_NAME: &str = "3F000";
    /// 40001
    pub const SERIALIZATION_FAILURE: &str = "40001";
    /// 42601
    pub const SYNTAX_ERROR: &str = "42601";
    /// 55000
    pub const OBJECT_NOT_IN_PREREQUISITE_STATE: &str = "55000";
    /// 42501
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    /// 42703
    pub const UNDEFINED_COLUMN: &str = "42703";
    /// 42809
    pub const WRONG_OBJECT_TYPE: &str = "42809";
    /// 42702
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    /// 42704
    pub const UNDEFINED_OBJECT: &str = "42704";
    /// 42804
    pub const DATATYPE_MISMATCH: &str = "42804";
    /// 42883
    pub const UNDEFINED_FUNCTION: &str = "42883";
    /// 42P01
    pub const UNDEFINED_TABLE: &str = "42P01";
    /// 42P06
    pub const DUPLICATE_SCHEMA: &str = "42P06";
    /// 42P07
    pub const DUPLICATE_TABLE: &str = "42P07";
    /// 42846
    pub const CANNOT_COERCE: &str = "42846";
    /// 42000
    pub const SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION: &str = "42000";
    /// 53200
    pub const OUT_OF_MEMORY: &str = "53200";
    /// 53300
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    /// 54000
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    /// 57014
    pub const QUERY_CANCELED: &str = "57014";
    /// 58030
    pub const IO_ERROR: &str = "58030";
    /// 58P01
    pub const UNDEFINED_FILE: &str = "58P01";
    /// XX000
    pub const INTERNAL_ERROR: &str = "XX000";

    /// Every code above.
    const ALL: &[&str] = &[
        FEATURE_NOT_SUPPORTED,
        INVALID_BINARY_REPRESENTATION,
        SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
        CONNECTION_FAILURE,
        PROTOCOL_VIOLATION,
        NUMERIC_VALUE_OUT_OF_RANGE,
        DIVISION_BY_ZERO,
        INVALID_PARAMETER_VALUE,
        INVALID_TEXT_REPRESENTATION,
        INVALID_ESCAPE_SEQUENCE,
        INVALID_DATETIME_FORMAT,
        DATETIME_FIELD_OVERFLOW,
        BAD_COPY_FILE_FORMAT,
        DATA_EXCEPTION,
        NOT_NULL_VIOLATION,
        DEPENDENT_OBJECTS_STILL_EXIST,
        NO_ACTIVE_SQL_TRANSACTION,
        INVALID_PASSWORD,
        INVALID_CATALOG_NAME,
        INVALID_SCHEMA_NAME,
        SERIALIZATION_FAILURE,
        SYNTAX_ERROR,
        OBJECT_NOT_IN_PREREQUISITE_STATE,
        INSUFFICIENT_PRIVILEGE,
        UNDEFINED_COLUMN,
        WRONG_OBJECT_TYPE,
        AMBIGUOUS_COLUMN,
        UNDEFINED_OBJECT,
        DATATYPE_MISMATCH,
        UNDEFINED_FUNCTION,
        UNDEFINED_TABLE,
        DUPLICATE_SCHEMA,
        DUPLICATE_TABLE,
        CANNOT_COERCE,
        SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION,
        OUT_OF_MEMORY,
        TOO_MANY_CONNECTIONS,
        PROGRAM_LIMIT_EXCEEDED,
        QUERY_CANCELED,
        IO_ERROR,
        UNDEFINED_FILE,
        INTERNAL_ERROR,
    ];

    /// The code `text` names, when it is one of ours (an error that crossed a process
    /// boundary as text gets its code back).
    pub fn known(text: &str) -> Option<&'static str> {
        ALL.iter().copied().find(|c| *c == text)
    }
}

/// An error as a PostgreSQL client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserqlError {
    /// Five-character SQLSTATE.
    pub code: &'static str,
    /// One line saying what went wrong.
    pub message: String,
    /// What to do about it, when we know.
    pub hint: Option<String>,
}

impl fmt::Display for UserqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.code)?;
        if let Some(h) = &self.hint {
            write!(f, "\nHINT: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for UserqlError {}

impl UserqlError {
    /// An error with an explicit code.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: None,
        }
    }

    /// Attach a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// 0A000.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(sqlstate::FEATURE_NOT_SUPPORTED, message)
    }

    /// 57014, as PostgreSQL words it.
    pub fn canceled(why: &str) -> Self {
        Self::new(
            sqlstate::QUERY_CANCELED,
            format!("canceling statement due to {why}"),
        )
    }
}

impl From<DataFusionError> for UserqlError {
    fn from(e: DataFusionError) -> Self {
        from_datafusion(&e)
    }
}

impl From<ParserError> for UserqlError {
    fn from(e: ParserError) -> Self {
        from_parser(&e)
    }
}

impl From<ArrowError> for UserqlError {
    fn from(e: ArrowError) -> Self {
        from_arrow(&e)
    }
}

fn from_parser(e: &ParserError) -> UserqlError {
    let text = match e {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.clone(),
        ParserError::RecursionLimitExceeded => "statement is nested too deeply".to_string(),
    };
    UserqlError::new(
        sqlstate::SYNTAX_ERROR,
        format!(
            "syntax error: {}",
            text.trim_start_matches("sql parser error: ")
        ),
    )
}

fn from_arrow(e: &ArrowError) -> UserqlError {
    use sqlstate::*;
    let (code, msg) = match e {
        ArrowError::DivideByZero => (DIVISION_BY_ZERO, "division by zero".to_string()),
        ArrowError::CastError(m) => (INVALID_TEXT_REPRESENTATION, m.clone()),
        ArrowError::ParseError(m) => (INVALID_TEXT_REPRESENTATION, m.clone()),
        ArrowError::CsvError(m) => (BAD_COPY_FILE_FORMAT, format!("malformed CSV: {m}")),
        ArrowError::JsonError(m) => (BAD_COPY_FILE_FORMAT, format!("malformed JSON: {m}")),
        ArrowError::ArithmeticOverflow(m) => (NUMERIC_VALUE_OUT_OF_RANGE, m.clone()),
        ArrowError::ComputeError(m) if m.to_ascii_lowercase().contains("overflow") => {
            (NUMERIC_VALUE_OUT_OF_RANGE, m.clone())
        }
        ArrowError::IoError(m, _) => (IO_ERROR, m.clone()),
        ArrowError::ExternalError(inner) => return from_boxed(inner.as_ref()),
        ArrowError::MemoryError(m) => (OUT_OF_MEMORY, m.clone()),
        ArrowError::InvalidArgumentError(m) if m.contains("non-nullable") => (
            NOT_NULL_VIOLATION,
            format!("null value violates a not-null constraint: {m}"),
        ),
        other => (DATA_EXCEPTION, other.to_string()),
    };
    UserqlError::new(code, msg)
}

/// Classify any boxed error (what pgwire and arrow carry): known types keep their code.
pub fn from_boxed(e: &(dyn std::error::Error + Send + Sync + 'static)) -> UserqlError {
    if let Some(u) = e.downcast_ref::<UserqlError>() {
        return u.clone();
    }
    if let Some(d) = e.downcast_ref::<DataFusionError>() {
        return from_datafusion(d);
    }
    if let Some(a) = e.downcast_ref::<ArrowError>() {
        return from_arrow(a);
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return UserqlError::new(sqlstate::IO_ERROR, io.to_string());
    }
    // Libraries (deltalake) wrap the DataFusion or Arrow error that says what the user
    // did wrong: classify by the first cause we know.
    let mut cause = e.source();
    while let Some(inner) = cause {
        if let Some(d) = inner.downcast_ref::<DataFusionError>() {
            return from_datafusion(d);
        }
        if let Some(a) = inner.downcast_ref::<ArrowError>() {
            return from_arrow(a);
        }
        cause = inner.source();
    }
    UserqlError::new(sqlstate::INTERNAL_ERROR, e.to_string())
}

/// DataFusion reports most user mistakes as `Plan` strings; the wording is stable enough
/// to classify, and a miss only degrades the code to 42000, never the message.
fn classify_plan_message(m: &str) -> &'static str {
    use sqlstate::*;
    let lower = m.to_ascii_lowercase();
    if lower.contains("no table named")
        || lower.contains("table")
            && (lower.contains("not found")
                || lower.contains("doesn't exist")
                || lower.contains("does not exist"))
    {
        UNDEFINED_TABLE
    } else if lower.contains("no field named")
        || lower.contains("column") && lower.contains("not found")
    {
        UNDEFINED_COLUMN
    } else if lower.contains("invalid function")
        || lower.contains("function")
            && (lower.contains("not found") || lower.contains("does not exist"))
        || lower.contains("no function matches")
    {
        UNDEFINED_FUNCTION
    } else if lower.contains("schema")
        && (lower.contains("not found")
            || lower.contains("doesn't exist")
            || lower.contains("does not exist"))
    {
        INVALID_SCHEMA_NAME
    } else if lower.contains("already exists") {
        if lower.contains("schema") {
            DUPLICATE_SCHEMA
        } else {
            DUPLICATE_TABLE
        }
    } else if lower.contains("ambiguous") {
        AMBIGUOUS_COLUMN
    } else if lower.contains("cannot infer common")
        || lower.contains("cannot coerce")
        || lower.contains("coercion")
        || lower.contains("does not support")
        || lower.contains("unsupported cast")
        || lower.contains("signature")
        || lower.contains("expected") && lower.contains("type")
    {
        DATATYPE_MISMATCH
    } else if lower.contains("cast") {
        CANNOT_COERCE
    } else {
        SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION
    }
}

/// Strip DataFusion's own prefixes ("Error during planning: ") so messages read like
/// PostgreSQL's.
fn clean(m: &str) -> String {
    let mut s = m.trim();
    for p in [
        "Error during planning: ",
        "Execution error: ",
        "Invalid or Unsupported Configuration: ",
        "This feature is not implemented: ",
        "Schema error: ",
    ] {
        s = s.strip_prefix(p).unwrap_or(s);
    }
    s.to_string()
}

fn from_datafusion(e: &DataFusionError) -> UserqlError {
    use sqlstate::*;
    match e {
        DataFusionError::SQL(p, _) => from_parser(p),
        DataFusionError::ArrowError(a, _) => from_arrow(a),
        DataFusionError::ParquetError(p) => {
            UserqlError::new(DATA_EXCEPTION, format!("parquet: {p}"))
        }
        DataFusionError::ObjectStore(o) => match o.as_ref() {
            object_store_not_found if object_store_not_found.to_string().contains("not found") => {
                UserqlError::new(UNDEFINED_FILE, o.to_string())
            }
            _ => UserqlError::new(IO_ERROR, o.to_string()),
        },
        DataFusionError::IoError(io) => {
            if io.kind() == std::io::ErrorKind::NotFound {
                UserqlError::new(UNDEFINED_FILE, io.to_string())
            } else {
                UserqlError::new(IO_ERROR, io.to_string())
            }
        }
        DataFusionError::NotImplemented(m) if m.contains("logical expression ScalarSubquery") => {
            UserqlError::unsupported(
                "this correlated subquery is not supported: it compares outer and inner \
                 columns other than by equality, or aggregates outer columns",
            )
            .with_hint("rewrite it as a JOIN, or correlate by equality (inner.col = outer.col)")
        }
        DataFusionError::NotImplemented(m) => UserqlError::unsupported(clean(m)),
        DataFusionError::Plan(m) => UserqlError::new(classify_plan_message(m), clean(m)),
        DataFusionError::Configuration(m) => {
            let code = if m.contains("unrecognized configuration parameter")
                || m.contains("Could not find config namespace")
                || m.contains("not found")
            {
                UNDEFINED_OBJECT
            } else {
                INVALID_PARAMETER_VALUE
            };
            UserqlError::new(code, clean(m))
        }
        DataFusionError::SchemaError(s, _) => match s.as_ref() {
            SchemaError::FieldNotFound {
                field,
                valid_fields,
            } => {
                let msg = format!("column \"{}\" does not exist", field.name);
                let names: Vec<String> = valid_fields
                    .iter()
                    .take(20)
                    .map(|c| c.name.clone())
                    .collect();
                let err = UserqlError::new(UNDEFINED_COLUMN, msg);
                if names.is_empty() {
                    err
                } else {
                    err.with_hint(format!("available columns: {}", names.join(", ")))
                }
            }
            SchemaError::AmbiguousReference { field } => UserqlError::new(
                AMBIGUOUS_COLUMN,
                format!("column reference \"{}\" is ambiguous", field.name),
            ),
            other => UserqlError::new(AMBIGUOUS_COLUMN, other.to_string()),
        },
        DataFusionError::Execution(m) => {
            let lower = m.to_ascii_lowercase();
            let code = if lower.contains("division by zero") || lower.contains("divide by zero") {
                DIVISION_BY_ZERO
            } else if lower.contains("cast") || lower.contains("parse") {
                INVALID_TEXT_REPRESENTATION
            } else if lower.contains("overflow") {
                NUMERIC_VALUE_OUT_OF_RANGE
            } else if lower.contains("non-nullable") && lower.contains("null") {
                NOT_NULL_VIOLATION
            } else if lower.contains("not found") && lower.contains("table") {
                UNDEFINED_TABLE
            } else if lower.contains("already exists") {
                DUPLICATE_TABLE
            } else {
                DATA_EXCEPTION
            };
            UserqlError::new(code, clean(m))
        }
        DataFusionError::ResourcesExhausted(m) => UserqlError::new(
            OUT_OF_MEMORY,
            format!("query needs more memory than allowed: {}", clean(m)),
        )
        .with_hint("raise [server] memory_limit, or narrow the query"),
        DataFusionError::External(inner) => from_boxed(inner.as_ref()),
        DataFusionError::Context(_, inner) => from_datafusion(inner),
        DataFusionError::Diagnostic(_, inner) => from_datafusion(inner),
        DataFusionError::Shared(inner) => from_datafusion(inner),
        DataFusionError::Collection(v) => v
            .first()
            .map(from_datafusion)
            .unwrap_or_else(|| UserqlError::new(INTERNAL_ERROR, e.to_string())),
        DataFusionError::ExecutionJoin(j) => UserqlError::new(INTERNAL_ERROR, j.to_string()),
        DataFusionError::Internal(m) => {
            UserqlError::new(INTERNAL_ERROR, format!("internal error: {m}"))
        }
        other => UserqlError::new(INTERNAL_ERROR, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn err_of(sql: &str) -> UserqlError {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t (a INT, b VARCHAR)").await.unwrap();
        match ctx.sql(sql).await {
            Err(e) => e.into(),
            Ok(df) => df.collect().await.expect_err("expected an error").into(),
        }
    }

    #[tokio::test]
    async fn common_mistakes_get_their_sqlstate() {
        assert_eq!(err_of("SELEC 1").await.code, sqlstate::SYNTAX_ERROR);
        assert_eq!(
            err_of("SELECT * FROM nope").await.code,
            sqlstate::UNDEFINED_TABLE
        );
        let e = err_of("SELECT nope FROM t").await;
        assert_eq!(e.code, sqlstate::UNDEFINED_COLUMN, "{e}");
        assert_eq!(
            err_of("SELECT no_such_fn(1)").await.code,
            sqlstate::UNDEFINED_FUNCTION
        );
        assert_eq!(
            err_of("SELECT CAST('abc' AS INT)").await.code,
            sqlstate::INVALID_TEXT_REPRESENTATION
        );
        assert_eq!(err_of("SELECT 1/0").await.code, sqlstate::DIVISION_BY_ZERO);
    }
}
