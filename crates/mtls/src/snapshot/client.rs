//! The client's snapshot and its loader.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionMemoryCache, ResolvesClientCert, Resumption, WebPkiServerVerifier,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, SignatureScheme};

use super::server::schemes;
use super::{Material, load_material, with_revocation};
use crate::error::{Error, Result, Role};
use crate::material::CrlInfo;
use crate::reload::{Load, Loaded};
use crate::spec::{Spec, versions};
use crate::verify::{ServerTrust, delegate_signature_checks};

/// Everything a client handshake needs, as of one generation.
#[derive(Debug)]
pub(crate) struct ClientSnapshot {
    pub(crate) trust: Arc<ServerTrust>,
    pub(crate) key: Option<Arc<CertifiedKey>>,
    /// Resolver, verifier and session store of this snapshot alone: a ticket that
    /// reaches a connection of this snapshot after a reload is never offered by a later
    /// one (rustls also refuses to resume a session made with another verifier or
    /// resolver).
    pub(crate) config: Arc<ClientConfig>,
    /// Copies of `config` that offer other ALPN protocols (HTTP connectors set their own),
    /// made on first use; they share its resolver, verifier and session store.
    alpn_configs: Mutex<Vec<Arc<ClientConfig>>>,
    /// The CRLs in force, to refuse a reload that would roll them back.
    crls: Vec<CrlInfo>,
}

impl ClientSnapshot {
    /// `config`, or a copy of it that offers `alpn` instead.
    pub(crate) fn config_with_alpn(&self, alpn: Option<&[Vec<u8>]>) -> Arc<ClientConfig> {
        let Some(alpn) = alpn.filter(|a| *a != self.config.alpn_protocols.as_slice()) else {
            return self.config.clone();
        };
        let mut copies = self.alpn_configs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = copies.iter().find(|c| c.alpn_protocols == alpn) {
            return c.clone();
        }
        let mut copy = ClientConfig::clone(&self.config);
        copy.alpn_protocols = alpn.to_vec();
        let copy = Arc::new(copy);
        // A handful of ALPN sets at most in practice; never grow without bound.
        if copies.len() >= 8 {
            copies.clear();
        }
        copies.push(copy.clone());
        copy
    }
}

/// Loads client snapshots.
#[derive(Debug)]
pub(crate) struct ClientLoader {
    pub(crate) provider: Arc<CryptoProvider>,
}

impl Load for ClientLoader {
    type Snapshot = ClientSnapshot;
    const SIDE: crate::observe::Side = crate::observe::Side::Client;

    fn load(
        &self,
        spec: &Spec,
        previous: Option<&ClientSnapshot>,
        _generation: u64,
    ) -> Result<Loaded<ClientSnapshot>> {
        let Material {
            cas,
            crls,
            identity,
        } = load_material(
            spec,
            Role::Client,
            &self.provider,
            previous.map(|p| p.crls.as_slice()),
        )?;
        let builder = with_revocation!(
            WebPkiServerVerifier::builder_with_provider(cas.roots.clone(), self.provider.clone())
                .with_crls(crls.ders.iter().cloned()),
            spec.revocation
        );
        let trust = Arc::new(ServerTrust {
            webpki: builder.build().map_err(Error::Verifier)?,
            policy: spec.policy.clone(),
            schemes: schemes(&self.provider),
            #[cfg(feature = "fetch")]
            require_staple: spec
                .fetch
                .require_staple
                .then(|| Arc::new(cas.certs.clone())),
        });
        let info = identity.as_ref().map(|i| (i.subject.clone(), i.not_after));
        let key = identity.map(|i| i.certified);
        let own_chain = key.as_ref().map_or(&[][..], |k| k.cert.as_slice());
        let certificates = crate::material::certificates_in_force(own_chain, &cas.certs);
        let mut config = self
            .config_builder(spec)?
            .dangerous()
            .with_custom_certificate_verifier(trust.clone())
            .with_client_cert_resolver(Arc::new(FixedKey(key.clone())));
        config.alpn_protocols.clone_from(&spec.alpn);
        // A resumed session carries no stapled response: must-staple means full
        // handshakes, so that each connection sees a current one.
        config.resumption = if spec.session_cache == 0 || spec.fetch.require_staple {
            Resumption::disabled()
        } else {
            Resumption::store(Arc::new(ClientSessionMemoryCache::new(spec.session_cache)))
        };
        Ok(Loaded {
            snapshot: ClientSnapshot {
                trust,
                key,
                config: Arc::new(config),
                alpn_configs: Mutex::default(),
                crls: crls.info.clone(),
            },
            crls: crls.info,
            identity: info,
            cas: cas.info,
            certificates,
            // A client's sessions carry its identity as well as its trust, so every
            // reload starts afresh; report it as a trust change unless nothing is new.
            trust_changed: previous.is_some(),
        })
    }
}

impl ClientLoader {
    fn config_builder(
        &self,
        spec: &Spec,
    ) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>> {
        ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&versions(&spec.versions))
            .map_err(Error::Rustls)
    }

    /// A config whose resolver and verifier read the snapshot in force at each
    /// handshake, with resumption off (see the module docs).
    pub(crate) fn following_config(
        &self,
        spec: &Spec,
        current: &Arc<ArcSwap<ClientSnapshot>>,
    ) -> Result<Arc<ClientConfig>> {
        let following = Arc::new(Following(current.clone()));
        let mut config = self
            .config_builder(spec)?
            .dangerous()
            .with_custom_certificate_verifier(following.clone())
            .with_client_cert_resolver(following);
        config.alpn_protocols.clone_from(&spec.alpn);
        config.resumption = Resumption::disabled();
        Ok(Arc::new(config))
    }
}

/// Presents one snapshot's certified key, if it has one.
#[derive(Debug)]
struct FixedKey(Option<Arc<CertifiedKey>>);

impl ResolvesClientCert for FixedKey {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.clone()
    }

    fn has_certs(&self) -> bool {
        self.0.is_some()
    }
}

/// Resolver and verifier of the following config: each call reads the snapshot in force.
#[derive(Debug)]
pub(crate) struct Following(pub(crate) Arc<ArcSwap<ClientSnapshot>>);

impl ResolvesClientCert for Following {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.load().key.clone()
    }

    fn has_certs(&self) -> bool {
        self.0.load().key.is_some()
    }
}

impl ServerCertVerifier for Following {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0.load().trust.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    delegate_signature_checks!(self => self.0.load().trust, schemes: self.0.load().trust.schemes.clone());
}
