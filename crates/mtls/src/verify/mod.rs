//! Certificate verifiers that validate with rustls' WebPki verifiers, then authorize.
//!
//! Path building, signatures, expiry, extended key usage and revocation are all delegated
//! to rustls' [`WebPkiClientVerifier`](rustls::server::WebPkiClientVerifier) and
//! [`WebPkiServerVerifier`](rustls::client::WebPkiServerVerifier); this module never
//! re-implements any of it. Only after the inner verifier accepts a chain does the
//! [`Policy`] run, so an unauthorized peer fails the handshake with the `access_denied`
//! alert and never reaches application code.
//!
//! Every rejection is a `tracing` event at `WARN` level on target `mtls::verify`, with
//! the reason class ([`Rejection`]) and the subject, issuer, serial and SHA-256
//! fingerprint of the certificate that was offered.

use std::sync::Arc;

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DistinguishedName, SignatureScheme};

use crate::cache::IdentityCache;
use crate::identity::{IdentityError, PeerIdentity};
use crate::policy::Policy;

mod rejection;

pub use rejection::Rejection;

/// Logs a rejection with the offered certificate's details.
pub(crate) fn log_rejection(
    side: &'static str,
    reason: &Rejection,
    offered: Option<&PeerIdentity>,
) {
    match offered {
        Some(id) => tracing::warn!(
            target: "mtls::verify",
            side,
            reason = reason.class(),
            detail = %reason,
            subject = id.subject(),
            issuer = id.issuer(),
            serial = id.serial(),
            fingerprint_sha256 = id.fingerprint_sha256(),
            "peer certificate rejected"
        ),
        None => tracing::warn!(
            target: "mtls::verify",
            side,
            reason = reason.class(),
            detail = %reason,
            "peer certificate rejected"
        ),
    }
}

/// A refused peer: the rustls error that picks the alert, and the reason, already logged.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) alert: rustls::Error,
    pub(crate) reason: Rejection,
}

impl From<Refused> for rustls::Error {
    fn from(r: Refused) -> Self {
        r.alert
    }
}

/// Logs why WebPki refused `chain`.
fn webpki_refused(side: &'static str, err: rustls::Error, chain: &[CertificateDer<'_>]) -> Refused {
    let offered = PeerIdentity::from_chain(chain).ok();
    let serial = offered.as_ref().map_or("?", |i| i.serial());
    let reason = Rejection::from_rustls(&err, serial);
    log_rejection(side, &reason, offered.as_ref());
    Refused { alert: err, reason }
}

/// A chain WebPki accepted but whose leaf we cannot parse.
fn unparseable(side: &'static str, e: &IdentityError) -> Refused {
    let reason = Rejection::Unparseable(e.clone());
    log_rejection(side, &reason, None);
    Refused {
        alert: rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
        reason,
    }
}

/// Runs the policy; a refusal is logged and becomes `access_denied`.
fn authorize(side: &'static str, policy: &Policy, identity: &PeerIdentity) -> Result<(), Refused> {
    policy.authorize(identity).map_err(|denied| {
        let reason = Rejection::Policy {
            rule: denied.rule().to_owned(),
            reason: denied.reason().to_owned(),
        };
        log_rejection(side, &reason, Some(identity));
        Refused {
            alert: rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ),
            reason,
        }
    })
}

/// The signature checks of a verifier, delegated to `$target` (an expression over
/// `$s`, the receiver), and its schemes from `$schemes`: the same three methods in each of
/// the snapshot verifiers and in the following verifiers that read them.
macro_rules! delegate_signature_checks {
    ($s:ident => $target:expr, schemes: $schemes:expr) => {
        fn verify_tls12_signature(
            &$s,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            $target.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &$s,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            $target.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&$s) -> Vec<rustls::SignatureScheme> {
            $schemes
        }
    };
}
pub(crate) use delegate_signature_checks;

// === impl ClientTrust ===

/// A server snapshot's trust in clients: the WebPki client verifier over its CAs and
/// CRLs, its policy, and the identities of the chains it accepted. It is the rustls
/// client verifier of the snapshot's config.
#[derive(Debug)]
pub(crate) struct ClientTrust {
    pub(crate) webpki: Arc<dyn ClientCertVerifier>,
    pub(crate) policy: Policy,
    pub(crate) generation: u64,
    /// Changes whenever CAs, CRLs or the policy change; equal epochs mean equal trust.
    pub(crate) epoch: u64,
    pub(crate) mandatory: bool,
    pub(crate) cache: IdentityCache,
    pub(crate) schemes: Vec<SignatureScheme>,
    /// Where the CRL distribution points of the chains first seen go, when the server
    /// follows them.
    pub(crate) discover: Option<Arc<crate::revocation::Discovered>>,
    /// OCSP for client certificates, when on.
    #[cfg(feature = "fetch")]
    pub(crate) ocsp: Option<crate::revocation::ocsp::Check>,
}

