//! One connection's message loop over a socket whose writes wait until the server needs
//! the client again.
//!
//! pgwire flushes after each extended-protocol reply (ParseComplete, BindComplete, the
//! row description, CommandComplete, ReadyForQuery): a pipelined Parse/Bind/Describe/
//! Execute/Sync cost five `sendto` calls and five loopback segments, a third of the
//! server's CPU on small statements, where PostgreSQL sends one. [`Coalesced`] keeps
//! what is written and sends it when the connection is about to read from the client
//! (the client may be waiting for it), when it has 64 KiB to send, or when the
//! connection closes. A client's request for it (Flush, Sync) is always followed by a
//! read, so nothing a client waits for is held back.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use pgwire::messages::PgWireFrontendMessage;
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

/// How long a client has to finish connecting (TLS, startup, authentication).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a closing connection tries to send what it still holds.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Output held back at most, in bytes.
const HOLD_LIMIT: usize = 64 * 1024;

/// A stream whose written bytes are held until the next read, [`HOLD_LIMIT`] bytes, or
/// shutdown; `flush` sends nothing by itself.
pub struct Coalesced<S> {
    inner: S,
    held: Vec<u8>,
    /// How much of `held` is sent already.
    sent: usize,
}

impl<S: AsyncWrite + Unpin> Coalesced<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            held: Vec::new(),
            sent: 0,
        }
    }

    /// Send everything held, then flush the stream below.
    fn poll_send_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.held.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.held.clear();
        self.sent = 0;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// Send everything held.
    pub async fn send_held(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_send_held(cx)).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Coalesced<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.held.is_empty() {
            ready!(this.poll_send_held(cx))?;
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesced<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.held.is_empty() && this.held.len() + buf.len() > HOLD_LIMIT {
            ready!(this.poll_send_held(cx))?;
        }
        if this.held.is_empty() && buf.len() >= HOLD_LIMIT {
            // A large result: straight through, without a copy.
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        this.held.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Held until the connection reads again (see the module docs).
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_held(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Serve one client connection: TLS negotiation (pgwire's), then every message through
/// pgwire's handlers, as `pgwire::tokio::process_socket` does, with coalesced writes.
pub async fn serve<H: PgWireServerHandlers>(
    socket: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handlers: H,
) -> io::Result<()> {
    let startup_timeout = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup_timeout);
    let negotiated = tokio::select! {
        _ = &mut startup_timeout => return Ok(()),
        negotiated = negotiate_tls(socket, tls) => negotiated?,
    };
    // A direct TLS connection without TLS configured: nothing to say to it.
    let Some(negotiated) = negotiated else {
        return Ok(());
    };
    let old = negotiated.into_parts();
    let mut parts = FramedParts::new(Coalesced::new(old.io), old.codec);
    parts.read_buf = old.read_buf;
    parts.write_buf = old.write_buf;
    let mut socket = Framed::from_parts(parts);

    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let errors = handlers.error_handler();
    let served = async {
        loop {
            let message = if matches!(
                socket.state(),
                PgWireConnectionState::AwaitingStartup
                    | PgWireConnectionState::AuthenticationInProgress
            ) {
                tokio::select! {
                    _ = &mut startup_timeout => None,
                    message = socket.next() => message,
                }
            } else {
                socket.next().await
            };
            let Some(Ok(message)) = message else {
                return Ok(());
            };
            // The client leaves; some (asyncpg) wait for the server to close the socket.
            if matches!(message, PgWireFrontendMessage::Terminate(_)) {
                return Ok(());
            }
            let extended_query = match socket.state() {
                PgWireConnectionState::CopyInProgress(extended_query) => extended_query,
                _ => message.is_extended_query(),
            };
            if let Err(mut e) = process_message(
                message,
                &mut socket,
                startup.clone(),
                simple.clone(),
                extended.clone(),
                copy.clone(),
                cancel.clone(),
            )
            .await
            {
                errors.on_error(&socket, &mut e);
                process_error(&mut socket, e, extended_query).await?;
            }
        }
    };
    let result: io::Result<()> = served.await;
    // What the last replies left held (a Terminate right after a Sync, an error before
    // closing) still goes out — unless the client stops reading.
    let last = async {
        let _ = socket.flush().await;
        let _ = socket.get_mut().send_held().await;
    };
    let _ = tokio::time::timeout(CLOSE_WAIT, last).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_wait_for_the_next_read_and_flush_sends_nothing() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut held = Coalesced::new(near);
        held.write_all(b"one").await.unwrap();
        held.flush().await.unwrap();
        held.write_all(b"two").await.unwrap();
        let mut buf = [0u8; 16];
        let nothing = tokio::time::timeout(Duration::from_millis(20), far.read(&mut buf)).await;
        assert!(
            nothing.is_err(),
            "held output must not be sent before a read"
        );
        far.write_all(b"?").await.unwrap();
        let mut one = [0u8; 1];
        held.read_exact(&mut one).await.unwrap();
        let n = far.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"onetwo");
    }

    #[tokio::test]
    async fn large_output_and_shutdown_are_sent_without_a_read() {
        let (near, mut far) = tokio::io::duplex(1 << 22);
        let mut held = Coalesced::new(near);
        let big = vec![7u8; 3 * HOLD_LIMIT];
        for chunk in big.chunks(1000) {
            held.write_all(chunk).await.unwrap();
        }
        held.write_all(b"end").await.unwrap();
        held.shutdown().await.unwrap();
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), big.len() + 3);
        assert!(got.ends_with(b"end"));
    }
}
