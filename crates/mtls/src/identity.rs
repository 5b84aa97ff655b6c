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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::asn1_rs::{Any, Tag, ToDer};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

pub use crate::spiffe::{SpiffeId, SpiffeIdError};

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

// === IdentityExtractor ===

/// Maps a verified peer to the application's own principal type.
///
/// Called once per connection, after the handshake, with the parsed identity (which also
/// holds the DER chain, for extractors that need to parse something else). Returning an
/// error rejects the connection. Closures `Fn(&Arc<PeerIdentity>) -> Result<P, ExtractError>`
/// implement this trait, and [`DefaultExtractor`] returns the identity itself.
///
/// ```
/// use std::sync::Arc;
/// use mtls::identity::{ExtractError, IdentityExtractor, PeerIdentity};
///
/// #[derive(Clone)]
/// struct Tenant(String);
///
/// struct TenantFromOu;
/// impl IdentityExtractor for TenantFromOu {
///     type Principal = Tenant;
///     fn extract(&self, peer: &Arc<PeerIdentity>) -> Result<Tenant, ExtractError> {
///         peer.org_units()
///             .first()
///             .map(|ou| Tenant(ou.clone()))
///             .ok_or_else(|| ExtractError::new("client certificate has no OU"))
///     }
/// }
/// ```
pub trait IdentityExtractor: Send + Sync + 'static {
    /// The application's principal type.
    type Principal: Clone + Send + Sync + 'static;

    /// Maps the peer to a principal.
    ///
    /// # Errors
    ///
    /// An [`ExtractError`] saying why this peer has no principal; the connection is rejected.
    fn extract(&self, peer: &Arc<PeerIdentity>) -> Result<Self::Principal, ExtractError>;
}

impl<F, P> IdentityExtractor for F
where
    F: Fn(&Arc<PeerIdentity>) -> Result<P, ExtractError> + Send + Sync + 'static,
    P: Clone + Send + Sync + 'static,
{
    type Principal = P;

    fn extract(&self, peer: &Arc<PeerIdentity>) -> Result<P, ExtractError> {
        self(peer)
    }
}

/// The extractor whose principal is the [`PeerIdentity`] itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultExtractor;

impl IdentityExtractor for DefaultExtractor {
    type Principal = Arc<PeerIdentity>;

    fn extract(&self, peer: &Arc<PeerIdentity>) -> Result<Arc<PeerIdentity>, ExtractError> {
        Ok(Arc::clone(peer))
    }
}

/// An [`IdentityExtractor`] refused a peer.
pub struct ExtractError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ExtractError {
    /// An error with a message saying why the peer has no principal.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error with a message and an underlying cause (returned by
    /// [`source`](std::error::Error::source), not repeated in the message).
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An error whose message is the `Display` of `error` (also kept as the source).
    pub fn from_error(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            message: error.to_string(),
            source: Some(Box::new(error)),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtractError")
            .field("message", &self.message)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExtractError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.source {
            Some(e) if e.to_string() != self.message => Some(&**e as _),
            _ => None,
        }
    }
}

// === parsing helpers ===

#[derive(Default)]
struct Sans {
    dns: Vec<String>,
    ips: Vec<IpAddr>,
    uris: Vec<String>,
    emails: Vec<String>,
}

impl Sans {
    fn push(&mut self, name: &GeneralName<'_>) -> Result<(), IdentityError> {
        let bad = |reason: String| IdentityError::InvalidExtension {
            extension: "subjectAltName",
            reason,
        };
        match name {
            GeneralName::DNSName(s) => self.dns.push((*s).to_owned()),
            GeneralName::URI(s) => self.uris.push((*s).to_owned()),
            GeneralName::RFC822Name(s) => self.emails.push((*s).to_owned()),
            GeneralName::IPAddress(b) => match *b {
                [a, b, c, d] => self.ips.push(IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d))),
                b => match <[u8; 16]>::try_from(b) {
                    Ok(v6) => self.ips.push(IpAddr::V6(Ipv6Addr::from(v6))),
                    Err(_) => {
                        return Err(bad(format!(
                            "IP address entry is {} bytes long (expected 4 or 16)",
                            b.len()
                        )));
                    }
                },
            },
            GeneralName::Invalid(tag, _) => {
                return Err(bad(format!(
                    "entry with tag [{}] is not valid (e.g. a name that is not IA5 text)",
                    tag.0
                )));
            }
            GeneralName::OtherName(..)
            | GeneralName::X400Address(_)
            | GeneralName::DirectoryName(_)
            | GeneralName::EDIPartyName(_)
            | GeneralName::RegisteredID(_) => {}
        }
        Ok(())
    }
}

