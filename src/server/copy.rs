//! The COPY sub-protocol: `CopyInResponse` then the client's `CopyData` until
//! `CopyDone`, and `CopyOutResponse` with one `CopyData` per row. The formats and the
//! write are the engine's ([`crate::engine::copy`]); this only moves bytes.

use std::fmt::Debug;

use async_trait::async_trait;
use datafusion::prelude::DataFrame;
use futures::{Sink, SinkExt, StreamExt, stream};
use pgwire::api::ClientInfo;
use pgwire::api::copy::CopyHandler;
use pgwire::api::results::{CopyResponse, Response, Tag};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};

use super::connection::Queries;
use super::errors::to_pg;
use crate::engine::copy::{CopyFormat, CopyIn, encode_batch, encode_header};
use crate::engine::session::Outcome;
use crate::error::{UserqlError, sqlstate};

/// A `COPY FROM STDIN` waiting for its data.
pub struct PendingCopy {
    copy: CopyIn,
    data: Vec<u8>,
}

impl PendingCopy {
    /// Start collecting data for `copy`.
    pub fn new(copy: CopyIn) -> Self {
        Self {
            copy,
            data: Vec::new(),
        }
    }
}

/// Tell the client to send rows (text format, `columns` columns).
pub fn copy_in_response(columns: usize) -> Response {
    Response::CopyIn(CopyResponse::new(0, columns, stream::empty()))
}

/// Stream a query's rows as COPY data.
pub async fn copy_out_response(df: DataFrame, format: CopyFormat) -> Result<Response, UserqlError> {
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
                .and_then(|b| encode_batch(&b, &format));
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
        if let Some(pending) = self.copy_in.lock().await.as_mut() {
            pending.data.extend_from_slice(&copy_data.data);
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
        let mut guard = self.slot.lock().await;
        let session = guard.as_mut().ok_or_else(|| {
            to_pg(UserqlError::new(
                sqlstate::PROTOCOL_VIOLATION,
                "COPY data before the session started",
            ))
        })?;
        let outcome = session
            .copy_in(&pending.copy, &pending.data)
            .await
            .map_err(to_pg)?;
        let Outcome::Command(tag) = outcome else {
            return Ok(());
        };
        let tag = Tag::new(&tag.command).with_rows(tag.rows.unwrap_or(0));
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
        self.copy_in.lock().await.take();
        to_pg(UserqlError::new(
            sqlstate::QUERY_CANCELED,
            format!("COPY from stdin failed: {}", fail.message),
        ))
    }
}
