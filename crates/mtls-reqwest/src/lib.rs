//! # mtls-reqwest: a mutual-TLS [`reqwest`] client whose certificate rotates in place
//!
//! Point it at PEM files (client certificate, key, CA bundle) and get back a
//! [`reqwest::ClientBuilder`] that presents the client certificate, trusts only the given
//! CAs, optionally authorizes the server with an [`mtls::Policy`] (e.g. its SPIFFE ID), and
//! offers ALPN `h2` and `http/1.1`. You keep adding your own settings (timeouts, headers,
//! …) before calling `build()`.
//!
//! ```no_run
//! use mtls_reqwest::MtlsClient;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mtls = MtlsClient::builder()
//!     .identity("client.crt", "client.key")
//!     .ca("ca.crt")
//!     .server_policy("spiffe:spiffe://prod.example.org/ns/api/sa/api".parse()?)
//!     .build()?;
//! let _watch = mtls.handle().watch()?; // rotate when the files change
//! let http = mtls
//!     .reqwest_builder()
//!     .timeout(std::time::Duration::from_secs(10))
//!     .build()?;
//! let body = http.get("https://api.example.org/").send().await?.text().await?;
//! # let _ = body; Ok(()) }
//! ```
//!
//! Everything the core crate loads works here: PKCS#8, PKCS#1 and SEC1 keys, combined
//! certificate-and-key files, CA bundles, DER files, CRLs (see [`mtls::pem`]). Bad files
//! are refused by [`MtlsClientBuilder::build`] with an [`mtls::Error`] that names the file
//! and says how to fix it.
//!
//! ## How it plugs into reqwest
//!
//! reqwest 0.13 accepts a finished rustls [`ClientConfig`]
//! through [`reqwest::ClientBuilder::tls_backend_preconfigured`]. It takes the config *by
//! value* and recognises it by type, so it must come from the same rustls version as
//! reqwest's (this crate pins both through the workspace; a mismatch shows up as a
//! "builder error" from `build()`, which this crate's tests would catch). reqwest does not
//! set ALPN on a preconfigured config, so this crate does (`h2`, `http/1.1` by default; see
//! [`MtlsClientBuilder::alpn`]).
//!
//! ## Rotation
//!
//! The config handed to reqwest is a clone of the core's config, and the clone shares the
//! core's certificate resolver and server verifier, which read swappable material. A
//! reload through the [`ReloadHandle`] (by [`ReloadHandle::reload`], file watching with
//! [`ReloadHandle::watch`], or SIGHUP) therefore takes effect without rebuilding the
//! [`reqwest::Client`]:
//!
//! - **New connections** present the new certificate. The config reqwest keeps never
//!   resumes a TLS session: a session made under the old certificate would carry the old
//!   identity, and a session ticket a server sends on an old connection after the reload
//!   would let a new connection skip the new CAs or server policy. [`RotatingClient`]
//!   does resume, safely: each of its generations uses the core's config of that
//!   generation, whose sessions no later generation offers.
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
//! `reqwest::Client` (a fresh pool over the same TLS config) for the first request after
//! each reload, so every later request runs on a connection that presented the current
//! certificate. Requests already running on the old pool finish normally; its idle
//! connections close once the last clone of the old `reqwest::Client` is dropped. A blunter
//! alternative is `pool_max_idle_per_host(0)`, which opens a connection per request.
//!
//! ## Telling TLS failures apart
//!
//! [`classify`] maps a [`reqwest::Error`] to a [`TlsFailure`]: the server refused our
//! certificate, the server's certificate comes from an unknown CA, the server failed our
//! [`server_policy`](MtlsClientBuilder::server_policy), and so on. See its docs for what
//! TLS 1.3 lets a client see when the server refuses it.
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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mtls::rustls::ClientConfig;
use mtls::rustls::crypto::CryptoProvider;
pub use mtls::{Policy, ReloadHandle, TlsVersion};

pub use classify::{TlsFailure, classify, classify_error};
pub use rotating::RotatingClient;

/// [`mtls::HTTP_ALPN`] as reqwest's config wants it.
fn http_alpn() -> Vec<Vec<u8>> {
    mtls::HTTP_ALPN.map(|p| p.as_bytes().to_vec()).to_vec()
}

