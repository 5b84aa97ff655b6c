//! A layer that gives handlers a peer identity without TLS, for unit tests.

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::extract::Source;
use crate::listener::{Conn, TlsConnectInfo};

/// Makes every request look as if it came over an mTLS connection from a given peer (or
/// an anonymous client), so handlers, extractors and
/// [`RequirePolicyLayer`](crate::RequirePolicyLayer) can be tested without TLS, like
/// axum's [`MockConnectInfo`](axum::extract::connect_info::MockConnectInfo).
///
/// It inserts a [`ConnectInfo<TlsConnectInfo>`](ConnectInfo) into requests that carry no
/// connection info: real connection info (from
/// [`into_mtls_service`](crate::MtlsRouterExt::into_mtls_service), or the
/// [`mtls::ConnectionInfo`] that `mtls_hyper::HttpServer` inserts) takes precedence. Its
/// [`TlsConnectInfo::connection_info`] is `None`: there is no real connection.
///
/// ```
/// use axum::{Router, body::Body, http::{Request, StatusCode}, routing::get};
/// use mtls::rustls::pki_types::CertificateDer;
/// use mtls_axum::{ClientIdentity, MockPeerIdentity};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let app = Router::new().route(
///     "/whoami",
///     get(|peer: ClientIdentity| async move { peer.common_name().unwrap_or("").to_owned() }),
/// );
///
/// // A certificate from the test PKI (any DER certificate will do).
/// let leaf = mtls_testing::Ca::root("test root").leaf("alice").client().build();
/// let alice = mtls::PeerIdentity::from_chain(&[CertificateDer::from(leaf.cert_der())])?;
///
/// let response = app
///     .clone()
///     .layer(MockPeerIdentity::new(alice))
///     .oneshot(Request::get("/whoami").body(Body::empty())?)
///     .await?;
/// assert_eq!(response.status(), StatusCode::OK);
///
/// let response = app
///     .layer(MockPeerIdentity::anonymous())
///     .oneshot(Request::get("/whoami").body(Body::empty())?)
///     .await?;
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MockPeerIdentity {
    identity: Option<Arc<mtls::PeerIdentity>>,
    principal: Option<ErasedPrincipal>,
    remote_addr: SocketAddr,
    alpn: Option<Vec<u8>>,
}

impl MockPeerIdentity {
    /// Requests come from `identity`. Its principal (for
    /// [`Principal<Arc<mtls::PeerIdentity>>`](crate::Principal)) is the identity itself, as
    /// with the default extractor; see [`with_principal`](Self::with_principal).
    pub fn new(identity: impl Into<Arc<mtls::PeerIdentity>>) -> Self {
        Self {
            identity: Some(identity.into()),
            principal: None,
            remote_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            alpn: None,
        }
    }

    /// Requests come from an anonymous client (no certificate).
    pub fn anonymous() -> Self {
        Self {
            identity: None,
            principal: None,
            remote_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            alpn: None,
        }
    }

    /// The application principal that [`Principal<P>`](crate::Principal) extracts.
    #[must_use]
    pub fn with_principal<P: Clone + Send + Sync + 'static>(mut self, principal: P) -> Self {
        self.principal = Some(ErasedPrincipal::new(principal));
        self
    }

    /// The peer address. Default `127.0.0.1:0`.
    #[must_use]
    pub fn with_remote_addr(mut self, addr: SocketAddr) -> Self {
        self.remote_addr = addr;
        self
    }

    /// The negotiated ALPN protocol. Default none.
    #[must_use]
    pub fn with_alpn(mut self, protocol: impl AsRef<[u8]>) -> Self {
        self.alpn = Some(protocol.as_ref().to_vec());
        self
    }

    fn info(&self) -> TlsConnectInfo {
        // As with the default extractor, the principal is the identity itself unless
        // one was given; an anonymous client has none.
        let principal = match (&self.identity, &self.principal) {
            (None, _) => None,
            (Some(_), Some(p)) => Some(p.clone()),
            (Some(id), None) => Some(ErasedPrincipal::new(id.clone())),
        };
        let conn = MockConn {
            identity: self.identity.clone(),
            principal,
            alpn: self.alpn.clone(),
        };
        TlsConnectInfo::from_conn(Arc::new(conn), self.remote_addr)
    }
}

/// A principal of any type, with its type name for error messages.
#[derive(Clone)]
struct ErasedPrincipal {
    value: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
}

impl ErasedPrincipal {
    fn new<P: Send + Sync + 'static>(principal: P) -> Self {
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

/// The connection a [`MockPeerIdentity`] pretends requests came over.
struct MockConn {
    identity: Option<Arc<mtls::PeerIdentity>>,
    principal: Option<ErasedPrincipal>,
    alpn: Option<Vec<u8>>,
}

impl Conn for MockConn {
    fn identity(&self) -> Option<&Arc<mtls::PeerIdentity>> {
        self.identity.as_ref()
    }
    fn principal(&self) -> Option<&(dyn Any + Send + Sync)> {
        self.principal.as_ref().map(|p| &*p.value)
    }
    fn principal_type(&self) -> Option<&'static str> {
        self.principal.as_ref().map(|p| p.type_name)
    }
    fn generation(&self) -> u64 {
        self.identity.as_ref().map_or(0, |id| id.generation())
    }
    fn alpn(&self) -> Option<&[u8]> {
        self.alpn.as_deref()
    }
    fn resumed(&self) -> bool {
        false
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl<S> Layer<S> for MockPeerIdentity {
    type Service = MockPeerIdentityService<S>;

    fn layer(&self, inner: S) -> MockPeerIdentityService<S> {
        MockPeerIdentityService {
            inner,
            info: self.info(),
        }
    }
}

/// The service of [`MockPeerIdentity`].
#[derive(Debug, Clone)]
pub struct MockPeerIdentityService<S> {
    inner: S,
    info: TlsConnectInfo,
}

impl<S, B> Service<Request<B>> for MockPeerIdentityService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if Source::lookup(req.extensions()).is_none() {
            req.extensions_mut().insert(ConnectInfo(self.info.clone()));
        }
        self.inner.call(req)
    }
}
