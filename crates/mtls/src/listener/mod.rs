//! A TCP listener that runs every mTLS handshake in its own task.
//!
//! [`TlsListener`] owns a TCP listener and runs each handshake (an
//! [`Acceptor`] handshake, so with its timeout and its admission against
//! the trust in force) in its own task, with a cap on how many run at once, and hands out
//! finished connections in order of completion, so a client that stalls its handshake
//! never delays anyone else. The HTTP adapters are built on it.
//!
//! # Limits
//!
//! An attacker controls when, and whether, each of its connections sends anything, so:
//!
//! - **ClientHello deadline** ([`ServerBuilder::client_hello_timeout`](crate::ServerBuilder::client_hello_timeout),
//!   default 5 s): a new connection must send its first byte, and then its whole
//!   ClientHello, within it; the whole handshake within the handshake timeout (default
//!   10 s).
//! - **Two caps, silent and talking** ([`ListenerOptions::max_silent`], default four times
//!   the handshake cap and at least 64; [`ListenerOptions::max_handshakes`], default
//!   1024): a connection that has not sent a byte yet holds only a socket and a small
//!   task, and counts against the first cap; when a new one arrives there, the oldest
//!   silent connection is dropped. Once it sends its first byte it counts against the
//!   second; beyond that cap the oldest handshake in progress is dropped. Connections that
//!   send nothing are therefore always the first to go, and a flood of them never takes a
//!   handshake slot from a slow client that is handshaking.
//! - **Per-source cap** ([`ListenerOptions::max_handshakes_per_source`], default off): at
//!   most this many handshakes in progress per client IP address (IPv4-mapped IPv6
//!   addresses count as IPv4); a connection over it is closed at once.
//!
//! Dropping the listener closes the TCP socket and drops the handshakes still in
//! progress.
//!
//! Finished connections are taken with [`TlsListener::accept`], or served where they
//! were accepted by a handler given to [`TlsListener::handle_with`]: each connection then
//! stays in the task that ran its handshake, with no second task and no queue between
//! the handshake and the application (mtls-hyper's server works this way).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use crate::acceptor::{Acceptor, HandshakeError};
use crate::connection::ConnectionInfo;
use crate::identity::{DefaultExtractor, IdentityExtractor};
use crate::observe::{self, Eviction, HandshakeResult, Side};

mod limits;

use limits::{
    Counts, Pending, PendingHandshakes, SILENT, Slot, Sources, Tracker, enforce_caps, source_of,
    take_source,
};

/// Counters of a [`TlsListener`].
#[derive(Debug, Default)]
pub struct ListenerStats {
    accepted: AtomicU64,
    handshakes_ok: AtomicU64,
    handshakes_failed: AtomicU64,
    handshakes_timed_out: AtomicU64,
    handshakes_evicted: AtomicU64,
    refused_per_source: AtomicU64,
    /// The server's observer, told of evictions and of connections that closed or
    /// timed out before their first byte.
    pub(crate) observer: observe::Slot,
}

impl ListenerStats {
    /// TCP connections accepted.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
    /// Handshakes that produced a connection.
    pub fn handshakes_ok(&self) -> u64 {
        self.handshakes_ok.load(Ordering::Relaxed)
    }
    /// Handshakes that failed (TLS error or extractor refusal).
    pub fn handshakes_failed(&self) -> u64 {
        self.handshakes_failed.load(Ordering::Relaxed)
    }
    /// Handshakes that hit the timeout.
    pub fn handshakes_timed_out(&self) -> u64 {
        self.handshakes_timed_out.load(Ordering::Relaxed)
    }
    /// Handshakes dropped to make room under the concurrency cap.
    pub fn handshakes_evicted(&self) -> u64 {
        self.handshakes_evicted.load(Ordering::Relaxed)
    }
    /// Connections closed at once because their address had
    /// [`max_handshakes_per_source`](ListenerOptions::max_handshakes_per_source)
    /// handshakes in progress.
    pub fn refused_per_source(&self) -> u64 {
        self.refused_per_source.load(Ordering::Relaxed)
    }
}

