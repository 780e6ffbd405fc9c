//! A statement that stops early (cancelled, past `statement_timeout`, or its client
//! gone) cancels its job on the cluster too, so the executors stop working for nobody.
//! Ballista's client submits a job and keeps its id to itself, so each job is given a
//! name no other has ([`job_name`]) and, when its stream is dropped before its end,
//! found by that name through the scheduler's REST API (`GET /api/jobs`) and cancelled
//! (`PATCH /api/job/{id}`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use futures::Stream;
use futures::stream::BoxStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::SchedulerAddr;

/// Looks for a just-submitted job this many times, this far apart: a statement
/// cancelled at once may be dropped while its job is still on its way.
const FIND_ATTEMPTS: u32 = 10;
const FIND_EVERY: Duration = Duration::from_millis(200);

/// A job name no other job of this or another server has.
pub fn job_name() -> String {
    super::unique_name("userql")
}

/// A job's result stream that cancels the job when dropped before its end.
pub struct CancelOnDrop {
    inner: BoxStream<'static, Result<RecordBatch>>,
    /// The job to cancel; `None` once the stream has ended (or failed).
    job: Option<(SchedulerAddr, String)>,
}

impl CancelOnDrop {
    pub fn new(
        inner: BoxStream<'static, Result<RecordBatch>>,
        scheduler: SchedulerAddr,
        name: String,
    ) -> Self {
        CancelOnDrop {
            inner,
            job: Some((scheduler, name)),
        }
    }
}

impl Stream for CancelOnDrop {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.inner.as_mut().poll_next(cx);
        if matches!(item, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            // Ended, or failed (and so ended on the cluster): nothing to cancel.
            self.job = None;
        }
        item
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some((scheduler, name)) = self.job.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            match cancel(&scheduler, &name).await {
                Ok(true) => tracing::info!(job = %name, "cancelled the statement's cluster job"),
                Ok(false) => tracing::debug!(job = %name, "no running cluster job to cancel"),
                Err(e) => tracing::warn!(job = %name, "could not cancel the cluster job: {e}"),
            }
        });
    }
}

/// Cancels the queued or running job named `name`; `false` when there is none (it
/// ended, or never reached the scheduler).
async fn cancel(scheduler: &SchedulerAddr, name: &str) -> std::io::Result<bool> {
    for attempt in 0..FIND_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(FIND_EVERY).await;
        }
        let (_, body) = http(scheduler, "GET", "/api/jobs").await?;
        match running_job_id(&body, name) {
            Found::Running(id) => {
                let (status, body) = http(scheduler, "PATCH", &format!("/api/job/{id}")).await?;
                if !(200..300).contains(&status) {
                    return Err(std::io::Error::other(format!(
                        "the scheduler answered {status}: {body}"
                    )));
                }
                return Ok(true);
            }
            Found::Ended => return Ok(false),
            Found::Absent => {}
        }
    }
    Ok(false)
}

#[derive(Debug, PartialEq, Eq)]
enum Found {
    Running(String),
    Ended,
    Absent,
}

/// The job named `name` in the scheduler's `GET /api/jobs` answer.
fn running_job_id(body: &str, name: &str) -> Found {
    let Ok(serde_json::Value::Array(jobs)) = serde_json::from_str::<serde_json::Value>(body) else {
        return Found::Absent;
    };
    let text = |job: &serde_json::Value, key: &str| {
        job.get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    for job in &jobs {
        if text(job, "job_name").as_deref() != Some(name) {
            continue;
        }
        return match (text(job, "job_id"), text(job, "status").as_deref()) {
            (Some(id), Some("Queued" | "Running")) => Found::Running(id),
            _ => Found::Ended,
        };
    }
    Found::Absent
}

/// One HTTP/1.1 request without a body: the status and the body of the answer.
async fn http(
    scheduler: &SchedulerAddr,
    method: &str,
    path: &str,
) -> std::io::Result<(u16, String)> {
    let connect = tokio::net::TcpStream::connect((scheduler.host.as_str(), scheduler.port));
    let mut stream = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .map_err(|_| std::io::Error::other("the scheduler did not answer within 5 s"))??;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        scheduler.host
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .map_err(|_| std::io::Error::other("the scheduler did not answer within 5 s"))??;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {head}")))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

/// A chunked body's data.
fn unchunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ() {
        assert_ne!(job_name(), job_name());
    }

    #[test]
    fn the_job_is_found_by_name_while_it_runs() {
        let body = r#"[
            {"job_id":"A1","job_name":"other","status":"Running"},
            {"job_id":"B2","job_name":"mine","status":"Running","num_stages":2},
            {"job_id":"C3","job_name":"done","status":"Completed"}
        ]"#;
        assert_eq!(running_job_id(body, "mine"), Found::Running("B2".into()));
        assert_eq!(running_job_id(body, "done"), Found::Ended);
        assert_eq!(running_job_id(body, "absent"), Found::Absent);
        assert_eq!(running_job_id("not json", "mine"), Found::Absent);
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(unchunk("4\r\n[{}]\r\n0\r\n\r\n"), "[{}]");
        assert_eq!(unchunk("2\r\n[{\r\n2\r\n}]\r\n0\r\n\r\n"), "[{}]");
    }
}
