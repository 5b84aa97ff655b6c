//! A tower layer that applies a [`Policy`] to a route or a router.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use http::{Request, StatusCode};
use mtls::Policy;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::extract::{IdentityRejection, Source};

/// Applies a [`Policy`] to every request of the routes it wraps: 401 when the client
/// presented no certificate, 403 when the policy denies it, otherwise the request goes
/// through.
///
/// The rule that denied is logged through `tracing` (target `mtls_axum`, level `warn`)
/// and put into the response's extensions as an [`IdentityRejection::Forbidden`], never
/// sent to the client. It reads the same connection info as the extractors (see the
/// [crate docs](crate#how-the-identity-reaches-handlers)), and like them answers 500 when
/// a request carries none (a router served by plain `axum::serve` without
/// [`into_mtls_service`](crate::MtlsRouterExt::into_mtls_service)).
///
/// With [`ClientAuth::Optional`](mtls::ClientAuth::Optional) and the handshake policy set
/// to [`Policy::any_verified`], this gives per-route rules on one listener:
///
/// ```
/// use axum::{Router, routing::get};
/// use mtls::Policy;
/// use mtls_axum::RequirePolicyLayer;
///
/// let app: Router = Router::new()
///     .route(
///         "/admin",
///         get(|| async { "admin area" })
///             .layer(RequirePolicyLayer::new(Policy::common_name(["admin"]))),
///     )
///     .route("/public", get(|| async { "open to everyone" }));
///
/// // Or for every route of a router (`route_layer` keeps 404 for unknown paths):
/// let api: Router = Router::new()
///     .route("/orders", get(|| async { "orders" }))
///     .route_layer(RequirePolicyLayer::new("spiffe:prod.example.org".parse::<Policy>()?));
/// # Ok::<_, mtls::PolicyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RequirePolicyLayer {
    policy: Policy,
}

impl RequirePolicyLayer {
    /// A layer requiring `policy`.
    pub fn new(policy: Policy) -> Self {
        Self { policy }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl<S> Layer<S> for RequirePolicyLayer {
    type Service = RequirePolicy<S>;

    fn layer(&self, inner: S) -> RequirePolicy<S> {
        RequirePolicy {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service of [`RequirePolicyLayer`].
#[derive(Debug, Clone)]
pub struct RequirePolicy<S> {
    inner: S,
    policy: Policy,
}

impl<S> RequirePolicy<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, policy: Policy) -> Self {
        Self { inner, policy }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

fn check(req_ext: &http::Extensions, policy: &Policy) -> Result<(), IdentityRejection> {
    let source = Source::find(req_ext)?;
    let Some(identity) = source.identity() else {
        tracing::debug!(target: "mtls_axum", "refused an anonymous client: no certificate");
        return Err(IdentityRejection::NoCertificate);
    };
    policy.authorize(identity).map_err(|denied| {
        tracing::warn!(
            target: "mtls_axum",
            subject = identity.subject(),
            rule = denied.rule(),
            reason = denied.reason(),
            "request refused by policy"
        );
        IdentityRejection::Forbidden(denied)
    })
}

impl<S, B> Service<Request<B>> for RequirePolicy<S>
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

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match check(req.extensions(), &self.policy) {
            Ok(()) => ResponseFuture {
                kind: Kind::Inner {
                    future: self.inner.call(req),
                },
            },
            Err(rejection) => ResponseFuture {
                kind: Kind::Rejected {
                    response: Some(rejection.into_response()),
                },
            },
        }
    }
}

pin_project! {
    /// The response future of [`RequirePolicy`].
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Rejected { response: Option<Response> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn inner(future: F) -> Self {
        Self {
            kind: Kind::Inner { future },
        }
    }

    pub(crate) fn rejected(response: Response) -> Self {
        Self {
            kind: Kind::Rejected {
                response: Some(response),
            },
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<R, E>>,
    R: IntoResponse,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx).map_ok(IntoResponse::into_response),
            KindProj::Rejected { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response()))),
        }
    }
}
