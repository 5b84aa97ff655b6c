//! A tower layer that applies a [`Policy`] per gRPC method or service.
//!
//! [`MethodPolicyLayer`] maps request paths — `/package.Service/Method`, or every method
//! of a service with `/package.Service/*` — to an [`mtls::Policy`], checked against the
//! client identity of the connection (the core's [`ConnectionInfo`] that
//! [`TlsIncoming`](crate::TlsIncoming) puts on every request):
//!
//! - no client certificate (an anonymous client under
//!   [`ClientAuth::Optional`](mtls::ClientAuth::Optional)): `UNAUTHENTICATED`;
//! - the policy denies the identity: `PERMISSION_DENIED`. The rule that denied is logged
//!   through `tracing` (target `mtls_tonic`, level `warn`) and put into the response's
//!   extensions as an [`mtls::Denied`] for outer layers, never sent to the client;
//! - a request without the connection info (a server not fed by
//!   [`TlsIncoming`](crate::TlsIncoming)): `INTERNAL`, logged at `error`, so a
//!   misconfigured server fails closed. The layer reads the info of the default identity
//!   extractor (`ConnectionInfo<Arc<PeerIdentity>>`); behind an acceptor with a custom
//!   [`IdentityExtractor`](mtls::IdentityExtractor) it answers `INTERNAL` too.
//!
//! A method rule takes precedence over its service's rule; a path that no rule matches
//! goes through unless a [`fallback`](MethodPolicyLayer::fallback) policy is set. The
//! listener's handshake policy still applies first: this layer narrows it per method.
//!
//! ```
//! use mtls::Policy;
//! use mtls_tonic::MethodPolicyLayer;
//!
//! let layer = MethodPolicyLayer::new()
//!     .rule("/mtls.examples.v1.Identity/Admin", Policy::common_name(["admin"]))?
//!     .rule("/mtls.examples.v1.Identity/*", Policy::any_verified())?;
//! // tonic::transport::Server::builder().layer(layer).add_service(..)
//! # let _ = layer;
//! # Ok::<_, mtls_tonic::InvalidMethodPattern>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use mtls::{ConnectionInfo, Denied, Policy};
use pin_project_lite::pin_project;
use tonic::Status;
use tower_layer::Layer;
use tower_service::Service;

// === impl MethodPolicyLayer ===

/// Applies a [`Policy`] per gRPC method or service; see the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct MethodPolicyLayer {
    rules: Arc<Rules>,
}

#[derive(Debug, Clone, Default)]
struct Rules {
    methods: HashMap<String, Policy>,
    services: HashMap<String, Policy>,
    fallback: Option<Policy>,
}

impl Rules {
    fn policy_for(&self, path: &str) -> Option<&Policy> {
        if let Some(policy) = self.methods.get(path) {
            return Some(policy);
        }
        let service = path
            .strip_prefix('/')
            .and_then(|rest| rest.split_once('/'))
            .map(|(service, _)| service);
        service
            .and_then(|s| self.services.get(s))
            .or(self.fallback.as_ref())
    }
}

impl MethodPolicyLayer {
    /// A layer without rules: every request goes through until rules are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires `policy` for the methods `pattern` names: one method
    /// (`/package.Service/Method`) or every method of a service (`/package.Service/*`).
    /// A later rule for the same pattern replaces the earlier one.
    ///
    /// # Errors
    /// [`InvalidMethodPattern`] when `pattern` is not `/service/method` or
    /// `/service/*` with a non-empty service name without `/` or `*`.
    pub fn rule(mut self, pattern: &str, policy: Policy) -> Result<Self, InvalidMethodPattern> {
        let invalid = || InvalidMethodPattern {
            pattern: pattern.to_owned(),
        };
        let (service, method) = pattern
            .strip_prefix('/')
            .and_then(|rest| rest.split_once('/'))
            .ok_or_else(invalid)?;
        if service.is_empty()
            || method.is_empty()
            || service.contains('*')
            || method.contains('/')
            || (method.contains('*') && method != "*")
        {
            return Err(invalid());
        }
        let rules = Arc::make_mut(&mut self.rules);
        if method == "*" {
            rules.services.insert(service.to_owned(), policy);
        } else {
            rules.methods.insert(pattern.to_owned(), policy);
        }
        Ok(self)
    }

    /// Requires `policy` for every path that no [`rule`](Self::rule) matches (unknown
    /// methods included). Default: such requests go through.
    #[must_use]
    pub fn fallback(mut self, policy: Policy) -> Self {
        Arc::make_mut(&mut self.rules).fallback = Some(policy);
        self
    }

    /// The policy a request for `path` must satisfy, if any.
    pub fn policy_for(&self, path: &str) -> Option<&Policy> {
        self.rules.policy_for(path)
    }
}

