//! The TLS listener for [`axum::serve`] and the per-connection [`TlsConnectInfo`].

use std::any::Any;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::connect_info::{Connected, IntoMakeServiceWithConnectInfo};
use axum::serve::{IncomingStream, Listener};
use mtls::ListenerStats;
use mtls::{
    Acceptor, ConnectionInfo, DefaultExtractor, IdentityExtractor, ListenerOptions, Server,
    TlsListener,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

// === impl MtlsListener ===

/// An [`axum::serve::Listener`] that accepts TCP connections and completes their mTLS
/// handshakes before handing them to axum.
///
/// It wraps [`mtls::TlsListener`]: every handshake runs in its own task with a timeout
/// ([`ServerBuilder::handshake_timeout`](mtls::ServerBuilder::handshake_timeout), default
/// 10 s) under a cap on concurrent handshakes ([`ListenerOptions::max_handshakes`], default
/// 1024), so a client that stalls its handshake never delays anyone else. Failed
/// handshakes are logged (target `mtls::acceptor`) and counted in [`stats`](Self::stats),
/// never returned to axum.
///
/// Serve the router with [`MtlsRouterExt::into_mtls_service`] so that handlers and layers
/// see the peer's identity:
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use mtls_axum::{ClientIdentity, MtlsListener, MtlsRouterExt};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let server = mtls::Server::builder()
///     .identity("server.crt", "server.key")
///     .client_ca("ca.crt")
///     .policy(mtls::Policy::any_verified())
///     .alpn(mtls::HTTP_ALPN)
///     .build()?;
/// let app = Router::new().route(
///     "/",
///     get(|peer: ClientIdentity| async move { format!("hello {}", peer.subject()) }),
/// );
/// let listener = MtlsListener::bind("127.0.0.1:8443", &server).await?;
/// axum::serve(listener, app.into_mtls_service())
///     .with_graceful_shutdown(async { let _ = tokio::signal::ctrl_c().await; })
///     .await?;
/// # Ok(()) }
/// ```
pub struct MtlsListener<E: IdentityExtractor = DefaultExtractor> {
    inner: TlsListener<E>,
}

impl<E: IdentityExtractor> fmt::Debug for MtlsListener<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtlsListener")
            .field("inner", &self.inner)
            .finish()
    }
}

impl MtlsListener<DefaultExtractor> {
    /// Binds a TCP listener on `addr` and serves `server`'s handshakes with default
    /// [`ListenerOptions`]. Must be called within a tokio runtime.
    ///
    /// Logs a warning when `server` has no ALPN protocols (see [`mtls::HTTP_ALPN`]).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(addr: impl ToSocketAddrs, server: &Server) -> io::Result<Self> {
        if server.config().alpn_protocols.is_empty() {
            tracing::warn!(
                target: "mtls_axum",
                "the server offers no ALPN protocols, so clients cannot negotiate HTTP/2; \
                 call .alpn(mtls::HTTP_ALPN) on the mtls::ServerBuilder"
            );
        }
        Self::bind_with(addr, server.acceptor(), ListenerOptions::default()).await
    }
}

impl<E: IdentityExtractor> MtlsListener<E> {
    /// Binds a TCP listener on `addr` and serves handshakes with `acceptor` (e.g. from
    /// [`Server::acceptor_with`] for a custom [`IdentityExtractor`]) and `options`.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind_with(
        addr: impl ToSocketAddrs,
        acceptor: Acceptor<E>,
        options: ListenerOptions,
    ) -> io::Result<Self> {
        let tcp = TcpListener::bind(addr).await?;
        Ok(Self::new(TlsListener::with_options(
            tcp, acceptor, options,
        )?))
    }

    /// Wraps an existing [`TlsListener`].
    pub fn new(inner: TlsListener<E>) -> Self {
        Self { inner }
    }

    /// The address the listener is bound to (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr()
    }

    /// Counters of accepted connections and of successful, failed, timed-out and evicted
    /// handshakes.
    pub fn stats(&self) -> Arc<ListenerStats> {
        self.inner.stats()
    }

    /// The wrapped [`TlsListener`].
    pub fn into_inner(self) -> TlsListener<E> {
        self.inner
    }
}

