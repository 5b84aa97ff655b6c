//! # mtls-tonic: mutual TLS for tonic gRPC servers and channels
//!
//! tonic's own TLS takes no custom rustls config and reloads nothing; this crate is the
//! bring-your-own transport, built on the `mtls` core like the other adapters:
//!
//! * [`TlsIncoming`] feeds `tonic::transport::Server::serve_with_incoming` (and
//!   `_shutdown`) from an [`mtls::TlsListener`] (handshakes off the accept path, with the
//!   timeout and caps). Each connection's tonic connect info is the core's
//!   [`mtls::ConnectionInfo`], so handlers, interceptors and tower layers read the
//!   client's identity with [`RequestExt`] (`request.peer_identity()`). See
//!   [`server`](mod@server), and its notes on `Request::remote_addr`
//!   ([`TcpConnectInfoLayer`]) and on `max_connection_age`.
//! * [`MethodPolicyLayer`] applies an [`mtls::Policy`] per `/package.Service/Method` or
//!   `/package.Service/*`: `UNAUTHENTICATED` without a certificate, `PERMISSION_DENIED`
//!   when denied (the rule only in the server log). See [`policy`].
//! * [`ChannelConnector`] makes `Endpoint::connect_with_connector` (and `_lazy`) speak
//!   mTLS with an [`mtls::Client`]: h2 ALPN, the server checked by host name and the
//!   client's server policy, and a rotating client certificate that reaches each new
//!   connection without rebuilding the `Channel`; make its `Endpoint` with [`endpoint`].
//!   See [`connector`], including why the endpoint's URI says `http` and why tonic's
//!   load-balanced channels cannot use the connector.
//!
//! ```no_run
//! use mtls::{Policy, TlsListener};
//! use mtls_tonic::{ChannelConnector, MethodPolicyLayer, TlsIncoming};
//!
//! # async fn run(routes: tonic::service::Routes) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // Server: any client of the CA may connect; only CN `admin` may call Admin.
//! let server = mtls::Server::builder()
//!     .identity("server.crt", "server.key")
//!     .client_ca("ca.crt")
//!     .policy(Policy::any_verified())
//!     .alpn(["h2"])
//!     .build()?;
//! let tcp = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
//! let incoming = TlsIncoming::new(TlsListener::new(tcp, server.acceptor())?);
//! let policy = MethodPolicyLayer::new()
//!     .rule("/mtls.examples.v1.Identity/Admin", Policy::common_name(["admin"]))?;
//! tokio::spawn(
//!     tonic::transport::Server::builder()
//!         .layer(policy)
//!         .add_routes(routes)
//!         .serve_with_incoming(incoming),
//! );
//!
//! // Client: a channel whose new connections present the client certificate in force.
//! let client = mtls::Client::builder()
//!     .identity("client.crt", "client.key")
//!     .ca("ca.crt")
//!     .build()?;
//! let channel = mtls_tonic::endpoint("https://localhost:50051")?
//!     .connect_with_connector(ChannelConnector::new(&client))
//!     .await?;
//! # let _ = channel; Ok(()) }
//! ```
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
pub mod policy;
mod request;
pub mod server;

pub use connector::{ChannelConnector, ConnectError, InvalidEndpoint, endpoint};
pub use policy::{InvalidMethodPattern, MethodPolicyLayer};
pub use request::RequestExt;
pub use server::{IncomingConnection, TcpConnectInfoLayer, TlsIncoming};
