//! The client side: a rustls [`ClientConfig`] that presents a rotating client
//! certificate and authorizes the server with a [`Policy`] on top of the usual host-name
//! check.
//!
//! ```no_run
//! use mtls::{Client, Policy};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder()
//!     .identity("client.crt", "client.key")
//!     .ca("ca.crt")
//!     .server_policy("spiffe:spiffe://prod.example.org/ns/api/sa/api".parse::<Policy>()?)
//!     .build()?;
//! let tls = client.connect("api.example.org:443").await?;
//! # let _ = tls; Ok(()) }
//! ```
//!
//! The config is returned without ALPN unless [`ClientBuilder::alpn`] is called, because
//! some HTTP connectors (hyper-rustls) insist on setting it themselves.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use arc_swap::ArcSwapOption;
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, SignatureScheme};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::{Error, Result, Role};
use crate::material::{self, IdentityChecks, IdentityPaths};
use crate::policy::Policy;
use crate::reload::{Material, ReloadHandle, Reloader, Swapped};
use crate::server::{Revocation, TlsVersion, versions};
use crate::session::ResettableClientSessions;
use crate::verify::{ServerTrust, ServerVerifier};

/// Builds a [`Client`]. Start from [`Client::builder`].
#[must_use]
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    identity: Option<IdentityPaths>,
    cas: Vec<PathBuf>,
    crls: Vec<PathBuf>,
    policy: Option<Policy>,
    server_name: Option<String>,
    versions: Vec<TlsVersion>,
    alpn: Vec<Vec<u8>>,
    provider: Option<Arc<CryptoProvider>>,
    check_identity_chain: bool,
    expiry_warning: Duration,
    revocation: Revocation,
    session_cache: usize,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            identity: None,
            cas: Vec::new(),
            crls: Vec::new(),
            policy: None,
            server_name: None,
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
        }
    }
}

impl ClientBuilder {
    /// The client's certificate chain (leaf first) and private key; both may be the same
    /// file. Without an identity the client connects without a certificate.
    pub fn identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some(IdentityPaths {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// A file of CA certificates to verify servers with. May be called again to trust
    /// several bundles.
    pub fn ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.cas.push(path.into());
        self
    }

    /// A CRL file issued by one of the CAs, checked against the server's certificate.
    pub fn crl(mut self, path: impl Into<PathBuf>) -> Self {
        self.crls.push(path.into());
        self
    }

    /// Authorize the server with a policy, after the host-name check (e.g. the server must
    /// present a given SPIFFE ID). Default: any server valid for the name.
    pub fn server_policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The name to verify the server's certificate against in [`Client::connect`].
    /// Default: the host part of the address connected to.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The TLS versions offered. Default: TLS 1.3 and TLS 1.2.
    pub fn tls_versions(mut self, versions: &[TlsVersion]) -> Self {
        self.versions = versions.to_vec();
        self
    }

    /// ALPN protocols, most preferred first. Default: none.
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

    /// Whether to check that the client's own chain leads to one of the configured CAs
    /// (default on; see [`ServerBuilder::check_identity_chain`](crate::ServerBuilder::check_identity_chain)).
    pub fn check_identity_chain(mut self, on: bool) -> Self {
        self.check_identity_chain = on;
        self
    }

    /// Accept a server whose issuer has no configured CRL.
    pub fn allow_unknown_revocation_status(mut self) -> Self {
        self.revocation.allow_unknown = true;
        self
    }

    /// Warn when the client certificate expires within this window. Default 14 days.
    pub fn expiry_warning(mut self, window: Duration) -> Self {
        self.expiry_warning = window;
        self
    }

    /// Number of servers whose sessions are kept for resumption. Default 256; 0 disables.
    pub fn session_cache(mut self, size: usize) -> Self {
        self.session_cache = size;
        self
    }

    /// Loads and checks all the material and builds the client.
    ///
    /// # Errors
    /// [`Error::Incomplete`] without a CA; every loading and preflight error (see
    /// [`ServerBuilder::build`](crate::ServerBuilder::build)); [`Error::NoCryptoProvider`].
    pub fn build(self) -> Result<Client> {
        if self.cas.is_empty() {
            return Err(Error::Incomplete(
                "no CA to verify servers with: call .ca(path) with the CA that issued the \
                 server certificate",
            ));
        }
        let server_name = match &self.server_name {
            Some(n) => Some(ServerName::try_from(n.clone()).map_err(|_| {
                Error::Incomplete("the server name is not a valid DNS name or IP address")
            })?),
            None => None,
        };
        let provider = crate::provider::resolve(self.provider.as_ref())?;
        let schemes = provider
            .signature_verification_algorithms
            .supported_schemes();
        let resolver = Arc::new(SwapClientCert {
            key: ArcSwapOption::empty(),
        });
        let sessions = Arc::new(ResettableClientSessions::new(self.session_cache.max(1)));
        let trust = Arc::new(ArcSwap::from_pointee(ServerTrust {
            webpki: Arc::new(NoServer),
            policy: None,
        }));
        let material = ClientMaterial {
            spec: Mutex::new(Spec {
                identity: self.identity.clone(),
                cas: self.cas.clone(),
                crls: self.crls.clone(),
                policy: self.policy.clone(),
            }),
            check_chain: self.check_identity_chain,
            revocation: self.revocation,
            provider: provider.clone(),
            resolver: resolver.clone(),
            trust: trust.clone(),
            sessions: sessions.clone(),
        };
        let reloader = Reloader::start(Box::new(material), self.expiry_warning)?;
        let verifier = Arc::new(ServerVerifier { trust, schemes });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions(&self.versions))
            .map_err(Error::Rustls)?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_client_cert_resolver(resolver);
        config.alpn_protocols = self.alpn.clone();
        config.resumption = if self.session_cache == 0 {
            rustls::client::Resumption::disabled()
        } else {
            rustls::client::Resumption::store(sessions)
        };
        Ok(Client {
            config: Arc::new(config),
            handle: ReloadHandle { inner: reloader },
            server_name,
            verifier,
        })
    }
}

