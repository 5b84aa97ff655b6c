//! Extractors for the peer's identity and the application's principal, and their
//! rejection.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{Extensions, StatusCode};

use crate::listener::TlsConnectInfo;

/// Where a request's identity comes from, in order of precedence.
pub(crate) enum Source<'a> {
    /// The client a trusted proxy forwarded
    /// ([`ForwardedIdentityLayer`](crate::ForwardedIdentityLayer)): it takes the place
    /// of the connection's own identity.
    Forwarded(&'a mtls::forwarded::ForwardedIdentity),
    /// axum's `ConnectInfo<TlsConnectInfo>`:
    /// [`MtlsRouterExt::into_mtls_service`](crate::MtlsRouterExt::into_mtls_service) or
    /// `MockPeerIdentity` (feature `test-util`).
    Conn(&'a TlsConnectInfo),
    /// The core's connection info with the default principal type, as
    /// `mtls_hyper::HttpServer` inserts it.
    Core(&'a mtls::ConnectionInfo),
    /// A bare `Arc<mtls::PeerIdentity>` request extension (inserted by
    /// `mtls_hyper::HttpServer` beside a connection info of a custom principal type, or by
    /// another server loop).
    Bare(&'a Arc<mtls::PeerIdentity>),
}

impl Source<'_> {
    /// The connection info of the request, if it carries one.
    pub(crate) fn lookup(ext: &Extensions) -> Option<Source<'_>> {
        if let Some(forwarded) = ext.get::<mtls::forwarded::ForwardedIdentity>() {
            return Some(Source::Forwarded(forwarded));
        }
        if let Some(ConnectInfo(info)) = ext.get::<ConnectInfo<TlsConnectInfo>>() {
            return Some(Source::Conn(info));
        }
        if let Some(info) = ext.get::<mtls::ConnectionInfo>() {
            return Some(Source::Core(info));
        }
        ext.get::<Arc<mtls::PeerIdentity>>().map(Source::Bare)
    }

    /// As [`lookup`](Self::lookup); a request without connection info is a server
    /// misconfiguration, logged and refused with 500.
    pub(crate) fn find(ext: &Extensions) -> Result<Source<'_>, IdentityRejection> {
        Self::lookup(ext).ok_or_else(|| {
            tracing::error!(
                target: "mtls_axum",
                "{}",
                IdentityRejection::MissingConnectInfo.body_text()
            );
            IdentityRejection::MissingConnectInfo
        })
    }

    pub(crate) fn identity(&self) -> Option<&Arc<mtls::PeerIdentity>> {
        match self {
            Source::Forwarded(f) => f.identity.as_ref(),
            Source::Conn(info) => info.identity(),
            Source::Core(info) => info.identity(),
            Source::Bare(id) => Some(id),
        }
    }

    /// The TCP peer's address, when known.
    pub(crate) fn remote_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Source::Forwarded(f) => f.by.addr,
            Source::Conn(info) => Some(info.remote_addr()),
            Source::Core(info) => info.remote_addr(),
            Source::Bare(_) => None,
        }
    }
}

/// Why a request was refused by an extractor of this crate or by
/// [`RequirePolicyLayer`](crate::RequirePolicyLayer).
///
/// As a response it carries only its [`status`](Self::status) and a generic
/// [`body_text`](Self::body_text); the details (such as which policy rule denied the peer)
/// go to the server log through `tracing`. The rejection itself is also put into the
/// response's extensions, so outer layers can tell rejections apart.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityRejection {
    /// The client presented no certificate (anonymous under optional client auth): 401.
    NoCertificate,
    /// A policy refused the client's certificate: 403. The [`Denied`](mtls::Denied) names
    /// the rule; it is logged, never sent to the client.
    Forbidden(mtls::Denied),
    /// The request carries no connection info: the router was served by plain
    /// `axum::serve` without [`into_mtls_service`](crate::MtlsRouterExt::into_mtls_service),
    /// or by a loop that inserts neither an [`mtls::ConnectionInfo`] nor the peer's
    /// identity. 500.
    MissingConnectInfo,
    /// The handler asked for a principal of another type than the listener's
    /// [`IdentityExtractor`](mtls::IdentityExtractor) produces. 500.
    PrincipalTypeMismatch {
        /// The type the handler asked for.
        requested: &'static str,
        /// The type the extractor produced.
        available: &'static str,
    },
    /// There is an identity but no principal of the requested type: the request carries
    /// an [`mtls::ConnectionInfo`] of another principal type, or only a bare
    /// `Arc<mtls::PeerIdentity>`. 500.
    NoPrincipal,
}