/// Options of a [`TlsListener`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ListenerOptions {
    /// At most this many handshakes (connections that have sent something) run at once;
    /// beyond it the oldest handshake in progress is dropped. Default 1024.
    pub max_handshakes: usize,
    /// At most this many accepted connections that have not sent a byte yet; when a new
    /// connection arrives at this cap, the oldest of them is dropped. Default: four times
    /// [`max_handshakes`](Self::max_handshakes), at least 64.
    pub max_silent: Option<usize>,
    /// At most this many handshakes in progress per client IP address; a connection over
    /// it is closed at once. Default: no limit.
    pub max_handshakes_per_source: Option<usize>,
    /// Finished connections waiting to be taken by [`TlsListener::accept`]. Default 128.
    pub backlog: usize,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        Self {
            max_handshakes: 1024,
            max_silent: None,
            max_handshakes_per_source: None,
            backlog: 128,
        }
    }
}

impl ListenerOptions {
    /// Sets [`max_handshakes`](Self::max_handshakes) (at least 1).
    #[must_use]
    pub fn max_handshakes(mut self, n: usize) -> Self {
        self.max_handshakes = n.max(1);
        self
    }

    /// Sets [`max_silent`](Self::max_silent) (at least 1).
    #[must_use]
    pub fn max_silent(mut self, n: usize) -> Self {
        self.max_silent = Some(n.max(1));
        self
    }

    fn silent_cap(&self) -> usize {
        self.max_silent
            .unwrap_or_else(|| self.max_handshakes.saturating_mul(4).max(64))
    }

    /// Sets [`max_handshakes_per_source`](Self::max_handshakes_per_source) (at least 1).
    #[must_use]
    pub fn max_handshakes_per_source(mut self, n: usize) -> Self {
        self.max_handshakes_per_source = Some(n.max(1));
        self
    }
}

/// A finished connection from a [`TlsListener`].
#[derive(Debug)]
pub struct Accepted<P> {
    /// The TLS stream.
    pub stream: TlsStream<TcpStream>,
    /// What is known about the peer (its address included).
    pub peer: ConnectionInfo<P>,
    /// The peer's address (also in [`peer`](Self::peer)).
    pub remote_addr: SocketAddr,
}

