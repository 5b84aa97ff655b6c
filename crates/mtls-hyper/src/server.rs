//! The server side: a serve loop for hyper 1.x over an [`mtls::TlsListener`].
//!
//! [`HttpServer`] serves the listener's connections (the listener runs every handshake in
//! its own task, with a timeout and a cap, so a client that stalls its handshake never
//! delays anyone else) with hyper-util's auto connection builder, each in the task that
//! ran its handshake ([`TlsListener::handle_with`]), and inserts into every request's
//! [extensions](http::Request::extensions):
//!
//! * the connection's [`mtls::ConnectionInfo<P>`](mtls::ConnectionInfo): the client's
//!   identity (`None` for an anonymous client), the application's principal `P` (with a
//!   custom [`IdentityExtractor`] given to
//!   [`Server::acceptor_with`](mtls::Server::acceptor_with); with the default extractor
//!   `P` is `Arc<PeerIdentity>`, the identity itself), the client's address, the
//!   generation of the material that admitted it, ALPN and resumption. One extension,
//!   cloned per request for a reference-count increment;
//! * the client's [`Arc<PeerIdentity>`](mtls::PeerIdentity) on its own, when it presented
//!   a certificate (always, under the default [`ClientAuth::Required`](mtls::ClientAuth)),
//!   for code that reads the identity without knowing `P`.
//!
//! Because the connection info is on every request, a handler or layer can tell an
//! anonymous client (only possible under [`ClientAuth::Optional`](mtls::ClientAuth):
//! the info is there, its [`identity`](mtls::ConnectionInfo::identity) is `None`) from a
//! service that was not served by this server (no info at all).
//!
//! The identity is read once per connection, at the handshake. A reload of CAs, CRLs or
//! the policy applies to new connections; a connection already open (a long-lived HTTP/2
//! connection in particular) keeps the identity it was accepted with until it closes.
//!
//! # Protocols
//!
//! When ALPN selected `h2`, the connection is served as HTTP/2 only. Otherwise hyper-util
//! detects the protocol from the connection preface, and HTTP/1.1 upgrades (WebSocket)
//! are supported. The `mtls::Server` offers no ALPN unless it was built with
//! [`.alpn(mtls::HTTP_ALPN)`](mtls::HTTP_ALPN); without it, clients that rely on ALPN to
//! pick HTTP/2 fall back to HTTP/1.1.
//!
//! # Services
//!
//! [`HttpServer::serve`] takes a hyper [`Service`](hyper::service::Service), such as
//! [`hyper::service::service_fn`]. A `tower::Service` (an axum `Router`, tonic's routes,
//! a `tower::ServiceBuilder` stack) is served by wrapping it in
//! [`TowerToHyperService`], or with
//! [`HttpServer::serve_tower`].
//!
//! # Shutdown
//!
//! [`HttpServer::serve_with_shutdown`] stops accepting when the signal completes, asks every
//! open connection to finish (HTTP/2 `GOAWAY`, HTTP/1.1 closes after the response in
//! progress) and returns once all of them have closed, or once the
//! [grace period](HttpServer::grace_period) has passed, after which the rest are closed.
//! Dropping the serve future closes all connections at once.
//!
//! # Example
//!
//! ```no_run
//! use std::convert::Infallible;
//!
//! use http::{Request, Response};
//! use hyper::body::Incoming;
//! use mtls::{ConnectionInfo, Policy, TlsListener};
//! use mtls_hyper::HttpServer;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = mtls::Server::builder()
//!     .identity("server.crt", "server.key")
//!     .client_ca("ca.crt")
//!     .policy("spiffe:prod.example.org".parse::<Policy>()?)
//!     .alpn(mtls::HTTP_ALPN)
//!     .build()?;
//! let tcp = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
//! let listener = TlsListener::new(tcp, server.acceptor())?;
//!
//! let hello = hyper::service::service_fn(|req: Request<Incoming>| async move {
//!     let who = req
//!         .extensions()
//!         .get::<ConnectionInfo>()
//!         .and_then(ConnectionInfo::identity)
//!         .map_or("anonymous".to_owned(), |id| id.subject().to_owned());
//!     Ok::<_, Infallible>(Response::new(format!("hello {who}\n")))
//! });
//! HttpServer::new(listener)
//!     .serve_with_shutdown(hello, async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await;
//! # Ok(()) }
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use hyper_util::service::TowerToHyperService;
use mtls::{
    Accepted, ConnectionInfo, DefaultExtractor, IdentityExtractor, PeerIdentity, TlsListener,
};
use pin_project_lite::pin_project;
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;

