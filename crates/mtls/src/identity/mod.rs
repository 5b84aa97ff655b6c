//! The authenticated peer: [`PeerIdentity`], parsed once per connection from the verified
//! certificate chain, and [`IdentityExtractor`], the hook that maps it to an application
//! principal.
//!
//! A `PeerIdentity` is built after the chain has been verified (path, expiry, EKU and
//! revocation are rustls' job) and is shared as `Arc<PeerIdentity>`, so handing it to every
//! request costs one reference-count increment. Everything is parsed eagerly from the leaf
//! certificate when it is built; the accessors only borrow.
//!
//! ```
//! use std::sync::Arc;
//! use mtls::identity::{IdentityExtractor, PeerIdentity};
//! # use rustls::pki_types::CertificateDer;
//! # fn leaf() -> CertificateDer<'static> {
//! #     let mut p = rcgen::CertificateParams::new(vec!["api.example.org".to_string()]).unwrap();
//! #     p.distinguished_name.push(rcgen::DnType::CommonName, "api");
//! #     p.subject_alt_names.push(rcgen::SanType::URI("spiffe://prod.example.org/ns/api/sa/api".try_into().unwrap()));
//! #     p.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().der().clone()
//! # }
//!
//! // In a server this is `conn.peer_certificates()` after the handshake.
//! let chain = vec![leaf()];
//! let peer = Arc::new(PeerIdentity::from_chain(&chain)?);
//!
//! assert_eq!(peer.subject(), "CN=api");
//! assert_eq!(peer.common_name(), Some("api"));
//! assert_eq!(peer.dns_names(), ["api.example.org"]);
//! assert_eq!(peer.spiffe_id().map(|id| id.trust_domain()), Some("prod.example.org"));
//!
//! // Map the peer to an application principal with a closure.
//! let to_service = |p: &Arc<PeerIdentity>| -> Result<String, mtls::identity::ExtractError> {
//!     Ok(p.require_spiffe_id().map_err(mtls::identity::ExtractError::from_error)?.path().to_owned())
//! };
//! assert_eq!(to_service.extract(&peer)?, "/ns/api/sa/api");
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::dn::Name;

mod extract;
mod format;
mod san;
#[cfg(test)]
mod tests;

use format::{rfc3339, to_system_time};
use san::Sans;

pub use crate::spiffe::{SpiffeId, SpiffeIdError};
pub use extract::{DefaultExtractor, ExtractError, IdentityExtractor};
pub(crate) use format::{format_serial, hex_lower};

// === PeerIdentity ===

