//! # mtls-reqwest: reqwest clients over an [`mtls::Client`], whose certificate rotates in place
//!
//! Build an [`mtls::Client`] with the core's builder (client certificate and key, CAs,
//! CRLs, server policy, TLS versions, ALPN, crypto provider, session cache, expiry
//! warning; see [`mtls::ClientBuilder`]), then take reqwest's side from it:
//!
//! - [`builder`]: a [`reqwest::ClientBuilder`] that presents the client certificate,
//!   trusts only the client's CAs, authorizes the server with its policy (e.g. its SPIFFE
//!   ID), and offers ALPN [`mtls::HTTP_ALPN`] unless the `mtls::Client` was built with its
//!   own ALPN. You keep adding your own settings (timeouts, headers, …) before `build()`.
//! - [`RotatingClient`]: a reqwest client that moves to a fresh connection pool after each
//!   reload, so no request reuses a connection opened under an older certificate, and that
//!   resumes TLS sessions within a generation.
//! - [`classify`]: tells the TLS failures apart.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mtls = mtls::Client::builder()
//!     .identity("client.crt", "client.key")
//!     .ca("ca.crt")
//!     .server_policy("spiffe:spiffe://prod.example.org/ns/api/sa/api".parse()?)
//!     .build()?;
//! let _watch = mtls.handle().watch()?; // rotate when the files change
//! let http = mtls_reqwest::builder(&mtls)
//!     .timeout(std::time::Duration::from_secs(10))
//!     .build()?;
//! let body = http.get("https://api.example.org/").send().await?.text().await?;
//! # let _ = body; Ok(()) }
//! ```
//!
//! Everything the core crate loads works here: PKCS#8, PKCS#1 and SEC1 keys, combined
//! certificate-and-key files, CA bundles, DER files, CRLs (see [`mtls::pem`]). Bad files
//! are refused by [`mtls::ClientBuilder::build`] with an [`mtls::Error`] that names the
//! file and says how to fix it. This crate repeats none of the core builder's setters.
//!
//! ## How it plugs into reqwest
//!
//! reqwest 0.13 accepts a finished rustls [`ClientConfig`]
//! through [`reqwest::ClientBuilder::tls_backend_preconfigured`]. It takes the config *by
//! value* and recognises it by type, so it must come from the same rustls version as
//! reqwest's (this crate pins both through the workspace; a mismatch shows up as a
//! "builder error" from `build()`, which this crate's tests would catch). reqwest does not
//! set ALPN on a preconfigured config, so this crate does: the `mtls::Client`'s ALPN
//! ([`ClientBuilder::alpn`](mtls::ClientBuilder::alpn)) when it has one, else
//! [`mtls::HTTP_ALPN`] (`h2`, `http/1.1`). Offer only `http/1.1` if you also call
//! reqwest's `http1_only()`: a server that picks `h2` gets HTTP/2 whatever reqwest was
//! told.
//!
//! ## HTTPS only
//!
//! The builders set [`https_only(true)`](reqwest::ClientBuilder::https_only): a request
//! to an `http://` URL fails with a builder error before any byte is sent, rather than
//! going out in clear without the client certificate, with its query string and
//! headers readable on the wire. Opt out per client with `.https_only(false)`.
//!
//! ## Rotation
//!
//! The config handed to reqwest by [`builder`] is a clone of the core's
//! [following config](mtls::Client::config), and the clone shares the core's certificate
//! resolver and server verifier, which read swappable material. A reload through the
//! client's [`ReloadHandle`](mtls::ReloadHandle) (by
//! [`reload`](mtls::ReloadHandle::reload), file watching with
//! [`watch`](mtls::ReloadHandle::watch), or SIGHUP) therefore takes effect without
//! rebuilding the [`reqwest::Client`]:
//!
//! - **New connections** present the new certificate. The config reqwest keeps never
//!   resumes a TLS session: a session made under the old certificate would carry the old
//!   identity, and a session ticket a server sends on an old connection after the reload
//!   would let a new connection skip the new CAs or server policy. [`RotatingClient`]
//!   does resume, safely: each of its generations uses the core's config of that
//!   generation ([`mtls::Client::current_config`]), whose sessions no later generation
//!   offers.
//! - **Pooled connections are left alone**: requests in flight finish, and idle
//!   keep-alive connections (one HTTP/2 connection can carry many requests for a long
//!   time) go on being reused under the identity they were opened with, until they close
//!   or sit idle longer than reqwest's
//!   [`pool_idle_timeout`](reqwest::ClientBuilder::pool_idle_timeout) (90 s by default).
//!   Nothing is dropped at once.
//!
//! reqwest's public API cannot mark or evict one pooled connection (its connector layers
//! see an opaque, sealed connection type). When connections opened under an older
//! identity must not be reused, use a [`RotatingClient`]: it builds a fresh
//! `reqwest::Client` (a fresh pool) for the first request after each reload, so every
//! later request runs on a connection that presented the current certificate. Requests
//! already running on the old pool finish normally; its idle connections close once the
//! last clone of the old `reqwest::Client` is dropped. A blunter alternative is
//! `pool_max_idle_per_host(0)`, which opens a connection per request.
//!
//! ## Telling TLS failures apart
//!
//! [`classify`] maps a [`reqwest::Error`] to a [`TlsFailure`]: the server refused our
//! certificate, the server's certificate comes from an unknown CA, the server failed our
//! [`server_policy`](mtls::ClientBuilder::server_policy), and so on. See its docs for what
//! TLS 1.3 lets a client see when the server refuses it.
//!
//! ## Naming
//!
//! The core crate's types keep their plain names (`mtls::Server`, `mtls::Client`,
//! `mtls::PeerIdentity`, `mtls::ConnectionInfo`), and no adapter reuses one. This crate
//! has no client type of its own to confuse with `mtls::Client`: it hands out reqwest's
//! own [`reqwest::ClientBuilder`] made from one, and a [`RotatingClient`]. What the
//! adapters share lives once in the core, such as the ALPN list [`mtls::HTTP_ALPN`].
//!
//! ## Features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `aws-lc-rs` | yes | aws-lc-rs as the crypto provider (forwarded to `mtls`) |
//! | `ring` | no | ring as the crypto provider (`--no-default-features --features ring`) |

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod classify;
mod rotating;