impl IdentityRejection {
    /// The HTTP status of the response.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoCertificate => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::MissingConnectInfo | Self::PrincipalTypeMismatch { .. } | Self::NoPrincipal => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The body of the response (no secrets, no policy details).
    pub fn body_text(&self) -> String {
        match self {
            Self::NoCertificate => {
                "a client certificate is required: connect with a certificate issued by a CA \
                 this server trusts"
                    .to_owned()
            }
            Self::Forbidden(_) => {
                "forbidden: this client certificate is not allowed to access this resource"
                    .to_owned()
            }
            Self::MissingConnectInfo => {
                "server misconfiguration: the request carries no mTLS connection info; serve \
                 the router with `axum::serve(listener, app.into_mtls_service())` (trait \
                 `mtls_axum::MtlsRouterExt`) or \
                 `app.into_make_service_with_connect_info::<mtls_axum::TlsConnectInfo>()`, \
                 with a `mtls_axum::MtlsListener`, or with \
                 `mtls_hyper::HttpServer::serve_tower(app)`; in handler tests add the \
                 `mtls_axum::MockPeerIdentity` layer"
                    .to_owned()
            }
            Self::PrincipalTypeMismatch {
                requested,
                available,
            } => format!(
                "server misconfiguration: a handler asked for the principal type `{requested}`, \
                 but the listener's identity extractor produces `{available}`"
            ),
            Self::NoPrincipal => {
                "server misconfiguration: the request's identity has no principal of the type \
                 the handler asked for; serve with a listener built from \
                 `Server::acceptor_with(extractor)` whose extractor produces that type"
                    .to_owned()
            }
        }
    }
}

impl fmt::Display for IdentityRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Forbidden(denied) => write!(f, "forbidden by policy: {denied}"),
            other => f.write_str(&other.body_text()),
        }
    }
}

impl std::error::Error for IdentityRejection {}

impl IntoResponse for IdentityRejection {
    fn into_response(self) -> Response {
        let mut response = (self.status(), self.body_text()).into_response();
        response.extensions_mut().insert(self);
        response
    }
}

// === impl ClientIdentity ===

/// Extracts the verified client's [`mtls::PeerIdentity`]; rejects an anonymous client
/// with 401.
///
/// Take `Option<ClientIdentity>` on routes open to anonymous clients (under
/// [`ClientAuth::Optional`](mtls::ClientAuth::Optional)): it is `None` for them.
/// Both forms answer 500 when the request carries no connection info (a router served
/// by plain `axum::serve` without
/// [`into_mtls_service`](crate::MtlsRouterExt::into_mtls_service)), rather than treating
/// every client as anonymous.
///
/// Named for what it extracts, the client's identity, so that it does not shadow the
/// core's [`mtls::PeerIdentity`], which it derefs to.
///
/// Cloning and extracting cost a reference-count increment; the identity was parsed once,
/// during the handshake.
///
/// ```
/// use axum::{Router, routing::get};
/// use mtls_axum::ClientIdentity;
///
/// async fn whoami(peer: ClientIdentity) -> String {
///     peer.common_name().unwrap_or("(no CN)").to_owned()
/// }
///
/// async fn hello(peer: Option<ClientIdentity>) -> String {
///     match peer {
///         Some(peer) => format!("hello {}", peer.subject()),
///         None => "hello, anonymous".to_owned(),
///     }
/// }
///
/// let app: Router = Router::new()
///     .route("/whoami", get(whoami))
///     .route("/hello", get(hello));
/// ```
#[derive(Debug, Clone)]
pub struct ClientIdentity(pub Arc<mtls::PeerIdentity>);

impl Deref for ClientIdentity {
    type Target = mtls::PeerIdentity;

    fn deref(&self) -> &mtls::PeerIdentity {
        &self.0
    }
}

