//! What a side is built from: the paths and options a builder collects, shared by the
//! server and the client.
//!
//! A [`Spec`] is plain data. The loaders in [`snapshot`](crate::snapshot) turn it into an
//! immutable snapshot; the reloader keeps it and loads it again on every reload. The
//! builders' setters for what both sides share are written once, by [`shared_setters`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;

use crate::keys::Password;
use crate::policy::Policy;

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

/// Where a side's own certificate and key come from.
#[derive(Debug, Clone)]
pub(crate) enum IdentitySource {
    /// A certificate (chain) file and a key file (the same file for a combined PEM); the
    /// key may be encrypted (see [`Spec::key_password`]).
    Pem { cert: PathBuf, key: PathBuf },
    /// One PKCS#12 file with the key and its chain.
    Pkcs12 { path: PathBuf, password: Password },
    /// A certificate chain file and a key that signs elsewhere (KMS, PKCS#11).
    Signer {
        cert: PathBuf,
        key: Arc<dyn crate::signer::KeySigner>,
    },
}

impl IdentitySource {
    fn paths(&self) -> Vec<PathBuf> {
        match self {
            Self::Pem { cert, key } if cert == key => vec![cert.clone()],
            Self::Pem { cert, key } => vec![cert.clone(), key.clone()],
            Self::Signer { cert, .. } => vec![cert.clone()],
            Self::Pkcs12 { path, password } => {
                let mut v = vec![path.clone()];
                v.extend(password.path().map(std::path::Path::to_path_buf));
                v
            }
        }
    }
}

/// A server identity from files, for one SNI name
/// ([`ServerBuilder::sni_identity`](crate::ServerBuilder::sni_identity)): a PEM
/// certificate chain and key (maybe encrypted), or a PKCS#12 file.
///
/// ```
/// use mtls::{Identity, Password};
/// let api = Identity::pem("api.crt", "api.key").key_password(Password::from_env("API_KEY_PASS"));
/// let admin = Identity::pkcs12("admin.p12", Password::from_file("admin.pass"));
/// # let _ = (api, admin);
/// ```
#[derive(Debug, Clone)]
pub struct Identity {
    pub(crate) source: IdentitySource,
    pub(crate) key_password: Password,
}

impl Identity {
    /// A certificate chain file (leaf first) and a key file; the same file for a
    /// combined PEM.
    pub fn pem(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            source: IdentitySource::Pem {
                cert: cert.into(),
                key: key.into(),
            },
            key_password: Password::none(),
        }
    }

    /// A PKCS#12 file with the key and its chain.
    pub fn pkcs12(path: impl Into<PathBuf>, password: Password) -> Self {
        Self {
            source: IdentitySource::Pkcs12 {
                path: path.into(),
                password,
            },
            key_password: Password::none(),
        }
    }

    /// A certificate chain file and a key that signs elsewhere (see
    /// [`signer`](crate::signer)).
    pub fn signer(cert: impl Into<PathBuf>, key: impl crate::signer::KeySigner) -> Self {
        Self {
            source: IdentitySource::Signer {
                cert: cert.into(),
                key: Arc::new(key),
            },
            key_password: Password::none(),
        }
    }

    /// The password of an encrypted PEM key (see
    /// [`ServerBuilder::key_password`](crate::ServerBuilder::key_password)).
    #[must_use]
    pub fn key_password(mut self, password: Password) -> Self {
        self.key_password = password;
        self
    }

    fn paths(&self) -> Vec<PathBuf> {
        let mut v = self.source.paths();
        if matches!(self.source, IdentitySource::Pem { .. })
            && let Some(p) = self.key_password.path()
        {
            v.push(p.to_path_buf());
        }
        v
    }
}

/// A file of CA certificates: PEM / DER, or a PKCS#12 trust bundle with its password.
#[derive(Debug, Clone)]
pub(crate) struct CaSource {
    pub(crate) path: PathBuf,
    pub(crate) pkcs12: Option<Password>,
}

/// How revocation is checked against the configured CRLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Revocation {
    pub(crate) whole_chain: bool,
    pub(crate) allow_unknown: bool,
    pub(crate) enforce_expiry: bool,
}

/// Everything a side is loaded from; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) identity: Option<IdentitySource>,
    /// The password of an encrypted PEM key (none by default).
    pub(crate) key_password: Password,
    pub(crate) cas: Vec<CaSource>,
    /// Server only: identities chosen by the name the client asks for (SNI), in the
    /// order given; names are lower case, `*.` wildcards allowed.
    pub(crate) sni: Vec<(String, Identity)>,
    pub(crate) crls: Vec<PathBuf>,
    /// The server's client policy, or the client's server policy.
    pub(crate) policy: Option<Policy>,
    /// Bumped by every `set_policy`, which therefore always counts as a trust change
    /// (two custom policies cannot be compared).
    pub(crate) policy_version: u64,
    pub(crate) revocation: Revocation,
    pub(crate) versions: Vec<TlsVersion>,
    pub(crate) alpn: Vec<Vec<u8>>,
    pub(crate) provider: Option<Arc<CryptoProvider>>,
    pub(crate) check_identity_chain: bool,
    pub(crate) expiry_warning: Duration,
    pub(crate) session_cache: usize,
    pub(crate) observer: crate::observe::Slot,
    /// Fetched revocation data (see [`revocation`](crate::revocation)).
    pub(crate) fetch: crate::revocation::Sources,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            identity: None,
            key_password: Password::none(),
            cas: Vec::new(),
            sni: Vec::new(),
            crls: Vec::new(),
            policy: None,
            policy_version: 0,
            revocation: Revocation::default(),
            versions: vec![TlsVersion::Tls13, TlsVersion::Tls12],
            alpn: Vec::new(),
            provider: None,
            check_identity_chain: true,
            expiry_warning: Duration::from_secs(14 * 24 * 3600),
            session_cache: 256,
            observer: crate::observe::Slot::default(),
            fetch: crate::revocation::Sources::default(),
        }
    }
}