/// A distinguished name rendered as RFC 4514 plus the attribute values identity needs.
struct Name {
    rfc4514: String,
    common_name: Option<String>,
    organizations: Vec<String>,
    org_units: Vec<String>,
}

const OID_CN: &str = "2.5.4.3";
const OID_O: &str = "2.5.4.10";
const OID_OU: &str = "2.5.4.11";

/// (dotted OID, OpenSSL short name). RFC 4514 allows any registered descriptor; these are the
/// ones `openssl -nameopt RFC2253` prints.
const ATTRIBUTE_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.4", "SN"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "street"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.12", "title"),
    ("2.5.4.13", "description"),
    ("2.5.4.15", "businessCategory"),
    ("2.5.4.17", "postalCode"),
    ("2.5.4.18", "postOfficeBox"),
    ("2.5.4.41", "name"),
    ("2.5.4.42", "GN"),
    ("2.5.4.43", "initials"),
    ("2.5.4.44", "generationQualifier"),
    ("2.5.4.45", "x500UniqueIdentifier"),
    ("2.5.4.46", "dnQualifier"),
    ("2.5.4.65", "pseudonym"),
    ("2.5.4.97", "organizationIdentifier"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
    ("1.3.6.1.4.1.311.60.2.1.1", "jurisdictionL"),
    ("1.3.6.1.4.1.311.60.2.1.2", "jurisdictionST"),
    ("1.3.6.1.4.1.311.60.2.1.3", "jurisdictionC"),
];

fn attribute_name(oid: &str) -> Option<&'static str> {
    ATTRIBUTE_NAMES
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, n)| *n)
}

impl Name {
    fn parse(name: &X509Name<'_>) -> Self {
        let mut out = Self {
            rfc4514: String::new(),
            common_name: None,
            organizations: Vec::new(),
            org_units: Vec::new(),
        };
        // RFC 4514: the last RDN of the sequence comes first. Inside a multi-valued RDN,
        // OpenSSL also prints the attributes in reverse encoded order; do the same.
        let rdns: Vec<_> = name.iter_rdn().collect();
        for (i, rdn) in rdns.iter().rev().enumerate() {
            if i > 0 {
                out.rfc4514.push(',');
            }
            let attrs: Vec<_> = rdn.iter().collect();
            for (j, attr) in attrs.iter().rev().enumerate() {
                if j > 0 {
                    out.rfc4514.push('+');
                }
                let oid = attr.attr_type().to_id_string();
                let text = decode_string(attr.attr_value());
                match attribute_name(&oid) {
                    Some(short) => {
                        out.rfc4514.push_str(short);
                        out.rfc4514.push('=');
                        match &text {
                            Some(t) => escape_value(t, &mut out.rfc4514),
                            None => push_hex_der(attr.attr_value(), &mut out.rfc4514),
                        }
                    }
                    None => {
                        out.rfc4514.push_str(&oid);
                        out.rfc4514.push('=');
                        push_hex_der(attr.attr_value(), &mut out.rfc4514);
                    }
                }
                if let Some(t) = text {
                    match oid.as_str() {
                        OID_CN if out.common_name.is_none() => out.common_name = Some(t),
                        OID_O => out.organizations.push(t),
                        OID_OU => out.org_units.push(t),
                        _ => {}
                    }
                }
            }
        }
        out
    }
}