/// An mTLS client configuration: a rustls [`ClientConfig`] whose identity rotates.
///
/// The config is built once; its certificate resolver and server verifier read the
/// current material, so clones of the config (reqwest takes one by value) follow
/// reloads. Every successful reload also forgets all resumable sessions, so the next
/// connection presents the new certificate rather than resuming under the old one.
#[derive(Debug, Clone)]
pub struct Client {
    config: Arc<ClientConfig>,
    handle: ReloadHandle,
    server_name: Option<ServerName<'static>>,
    verifier: Arc<ServerVerifier>,
}

impl Client {
    /// Starts a builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The rustls client configuration.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The reload handle.
    pub fn handle(&self) -> ReloadHandle {
        self.handle.clone()
    }

    /// The server-certificate verifier inside [`config`](Self::config): WebPki validation
    /// (chain, expiry, host name, CRLs) with the current CAs, then the server policy.
    pub fn server_verifier(&self) -> Arc<dyn rustls::client::danger::ServerCertVerifier> {
        self.verifier.clone()
    }

    /// A tokio-rustls connector over [`config`](Self::config).
    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.config.clone())
    }

    /// Connects over TCP and runs the handshake. The server's certificate is checked
    /// against the configured server name, or else the host part of `addr`.
    ///
    /// # Errors
    /// Connection and handshake errors; a refused handshake carries the rustls error as
    /// the `io::Error`'s source.
    pub async fn connect(&self, addr: &str) -> std::io::Result<TlsStream<TcpStream>> {
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => host_of(addr)?,
        };
        self.connect_to(addr, name).await
    }

    /// Connects to `addr` and verifies the server as `name`.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_to(
        &self,
        addr: impl ToSocketAddrs,
        name: ServerName<'static>,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        self.connector().connect(name, tcp).await
    }
}

fn host_of(addr: &str) -> std::io::Result<ServerName<'static>> {
    let host = if let Some(rest) = addr.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        addr.rsplit_once(':').map_or(addr, |(h, _)| h)
    };
    ServerName::try_from(host.to_owned()).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{host}` is not a valid server name"),
        )
    })
}

// === impl ClientMaterial ===

#[derive(Debug, Clone)]
struct Spec {
    identity: Option<IdentityPaths>,
    cas: Vec<PathBuf>,
    crls: Vec<PathBuf>,
    policy: Option<Policy>,
}

struct ClientMaterial {
    spec: Mutex<Spec>,
    check_chain: bool,
    revocation: Revocation,
    provider: Arc<CryptoProvider>,
    resolver: Arc<SwapClientCert>,
    trust: Arc<ArcSwap<ServerTrust>>,
    sessions: Arc<ResettableClientSessions>,
}

impl Material for ClientMaterial {
    fn load_and_swap(&self, _generation: u64) -> Result<Swapped> {
        let spec = self.spec.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let now = SystemTime::now();
        let cas = material::load_cas(&spec.cas, now)?;
        let crls = material::load_crls(&spec.crls, &cas)?;
        let identity = match &spec.identity {
            Some(paths) => Some(material::load_identity(
                paths,
                &self.provider,
                IdentityChecks {
                    role: Role::Client,
                    cas: &cas,
                    crls: &crls,
                    check_chain: self.check_chain,
                    now,
                },
            )?),
            None => None,
        };
        let mut builder =
            WebPkiServerVerifier::builder_with_provider(cas.roots.clone(), self.provider.clone())
                .with_crls(crls);
        if !self.revocation.whole_chain {
            builder = builder.only_check_end_entity_revocation();
        }
        if self.revocation.allow_unknown {
            builder = builder.allow_unknown_revocation_status();
        }
        let webpki = builder.build().map_err(Error::Verifier)?;
        self.trust.store(Arc::new(ServerTrust {
            webpki,
            policy: spec.policy.clone(),
        }));
        let info = identity.as_ref().map(|i| (i.subject.clone(), i.not_after));
        self.resolver.key.store(identity.map(|i| i.certified));
        self.sessions.reset();
        Ok(Swapped {
            identity: info,
            cas: cas.info,
            trust_changed: true,
        })
    }

    fn paths(&self) -> Vec<PathBuf> {
        let spec = self.spec.lock().unwrap_or_else(|p| p.into_inner());
        let mut v = Vec::new();
        if let Some(id) = &spec.identity {
            v.push(id.cert.clone());
            if id.key != id.cert {
                v.push(id.key.clone());
            }
        }
        v.extend(spec.cas.iter().cloned());
        v.extend(spec.crls.iter().cloned());
        v
    }

    fn set_policy(&self, policy: Policy) {
        self.spec.lock().unwrap_or_else(|p| p.into_inner()).policy = Some(policy);
    }
}

// === impl SwapClientCert ===

#[derive(Debug)]
struct SwapClientCert {
    key: ArcSwapOption<CertifiedKey>,
}

impl ResolvesClientCert for SwapClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.key.load_full()
    }

    fn has_certs(&self) -> bool {
        self.key.load().is_some()
    }
}

/// Stands in until the first load, which happens before the config is returned.
#[derive(Debug)]
struct NoServer;

impl rustls::client::danger::ServerCertVerifier for NoServer {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("not configured".into()))
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("not configured".into()))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        Vec::new()
    }
}
