//! Accepting mTLS connections: one handshake with a timeout, returning the peer's
//! identity as authorized by the trust in force when the handshake ends.
//!
//! [`Acceptor`] runs one handshake on any stream; [`TlsListener`](crate::TlsListener)
//! owns a TCP listener and runs every handshake in its own task (see
//! [`listener`](crate::listener)).
//!
//! Each handshake runs on the rustls config of the snapshot in force when it starts, so
//! its verifier and certificate are that snapshot's. When it ends, the connection is
//! *admitted*:
//!
//! - a full handshake whose snapshot has the same trust as the one in force now was
//!   verified and authorized by that trust during the handshake; its identity carries the
//!   generation that verified it;
//! - a resumed session, or a handshake that ended after a reload changed the CAs, CRLs or
//!   policy, is checked again against the snapshot in force now (path validation unless
//!   this exact chain passed it under that snapshot and has not expired since, then the
//!   policy), and refused with [`HandshakeError::Refused`] when that trust refuses it.
//!
//! So a peer that delays its Finished across a reload, or resumes a session from before
//! one, never gets past the checks in force.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::connection::ConnectionInfo;
use crate::identity::{DefaultExtractor, ExtractError, IdentityExtractor};
use crate::observe::{HandshakeResult, InFlight, Side, Slot, failure_of, version_of};
use crate::snapshot::server::ServerSnapshot;
use crate::verify::{Rejection, log_rejection};

/// Why a handshake did not produce a connection.
///
/// The message prints the cause (rustls' error, or the [`Rejection`] that explains it;
/// the extractor's message), so [`source`](std::error::Error::source) does not return
/// that cause again: it returns only the cause's own source, when it has one. The cause
/// itself stays in the variant's field.
#[derive(Debug)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The handshake did not finish within the timeout.
    Timeout(Duration),
    /// The client's ClientHello did not arrive (whole) within the ClientHello deadline.
    ClientHelloTimeout(Duration),
    /// TLS failed; the peer's certificate was refused when `rejection` says why.
    Tls {
        /// The error (printed in the message unless `rejection` explains it).
        error: io::Error,
        /// The reason class, when the failure was about the peer's certificate.
        rejection: Option<Rejection>,
    },
    /// The [`IdentityExtractor`] refused the peer (its message is printed).
    Extract(ExtractError),
    /// The handshake completed, but the material in force when it ended refused the
    /// peer: a resumed session, or a reload during the handshake, and the CAs, CRLs or
    /// policy now in force do not admit the peer. The connection is closed.
    Refused(Rejection),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(d) => write!(f, "TLS handshake did not finish within {d:?}"),
            Self::ClientHelloTimeout(d) => {
                write!(f, "the client sent no complete ClientHello within {d:?}")
            }
            Self::Tls {
                rejection: Some(r), ..
            } => write!(f, "TLS handshake failed: {r}"),
            Self::Tls { error, .. } => write!(f, "TLS handshake failed: {error}"),
            Self::Extract(e) => write!(f, "peer refused by the identity extractor: {e}"),
            Self::Refused(r) => write!(f, "peer refused by the material in force: {r}"),
        }
    }
}

impl HandshakeError {
    /// How an observer counts it: result and reason class (see
    /// [`observe::HandshakeResult`](crate::observe::HandshakeResult)).
    pub fn result_and_reason(&self) -> (HandshakeResult, &'static str) {
        match self {
            Self::Timeout(_) => (HandshakeResult::Timeout, "handshake_timeout"),
            Self::ClientHelloTimeout(_) => (HandshakeResult::Timeout, "client_hello_timeout"),
            Self::Tls { error, rejection } => failure_of(error, rejection.as_ref()),
            Self::Extract(_) => (HandshakeResult::Refused, "extractor"),
            Self::Refused(r) => (HandshakeResult::Refused, crate::observe::reason_of(r)),
        }
    }
}

impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Timeout(_) | Self::ClientHelloTimeout(_) | Self::Refused(_) => None,
            // Printed (or explained by the rejection): only what lies beneath.
            Self::Tls { error, .. } => error.source(),
            Self::Extract(e) => std::error::Error::source(e),
        }
    }
}