/// A connection handler installed with [`TlsListener::handle_with`].
type Handler<P> = dyn Fn(Accepted<P>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync;

/// Where the handshake tasks deliver finished connections: to the handler when one is
/// installed, else to the queue read by [`TlsListener::accept`].
struct Sink<P> {
    handler: ArcSwapOption<Box<Handler<P>>>,
    queue: mpsc::Sender<Accepted<P>>,
}

/// Accepts TCP connections and runs their handshakes concurrently; see the module docs.
///
/// The background task stops when the listener is dropped, and the handshakes still in
/// progress are dropped with it. Connections already handed out (or being served by a
/// [handler](Self::handle_with)) are not affected.
pub struct TlsListener<E: IdentityExtractor = DefaultExtractor> {
    rx: mpsc::Receiver<Accepted<E::Principal>>,
    sink: Arc<Sink<E::Principal>>,
    local_addr: SocketAddr,
    stats: Arc<ListenerStats>,
    task: tokio::task::JoinHandle<()>,
}

impl<E: IdentityExtractor> fmt::Debug for TlsListener<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener")
            .field("local_addr", &self.local_addr)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<E: IdentityExtractor> Drop for TlsListener<E> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<E: IdentityExtractor> TlsListener<E> {
    /// Serves handshakes on `tcp` with default options. Must be called within a tokio
    /// runtime.
    ///
    /// # Errors
    /// When the listener's local address cannot be read.
    pub fn new(tcp: TcpListener, acceptor: Acceptor<E>) -> io::Result<Self> {
        Self::with_options(tcp, acceptor, ListenerOptions::default())
    }

    /// Serves handshakes on `tcp`.
    ///
    /// # Errors
    /// When the listener's local address cannot be read.
    pub fn with_options(
        tcp: TcpListener,
        acceptor: Acceptor<E>,
        options: ListenerOptions,
    ) -> io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let (queue, rx) = mpsc::channel(options.backlog.max(1));
        let sink = Arc::new(Sink {
            handler: ArcSwapOption::empty(),
            queue,
        });
        let stats = Arc::new(ListenerStats {
            observer: acceptor.observer().clone(),
            ..ListenerStats::default()
        });
        let task = tokio::spawn(accept_loop(
            tcp,
            acceptor,
            options,
            sink.clone(),
            stats.clone(),
        ));
        Ok(Self {
            rx,
            sink,
            local_addr,
            stats,
            task,
        })
    }

    /// Serves every connection whose handshake succeeds from now on with `handler`, in
    /// the task that ran the handshake, instead of queueing it for
    /// [`accept`](Self::accept).
    ///
    /// This saves a task and a queue hop per connection over `accept` followed by
    /// `tokio::spawn`. The handler's future runs as long as the connection is served; it
    /// is not cancelled when the listener is dropped, so a server that wants to close its
    /// connections on shutdown gives the future its own signal. Connections finished
    /// before the call (or racing with it) are still returned by `accept`, so a server
    /// switching to a handler keeps calling `accept` and serves those the same way.
    /// A later call replaces the handler; [`clear_handler`](Self::clear_handler)
    /// returns to queueing.
    ///
    /// ```no_run
    /// # async fn run(server: mtls::Server) -> std::io::Result<()> {
    /// let tcp = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
    /// let mut listener = mtls::TlsListener::new(tcp, server.acceptor())?;
    /// listener.handle_with(|conn: mtls::Accepted<_>| async move {
    ///     let who = conn.peer.identity().map(|id| id.subject().to_owned());
    ///     println!("{who:?} connected from {}", conn.remote_addr);
    /// });
    /// loop {
    ///     // Only connections that finished before `handle_with` arrive here.
    ///     let conn = listener.accept().await;
    ///     drop(conn);
    /// }
    /// # }
    /// ```
    pub fn handle_with<F, Fut>(&mut self, handler: F)
    where
        F: Fn(Accepted<E::Principal>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let boxed: Box<Handler<E::Principal>> = Box::new(move |conn| Box::pin(handler(conn)));
        self.sink.handler.store(Some(Arc::new(boxed)));
    }

    /// Removes the handler set by [`handle_with`](Self::handle_with): finished
    /// connections are queued for [`accept`](Self::accept) again.
    pub fn clear_handler(&mut self) {
        self.sink.handler.store(None);
    }

    /// The next connection whose handshake succeeded. Failed handshakes are logged and
    /// counted, never returned.
    ///
    /// While a [handler](Self::handle_with) is installed, only connections that finished
    /// before it was installed arrive here.
    pub async fn accept(&mut self) -> Accepted<E::Principal> {
        match self.rx.recv().await {
            Some(a) => a,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The listener's counters.
    pub fn stats(&self) -> Arc<ListenerStats> {
        self.stats.clone()
    }
}

/// What a handshake task does once its handshake is over: serve the connection with the
/// handler, or queue it for [`TlsListener::accept`], or count and log the failure.
fn deliver<P: Send + Sync + 'static>(
    result: Result<(TlsStream<TcpStream>, ConnectionInfo<P>), HandshakeError>,
    remote_addr: SocketAddr,
    sink: &Arc<Sink<P>>,
    stats: &ListenerStats,
) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
    match result {
        Ok((stream, peer)) => {
            stats.handshakes_ok.fetch_add(1, Ordering::Relaxed);
            let accepted = Accepted {
                stream,
                peer,
                remote_addr,
            };
            Some(match sink.handler.load_full() {
                Some(handler) => handler(accepted),
                None => {
                    let queue = sink.queue.clone();
                    Box::pin(async move {
                        let _ = queue.send(accepted).await;
                    })
                }
            })
        }
        Err(e) => {
            match e {
                HandshakeError::Timeout(_) | HandshakeError::ClientHelloTimeout(_) => {
                    stats.handshakes_timed_out.fetch_add(1, Ordering::Relaxed)
                }
                _ => stats.handshakes_failed.fetch_add(1, Ordering::Relaxed),
            };
            tracing::info!(
                target: "mtls::acceptor",
                remote = %remote_addr,
                error = %e,
                "handshake failed"
            );
            None
        }
    }
}

