//! A tower layer that takes the client's identity from a trusted TLS-terminating proxy.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Request, StatusCode};
use mtls::forwarded::{Forwarding, HeaderSource, Resolution};
use tower_layer::Layer;
use tower_service::Service;

use crate::extract::Source;
use crate::policy::ResponseFuture;

/// Gives each request the identity of the client behind a trusted proxy (nginx, HAProxy,
/// Apache, Envoy, Traefik, AWS ALB, or any RFC 9440 proxy), as the [`Forwarding`] says,
/// with [`ClientIdentity`](crate::ClientIdentity), [`RequirePolicyLayer`](crate::RequirePolicyLayer)
/// and the core's policies working on it unchanged.
///
/// - A request whose **connection** is a trusted proxy (its certificate matches the
///   proxy policy, or its address a listed network): the forwarded certificate is the
///   request's identity (a [`mtls::forwarded::ForwardedIdentity`] request extension,
///   with the proxy in `by`); no certificate forwarded means an anonymous client, never
///   the proxy's own identity. A header that cannot be used is answered 400 (malformed)
///   or 403 (not verified, or refused by [`Forwarding::reverify`]).
/// - Any other request is what its connection authenticates, as without the layer.
/// - Either way the forwarded headers are removed before the application sees the
///   request, so no handler can read a header a client forged.
///
/// ```no_run
/// # fn run() -> Result<(), mtls::PolicyError> {
/// use axum::{Router, routing::get};
/// use mtls::Policy;
/// use mtls::forwarded::{Forwarding, HeaderFormat, TrustedProxy};
/// use mtls_axum::{ClientIdentity, ForwardedIdentityLayer};
///
/// let from_nginx = Forwarding::new(
///     HeaderFormat::Nginx,
///     TrustedProxy::Policy(Policy::parse_any(["cn:edge-proxy"])?),
/// );
/// let app: Router = Router::new()
///     .route("/whoami", get(|peer: ClientIdentity| async move { peer.subject().to_owned() }))
///     .layer(ForwardedIdentityLayer::new(from_nginx));
/// # let _ = app; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ForwardedIdentityLayer {
    forwarding: Arc<Forwarding>,
}

impl ForwardedIdentityLayer {
    /// The layer for `forwarding`.
    pub fn new(forwarding: Forwarding) -> Self {
        Self::shared(Arc::new(forwarding))
    }

    /// The layer for a `forwarding` shared with other layers (its identity cache too).
    pub fn shared(forwarding: Arc<Forwarding>) -> Self {
        Self { forwarding }
    }
}

impl<S> Layer<S> for ForwardedIdentityLayer {
    type Service = ForwardedIdentity<S>;

    fn layer(&self, inner: S) -> ForwardedIdentity<S> {
        ForwardedIdentity {
            inner,
            forwarding: self.forwarding.clone(),
        }
    }
}

/// The service of [`ForwardedIdentityLayer`].
#[derive(Debug, Clone)]
pub struct ForwardedIdentity<S> {
    inner: S,
    forwarding: Arc<Forwarding>,
}

/// `http` headers as the core reads them.
pub(crate) struct Headers<'a>(pub(crate) &'a HeaderMap);

impl HeaderSource for Headers<'_> {
    fn values(&self, name: &str) -> Vec<&[u8]> {
        self.0
            .get_all(name)
            .iter()
            .map(http::HeaderValue::as_bytes)
            .collect()
    }
}

impl<S, B> Service<Request<B>> for ForwardedIdentity<S>
where
    S: Service<Request<B>>,
    S::Response: IntoResponse,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let resolution = {
            let source = Source::lookup(req.extensions());
            let identity = source.as_ref().and_then(Source::identity).map(|a| &**a);
            let remote = source.as_ref().and_then(Source::remote_addr);
            self.forwarding
                .resolve(identity, remote, &Headers(req.headers()))
        };
        for name in self.forwarding.headers() {
            req.headers_mut().remove(name);
        }
        match resolution {
            Resolution::Direct => ResponseFuture::inner(self.inner.call(req)),
            Resolution::Forwarded(forwarded) => {
                req.extensions_mut().insert(forwarded);
                ResponseFuture::inner(self.inner.call(req))
            }
            Resolution::Refused(e) => {
                let (status, body) = if e.is_client_error() {
                    (StatusCode::BAD_REQUEST, "bad forwarded client certificate")
                } else {
                    (
                        StatusCode::FORBIDDEN,
                        "forwarded client certificate refused",
                    )
                };
                ResponseFuture::rejected((status, body).into_response())
            }
            _ => ResponseFuture::rejected(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        }
    }
}

/// The proxy a request came through, for handlers: take `Option<ForwardedBy>`, `None`
/// for a client connected to our listener directly.
#[derive(Debug, Clone)]
pub struct ForwardedBy(pub mtls::forwarded::ProxyInfo);

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for ForwardedBy {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<mtls::forwarded::ForwardedIdentity>()
            .map(|f| Self(f.by.clone())))
    }
}
