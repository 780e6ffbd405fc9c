//! Errors raised on an executor reach `serve` as text: Ballista fails the job with the
//! task's error printed (`Job … failed: … DataFusionError(…UserqlError { code: "22P02",
//! message: "…", hint: None }…)`). This gets the error the user would have seen on one
//! machine back out of that text: a userql error with its SQLSTATE and message, or the
//! Arrow error DataFusion would have raised; anything else keeps Ballista's message.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;

use crate::error::{UserqlError, sqlstate};

/// The error of a job that failed on the cluster, as close to the original as its
/// text allows.
pub fn from_cluster(e: DataFusionError) -> DataFusionError {
    let text = e.to_string();
    if let Some(error) = userql_error(&text) {
        return DataFusionError::External(Box::new(error));
    }
    if let Some(error) = arrow_error(&text) {
        return DataFusionError::ArrowError(Box::new(error), None);
    }
    if unreachable(&text) {
        // As postgres_fdw answers when its remote server cannot be reached: the
        // client's own connection is fine, and the next statement may find the
        // cluster back.
        return DataFusionError::External(Box::new(
            UserqlError::new(
                sqlstate::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                format!("could not reach the cluster: {text}"),
            )
            .with_hint("is the scheduler that serve --cluster names running, with its executors?"),
        ));
    }
    e
}

/// Whether a node of the cluster could not be reached: its address refused the
/// connection or did not answer.
fn unreachable(text: &str) -> bool {
    text.contains("tonic::transport::Error") || text.contains("tcp connect error")
}

/// The last `UserqlError { code: "…", message: "…", hint: … }` printed in `text`.
fn userql_error(text: &str) -> Option<UserqlError> {
    let at = text.rfind("UserqlError { code: \"")?;
    let rest = &text[at + "UserqlError { code: \"".len()..];
    let code = sqlstate::known(rest.get(..5)?)?;
    let rest = rest[5..].strip_prefix("\", message: \"")?;
    let (message, rest) = debug_string(rest)?;
    let mut error = UserqlError::new(code, message);
    if let Some(hint) = rest.strip_prefix(", hint: Some(\"") {
        error = error.with_hint(debug_string(hint)?.0);
    }
    Some(error)
}

/// An Arrow error from its message.
type MakeArrowError = fn(String) -> ArrowError;

/// The Arrow errors with a SQLSTATE of their own (see `crate::error`), from how they
/// print.
fn arrow_error(text: &str) -> Option<ArrowError> {
    if text.contains("ArrowError(DivideByZero") {
        return Some(ArrowError::DivideByZero);
    }
    let with_message: [(&str, MakeArrowError); 4] = [
        ("ArrowError(CastError(\"", ArrowError::CastError),
        ("ArrowError(ParseError(\"", ArrowError::ParseError),
        (
            "ArrowError(ArithmeticOverflow(\"",
            ArrowError::ArithmeticOverflow,
        ),
        ("ArrowError(ComputeError(\"", ArrowError::ComputeError),
    ];
    with_message.into_iter().find_map(|(prefix, make)| {
        let at = text.rfind(prefix)?;
        Some(make(debug_string(&text[at + prefix.len()..])?.0))
    })
}

/// A string as Rust's `{:?}` prints it, from just after its opening quote: the string
/// and what follows its closing quote.
fn debug_string(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &text[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '0' => out.push('\0'),
                'u' => {
                    // \u{hex}
                    let (open, _) = chars.next()?;
                    let close = text[open..].find('}')? + open;
                    let code = u32::from_str_radix(&text[open + 1..close], 16).ok()?;
                    out.push(char::from_u32(code)?);
                    while chars.next()?.0 < close {}
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_failure(inner: &str) -> DataFusionError {
        DataFusionError::Execution(format!(
            "Job 038HVZTQAW000 failed: Job failed due to stage 1 failed: Task failed due to \
             runtime execution error: DataFusionError(Shared(External({inner})))"
        ))
    }

    #[test]
    fn an_unreachable_scheduler_is_a_connection_error() {
        let refused = DataFusionError::Execution(
            "tonic::transport::Error(Transport, ConnectError(ConnectError(\"tcp connect error\", \
             127.0.0.1:50199, Os { code: 111, kind: ConnectionRefused, message: \
             \"Connection refused\" })))"
                .into(),
        );
        let back = UserqlError::from(from_cluster(refused));
        assert_eq!(back.code, "08001");
        assert!(back.message.starts_with("could not reach the cluster: "));
        assert!(back.hint.is_some());
        let other = UserqlError::from(from_cluster(DataFusionError::Execution("boom".into())));
        assert_ne!(other.code, "08001");
    }

    #[test]
    fn userql_errors_get_their_code_message_and_hint_back() {
        let original = UserqlError::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            "invalid input syntax for type integer: \"a\\b\"\n\tü 🙂",
        )
        .with_hint("say \"why\"");
        let e = from_cluster(job_failure(&format!(
            "DataFusionError(External({original:?}))"
        )));
        let back = UserqlError::from(e);
        assert_eq!(back.code, original.code);
        assert_eq!(back.message, original.message);
        assert_eq!(back.hint, original.hint);
        let plain = UserqlError::new(sqlstate::DATA_EXCEPTION, "ltv: no orders");
        let back = UserqlError::from(from_cluster(job_failure(&format!("{plain:?}"))));
        assert_eq!(
            (back.code, back.message, back.hint),
            (plain.code, plain.message, None)
        );
    }

    #[test]
    fn arrow_errors_keep_their_sqlstate() {
        let e = from_cluster(job_failure("ArrowError(DivideByZero)"));
        assert_eq!(UserqlError::from(e).code, sqlstate::DIVISION_BY_ZERO);
        let e = from_cluster(job_failure(&format!(
            "{:?}",
            DataFusionError::ArrowError(
                Box::new(ArrowError::CastError("Cannot cast \"x\"".into())),
                None
            )
        )));
        let back = UserqlError::from(e);
        assert_eq!(back.code, sqlstate::INVALID_TEXT_REPRESENTATION);
        assert_eq!(back.message, "Cannot cast \"x\"");
    }

    #[test]
    fn other_failures_keep_ballistas_message() {
        let e = from_cluster(DataFusionError::Execution(
            "Job 1 failed: executor lost".into(),
        ));
        assert!(UserqlError::from(e).message.contains("executor lost"));
    }
}
