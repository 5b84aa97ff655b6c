//! The server's snapshot and its loader.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{
    ClientHello, NoServerSessionStorage, ResolvesServerCert, ServerSessionMemoryCache,
    StoresServerSessions, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{DistinguishedName, ServerConfig, SignatureScheme};

use super::{Material, TrustKey, load_material, with_revocation};
use crate::error::{Error, Result, Role};
use crate::material::CrlInfo;
use crate::reload::{Load, Loaded};
use crate::spec::{Spec, versions};
use crate::verify::{ClientTrust, delegate_signature_checks};

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

/// Everything a server handshake needs, as of one generation.
#[derive(Debug)]
pub(crate) struct ServerSnapshot {
    pub(crate) generation: u64,
    pub(crate) trust: Arc<ClientTrust>,
    /// The default identity and the ones chosen by SNI.
    pub(crate) keys: Arc<Keys>,
    /// Resolver, verifier and session store of this snapshot.
    pub(crate) config: Arc<ServerConfig>,
    /// Shared by the snapshots of one trust epoch, and only by them.
    sessions: Arc<dyn StoresServerSessions>,
    trust_key: TrustKey,
    /// The CRLs in force, to refuse a reload that would roll them back.
    crls: Vec<CrlInfo>,
    /// OCSP stapling of the key, when on.
    #[cfg(feature = "fetch")]
    pub(crate) stapler: Option<Arc<crate::revocation::staple::Stapler>>,
}

/// Loads server snapshots; holds what cannot change by reloading.
#[derive(Debug)]
pub(crate) struct ServerLoader {
    pub(crate) provider: Arc<CryptoProvider>,
    pub(crate) client_auth: ClientAuth,
}

impl Load for ServerLoader {
    type Snapshot = ServerSnapshot;
    const SIDE: crate::observe::Side = crate::observe::Side::Server;

    fn load(
        &self,
        spec: &Spec,
        previous: Option<&ServerSnapshot>,
        generation: u64,
    ) -> Result<Loaded<ServerSnapshot>> {
        let policy = spec.policy.clone().ok_or(Error::MissingPolicy)?;
        let Material {
            cas,
            crls,
            identity,
        } = load_material(
            spec,
            Role::Server,
            &self.provider,
            previous.map(|p| p.crls.as_slice()),
        )?;
        let identity = identity.ok_or(Error::MissingIdentity { role: Role::Server })?;
        let mut builder = with_revocation!(
            WebPkiClientVerifier::builder_with_provider(cas.roots.clone(), self.provider.clone())
                .with_crls(crls.ders.iter().cloned()),
            spec.revocation
        );
        if self.client_auth == ClientAuth::Optional {
            builder = builder.allow_unauthenticated();
        }
        let webpki = builder.build().map_err(Error::Verifier)?;

        let trust_key = TrustKey::new(spec, &cas.certs, &crls.ders);
        let (epoch, sessions, trust_changed) = match previous {
            Some(p) if p.trust_key == trust_key => (p.trust.epoch, p.sessions.clone(), false),
            Some(p) => (p.trust.epoch + 1, session_store(spec.session_cache), true),
            None => (1, session_store(spec.session_cache), false),
        };
        let trust = Arc::new(ClientTrust {
            webpki,
            policy,
            generation,
            epoch,
            mandatory: self.client_auth == ClientAuth::Required,
            cache: Default::default(),
            schemes: schemes(&self.provider),
            discover: spec.fetch.from_dp.then(|| spec.fetch.discovered.clone()),
            #[cfg(feature = "fetch")]
            ocsp: spec
                .fetch
                .ocsp
                .clone()
                .map(|ocsp| crate::revocation::ocsp::Check {
                    ocsp,
                    cas: Arc::new(cas.certs.clone()),
                    random: self.provider.secure_random,
                }),
        });
        let mut certificates =
            crate::material::certificates_in_force(&identity.certified.cert, &cas.certs);
        // The identity reported (expiry warning, health): the one that expires first.
        let mut first_expiry = (identity.subject.clone(), identity.not_after);
        let mut by_name = std::collections::HashMap::new();
        for (name, id) in &spec.sni {
            let raw = crate::material::read_identity(&id.source, &id.key_password, &self.provider)?;
            let path = raw.cert_path.clone();
            let loaded = crate::material::load_identity(
                raw,
                &self.provider,
                crate::material::IdentityChecks {
                    role: Role::Server,
                    cas: &cas,
                    crls: &crls.ders,
                    check_chain: spec.check_identity_chain,
                    now: std::time::SystemTime::now(),
                },
            )?;
            crate::material::check_sni_name(&loaded.certified.cert, name, &path)?;
            certificates.extend(crate::material::certificates_in_force(
                &loaded.certified.cert[..1],
                &[],
            ));
            if loaded.not_after < first_expiry.1 {
                first_expiry = (loaded.subject.clone(), loaded.not_after);
            }
            by_name.insert(name.clone(), loaded.certified);
        }
        let keys = Arc::new(Keys {
            default: identity.certified,
            by_name,
        });
        let mut config = self
            .config_builder(spec)?
            .with_client_cert_verifier(trust.clone())
            .with_cert_resolver(Arc::new(SnapshotKeys(
                keys.clone(),
                #[cfg(feature = "fetch")]
                spec.fetch.stapler.clone(),
            )));
        config.alpn_protocols.clone_from(&spec.alpn);
        config.session_storage = sessions.clone();
        if spec.session_cache == 0 {
            config.send_tls13_tickets = 0;
        }
        Ok(Loaded {
            snapshot: ServerSnapshot {
                generation,
                trust,
                keys,
                config: Arc::new(config),
                sessions,
                trust_key,
                crls: crls.info.clone(),
                #[cfg(feature = "fetch")]
                stapler: spec.fetch.stapler.clone(),
            },
            crls: crls.info,
            identity: Some(first_expiry),
            cas: cas.info,
            certificates,
            trust_changed,
        })
    }
}

