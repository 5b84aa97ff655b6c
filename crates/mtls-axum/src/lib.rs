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
//! - Extractors: [`PeerIdentity`] (401 without a client certificate;
//!   `Option<PeerIdentity>` for routes open to anonymous clients) and [`Principal<P>`] for
//!   the application's own principal type from a custom
//!   [`IdentityExtractor`](mtls::IdentityExtractor).
//! - [`RequirePolicyLayer`]: a tower layer applying an [`mtls::Policy`] to a route or a
//!   router — 401 without a certificate, 403 when denied (the rule only in the server log).
//! - [`MockPeerIdentity`]: a layer for handler unit tests without TLS.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use mtls::{ClientAuth, Policy, Server};
//! use mtls_axum::{MtlsListener, MtlsRouterExt, PeerIdentity, RequirePolicyLayer};
//!
//! async fn whoami(peer: PeerIdentity) -> String {
//!     format!("you are {}", peer.subject())
//! }
//!
//! async fn public(peer: Option<PeerIdentity>) -> String {
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
//! axum hands the connection to the router only through
//! [`Connected`](axum::extract::connect_info::Connected), so the router must be served
//! with [`into_mtls_service`](MtlsRouterExt::into_mtls_service) (or, equivalently,
//! `into_make_service_with_connect_info::<TlsConnectInfo>()`). If it is served with plain
//! `axum::serve(listener, app)`, the extractors and the policy layer cannot tell an
//! anonymous client from a misconfigured server, so they answer **500** and log what to
//! call, instead of silently treating every client as anonymous.
//!
//! The extractors also accept a bare `Arc<mtls::PeerIdentity>` request extension, for
//! routers served by another loop that inserts one (a request without it still answers
//! 500 there, as no connection info says the client was anonymous). [`Principal<P>`]
//! then reads a request extension of type `P`.
//!
//! ## Fewer tasks per connection
//!
//! `axum::serve` takes each finished connection from the listener through a queue and
//! spawns a task to serve it, beside the task that ran the handshake. `mtls-hyper`'s
//! server serves each connection in its handshake task instead, and inserts the identity
//! and the principal as request extensions, so a router using this crate's extractors
//! and layers can be served with
//! `mtls_hyper::HttpServer::new(listener).serve_tower(app)`: one task and no queue per
//! connection, which the load bench (`benches/README.md`) measures as a few percent less
//! CPU per short connection. What it does not give: [`TlsConnectInfo`] (ALPN, resumption),
//! and anonymous clients under `ClientAuth::Optional`, which the extractors answer with 500
//! there, as said above.
//!
//! ## Where to authorize
//!
//! The [`Policy`](mtls::Policy) given to [`ServerBuilder::policy`](mtls::ServerBuilder::policy)
//! runs during the handshake: a refused client never reaches HTTP and only sees a TLS
//! alert. [`RequirePolicyLayer`] runs per request, so different routes on one listener can
//! have different rules and refusals are HTTP 401/403. Both can be combined.
//!
//! ## Features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `aws-lc-rs` | yes | aws-lc-rs as the crypto provider (forwarded to `mtls`) |
//! | `ring` | no | ring as the crypto provider |

#![deny(missing_docs)]

mod extract;
mod listener;
mod mock;
mod policy;

pub use extract::{IdentityRejection, PeerIdentity, Principal};
pub use listener::{MtlsListener, MtlsRouterExt, MtlsStream, TlsConnectInfo};
pub use mock::{MockPeerIdentity, MockPeerIdentityService};
pub use policy::{RequirePolicy, RequirePolicyLayer, ResponseFuture};