impl<S> Layer<S> for MethodPolicyLayer {
    type Service = MethodPolicy<S>;

    fn layer(&self, inner: S) -> MethodPolicy<S> {
        MethodPolicy {
            inner,
            rules: self.rules.clone(),
        }
    }
}

// === impl InvalidMethodPattern ===

/// A [`MethodPolicyLayer::rule`] pattern that is neither `/service/method` nor
/// `/service/*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidMethodPattern {
    pattern: String,
}

impl InvalidMethodPattern {
    /// The pattern.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

impl fmt::Display for InvalidMethodPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a gRPC method pattern; write `/package.Service/Method` or \
             `/package.Service/*`",
            self.pattern
        )
    }
}

impl std::error::Error for InvalidMethodPattern {}

// === impl MethodPolicy ===

/// The service of [`MethodPolicyLayer`].
#[derive(Debug, Clone)]
pub struct MethodPolicy<S> {
    inner: S,
    rules: Arc<Rules>,
}

impl<S> MethodPolicy<S> {
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

/// A refusal: the status for the client, and the denial for outer layers.
type Refusal = (Status, Option<Denied>);

fn check(rules: &Rules, path: &str, ext: &http::Extensions) -> Result<(), Refusal> {
    let Some(policy) = rules.policy_for(path) else {
        return Ok(());
    };
    let Some(info) = ext.get::<ConnectionInfo>() else {
        tracing::error!(
            target: "mtls_tonic",
            method = path,
            "request without mtls connection info: serve this server with \
             mtls_tonic::TlsIncoming (and the default identity extractor)"
        );
        return Err((Status::internal("internal error"), None));
    };
    let Some(identity) = info.identity() else {
        tracing::debug!(target: "mtls_tonic", method = path, "refused an anonymous client");
        return Err((
            Status::unauthenticated("a client certificate is required for this method"),
            None,
        ));
    };
    policy.authorize(identity).map_err(|denied| {
        tracing::warn!(
            target: "mtls_tonic",
            method = path,
            subject = identity.subject(),
            rule = denied.rule(),
            reason = denied.reason(),
            "request refused by policy"
        );
        let status =
            Status::permission_denied("the client certificate is not allowed to call this method");
        (status, Some(denied))
    })
}

impl<S, B, RB> Service<http::Request<B>> for MethodPolicy<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    RB: Default,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match check(&self.rules, req.uri().path(), req.extensions()) {
            Ok(()) => ResponseFuture {
                kind: Kind::Inner {
                    future: self.inner.call(req),
                },
            },
            Err((status, denied)) => {
                let mut response = status.into_http();
                if let Some(denied) = denied {
                    response.extensions_mut().insert(denied);
                }
                ResponseFuture {
                    kind: Kind::Rejected {
                        response: Some(response),
                    },
                }
            }
        }
    }
}

pin_project! {
    /// The response future of [`MethodPolicy`].
    pub struct ResponseFuture<F, RB> {
        #[pin]
        kind: Kind<F, RB>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, RB> {
        Inner { #[pin] future: F },
        Rejected { response: Option<http::Response<RB>> },
    }
}

impl<F, RB> fmt::Debug for ResponseFuture<F, RB> {
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

impl<F, RB, E> Future for ResponseFuture<F, RB>
where
    F: Future<Output = Result<http::Response<RB>, E>>,
    RB: Default,
{
    type Output = Result<http::Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx),
            KindProj::Rejected { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| Status::internal("polled after completion").into_http()))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn method_rules_win_over_service_rules_and_fallback() {
        let layer = MethodPolicyLayer::new()
            .rule("/a.S/M", Policy::common_name(["m"]))
            .unwrap()
            .rule("/a.S/*", Policy::common_name(["s"]))
            .unwrap()
            .fallback(Policy::common_name(["f"]));
        let cn = |path: &str| layer.policy_for(path).map(ToString::to_string);
        assert_eq!(cn("/a.S/M"), Some(Policy::common_name(["m"]).to_string()));
        assert_eq!(cn("/a.S/N"), Some(Policy::common_name(["s"]).to_string()));
        assert_eq!(cn("/b.T/M"), Some(Policy::common_name(["f"]).to_string()));
        assert!(MethodPolicyLayer::new().policy_for("/a.S/M").is_none());
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "", "/", "a.S/M", "/a.S", "/a.S/", "//M", "/*/M", "/a.S/M/x", "/a.S/M*",
        ] {
            let err = MethodPolicyLayer::new()
                .rule(bad, Policy::any_verified())
                .unwrap_err();
            assert_eq!(err.pattern(), bad);
        }
    }
}