/// Runs server handshakes and returns each peer's identity.
pub struct Acceptor<E: IdentityExtractor = DefaultExtractor> {
    current: Arc<ArcSwap<ServerSnapshot>>,
    extractor: Arc<E>,
    timeout: Duration,
    client_hello_timeout: Duration,
    observer: Slot,
}

impl<E: IdentityExtractor> Clone for Acceptor<E> {
    fn clone(&self) -> Self {
        Self {
            current: self.current.clone(),
            extractor: self.extractor.clone(),
            timeout: self.timeout,
            client_hello_timeout: self.client_hello_timeout,
            observer: self.observer.clone(),
        }
    }
}

impl<E: IdentityExtractor> fmt::Debug for Acceptor<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor")
            .field("timeout", &self.timeout)
            .field("client_hello_timeout", &self.client_hello_timeout)
            .finish_non_exhaustive()
    }
}

impl<E: IdentityExtractor> Acceptor<E> {
    pub(crate) fn new(
        current: Arc<ArcSwap<ServerSnapshot>>,
        extractor: Arc<E>,
        timeout: Duration,
        client_hello_timeout: Duration,
        observer: Slot,
    ) -> Self {
        Self {
            current,
            extractor,
            timeout,
            client_hello_timeout,
            observer,
        }
    }

    /// The observer the server was built with (the listener reports its caps to it).
    pub(crate) fn observer(&self) -> &Slot {
        &self.observer
    }

    /// Sets the handshake timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The handshake timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sets the ClientHello deadline: how long a client may take to send its whole
    /// ClientHello (within the handshake timeout). A [`TlsListener`](crate::TlsListener)
    /// also gives a new connection this long to send its first byte.
    #[must_use]
    pub fn with_client_hello_timeout(mut self, timeout: Duration) -> Self {
        self.client_hello_timeout = timeout;
        self
    }

    /// The ClientHello deadline.
    pub fn client_hello_timeout(&self) -> Duration {
        self.client_hello_timeout
    }