impl<E: IdentityExtractor> From<TlsListener<E>> for MtlsListener<E> {
    fn from(inner: TlsListener<E>) -> Self {
        Self::new(inner)
    }
}

impl<E: IdentityExtractor> Listener for MtlsListener<E> {
    type Io = MtlsStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let accepted = self.inner.accept().await;
        let info = TlsConnectInfo::new(accepted.peer, accepted.remote_addr);
        let stream = MtlsStream {
            stream: accepted.stream,
            info,
        };
        (stream, accepted.remote_addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.inner.local_addr())
    }
}

// === impl MtlsStream ===

/// A connection accepted by [`MtlsListener`]: the TLS stream and what is known about the
/// peer.
pub struct MtlsStream {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    info: TlsConnectInfo,
}

impl fmt::Debug for MtlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MtlsStream")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl MtlsStream {
    /// The peer of this connection.
    pub fn connect_info(&self) -> &TlsConnectInfo {
        &self.info
    }

    /// The underlying TLS stream.
    pub fn get_ref(&self) -> &tokio_rustls::server::TlsStream<TcpStream> {
        &self.stream
    }

    /// Splits into the TLS stream and the connection info.
    pub fn into_parts(self) -> (tokio_rustls::server::TlsStream<TcpStream>, TlsConnectInfo) {
        (self.stream, self.info)
    }
}

impl AsyncRead for MtlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for MtlsStream {
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

// === impl TlsConnectInfo ===

/// What is known about the peer of one mTLS connection, as axum's
/// [`ConnectInfo`](axum::extract::ConnectInfo): the core's [`mtls::ConnectionInfo`] of the
/// connection (verified identity or none for an anonymous client, the application's
/// principal, generation, ALPN, resumption) and the remote address.
///
/// axum's [`Connected`] trait cannot be implemented for the core's type, hence this thin
/// wrapper. It holds the `mtls::ConnectionInfo<P>` the handshake produced, with the
/// principal's type `P` erased so that one `TlsConnectInfo` serves every
/// [`IdentityExtractor`]: its accessors read that value, and
/// [`connection_info`](Self::connection_info) hands it out.
///
/// Built once per connection; cloning it (axum does so for every request) costs a
/// reference-count increment. Serving the router with
/// [`MtlsRouterExt::into_mtls_service`] puts it into every request as
/// [`ConnectInfo<TlsConnectInfo>`](axum::extract::ConnectInfo), where the extractors of
/// this crate and [`RequirePolicyLayer`](crate::RequirePolicyLayer) find it; handlers may
/// also take `ConnectInfo<TlsConnectInfo>` themselves.
#[derive(Clone)]
pub struct TlsConnectInfo {
    conn: Arc<dyn Conn>,
    remote_addr: SocketAddr,
}

/// The connection info behind a [`TlsConnectInfo`]: the core's `ConnectionInfo<P>` of a
/// real connection, or what `MockPeerIdentity` (feature `test-util`) says.
pub(crate) trait Conn: Send + Sync + 'static {
    fn identity(&self) -> Option<&Arc<mtls::PeerIdentity>>;
    fn principal(&self) -> Option<&(dyn Any + Send + Sync)>;
    fn principal_type(&self) -> Option<&'static str>;
    fn generation(&self) -> u64;
    fn alpn(&self) -> Option<&[u8]>;
    fn resumed(&self) -> bool;
    fn as_any(&self) -> &dyn Any;
}

impl<P: Send + Sync + 'static> Conn for ConnectionInfo<P> {
    fn identity(&self) -> Option<&Arc<mtls::PeerIdentity>> {
        Self::identity(self)
    }
    fn principal(&self) -> Option<&(dyn Any + Send + Sync)> {
        Self::principal(self).map(|p| p as &(dyn Any + Send + Sync))
    }
    fn principal_type(&self) -> Option<&'static str> {
        Self::principal(self).map(|_| std::any::type_name::<P>())
    }
    fn generation(&self) -> u64 {
        Self::generation(self)
    }
    fn alpn(&self) -> Option<&[u8]> {
        Self::alpn(self)
    }
    fn resumed(&self) -> bool {
        Self::resumed(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl fmt::Debug for TlsConnectInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnectInfo")
            .field("remote_addr", &self.remote_addr)
            .field("subject", &self.identity().map(|i| i.subject()))
            .field("principal_type", &self.principal_type())
            .field("generation", &self.generation())
            .field("alpn", &self.alpn().map(String::from_utf8_lossy))
            .field("resumed", &self.resumed())
            .finish()
    }
}