/// The identity of a peer whose certificate chain has been verified, parsed once per
/// connection from the leaf certificate.
///
/// # What is extracted
///
/// * **Names.** [`subject`](Self::subject) and [`issuer`](Self::issuer) are RFC 4514 strings,
///   most specific RDN first, formatted as `openssl x509 -nameopt RFC2253` prints them (for
///   ASCII values; other characters are kept as UTF-8 rather than `\XX`-escaped). The
///   attribute lists ([`organizations`](Self::organizations), [`org_units`](Self::org_units))
///   are in the same order as `subject()`, i.e. most specific first, which is the *reverse* of
///   the order in the certificate's encoding. Values that are not character strings are left
///   out of these lists (they still appear, hex-encoded, in `subject()`).
/// * **Subject alternative names.** DNS names, IP addresses, URIs and e-mail addresses
///   (rfc822Name), in certificate order, exactly as encoded (no case folding). Other name
///   forms (otherName, directoryName, …) are ignored. A SAN extension that cannot be parsed,
///   appears twice, holds an IP address that is not 4 or 16 bytes or a name that is not valid
///   text makes [`from_chain`](Self::from_chain) fail, so that a policy never evaluates a
///   certificate whose names it could not read.
/// * **SPIFFE ID.** A certificate has a SPIFFE ID if and only if **exactly one** of its URI
///   SANs starts with `spiffe://` (scheme compared case-insensitively) **and** that URI is a
///   valid SPIFFE ID. With none, with two or more, or with one malformed one,
///   [`spiffe_id`](Self::spiffe_id) is `None` and
///   [`require_spiffe_id`](Self::require_spiffe_id) says which case applies.
/// * **Serial, dates, digests, extensions, chain**: see the accessors.
///
/// Fields are private so that more can be added without breaking users.
#[derive(Clone)]
pub struct PeerIdentity {
    subject: String,
    issuer: String,
    common_name: Option<String>,
    organizations: Vec<String>,
    org_units: Vec<String>,
    subject_ambiguous: crate::dn::Ambiguous,
    dns_names: Vec<String>,
    ip_addresses: Vec<IpAddr>,
    uris: Vec<String>,
    emails: Vec<String>,
    spiffe: Result<SpiffeId, SpiffeIdError>,
    serial: String,
    not_before: SystemTime,
    not_after: SystemTime,
    not_before_utc: OffsetDateTime,
    not_after_utc: OffsetDateTime,
    fingerprint: [u8; 32],
    fingerprint_hex: String,
    spki: [u8; 32],
    spki_hex: String,
    chain: Arc<[CertificateDer<'static>]>,
    extensions: Vec<RawExtension>,
    generation: u64,
}

#[derive(Clone, Debug)]
struct RawExtension {
    oid: Box<str>,
    critical: bool,
    /// Byte range of the extnValue contents within the leaf DER.
    value: Range<usize>,
}

/// One X.509 extension of the leaf certificate, as returned by [`PeerIdentity::extension`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extension<'a> {
    oid: &'a str,
    critical: bool,
    value: &'a [u8],
}

impl<'a> Extension<'a> {
    /// The extension's OID in dotted form, e.g. `2.5.29.17`.
    pub fn oid(&self) -> &'a str {
        self.oid
    }

    /// Whether the extension is marked critical.
    pub fn critical(&self) -> bool {
        self.critical
    }

    /// The raw contents of the extnValue OCTET STRING (itself usually DER).
    pub fn value(&self) -> &'a [u8] {
        self.value
    }
}

