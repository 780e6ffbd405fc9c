//! The PostgreSQL wire protocol front (pgwire): the accept loop, connection limit and
//! graceful shutdown. Architecture invariant: only this module speaks the wire.

pub mod audit;
pub mod connection;
pub mod copy;
pub mod errors;
mod params;
mod rows;
mod socket;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::engine::Engine;
use connection::{Connection, Shared};

/// How long a shutdown waits for open sessions before closing them.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// A bound, not yet serving, server.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    max_connections: usize,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Server {
    /// Bind the listen address.
    pub async fn bind(engine: Arc<Engine>, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let max_connections = engine.config().server.max_connections;
        Ok(Self {
            listener,
            shared: Shared::new(engine),
            max_connections,
            tls: None,
        })
    }

    /// Offer TLS with this acceptor (see [`tls::acceptor`]).
    pub fn with_tls(mut self, acceptor: Option<tokio_rustls::TlsAcceptor>) -> Self {
        self.tls = acceptor;
        self
    }

    /// The address actually bound (port 0 picks a free one).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown` turns true; then stop accepting and wait for sessions to end.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> std::io::Result<()> {
        let permits = Arc::new(Semaphore::new(self.max_connections));
        let mut sessions = JoinSet::new();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (socket, peer) = match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            tracing::warn!("accept failed: {e}");
                            continue;
                        }
                    };
                    let _ = socket.set_nodelay(true);
                    let (socket, hangup) = match with_hangup_watch(socket) {
                        Ok(pair) => pair,
                        Err(e) => {
                            tracing::warn!(%peer, "cannot watch the connection: {e}");
                            continue;
                        }
                    };
                    let shared = self.shared.clone();
                    let tls = self.tls.clone();
                    match permits.clone().try_acquire_owned() {
                        Ok(permit) => {
                            sessions.spawn(async move {
                                use futures::FutureExt;
                                let handlers = Connection::new(shared, Some(Arc::new(hangup)));
                                // pgwire's message decoder panics on some malformed
                                // messages (a Bind shorter than its counts): contain it to
                                // this connection, which closes, and say so.
                                let serve = std::panic::AssertUnwindSafe(socket::serve(
                                    socket, tls, handlers,
                                ));
                                match serve.catch_unwind().await {
                                    Ok(Ok(())) => {}
                                    Ok(Err(e)) => {
                                        tracing::debug!(%peer, "connection ended with error: {e}");
                                    }
                                    Err(_) => tracing::warn!(
                                        %peer,
                                        "connection closed: a malformed protocol message could not be decoded"
                                    ),
                                }
                                drop(permit);
                            });
                        }
                        Err(_) => {
                            tracing::warn!(%peer, "refused: max_connections reached");
                            sessions.spawn(refuse_too_many(socket, shared.cancel.clone()));
                        }
                    }
                }
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
        tracing::info!(
            open = sessions.len(),
            "shutting down: no new connections; waiting up to {}s for open sessions",
            SHUTDOWN_GRACE.as_secs()
        );
        let drain = async { while sessions.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            tracing::warn!(
                open = sessions.len(),
                "closing sessions still open after the grace period"
            );
            sessions.shutdown().await;
        }
        Ok(())
    }
}

/// The socket, and a second handle on it that only ever peeks: a statement racing
/// `connection::hung_up` on it stops when the client closes the connection mid-query.
fn with_hangup_watch(socket: TcpStream) -> std::io::Result<(TcpStream, TcpStream)> {
    let std_socket = socket.into_std()?;
    let watch = std_socket.try_clone()?;
    Ok((
        TcpStream::from_std(std_socket)?,
        TcpStream::from_std(watch)?,
    ))
}

/// Tell a client over the limit why, as PostgreSQL does (FATAL 53300), then close.
///
/// The client speaks first (an SSLRequest and/or a StartupMessage), so read what it
/// sends, decline TLS, and answer the startup with the error.
async fn refuse_too_many(mut socket: TcpStream, canceller: Arc<connection::Canceller>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let refuse = async {
        for _ in 0..2 {
            let len = socket.read_i32().await? as usize;
            let mut body = vec![0u8; len.saturating_sub(4).min(1 << 16)];
            socket.read_exact(&mut body).await?;
            // A CancelRequest takes no session, so a full server still carries it out
            // (as PostgreSQL does) and, as for any cancel, answers nothing.
            if let Some(request) = cancel_request(&body) {
                use pgwire::api::cancel::CancelHandler;
                canceller.on_cancel_request(request).await;
                return Ok(());
            }
            let is_ssl_or_gss = body.len() == 4
                && matches!(
                    body[..],
                    [0x04, 0xd2, 0x16, 0x2f] | [0x04, 0xd2, 0x16, 0x30]
                );
            if is_ssl_or_gss {
                socket.write_all(b"N").await?;
            } else {
                break;
            }
        }
        socket
            .write_all(&error_response_bytes(
                "FATAL",
                crate::error::sqlstate::TOO_MANY_CONNECTIONS,
                "sorry, too many clients already",
            ))
            .await?;
        socket.flush().await
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), refuse).await;
}

/// The CancelRequest a startup packet's body (after its length) holds, if it is one,
/// read by pgwire's own decoder.
fn cancel_request(body: &[u8]) -> Option<pgwire::messages::cancel::CancelRequest> {
    use pgwire::messages::{DecodeContext, Message, cancel::CancelRequest};
    let mut packet = bytes::BytesMut::with_capacity(4 + body.len());
    packet.extend_from_slice(&((4 + body.len()) as i32).to_be_bytes());
    packet.extend_from_slice(body);
    if !CancelRequest::is_cancel_request_packet(&packet) {
        return None;
    }
    CancelRequest::decode(&mut packet, &DecodeContext::default())
        .ok()
        .flatten()
}

/// A raw ErrorResponse message.
fn error_response_bytes(severity: &str, code: &str, message: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (tag, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', message),
    ] {
        fields.push(tag);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&((fields.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(&fields);
    out
}

/// Resolve when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