impl TlsConnectInfo {
    pub(crate) fn new<P: Send + Sync + 'static>(
        conn: ConnectionInfo<P>,
        remote_addr: SocketAddr,
    ) -> Self {
        Self::from_conn(Arc::new(conn), remote_addr)
    }

    pub(crate) fn from_conn(conn: Arc<dyn Conn>, remote_addr: SocketAddr) -> Self {
        Self { conn, remote_addr }
    }

    /// The core's connection info, when the listener's [`IdentityExtractor`] produces
    /// principals of type `P` (with the default extractor, `P` is
    /// `Arc<mtls::PeerIdentity>`). `None` for another `P`, and under
    /// `MockPeerIdentity` (feature `test-util`), which has no real connection.
    pub fn connection_info<P: Send + Sync + 'static>(&self) -> Option<&ConnectionInfo<P>> {
        self.conn.as_any().downcast_ref::<ConnectionInfo<P>>()
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// The verified and authorized peer, or `None` for an anonymous client under
    /// [`ClientAuth::Optional`](mtls::ClientAuth::Optional).
    pub fn identity(&self) -> Option<&Arc<mtls::PeerIdentity>> {
        self.conn.identity()
    }

    /// Whether the client connected without a certificate.
    pub fn is_anonymous(&self) -> bool {
        self.identity().is_none()
    }

    /// The application's principal from the listener's [`IdentityExtractor`], if it is of
    /// type `P` (with the default extractor, `P` is `Arc<mtls::PeerIdentity>`).
    pub fn principal<P: Send + Sync + 'static>(&self) -> Option<&P> {
        self.conn.principal().and_then(|p| p.downcast_ref::<P>())
    }

    /// The type name of the principal, when there is one.
    pub fn principal_type(&self) -> Option<&'static str> {
        self.conn.principal_type()
    }

    /// The generation of the material that admitted the connection (see
    /// [`mtls::ConnectionInfo::generation`]).
    pub fn generation(&self) -> u64 {
        self.conn.generation()
    }

    /// The negotiated ALPN protocol (`h2`, `http/1.1`), if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.conn.alpn()
    }

    /// Whether the TLS session was resumed.
    pub fn resumed(&self) -> bool {
        self.conn.resumed()
    }
}

impl<E: IdentityExtractor> Connected<IncomingStream<'_, MtlsListener<E>>> for TlsConnectInfo {
    fn connect_info(stream: IncomingStream<'_, MtlsListener<E>>) -> Self {
        stream.io().connect_info().clone()
    }
}

// === impl MtlsRouterExt ===

/// Serving a [`Router`] so that every request carries its connection's
/// [`TlsConnectInfo`].
pub trait MtlsRouterExt: sealed::Sealed {
    /// Shorthand for
    /// [`into_make_service_with_connect_info::<TlsConnectInfo>()`](Router::into_make_service_with_connect_info):
    /// `axum::serve(listener, app.into_mtls_service())`.
    ///
    /// Without it (plain `axum::serve(listener, app)`), the requests carry no connection
    /// info, and the extractors and [`RequirePolicyLayer`](crate::RequirePolicyLayer)
    /// answer 500 with a message saying to call this.
    fn into_mtls_service(self) -> IntoMakeServiceWithConnectInfo<Router, TlsConnectInfo>;
}

impl MtlsRouterExt for Router<()> {
    fn into_mtls_service(self) -> IntoMakeServiceWithConnectInfo<Router, TlsConnectInfo> {
        self.into_make_service_with_connect_info::<TlsConnectInfo>()
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for axum::Router<()> {}
}
