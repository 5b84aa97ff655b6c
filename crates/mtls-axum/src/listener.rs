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
/// use mtls_axum::{MtlsListener, MtlsRouterExt, PeerIdentity};
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
///     get(|peer: PeerIdentity| async move { format!("hello {}", peer.subject()) }),
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
        let info = TlsConnectInfo::from_peer(accepted.peer, accepted.remote_addr);
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

/// What is known about the peer of one mTLS connection: its verified identity (or none
/// for an anonymous client), the application's principal, the remote address, the
/// negotiated ALPN protocol and whether the session was resumed.
///
/// Built once per connection; cloning it (axum does so for every request) costs a
/// reference-count increment. Serving the router with
/// [`MtlsRouterExt::into_mtls_service`] puts it into every request as
/// [`ConnectInfo<TlsConnectInfo>`](axum::extract::ConnectInfo), where the extractors of
/// this crate and [`RequirePolicyLayer`](crate::RequirePolicyLayer) find it; handlers may
/// also take `ConnectInfo<TlsConnectInfo>` themselves.
#[derive(Clone)]
pub struct TlsConnectInfo {
    inner: Arc<Inner>,
}

struct Inner {
    remote_addr: SocketAddr,
    identity: Option<Arc<mtls::PeerIdentity>>,
    principal: Option<ErasedPrincipal>,
    alpn: Option<Vec<u8>>,
    resumed: bool,
}

/// A principal of any type, with its type name for error messages.
#[derive(Clone)]
pub(crate) struct ErasedPrincipal {
    value: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
}

impl ErasedPrincipal {
    pub(crate) fn new<P: Send + Sync + 'static>(principal: P) -> Self {
        Self {
            value: Arc::new(principal),
            type_name: std::any::type_name::<P>(),
        }
    }
}

impl fmt::Debug for ErasedPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name)
    }
}

impl fmt::Debug for TlsConnectInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnectInfo")
            .field("remote_addr", &self.inner.remote_addr)
            .field(
                "subject",
                &self.inner.identity.as_ref().map(|i| i.subject()),
            )
            .field("principal_type", &self.principal_type())
            .field(
                "alpn",
                &self.inner.alpn.as_deref().map(String::from_utf8_lossy),
            )
            .field("resumed", &self.inner.resumed)
            .finish()
    }
}

impl TlsConnectInfo {
    pub(crate) fn from_peer<P: Clone + Send + Sync + 'static>(
        peer: ConnectionInfo<P>,
        remote_addr: SocketAddr,
    ) -> Self {
        let alpn = peer.alpn().map(<[u8]>::to_vec);
        let resumed = peer.resumed();
        let (identity, principal) = peer.into_parts();
        Self::from_parts(remote_addr, identity, principal, alpn, resumed)
    }

    pub(crate) fn from_parts<P: Clone + Send + Sync + 'static>(
        remote_addr: SocketAddr,
        identity: Option<Arc<mtls::PeerIdentity>>,
        principal: Option<P>,
        alpn: Option<Vec<u8>>,
        resumed: bool,
    ) -> Self {
        let principal = principal.map(ErasedPrincipal::new);
        Self::from_erased(remote_addr, identity, principal, alpn, resumed)
    }

    pub(crate) fn from_erased(
        remote_addr: SocketAddr,
        identity: Option<Arc<mtls::PeerIdentity>>,
        principal: Option<ErasedPrincipal>,
        alpn: Option<Vec<u8>>,
        resumed: bool,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                remote_addr,
                identity,
                principal,
                alpn,
                resumed,
            }),
        }
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.inner.remote_addr
    }

    /// The verified and authorized peer, or `None` for an anonymous client under
    /// [`ClientAuth::Optional`](mtls::ClientAuth::Optional).
    pub fn identity(&self) -> Option<&Arc<mtls::PeerIdentity>> {
        self.inner.identity.as_ref()
    }

    /// The application's principal from the listener's [`IdentityExtractor`], if it is of
    /// type `P` (with the default extractor, `P` is `Arc<mtls::PeerIdentity>`).
    pub fn principal<P: Send + Sync + 'static>(&self) -> Option<&P> {
        self.inner
            .principal
            .as_ref()
            .and_then(|p| p.value.downcast_ref::<P>())
    }

    /// The type name of the principal, when there is one.
    pub fn principal_type(&self) -> Option<&'static str> {
        self.inner.principal.as_ref().map(|p| p.type_name)
    }

    /// The negotiated ALPN protocol (`h2`, `http/1.1`), if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.inner.alpn.as_deref()
    }

    /// Whether the TLS session was resumed.
    pub fn resumed(&self) -> bool {
        self.inner.resumed
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