async fn accept_loop<E: IdentityExtractor>(
    tcp: TcpListener,
    acceptor: Acceptor<E>,
    options: ListenerOptions,
    sink: Arc<Sink<E::Principal>>,
    stats: Arc<ListenerStats>,
) {
    // Only this loop touches `pending` (oldest first); the tasks only move their state
    // and release their counts, so the accept path takes no lock (but the per-source map's,
    // when that cap is on).
    let counts = Arc::new(Counts::default());
    let sources = options
        .max_handshakes_per_source
        .map(|max| (Arc::new(Sources::default()), max));
    let mut pending = PendingHandshakes(VecDeque::new());
    let pending = &mut pending.0;
    loop {
        let accepted = tokio::select! {
            accepted = tcp.accept() => accepted,
            () = counts.over.notified() => {
                enforce_caps(pending, &counts, &options, false, &stats);
                continue;
            }
        };
        let (io, remote_addr) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(target: "mtls::acceptor", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let source = match &sources {
            Some((map, max)) => {
                let ip = source_of(remote_addr);
                if !take_source(map, ip, *max) {
                    stats.refused_per_source.fetch_add(1, Ordering::Relaxed);
                    stats.observer.eviction(Eviction::PerSource);
                    tracing::debug!(
                        target: "mtls::acceptor",
                        remote = %remote_addr,
                        "per-source handshake cap reached; connection closed"
                    );
                    continue;
                }
                Some((map.clone(), ip))
            }
            None => None,
        };
        let _ = io.set_nodelay(true);
        enforce_caps(pending, &counts, &options, true, &stats);
        // Forget finished handshakes now and then, so `pending` stays proportional to the
        // connections actually in progress.
        let live = counts.silent.load(Ordering::Acquire) + counts.talking.load(Ordering::Acquire);
        if pending.len() > 64 && pending.len() > 2 * live {
            pending.retain(|p| p.tracker.in_progress());
        }
        counts.silent.fetch_add(1, Ordering::AcqRel);
        let tracker = Arc::new(Tracker {
            state: AtomicU8::new(SILENT),
            counts: counts.clone(),
            source,
        });
        let max_handshakes = options.max_handshakes;
        let slot = Slot(tracker.clone());
        let acceptor = acceptor.clone();
        let sink = sink.clone();
        let stats2 = stats.clone();
        let fut = async move {
            // The handshake's state is boxed, and freed when it ends; what serves the
            // connection is boxed too. So this task holds two pointers for the
            // connection's whole life, not the handshake's 1.3 KiB beside the
            // connection (this matters under a handler, whose connections live here).
            let next = {
                // Nothing is read here: the peek leaves the bytes for the handshake.
                let mut first = [0u8; 1];
                let hello = acceptor.client_hello_timeout().min(acceptor.timeout());
                let result = match tokio::time::timeout(hello, io.peek(&mut first)).await {
                    Ok(Ok(n)) if n > 0 => {
                        slot.0.talking(max_handshakes);
                        Box::pin(acceptor.accept_from(io, Some(remote_addr))).await
                    }
                    Ok(Ok(_)) => {
                        stats2
                            .observer
                            .unstarted(Side::Server, HandshakeResult::Failed, "io");
                        Err(HandshakeError::Tls {
                            error: io::ErrorKind::UnexpectedEof.into(),
                            rejection: None,
                        })
                    }
                    Ok(Err(error)) => {
                        stats2
                            .observer
                            .unstarted(Side::Server, HandshakeResult::Failed, "io");
                        Err(HandshakeError::Tls {
                            error,
                            rejection: None,
                        })
                    }
                    Err(_) => {
                        stats2.observer.unstarted(
                            Side::Server,
                            HandshakeResult::Timeout,
                            "client_hello_timeout",
                        );
                        Err(HandshakeError::ClientHelloTimeout(hello))
                    }
                };
                slot.0.release();
                drop(acceptor);
                deliver(result, remote_addr, &sink, &stats2)
            };
            drop((sink, stats2));
            if let Some(next) = next {
                next.await;
            }
        };
        let task = tokio::spawn(fut);
        pending.push_back(Pending {
            tracker,
            task: task.abort_handle(),
        });
    }
}
