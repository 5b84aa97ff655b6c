//! # mtls: mutual TLS for Rust services and clients, correct by default
//!
//! `mtls` turns the PEM files an `openssl`-based guide leaves you with into rustls
//! [`ServerConfig`](rustls::ServerConfig)s and [`ClientConfig`](rustls::ClientConfig)s
//! that require and verify client certificates, authorize the peer with a [`Policy`]
//! *during the handshake*, hand the application the peer's [`PeerIdentity`], and reload
//! certificates, keys, CAs, CRLs and policies without dropping a connection.
//!
//! ```no_run
//! use mtls::{Policy, Server};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::builder()
//!     .identity("server.crt", "server.key")
//!     .client_ca("ca.crt")
//!     .policy(Policy::any_verified())
//!     .build()?;
//! let tcp = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
//! let mut listener = mtls::TlsListener::new(tcp, server.acceptor())?;
//! loop {
//!     let conn = listener.accept().await;
//!     let who = conn.peer.identity().map(|id| id.subject().to_owned());
//!     println!("{who:?} connected");
//! }
//! # }
//! ```
//!
//! ## Features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `aws-lc-rs` | yes | aws-lc-rs as the crypto provider |
//! | `ring` | no | ring as the crypto provider (`--no-default-features --features ring`) |
//! | `watch` | yes | file watching for hot reload ([`ReloadHandle::watch`]) |
//! | `serde` | no | `Serialize` for [`PeerIdentity`] |
//!
//! ## Errors
//!
//! Loading and building return [`Error`], whose messages name the file, say what is wrong
//! and how to fix it. Handshake rejections are logged through `tracing` (target
//! `mtls::verify`) with a [`Rejection`] reason class; the peer only sees a TLS alert.

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod acceptor;
mod cache;
pub mod client;
mod connection;
mod dn;
mod error;
pub mod identity;
pub mod listener;
mod material;
pub mod pem;
pub mod policy;
pub mod provider;
pub mod reload;
pub mod server;
mod snapshot;
mod spec;
mod spiffe;
pub mod verify;
#[cfg(feature = "watch")]
pub mod watch;

pub use acceptor::{Acceptor, HandshakeError};
pub use client::{Client, ClientBuilder};
pub use connection::ConnectionInfo;
pub use error::{Error, Result, Role};
pub use identity::{
    DefaultExtractor, ExtractError, IdentityExtractor, PeerIdentity, SpiffeId, SpiffeIdError,
};
pub use listener::{Accepted, ListenerOptions, ListenerStats, TlsListener};
pub use policy::{Authorize, Denied, Policy, PolicyError};
pub use reload::{ReloadEvent, ReloadHandle, ReloadStatus};
pub use server::{ClientAuth, Server, ServerBuilder};
pub use spec::TlsVersion;
pub use verify::Rejection;
#[cfg(feature = "watch")]
pub use watch::{WatchGuard, WatchOptions};

/// The ALPN protocols of an HTTP server or client: HTTP/2 first, then HTTP/1.1.
///
/// Give them to [`ServerBuilder::alpn`] (without them every client speaks HTTP/1.1, or
/// HTTP/2 only with prior knowledge) or [`ClientBuilder::alpn`]. The HTTP adapters
/// (mtls-axum, mtls-hyper, mtls-reqwest) use this list as their default.
///
/// ```no_run
/// # fn main() -> Result<(), mtls::Error> {
/// let server = mtls::Server::builder()
///     .identity("server.crt", "server.key")
///     .client_ca("ca.crt")
///     .policy(mtls::Policy::any_verified())
///     .alpn(mtls::HTTP_ALPN)
///     .build()?;
/// # let _ = server; Ok(()) }
/// ```
pub const HTTP_ALPN: [&str; 2] = ["h2", "http/1.1"];

/// Re-export of the rustls version this crate builds on.
pub use rustls;
