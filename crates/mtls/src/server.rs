//! The server side: a rustls [`ServerConfig`] that requires (or accepts) client
//! certificates, authorizes them with a [`Policy`] during the handshake, and reloads.
//!
//! ```no_run
//! use mtls::{Policy, Server};
//!
//! # fn main() -> Result<(), mtls::Error> {
//! let server = Server::builder()
//!     .identity("server.crt", "server.key")
//!     .client_ca("ca.crt")
//!     .crl("ca.crl")
//!     .policy("spiffe:prod.example.org".parse::<Policy>()?)
//!     .alpn(["h2", "http/1.1"])
//!     .build()?;
//! let config = server.config(); // Arc<rustls::ServerConfig>, for tokio-rustls or others
//! # let _ = config; Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

use crate::acceptor::Acceptor;
use crate::error::{Error, Result, Role};
use crate::identity::{DefaultExtractor, IdentityExtractor};
use crate::material::{self, IdentityChecks, IdentityPaths};
use crate::policy::Policy;
use crate::reload::{Material, ReloadHandle, Reloader, Swapped};
use crate::session::EpochSessionStore;
use crate::verify::{ClientTrust, ClientVerifier, IdentityCache};

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// A client without a certificate fails the handshake (`certificate_required`).
    #[default]
    Required,
    /// A client may connect without a certificate and is then anonymous; a client that
    /// does present one is verified and authorized as under `Required`.
    Optional,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

pub(crate) fn versions(v: &[TlsVersion]) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let mut out = Vec::new();
    if v.contains(&TlsVersion::Tls13) {
        out.push(&rustls::version::TLS13);
    }
    if v.contains(&TlsVersion::Tls12) {
        out.push(&rustls::version::TLS12);
    }
    out
}

/// How revocation is checked against the configured CRLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Revocation {
    pub(crate) whole_chain: bool,
    pub(crate) allow_unknown: bool,
    pub(crate) enforce_expiry: bool,
}

