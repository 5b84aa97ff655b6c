//! # mtls-axum: mutual TLS for axum
//!
//! Serve an axum [`Router`](axum::Router) over mutual TLS with [`mtls`], and read the
//! client's verified identity in handlers:
//!
//! - [`MtlsListener`]: an [`axum::serve::Listener`] that completes mTLS handshakes off
//!   the accept path (each in its own task, with a timeout and a cap on concurrent
//!   handshakes), so `axum::serve(listener, …)` — with graceful shutdown — serves HTTP/1.1
//!   and HTTP/2 (by ALPN, see [`mtls::HTTP_ALPN`]) over mTLS.
//! - [`MtlsRouterExt::into_mtls_service`]: serves the router so that every request carries
//!   its connection's [`TlsConnectInfo`] (identity, principal, remote address, ALPN).
//! - Extractors: [`ClientIdentity`] (401 without a client certificate;
//!   `Option<ClientIdentity>` for routes open to anonymous clients) and [`Principal<P>`] for
//!   the application's own principal type from a custom
//!   [`IdentityExtractor`](mtls::IdentityExtractor).
//! - [`RequirePolicyLayer`]: a tower layer applying an [`mtls::Policy`] to a route or a
//!   router — 401 without a certificate, 403 when denied (the rule only in the server log).
//! - `MockPeerIdentity` (feature `test-util`): a layer for handler unit tests without TLS.
//!   It never overrides a real connection's identity, and being behind a feature it
//!   cannot end up in a production build by accident.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use mtls::{ClientAuth, Policy, Server};
//! use mtls_axum::{ClientIdentity, MtlsListener, MtlsRouterExt, RequirePolicyLayer};
//!
//! async fn whoami(peer: ClientIdentity) -> String {
//!     format!("you are {}", peer.subject())
//! }
//!
//! async fn public(peer: Option<ClientIdentity>) -> String {
//!     match peer {
//!         Some(peer) => format!("hello {}", peer.subject()),
//!         None => "hello, anonymous".to_owned(),
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let server = Server::builder()
//!         .identity("server.crt", "server.key")
//!         .client_ca("ca.crt")
//!         // Clients without a certificate may connect; routes decide.
//!         .client_auth(ClientAuth::Optional)
//!         .policy(Policy::any_verified())
//!         .alpn(mtls::HTTP_ALPN)
//!         .build()?;
//!
//!     let app = Router::new()
//!         .route("/whoami", get(whoami))
//!         .route(
//!             "/admin",
//!             get(|| async { "welcome, admin" })
//!                 .layer(RequirePolicyLayer::new(Policy::common_name(["admin"]))),
//!         )
//!         .route("/public", get(public));
//!
//!     let listener = MtlsListener::bind("0.0.0.0:8443", &server).await?;
//!     axum::serve(listener, app.into_mtls_service())
//!         .with_graceful_shutdown(async { let _ = tokio::signal::ctrl_c().await; })
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! ## How the identity reaches handlers
//!
//! The extractors and [`RequirePolicyLayer`] read the connection's info from the request,
//! in this order:
//!
//! 1. axum's [`ConnectInfo<TlsConnectInfo>`](axum::extract::ConnectInfo), put there when the
//!    router is served over an [`MtlsListener`] with
//!    [`into_mtls_service`](MtlsRouterExt::into_mtls_service) (or, equivalently,
//!    `into_make_service_with_connect_info::<TlsConnectInfo>()`), or by
//!    by `MockPeerIdentity` in tests (only where none of these is present);
//! 2. the core's [`mtls::ConnectionInfo`], which `mtls_hyper::HttpServer` puts on every
//!    request (see *Fewer tasks per connection* below) — under a custom
//!    [`IdentityExtractor`](mtls::IdentityExtractor) beside the
//!    `mtls::ConnectionInfo<P>` of its own `P`, which [`Principal<P>`] reads;
//! 3. a bare `Arc<mtls::PeerIdentity>` request extension, inserted by other server loops.
//!
//! A request with connection info and no identity comes from an anonymous client (under
//! [`ClientAuth::Optional`](mtls::ClientAuth::Optional)): 401 where an identity is
//! required, `None` for `Option<…>`. A request with no connection info at all means the
//! server was misconfigured — typically plain `axum::serve(listener, app)` without
//! `into_mtls_service()` — so the extractors and the policy layer answer **500** and log
//! what to call, instead of silently treating every client as anonymous.
//!
//! ## Fewer tasks per connection
//!
//! `axum::serve` takes each finished connection from the listener through a queue and
//! spawns a task to serve it, beside the task that ran the handshake. `mtls-hyper`'s
//! server serves each connection in its handshake task instead, and puts the core's
//! [`mtls::ConnectionInfo`] on every request, so a router using this crate's extractors
//! and layers can be served with
//! `mtls_hyper::HttpServer::new(listener).serve_tower(app)`: one task and no queue per
//! connection, which the load bench (`benches/README.md`) measures as a few percent less
//! CPU per short connection. Anonymous clients under `ClientAuth::Optional` are answered
//! as over an [`MtlsListener`] (with the caveat above for custom extractors). What it does
//! not give: axum's `ConnectInfo<TlsConnectInfo>` (handlers read `mtls::ConnectionInfo`
//! from the request's extensions instead, e.g. with axum's `Extension` extractor).
//!
//! ## Where to authorize
//!
//! The [`Policy`](mtls::Policy) given to [`ServerBuilder::policy`](mtls::ServerBuilder::policy)
//! runs during the handshake: a refused client never reaches HTTP and only sees a TLS
//! alert. [`RequirePolicyLayer`] runs per request, so different routes on one listener can
//! have different rules and refusals are HTTP 401/403. Both can be combined.
//!
//! ## Naming
//!
//! The core crate's types keep their plain names (`mtls::Server`, `mtls::Client`,
//! `mtls::PeerIdentity`, `mtls::ConnectionInfo`), and no adapter reuses one. This
//! crate's types are named for their role in axum: [`MtlsListener`] (an axum
//! `Listener`), [`MtlsRouterExt`], [`TlsConnectInfo`] (axum's `ConnectInfo` of a
//! connection, built on `mtls::ConnectionInfo`), and the extractor [`ClientIdentity`],
//! which derefs to `mtls::PeerIdentity` rather than shadowing it. What the adapters share
//! lives once in the core: the ALPN list [`mtls::HTTP_ALPN`] and the connection info.
//!
//! ## Features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `aws-lc-rs` | yes | aws-lc-rs as the crypto provider (forwarded to `mtls`) |
//! | `ring` | no | ring as the crypto provider |
//! | `test-util` | no | `MockPeerIdentity`, for handler tests (enable it in `[dev-dependencies]` only) |

#![deny(missing_docs)]

mod extract;
mod forwarded;
mod listener;
#[cfg(feature = "test-util")]
mod mock;
mod policy;
mod trace;

pub use extract::{ClientIdentity, IdentityRejection, Principal};
pub use forwarded::{ForwardedBy, ForwardedIdentity, ForwardedIdentityLayer};
pub use listener::{MtlsListener, MtlsRouterExt, MtlsStream, TlsConnectInfo};
#[cfg(feature = "test-util")]
pub use mock::{MockPeerIdentity, MockPeerIdentityService};
pub use policy::{RequirePolicy, RequirePolicyLayer, ResponseFuture};
pub use trace::{TraceIdentity, TraceIdentityLayer};