    /// Runs the handshake on `io` within the timeout.
    ///
    /// # Errors
    /// [`HandshakeError`]; the failure is also logged.
    pub async fn accept<IO>(
        &self,
        io: IO,
    ) -> Result<(TlsStream<IO>, ConnectionInfo<E::Principal>), HandshakeError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.accept_from(io, None).await
    }

    /// [`accept`](Self::accept), recording the peer's address in the
    /// [`ConnectionInfo`].
    ///
    /// # Errors
    /// As [`accept`](Self::accept).
    pub async fn accept_from<IO>(
        &self,
        io: IO,
        remote_addr: Option<std::net::SocketAddr>,
    ) -> Result<(TlsStream<IO>, ConnectionInfo<E::Principal>), HandshakeError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        // Boxed (only when observed): it lives across the handshake, in every
        // connection's future.
        let mut timing = self.observer.start(Side::Server).map(Box::new);
        // With OCSP on (feature `fetch`), the handshake and the OCSP step run boxed: the
        // step may hold the stream across a responder round trip, and connections of
        // servers without OCSP should not carry room for that.
        #[cfg(feature = "fetch")]
        let result = if self.current.load().trust.ocsp.is_some() {
            Box::pin(self.handshake_then_ocsp(io, remote_addr, &mut timing)).await
        } else {
            self.handshake(io, remote_addr, &mut timing).await
        };
        #[cfg(not(feature = "fetch"))]
        let result = self.handshake(io, remote_addr, &mut timing).await;
        // A refusal was reported before lingering (so its duration is the handshake's).
        if let Some(timing) = timing {
            match &result {
                Ok((stream, peer)) => timing.finish(
                    HandshakeResult::Accepted,
                    "none",
                    peer.resumed(),
                    version_of(stream.get_ref().1.protocol_version()),
                ),
                Err(e) => {
                    let (result, reason) = e.result_and_reason();
                    timing.finish(result, reason, false, None);
                }
            }
        }
        result
    }

    async fn handshake<IO>(
        &self,
        io: IO,
        remote_addr: Option<std::net::SocketAddr>,
        timing: &mut Option<Box<InFlight>>,
    ) -> Result<(TlsStream<IO>, ConnectionInfo<E::Principal>), HandshakeError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        // The outcome is matched inside this block so that neither it nor the accept
        // future stays in this future's state while lingering.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let hello_deadline = deadline.min(tokio::time::Instant::now() + self.client_hello_timeout);
        let (error, mut io) = {
            // The whole ClientHello first, within its own deadline; then the snapshot in
            // force at that moment, whose session store decides any resumption.
            let hello = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
            let start = match tokio::time::timeout_at(hello_deadline, hello).await {
                Err(_) if hello_deadline < deadline => {
                    return Err(HandshakeError::ClientHelloTimeout(
                        self.client_hello_timeout,
                    ));
                }
                Err(_) => return Err(HandshakeError::Timeout(self.timeout)),
                Ok(Err(error)) => {
                    return Err(HandshakeError::Tls {
                        error,
                        rejection: None,
                    });
                }
                Ok(Ok(start)) => start,
            };
            let used = self.current.load_full();
            let handshake = tokio::time::timeout_at(
                deadline,
                start.into_stream(used.config.clone()).into_fallible(),
            )
            .await;
            match handshake {
                Err(_) => return Err(HandshakeError::Timeout(self.timeout)),
                // A refused peer's stream is dropped, which closes it: its handshake
                // completed, so there is no alert to wait for.
                Ok(Ok(stream)) => {
                    let peer = self.peer(&stream, &used, remote_addr)?;
                    return Ok((stream, peer));
                }
                Ok(Err(failed)) => failed,
            }
        };
        let rejection = error
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
            .and_then(classify);
        if let Some(r @ Rejection::NoCertificate) = &rejection {
            log_rejection("server", r, None);
        }
        if let Some(timing) = timing.take() {
            let (result, reason) = failure_of(&error, rejection.as_ref());
            timing.finish(result, reason, false, None);
        }
        linger(&mut io).await;
        Err(HandshakeError::Tls { error, rejection })
    }

    /// Admits the connection (see the module docs) and maps it to the principal.
    fn peer<IO>(
        &self,
        stream: &TlsStream<IO>,
        used: &Arc<ServerSnapshot>,
        remote_addr: Option<std::net::SocketAddr>,
    ) -> Result<ConnectionInfo<E::Principal>, HandshakeError> {
        let conn = stream.get_ref().1;
        let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
        let now = self.current.load();
        let same_trust = now.trust.epoch == used.trust.epoch;
        let (identity, generation) = match conn.peer_certificates() {
            Some(chain) if !chain.is_empty() => {
                let time = crate::snapshot::unix_now();
                let admitted = match chain.split_first() {
                    // Verified and authorized by `used` during this handshake.
                    Some((leaf, rest)) if !resumed && same_trust => {
                        match used.trust.cache.get(leaf, rest, time) {
                            Some(id) => Ok(id),
                            None => used.trust.admit(chain, time),
                        }
                    }
                    _ => now.trust.admit(chain, time),
                };
                let id = admitted.map_err(|e| HandshakeError::Refused(e.reason))?;
                let generation = id.generation();
                (Some(id), generation)
            }
            _ => (None, used.generation),
        };
        let principal = match &identity {
            Some(id) => Some(
                self.extractor
                    .extract(id)
                    .map_err(HandshakeError::Extract)?,
            ),
            None => None,
        };
        Ok(ConnectionInfo::new(
            identity,
            principal,
            remote_addr,
            generation,
            alpn,
            resumed,
        ))
    }
}

#[cfg(feature = "fetch")]
type Pending = std::pin::Pin<Box<dyn Future<Output = Option<Rejection>> + Send>>;