/// Serves HTTP/1.1 and HTTP/2 over the connections of an [`mtls::TlsListener`]; see the
/// [module docs](self).
pub struct HttpServer<E: IdentityExtractor = DefaultExtractor> {
    listener: TlsListener<E>,
    http: auto::Builder<TokioExecutor>,
    grace_period: Option<Duration>,
}

impl<E: IdentityExtractor> fmt::Debug for HttpServer<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServer")
            .field("listener", &self.listener)
            .field("grace_period", &self.grace_period)
            .finish_non_exhaustive()
    }
}

impl<E: IdentityExtractor> HttpServer<E> {
    /// A server over `listener`, with hyper-util's default HTTP settings and no limit on
    /// how long a graceful shutdown waits.
    pub fn new(listener: TlsListener<E>) -> Self {
        Self {
            listener,
            http: auto::Builder::new(TokioExecutor::new()),
            grace_period: None,
        }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// The HTTP connection builder, to change HTTP/1.1 and HTTP/2 settings
    /// (`.http1().keep_alive(..)`, `.http2().max_concurrent_streams(..)`, …).
    ///
    /// The protocol is chosen per connection (see the [module docs](self#protocols));
    /// after `http2_only()` every connection is served as HTTP/2.
    pub fn http_builder(&mut self) -> &mut auto::Builder<TokioExecutor> {
        &mut self.http
    }

    /// How long [`serve_with_shutdown`](Self::serve_with_shutdown) waits for open
    /// connections to finish after the signal; the ones still open are then closed.
    /// Default: no limit.
    #[must_use]
    pub fn grace_period(mut self, period: Duration) -> Self {
        self.grace_period = Some(period);
        self
    }

    /// Serves `service` until the returned future is dropped.
    pub async fn serve<S, B>(self, service: S)
    where
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn StdError + Send + Sync>>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        self.serve_with_shutdown(service, std::future::pending::<()>())
            .await;
    }

