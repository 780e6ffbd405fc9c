//! The COPY sub-protocol: `CopyInResponse` then the client's `CopyData` until
//! `CopyDone`, and `CopyOutResponse` with one `CopyData` per row. The formats and the
//! write are the engine's ([`crate::engine::copy`]); this only moves bytes.

use std::fmt::Debug;

use async_trait::async_trait;
use futures::{Sink, SinkExt, StreamExt, stream};
use pgwire::api::ClientInfo;
use pgwire::api::copy::CopyHandler;
use pgwire::api::results::{CopyResponse, Response, Tag};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};

use super::connection::Queries;
use super::errors::to_pg;
use crate::engine::Session;
use crate::engine::copy::{CopyChunk, CopyFormat, CopyIn, encode_batch, encode_header};
use crate::engine::pg_text::TextOptions;
use crate::error::{UserqlError, sqlstate};
use tokio::sync::mpsc;

/// How many CopyData messages may wait for the decoder before the connection stops
/// reading (back-pressure instead of buffering the whole COPY).
const COPY_QUEUE: usize = 16;

/// A `COPY FROM STDIN` in progress: its data goes to a writer task as it arrives.
pub struct PendingCopy {
    chunks: mpsc::Sender<CopyChunk>,
    writer: tokio::task::JoinHandle<Result<u64, UserqlError>>,
}

impl PendingCopy {
    /// Start writing into `copy`'s table; the rows come through [`CopyHandler`].
    pub async fn start(session: &Session, copy: &CopyIn) -> Result<Self, UserqlError> {
        let writer = session.copy_writer(copy).await?;
        let (chunks, received) = mpsc::channel(COPY_QUEUE);
        let received = futures::stream::unfold(received, |mut r| async move {
            r.recv().await.map(|chunk| (chunk, r))
        });
        let writer = tokio::spawn(writer.write(Box::pin(received)));
        Ok(Self { chunks, writer })
    }

    /// Wait for the writer: the rows written, or why nothing was.
    async fn finish(self) -> Result<u64, UserqlError> {
        drop(self.chunks);
        self.writer.await.map_err(|e| {
            UserqlError::new(sqlstate::INTERNAL_ERROR, format!("COPY writer failed: {e}"))
        })?
    }
}

/// Tell the client to send rows (text format, `columns` columns).
pub fn copy_in_response(columns: usize) -> Response {
    Response::CopyIn(CopyResponse::new(0, columns, stream::empty()))
}

/// Stream a query's rows as COPY data.
pub async fn copy_out_response(
    df: crate::engine::snapshot::Rows,
    format: CopyFormat,
    text: TextOptions,
) -> Result<Response, UserqlError> {
    let schema = df.schema().as_arrow().clone();
    let columns = schema.fields().len();
    let header = format
        .header
        .then(|| encode_header(&std::sync::Arc::new(schema), &format));
    let batches = df.execute_stream().await?;
    let mut header = header;
    let rows = batches
        .map(move |batch| -> Vec<PgWireResult<CopyData>> {
            let encoded = batch
                .map_err(UserqlError::from)
                .and_then(|b| encode_batch(&b, &format, &text));
            match encoded {
                Ok(mut rows) => {
                    // The header rides with the first row, so the row count stays right.
                    if let (Some(h), Some(first)) = (header.take(), rows.first_mut()) {
                        let mut joined = h;
                        joined.extend_from_slice(first);
                        *first = joined;
                    }
                    rows.into_iter()
                        .map(|r| Ok(CopyData::new(r.into())))
                        .collect()
                }
                Err(e) => vec![Err(to_pg(e))],
            }
        })
        .flat_map(stream::iter);
    Ok(Response::CopyOut(CopyResponse::new(0, columns, rows)))
}

fn io_error(e: impl Debug) -> UserqlError {
    UserqlError::new(sqlstate::IO_ERROR, format!("{e:?}"))
}

#[async_trait]
impl CopyHandler for Queries {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let sender = self.copy_in.lock().await.as_ref().map(|p| p.chunks.clone());
        if let Some(sender) = sender {
            // A closed channel means the writer already failed; CopyDone reports why.
            let _ = sender.send(CopyChunk::Data(copy_data.data.to_vec())).await;
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(pending) = self.copy_in.lock().await.take() else {
            return Err(to_pg(UserqlError::new(
                sqlstate::PROTOCOL_VIOLATION,
                "CopyDone without a COPY in progress",
            )));
        };
        let _ = pending.chunks.send(CopyChunk::Done).await;
        let rows = pending.finish().await.map_err(to_pg)?;
        if let Some(session) = self.slot.lock().await.as_mut() {
            session.note_write();
        }
        let tag = Tag::new("COPY").with_rows(rows as usize);
        client
            .send(PgWireBackendMessage::CommandComplete(tag.into()))
            .await
            .map_err(|e| to_pg(io_error(e)))?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(pending) = self.copy_in.lock().await.take() else {
            return to_pg(UserqlError::new(
                sqlstate::QUERY_CANCELED,
                format!("COPY from stdin failed: {}", fail.message),
            ));
        };
        let _ = pending
            .chunks
            .send(CopyChunk::Failed(fail.message.clone()))
            .await;
        match pending.finish().await {
            Err(e) => to_pg(e),
            Ok(_) => to_pg(UserqlError::new(
                sqlstate::QUERY_CANCELED,
                format!("COPY from stdin failed: {}", fail.message),
            )),
        }
    }
}