impl Spec {
    /// The files the side is read from (what file watching follows).
    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        if let Some(id) = &self.identity {
            v.extend(id.paths());
            if matches!(id, IdentitySource::Pem { .. })
                && let Some(p) = self.key_password.path()
            {
                v.push(p.to_path_buf());
            }
        }
        for (_, id) in &self.sni {
            v.extend(id.paths());
        }
        for ca in &self.cas {
            v.push(ca.path.clone());
            v.extend(
                ca.pkcs12
                    .as_ref()
                    .and_then(Password::path)
                    .map(std::path::Path::to_path_buf),
            );
        }
        v.extend(self.crls.iter().cloned());
        v
    }
}

/// The setters both builders share, written once. Expands inside `impl XBuilder` for a
/// builder whose `spec` field is a [`Spec`]; `$side` names the peer in the docs.
macro_rules! shared_setters {
    (own = $own:literal, peer = $peer:literal) => {
        #[doc = concat!("The ", $own, "'s certificate chain (leaf first, then intermediates) and")]
        /// private key. Both may be the same file (`cat my.crt my.key > my.pem`). An
        /// encrypted key needs [`key_password`](Self::key_password).
        pub fn identity(
            mut self,
            cert: impl Into<std::path::PathBuf>,
            key: impl Into<std::path::PathBuf>,
        ) -> Self {
            self.spec.identity = Some($crate::spec::IdentitySource::Pem {
                cert: cert.into(),
                key: key.into(),
            });
            self
        }

        /// The password of an encrypted key given to [`identity`](Self::identity)
        /// (PKCS#8 `ENCRYPTED PRIVATE KEY`, or `Proc-Type: 4,ENCRYPTED`), read at build
        /// and at every reload; a password file is watched with the key. Without it an
        /// encrypted key fails with [`Error::EncryptedKey`](crate::Error::EncryptedKey).
        pub fn key_password(mut self, password: $crate::Password) -> Self {
            self.spec.key_password = password;
            self
        }

        #[doc = concat!("The ", $own, "'s identity from one PKCS#12 file (`.p12` / `.pfx`, as")]
        /// `openssl pkcs12 -export` writes it): the key, the certificate that matches it
        /// (wherever it is in the file) and the intermediates that chain it, in place of
        /// [`identity`](Self::identity). It is reloaded and watched like a PEM pair, and
        /// goes through the same checks. Use [`Password::none`](crate::Password::none) for
        /// a file exported with an empty password or without encryption. See
        /// [`pkcs12`](crate::pkcs12).
        pub fn identity_pkcs12(
            mut self,
            path: impl Into<std::path::PathBuf>,
            password: $crate::Password,
        ) -> Self {
            self.spec.identity = Some($crate::spec::IdentitySource::Pkcs12 {
                path: path.into(),
                password,
            });
            self
        }

        #[doc = concat!("The ", $own, "'s certificate chain (a file, leaf first) with a key that")]
        /// signs elsewhere: a cloud KMS, an agent, a PKCS#11 token (see
        /// [`signer`](crate::signer); with the feature `pkcs11`, `mtls::pkcs11::Pkcs11Key`).
        /// In place of [`identity`](Self::identity); the certificate file is reloaded and
        /// watched, and the key is checked against it by a test signature at build and
        /// every reload.
        pub fn identity_signer(
            mut self,
            cert: impl Into<std::path::PathBuf>,
            key: impl $crate::signer::KeySigner,
        ) -> Self {
            self.spec.identity = Some($crate::spec::IdentitySource::Signer {
                cert: cert.into(),
                key: std::sync::Arc::new(key),
            });
            self
        }

        #[doc = concat!("A file of CA certificates that ", $peer, " certificates are verified")]
        /// with. Call it again to trust several bundles at once, e.g. the old and the new
        /// CA while certificates move from one to the other.
        pub fn ca(mut self, path: impl Into<std::path::PathBuf>) -> Self {
            self.spec.cas.push($crate::spec::CaSource {
                path: path.into(),
                pkcs12: None,
            });
            self
        }

        /// Like [`ca`](Self::ca), from a PKCS#12 file of CA certificates (a trust bundle,
        /// e.g. `openssl pkcs12 -export -nokeys -in ca.crt -out ca.p12`; Java
        /// truststores exported as PKCS#12). Every certificate in it is trusted; a key in
        /// it is ignored.
        pub fn ca_pkcs12(
            mut self,
            path: impl Into<std::path::PathBuf>,
            password: $crate::Password,
        ) -> Self {
            self.spec.cas.push($crate::spec::CaSource {
                path: path.into(),
                pkcs12: Some(password),
            });
            self
        }

        #[doc = concat!("A CRL file (PEM or DER) issued by one of the CAs, checked against ")]
        #[doc = concat!("the ", $peer, "'s certificate. May be called again.")]
        ///
        /// By default only the peer's own certificate is checked, as `openssl verify
        /// -crl_check` does, and a peer whose issuer has no CRL is refused (unknown
        /// revocation status); see
        /// [`revocation_check_whole_chain`](Self::revocation_check_whole_chain) and
        /// [`allow_unknown_revocation_status`](Self::allow_unknown_revocation_status). A
        /// CRL past its nextUpdate is still used (and logged) unless
        /// [`enforce_crl_expiry`](Self::enforce_crl_expiry) is set.
        pub fn crl(mut self, path: impl Into<std::path::PathBuf>) -> Self {
            self.spec.crls.push(path.into());
            self
        }

        /// Check revocation of every certificate in the chain, not just the peer's (every
        /// CA in the chain then needs a CRL).
        pub fn revocation_check_whole_chain(mut self) -> Self {
            self.spec.revocation.whole_chain = true;
            self
        }

        #[doc = concat!("Accept a ", $peer, " whose issuer has no configured CRL.")]
        pub fn allow_unknown_revocation_status(mut self) -> Self {
            self.spec.revocation.allow_unknown = true;
            self
        }

        #[doc = concat!("Refuse ", $peer, "s while a CRL is past its nextUpdate.")]
        pub fn enforce_crl_expiry(mut self) -> Self {
            self.spec.revocation.enforce_expiry = true;
            self
        }

        /// The TLS versions offered. Default: TLS 1.3 and TLS 1.2.
        pub fn tls_versions(mut self, versions: &[$crate::TlsVersion]) -> Self {
            self.spec.versions = versions.to_vec();
            self
        }

        /// ALPN protocols, most preferred first (e.g. `["h2", "http/1.1"]`). Default: none.
        pub fn alpn<I, P>(mut self, protocols: I) -> Self
        where
            I: IntoIterator<Item = P>,
            P: AsRef<[u8]>,
        {
            self.spec.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
            self
        }

        /// The crypto provider; see [`provider`](crate::provider) for the default.
        pub fn crypto_provider(
            mut self,
            provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
        ) -> Self {
            self.spec.provider = Some(provider);
            self
        }

        #[doc = concat!("Whether to check, at build and reload, that the ", $own, "'s own chain")]
        /// leads to one of the configured CAs (default on; a chain whose issuer is a CA not
        /// configured here is accepted as long as the file holds the intermediate). Turn it
        /// off for a lone leaf issued directly by a root the peer trusts but this side was
        /// not given.
        pub fn check_identity_chain(mut self, on: bool) -> Self {
            self.spec.check_identity_chain = on;
            self
        }

        #[doc = concat!("Warn (event and log) when the ", $own, " certificate expires within")]
        /// this window. Default 14 days.
        pub fn expiry_warning(mut self, window: std::time::Duration) -> Self {
            self.spec.expiry_warning = window;
            self
        }

        /// Number of sessions kept for resumption. Default 256; 0 disables resumption.
        pub fn session_cache(mut self, size: usize) -> Self {
            self.spec.session_cache = size;
            self
        }

        /// Reports handshakes, reloads and the material in force to `observer` (see
        /// [`observe`](crate::observe); with the feature `metrics`,
        /// `mtls::metrics::MetricsObserver` records them as Prometheus-style metrics). One
        /// observer may serve several servers and clients: pass an `Arc`.
        pub fn observer(mut self, observer: impl $crate::observe::Observer) -> Self {
            self.spec.observer = $crate::observe::Slot(Some(std::sync::Arc::new(observer)));
            self
        }
    };
}
pub(crate) use shared_setters;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_paths_cover_every_identity_and_password_file() {
        let spec = Spec {
            identity: Some(IdentitySource::Pkcs12 {
                path: "id.p12".into(),
                password: Password::from_file("id.pass"),
            }),
            sni: vec![
                (
                    "a.example".to_owned(),
                    Identity::pem("a.crt", "a.key").key_password(Password::from_file("a.pass")),
                ),
                (
                    "b.example".to_owned(),
                    Identity::pkcs12("b.p12", Password::from_env("B")),
                ),
            ],
            cas: vec![CaSource {
                path: "ca.p12".into(),
                pkcs12: Some(Password::none()),
            }],
            ..Spec::default()
        };
        let paths: Vec<String> = spec
            .paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "id.p12", "id.pass", "a.crt", "a.key", "a.pass", "b.p12", "ca.p12"
            ]
        );
    }
}