impl<E: IdentityExtractor> Acceptor<E> {
    /// [`handshake`](Self::handshake), then the OCSP check of the client's chain.
    #[cfg(feature = "fetch")]
    async fn handshake_then_ocsp<IO>(
        &self,
        io: IO,
        remote_addr: Option<std::net::SocketAddr>,
        timing: &mut Option<Box<InFlight>>,
    ) -> Result<(TlsStream<IO>, ConnectionInfo<E::Principal>), HandshakeError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let (stream, peer) = self.handshake(io, remote_addr, timing).await?;
        match self.ocsp_pending(&stream, &peer, deadline) {
            None => Ok((stream, peer)),
            Some(pending) => match pending.await {
                None => Ok((stream, peer)),
                Some(reason) => {
                    log_rejection("server", &reason, peer.identity().map(|i| &**i));
                    Err(HandshakeError::Refused(reason))
                }
            },
        }
    }

    /// The OCSP check a connection still needs (a status not cached), bounded by
    /// `deadline`; it yields the reason to refuse, if any. Runs on resumed sessions too:
    /// resumption never skips the OCSP check in force.
    #[cfg(feature = "fetch")]
    fn ocsp_pending<IO, P>(
        &self,
        stream: &TlsStream<IO>,
        peer: &ConnectionInfo<P>,
        deadline: tokio::time::Instant,
    ) -> Option<Pending> {
        use crate::revocation::OcspFailure;
        use crate::revocation::ocsp::Verdict;
        let now = self.current.load();
        let check = now.trust.ocsp.clone()?;
        peer.identity()?;
        let certs = stream.get_ref().1.peer_certificates()?;
        match check.cached(certs) {
            Verdict::Good => None,
            Verdict::Revoked(serial) => {
                Some(Box::pin(std::future::ready(Some(Rejection::Revoked {
                    serial,
                }))))
            }
            Verdict::Pending => {
                let chain: Vec<rustls::pki_types::CertificateDer<'static>> =
                    certs.iter().map(|c| c.clone().into_owned()).collect();
                Some(Box::pin(async move {
                    match tokio::time::timeout_at(deadline, check.admit(&chain)).await {
                        Ok(result) => result.err(),
                        Err(_) if check.ocsp.settings.failure == OcspFailure::Soft => {
                            tracing::warn!(
                                target: "mtls::revocation",
                                "no OCSP answer within the handshake timeout; admitting the \
                                 client (soft-fail)"
                            );
                            None
                        }
                        Err(_) => Some(Rejection::OcspUnavailable {
                            reason: "no answer within the handshake timeout".to_owned(),
                        }),
                    }
                }))
            }
        }
    }
}

/// After a failed handshake the alert has been written; closing at once would make the
/// kernel answer the client's unread data (under TLS 1.3 it has already sent its first
/// request) with a reset, which can destroy the alert before the client reads it: curl
/// then reports "connection reset" instead of "certificate required". So send FIN and
/// read what the client still sends, briefly and boundedly, before closing.
async fn linger<IO: AsyncRead + AsyncWrite + Unpin>(io: &mut IO) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const MAX_TIME: Duration = Duration::from_millis(500);
    const MAX_BYTES: usize = 64 * 1024;
    let _ = tokio::time::timeout(MAX_TIME, async {
        let _ = io.shutdown().await;
        // On the heap: a 4 KiB array here would sit in every handshake's future.
        let mut buf = vec![0u8; 4096];
        let mut total = 0;
        while total < MAX_BYTES {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

fn classify(e: &rustls::Error) -> Option<Rejection> {
    match e {
        rustls::Error::NoCertificatesPresented => Some(Rejection::NoCertificate),
        rustls::Error::InvalidCertificate(_) => Some(Rejection::from_rustls(e, "?")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    /// Every connection's task holds this future: it must not carry buffers or a second
    /// copy of the TLS stream beside the handshake's own state (it once held 4 KiB of
    /// read buffer and two copies of the accept future, 5 KiB more per connection). The
    /// observer's timing adds a pointer and a wrapper's state (1,752 bytes in all with a
    /// 1,224-byte stream, against ≤ 1,736 without).
    #[tokio::test]
    async fn the_handshake_future_is_little_more_than_the_tls_stream() {
        let pki = mtls_testing::TestPki::new();
        let (_, files) = pki.server("localhost");
        let server = crate::Server::builder()
            .identity(&files.cert, &files.key)
            .client_ca(pki.ca_file())
            .policy(crate::Policy::any_verified())
            .build()
            .unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(tcp.local_addr().unwrap()).await.unwrap();
        let (io, _) = tcp.accept().await.unwrap();
        let acceptor = server.acceptor();
        let handshake = acceptor.accept(io);
        let stream = size_of::<TlsStream<TcpStream>>();
        assert!(
            size_of_val(&handshake) <= stream + 576,
            "handshake future {} bytes, TLS stream {stream}",
            size_of_val(&handshake)
        );
        drop((handshake, client));
    }
}