/// Decodes a directory string value; `None` for non-string types or invalid encodings.
fn decode_string(value: &Any<'_>) -> Option<String> {
    let data = value.data;
    match value.tag() {
        Tag::Utf8String => std::str::from_utf8(data).ok().map(str::to_owned),
        // One byte per character; OpenSSL reads these (and T.61) as Latin-1.
        Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString
        | Tag::TeletexString => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            if !data.len().is_multiple_of(2) {
                return None;
            }
            let units = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        Tag::UniversalString => {
            if !data.len().is_multiple_of(4) {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

fn push_hex_der(value: &Any<'_>, out: &mut String) {
    out.push('#');
    match value.to_der_vec() {
        Ok(der) => push_hex_upper(&der, out),
        // Cannot happen for a value that was just parsed; keep the content at least.
        Err(_) => push_hex_upper(value.data, out),
    }
}

/// Escapes an attribute value per RFC 4514 section 2.4, the way OpenSSL's RFC 2253 mode does.
pub(crate) fn escape_value(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, ch) in value.chars().enumerate() {
        match ch {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(ch);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_ascii_control() => {
                out.push('\\');
                push_hex_upper(&[c as u8], out);
            }
            c => out.push(c),
        }
    }
}

/// Normalizes an RFC 4514 distinguished name string to the form [`PeerIdentity::subject`]
/// produces: attribute types matched case-insensitively (and dotted OIDs of known types
/// replaced by their short name), spaces around separators dropped, values unescaped and
/// re-escaped canonically, `#hex` values in uppercase. Attribute values are otherwise
/// compared exactly.
pub(crate) fn normalize_dn(dn: &str) -> Result<String, String> {
    let mut out = String::with_capacity(dn.len());
    let mut chars = dn.chars().peekable();
    let mut first = true;
    loop {
        while chars.peek().is_some_and(|c| *c == ' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            if first {
                return Err("the distinguished name is empty".to_owned());
            }
            return Err("the distinguished name ends with a separator".to_owned());
        }
        // Attribute type.
        let mut ty = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            ty.push(c);
        }
        let ty = ty.trim();
        if ty.is_empty() {
            return Err("an attribute type is missing before `=`".to_owned());
        }
        let canonical_ty = canonical_attribute_type(ty)
            .ok_or_else(|| format!("`{ty}` is not an attribute type (like CN, O or 2.5.4.3)"))?;
        out.push_str(&canonical_ty);
        out.push('=');
        while chars.peek().is_some_and(|c| *c == ' ') {
            chars.next();
        }
        // Attribute value, up to an unescaped ',' or '+'.
        let mut bytes: Vec<u8> = Vec::new();
        let mut significant = 0; // length of `bytes` up to the last escaped or non-space char
        let mut sep = None;
        let hex_form = chars.peek() == Some(&'#');
        while let Some(c) = chars.next() {
            match c {
                ',' | '+' => {
                    sep = Some(c);
                    break;
                }
                '\\' => {
                    let Some(n) = chars.next() else {
                        return Err("the distinguished name ends with a lone `\\`".to_owned());
                    };
                    if n.is_ascii_hexdigit() {
                        let lo = chars
                            .next()
                            .and_then(|l| l.to_digit(16))
                            .ok_or_else(|| "a `\\` hex escape needs two hex digits".to_owned())?;
                        let hi = n.to_digit(16).unwrap_or(0);
                        bytes.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
                    } else {
                        let mut buf = [0u8; 4];
                        bytes.extend_from_slice(n.encode_utf8(&mut buf).as_bytes());
                    }
                    significant = bytes.len();
                }
                c => {
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    if c != ' ' {
                        significant = bytes.len();
                    }
                }
            }
        }
        bytes.truncate(significant);
        let value = String::from_utf8(bytes)
            .map_err(|_| "an escaped attribute value is not valid UTF-8".to_owned())?;
        if hex_form {
            // RFC 4514: `#` then the hex of the value's BER encoding, nothing else.
            let hex = &value[1..];
            if hex.is_empty() || hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(
                    "a value starting with `#` must be the hex of a BER encoding (like \
                     #0C0461626364); write a literal `#` as `\\#`"
                        .to_owned(),
                );
            }
            out.push_str(&value.to_ascii_uppercase());
        } else {
            escape_value(&value, &mut out);
        }
        first = false;
        match sep {
            Some(s) => out.push(s),
            None => return Ok(out),
        }
    }
}

fn canonical_attribute_type(ty: &str) -> Option<String> {
    let oid = ty
        .strip_prefix("OID.")
        .or_else(|| ty.strip_prefix("oid."))
        .unwrap_or(ty);
    if oid.starts_with(|c: char| c.is_ascii_digit()) {
        if !oid
            .split('.')
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        return Some(attribute_name(oid).unwrap_or(oid).to_owned());
    }
    if !ty.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return None;
    }
    Some(
        ATTRIBUTE_NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(ty))
            .map_or_else(|| ty.to_owned(), |(_, n)| (*n).to_owned()),
    )
}

