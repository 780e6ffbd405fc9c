//! The audit log: one `tracing` line per statement (target `userql::audit`) with the user,
//! the client's address, the duration, the rows returned or affected and the SQLSTATE of
//! a failure. The statement is logged with every literal replaced by `?` — never a bound
//! parameter's value or a phone number typed into a WHERE clause.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use futures::Stream;

/// The tracing target of audit lines (`RUST_LOG=userql::audit=off` silences them).
pub const TARGET: &str = "userql::audit";
/// Longest statement text logged, in characters.
const MAX_STATEMENT: usize = 2000;

/// Whether audit lines are being recorded (redacting costs a tokenisation).
pub fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

/// The statement as the audit log shows it, when the log is on (`None` otherwise, so
/// nothing is tokenised for it).
pub fn text(sql: &str) -> Option<Arc<str>> {
    enabled().then(|| redact(sql).into())
}

/// The statement with every literal (strings, numbers, dollar-quoted bodies) as `?`.
/// Text that does not tokenise is logged only by its first word.
pub fn redact(sql: &str) -> String {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        let word: String = sql
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        return format!("{} <not tokenisable>", word.to_uppercase());
    };
    let mut out = String::with_capacity(sql.len().min(MAX_STATEMENT));
    let mut last_space = true;
    for token in tokens {
        let piece = match token {
            Token::Whitespace(_) => {
                if !last_space {
                    out.push(' ');
                    last_space = true;
                }
                continue;
            }
            Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_) => "?".to_string(),
            other => other.to_string(),
        };
        out.push_str(&piece);
        last_space = false;
        if out.len() > MAX_STATEMENT {
            out.truncate(MAX_STATEMENT);
            out.push_str("...");
            break;
        }
    }
    out.trim().to_string()
}

/// One statement being audited; logs when finished (or, if dropped unfinished, as
/// interrupted: the client went away mid-stream).
#[derive(Debug)]
pub struct Entry {
    user: Arc<str>,
    client: SocketAddr,
    statement: Arc<str>,
    started: Instant,
    rows: u64,
    done: bool,
}

impl Entry {
    /// Start timing a statement (`statement`: already redacted).
    pub fn start(user: Arc<str>, client: SocketAddr, statement: Arc<str>) -> Self {
        Self {
            user,
            client,
            statement,
            started: Instant::now(),
            rows: 0,
            done: false,
        }
    }

    /// The statement succeeded with `rows` rows (affected, or sent).
    pub fn succeeded(mut self, rows: Option<u64>) {
        self.done = true;
        self.log(rows, None);
    }

    /// The statement failed with a SQLSTATE.
    pub fn failed(mut self, sqlstate: &str) {
        self.done = true;
        let rows = (self.rows > 0).then_some(self.rows);
        self.log(rows, Some(sqlstate));
    }

    fn log(&self, rows: Option<u64>, sqlstate: Option<&str>) {
        let duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            target: TARGET,
            user = %self.user,
            client = %self.client,
            duration_ms = format_args!("{duration_ms:.3}"),
            rows = rows.map(|r| r as i64).unwrap_or(-1),
            sqlstate = sqlstate.unwrap_or("00000"),
            statement = %self.statement,
        );
    }

    /// Count the rows of a result stream; the line is logged when it ends.
    pub fn counting<S, T, E>(self, inner: S) -> CountingRows<S>
    where
        S: Stream<Item = Result<T, E>>,
    {
        CountingRows {
            inner,
            entry: Some(self),
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if !self.done {
            self.done = true;
            let rows = self.rows;
            self.log(Some(rows), Some("57P05"));
        }
    }
}

/// A row stream that audits its statement when it ends.
pub struct CountingRows<S> {
    inner: S,
    entry: Option<Entry>,
}

impl<S, T, E> Stream for CountingRows<S>
where
    S: Stream<Item = Result<T, E>> + Unpin,
    E: std::fmt::Debug + ErrorCode,
{
    type Item = Result<T, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) => {
                if let Some(e) = self.entry.as_mut() {
                    e.rows += 1;
                }
            }
            Poll::Ready(Some(Err(err))) => {
                if let Some(e) = self.entry.take() {
                    e.failed(&err.sqlstate());
                }
            }
            Poll::Ready(None) => {
                if let Some(mut e) = self.entry.take() {
                    let rows = e.rows;
                    e.done = true;
                    e.log(Some(rows), None);
                }
            }
            Poll::Pending => {}
        }
        polled
    }
}

/// The SQLSTATE of an error in a row stream.
pub trait ErrorCode {
    /// Five characters.
    fn sqlstate(&self) -> String;
}

impl ErrorCode for pgwire::error::PgWireError {
    fn sqlstate(&self) -> String {
        match self {
            pgwire::error::PgWireError::UserError(info) => info.code.clone(),
            pgwire::error::PgWireError::ApiError(inner) => {
                crate::error::from_boxed(inner.as_ref()).code.to_string()
            }
            _ => "08P01".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_never_reach_the_log() {
        let sql = "SELECT * FROM identities WHERE id_value = '13812345678' AND n > 42 \
                   AND e = E'zoe@example.com' AND d = $$secret$$ LIMIT $1";
        let r = redact(sql);
        for secret in ["13812345678", "42", "zoe@example.com", "secret"] {
            assert!(!r.contains(secret), "{r}");
        }
        assert!(
            r.starts_with("SELECT * FROM identities WHERE id_value = ?"),
            "{r}"
        );
        assert!(r.ends_with("LIMIT $1"), "{r}");
        // Text the tokeniser refuses is logged by its first word only.
        assert_eq!(redact("SELECT 'unterminated"), "SELECT <not tokenisable>");
    }
}