    /// Serves a `tower::Service` (an axum `Router`, tonic routes, …) until the returned
    /// future is dropped. Same as `serve(TowerToHyperService::new(service))`.
    pub async fn serve_tower<S, B>(self, service: S)
    where
        S: tower_service::Service<Request<Incoming>, Response = Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn StdError + Send + Sync>>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        self.serve(TowerToHyperService::new(service)).await;
    }

    /// Serves `service` until `signal` completes, then shuts down gracefully: stops
    /// accepting, lets requests in progress finish, and returns when every connection
    /// has closed (or the [grace period](Self::grace_period) has passed).
    pub async fn serve_with_shutdown<S, B, F>(self, service: S, signal: F)
    where
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn StdError + Send + Sync>>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
        F: Future<Output = ()> + Send,
    {
        let Self {
            mut listener,
            http,
            grace_period,
        } = self;
        let http = Arc::new(http);
        // Used for connections that negotiated `h2`. `http2_only` panics when a version
        // was already chosen, hence the check.
        let http2 = if http.is_http1_available() && http.is_http2_available() {
            Arc::new(http.as_ref().clone().http2_only())
        } else {
            http.clone()
        };
        let shutdown = Arc::new(Shutdown::default());
        // Dropping this future closes every connection at once.
        let _close_all_on_drop = CloseAllOnDrop(shutdown.clone());

        // Each connection is served in the task that ran its handshake.
        // The handler is shared by the handshake tasks, so it must be `Sync`; a service
        // need not be, hence the mutex, locked only to clone it.
        listener.handle_with({
            let service = Mutex::new(service.clone());
            let (http, http2, shutdown) = (http.clone(), http2.clone(), shutdown.clone());
            move |accepted| {
                let service = service
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                serve_connection(accepted, service, &http, &http2, Open::new(&shutdown))
            }
        });
        let mut signal = std::pin::pin!(signal);
        loop {
            tokio::select! {
                () = &mut signal => break,
                // Only connections that finished their handshake before the handler was
                // installed arrive here.
                accepted = listener.accept() => {
                    let task = serve_connection(
                        accepted,
                        service.clone(),
                        &http,
                        &http2,
                        Open::new(&shutdown),
                    );
                    tokio::spawn(task);
                }
            }
        }
        // Stop accepting: closes the TCP listener and drops handshakes in progress.
        drop(listener);
        tracing::debug!(
            target: "mtls_hyper",
            open = shutdown.open(),
            "shutting down; waiting for open connections"
        );
        shutdown.set(Phase::Draining);
        let drained = shutdown.all_closed();
        match grace_period {
            None => drained.await,
            Some(period) => {
                if tokio::time::timeout(period, drained).await.is_err() {
                    tracing::info!(
                        target: "mtls_hyper",
                        open = shutdown.open(),
                        "grace period over; closing the remaining connections"
                    );
                    shutdown.set(Phase::Closing);
                    shutdown.all_closed().await;
                }
            }
        }
    }
}

/// What the server asks of its open connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// Serve as usual.
    Serving = 0,
    /// Finish the requests in progress, then close (HTTP/2 `GOAWAY`).
    Draining = 1,
    /// Close now.
    Closing = 2,
}

/// The shutdown state shared by a serve loop and its connections.
///
/// Built on an atomic and two `Notify`s rather than a `watch` channel so that a
/// connection checks it with one atomic load per wake-up, not a lock.
#[derive(Debug, Default)]
struct Shutdown {
    phase: AtomicU8,
    changed: Arc<Notify>,
    open: AtomicUsize,
    closed: Notify,
}