impl From<ClientIdentity> for Arc<mtls::PeerIdentity> {
    fn from(peer: ClientIdentity) -> Self {
        peer.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIdentity {
    type Rejection = IdentityRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match Source::find(&parts.extensions)?.identity() {
            Some(id) => Ok(Self(id.clone())),
            None => Err(IdentityRejection::NoCertificate),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for ClientIdentity {
    type Rejection = IdentityRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(Source::find(&parts.extensions)?
            .identity()
            .map(|id| Self(id.clone())))
    }
}

// === impl Principal ===

/// Extracts the application's own principal type `P`, produced during the handshake by
/// the [`IdentityExtractor`](mtls::IdentityExtractor) the listener was built with
/// ([`Server::acceptor_with`](mtls::Server::acceptor_with) +
/// [`MtlsListener::bind_with`](crate::MtlsListener::bind_with)); rejects an anonymous
/// client with 401.
///
/// `Option<Principal<P>>` is `None` for anonymous clients. Asking for a `P` other than the
/// extractor's principal type is a server bug and answers 500. With the default
/// extractor, `P` is `Arc<mtls::PeerIdentity>`. Under `mtls_hyper::HttpServer` (a router
/// served with `serve_tower`) the principal is read from the request's
/// [`mtls::ConnectionInfo<P>`](mtls::ConnectionInfo).
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, routing::get};
/// use mtls_axum::Principal;
///
/// #[derive(Clone)]
/// struct Tenant(String);
///
/// fn tenant_of(peer: &Arc<mtls::PeerIdentity>) -> Result<Tenant, mtls::ExtractError> {
///     peer.organization()
///         .map(|o| Tenant(o.to_owned()))
///         .ok_or_else(|| mtls::ExtractError::new("no O in the subject"))
/// }
///
/// async fn handler(Principal(tenant): Principal<Tenant>) -> String {
///     format!("tenant {}", tenant.0)
/// }
///
/// # async fn run(server: mtls::Server) -> std::io::Result<()> {
/// let listener = mtls_axum::MtlsListener::bind_with(
///     "127.0.0.1:8443",
///     server.acceptor_with(tenant_of),
///     mtls::ListenerOptions::default(),
/// )
/// .await?;
/// let app: Router = Router::new().route("/", get(handler));
/// # let _ = (listener, app); Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Principal<P>(pub P);

impl<P> Deref for Principal<P> {
    type Target = P;

    fn deref(&self) -> &P {
        &self.0
    }
}

fn principal<P: Clone + Send + Sync + 'static>(
    parts: &Parts,
) -> Result<Option<Principal<P>>, IdentityRejection> {
    let ext = &parts.extensions;
    // A forwarded client: the connection's principal is the proxy's, never the client's.
    // Only the default principal (the identity itself) exists for a forwarded client.
    if let Some(forwarded) = ext.get::<mtls::forwarded::ForwardedIdentity>() {
        let Some(identity) = &forwarded.identity else {
            return Ok(None);
        };
        if let Some(p) = (identity as &dyn std::any::Any).downcast_ref::<P>() {
            return Ok(Some(Principal(p.clone())));
        }
        tracing::error!(
            target: "mtls_axum",
            requested = std::any::type_name::<P>(),
            "a custom principal is not available for a client forwarded by a proxy (the \
             identity extractor runs at the handshake, with the proxy); take ClientIdentity"
        );
        return Err(IdentityRejection::NoPrincipal);
    }
    if let Some(ConnectInfo(info)) = ext.get::<ConnectInfo<TlsConnectInfo>>() {
        return principal_of(info);
    }
    // `mtls_hyper::HttpServer` inserts the core's connection info with the principal in it
    // (with the default extractor, the principal is the identity).
    if let Some(info) = ext.get::<mtls::ConnectionInfo<P>>() {
        return Ok(info.principal().cloned().map(Principal));
    }
    // Connection info of another principal type, a bare identity, or nothing at all.
    if Source::find(ext)?.identity().is_none() {
        return Ok(None);
    }
    tracing::error!(
        target: "mtls_axum",
        requested = std::any::type_name::<P>(),
        "{}",
        IdentityRejection::NoPrincipal
    );
    Err(IdentityRejection::NoPrincipal)
}

fn principal_of<P: Clone + Send + Sync + 'static>(
    info: &TlsConnectInfo,
) -> Result<Option<Principal<P>>, IdentityRejection> {
    if info.identity().is_none() {
        return Ok(None);
    }
    if let Some(p) = info.principal::<P>() {
        return Ok(Some(Principal(p.clone())));
    }
    let rejection = match info.principal_type() {
        Some(available) => IdentityRejection::PrincipalTypeMismatch {
            requested: std::any::type_name::<P>(),
            available,
        },
        None => IdentityRejection::NoPrincipal,
    };
    tracing::error!(target: "mtls_axum", "{rejection}");
    Err(rejection)
}

impl<S, P> FromRequestParts<S> for Principal<P>
where
    S: Send + Sync,
    P: Clone + Send + Sync + 'static,
{
    type Rejection = IdentityRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        principal(parts)?.ok_or(IdentityRejection::NoCertificate)
    }
}

impl<S, P> OptionalFromRequestParts<S> for Principal<P>
where
    S: Send + Sync,
    P: Clone + Send + Sync + 'static,
{
    type Rejection = IdentityRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        principal(parts)
    }
}
