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
    pub(crate) key: Arc<CertifiedKey>,
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
        let key = identity.certified;
        let certificates = crate::material::certificates_in_force(&key.cert, &cas.certs);
        let mut config = self
            .config_builder(spec)?
            .with_client_cert_verifier(trust.clone())
            .with_cert_resolver(Arc::new(FixedKey(
                key.clone(),
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
                key,
                config: Arc::new(config),
                sessions,
                trust_key,
                crls: crls.info.clone(),
                #[cfg(feature = "fetch")]
                stapler: spec.fetch.stapler.clone(),
            },
            crls: crls.info,
            identity: Some((identity.subject, identity.not_after)),
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

/// Serves one snapshot's certified key (stapled, when stapling is on).
#[derive(Debug)]
struct FixedKey(
    Arc<CertifiedKey>,
    #[cfg(feature = "fetch")] Option<Arc<crate::revocation::staple::Stapler>>,
);

impl ResolvesServerCert for FixedKey {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        #[cfg(feature = "fetch")]
        if let Some(stapler) = &self.1 {
            return Some(stapler.staple(&self.0));
        }
        Some(self.0.clone())
    }
}

/// Resolver and verifier of the following config: each call reads the snapshot in force.
#[derive(Debug)]
pub(crate) struct Following(pub(crate) Arc<ArcSwap<ServerSnapshot>>);

impl ResolvesServerCert for Following {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let snapshot = self.0.load();
        #[cfg(feature = "fetch")]
        if let Some(stapler) = &snapshot.stapler {
            return Some(stapler.staple(&snapshot.key));
        }
        Some(snapshot.key.clone())
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