impl Shutdown {
    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Serving,
            1 => Phase::Draining,
            _ => Phase::Closing,
        }
    }

    fn set(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
        self.changed.notify_waiters();
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Completes when no connection is open.
    async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            let mut closed = std::pin::pin!(closed);
            closed.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// Counts a connection as open until dropped.
struct Open(Arc<Shutdown>);

impl Open {
    fn new(shutdown: &Arc<Shutdown>) -> Self {
        shutdown.open.fetch_add(1, Ordering::AcqRel);
        Self(shutdown.clone())
    }

    /// A registration for the next change of phase (to be enabled before the phase is
    /// read).
    fn next_change(&self) -> OwnedNotified {
        self.0.changed.clone().notified_owned()
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

/// Tells every connection to close when the serve future is dropped.
struct CloseAllOnDrop(Arc<Shutdown>);

impl Drop for CloseAllOnDrop {
    fn drop(&mut self) {
        self.0.set(Phase::Closing);
    }
}

pin_project! {
    /// Serves one connection until it ends or the server closes it, and logs how it
    /// ended. A plain future rather than an `async fn`: an `async fn` would keep the
    /// connection it was given beside the one it polls, doubling what an idle
    /// connection holds.
    struct Drive<C> {
        #[pin]
        conn: C,
        // Armed before the phase is first read, so no change can slip in between.
        #[pin]
        changed: OwnedNotified,
        open: Open,
        seen: Phase,
        // The waker the notification will wake; polling it again is only needed when
        // the task's waker changes (a lock in `Notify`), not on every wake-up.
        armed_for: Option<Waker>,
        remote_addr: SocketAddr,
    }
}

impl<C: GracefulConnection> Drive<C>
where
    C::Error: fmt::Display,
{
    fn new(conn: C, open: Open, remote_addr: SocketAddr) -> Self {
        let changed = open.next_change();
        Self {
            conn,
            changed,
            open,
            seen: Phase::Serving,
            armed_for: None,
            remote_addr,
        }
    }
}

impl<C: GracefulConnection> Future for Drive<C>
where
    C::Error: fmt::Display,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if this.armed_for.is_none() {
            this.changed.as_mut().enable();
        }
        loop {
            let now = this.open.0.phase();
            if now == *this.seen {
                break;
            }
            *this.seen = now;
            match now {
                Phase::Closing => return Poll::Ready(()),
                Phase::Draining => this.conn.as_mut().graceful_shutdown(),
                Phase::Serving => {}
            }
            this.changed.set(this.open.next_change());
            this.changed.as_mut().enable();
            *this.armed_for = None;
        }
        match this.conn.as_mut().poll(cx) {
            Poll::Ready(Ok(())) => return Poll::Ready(()),
            Poll::Ready(Err(e)) => {
                tracing::debug!(
                    target: "mtls_hyper",
                    remote = %this.remote_addr,
                    error = %e,
                    "connection ended with an error"
                );
                return Poll::Ready(());
            }
            Poll::Pending => {}
        }
        if !this
            .armed_for
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            if this.changed.as_mut().poll(cx).is_ready() {
                // The phase changed since it was read: look again.
                this.changed.set(this.open.next_change());
                *this.armed_for = None;
                cx.waker().wake_by_ref();
            } else {
                *this.armed_for = Some(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

pin_project! {
    /// One of two futures with the same output.
    #[project = EitherProj]
    enum Either<A, B> {
        Left { #[pin] future: A },
        Right { #[pin] future: B },
    }
}

impl<A: Future<Output = ()>, B: Future<Output = ()>> Future for Either<A, B> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.project() {
            EitherProj::Left { future } => future.poll(cx),
            EitherProj::Right { future } => future.poll(cx),
        }
    }
}

fn serve_connection<S, B, P>(
    accepted: Accepted<P>,
    service: S,
    http: &Arc<auto::Builder<TokioExecutor>>,
    http2: &Arc<auto::Builder<TokioExecutor>>,
    open: Open,
) -> impl Future<Output = ()> + Send + use<S, B, P>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
    P: Send + Sync + 'static,
{
    use std::any::TypeId;
    let Accepted {
        stream,
        peer,
        remote_addr,
    } = accepted;
    let h2 = peer.alpn() == Some(b"h2") || !http.is_http1_available();
    // Under a custom extractor, the info with the default principal too, for code that
    // does not know `P` (mtls-axum's ClientIdentity, RequirePolicyLayer).
    let default_info =
        (TypeId::of::<P>() != TypeId::of::<Arc<PeerIdentity>>()).then(|| peer.without_principal());
    let service = WithPeer {
        inner: service,
        info: peer,
        default_info,
    };
    let io = TokioIo::new(stream);
    // The connection is built here, not in an `async` block that would keep `io` and
    // `service` beside it for its whole life.
    if h2 {
        let conn = http2.serve_connection(io, service).into_owned();
        Either::Left {
            future: Drive::new(conn, open, remote_addr),
        }
    } else {
        let conn = http
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        Either::Right {
            future: Drive::new(conn, open, remote_addr),
        }
    }
}

/// Inserts the connection's info (and the bare identity) into each request, then calls
/// the application.
#[derive(Clone)]
struct WithPeer<S, P> {
    inner: S,
    info: ConnectionInfo<P>,
    default_info: Option<ConnectionInfo>,
}

impl<S, P, B> hyper::service::Service<Request<B>> for WithPeer<S, P>
where
    S: hyper::service::Service<Request<B>>,
    P: Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut req: Request<B>) -> Self::Future {
        let extensions = req.extensions_mut();
        if let Some(identity) = self.info.identity() {
            extensions.insert(identity.clone());
        }
        extensions.insert(self.info.clone());
        if let Some(info) = &self.default_info {
            extensions.insert(info.clone());
        }
        self.inner.call(req)
    }
}