use mtls::rustls::ClientConfig;

pub use classify::{TlsFailure, classify, classify_error};
pub use rotating::RotatingClient;

/// A new [`reqwest::ClientBuilder`] that speaks mTLS with `client`: its identity
/// (rotating), CAs, CRLs and server policy. Add your own settings, then `build()`.
///
/// The rustls config is [`rustls_config(client)`](rustls_config): it follows reloads
/// and never resumes a session (see *Rotation* in the crate docs; [`RotatingClient`]
/// resumes safely).
///
/// The builder is `https_only(true)`: a request to an `http://` URL fails before
/// anything is sent, instead of going out in clear without the client certificate (and
/// with whatever the URL or headers carry). A caller that really wants plain HTTP for some
/// URLs opts out with `.https_only(false)`.
///
/// Do not call TLS methods of reqwest's builder afterwards (`tls_backend_*`,
/// `tls_certs_*`, `identity`, `tls_danger_*`): they replace or are ignored by the
/// preconfigured rustls config.
///
/// ```no_run
/// let mtls = mtls::Client::builder()
///     .identity("client.crt", "client.key")
///     .ca("ca.crt")
///     .build()?;
/// let http = mtls_reqwest::builder(&mtls).build()?;
/// // later, after new files were written:
/// mtls.handle().reload()?;
/// # let _ = http; Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub fn builder(client: &mtls::Client) -> reqwest::ClientBuilder {
    https_only(rustls_config(client))
}

/// The rustls config [`builder`] hands to reqwest: a clone of `client`'s
/// [following config](mtls::Client::config) (its resolver and verifier read the material
/// in force at each handshake, and it never resumes a session), offering `client`'s ALPN,
/// or [`mtls::HTTP_ALPN`] when it has none.
pub fn rustls_config(client: &mtls::Client) -> ClientConfig {
    with_http_alpn(&client.config())
}

/// A [`reqwest::ClientBuilder`] over `client`'s config of the material in force now
/// ([`mtls::Client::current_config`]), which resumes sessions and does not follow
/// reloads: what [`RotatingClient`] builds each generation's client from.
pub(crate) fn current_builder(client: &mtls::Client) -> reqwest::ClientBuilder {
    https_only(with_http_alpn(&client.current_config()))
}

/// A reqwest builder over `config` that refuses `http://` URLs (see [`builder`]).
fn https_only(config: ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .https_only(true)
}

/// A copy of `config` that offers its own ALPN, or [`mtls::HTTP_ALPN`] when it has none.
/// The copy shares the config's resolver, verifier and session store.
fn with_http_alpn(config: &ClientConfig) -> ClientConfig {
    let mut config = config.clone();
    if config.alpn_protocols.is_empty() {
        config.alpn_protocols = mtls::HTTP_ALPN.map(|p| p.as_bytes().to_vec()).to_vec();
    }
    config
}