/// A serial number as `openssl x509 -serial` prints it: uppercase hex, no sign byte.
pub(crate) fn format_serial(raw: &[u8]) -> String {
    let negative = raw.first().is_some_and(|b| b & 0x80 != 0);
    let magnitude: Vec<u8> = if negative {
        // Two's complement: invert and add one.
        let mut m: Vec<u8> = raw.iter().map(|b| !b).collect();
        for b in m.iter_mut().rev() {
            let (v, carry) = b.overflowing_add(1);
            *b = v;
            if !carry {
                break;
            }
        }
        m
    } else {
        raw.to_vec()
    };
    let start = magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len());
    let digits = magnitude.get(start..).unwrap_or_default();
    let mut out = String::with_capacity(digits.len() * 2 + 1);
    if digits.is_empty() {
        out.push_str("00");
        return out;
    }
    if negative {
        out.push('-');
    }
    push_hex_upper(digits, &mut out);
    out
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

fn push_hex_upper(bytes: &[u8], out: &mut String) {
    for b in bytes {
        out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
        out.push(char::from(HEX_UPPER[usize::from(b & 0xf)]));
    }
}

pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX_LOWER[usize::from(b >> 4)]));
        out.push(char::from(HEX_LOWER[usize::from(b & 0xf)]));
    }
    out
}

