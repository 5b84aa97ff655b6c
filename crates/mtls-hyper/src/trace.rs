//! A service wrapper that runs each request in a `tracing` span naming the client.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use mtls::PeerIdentity;
use tracing::Instrument;
use tracing::instrument::Instrumented;

/// Runs each request of the service it wraps in the span of
/// [`mtls::observe::peer_span`] (`mtls.peer`, with `peer.subject`, `peer.spiffe_id`,
/// `peer.serial`, or `peer.anonymous`), so the events logged while serving it, access
/// logs included, say who called. Costs nothing when no subscriber wants the span.
///
/// A hyper service and a tower service, for [`HttpServer::serve`](crate::HttpServer::serve)
/// and [`serve_tower`](crate::HttpServer::serve_tower):
///
/// ```no_run
/// # async fn run(listener: mtls::TlsListener) {
/// use hyper::service::service_fn;
/// use mtls_hyper::{HttpServer, TraceIdentity};
///
/// let service = service_fn(|_req| async {
///     tracing::info!("request"); // logged inside `mtls.peer{peer.subject=…}`
///     Ok::<_, std::convert::Infallible>(hyper::Response::new(String::from("hello")))
/// });
/// HttpServer::new(listener).serve(TraceIdentity::new(service)).await;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TraceIdentity<S> {
    inner: S,
}

impl<S> TraceIdentity<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

fn span_of<B>(req: &Request<B>) -> tracing::Span {
    mtls::observe::peer_span(req.extensions().get::<Arc<PeerIdentity>>().map(|a| &**a))
}

impl<S, B> hyper::service::Service<Request<B>> for TraceIdentity<S>
where
    S: hyper::service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn call(&self, req: Request<B>) -> Self::Future {
        let span = span_of(&req);
        let future = span.in_scope(|| self.inner.call(req));
        future.instrument(span)
    }
}

impl<S, B> tower_service::Service<Request<B>> for TraceIdentity<S>
where
    S: tower_service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let span = span_of(&req);
        let future = span.in_scope(|| self.inner.call(req));
        future.instrument(span)
    }
}
