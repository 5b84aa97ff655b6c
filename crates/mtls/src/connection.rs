//! What is known about one connection's peer: the one connection-info type every adapter
//! carries (axum, hyper, and the others built on the core).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::identity::PeerIdentity;

/// What is known about the peer of an accepted connection: its verified identity (none for
/// an anonymous client), the application's principal, its address, the generation of the
/// material that admitted it, ALPN and resumption.
///
/// Cheap to clone (one reference count), so adapters put it on every request: a handler
/// that finds it knows the request came over an mTLS connection, and
/// [`identity`](Self::identity) `== None` then means the client really was anonymous
/// (only possible under [`ClientAuth::Optional`](crate::ClientAuth::Optional)), never
/// that something was misconfigured.
pub struct ConnectionInfo<P = Arc<PeerIdentity>> {
    inner: Arc<Inner<P>>,
}

struct Inner<P> {
    identity: Option<Arc<PeerIdentity>>,
    principal: Option<P>,
    remote_addr: Option<SocketAddr>,
    generation: u64,
    alpn: Option<Vec<u8>>,
    resumed: bool,
}

impl<P> Clone for ConnectionInfo<P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<P: fmt::Debug> fmt::Debug for ConnectionInfo<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.inner;
        f.debug_struct("ConnectionInfo")
            .field("identity", &i.identity.as_ref().map(|id| id.subject()))
            .field("principal", &i.principal)
            .field("remote_addr", &i.remote_addr)
            .field("generation", &i.generation)
            .field("alpn", &i.alpn.as_deref().map(String::from_utf8_lossy))
            .field("resumed", &i.resumed)
            .finish()
    }
}

impl<P> ConnectionInfo<P> {
    pub(crate) fn new(
        identity: Option<Arc<PeerIdentity>>,
        principal: Option<P>,
        remote_addr: Option<SocketAddr>,
        generation: u64,
        alpn: Option<Vec<u8>>,
        resumed: bool,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                identity,
                principal,
                remote_addr,
                generation,
                alpn,
                resumed,
            }),
        }
    }

    /// The verified and authorized peer, or `None` for an anonymous client under
    /// [`ClientAuth::Optional`](crate::ClientAuth::Optional).
    pub fn identity(&self) -> Option<&Arc<PeerIdentity>> {
        self.inner.identity.as_ref()
    }

    /// Whether the client connected without a certificate.
    pub fn is_anonymous(&self) -> bool {
        self.inner.identity.is_none()
    }

    /// The application's principal from the
    /// [`IdentityExtractor`](crate::IdentityExtractor), when there is an identity.
    pub fn principal(&self) -> Option<&P> {
        self.inner.principal.as_ref()
    }

    /// The peer's socket address, when the connection came from a
    /// [`TlsListener`](crate::TlsListener) (or an adapter that set it).
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr
    }

    /// The generation of the material that admitted this connection: the one that
    /// verified the peer during the handshake, or the one in force when the handshake
    /// ended if the peer was checked again then (a resumed session, a reload during the
    /// handshake). Equal to the identity's [`generation`](PeerIdentity::generation) when
    /// there is one.
    pub fn generation(&self) -> u64 {
        self.inner.generation
    }

    /// The negotiated ALPN protocol.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.inner.alpn.as_deref()
    }

    /// Whether the handshake resumed an earlier session.
    pub fn resumed(&self) -> bool {
        self.inner.resumed
    }

    /// The same connection's info with the default principal (the identity itself), for
    /// code that reads [`ConnectionInfo`] without knowing the application's `P`: an
    /// adapter serving a custom [`IdentityExtractor`](crate::IdentityExtractor) puts both
    /// on each request, so such code can still tell an anonymous client (identity `None`)
    /// from a request that came another way. Allocates; call it once per connection.
    pub fn without_principal(&self) -> ConnectionInfo {
        let i = &*self.inner;
        ConnectionInfo::new(
            i.identity.clone(),
            i.identity.clone(),
            i.remote_addr,
            i.generation,
            i.alpn.clone(),
            i.resumed,
        )
    }

    /// Splits into identity and principal.
    pub fn into_parts(self) -> (Option<Arc<PeerIdentity>>, Option<P>)
    where
        P: Clone,
    {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => (inner.identity, inner.principal),
            Err(shared) => (shared.identity.clone(), shared.principal.clone()),
        }
    }
}
