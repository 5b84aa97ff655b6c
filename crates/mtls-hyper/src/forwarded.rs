//! A service wrapper that takes the client's identity from a trusted TLS-terminating
//! proxy, for services served by [`HttpServer`](crate::HttpServer).

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, Request, Response, StatusCode};
use mtls::forwarded::{Forwarding, HeaderSource, Resolution};
use mtls::{ConnectionInfo, PeerIdentity};
use pin_project_lite::pin_project;

/// Gives each request the identity of the client behind a trusted proxy, as the
/// [`Forwarding`] says (see mtls-axum's `ForwardedIdentityLayer`, which works the same
/// way): from the trusted proxy's connection, the request's `Arc<PeerIdentity>`
/// extension becomes the forwarded client's (absent for an anonymous one) and a
/// [`mtls::forwarded::ForwardedIdentity`] extension names the proxy; the
/// [`ConnectionInfo`] stays the connection's (the proxy's). From any other connection the
/// request is unchanged. Either way the forwarded headers are removed. An unusable header
/// from the proxy is answered 400 or 403 with an empty body (`B::default()`).
///
/// ```no_run
/// # async fn run(listener: mtls::TlsListener) {
/// use hyper::service::service_fn;
/// use mtls::Policy;
/// use mtls::forwarded::{Forwarding, HeaderFormat, TrustedProxy};
/// use mtls_hyper::{ForwardedIdentity, HttpServer};
///
/// let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
///     let who = req.extensions().get::<std::sync::Arc<mtls::PeerIdentity>>()
///         .map(|id| id.subject().to_owned());
///     Ok::<_, std::convert::Infallible>(hyper::Response::new(format!("{who:?}")))
/// });
/// let from_envoy = Forwarding::new(
///     HeaderFormat::Xfcc,
///     TrustedProxy::Policy(Policy::common_name(["envoy"])),
/// );
/// HttpServer::new(listener).serve(ForwardedIdentity::new(service, from_envoy)).await;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ForwardedIdentity<S> {
    inner: S,
    forwarding: Arc<Forwarding>,
}

impl<S> ForwardedIdentity<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, forwarding: Forwarding) -> Self {
        Self::shared(inner, Arc::new(forwarding))
    }

    /// Wraps `inner` with a `forwarding` shared with other services.
    pub fn shared(inner: S, forwarding: Arc<Forwarding>) -> Self {
        Self { inner, forwarding }
    }
}

struct Headers<'a>(&'a HeaderMap);

impl HeaderSource for Headers<'_> {
    fn values(&self, name: &str) -> Vec<&[u8]> {
        self.0
            .get_all(name)
            .iter()
            .map(http::HeaderValue::as_bytes)
            .collect()
    }
}

/// Applies the forwarding to `req`: `Ok(req)` to call the service with, or the status
/// to answer.
fn apply<B>(forwarding: &Forwarding, mut req: Request<B>) -> Result<Request<B>, StatusCode> {
    let resolution = {
        let ext = req.extensions();
        let identity = ext.get::<Arc<PeerIdentity>>().map(|a| &**a);
        let remote = ext
            .get::<ConnectionInfo>()
            .and_then(ConnectionInfo::remote_addr);
        forwarding.resolve(identity, remote, &Headers(req.headers()))
    };
    for name in forwarding.headers() {
        req.headers_mut().remove(name);
    }
    match resolution {
        Resolution::Direct => Ok(req),
        Resolution::Forwarded(forwarded) => {
            let ext = req.extensions_mut();
            ext.remove::<Arc<PeerIdentity>>();
            if let Some(identity) = &forwarded.identity {
                ext.insert(identity.clone());
            }
            ext.insert(forwarded);
            Ok(req)
        }
        Resolution::Refused(e) if e.is_client_error() => Err(StatusCode::BAD_REQUEST),
        Resolution::Refused(_) => Err(StatusCode::FORBIDDEN),
        _ => Err(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

fn refusal<B: Default>(status: StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    response
}

pin_project! {
    /// The response future of [`ForwardedIdentity`].
    pub struct ResponseFuture<F, R> {
        #[pin]
        kind: Kind<F, R>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, R> {
        Inner { #[pin] future: F },
        Refused { #[pin] ready: Ready<R> },
    }
}

impl<F, R> ResponseFuture<F, R> {
    fn inner(future: F) -> Self {
        Self {
            kind: Kind::Inner { future },
        }
    }

    fn refused(response: R) -> Self {
        Self {
            kind: Kind::Refused {
                ready: ready(response),
            },
        }
    }
}

impl<F, R> std::fmt::Debug for ResponseFuture<F, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<F, R, E> Future for ResponseFuture<F, R>
where
    F: Future<Output = Result<R, E>>,
{
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx),
            KindProj::Refused { ready } => ready.poll(cx).map(Ok),
        }
    }
}

impl<S, B, RB> hyper::service::Service<Request<B>> for ForwardedIdentity<S>
where
    S: hyper::service::Service<Request<B>, Response = Response<RB>>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, Response<RB>>;

    fn call(&self, req: Request<B>) -> Self::Future {
        match apply(&self.forwarding, req) {
            Ok(req) => ResponseFuture::inner(self.inner.call(req)),
            Err(status) => ResponseFuture::refused(refusal(status)),
        }
    }
}

impl<S, B, RB> tower_service::Service<Request<B>> for ForwardedIdentity<S>
where
    S: tower_service::Service<Request<B>, Response = Response<RB>>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, Response<RB>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match apply(&self.forwarding, req) {
            Ok(req) => ResponseFuture::inner(self.inner.call(req)),
            Err(status) => ResponseFuture::refused(refusal(status)),
        }
    }
}
