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
//!     .alpn(mtls::HTTP_ALPN)
//!     .build()?;
//! let config = server.config(); // Arc<rustls::ServerConfig>, for tokio-rustls or others
//! # let _ = config; Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;

use crate::acceptor::Acceptor;
use crate::error::{Error, Result, Role};
use crate::identity::{DefaultExtractor, IdentityExtractor};
use crate::policy::Policy;
use crate::reload::{ReloadHandle, Reloader};
pub use crate::snapshot::server::ClientAuth;
use crate::snapshot::server::{Following, ServerLoader, ServerSnapshot};
use crate::spec::{Spec, shared_setters};

/// Builds a [`Server`]. Start from [`Server::builder`].
#[must_use]
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    pub(crate) spec: Spec,
    client_auth: ClientAuth,
    handshake_timeout: Duration,
    client_hello_timeout: Duration,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self {
            spec: Spec::default(),
            client_auth: ClientAuth::Required,
            handshake_timeout: Duration::from_secs(10),
            client_hello_timeout: Duration::from_secs(5),
        }
    }
}

impl ServerBuilder {
    shared_setters!(own = "server", peer = "client");

    /// The same as [`ca`](Self::ca): a file of CA certificates whose clients are trusted.
    pub fn client_ca(self, path: impl Into<std::path::PathBuf>) -> Self {
        self.ca(path)
    }

    /// Serves `identity` to clients that ask for `name` (TLS SNI), on the same listener
    /// as the default [`identity`](Self::identity) (or
    /// [`identity_pkcs12`](Self::identity_pkcs12)), which stays required and is served to
    /// clients that send no name or one without an entry. Call it once per name; a
    /// `*.example.com` entry serves every one-label name under `example.com` that has no
    /// entry of its own.
    ///
    /// Each identity goes through the same checks as the default one, and its
    /// certificate must be valid for its name ([`Error::SniNameMismatch`] otherwise). All
    /// identities live in the one snapshot of the server: a reload reads them all again
    /// (a file watch follows all their files), and a broken file in any of them refuses
    /// the reload whole, the identities in force staying.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), mtls::Error> {
    /// use mtls::{Identity, Password, Policy, Server};
    /// let server = Server::builder()
    ///     .identity("default.crt", "default.key")
    ///     .sni_identity("api.example.com", Identity::pem("api.crt", "api.key"))
    ///     .sni_identity("*.admin.example.com", Identity::pkcs12("admin.p12", Password::from_env("P12_PASS")))
    ///     .client_ca("ca.crt")
    ///     .policy(Policy::any_verified())
    ///     .build()?;
    /// # let _ = server; Ok(()) }
    /// ```
    pub fn sni_identity(mut self, name: impl Into<String>, identity: crate::Identity) -> Self {
        let name = name.into();
        self.spec.sni.push((name, identity));
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
        self.spec.policy = Some(policy);
        self
    }

    /// Handshake timeout used by [`Server::acceptor`]. Default 10 s.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long a client may take to send its whole ClientHello (and, under a
    /// [`TlsListener`](crate::TlsListener), its first byte), within the handshake timeout.
    /// Connections that send nothing are also the first to go when the listener's
    /// handshake cap is reached. Default 5 s.
    pub fn client_hello_timeout(mut self, timeout: Duration) -> Self {
        self.client_hello_timeout = timeout;
        self
    }

    /// Loads and checks all the material and builds the server.
    ///
    /// # Errors
    /// - [`Error::MissingIdentity`] when no identity was given, [`Error::MissingCa`] when
    ///   no client CA was given;
    /// - [`Error::MissingPolicy`] when no policy was given;
    /// - every loading error of [`pem`](crate::pem) and every preflight error:
    ///   [`Error::KeyMismatch`], [`Error::Expired`], [`Error::NotYetValid`],
    ///   [`Error::CaCertificateAsLeaf`], [`Error::NoSubjectAltName`],
    ///   [`Error::WrongExtendedKeyUsage`], [`Error::UnknownIssuer`], [`Error::NotACa`],
    ///   [`Error::BadCrl`] …;
    /// - [`Error::NoCryptoProvider`], [`Error::Rustls`] for an impossible version set.
    #[cfg_attr(not(feature = "fetch"), allow(unused_mut))]
    pub fn build(mut self) -> Result<Server> {
        if self.spec.identity.is_none() {
            return Err(Error::MissingIdentity { role: Role::Server });
        }
        if self.spec.cas.is_empty() {
            return Err(Error::MissingCa { role: Role::Server });
        }
        if self.spec.policy.is_none() {
            return Err(Error::MissingPolicy);
        }
        self.spec.sni = normalize_sni(std::mem::take(&mut self.spec.sni))?;
        let loader = ServerLoader {
            provider: crate::provider::resolve(self.spec.provider.as_ref())?,
            client_auth: self.client_auth,
        };
        #[cfg(feature = "fetch")]
        {
            self.spec.fetch.ocsp = self
                .spec
                .fetch
                .ocsp_settings
                .clone()
                .map(|s| Arc::new(crate::revocation::ocsp::Ocsp::new(s)));
            self.spec.fetch.stapler = self.spec.fetch.staple.clone().map(|(responder, refresh)| {
                Arc::new(crate::revocation::staple::Stapler::new(
                    responder,
                    refresh,
                    Duration::from_secs(10),
                ))
            });
        }
        let reloader = Reloader::start(loader, self.spec.clone())?;
        let config = reloader
            .loader()
            .following_config(&self.spec, reloader.current())?;
        let handle = ReloadHandle::new(reloader.clone());
        #[cfg(feature = "fetch")]
        if let Some(stapler) = &self.spec.fetch.stapler {
            stapler.start(
                reloader.current(),
                self.spec.cas.clone(),
                reloader.loader().provider.secure_random,
            )?;
        }
        #[cfg(feature = "fetch")]
        if self.spec.fetch.any() {
            crate::revocation::crl::start(&self.spec.fetch, handle.downgrade())?;
        }
        Ok(Server {
            current: reloader.current().clone(),
            config,
            handle,
            handshake_timeout: self.handshake_timeout,
            client_hello_timeout: self.client_hello_timeout,
            observer: self.spec.observer,
        })
    }
}

