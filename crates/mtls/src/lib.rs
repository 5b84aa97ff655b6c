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
//! | `pkcs11` | no | `pkcs11::Pkcs11Key`: keys in a PKCS#11 token (HSM), through the [`signer`] hook |
//! | `fetch` | no | fetch CRLs from URLs and distribution points, OCSP (a plain-HTTP client; see [`revocation`]) |
//!
//! ## Errors
//!
//! Loading and building return [`Error`], whose messages name the file, say what is wrong
//! and how to fix it. Handshake rejections are logged through `tracing` (target
//! `mtls::verify`) with a [`Rejection`] reason class; the peer only sees a TLS alert.
//!
//! ## Resumption
//!
//! rustls does not verify the peer again when a session is resumed, and a peer controls
//! the timing of every message it sends: it can hold back its Finished while the operator
//! removes a CA, and a server can send a session ticket long after the handshake. So:
//!
//! - **Server.** Each handshake runs on the rustls config of the snapshot in force when it
//!   starts. Its session store is shared only by snapshots with the same CAs, CRLs and
//!   policy (the same *trust epoch*); any change of those, and every `set_policy`, starts a
//!   new one, so a session is never offered under another trust. And when the handshake
//!   ends, [`Acceptor`] admits the connection against the snapshot in force *then*: a
//!   resumed session, or a handshake that spanned a trust change, is checked again (path
//!   validation unless this exact chain passed it under that snapshot and has not expired
//!   since, then the policy) and refused with [`HandshakeError::Refused`] if the trust in
//!   force does not admit it. We chose to check at hand-out rather than only binding
//!   sessions to the snapshot that verified them because rustls gives a verifier no handle
//!   on the connection it verifies, and only the acceptor sees the connection whole: the
//!   check there covers TLS 1.3 tickets, TLS 1.2 session IDs and delayed Finished messages
//!   alike, and costs one cache lookup and one policy evaluation per resumed connection.
//! - **Client.** Each snapshot has its own session store, and rustls only resumes a
//!   session with the verifier and certificate resolver that made it, so a ticket that
//!   reaches an old connection after a reload is never offered by a later snapshot.
//!   [`Client::connect`] and [`Client::handshake`] also check the server again when a
//!   reload happened during the handshake.
//! - **Configs for other loops.** [`Server::config`] and [`Client::config`] follow reloads
//!   (their resolver and verifier read the snapshot in force at each handshake) and never
//!   resume: a loop that keeps one config cannot check a resumed session against the
//!   trust in force. [`Server::current_config`] / [`Client::current_config`] are the
//!   snapshot's own configs, with resumption, for loops that take one per connection.
//!
//! The generation on a connection's identity ([`PeerIdentity::generation`],
//! [`ConnectionInfo::generation`]) is the one that verified it.
//!
//! ## Architecture
//!
//! Data flows one way: **files → spec → snapshot → handshake → connection info →
//! request**.
//!
//! | module | role |
//! |---|---|
//! | [`pem`] | reads certificates, keys and CRLs in every form OpenSSL writes |
//! | `keys`, [`pkcs12`] | decrypts encrypted keys with a [`Password`]; reads PKCS#12 files |
//! | `spec` | what a builder collected (paths, options, policy): plain data shared by both sides; the builders' common setters are written once |
//! | `material` | preflight checks run at build and reload (key matches certificate, EKU, chain, CRL signatures, dates) |
//! | `snapshot` | the pure loaders: spec → one immutable snapshot per side (certified key, WebPki verifier, policy, generation, trust epoch, the rustls config bound to them) |
//! | [`reload`] | publishes each new snapshot with one `ArcSwap` store, keeps the last good one, reports events; [`watch`](mod@watch) and SIGHUP trigger it |
//! | [`revocation`] | fetched CRLs (URLs, distribution points) kept on disk as last good, OCSP: the design of where the network wait happens |
//! | [`verify`] | the snapshot's verifiers: WebPki first, then the [`policy`]; rejection classes and their log events |
//! | `cache` | per snapshot, the identities of the exact chains its verifier accepted |
//! | [`acceptor`] | one server handshake with a timeout, then admission against the snapshot in force |
//! | [`listener`] | [`TlsListener`]: handshakes concurrently off the accept path, with a cap |
//! | `connection` | [`ConnectionInfo`]: identity, principal, address, generation, ALPN, resumption; what the adapters put on each request |
//! | [`forwarded`] | decodes the client certificate a TLS-terminating proxy forwards in a header (RFC 9440, Envoy XFCC, nginx, HAProxy, Apache, Traefik, AWS ALB) |
//! | [`identity`], [`policy`] | [`PeerIdentity`] parsed once per chain; the rules that authorize it (DN handling shared in `dn`) |
//! | [`server`], [`client`] | the public builders and handles; [`Client::connect`] |

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod acceptor;
mod cache;
pub mod client;
mod connection;
mod dn;
mod error;
pub mod forwarded;
pub mod identity;
mod keys;
pub mod listener;
mod material;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod observe;
pub mod pem;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
pub mod policy;
pub mod provider;
pub mod reload;
pub mod revocation;
pub mod server;
pub mod signer;
mod snapshot;
mod spec;
mod spiffe;
pub mod verify;
#[cfg(feature = "watch")]
pub mod watch;

pub use acceptor::{Acceptor, HandshakeError};
pub use client::{Client, ClientBuilder, ConnectTimeout};
pub use connection::ConnectionInfo;
pub use error::{Error, Result, Role};
pub use identity::{
    DefaultExtractor, ExtractError, IdentityExtractor, PeerIdentity, SpiffeId, SpiffeIdError,
};
pub use keys::{Password, pkcs12};
pub use listener::{Accepted, ListenerOptions, ListenerStats, TlsListener};
pub use policy::{Authorize, Denied, Policy, PolicyError};
pub use reload::{Health, HealthError, ReloadEvent, ReloadHandle, ReloadStatus};
pub use server::{ClientAuth, Server, ServerBuilder};
pub use spec::{Identity, TlsVersion};
pub use verify::Rejection;
#[cfg(feature = "watch")]
pub use watch::{WatchGuard, WatchOptions};
/// Re-export of `zeroize::Zeroizing`, which [`Password::from_fn`] callbacks return.
pub use zeroize::Zeroizing;

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
