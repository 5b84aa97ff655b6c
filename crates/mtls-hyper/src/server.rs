//! The server side: a serve loop for hyper 1.x over an [`mtls::TlsListener`].
//!
//! [`Server`] takes finished connections from the listener (which runs every handshake
//! in its own task, with a timeout and a cap, so a client that stalls its handshake never
//! delays anyone else), serves each one with hyper-util's auto connection builder, and
//! inserts into every request's [extensions](http::Request::extensions):
//!
//! * the peer's [`Arc<PeerIdentity>`](mtls::PeerIdentity), when the client presented a
//!   certificate (always, under the default [`ClientAuth::Required`](mtls::ClientAuth));
//! * the application's principal `P`, when the listener was built from
//!   [`Server::acceptor_with`](mtls::Server::acceptor_with) and a custom
//!   [`IdentityExtractor`] (with the default extractor, `P` *is* `Arc<PeerIdentity>`);
//! * the client's socket address as [`RemoteAddr`].
//!
//! An anonymous client (only possible under [`ClientAuth::Optional`](mtls::ClientAuth))
//! gets no identity and no principal: `extensions().get::<Arc<PeerIdentity>>()` is `None`.
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
//! [`.alpn(mtls_hyper::ALPN)`](crate::ALPN); without it, clients that rely on ALPN to
//! pick HTTP/2 fall back to HTTP/1.1.
//!
//! # Services
//!
//! [`Server::serve`] takes a hyper [`Service`](hyper::service::Service), such as
//! [`hyper::service::service_fn`]. A `tower::Service` (an axum `Router`, tonic's routes,
//! a `tower::ServiceBuilder` stack) is served by wrapping it in
//! [`TowerToHyperService`], or with
//! [`Server::serve_tower`].
//!
//! # Shutdown
//!
//! [`Server::serve_with_shutdown`] stops accepting when the signal completes, asks every
//! open connection to finish (HTTP/2 `GOAWAY`, HTTP/1.1 closes after the response in
//! progress) and returns once all of them have closed, or once the
//! [grace period](Server::grace_period) has passed, after which the rest are closed.
//! Dropping the serve future closes all connections at once.
//!
//! # Example
//!
//! ```no_run
//! use std::convert::Infallible;
//! use std::sync::Arc;
//!
//! use http::{Request, Response};
//! use hyper::body::Incoming;
//! use mtls::{PeerIdentity, Policy, TlsListener};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = mtls::Server::builder()
//!     .identity("server.crt", "server.key")
//!     .client_ca("ca.crt")
//!     .policy("spiffe:prod.example.org".parse::<Policy>()?)
//!     .alpn(mtls_hyper::ALPN)
//!     .build()?;
//! let tcp = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
//! let listener = TlsListener::new(tcp, server.acceptor())?;
//!
//! let hello = hyper::service::service_fn(|req: Request<Incoming>| async move {
//!     let who = req
//!         .extensions()
//!         .get::<Arc<PeerIdentity>>()
//!         .map_or("anonymous".to_owned(), |id| id.subject().to_owned());
//!     Ok::<_, Infallible>(Response::new(format!("hello {who}\n")))
//! });
//! mtls_hyper::Server::new(listener)
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
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use mtls::{Accepted, DefaultExtractor, IdentityExtractor, PeerIdentity, TlsListener};
use tokio::task::JoinSet;

/// The client's socket address, inserted into every request's extensions by [`Server`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RemoteAddr(pub SocketAddr);

/// Serves HTTP/1.1 and HTTP/2 over the connections of an [`mtls::TlsListener`]; see the
/// [module docs](self).
pub struct Server<E: IdentityExtractor = DefaultExtractor> {
    listener: TlsListener<E>,
    http: auto::Builder<TokioExecutor>,
    grace_period: Option<Duration>,
}

impl<E: IdentityExtractor> fmt::Debug for Server<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("grace_period", &self.grace_period)
            .finish_non_exhaustive()
    }
}

impl<E: IdentityExtractor> Server<E> {
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
        let graceful = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        let mut signal = std::pin::pin!(signal);
        loop {
            tokio::select! {
                () = &mut signal => break,
                accepted = listener.accept() => {
                    let task = serve_connection(accepted, service.clone(), &http, &http2, &graceful);
                    connections.spawn(task);
                }
                Some(done) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(e) = done {
                        tracing::warn!(target: "mtls_hyper", error = %e, "connection task failed");
                    }
                }
            }
        }
        // Stop accepting: closes the TCP listener and drops handshakes in progress.
        drop(listener);
        tracing::debug!(
            target: "mtls_hyper",
            open = graceful.count(),
            "shutting down; waiting for open connections"
        );
        let drained = graceful.shutdown();
        match grace_period {
            None => drained.await,
            Some(period) => {
                if tokio::time::timeout(period, drained).await.is_err() {
                    tracing::info!(
                        target: "mtls_hyper",
                        open = connections.len(),
                        "grace period over; closing the remaining connections"
                    );
                }
            }
        }
        connections.shutdown().await;
    }
}

fn serve_connection<S, B, P>(
    accepted: Accepted<P>,
    service: S,
    http: &Arc<auto::Builder<TokioExecutor>>,
    http2: &Arc<auto::Builder<TokioExecutor>>,
    graceful: &GracefulShutdown,
) -> impl Future<Output = ()> + Send + 'static
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
    P: Clone + Send + Sync + 'static,
{
    let Accepted {
        stream,
        peer,
        remote_addr,
    } = accepted;
    let h2 = peer.alpn() == Some(b"h2") || !http.is_http1_available();
    let (identity, mut principal) = peer.into_parts();
    // With the default extractor the principal *is* the identity (`Arc<PeerIdentity>`):
    // inserting it again would only overwrite the same extension, once per request.
    if std::any::TypeId::of::<P>() == std::any::TypeId::of::<Arc<PeerIdentity>>() {
        principal = None;
    }
    let service = WithPeer {
        inner: service,
        identity,
        principal,
        remote: RemoteAddr(remote_addr),
    };
    let io = TokioIo::new(stream);
    let http = http.clone();
    let http2 = http2.clone();
    let watcher = graceful.watcher();
    async move {
        let result = if h2 {
            watcher
                .watch(http2.serve_connection(io, service).into_owned())
                .await
        } else {
            watcher
                .watch(
                    http.serve_connection_with_upgrades(io, service)
                        .into_owned(),
                )
                .await
        };
        if let Err(e) = result {
            tracing::debug!(
                target: "mtls_hyper",
                remote = %remote_addr,
                error = %e,
                "connection ended with an error"
            );
        }
    }
}

/// Inserts the connection's peer into each request, then calls the application.
#[derive(Clone)]
struct WithPeer<S, P> {
    inner: S,
    identity: Option<Arc<PeerIdentity>>,
    principal: Option<P>,
    remote: RemoteAddr,
}

impl<S, P, B> hyper::service::Service<Request<B>> for WithPeer<S, P>
where
    S: hyper::service::Service<Request<B>>,
    P: Clone + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut req: Request<B>) -> Self::Future {
        let extensions = req.extensions_mut();
        if let Some(identity) = &self.identity {
            extensions.insert(identity.clone());
        }
        if let Some(principal) = &self.principal {
            extensions.insert(principal.clone());
        }
        extensions.insert(self.remote);
        self.inner.call(req)
    }
}