impl ServerLoader {
    fn config_builder(
        &self,
        spec: &Spec,
    ) -> Result<rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier>> {
        ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&versions(&spec.versions))
            .map_err(Error::Rustls)
    }

    /// A config whose resolver and verifier read the snapshot in force at each
    /// handshake, with resumption off (see the module docs).
    pub(crate) fn following_config(
        &self,
        spec: &Spec,
        current: &Arc<ArcSwap<ServerSnapshot>>,
    ) -> Result<Arc<ServerConfig>> {
        let following = Arc::new(Following(current.clone()));
        let mut config = self
            .config_builder(spec)?
            .with_client_cert_verifier(following.clone())
            .with_cert_resolver(following);
        config.alpn_protocols.clone_from(&spec.alpn);
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Arc::new(config))
    }
}

fn session_store(size: usize) -> Arc<dyn StoresServerSessions> {
    if size == 0 {
        Arc::new(NoServerSessionStorage {})
    } else {
        ServerSessionMemoryCache::new(size)
    }
}

pub(crate) fn schemes(provider: &CryptoProvider) -> Vec<SignatureScheme> {
    provider
        .signature_verification_algorithms
        .supported_schemes()
}

/// A snapshot's identities: the default, and those chosen by the SNI name.
#[derive(Debug)]
pub(crate) struct Keys {
    pub(crate) default: Arc<CertifiedKey>,
    /// Lower-case names; a `*.rest` key serves every `label.rest`.
    pub(crate) by_name: std::collections::HashMap<String, Arc<CertifiedKey>>,
}

impl Keys {
    /// The identity for the SNI name `name`: an exact entry, else a `*.` entry for its
    /// parent domain, else the default (also for a client that sends no SNI).
    pub(crate) fn pick(&self, name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = name else {
            return &self.default;
        };
        if self.by_name.is_empty() {
            return &self.default;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(k) = self.by_name.get(&name) {
            return k;
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(k) = self.by_name.get(&format!("*.{parent}"))
        {
            return k;
        }
        &self.default
    }
}

/// Serves one snapshot's identities (the default one stapled, when stapling is on: the
/// stapler fetches for the default identity's certificate).
#[derive(Debug)]
struct SnapshotKeys(
    Arc<Keys>,
    #[cfg(feature = "fetch")] Option<Arc<crate::revocation::staple::Stapler>>,
);

impl ResolvesServerCert for SnapshotKeys {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let key = self.0.pick(hello.server_name());
        #[cfg(feature = "fetch")]
        if let Some(stapler) = &self.1 {
            return Some(stapler.staple(key));
        }
        Some(key.clone())
    }
}

/// Resolver and verifier of the following config: each call reads the snapshot in force.
#[derive(Debug)]
pub(crate) struct Following(pub(crate) Arc<ArcSwap<ServerSnapshot>>);

impl ResolvesServerCert for Following {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let snapshot = self.0.load();
        let key = snapshot.keys.pick(hello.server_name());
        #[cfg(feature = "fetch")]
        if let Some(stapler) = &snapshot.stapler {
            return Some(stapler.staple(key));
        }
        Some(key.clone())
    }
}

impl ClientCertVerifier for Following {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.load().trust.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let snapshot = self.0.load();
        let verified = snapshot
            .trust
            .verify_client_cert(end_entity, intermediates, now)?;
        // No acceptor follows this config: an OCSP status not cached is fetched in the
        // background, and until then the failure mode decides.
        #[cfg(feature = "fetch")]
        if let Some(check) = &snapshot.trust.ocsp {
            let mut chain = vec![end_entity.clone().into_owned()];
            chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
            if check.cached(&chain) == crate::revocation::ocsp::Verdict::Pending {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let check = check.clone();
                    rt.spawn(async move {
                        let _ = check.admit(&chain).await;
                    });
                }
                if check.ocsp.settings.failure == crate::revocation::OcspFailure::Hard {
                    let reason = crate::Rejection::OcspUnavailable {
                        reason: "not cached yet (fetching in the background)".to_owned(),
                    };
                    crate::verify::log_rejection("server", &reason, None);
                    return Err(rustls::Error::InvalidCertificate(
                        rustls::CertificateError::ApplicationVerificationFailure,
                    ));
                }
            }
        }
        Ok(verified)
    }

    delegate_signature_checks!(self => self.0.load().trust, schemes: self.0.load().trust.schemes.clone());
}
