//! The server side: an incoming stream of mTLS connections for
//! `tonic::transport::Server::serve_with_incoming`
//! (and `serve_with_incoming_shutdown`), built on [`mtls::TlsListener`].
//!
//! [`TlsIncoming`] hands tonic the listener's finished connections: the listener runs
//! every handshake in its own task, with the handshake timeout, the ClientHello deadline
//! and its caps, so a client that stalls never delays another, and admits each connection
//! against the trust in force when its handshake ends. Each connection is a
//! [`IncomingConnection`], whose tonic [`Connected::ConnectInfo`] is the core's
//! [`mtls::ConnectionInfo<P>`](mtls::ConnectionInfo): tonic puts it into every request's
//! extensions, where handlers, interceptors and tower layers read it through
//! [`RequestExt`](crate::RequestExt) (`request.peer_identity()`,
//! `request.connection_info()`).
//!
//! # `Request::remote_addr`
//!
//! tonic's [`Request::remote_addr`](tonic::Request::remote_addr) reads only tonic's own
//! connect-info types (`TcpConnectInfo`, and `TlsConnectInfo` with tonic's TLS features),
//! and tonic inserts exactly one connect-info value per connection. So with this stream
//! the address is in [`ConnectionInfo::remote_addr`](mtls::ConnectionInfo::remote_addr)
//! (also `request.connection_info()?.remote_addr()`), and [`TcpConnectInfoLayer`] on the
//! server (`Server::builder().layer(TcpConnectInfoLayer)`) adds tonic's `TcpConnectInfo`
//! as well, so that `Request::remote_addr()` and code written for plain tonic keep
//! working.
//!
//! # Reloads and long-lived connections
//!
//! The identity is read once per connection, at the handshake. A reload of CAs, CRLs or
//! the policy applies to new connections; an HTTP/2 connection already open keeps the
//! identity it was accepted with until it closes. To bound how long that is, give the
//! tonic server a `max_connection_age` (`Server::builder().max_connection_age(..)`): each
//! connection is then closed gracefully (GOAWAY) after that age, and clients reconnect
//! through the new trust.
//!
//! ```no_run
//! use mtls::{Policy, TlsListener};
//! use mtls_tonic::{TcpConnectInfoLayer, TlsIncoming};
//!
//! # async fn run(routes: tonic::service::Routes) -> Result<(), Box<dyn std::error::Error>> {
//! let server = mtls::Server::builder()
//!     .identity("server.crt", "server.key")
//!     .client_ca("ca.crt")
//!     .policy("spiffe:prod.example.org".parse::<Policy>()?)
//!     .alpn(["h2"])
//!     .build()?;
//! let tcp = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
//! let incoming = TlsIncoming::new(TlsListener::new(tcp, server.acceptor())?);
//!
//! tonic::transport::Server::builder()
//!     .max_connection_age(std::time::Duration::from_secs(600))
//!     .layer(TcpConnectInfoLayer)
//!     .add_routes(routes)
//!     .serve_with_incoming(incoming)
//!     .await?;
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use futures_util::stream::BoxStream;
use mtls::{Accepted, ConnectionInfo, DefaultExtractor, IdentityExtractor, TlsListener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

// === impl TlsIncoming ===

/// The connections of an [`mtls::TlsListener`] as a stream for tonic's
/// `serve_with_incoming`; see the [module docs](self).
///
/// The stream never ends and never yields an error: failed handshakes are logged and
/// counted by the listener (its [`stats`](mtls::TlsListener::stats)), never handed to
/// tonic. Dropping it (tonic drops it when a `serve_with_incoming_shutdown` signal
/// fires) closes the listening socket.
pub struct TlsIncoming<E: IdentityExtractor = DefaultExtractor> {
    local_addr: SocketAddr,
    stats: std::sync::Arc<mtls::ListenerStats>,
    inner: BoxStream<'static, Result<IncomingConnection<E::Principal>, Infallible>>,
}

impl<E: IdentityExtractor> fmt::Debug for TlsIncoming<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIncoming")
            .field("local_addr", &self.local_addr)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<E: IdentityExtractor> TlsIncoming<E> {
    /// The connections of `listener`.
    pub fn new(listener: TlsListener<E>) -> Self {
        let local_addr = listener.local_addr();
        let stats = listener.stats();
        let inner = futures_util::stream::unfold(listener, |mut listener| async move {
            let accepted = listener.accept().await;
            Some((Ok(IncomingConnection::new(accepted)), listener))
        });
        Self {
            local_addr,
            stats,
            inner: Box::pin(inner),
        }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The listener's counters (handshakes that succeeded, failed, timed out, …).
    pub fn stats(&self) -> std::sync::Arc<mtls::ListenerStats> {
        self.stats.clone()
    }
}

impl<E: IdentityExtractor> Stream for TlsIncoming<E> {
    type Item = Result<IncomingConnection<E::Principal>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

// === impl IncomingConnection ===

/// One accepted mTLS connection, as tonic serves it: the TLS stream and the core's
/// [`ConnectionInfo`], which is its tonic [`Connected::ConnectInfo`].
pub struct IncomingConnection<P = std::sync::Arc<mtls::PeerIdentity>> {
    stream: TlsStream<TcpStream>,
    info: ConnectionInfo<P>,
}

impl<P: fmt::Debug> fmt::Debug for IncomingConnection<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingConnection")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl<P> IncomingConnection<P> {
    /// A connection from what the listener handed out.
    pub fn new(accepted: Accepted<P>) -> Self {
        Self {
            stream: accepted.stream,
            info: accepted.peer,
        }
    }

    /// What is known about the peer.
    pub fn info(&self) -> &ConnectionInfo<P> {
        &self.info
    }

    /// The TCP stream and the rustls connection.
    pub fn get_ref(&self) -> (&TcpStream, &mtls::rustls::ServerConnection) {
        self.stream.get_ref()
    }
}

impl<P: Clone + Send + Sync + 'static> Connected for IncomingConnection<P> {
    type ConnectInfo = ConnectionInfo<P>;

    fn connect_info(&self) -> ConnectionInfo<P> {
        self.info.clone()
    }
}

impl<P> AsyncRead for IncomingConnection<P> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<P> AsyncWrite for IncomingConnection<P> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

// === impl TcpConnectInfoLayer ===

/// A layer for tonic's `Server::builder().layer(..)` that adds tonic's own
/// [`TcpConnectInfo`] (local and remote address) to every request served over a
/// [`TlsIncoming`], so that [`Request::remote_addr`](tonic::Request::remote_addr) works;
/// see the [module docs](self#requestremote_addr). Requests without the core's
/// [`ConnectionInfo`] (default principal) pass unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnectInfoLayer;

impl<S> tower_layer::Layer<S> for TcpConnectInfoLayer {
    type Service = AddTcpConnectInfo<S>;

    fn layer(&self, inner: S) -> AddTcpConnectInfo<S> {
        AddTcpConnectInfo { inner }
    }
}

/// The service of [`TcpConnectInfoLayer`].
#[derive(Debug, Clone)]
pub struct AddTcpConnectInfo<S> {
    inner: S,
}

impl<S, B> tower_service::Service<http::Request<B>> for AddTcpConnectInfo<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> S::Future {
        let remote_addr = req
            .extensions()
            .get::<ConnectionInfo>()
            .and_then(ConnectionInfo::remote_addr);
        if remote_addr.is_some() && req.extensions().get::<TcpConnectInfo>().is_none() {
            req.extensions_mut().insert(TcpConnectInfo {
                local_addr: None,
                remote_addr,
            });
        }
        self.inner.call(req)
    }
}