fn to_system_time(t: OffsetDateTime) -> Option<SystemTime> {
    let secs = t.unix_timestamp();
    let nanos = Duration::from_nanos(u64::from(t.nanosecond()));
    match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH
            .checked_add(Duration::from_secs(s))?
            .checked_add(nanos),
        Err(_) => UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))?
            .checked_add(nanos),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::process::Command;

    use rcgen::{CertificateParams, CustomExtension, DnType, KeyPair, SanType, SerialNumber};

    use super::*;

    const OID_OU_ARCS: [u64; 4] = [2, 5, 4, 11];

    fn ia5(s: &str) -> rcgen::string::Ia5String {
        match s.try_into() {
            Ok(v) => v,
            Err(e) => panic!("{s:?} is not IA5: {e}"),
        }
    }

    fn make(f: impl FnOnce(&mut CertificateParams)) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        f(&mut params);
        let key = KeyPair::generate().expect("key");
        params.self_signed(&key).expect("self-signed").der().clone()
    }

    fn peer(der: &CertificateDer<'static>) -> PeerIdentity {
        PeerIdentity::from_chain(std::slice::from_ref(der)).expect("parses")
    }

    /// CN, OU x2, O, C subject and DNS / IP / URI / email SANs.
    fn rich_cert() -> CertificateDer<'static> {
        make(|p| {
            p.distinguished_name.push(DnType::CountryName, "DE");
            p.distinguished_name
                .push(DnType::OrganizationName, "mtls fixtures");
            p.distinguished_name
                .push(DnType::OrganizationalUnitName, "payments");
            // rcgen keeps one value per type; a custom type with the OU OID adds a second OU.
            p.distinguished_name
                .push(DnType::CustomDnType(OID_OU_ARCS.to_vec()), "backend");
            p.distinguished_name.push(DnType::CommonName, "client-rsa");
            p.subject_alt_names = vec![
                SanType::DnsName(ia5("api.example.org")),
                SanType::DnsName(ia5("*.svc.local")),
                SanType::IpAddress("10.1.2.3".parse().expect("ip")),
                SanType::IpAddress("2001:db8::1".parse().expect("ip")),
                SanType::URI(ia5("spiffe://prod.example.org/ns/api/sa/api")),
                SanType::URI(ia5("https://example.org/x")),
                SanType::Rfc822Name(ia5("ops@example.org")),
            ];
            p.serial_number = Some(SerialNumber::from(vec![0x00, 0x9a, 0x01, 0xff]));
            let mut ext = CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 99999, 1],
                vec![0x04, 0x02, 0xca, 0xfe],
            );
            ext.set_criticality(false);
            p.custom_extensions.push(ext);
            p.not_before = time::macros::datetime!(2026-01-01 00:00:00 UTC);
            p.not_after = time::macros::datetime!(2027-06-30 12:34:56 UTC);
        })
    }

    #[test]
    fn parses_names_sans_and_digests() {
        let der = rich_cert();
        let id = peer(&der);
        assert_eq!(
            id.subject(),
            "CN=client-rsa,OU=backend,OU=payments,O=mtls fixtures,C=DE"
        );
        assert_eq!(id.issuer(), id.subject());
        assert_eq!(id.common_name(), Some("client-rsa"));
        assert_eq!(id.organizations(), ["mtls fixtures"]);
        assert_eq!(id.organization(), Some("mtls fixtures"));
        assert_eq!(id.org_units(), ["backend", "payments"]);
        assert_eq!(id.dns_names(), ["api.example.org", "*.svc.local"]);
        let ips: Vec<IpAddr> = vec![
            "10.1.2.3".parse().expect("ip"),
            "2001:db8::1".parse().expect("ip"),
        ];
        assert_eq!(id.ip_addresses(), ips.as_slice());
        assert_eq!(
            id.uris(),
            [
                "spiffe://prod.example.org/ns/api/sa/api",
                "https://example.org/x"
            ]
        );
        assert_eq!(id.emails(), ["ops@example.org"]);
        let spiffe = id.spiffe_id().expect("spiffe id");
        assert_eq!(spiffe.trust_domain(), "prod.example.org");
        assert_eq!(id.require_spiffe_id(), Ok(spiffe));
        assert_eq!(id.serial(), "9A01FF");
        assert_eq!(
            id.not_before(),
            UNIX_EPOCH + Duration::from_secs(1_767_225_600)
        );
        assert_eq!(
            id.not_after(),
            UNIX_EPOCH + Duration::from_secs(1_814_358_896)
        );
        let fp: [u8; 32] = Sha256::digest(der.as_ref()).into();
        assert_eq!(id.fingerprint_sha256_bytes(), &fp);
        assert_eq!(id.fingerprint_sha256(), hex_lower(&fp));
        assert_eq!(id.spki_sha256().len(), 64);
        assert_ne!(id.spki_sha256(), id.fingerprint_sha256());
        assert_eq!(id.leaf_der(), der.as_ref());
        assert_eq!(id.chain().len(), 1);
        assert_eq!(id.generation(), 0);

        let ext = id
            .extension("1.3.6.1.4.1.99999.1")
            .expect("custom extension");
        assert!(!ext.critical());
        assert_eq!(ext.value(), [0x04, 0x02, 0xca, 0xfe]);
        assert_eq!(ext.oid(), "1.3.6.1.4.1.99999.1");
        assert!(
            id.extension("2.5.29.17").is_some(),
            "subjectAltName is listed"
        );
        assert!(id.extension("1.2.3.4").is_none());

        let dbg = format!("{id:?}");
        assert!(dbg.contains("CN=client-rsa"), "{dbg}");
        assert!(dbg.len() < 1500, "Debug must not dump DER: {dbg}");
    }

    #[test]
    fn spki_pin_is_the_same_for_a_reissued_certificate() {
        let key = KeyPair::generate().expect("key");
        let a = CertificateParams::new(vec!["a.example".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let b = CertificateParams::new(vec!["b.example".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let (a, b) = (peer(a.der()), peer(b.der()));
        assert_eq!(a.spki_sha256(), b.spki_sha256());
        assert_ne!(a.fingerprint_sha256(), b.fingerprint_sha256());
        let spki: [u8; 32] =
            Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&key)).into();
        assert_eq!(a.spki_sha256_bytes(), &spki);
    }

    #[test]
    fn chain_is_kept_and_generation_can_be_set() {
        let leaf = rich_cert();
        let other = make(|p| p.distinguished_name.push(DnType::CommonName, "ca"));
        let mut id = PeerIdentity::from_chain(&[leaf.clone(), other.clone()]).expect("parses");
        assert_eq!(id.chain(), [leaf.clone(), other.clone()]);
        assert_eq!(id.common_name(), Some("client-rsa"));
        id.set_generation(7);
        assert_eq!(id.generation(), 7);
        let parts = PeerIdentity::from_parts(&leaf, std::slice::from_ref(&other)).expect("parses");
        assert_eq!(parts.chain(), id.chain());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            PeerIdentity::from_chain(&[]).unwrap_err(),
            IdentityError::EmptyChain
        );
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x01, 0x02]);
        let err = PeerIdentity::from_chain(&[garbage]).unwrap_err();
        assert!(matches!(err, IdentityError::NotX509 { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("the peer's leaf certificate is not X.509 DER: ")
        );

        let pem = CertificateDer::from(b"-----BEGIN CERTIFICATE-----\nMIIB\n".to_vec());
        assert_eq!(
            PeerIdentity::from_chain(&[pem]).unwrap_err().to_string(),
            "the peer's leaf certificate is not X.509 DER: it is PEM text; decode the PEM to DER first"
        );
        let empty = CertificateDer::from(Vec::new());
        assert_eq!(
            PeerIdentity::from_chain(&[empty]).unwrap_err().to_string(),
            "the peer's leaf certificate is not X.509 DER: the certificate is empty (0 bytes)"
        );

        let mut trailing = rich_cert().to_vec();
        trailing.extend_from_slice(&[0, 0, 0]);
        assert_eq!(
            PeerIdentity::from_chain(&[CertificateDer::from(trailing)])
                .unwrap_err()
                .to_string(),
            "the peer's leaf certificate has 3 bytes of trailing data after the X.509 structure"
        );

        // Truncations and bit flips never panic.
        let der = rich_cert().to_vec();
        for len in 0..der.len() {
            let _ = PeerIdentity::from_chain(&[CertificateDer::from(der[..len].to_vec())]);
        }
        for i in 0..der.len() {
            let mut d = der.clone();
            d[i] ^= 0x55;
            let _ = PeerIdentity::from_chain(&[CertificateDer::from(d)]);
        }
    }

    fn with_uris(uris: &[&str]) -> PeerIdentity {
        let der = make(|p| {
            p.subject_alt_names = uris.iter().map(|u| SanType::URI(ia5(u))).collect();
        });
        peer(&der)
    }

    #[test]
    fn malformed_spiffe_uris_give_no_spiffe_id() {
        for (uri, why) in [
            (
                "spiffe://Bad_Domain/x",
                SpiffeIdError::BadTrustDomainChar { ch: 'B' },
            ),
            ("spiffe://td/a//b", SpiffeIdError::EmptySegment),
            ("spiffe://td/../x", SpiffeIdError::DotSegment),
            ("spiffe://td?x", SpiffeIdError::Query),
            ("SPIFFE://td/x", SpiffeIdError::WrongScheme),
        ] {
            let id = with_uris(&[uri, "https://example.org"]);
            assert_eq!(id.spiffe_id(), None, "{uri}");
            assert_eq!(
                id.require_spiffe_id(),
                Err(SpiffeIdError::InvalidInCertificate {
                    uri: uri.to_owned(),
                    reason: Box::new(why),
                }),
                "{uri}"
            );
            assert_eq!(id.uris()[0], uri, "the URI SAN itself is still listed");
        }
        let err = with_uris(&["spiffe://td/../x"])
            .require_spiffe_id()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the certificate's URI SAN \"spiffe://td/../x\" is not a valid SPIFFE ID: \
             SPIFFE ID path must not contain `.` or `..` segments"
        );
    }

    #[test]
    fn two_spiffe_ids_give_none() {
        let id = with_uris(&["spiffe://td/a", "spiffe://td/b"]);
        assert_eq!(id.spiffe_id(), None);
        let err = id.require_spiffe_id().unwrap_err();
        assert_eq!(
            err.to_string(),
            "the certificate has 2 URI SANs starting with spiffe:// (spiffe://td/a, spiffe://td/b); \
             an X.509-SVID must have exactly one"
        );
        let none = with_uris(&["https://example.org"]);
        assert_eq!(
            none.require_spiffe_id(),
            Err(SpiffeIdError::NotInCertificate)
        );
        assert_eq!(
            none.require_spiffe_id().unwrap_err().to_string(),
            "the certificate has no SPIFFE ID (no URI SAN starting with spiffe://)"
        );
    }

    #[test]
    fn serial_formatting_matches_openssl() {
        assert_eq!(format_serial(&[0x01]), "01");
        assert_eq!(format_serial(&[0x00, 0xff, 0x01]), "FF01");
        assert_eq!(format_serial(&[0x00]), "00");
        assert_eq!(format_serial(&[]), "00");
        assert_eq!(format_serial(&[0xff]), "-01");
        assert_eq!(format_serial(&[0xff, 0x00]), "-0100");
        assert_eq!(format_serial(&[0x80]), "-80");
    }

    #[test]
    fn escaping_and_normalization() {
        let esc = |s: &str| {
            let mut out = String::new();
            escape_value(s, &mut out);
            out
        };
        assert_eq!(esc("a,b+c\"d\\e<f>g;h"), "a\\,b\\+c\\\"d\\\\e\\<f\\>g\\;h");
        assert_eq!(esc("#x y "), "\\#x y\\ ");
        assert_eq!(esc(" "), "\\ ");
        assert_eq!(esc("a\u{0}b\nc"), "a\\00b\\0Ac");
        assert_eq!(esc("a#b"), "a#b");
        assert_eq!(esc("été"), "été");

        let norm = |s: &str| normalize_dn(s);
        assert_eq!(norm("CN=a,O=b").as_deref(), Ok("CN=a,O=b"));
        assert_eq!(norm("cn=a, o = b ,  ou=c").as_deref(), Ok("CN=a,O=b,OU=c"));
        assert_eq!(
            norm("2.5.4.3=a+EMAILADDRESS=x@y").as_deref(),
            Ok("CN=a+emailAddress=x@y")
        );
        assert_eq!(
            norm("CN=Acme\\, Inc.,C=US").as_deref(),
            Ok("CN=Acme\\, Inc.,C=US")
        );
        assert_eq!(norm("CN=\\41\\42c").as_deref(), Ok("CN=ABc"));
        assert_eq!(norm("CN=\\ x\\ ").as_deref(), Ok("CN=\\ x\\ "));
        assert_eq!(norm("1.2.3.4=#0c0161").as_deref(), Ok("1.2.3.4=#0C0161"));
        assert!(norm("").is_err());
        assert!(norm("CN=a,").is_err());
        assert!(norm("=a").is_err());
        assert!(norm("C N=a").is_err());
        assert!(norm("CN=a\\").is_err());
        assert!(norm("CN=\\4").is_err());
        // Our own output is already normal.
        let id = peer(&rich_cert());
        assert_eq!(norm(id.subject()).as_deref(), Ok(id.subject()));
    }

    #[test]
    fn extractors() {
        let id = Arc::new(peer(&rich_cert()));
        let same = DefaultExtractor.extract(&id).expect("default");
        assert!(Arc::ptr_eq(&same, &id));

        let by_cn = |p: &Arc<PeerIdentity>| -> Result<String, ExtractError> {
            p.common_name()
                .map(str::to_owned)
                .ok_or_else(|| ExtractError::new("no CN"))
        };
        assert_eq!(by_cn.extract(&id).expect("cn"), "client-rsa");

        fn takes<E: IdentityExtractor>(
            e: &E,
            p: &Arc<PeerIdentity>,
        ) -> Result<E::Principal, ExtractError> {
            e.extract(p)
        }
        let no_spiffe = Arc::new(with_uris(&[]));
        let spiffe = |p: &Arc<PeerIdentity>| {
            p.require_spiffe_id()
                .cloned()
                .map_err(ExtractError::from_error)
        };
        let err = takes(&spiffe, &no_spiffe).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the certificate has no SPIFFE ID (no URI SAN starting with spiffe://)"
        );
        assert!(
            std::error::Error::source(&err).is_none(),
            "message not repeated by source()"
        );
        let err =
            ExtractError::with_source("tenant lookup failed", std::io::Error::other("db down"));
        assert_eq!(err.to_string(), "tenant lookup failed");
        assert_eq!(
            std::error::Error::source(&err).map(ToString::to_string),
            Some("db down".to_owned())
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serializes_to_json() {
        let id = peer(&rich_cert());
        let v = serde_json::to_value(&id).expect("json");
        assert_eq!(
            v["subject"],
            "CN=client-rsa,OU=backend,OU=payments,O=mtls fixtures,C=DE"
        );
        assert_eq!(v["common_name"], "client-rsa");
        assert_eq!(v["org_units"], serde_json::json!(["backend", "payments"]));
        assert_eq!(
            v["ip_addresses"],
            serde_json::json!(["10.1.2.3", "2001:db8::1"])
        );
        assert_eq!(v["spiffe_id"], "spiffe://prod.example.org/ns/api/sa/api");
        assert_eq!(v["serial"], "9A01FF");
        assert_eq!(v["not_before"], "2026-01-01T00:00:00Z");
        assert_eq!(v["not_after"], "2027-06-30T12:34:56Z");
        assert_eq!(v["generation"], 0);
        assert_eq!(v["fingerprint_sha256"], id.fingerprint_sha256());
        assert_eq!(v["spki_sha256"], id.spki_sha256());
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 16, "{keys:?}");
        assert!(v.get("chain").is_none());
        assert_eq!(with_uris(&[]).spiffe_id(), None);
        assert!(serde_json::to_value(with_uris(&[])).expect("json")["spiffe_id"].is_null());
    }

    // --- comparison with the openssl command line ---

    /// Runs `openssl x509` on `der`; `None` (with a note) if openssl is not installed, unless
    /// `MTLS_REQUIRE_PEERS=1`.
    fn openssl_x509(der: &[u8]) -> Option<String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("cert.der");
        std::fs::write(&path, der).expect("write cert");
        let out = Command::new("openssl")
            .args([
                "x509", "-inform", "DER", "-noout", "-subject", "-nameopt", "RFC2253",
            ])
            .args([
                "-serial",
                "-fingerprint",
                "-sha256",
                "-ext",
                "subjectAltName",
                "-in",
            ])
            .arg(&path)
            .output();
        match out {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "openssl failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                Some(String::from_utf8(out.stdout).expect("utf-8"))
            }
            Err(e) if std::env::var_os("MTLS_REQUIRE_PEERS").is_some_and(|v| v == "1") => {
                panic!("openssl is required (MTLS_REQUIRE_PEERS=1) but could not run: {e}")
            }
            Err(e) => {
                eprintln!("skipped: openssl not available ({e})");
                None
            }
        }
    }

    fn field<'a>(out: &'a str, prefix: &str) -> &'a str {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {out}"))
    }

    fn assert_same_as_openssl(der: &CertificateDer<'static>) {
        let Some(out) = openssl_x509(der) else { return };
        let id = peer(der);
        assert_eq!(id.subject(), field(&out, "subject="), "{out}");
        assert_eq!(id.serial(), field(&out, "serial="), "{out}");
        let fp = out
            .lines()
            .find_map(|l| l.split_once("Fingerprint=").map(|(_, v)| v))
            .expect("fingerprint line");
        assert_eq!(
            id.fingerprint_sha256(),
            fp.replace(':', "").to_ascii_lowercase()
        );

        let san_line = out
            .lines()
            .skip_while(|l| !l.contains("Subject Alternative Name"))
            .nth(1)
            .unwrap_or("")
            .trim();
        let (mut dns, mut ips, mut uris, mut emails) = (vec![], vec![], vec![], vec![]);
        for item in san_line.split(", ").filter(|s| !s.is_empty()) {
            if let Some(v) = item.strip_prefix("DNS:") {
                dns.push(v.to_owned());
            } else if let Some(v) = item.strip_prefix("IP Address:") {
                ips.push(v.parse::<IpAddr>().expect("openssl IP"));
            } else if let Some(v) = item.strip_prefix("URI:") {
                uris.push(v.to_owned());
            } else if let Some(v) = item.strip_prefix("email:") {
                emails.push(v.to_owned());
            } else {
                panic!("unexpected SAN {item:?}");
            }
        }
        assert_eq!(id.dns_names(), dns.as_slice());
        assert_eq!(id.ip_addresses(), ips.as_slice());
        assert_eq!(id.uris(), uris.as_slice());
        assert_eq!(id.emails(), emails.as_slice());
    }

    #[test]
    fn matches_openssl_for_an_rcgen_certificate() {
        assert_same_as_openssl(&rich_cert());
    }

    #[test]
    fn matches_openssl_for_escapes_and_multi_valued_rdns() {
        // rcgen cannot write multi-valued RDNs; let openssl make this one.
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = dir.path().join("c.der");
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "1", "-multivalue-rdn", "-outform", "DER"])
            .args(["-set_serial", "0x00ff01"])
            .args([
                "-subj",
                "/DC=org/C=US/O=Acme\\, Inc.;x/OU=b+CN=a/CN=#x<y> \"q\"\\\\z ",
            ])
            .args([
                "-addext",
                "subjectAltName=DNS:a.example,IP:2001:db8::1,URI:spiffe://td/x,email:A@B.org",
            ])
            .arg("-keyout")
            .arg(dir.path().join("k.pem"))
            .arg("-out")
            .arg(&cert)
            .output();
        match status {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "openssl req failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => {
                if std::env::var_os("MTLS_REQUIRE_PEERS").is_some_and(|v| v == "1") {
                    panic!("openssl is required but could not run: {e}");
                }
                eprintln!("skipped: openssl not available ({e})");
                return;
            }
        }
        let der = CertificateDer::from(std::fs::read(&cert).expect("read cert"));
        let id = peer(&der);
        assert_eq!(
            id.subject(),
            "CN=\\#x\\<y\\> \\\"q\\\"\\\\z\\ ,OU=b+CN=a,O=Acme\\, Inc.\\;x,C=US,DC=org"
        );
        assert_eq!(id.common_name(), Some("#x<y> \"q\"\\z "));
        assert_eq!(id.serial(), "FF01");
        assert_same_as_openssl(&der);
    }
}