impl PeerIdentity {
    /// Parses the identity from a verified chain, leaf first.
    ///
    /// Only the leaf is parsed; the other certificates are kept as they are (see
    /// [`chain`](Self::chain)). The chain is copied once into an `Arc<[_]>`.
    ///
    /// # Errors
    ///
    /// [`IdentityError::EmptyChain`] if `chain` is empty, and the other variants if the leaf is
    /// not a well-formed X.509 certificate (not DER, trailing bytes, unreadable
    /// subjectAltName, dates out of range).
    pub fn from_chain(chain: &[CertificateDer<'_>]) -> Result<Self, IdentityError> {
        let Some(leaf) = chain.first() else {
            return Err(IdentityError::EmptyChain);
        };
        let mut id = Self::parse_leaf(leaf.as_ref())?;
        id.chain = chain.iter().map(|c| c.clone().into_owned()).collect();
        Ok(id)
    }

    /// Like [`from_chain`](Self::from_chain), for callers that hold the end-entity certificate
    /// and the intermediates separately (as a rustls certificate verifier does).
    ///
    /// # Errors
    ///
    /// As for [`from_chain`](Self::from_chain), except that the chain cannot be empty.
    pub fn from_parts(
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<Self, IdentityError> {
        let mut id = Self::parse_leaf(end_entity.as_ref())?;
        id.chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        Ok(id)
    }

    fn parse_leaf(der: &[u8]) -> Result<Self, IdentityError> {
        let (rest, cert) = X509Certificate::from_der(der).map_err(|e| not_x509(der, e))?;
        if !rest.is_empty() {
            return Err(IdentityError::TrailingData { len: rest.len() });
        }

        let subject = Name::parse(cert.subject());
        let issuer = Name::parse(cert.issuer());

        let mut sans = Sans::default();
        match cert.subject_alternative_name() {
            Ok(Some(san)) => {
                for name in &san.value.general_names {
                    sans.push(name)?;
                }
            }
            Ok(None) => {}
            Err(e) => {
                return Err(IdentityError::InvalidExtension {
                    extension: "subjectAltName",
                    reason: e.to_string(),
                });
            }
        }
        let spiffe = crate::spiffe::spiffe_from_uris(&sans.uris);

        let validity = cert.validity();
        let not_before_utc = validity.not_before.to_datetime();
        let not_after_utc = validity.not_after.to_datetime();
        let not_before = to_system_time(not_before_utc).ok_or(IdentityError::DateOutOfRange)?;
        let not_after = to_system_time(not_after_utc).ok_or(IdentityError::DateOutOfRange)?;

        let fingerprint: [u8; 32] = Sha256::digest(der).into();
        let spki: [u8; 32] = Sha256::digest(cert.public_key().raw).into();

        let base = der.as_ptr() as usize;
        let extensions = cert
            .extensions()
            .iter()
            .filter_map(|ext| {
                let start = (ext.value.as_ptr() as usize).checked_sub(base)?;
                let end = start.checked_add(ext.value.len())?;
                (end <= der.len()).then(|| RawExtension {
                    oid: ext.oid.to_id_string().into_boxed_str(),
                    critical: ext.critical,
                    value: start..end,
                })
            })
            .collect();

        Ok(Self {
            common_name: subject.common_name,
            organizations: subject.organizations,
            org_units: subject.org_units,
            subject_ambiguous: subject.ambiguous,
            subject: subject.rfc4514,
            issuer: issuer.rfc4514,
            dns_names: sans.dns,
            ip_addresses: sans.ips,
            uris: sans.uris,
            emails: sans.emails,
            spiffe,
            serial: format_serial(cert.raw_serial()),
            not_before,
            not_after,
            not_before_utc,
            not_after_utc,
            fingerprint,
            fingerprint_hex: hex_lower(&fingerprint),
            spki,
            spki_hex: hex_lower(&spki),
            chain: Arc::new([]),
            extensions,
            generation: 0,
        })
    }

    /// The subject distinguished name as an RFC 4514 string, most specific RDN first, e.g.
    /// `CN=client-rsa,OU=backend,OU=payments,O=mtls fixtures`.
    ///
    /// For ASCII names this is exactly what `openssl x509 -noout -subject -nameopt RFC2253`
    /// prints after `subject=`: OpenSSL's short attribute names (`CN`, `O`, `OU`, `C`, `ST`,
    /// `L`, `street`, `DC`, `UID`, `emailAddress`, `serialNumber`, …), dotted OIDs with a
    /// `#`-hex DER value for other attribute types, `,` between RDNs and `+` inside a
    /// multi-valued RDN, and `\` escaping of `, + " \ < > ;`, of a leading `#` or space, of a
    /// trailing space and (as `\XX`) of control characters.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The issuer distinguished name, formatted like [`subject`](Self::subject).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The most specific common name: the CN that comes first in [`subject`](Self::subject),
    /// which is the *last* CN in the certificate's encoding (as Go's `crypto/x509` picks).
    /// `None` if the subject has no CN that is a character string.
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// What the subject holds that a policy cannot read with certainty.
    pub(crate) fn subject_ambiguity(&self) -> crate::dn::Ambiguous {
        self.subject_ambiguous
    }

    /// All organization (`O`) values, in [`subject`](Self::subject) order.
    pub fn organizations(&self) -> &[String] {
        &self.organizations
    }

    /// The first organization (`O`) in [`subject`](Self::subject) order (the most specific).
    pub fn organization(&self) -> Option<&str> {
        self.organizations.first().map(String::as_str)
    }

    /// All organizational unit (`OU`) values, in [`subject`](Self::subject) order: for
    /// `CN=x,OU=backend,OU=payments,O=y` this is `["backend", "payments"]`.
    pub fn org_units(&self) -> &[String] {
        &self.org_units
    }

    /// DNS name SANs, in certificate order, as encoded (a wildcard SAN such as `*.svc.local`
    /// is kept literally).
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// IP address SANs, in certificate order.
    pub fn ip_addresses(&self) -> &[IpAddr] {
        &self.ip_addresses
    }

    /// URI SANs, in certificate order (including the SPIFFE ID, if any).
    pub fn uris(&self) -> &[String] {
        &self.uris
    }

    /// E-mail address (rfc822Name) SANs, in certificate order. The subject's legacy
    /// `emailAddress` attribute is not included.
    pub fn emails(&self) -> &[String] {
        &self.emails
    }

    /// The SPIFFE ID, if the certificate has exactly one `spiffe://` URI SAN and it is valid.
    /// See the [type docs](Self) for the rule and [`require_spiffe_id`](Self::require_spiffe_id)
    /// for the reason when this is `None`.
    pub fn spiffe_id(&self) -> Option<&SpiffeId> {
        self.spiffe.as_ref().ok()
    }

    /// The SPIFFE ID, or why there is none.
    ///
    /// # Errors
    ///
    /// [`SpiffeIdError::NotInCertificate`] when no URI SAN starts with `spiffe://`,
    /// [`SpiffeIdError::MultipleInCertificate`] when several do, and
    /// [`SpiffeIdError::InvalidInCertificate`] (naming the broken rule) when the one there is
    /// malformed.
    pub fn require_spiffe_id(&self) -> Result<&SpiffeId, SpiffeIdError> {
        self.spiffe.as_ref().map_err(Clone::clone)
    }

    /// The serial number in uppercase hex without colons or sign-padding byte, as
    /// `openssl x509 -noout -serial` prints it (e.g. `5A0F…`; a negative serial gets a `-`).
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// Start of the validity period.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// End of the validity period.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// SHA-256 of the leaf certificate DER, as 64 lowercase hex digits without colons.
    pub fn fingerprint_sha256(&self) -> &str {
        &self.fingerprint_hex
    }

    /// SHA-256 of the leaf certificate DER.
    pub fn fingerprint_sha256_bytes(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    /// SHA-256 of the leaf's SubjectPublicKeyInfo DER, as 64 lowercase hex digits. This pin
    /// survives re-issuing a certificate for the same key.
    pub fn spki_sha256(&self) -> &str {
        &self.spki_hex
    }

    /// SHA-256 of the leaf's SubjectPublicKeyInfo DER.
    pub fn spki_sha256_bytes(&self) -> &[u8; 32] {
        &self.spki
    }

    /// The certificate chain as the peer sent it, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The leaf certificate DER.
    pub fn leaf_der(&self) -> &[u8] {
        self.chain.first().map_or(&[], |c| c.as_ref())
    }

    /// The leaf's extension with the given dotted OID (e.g. `"1.3.6.1.4.1.99999.1"`), if
    /// present. Extensions are located once at parse time, so this is a short linear scan
    /// with no parsing. If a (malformed) certificate repeats an extension, the first is
    /// returned.
    pub fn extension(&self, oid: &str) -> Option<Extension<'_>> {
        self.extensions().find(|e| e.oid == oid)
    }

    /// All extensions of the leaf, in certificate order.
    pub fn extensions(&self) -> impl Iterator<Item = Extension<'_>> + '_ {
        let der = self.leaf_der();
        self.extensions.iter().filter_map(move |e| {
            Some(Extension {
                oid: &e.oid,
                critical: e.critical,
                value: der.get(e.value.clone())?,
            })
        })
    }

    /// The reload generation of the trust material that authenticated this peer (0 unless
    /// the identity came through a reloadable configuration).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    #[allow(dead_code)] // used by the verifier / acceptor modules
    pub(crate) fn set_generation(&mut self, generation: u64) {
        self.generation = generation;
    }
}

impl fmt::Debug for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerIdentity")
            .field("subject", &self.subject)
            .field("issuer", &self.issuer)
            .field("spiffe_id", &self.spiffe_id().map(SpiffeId::as_str))
            .field("dns_names", &self.dns_names)
            .field("ip_addresses", &self.ip_addresses)
            .field("uris", &self.uris)
            .field("emails", &self.emails)
            .field("serial", &self.serial)
            .field("not_before", &rfc3339(self.not_before_utc))
            .field("not_after", &rfc3339(self.not_after_utc))
            .field("fingerprint_sha256", &self.fingerprint_hex)
            .field("chain_len", &self.chain.len())
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for PeerIdentity {
    /// Serializes the parsed fields (not the DER chain): `subject`, `issuer`, `common_name`,
    /// `organizations`, `org_units`, `dns_names`, `ip_addresses` (strings), `uris`, `emails`,
    /// `spiffe_id` (string or null), `serial`, `fingerprint_sha256`, `spki_sha256`,
    /// `not_before`, `not_after` (RFC 3339, UTC) and `generation`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let ips: Vec<String> = self.ip_addresses.iter().map(IpAddr::to_string).collect();
        let mut s = serializer.serialize_struct("PeerIdentity", 16)?;
        s.serialize_field("subject", &self.subject)?;
        s.serialize_field("issuer", &self.issuer)?;
        s.serialize_field("common_name", &self.common_name)?;
        s.serialize_field("organizations", &self.organizations)?;
        s.serialize_field("org_units", &self.org_units)?;
        s.serialize_field("dns_names", &self.dns_names)?;
        s.serialize_field("ip_addresses", &ips)?;
        s.serialize_field("uris", &self.uris)?;
        s.serialize_field("emails", &self.emails)?;
        s.serialize_field("spiffe_id", &self.spiffe_id().map(SpiffeId::as_str))?;
        s.serialize_field("serial", &self.serial)?;
        s.serialize_field("fingerprint_sha256", &self.fingerprint_hex)?;
        s.serialize_field("spki_sha256", &self.spki_hex)?;
        s.serialize_field("not_before", &rfc3339(self.not_before_utc))?;
        s.serialize_field("not_after", &rfc3339(self.not_after_utc))?;
        s.serialize_field("generation", &self.generation)?;
        s.end()
    }
}

/// Why a certificate chain could not be turned into a [`PeerIdentity`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The chain has no certificate.
    #[error("the peer's certificate chain is empty")]
    EmptyChain,
    /// The leaf is not an X.509 certificate in DER.
    #[error("the peer's leaf certificate is not X.509 DER: {reason}")]
    NotX509 {
        /// What the parser reported.
        reason: String,
    },
    /// The leaf DER is followed by extra bytes.
    #[error(
        "the peer's leaf certificate has {len} bytes of trailing data after the X.509 structure"
    )]
    TrailingData {
        /// Number of extra bytes.
        len: usize,
    },
    /// An extension identity depends on could not be read.
    #[error("the peer's leaf certificate has an unreadable {extension} extension: {reason}")]
    InvalidExtension {
        /// Extension name, e.g. `subjectAltName`.
        extension: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// notBefore / notAfter cannot be represented as a [`SystemTime`].
    #[error("the peer's leaf certificate has a validity date outside the representable range")]
    DateOutOfRange,
}

fn not_x509(der: &[u8], e: x509_parser::nom::Err<x509_parser::error::X509Error>) -> IdentityError {
    let reason = if der.is_empty() {
        "the certificate is empty (0 bytes)".to_owned()
    } else if der.starts_with(b"-----BEGIN") {
        "it is PEM text; decode the PEM to DER first".to_owned()
    } else {
        match e {
            x509_parser::nom::Err::Incomplete(_) => "the DER is truncated".to_owned(),
            x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e.to_string(),
        }
    };
    IdentityError::NotX509 { reason }
}
