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

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DistinguishedName, SignatureScheme};

use crate::cache::IdentityCache;
use crate::error::fmt_time;
use crate::identity::PeerIdentity;
use crate::policy::Policy;

/// Why a peer's certificate was refused; the `reason` field of rejection events.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The peer sent no certificate where one is required.
    NoCertificate,
    /// The chain does not lead to a trusted CA (unknown CA, or a missing intermediate).
    UnknownIssuer,
    /// The certificate (or one in its chain) has expired.
    Expired {
        /// When it expired, RFC 3339, when known.
        not_after: Option<String>,
    },
    /// The certificate is not valid yet.
    NotYetValid {
        /// When it becomes valid, RFC 3339, when known.
        not_before: Option<String>,
    },
    /// The certificate is revoked by a configured CRL.
    Revoked {
        /// Serial of the revoked certificate, hex.
        serial: String,
    },
    /// No CRL covers the certificate's issuer while revocation checking is on.
    UnknownRevocationStatus,
    /// The extended key usage does not allow this role.
    BadExtendedKeyUsage,
    /// The certificate does not match the expected server name.
    NameMismatch,
    /// A signature in the chain or the handshake does not verify.
    BadSignature,
    /// The certificate is valid but the policy refused it.
    Policy {
        /// The rule that refused it.
        rule: String,
        /// Why.
        reason: String,
    },
    /// Anything else, in rustls' words.
    Other(String),
}

impl Rejection {
    /// Classifies a rustls certificate error.
    pub(crate) fn from_rustls(err: &rustls::Error, serial: &str) -> Self {
        let rustls::Error::InvalidCertificate(e) = err else {
            return match err {
                rustls::Error::NoCertificatesPresented => Self::NoCertificate,
                other => Self::Other(other.to_string()),
            };
        };
        match e {
            CertificateError::UnknownIssuer => Self::UnknownIssuer,
            CertificateError::Expired => Self::Expired { not_after: None },
            CertificateError::ExpiredContext { not_after, .. } => Self::Expired {
                not_after: Some(fmt_unix(*not_after)),
            },
            CertificateError::NotValidYet => Self::NotYetValid { not_before: None },
            CertificateError::NotValidYetContext { not_before, .. } => Self::NotYetValid {
                not_before: Some(fmt_unix(*not_before)),
            },
            CertificateError::Revoked => Self::Revoked {
                serial: serial.to_owned(),
            },
            CertificateError::UnknownRevocationStatus => Self::UnknownRevocationStatus,
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                Self::BadExtendedKeyUsage
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Self::NameMismatch
            }
            CertificateError::BadSignature => Self::BadSignature,
            other => Self::Other(format!("{other:?}")),
        }
    }

    /// A short, stable name for the class: `no_certificate`, `unknown_issuer`, `expired`,
    /// `not_yet_valid`, `revoked`, `unknown_revocation_status`, `bad_eku`, `name_mismatch`,
    /// `bad_signature`, `policy`, `other`.
    pub fn class(&self) -> &'static str {
        match self {
            Self::NoCertificate => "no_certificate",
            Self::UnknownIssuer => "unknown_issuer",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::Revoked { .. } => "revoked",
            Self::UnknownRevocationStatus => "unknown_revocation_status",
            Self::BadExtendedKeyUsage => "bad_eku",
            Self::NameMismatch => "name_mismatch",
            Self::BadSignature => "bad_signature",
            Self::Policy { .. } => "policy",
            Self::Other(_) => "other",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCertificate => f.write_str(
                "no certificate presented (\"no certificate returned\"): configure the client \
                 with its certificate and key (curl --cert/--key)",
            ),
            Self::UnknownIssuer => f.write_str(
                "unknown issuer (\"unable to get local issuer certificate\"): the chain does not \
                 lead to a trusted CA; send the intermediate after the leaf, or trust the CA",
            ),
            Self::Expired { not_after } => match not_after {
                Some(t) => write!(
                    f,
                    "certificate expired on {t} (\"certificate has expired\")"
                ),
                None => f.write_str("certificate expired (\"certificate has expired\")"),
            },
            Self::NotYetValid { not_before } => match not_before {
                Some(t) => write!(f, "certificate not valid until {t}; check clocks"),
                None => f.write_str("certificate not valid yet; check clocks"),
            },
            Self::Revoked { serial } => write!(f, "certificate serial {serial} is revoked"),
            Self::UnknownRevocationStatus => f.write_str(
                "no CRL covers the certificate's issuer; add that CA's CRL or allow unknown \
                 revocation status",
            ),
            Self::BadExtendedKeyUsage => f.write_str(
                "extended key usage does not allow this role (clientAuth / serverAuth missing)",
            ),
            Self::NameMismatch => f.write_str(
                "certificate is not valid for the server name (subjectAltName does not match)",
            ),
            Self::BadSignature => f.write_str("a signature does not verify"),
            Self::Policy { rule, reason } => write!(f, "denied by policy rule `{rule}`: {reason}"),
            Self::Other(s) => write!(f, "{s}"),
        }
    }
}

fn fmt_unix(t: UnixTime) -> String {
    fmt_time(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.as_secs()))
}

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
fn unparseable(side: &'static str, e: &crate::identity::IdentityError) -> Refused {
    let reason = Rejection::Other(e.to_string());
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
            None => self
                .cache
                .insert(leaf, intermediates, self.generation)
                .map_err(|e| unparseable("server", &e)),
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
        Ok(identity)
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
        self.verify_server_cert(leaf, intermediates, server_name, &[], now)
            .map(|_| ())
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
        let chain = || {
            let mut chain = vec![end_entity.clone()];
            chain.extend(intermediates.iter().cloned());
            chain
        };
        if let Err(e) = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            return Err(webpki_refused("client", e, &chain()).into());
        }
        if let Some(policy) = &self.policy {
            let identity = PeerIdentity::from_parts(end_entity, intermediates)
                .map_err(|e| unparseable("client", &e))?;
            authorize("client", policy, &identity)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    delegate_signature_checks!(self => self.webpki, schemes: self.schemes.clone());
}
