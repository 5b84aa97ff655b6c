//! A tower layer that runs each request in a `tracing` span naming the client.

use std::task::{Context, Poll};

use http::Request;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;
use tracing::instrument::Instrumented;

use crate::extract::Source;

/// Runs each request of the routes it wraps in the span of
/// [`mtls::observe::peer_span`] (`mtls.peer`, with `peer.subject`, `peer.spiffe_id`,
/// `peer.serial`, or `peer.anonymous`), so the events logged while serving it, access
/// logs included, say who called. Costs nothing when no subscriber wants the span.
///
/// Put it outside the layers whose events should carry the identity (tower-http's
/// `TraceLayer` inside it logs within it):
///
/// ```
/// use axum::{Router, routing::get};
/// use mtls_axum::TraceIdentityLayer;
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(TraceIdentityLayer::new());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceIdentityLayer(());

impl TraceIdentityLayer {
    /// The layer.
    pub fn new() -> Self {
        Self(())
    }
}

impl<S> Layer<S> for TraceIdentityLayer {
    type Service = TraceIdentity<S>;

    fn layer(&self, inner: S) -> TraceIdentity<S> {
        TraceIdentity { inner }
    }
}

/// The service of [`TraceIdentityLayer`].
#[derive(Debug, Clone)]
pub struct TraceIdentity<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for TraceIdentity<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let identity = Source::lookup(req.extensions());
        let span =
            mtls::observe::peer_span(identity.as_ref().and_then(|s| s.identity()).map(|a| &**a));
        let future = span.in_scope(|| self.inner.call(req));
        future.instrument(span)
    }
}