impl ClientTrust {
    /// The identity of a chain whose handshake this trust's verifier just accepted.
    pub(crate) fn verified(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Arc<PeerIdentity>, Refused> {
        match self.cache.get(leaf, intermediates, now) {
            Some(id) => Ok(id),
            None => {
                if let Some(discover) = &self.discover {
                    discover.add_from(leaf);
                    intermediates.iter().for_each(|c| discover.add_from(c));
                }
                self.cache
                    .insert(leaf, intermediates, self.generation)
                    .map_err(|e| unparseable("server", &e))
            }
        }
    }

    /// Admits a chain that this trust did not verify during the handshake (a resumed
    /// session, or a handshake that ended after a reload): path validation unless this
    /// exact chain passed it before and has not expired since, then the policy.
    pub(crate) fn admit(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<Arc<PeerIdentity>, Refused> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(Refused {
                alert: rustls::Error::NoCertificatesPresented,
                reason: Rejection::NoCertificate,
            });
        };
        let identity = match self.cache.get(leaf, intermediates, now) {
            Some(id) => id,
            None => {
                if let Err(e) = self.webpki.verify_client_cert(leaf, intermediates, now) {
                    return Err(webpki_refused("server", e, chain));
                }
                self.verified(leaf, intermediates, now)?
            }
        };
        authorize("server", &self.policy, &identity)?;
        #[cfg(feature = "fetch")]
        self.ocsp_cached(chain, &identity)?;
        Ok(identity)
    }

    /// Refuses a chain the OCSP cache knows to be revoked (no network).
    #[cfg(feature = "fetch")]
    pub(crate) fn ocsp_cached(
        &self,
        chain: &[CertificateDer<'_>],
        identity: &PeerIdentity,
    ) -> Result<crate::revocation::ocsp::Verdict, Refused> {
        use crate::revocation::ocsp::Verdict;
        let Some(check) = &self.ocsp else {
            return Ok(Verdict::Good);
        };
        match check.cached(chain) {
            Verdict::Revoked(serial) => {
                let reason = Rejection::Revoked { serial };
                log_rejection("server", &reason, Some(identity));
                Err(Refused {
                    alert: rustls::Error::InvalidCertificate(CertificateError::Revoked),
                    reason,
                })
            }
            verdict => Ok(verdict),
        }
    }
}

impl ClientCertVerifier for ClientTrust {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    /// Empty: an empty list tells clients to send any certificate they have (RFC 8446
    /// §4.3.2), and the list a following verifier could lend would not outlive a reload.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Err(e) = self
            .webpki
            .verify_client_cert(end_entity, intermediates, now)
        {
            let mut chain = Vec::with_capacity(1 + intermediates.len());
            chain.push(end_entity.clone());
            chain.extend(intermediates.iter().cloned());
            return Err(webpki_refused("server", e, &chain).into());
        }
        let identity = self.verified(end_entity, intermediates, now)?;
        authorize("server", &self.policy, &identity)?;
        #[cfg(feature = "fetch")]
        if self.ocsp.is_some() {
            let mut chain = Vec::with_capacity(1 + intermediates.len());
            chain.push(end_entity.clone());
            chain.extend(intermediates.iter().cloned());
            self.ocsp_cached(&chain, &identity)?;
        }
        Ok(ClientCertVerified::assertion())
    }

    delegate_signature_checks!(self => self.webpki, schemes: self.schemes.clone());
}

// === impl ServerTrust ===

/// A client snapshot's trust in servers: the WebPki server verifier (chain, expiry, host
/// name, CRLs) over its CAs, then its server policy. It is the rustls server verifier of
/// the snapshot's config.
#[derive(Debug)]
pub(crate) struct ServerTrust {
    pub(crate) webpki: Arc<dyn ServerCertVerifier>,
    pub(crate) policy: Option<Policy>,
    pub(crate) schemes: Vec<SignatureScheme>,
    /// Must-staple: the CAs to find the server certificate's issuer among.
    #[cfg(feature = "fetch")]
    pub(crate) require_staple: Option<Arc<Vec<CertificateDer<'static>>>>,
}

impl ServerTrust {
    /// Checks a server chain outside a handshake (one that ended after a reload).
    pub(crate) fn admit(
        &self,
        chain: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(rustls::Error::NoCertificatesPresented);
        };
        // The stapled response (when required) was checked during the handshake.
        self.verify(leaf, intermediates, server_name, None, now)
    }

    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: Option<&[u8]>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let chain = || {
            let mut chain = vec![end_entity.clone()];
            chain.extend(intermediates.iter().cloned());
            chain
        };
        if let Err(e) = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response.unwrap_or_default(),
            now,
        ) {
            return Err(webpki_refused("client", e, &chain()).into());
        }
        #[cfg(feature = "fetch")]
        if let (Some(cas), Some(response)) = (&self.require_staple, ocsp_response) {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now.as_secs());
            if let Err(reason) =
                crate::revocation::ocsp::check_staple(end_entity, intermediates, cas, response, at)
            {
                let offered = PeerIdentity::from_parts(end_entity, intermediates).ok();
                log_rejection("client", &reason, offered.as_ref());
                let alert = match reason {
                    Rejection::Revoked { .. } => CertificateError::Revoked,
                    _ => CertificateError::InvalidOcspResponse,
                };
                return Err(rustls::Error::InvalidCertificate(alert));
            }
        }
        if let Some(policy) = &self.policy {
            let identity = PeerIdentity::from_parts(end_entity, intermediates)
                .map_err(|e| unparseable("client", &e))?;
            authorize("client", policy, &identity)?;
        }
        Ok(())
    }
}

impl ServerCertVerifier for ServerTrust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verify(
            end_entity,
            intermediates,
            server_name,
            Some(ocsp_response),
            now,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    delegate_signature_checks!(self => self.webpki, schemes: self.schemes.clone());
}