/// An mTLS server: the snapshot of its trust state in force, and the handle that
/// reloads it.
///
/// Serve it with [`acceptor`](Self::acceptor) / [`TlsListener`](crate::TlsListener),
/// which resume sessions safely. Other rustls-based loops take
/// [`config`](Self::config), which follows reloads but never resumes a session, or
/// [`current_config`](Self::current_config) once per connection; see the crate docs'
/// *Resumption* section.
#[derive(Debug, Clone)]
pub struct Server {
    current: Arc<ArcSwap<ServerSnapshot>>,
    config: Arc<ServerConfig>,
    handle: ReloadHandle,
    handshake_timeout: Duration,
    client_hello_timeout: Duration,
    observer: crate::observe::Slot,
}

impl Server {
    /// Starts a builder.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// A rustls server configuration for a loop that keeps one config for its whole life:
    /// its certificate resolver and client verifier read the material in force at each
    /// handshake, so it follows reloads. It never resumes a session (no session store,
    /// no tickets), because such a loop cannot check a resumed session against the trust
    /// in force; use [`current_config`](Self::current_config) for resumption.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }

    /// The rustls server configuration of the material in force now, with session
    /// resumption. Take it once per connection (as [`acceptor`](Self::acceptor) does):
    /// it does not follow later reloads, and a session it stores is only resumed by
    /// configurations with the same CAs, CRLs and policy. A connection that completes
    /// after a reload should still be checked against the new trust, which the acceptor
    /// does and a hand-written loop must do itself.
    pub fn current_config(&self) -> Arc<ServerConfig> {
        self.current.load().config.clone()
    }

    /// The reload handle.
    pub fn handle(&self) -> ReloadHandle {
        self.handle.clone()
    }

    /// The client-certificate verifier of [`config`](Self::config): WebPki validation
    /// with the CAs and CRLs in force, then the policy in force. For building your own
    /// rustls config around it, or for checking a chain outside a handshake.
    pub fn client_verifier(&self) -> Arc<dyn rustls::server::danger::ClientCertVerifier> {
        Arc::new(Following(self.current.clone()))
    }

    /// Verifies a client chain (leaf first) that did not arrive in a handshake with this
    /// server (one a TLS-terminating proxy forwarded, say) as a handshake would: path
    /// validation against the CAs and CRLs in force, then the policy in force. A chain
    /// that passed before under the same material is not validated again.
    ///
    /// # Errors
    /// The [`Rejection`](crate::Rejection) that refuses it; it is also logged, as a
    /// refused handshake is.
    pub fn verify_client_chain(
        &self,
        chain: &[rustls::pki_types::CertificateDer<'_>],
    ) -> std::result::Result<Arc<crate::PeerIdentity>, crate::Rejection> {
        self.current
            .load()
            .trust
            .admit(chain, crate::snapshot::unix_now())
            .map_err(|refused| refused.reason)
    }

    /// An acceptor that runs handshakes with a timeout and returns the peer's identity.
    pub fn acceptor(&self) -> Acceptor<DefaultExtractor> {
        self.acceptor_with(DefaultExtractor)
    }

    /// An acceptor that also maps each peer to the application's principal type.
    pub fn acceptor_with<E: IdentityExtractor>(&self, extractor: E) -> Acceptor<E> {
        Acceptor::new(
            self.current.clone(),
            Arc::new(extractor),
            self.handshake_timeout,
            self.client_hello_timeout,
            self.observer.clone(),
        )
    }
}

/// Lower-cases the SNI names and refuses duplicates and names that are not DNS names.
fn normalize_sni(
    entries: Vec<(String, crate::Identity)>,
) -> Result<Vec<(String, crate::Identity)>> {
    let mut out: Vec<(String, crate::Identity)> = Vec::with_capacity(entries.len());
    for (name, id) in entries {
        let lower = name.trim().trim_end_matches('.').to_ascii_lowercase();
        let bare = lower.strip_prefix("*.").unwrap_or(&lower);
        let valid = !bare.contains('*')
            && matches!(
                rustls::pki_types::ServerName::try_from(bare),
                Ok(rustls::pki_types::ServerName::DnsName(_))
            );
        if !valid {
            return Err(Error::InvalidSniName {
                name,
                reason: "is not a DNS name",
            });
        }
        if out.iter().any(|(n, _)| *n == lower) {
            return Err(Error::InvalidSniName {
                name,
                reason: "is given twice",
            });
        }
        out.push((lower, id));
    }
    Ok(out)
}
