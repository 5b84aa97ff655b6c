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

use std::collections::HashMap;
use std::fmt;
#[cfg(test)]
use std::hash::Hash;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

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

/// Logs why WebPki refused `chain` and hands its error back.
fn webpki_refused(
    side: &'static str,
    err: rustls::Error,
    chain: &[CertificateDer<'_>],
) -> rustls::Error {
    let offered = PeerIdentity::from_chain(chain).ok();
    let serial = offered.as_ref().map_or("?", |i| i.serial());
    log_rejection(
        side,
        &Rejection::from_rustls(&err, serial),
        offered.as_ref(),
    );
    err
}

/// A chain WebPki accepted but whose leaf we cannot parse.
fn unparseable(side: &'static str, e: &crate::identity::IdentityError) -> rustls::Error {
    log_rejection(side, &Rejection::Other(e.to_string()), None);
    rustls::Error::InvalidCertificate(CertificateError::BadEncoding)
}

/// Runs the policy; a refusal is logged and becomes `access_denied`.
fn authorize(
    side: &'static str,
    policy: &Policy,
    identity: &PeerIdentity,
) -> Result<(), rustls::Error> {
    policy.authorize(identity).map_err(|denied| {
        let reason = Rejection::Policy {
            rule: denied.rule().to_owned(),
            reason: denied.reason().to_owned(),
        };
        log_rejection(side, &reason, Some(identity));
        rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
    })
}

// === impl IdentityCache ===

/// Identities parsed by the verifier, handed to the acceptor after the handshake so the
/// leaf is parsed once per connection (and not at all for a repeat client).
#[derive(Debug, Default)]
pub(crate) struct IdentityCache {
    map: Mutex<LeafMap>,
}

type LeafMap = HashMap<Box<[u8]>, Arc<PeerIdentity>, BuildHasherDefault<TailHasher>>;

/// Hashes a certificate by its length and its last 32 bytes, which lie in its signature:
/// cheaper than hashing the whole DER on every connection, and as good a key, since the
/// map compares the whole DER on a hit. Only verified certificates are cached, so a
/// peer cannot craft colliding keys without its CA signing them.
#[derive(Debug, Default)]
struct TailHasher(u64);

impl TailHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(23) ^ word).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(32)..];
        for chunk in tail.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

const IDENTITY_CACHE_MAX: usize = 4096;

impl IdentityCache {
    pub(crate) fn get(&self, leaf: &[u8]) -> Option<Arc<PeerIdentity>> {
        self.map.lock().ok()?.get(leaf).cloned()
    }

    pub(crate) fn insert(&self, leaf: &[u8], id: Arc<PeerIdentity>) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= IDENTITY_CACHE_MAX && !map.contains_key(leaf) {
                map.clear();
            }
            map.insert(leaf.into(), id);
        }
    }

    /// Returns the identity of `chain`, from the cache when possible, with `generation` set.
    pub(crate) fn identity(
        &self,
        chain: &[CertificateDer<'_>],
        generation: u64,
    ) -> Result<Arc<PeerIdentity>, crate::identity::IdentityError> {
        let leaf = chain.first().map(|c| c.as_ref()).unwrap_or_default();
        if let Some(id) = self.get(leaf) {
            if id.generation() == generation {
                return Ok(id);
            }
            let mut id = PeerIdentity::clone(&id);
            id.set_generation(generation);
            let id = Arc::new(id);
            self.insert(leaf, id.clone());
            return Ok(id);
        }
        let mut id = PeerIdentity::from_chain(chain)?;
        id.set_generation(generation);
        let id = Arc::new(id);
        self.insert(leaf, id.clone());
        Ok(id)
    }
}

// === impl ClientVerifier ===

/// The trust material a server verifies clients with; swapped as a whole on reload.
#[derive(Debug)]
pub(crate) struct ClientTrust {
    pub(crate) webpki: Arc<dyn ClientCertVerifier>,
    pub(crate) policy: Policy,
    pub(crate) generation: u64,
}

/// The server side: WebPki client verification, then the policy.
#[derive(Debug)]
pub(crate) struct ClientVerifier {
    pub(crate) trust: Arc<ArcSwap<ClientTrust>>,
    pub(crate) mandatory: bool,
    pub(crate) cache: Arc<IdentityCache>,
    pub(crate) schemes: Vec<SignatureScheme>,
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    /// Empty: the CA list is swappable, and a borrowed list cannot outlive a swap. An
    /// empty list tells clients to send any certificate they have (RFC 8446 §4.3.2).
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let trust = self.trust.load();
        let mut chain = Vec::with_capacity(1 + intermediates.len());
        chain.push(end_entity.clone());
        chain.extend(intermediates.iter().cloned());
        if let Err(e) = trust
            .webpki
            .verify_client_cert(end_entity, intermediates, now)
        {
            return Err(webpki_refused("server", e, &chain));
        }
        let identity = self
            .cache
            .identity(&chain, trust.generation)
            .map_err(|e| unparseable("server", &e))?;
        authorize("server", &trust.policy, &identity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.trust
            .load()
            .webpki
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.trust
            .load()
            .webpki
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

// === impl ServerVerifier ===

/// The trust material a client verifies servers with; swapped as a whole on reload.
#[derive(Debug)]
pub(crate) struct ServerTrust {
    pub(crate) webpki: Arc<dyn ServerCertVerifier>,
    pub(crate) policy: Option<Policy>,
}

/// The client side: WebPki server verification (including the host name), then the policy.
#[derive(Debug)]
pub(crate) struct ServerVerifier {
    pub(crate) trust: Arc<ArcSwap<ServerTrust>>,
    pub(crate) schemes: Vec<SignatureScheme>,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let trust = self.trust.load();
        let chain = || {
            let mut chain = vec![end_entity.clone()];
            chain.extend(intermediates.iter().cloned());
            chain
        };
        if let Err(e) = trust.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            return Err(webpki_refused("client", e, &chain()));
        }
        if let Some(policy) = &trust.policy {
            let identity =
                PeerIdentity::from_chain(&chain()).map_err(|e| unparseable("client", &e))?;
            authorize("client", policy, &identity)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.trust
            .load()
            .webpki
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.trust
            .load()
            .webpki
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn identity_cache_tells_apart_certificates_with_the_same_hashed_tail() {
        let ca = mtls_testing::Ca::root("Cache CA");
        let (a, b) = (ca.leaf("alice").build(), ca.leaf("bob").build());
        let (a, b) = (a.cert_der(), b.cert_der());
        // Two byte strings that differ only before the last 32 bytes hash the same.
        let mut twin = a.clone();
        twin[20] ^= 0xff;
        let hash = |der: &[u8]| {
            let mut h = TailHasher::default();
            der.hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&a), hash(&twin));
        assert_ne!(hash(&a), hash(&b));

        let cache = IdentityCache::default();
        let alice = cache
            .identity(&[CertificateDer::from(a.clone())], 1)
            .unwrap();
        assert_eq!(alice.common_name(), Some("alice"));
        assert!(
            cache.get(&twin).is_none(),
            "a hash collision returned alice"
        );
        let bob = cache.identity(&[CertificateDer::from(b)], 1).unwrap();
        assert_eq!(bob.common_name(), Some("bob"));
        // A hit returns the cached identity, with the generation brought up to date.
        assert!(Arc::ptr_eq(
            &cache
                .identity(&[CertificateDer::from(a.clone())], 1)
                .unwrap(),
            &alice
        ));
        assert_eq!(
            cache
                .identity(&[CertificateDer::from(a)], 2)
                .unwrap()
                .generation(),
            2
        );
    }
}