/// Builds a [`Server`]. Start from [`Server::builder`].
#[must_use]
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    identity: Option<IdentityPaths>,
    client_cas: Vec<PathBuf>,
    crls: Vec<PathBuf>,
    client_auth: ClientAuth,
    policy: Option<Policy>,
    versions: Vec<TlsVersion>,
    alpn: Vec<Vec<u8>>,
    provider: Option<Arc<CryptoProvider>>,
    check_identity_chain: bool,
    expiry_warning: Duration,
    revocation: Revocation,
    session_cache: usize,
    handshake_timeout: Duration,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self {
            identity: None,
            client_cas: Vec::new(),
            crls: Vec::new(),
            client_auth: ClientAuth::Required,
            policy: None,
            versions: vec![TlsVersion::Tls13, TlsVersion::Tls12],
            alpn: Vec::new(),
            provider: None,
            check_identity_chain: true,
            expiry_warning: Duration::from_secs(14 * 24 * 3600),
            revocation: Revocation {
                whole_chain: false,
                allow_unknown: false,
                enforce_expiry: false,
            },
            session_cache: 256,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl ServerBuilder {
    /// The server's certificate chain (leaf first, then intermediates) and private key.
    /// Both may be the same file (`cat server.crt server.key > server.pem`).
    pub fn identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some(IdentityPaths {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// A file of CA certificates whose clients are trusted. Call it again to trust several
    /// bundles at once, e.g. the old and the new CA while clients move from one to the
    /// other.
    pub fn client_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_cas.push(path.into());
        self
    }

    /// A CRL file (PEM or DER) issued by one of the client CAs. May be called again.
    ///
    /// By default only the client's own certificate is checked, as `openssl verify
    /// -crl_check` does, and a client whose issuer has no CRL is refused (unknown
    /// revocation status); see [`revocation_check_whole_chain`](Self::revocation_check_whole_chain)
    /// and [`allow_unknown_revocation_status`](Self::allow_unknown_revocation_status).
    /// A CRL past its nextUpdate is still used (and logged) unless
    /// [`enforce_crl_expiry`](Self::enforce_crl_expiry) is set.
    pub fn crl(mut self, path: impl Into<PathBuf>) -> Self {
        self.crls.push(path.into());
        self
    }

    /// Check revocation of every certificate in the chain, not just the client's (every CA
    /// in the chain then needs a CRL).
    pub fn revocation_check_whole_chain(mut self) -> Self {
        self.revocation.whole_chain = true;
        self
    }

    /// Accept a client whose issuer has no configured CRL.
    pub fn allow_unknown_revocation_status(mut self) -> Self {
        self.revocation.allow_unknown = true;
        self
    }

    /// Refuse clients while a CRL is past its nextUpdate.
    pub fn enforce_crl_expiry(mut self) -> Self {
        self.revocation.enforce_expiry = true;
        self
    }

    /// Whether clients must present a certificate. Default [`ClientAuth::Required`].
    pub fn client_auth(mut self, mode: ClientAuth) -> Self {
        self.client_auth = mode;
        self
    }

    /// Which verified clients are accepted. Required: use [`Policy::any_verified`] to
    /// accept every certificate the client CAs issued.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The TLS versions offered. Default: TLS 1.3 and TLS 1.2.
    pub fn tls_versions(mut self, versions: &[TlsVersion]) -> Self {
        self.versions = versions.to_vec();
        self
    }

    /// ALPN protocols, most preferred first (e.g. `["h2", "http/1.1"]`). Default: none.
    pub fn alpn<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// The crypto provider; see [`provider`](crate::provider) for the default.
    pub fn crypto_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Whether to check, at build and reload, that the server's chain leads to one of the
    /// client CAs (default on; a chain whose issuer is a CA not configured here is
    /// accepted as long as the file holds the intermediate). Turn it off for a lone leaf
    /// issued directly by a root the clients trust but this server was not given.
    pub fn check_identity_chain(mut self, on: bool) -> Self {
        self.check_identity_chain = on;
        self
    }

    /// Warn (event and log) when the server certificate expires within this window.
    /// Default 14 days.
    pub fn expiry_warning(mut self, window: Duration) -> Self {
        self.expiry_warning = window;
        self
    }

    /// Number of sessions kept for resumption. Default 256; 0 disables resumption.
    pub fn session_cache(mut self, size: usize) -> Self {
        self.session_cache = size;
        self
    }

    /// Handshake timeout used by [`Server::acceptor`]. Default 10 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Loads and checks all the material and builds the server.
    ///
    /// # Errors
    /// - [`Error::Incomplete`] when no identity or no client CA was given;
    /// - [`Error::MissingPolicy`] when no policy was given;
    /// - every loading error of [`pem`](crate::pem) and every preflight error:
    ///   [`Error::KeyMismatch`], [`Error::Expired`], [`Error::NotYetValid`],
    ///   [`Error::CaCertificateAsLeaf`], [`Error::NoSubjectAltName`],
    ///   [`Error::WrongExtendedKeyUsage`], [`Error::UnknownIssuer`], [`Error::NotACa`],
    ///   [`Error::BadCrl`] …;
    /// - [`Error::NoCryptoProvider`], [`Error::Rustls`] for an impossible version set.
    pub fn build(self) -> Result<Server> {
        let identity = self.identity.clone().ok_or(Error::Incomplete(
            "no server identity: call .identity(cert, key)",
        ))?;
        if self.client_cas.is_empty() {
            return Err(Error::Incomplete(
                "no client CA: call .client_ca(path) with the CA that issued the client \
                 certificates",
            ));
        }
        let policy = self.policy.clone().ok_or(Error::MissingPolicy)?;
        let provider = crate::provider::resolve(self.provider.as_ref())?;
        let schemes = provider
            .signature_verification_algorithms
            .supported_schemes();

        let resolver = Arc::new(SwapServerCert {
            key: ArcSwap::from_pointee(placeholder_key()),
        });
        let trust = Arc::new(ArcSwap::from_pointee(ClientTrust {
            webpki: WebPkiClientVerifier::no_client_auth(),
            policy: policy.clone(),
            generation: 0,
        }));
        let epoch = Arc::new(AtomicU64::new(0));
        let cache = Arc::new(IdentityCache::default());

        let material = ServerMaterial {
            spec: Mutex::new(Spec {
                identity,
                client_cas: self.client_cas.clone(),
                crls: self.crls.clone(),
                policy,
            }),
            optional: self.client_auth == ClientAuth::Optional,
            check_chain: self.check_identity_chain,
            revocation: self.revocation,
            provider: provider.clone(),
            resolver: resolver.clone(),
            trust: trust.clone(),
            epoch: epoch.clone(),
            last_trust: Mutex::new(None),
        };
        let reloader = Reloader::start(Box::new(material), self.expiry_warning)?;

        let verifier = Arc::new(ClientVerifier {
            trust: trust.clone(),
            mandatory: self.client_auth == ClientAuth::Required,
            cache: cache.clone(),
            schemes,
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions(&self.versions))
            .map_err(Error::Rustls)?
            .with_client_cert_verifier(verifier.clone())
            .with_cert_resolver(resolver);
        config.alpn_protocols = self.alpn.clone();
        config.session_storage = Arc::new(EpochSessionStore::new(self.session_cache, epoch));
        if self.session_cache == 0 {
            config.send_tls13_tickets = 0;
        }
        Ok(Server {
            config: Arc::new(config),
            handle: ReloadHandle { inner: reloader },
            shared: Arc::new(ServerShared { cache, trust }),
            handshake_timeout: self.handshake_timeout,
            verifier,
        })
    }
}

/// What the acceptor shares with the verifier.
#[derive(Debug)]
pub(crate) struct ServerShared {
    pub(crate) cache: Arc<IdentityCache>,
    pub(crate) trust: Arc<ArcSwap<ClientTrust>>,
}

/// An mTLS server configuration: a rustls [`ServerConfig`] whose material reloads.
///
/// The config is built once; its certificate resolver and client verifier read the
/// current material, so the `Arc<ServerConfig>` from [`config`](Self::config) can be
/// handed to any rustls-based server and still follow reloads.
#[derive(Debug, Clone)]
pub struct Server {
    config: Arc<ServerConfig>,
    handle: ReloadHandle,
    shared: Arc<ServerShared>,
    handshake_timeout: Duration,
    verifier: Arc<ClientVerifier>,
}

impl Server {
    /// Starts a builder.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The rustls server configuration.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    /// The reload handle.
    pub fn handle(&self) -> ReloadHandle {
        self.handle.clone()
    }

    /// The client-certificate verifier inside [`config`](Self::config): WebPki validation
    /// with the current CAs and CRLs, then the current policy. For building your own
    /// rustls config around it, or for checking a chain outside a handshake.
    pub fn client_verifier(&self) -> Arc<dyn rustls::server::danger::ClientCertVerifier> {
        self.verifier.clone()
    }

    /// An acceptor that runs handshakes with a timeout and returns the peer's identity.
    pub fn acceptor(&self) -> Acceptor<DefaultExtractor> {
        self.acceptor_with(DefaultExtractor)
    }

    /// An acceptor that also maps each peer to the application's principal type.
    pub fn acceptor_with<E: IdentityExtractor>(&self, extractor: E) -> Acceptor<E> {
        Acceptor::new(
            self.config.clone(),
            self.shared.clone(),
            Arc::new(extractor),
            self.handshake_timeout,
        )
    }
}

// === impl ServerMaterial ===

#[derive(Debug, Clone)]
struct Spec {
    identity: IdentityPaths,
    client_cas: Vec<PathBuf>,
    crls: Vec<PathBuf>,
    policy: Policy,
}

type TrustKey = (
    Vec<CertificateDer<'static>>,
    Vec<CertificateRevocationListDer<'static>>,
    String,
);

struct ServerMaterial {
    spec: Mutex<Spec>,
    optional: bool,
    check_chain: bool,
    revocation: Revocation,
    provider: Arc<CryptoProvider>,
    resolver: Arc<SwapServerCert>,
    trust: Arc<ArcSwap<ClientTrust>>,
    epoch: Arc<AtomicU64>,
    last_trust: Mutex<Option<TrustKey>>,
}

impl Material for ServerMaterial {
    fn load_and_swap(&self, generation: u64) -> Result<Swapped> {
        let spec = self.spec.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let now = SystemTime::now();
        let cas = material::load_cas(&spec.client_cas, now)?;
        let crls = material::load_crls(&spec.crls, &cas)?;
        let identity = material::load_identity(
            &spec.identity,
            &self.provider,
            IdentityChecks {
                role: Role::Server,
                cas: &cas,
                crls: &crls,
                check_chain: self.check_chain,
                now,
            },
        )?;
        let mut builder =
            WebPkiClientVerifier::builder_with_provider(cas.roots.clone(), self.provider.clone())
                .with_crls(crls.iter().cloned());
        if !self.revocation.whole_chain {
            builder = builder.only_check_end_entity_revocation();
        }
        if self.revocation.allow_unknown {
            builder = builder.allow_unknown_revocation_status();
        }
        if self.revocation.enforce_expiry {
            builder = builder.enforce_revocation_expiration();
        }
        if self.optional {
            builder = builder.allow_unauthenticated();
        }
        let webpki = builder.build().map_err(Error::Verifier)?;

        let key: TrustKey = (cas.certs.clone(), crls, spec.policy.to_string());
        let mut last = self.last_trust.lock().unwrap_or_else(|p| p.into_inner());
        let trust_changed = last.as_ref().is_some_and(|l| *l != key);
        self.trust.store(Arc::new(ClientTrust {
            webpki,
            policy: spec.policy.clone(),
            generation,
        }));
        if trust_changed {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        *last = Some(key);
        self.resolver.key.store(identity.certified);
        Ok(Swapped {
            identity: Some((identity.subject, identity.not_after)),
            cas: cas.info,
            trust_changed,
        })
    }

    fn paths(&self) -> Vec<PathBuf> {
        let spec = self.spec.lock().unwrap_or_else(|p| p.into_inner());
        let mut v = vec![spec.identity.cert.clone()];
        if spec.identity.key != spec.identity.cert {
            v.push(spec.identity.key.clone());
        }
        v.extend(spec.client_cas.iter().cloned());
        v.extend(spec.crls.iter().cloned());
        v
    }

    fn set_policy(&self, policy: Policy) {
        self.spec.lock().unwrap_or_else(|p| p.into_inner()).policy = policy;
    }
}

// === impl SwapServerCert ===

/// Serves whatever certified key is current.
#[derive(Debug)]
struct SwapServerCert {
    key: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for SwapServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key.load_full())
    }
}

/// Stands in until the first load, which happens before the config is returned.
fn placeholder_key() -> CertifiedKey {
    #[derive(Debug)]
    struct NoKey;
    impl rustls::sign::SigningKey for NoKey {
        fn choose_scheme(
            &self,
            _offered: &[rustls::SignatureScheme],
        ) -> Option<Box<dyn rustls::sign::Signer>> {
            None
        }
        fn algorithm(&self) -> rustls::SignatureAlgorithm {
            rustls::SignatureAlgorithm::Anonymous
        }
    }
    CertifiedKey::new(Vec::new(), Arc::new(NoKey))
}