/// Builds an [`MtlsClient`]. Start from [`MtlsClient::builder`].
#[must_use]
#[derive(Debug, Clone)]
pub struct MtlsClientBuilder {
    inner: mtls::ClientBuilder,
    alpn: Vec<Vec<u8>>,
}

impl Default for MtlsClientBuilder {
    fn default() -> Self {
        Self {
            inner: mtls::Client::builder(),
            alpn: http_alpn(),
        }
    }
}

impl MtlsClientBuilder {
    /// The client certificate chain (leaf first) and private key; both may be the same
    /// file. Without an identity the client connects without a certificate (useful only
    /// against servers with optional client authentication).
    pub fn identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.inner = self.inner.identity(cert, key);
        self
    }

    /// A file of CA certificates that server certificates must chain to. Required; may be
    /// called again to trust several bundles (e.g. the old and new CA during a CA
    /// rotation). Only these CAs are trusted, not the system's roots.
    pub fn ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.inner = self.inner.ca(path);
        self
    }

    /// A CRL file issued by one of the CAs, checked against server certificates.
    pub fn crl(mut self, path: impl Into<PathBuf>) -> Self {
        self.inner = self.inner.crl(path);
        self
    }

    /// Accept a server whose issuer has no configured CRL (only matters with
    /// [`crl`](Self::crl)).
    pub fn allow_unknown_revocation_status(mut self) -> Self {
        self.inner = self.inner.allow_unknown_revocation_status();
        self
    }

    /// Authorize the server with a policy, checked during the handshake after the chain
    /// and the host name of the URL (e.g. `spiffe:spiffe://prod.example.org/ns/api/sa/api`).
    /// A server that fails it is refused with [`TlsFailure::ServerNotAuthorized`].
    /// Default: any server whose certificate is valid for the host name.
    pub fn server_policy(mut self, policy: Policy) -> Self {
        self.inner = self.inner.server_policy(policy);
        self
    }

    /// The TLS versions offered. Default: TLS 1.3 and TLS 1.2.
    pub fn tls_versions(mut self, versions: &[TlsVersion]) -> Self {
        self.inner = self.inner.tls_versions(versions);
        self
    }

    /// The ALPN protocols offered, most preferred first. Default: [`mtls::HTTP_ALPN`]
    /// (`h2`, `http/1.1`). Pass only `http/1.1` if you also call reqwest's `http1_only()`:
    /// a server that picks `h2` gets HTTP/2 whatever reqwest was told.
    pub fn alpn<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// The crypto provider. Default: the one chosen by this crate's features (see
    /// [`mtls::provider`]); no process-wide provider is needed.
    pub fn crypto_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.inner = self.inner.crypto_provider(provider);
        self
    }

    /// Number of servers whose TLS sessions are kept for resumption by a
    /// [`RotatingClient`] (the plain reqwest client never resumes; see *Rotation* in the
    /// crate docs). Default 256; 0 disables resumption. Each reload starts a new cache.
    pub fn session_cache(mut self, size: usize) -> Self {
        self.inner = self.inner.session_cache(size);
        self
    }

    /// Warn (through `tracing` and [`ReloadHandle::subscribe`]) when the client
    /// certificate expires within this window. Default 14 days.
    pub fn expiry_warning(mut self, window: Duration) -> Self {
        self.inner = self.inner.expiry_warning(window);
        self
    }

    /// Loads and checks every file and builds the client configuration.
    ///
    /// # Errors
    /// Every loading and preflight error of [`mtls::ClientBuilder::build`]: a missing or
    /// unreadable file, not PEM, an encrypted key, a key that does not match the
    /// certificate, a certificate without the `clientAuth` usage, expired, or not issued
    /// by a configured CA; [`mtls::Error::Incomplete`] without a CA.
    pub fn build(self) -> Result<MtlsClient, mtls::Error> {
        Ok(MtlsClient::from_client_with_alpn(
            self.inner.build()?,
            self.alpn,
        ))
    }
}

