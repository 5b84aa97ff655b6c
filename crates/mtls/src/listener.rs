//! A TCP listener that runs every mTLS handshake in its own task.
//!
//! [`TlsListener`] owns a TCP listener and runs each handshake (an
//! [`Acceptor`] handshake, so with its timeout and its admission against
//! the trust in force) in its own task, with a cap on how many run at once, and hands out
//! finished connections in order of completion, so a client that stalls its handshake
//! never delays anyone else. When the cap is reached, the oldest handshake still in
//! progress is dropped to make room: a flood of clients that never finish cannot lock out
//! a client that does. Dropping the listener closes the TCP socket and drops the
//! handshakes still in progress. The HTTP adapters are built on it.
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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use crate::acceptor::{Acceptor, HandshakeError};
use crate::connection::ConnectionInfo;
use crate::identity::{DefaultExtractor, IdentityExtractor};

/// Counters of a [`TlsListener`].
#[derive(Debug, Default)]
pub struct ListenerStats {
    accepted: AtomicU64,
    handshakes_ok: AtomicU64,
    handshakes_failed: AtomicU64,
    handshakes_timed_out: AtomicU64,
    handshakes_evicted: AtomicU64,
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
}

/// Options of a [`TlsListener`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ListenerOptions {
    /// At most this many handshakes run at once; when a new connection arrives at the
    /// cap, the oldest handshake in progress is dropped. Default 1024.
    pub max_handshakes: usize,
    /// Finished connections waiting to be taken by [`TlsListener::accept`]. Default 128.
    pub backlog: usize,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        Self {
            max_handshakes: 1024,
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
        let stats = Arc::new(ListenerStats::default());
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

/// One handshake in progress, as the accept loop sees it.
struct Pending {
    /// True until the handshake ends or is evicted; whoever flips it releases the slot.
    handshaking: Arc<AtomicBool>,
    task: tokio::task::AbortHandle,
}

/// Releases a handshake slot exactly once: when the handshake ends, or when the task is
/// dropped (aborted) before that.
struct Slot {
    handshaking: Arc<AtomicBool>,
    in_flight: Arc<AtomicUsize>,
}

impl Slot {
    fn release(&self) {
        if self.handshaking.swap(false, Ordering::AcqRel) {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
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
                HandshakeError::Timeout(_) => {
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

/// The handshakes in progress, oldest first. Dropped with the accept loop (when the
/// listener is dropped), it drops those that are still handshaking.
struct PendingHandshakes(VecDeque<Pending>);

impl Drop for PendingHandshakes {
    fn drop(&mut self) {
        for p in self.0.drain(..) {
            if p.handshaking.load(Ordering::Acquire) {
                p.task.abort();
            }
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
    // Only this loop touches `pending` (oldest first); the tasks only flip their flag and
    // the counter, so the accept path takes no lock.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut pending = PendingHandshakes(VecDeque::new());
    let pending = &mut pending.0;
    loop {
        let (io, remote_addr) = match tcp.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(target: "mtls::acceptor", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = io.set_nodelay(true);
        while in_flight.load(Ordering::Acquire) >= options.max_handshakes {
            let Some(oldest) = pending.pop_front() else {
                break;
            };
            if oldest.handshaking.swap(false, Ordering::AcqRel) {
                in_flight.fetch_sub(1, Ordering::AcqRel);
                oldest.task.abort();
                stats.handshakes_evicted.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    target: "mtls::acceptor",
                    "handshake cap reached; dropped the oldest handshake in progress"
                );
            }
        }
        // Forget finished handshakes now and then, so `pending` stays proportional to the
        // handshakes actually in progress.
        if pending.len() > 64 && pending.len() > 2 * in_flight.load(Ordering::Acquire) {
            pending.retain(|p| p.handshaking.load(Ordering::Acquire));
        }
        in_flight.fetch_add(1, Ordering::AcqRel);
        let handshaking = Arc::new(AtomicBool::new(true));
        let slot = Slot {
            handshaking: handshaking.clone(),
            in_flight: in_flight.clone(),
        };
        let acceptor = acceptor.clone();
        let sink = sink.clone();
        let stats2 = stats.clone();
        let fut = async move {
            // The handshake's state is boxed, and freed when it ends; what serves the
            // connection is boxed too. So this task holds two pointers for the
            // connection's whole life, not the handshake's 1.3 KiB beside the
            // connection (this matters under a handler, whose connections live here).
            let next = {
                let result = Box::pin(acceptor.accept_from(io, Some(remote_addr))).await;
                slot.release();
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
            handshaking,
            task: task.abort_handle(),
        });
    }
}
