//! # mtls-hyper: mutual TLS for hyper 1.x servers and clients
//!
//! * [`HttpServer`] serves HTTP/1.1 and HTTP/2 (by ALPN) over an [`mtls::TlsListener`],
//!   whose handshakes run off the accept path with a timeout and a cap, and puts the
//!   connection's [`mtls::ConnectionInfo`] (the client's identity or `None` for an
//!   anonymous client, the application's principal, address, ALPN, …) into every
//!   request's extensions. It serves hyper services and `tower` services (axum, tonic),
//!   and shuts down gracefully. See [`server`](mod@server).
//! * [`Connector`] makes hyper-util's legacy client speak mTLS with an [`mtls::Client`]:
//!   rotating client certificate, server checked against the URI's host and the client's
//!   server policy, the server's identity on every response as [`ServerIdentity`]. See
//!   [`connector`].
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http_body_util::{BodyExt, Empty};
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use mtls::{ConnectionInfo, Policy, TlsListener};
//! use mtls_hyper::{Connector, HttpServer, ServerIdentity};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let pki = mtls_testing::TestPki::new();
//! # let (_, server_files) = pki.server("localhost");
//! # let (_, client_files) = pki.client("alice");
//! # let (server_cert, server_key, ca) = (&server_files.cert, &server_files.key, pki.ca_file());
//! # let (client_cert, client_key) = (&client_files.cert, &client_files.key);
//! // A server that accepts only the client certificate with CN `alice`.
//! let server = mtls::Server::builder()
//!     .identity(server_cert, server_key)
//!     .client_ca(&ca)
//!     .policy("cn:alice".parse::<Policy>()?)
//!     .alpn(mtls::HTTP_ALPN)
//!     .build()?;
//! let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let listener = TlsListener::new(tcp, server.acceptor())?;
//! let port = listener.local_addr().port();
//!
//! let whoami = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
//!     let cn = req
//!         .extensions()
//!         .get::<ConnectionInfo>()
//!         .and_then(|info| info.identity()?.common_name().map(str::to_owned));
//!     Ok::<_, Infallible>(http::Response::new(cn.unwrap_or_default()))
//! });
//! tokio::spawn(HttpServer::new(listener).serve(whoami));
//!
//! // A hyper client with alice's certificate.
//! let alice = mtls::Client::builder()
//!     .identity(client_cert, client_key)
//!     .ca(&ca)
//!     .build()?;
//! let client = Client::builder(TokioExecutor::new())
//!     .build::<_, Empty<bytes::Bytes>>(Connector::new(&alice));
//!
//! let response = client.get(format!("https://localhost:{port}/").parse()?).await?;
//! assert_eq!(response.version(), http::Version::HTTP_2);
//! let server_id = response.extensions().get::<ServerIdentity>();
//! assert_eq!(server_id.and_then(|s| s.common_name()), Some("localhost"));
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "alice");
//! # Ok(()) }
//! ```
//!
//! ## Naming
//!
//! The core crate's types keep their plain names (`mtls::Server`, `mtls::Client`,
//! `mtls::PeerIdentity`, `mtls::ConnectionInfo`), and no adapter reuses one: this crate's
//! serve loop is [`HttpServer`] (the core's `mtls::Server` is the TLS side it serves
//! over), its client side is [`Connector`], and the server's identity on a response is
//! [`ServerIdentity`]. What the adapters share lives once in the core: the ALPN list
//! [`mtls::HTTP_ALPN`] and the connection info [`mtls::ConnectionInfo`], which mtls-axum's
//! extractors read from requests served here.
//!
//! ## Features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `aws-lc-rs` | yes | aws-lc-rs as mtls' crypto provider |
//! | `ring` | no | ring as mtls' crypto provider |

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod connector;
mod forwarded;
pub mod server;
mod trace;

pub use connector::{ConnectError, Connector, ServerIdentity, TlsConnection};
pub use forwarded::{ForwardedIdentity, ResponseFuture as ForwardedResponseFuture};
pub use server::HttpServer;
pub use trace::TraceIdentity;