/// An mTLS client configuration for reqwest, and the handle that rotates its certificate.
///
/// Cheap to clone. Make as many `reqwest::Client`s from it as you like with
/// [`reqwest_builder`](Self::reqwest_builder); they all follow the same
/// [`handle`](Self::handle).
#[derive(Debug, Clone)]
pub struct MtlsClient {
    client: mtls::Client,
    alpn: Vec<Vec<u8>>,
}

impl MtlsClient {
    /// Starts a builder.
    pub fn builder() -> MtlsClientBuilder {
        MtlsClientBuilder::default()
    }

    /// Wraps a client built with the core crate's [`mtls::ClientBuilder`] (for options this
    /// builder does not repeat). ALPN is set to [`mtls::HTTP_ALPN`] on the config handed to
    /// reqwest, whatever the core config says.
    pub fn from_client(client: mtls::Client) -> Self {
        Self::from_client_with_alpn(client, http_alpn())
    }

    fn from_client_with_alpn(client: mtls::Client, alpn: Vec<Vec<u8>>) -> Self {
        Self { client, alpn }
    }

    /// A new [`reqwest::ClientBuilder`] that uses this TLS configuration. Add your own
    /// settings, then `build()`.
    ///
    /// Do not call TLS methods of reqwest's builder afterwards (`tls_backend_*`,
    /// `tls_certs_*`, `identity`, `tls_danger_*`): they replace or are ignored by the
    /// preconfigured rustls config.
    pub fn reqwest_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder().tls_backend_preconfigured(self.rustls_config())
    }

    /// The rustls config handed to reqwest: a clone of the core's
    /// [following config](mtls::Client::config) (its resolver and verifier read the
    /// material in force at each handshake, and it never resumes a session) with ALPN set.
    pub fn rustls_config(&self) -> ClientConfig {
        let mut config = ClientConfig::clone(&self.client.config());
        config.alpn_protocols.clone_from(&self.alpn);
        config
    }

    /// A [`reqwest::ClientBuilder`] over the core's config of the material in force now
    /// ([`mtls::Client::current_config`]), which resumes sessions and does not follow
    /// reloads: what [`RotatingClient`] builds each generation's client from.
    pub(crate) fn current_reqwest_builder(&self) -> reqwest::ClientBuilder {
        let mut config = ClientConfig::clone(&self.client.current_config());
        config.alpn_protocols.clone_from(&self.alpn);
        reqwest::Client::builder().tls_backend_preconfigured(config)
    }

    /// The handle to reload the certificate, key, CAs and CRLs, watch the files, and follow
    /// reload events.
    pub fn handle(&self) -> ReloadHandle {
        self.client.handle()
    }

    /// The core client (e.g. for raw TLS connections with the same identity).
    pub fn core(&self) -> &mtls::Client {
        &self.client
    }

    /// Splits into a reqwest builder and the reload handle.
    pub fn into_parts(self) -> (reqwest::ClientBuilder, ReloadHandle) {
        (self.reqwest_builder(), self.handle())
    }

    /// A [`RotatingClient`] that moves to a fresh connection pool after every reload.
    /// `configure` adds your settings to each `reqwest::ClientBuilder` it builds.
    ///
    /// # Errors
    /// When reqwest refuses the builder (e.g. an invalid setting made by `configure`).
    pub fn rotating<F>(&self, configure: F) -> Result<RotatingClient, reqwest::Error>
    where
        F: Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync + 'static,
    {
        RotatingClient::new(self.clone(), configure)
    }
}

/// Shorthand: a reqwest builder presenting `cert` + `key` and trusting `ca`, with the
/// handle that rotates the certificate.
///
/// ```no_run
/// let (builder, handle) = mtls_reqwest::client_builder("client.crt", "client.key", "ca.crt")?;
/// let http = builder.build()?;
/// // later, after new files were written:
/// handle.reload()?;
/// # let _ = http; Ok::<_, Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`MtlsClientBuilder::build`].
pub fn client_builder(
    cert: impl Into<PathBuf>,
    key: impl Into<PathBuf>,
    ca: impl Into<PathBuf>,
) -> Result<(reqwest::ClientBuilder, ReloadHandle), mtls::Error> {
    Ok(MtlsClient::builder()
        .identity(cert, key)
        .ca(ca)
        .build()?
        .into_parts())
}
