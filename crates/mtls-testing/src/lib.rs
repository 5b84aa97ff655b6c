//! An in-memory, throw-away test PKI for testing mTLS code, built on [`rcgen`].
//!
//! It makes root and intermediate CAs ([`Ca`]), server and client leaf certificates
//! ([`Leaf`], via [`LeafBuilder`]) with chosen subject (CN, O, several OUs), SANs (DNS, IP,
//! URI, e-mail), extended key usages and validity — including broken ones (expired,
//! not yet valid, a leaf that claims `CA:TRUE`) — and CRLs ([`Crl`]). Everything can be
//! written as PEM files into a directory; [`TestPki`] bundles a root, an intermediate and
//! a temporary directory for the common case.
//!
//! Keys are ECDSA P-256 by default ([`KeyAlg`]); certificates are signed with their issuer's
//! key algorithm.
//!
//! # Panics
//!
//! This is a test-helper crate: generation functions panic with a clear message if `rcgen`
//! fails (which, for the inputs this crate builds, only happens on invalid user input such as
//! a non-ASCII DNS name), and the `write*` functions panic if the file cannot be written.
//!
//! # Example
//!
//! ```
//! use mtls_testing::{Ca, TestPki};
//!
//! // The common case: root + intermediate + temp dir, files written for you.
//! let pki = TestPki::new();
//! let (_server, server_files) = pki.server("localhost"); // localhost.crt / localhost.key
//! let (client, _client_files) = pki.client("alice");
//! let ca_file = pki.ca_file(); // ca.crt (the root)
//! assert!(server_files.cert.exists() && server_files.key.exists() && ca_file.exists());
//! assert_eq!(client.common_name(), "alice");
//!
//! // Hand-made certificates.
//! let root = Ca::root("Example Root");
//! let issuing = root.intermediate("Example Issuing CA");
//! let bob = issuing
//!     .leaf("bob")
//!     .client()
//!     .organization("Example Corp")
//!     .org_unit("payments")
//!     .uri("spiffe://example.org/bob")
//!     .build();
//! let expired = issuing.leaf("old").expired().build();
//! assert!(bob.chain_pem().starts_with("-----BEGIN CERTIFICATE-----"));
//! assert_eq!(bob.root_pem(), root.cert_pem());
//!
//! // A CRL from the issuing CA revoking `expired`.
//! let crl = issuing.crl(&[&expired]);
//! assert!(crl.pem().starts_with("-----BEGIN X509 CRL-----"));
//! ```
#![deny(missing_docs)]

pub use rcgen;

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber, SigningKey,
};
use time::{Duration, OffsetDateTime};

/// Key algorithm for generated keys.
///
/// rcgen (with ring) can generate ECDSA P-256/P-384 and Ed25519 keys; it cannot generate RSA
/// keys, so RSA is not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyAlg {
    /// ECDSA on NIST P-256, signing with SHA-256 (the default).
    #[default]
    EcdsaP256,
    /// ECDSA on NIST P-384, signing with SHA-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
}

impl KeyAlg {
    /// The rcgen signature algorithm for this key algorithm.
    #[must_use]
    pub fn signature_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Self::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Self::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    fn generate(self) -> KeyPair {
        ok(
            KeyPair::generate_for(self.signature_algorithm()),
            "generating a key pair",
        )
    }
}

/// Extended key usage (EKU) of a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Eku {
    /// `serverAuth` only.
    Server,
    /// `clientAuth` only.
    Client,
    /// `serverAuth` and `clientAuth` (the default for leaves).
    #[default]
    ServerAndClient,
    /// No EKU extension at all.
    None,
    /// Exactly these purposes (an empty list means no EKU extension).
    Custom(Vec<ExtendedKeyUsagePurpose>),
}

impl Eku {
    fn purposes(&self) -> Vec<ExtendedKeyUsagePurpose> {
        match self {
            Self::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Self::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Self::ServerAndClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            Self::None => Vec::new(),
            Self::Custom(purposes) => purposes.clone(),
        }
    }
}

/// A certificate authority (root or intermediate) that can sign leaves, intermediates and CRLs.
///
/// CA certificates have `basicConstraints` `CA:TRUE` (critical, no path length limit),
/// key usages `keyCertSign`, `cRLSign` and `digitalSignature`, a subject key identifier, an
/// authority key identifier, a random serial, and are valid from one day ago until ten years
/// from now.
#[derive(Debug)]
pub struct Ca {
    common_name: String,
    params: CertificateParams,
    key: KeyPair,
    cert_der: Vec<u8>,
    /// This CA's certificate followed by its issuers, excluding the root (empty for a root).
    chain_der: Vec<Vec<u8>>,
    /// `None` when this CA is the root.
    root_der: Option<Vec<u8>>,
}

impl Ca {
    /// Creates a self-signed root CA with subject `CN=<common_name>` and an ECDSA P-256 key.
    ///
    /// # Panics
    ///
    /// Panics if rcgen fails to generate the key or certificate.
    #[must_use]
    pub fn root(common_name: &str) -> Self {
        Self::root_with_alg(common_name, KeyAlg::default())
    }

    /// Like [`Ca::root`], with the given key algorithm.
    ///
    /// # Panics
    ///
    /// Panics if rcgen fails to generate the key or certificate.
    #[must_use]
    pub fn root_with_alg(common_name: &str, alg: KeyAlg) -> Self {
        let params = ca_params(common_name);
        let key = alg.generate();
        let cert = ok(params.self_signed(&key), "self-signing the root CA");
        Self {
            common_name: common_name.to_owned(),
            params,
            key,
            cert_der: cert.der().to_vec(),
            chain_der: Vec::new(),
            root_der: None,
        }
    }

    /// Creates an intermediate CA with subject `CN=<common_name>` and an ECDSA P-256 key,
    /// signed by `self`.
    ///
    /// # Panics
    ///
    /// Panics if rcgen fails to generate the key or certificate.
    #[must_use]
    pub fn intermediate(&self, common_name: &str) -> Self {
        self.intermediate_with_alg(common_name, KeyAlg::default())
    }

    /// Like [`Ca::intermediate`], with the given key algorithm.
    ///
    /// # Panics
    ///
    /// Panics if rcgen fails to generate the key or certificate.
    #[must_use]
    pub fn intermediate_with_alg(&self, common_name: &str, alg: KeyAlg) -> Self {
        let params = ca_params(common_name);
        let key = alg.generate();
        let cert = ok(
            params.signed_by(&key, &self.issuer()),
            "signing the intermediate CA",
        );
        let cert_der = cert.der().to_vec();
        let mut chain_der = vec![cert_der.clone()];
        chain_der.extend(self.chain_der.iter().cloned());
        Self {
            common_name: common_name.to_owned(),
            params,
            key,
            cert_der,
            chain_der,
            root_der: Some(self.root_der().to_vec()),
        }
    }

    /// Starts building a leaf certificate with subject `CN=<common_name>`, signed by this CA.
    ///
    /// See [`LeafBuilder`] for the defaults.
    pub fn leaf(&self, common_name: &str) -> LeafBuilder<'_> {
        let now = OffsetDateTime::now_utc();
        LeafBuilder {
            issuer: self,
            common_name: common_name.to_owned(),
            sans: Vec::new(),
            organization: None,
            org_units: Vec::new(),
            eku: Eku::default(),
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(30),
            is_ca: false,
            key_alg: KeyAlg::default(),
            serial: None,
        }
    }

    /// A CRL signed by this CA revoking `revoked` (reason `keyCompromise`).
    ///
    /// `thisUpdate` is one hour ago, `nextUpdate` seven days from now, the CRL number is 1, and
    /// the authority key identifier extension is set.
    ///
    /// # Panics
    ///
    /// Panics if rcgen fails to sign the CRL.
    #[must_use]
    pub fn crl(&self, revoked: &[&Leaf]) -> Crl {
        let now = OffsetDateTime::now_utc();
        let serials: Vec<&[u8]> = revoked.iter().map(|leaf| leaf.serial.as_slice()).collect();
        self.crl_with(
            &serials,
            now - Duration::hours(1),
            now + Duration::days(7),
            1,
        )
    }

    /// A CRL signed by this CA with full control: the revoked serials (big-endian bytes, as
    /// returned by [`Leaf::serial`]; revocation time `this_update`, reason `keyCompromise`),
    /// `thisUpdate`, `nextUpdate` (may be in the past, to get a stale CRL) and CRL number.
    ///
    /// # Panics
    ///
    /// Panics if rcgen fails to sign the CRL, in particular if `next_update` is not after
    /// `this_update`.
    #[must_use]
    pub fn crl_with(
        &self,
        revoked_serials: &[&[u8]],
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        number: u64,
    ) -> Crl {
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked_serials
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: this_update,
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: self.params.key_identifier_method.clone(),
        };
        let crl = ok(params.signed_by(&self.issuer()), "signing the CRL");
        Crl {
            der: crl.der().to_vec(),
        }
    }

    /// An rcgen [`Issuer`] for this CA, to sign certificates built directly with rcgen.
    pub fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// This CA's certificate, PEM.
    #[must_use]
    pub fn cert_pem(&self) -> String {
        pem("CERTIFICATE", &self.cert_der)
    }

    /// This CA's certificate, DER.
    #[must_use]
    pub fn cert_der(&self) -> Vec<u8> {
        self.cert_der.clone()
    }

    /// This CA's private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    #[must_use]
    pub fn key_pem(&self) -> String {
        pem("PRIVATE KEY", &self.key_der())
    }

    /// This CA's private key, PKCS#8 DER (version 1, without the embedded public key, so
    /// that OpenSSL 3.0 can read Ed25519 keys too).
    #[must_use]
    pub fn key_der(&self) -> Vec<u8> {
        pkcs8_v1(&self.key.serialize_der())
    }

    /// The common name this CA was created with.
    #[must_use]
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// Whether this CA is a (self-signed) root.
    #[must_use]
    pub fn is_root(&self) -> bool {
        self.root_der.is_none()
    }

    /// PEM of this CA's chain up to but NOT including the root (empty for a root): this CA's
    /// certificate followed by its issuing intermediates — what a leaf signed by it must send
    /// after itself.
    #[must_use]
    pub fn chain_pem(&self) -> String {
        self.chain_der
            .iter()
            .map(|der| pem("CERTIFICATE", der))
            .collect()
    }

    /// DER of the certificates in [`Ca::chain_pem`], in the same order.
    #[must_use]
    pub fn chain_der(&self) -> Vec<Vec<u8>> {
        self.chain_der.clone()
    }

    /// The root certificate of this CA's hierarchy (itself for a root), PEM.
    #[must_use]
    pub fn root_pem(&self) -> String {
        pem("CERTIFICATE", self.root_der())
    }

    /// The root certificate of this CA's hierarchy (itself for a root), DER.
    #[must_use]
    pub fn root_der(&self) -> &[u8] {
        self.root_der.as_deref().unwrap_or(&self.cert_der)
    }

    /// Writes [`Ca::cert_pem`] to `dir/file_name` and returns that path.
    ///
    /// # Panics
    ///
    /// Panics if the file cannot be written.
    pub fn write_cert(&self, dir: &Path, file_name: &str) -> PathBuf {
        write_file(dir.join(file_name), &self.cert_pem())
    }
}

/// Builder for a leaf certificate; created by [`Ca::leaf`], finished by [`LeafBuilder::build`].
///
/// Defaults: valid from one hour ago for 30 days, EKU [`Eku::ServerAndClient`], subject
/// `CN=<common name>` only, no SANs, key usage `digitalSignature`, `basicConstraints`
/// `CA:FALSE` (explicit, like openssl), subject and authority key identifiers, a random
/// positive 16-byte serial, an ECDSA P-256 key.
#[must_use = "call .build() to create the certificate"]
#[derive(Debug)]
pub struct LeafBuilder<'a> {
    issuer: &'a Ca,
    common_name: String,
    sans: Vec<PendingSan>,
    organization: Option<String>,
    org_units: Vec<String>,
    eku: Eku,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    is_ca: bool,
    key_alg: KeyAlg,
    serial: Option<u64>,
}

#[derive(Debug, Clone)]
enum PendingSan {
    Dns(String),
    Ip(IpAddr),
    Uri(String),
    Email(String),
}

/// Highest number of OUs a leaf may have (the OU trick below uses placeholder OIDs 2.5.4.101..).
const MAX_ORG_UNITS: usize = 27;

impl LeafBuilder<'_> {
    /// Adds a DNS SAN (may be repeated). Wildcards such as `*.example.com` are allowed.
    ///
    /// [`build`](Self::build) panics if the name is not ASCII.
    pub fn dns(mut self, name: &str) -> Self {
        self.sans.push(PendingSan::Dns(name.to_owned()));
        self
    }

    /// Adds an IP address SAN (may be repeated).
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.sans.push(PendingSan::Ip(ip));
        self
    }

    /// Adds a URI SAN, e.g. a SPIFFE ID (may be repeated).
    ///
    /// [`build`](Self::build) panics if the URI is not ASCII.
    pub fn uri(mut self, uri: &str) -> Self {
        self.sans.push(PendingSan::Uri(uri.to_owned()));
        self
    }

    /// Adds an e-mail (rfc822Name) SAN (may be repeated).
    ///
    /// [`build`](Self::build) panics if the address is not ASCII.
    pub fn email(mut self, email: &str) -> Self {
        self.sans.push(PendingSan::Email(email.to_owned()));
        self
    }

    /// Sets the subject organization (O). A second call replaces the first.
    pub fn organization(mut self, o: &str) -> Self {
        self.organization = Some(o.to_owned());
        self
    }

    /// Adds a subject organizational unit (OU); may be repeated to get several OUs (each in
    /// its own RDN, in call order; at most 27).
    pub fn org_unit(mut self, ou: &str) -> Self {
        self.org_units.push(ou.to_owned());
        self
    }

    /// Sets the extended key usage (default [`Eku::ServerAndClient`]).
    pub fn eku(mut self, eku: Eku) -> Self {
        self.eku = eku;
        self
    }

    /// Shorthand for `.eku(Eku::Server)`.
    pub fn server(self) -> Self {
        self.eku(Eku::Server)
    }

    /// Shorthand for `.eku(Eku::Client)`.
    pub fn client(self) -> Self {
        self.eku(Eku::Client)
    }

    /// Removes all SANs added so far, so the certificate has no subjectAltName extension
    /// (which is already the case if no SAN is added).
    pub fn no_san(mut self) -> Self {
        self.sans.clear();
        self
    }

    /// Sets the validity period.
    pub fn validity(mut self, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }

    /// Makes an expired certificate: valid from 30 days ago until 1 day ago.
    pub fn expired(self) -> Self {
        let now = OffsetDateTime::now_utc();
        self.validity(now - Duration::days(30), now - Duration::days(1))
    }

    /// Makes a not-yet-valid certificate: valid from 1 day from now until 30 days from now.
    pub fn not_yet_valid(self) -> Self {
        let now = OffsetDateTime::now_utc();
        self.validity(now + Duration::days(1), now + Duration::days(30))
    }

    /// Gives the leaf `basicConstraints` `CA:TRUE` (the `openssl ... -extensions v3_ca`
    /// mistake); everything else stays as for a normal leaf.
    pub fn ca(mut self) -> Self {
        self.is_ca = true;
        self
    }

    /// Sets the key algorithm of the leaf's key (default [`KeyAlg::EcdsaP256`]).
    pub fn key_alg(mut self, alg: KeyAlg) -> Self {
        self.key_alg = alg;
        self
    }

    /// Sets the serial number (default: random, positive, 16 bytes).
    pub fn serial(mut self, serial: u64) -> Self {
        self.serial = Some(serial);
        self
    }

    /// Generates the key and the certificate signed by the issuing CA.
    ///
    /// # Panics
    ///
    /// Panics if a DNS, URI or e-mail SAN is not ASCII, if more than 27 OUs were added, or if
    /// rcgen fails to generate the key or certificate.
    #[must_use]
    pub fn build(self) -> Leaf {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, self.common_name.as_str());
        if let Some(o) = &self.organization {
            params
                .distinguished_name
                .push(DnType::OrganizationName, o.as_str());
        }
        assert!(
            self.org_units.len() <= MAX_ORG_UNITS,
            "mtls-testing: at most {MAX_ORG_UNITS} OUs are supported"
        );
        for (i, ou) in self.org_units.iter().enumerate() {
            // rcgen keeps one value per attribute type, so OUs after the first get placeholder
            // types that are patched to id-at-organizationalUnitName below.
            let ty = if i == 0 {
                DnType::OrganizationalUnitName
            } else {
                DnType::CustomDnType(vec![2, 5, 4, placeholder_ou_arc(i)])
            };
            params.distinguished_name.push(ty, ou.as_str());
        }
        params.subject_alt_names = self.sans.iter().map(PendingSan::to_rcgen).collect();
        params.is_ca = if self.is_ca {
            IsCa::Ca(BasicConstraints::Unconstrained)
        } else {
            IsCa::ExplicitNoCa
        };
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = self.eku.purposes();
        params.not_before = self.not_before;
        params.not_after = self.not_after;
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let serial = match self.serial {
            Some(n) => n.to_be_bytes().to_vec(),
            None => random_serial(),
        };
        params.serial_number = Some(SerialNumber::from_slice(&serial));

        let key = self.key_alg.generate();
        let cert = ok(
            params.signed_by(&key, &self.issuer.issuer()),
            "signing the leaf certificate",
        );
        let mut cert_der = cert.der().to_vec();
        if self.org_units.len() > 1 {
            cert_der = patch_org_units(&cert_der, &self.org_units, &self.issuer.key);
        }
        Leaf {
            common_name: self.common_name,
            cert_der,
            key,
            serial: der_integer_content(&serial),
            not_before: self.not_before,
            not_after: self.not_after,
            issuer_chain_der: self.issuer.chain_der.clone(),
            root_der: self.issuer.root_der().to_vec(),
        }
    }
}

impl PendingSan {
    fn to_rcgen(&self) -> SanType {
        let ia5 = |kind: &str, s: &str| -> rcgen::string::Ia5String {
            match s.try_into() {
                Ok(v) => v,
                Err(e) => panic!("mtls-testing: invalid {kind} SAN {s:?}: {e}"),
            }
        };
        match self {
            Self::Dns(s) => SanType::DnsName(ia5("DNS", s)),
            Self::Ip(ip) => SanType::IpAddress(*ip),
            Self::Uri(s) => SanType::URI(ia5("URI", s)),
            Self::Email(s) => SanType::Rfc822Name(ia5("e-mail", s)),
        }
    }
}

/// A leaf (end-entity) certificate with its private key, made by [`LeafBuilder::build`].
pub struct Leaf {
    common_name: String,
    cert_der: Vec<u8>,
    key: KeyPair,
    serial: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    issuer_chain_der: Vec<Vec<u8>>,
    root_der: Vec<u8>,
}

impl fmt::Debug for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leaf")
            .field("common_name", &self.common_name)
            .field("serial", &self.serial)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Leaf {
    /// The leaf certificate alone, PEM.
    #[must_use]
    pub fn cert_pem(&self) -> String {
        pem("CERTIFICATE", &self.cert_der)
    }

    /// The leaf certificate alone, DER.
    #[must_use]
    pub fn cert_der(&self) -> Vec<u8> {
        self.cert_der.clone()
    }

    /// The private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    #[must_use]
    pub fn key_pem(&self) -> String {
        pem("PRIVATE KEY", &self.key_der())
    }

    /// The private key, PKCS#8 DER (version 1, without the embedded public key, so that
    /// OpenSSL 3.0 can read Ed25519 keys too).
    #[must_use]
    pub fn key_der(&self) -> Vec<u8> {
        pkcs8_v1(&self.key.serialize_der())
    }

    /// The leaf followed by the issuing intermediates (not the root), PEM.
    #[must_use]
    pub fn chain_pem(&self) -> String {
        self.chain_der()
            .iter()
            .map(|der| pem("CERTIFICATE", der))
            .collect()
    }

    /// The leaf followed by the issuing intermediates (not the root), DER.
    #[must_use]
    pub fn chain_der(&self) -> Vec<Vec<u8>> {
        let mut chain = vec![self.cert_der.clone()];
        chain.extend(self.issuer_chain_der.iter().cloned());
        chain
    }

    /// The serial number: the content bytes of the DER INTEGER as encoded in the certificate
    /// (big-endian, minimal, with a leading `0x00` if the high bit would otherwise be set).
    #[must_use]
    pub fn serial(&self) -> Vec<u8> {
        self.serial.clone()
    }

    /// The common name the leaf was built with.
    #[must_use]
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// Start of the validity period.
    #[must_use]
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// End of the validity period.
    #[must_use]
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The root certificate of the hierarchy that issued this leaf, PEM.
    #[must_use]
    pub fn root_pem(&self) -> String {
        pem("CERTIFICATE", &self.root_der)
    }

    /// The root certificate of the hierarchy that issued this leaf, DER.
    #[must_use]
    pub fn root_der(&self) -> Vec<u8> {
        self.root_der.clone()
    }

    /// The key pair (e.g. to sign something as this leaf).
    #[must_use]
    pub fn key_pair(&self) -> &KeyPair {
        &self.key
    }

    /// Writes `<name>.crt` ([`Leaf::chain_pem`]: leaf + intermediates) and `<name>.key`
    /// ([`Leaf::key_pem`]) into `dir`; returns the paths.
    ///
    /// # Panics
    ///
    /// Panics if a file cannot be written.
    pub fn write(&self, dir: &Path, name: &str) -> LeafFiles {
        LeafFiles {
            cert: write_file(dir.join(format!("{name}.crt")), &self.chain_pem()),
            key: write_file(dir.join(format!("{name}.key")), &self.key_pem()),
        }
    }
}

/// Paths of the files written by [`Leaf::write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafFiles {
    /// `<name>.crt`: the leaf certificate followed by the intermediates, PEM.
    pub cert: PathBuf,
    /// `<name>.key`: the private key, PKCS#8 PEM.
    pub key: PathBuf,
}

/// A certificate revocation list, made by [`Ca::crl`] or [`Ca::crl_with`].
#[derive(Debug, Clone)]
pub struct Crl {
    der: Vec<u8>,
}

impl Crl {
    /// The CRL, PEM (`-----BEGIN X509 CRL-----`).
    #[must_use]
    pub fn pem(&self) -> String {
        pem("X509 CRL", &self.der)
    }

    /// The CRL, DER.
    #[must_use]
    pub fn der(&self) -> Vec<u8> {
        self.der.clone()
    }

    /// Writes [`Crl::pem`] to `dir/file_name` and returns that path.
    ///
    /// # Panics
    ///
    /// Panics if the file cannot be written.
    pub fn write(&self, dir: &Path, file_name: &str) -> PathBuf {
        write_file(dir.join(file_name), &self.pem())
    }
}

/// A ready-made PKI in a temp dir, for the common case.
///
/// The directory is deleted when the `TestPki` is dropped.
#[derive(Debug)]
pub struct TestPki {
    /// The root CA, `CN=mtls-testing root`.
    pub root: Ca,
    /// The intermediate CA, `CN=mtls-testing intermediate`, signed by `root`.
    pub intermediate: Ca,
    /// A fresh temporary directory for the files.
    pub dir: tempfile::TempDir,
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPki {
    /// Root `mtls-testing root`, intermediate `mtls-testing intermediate` signed by the root,
    /// and a fresh temp dir.
    ///
    /// # Panics
    ///
    /// Panics if the temp dir cannot be created or rcgen fails.
    #[must_use]
    pub fn new() -> Self {
        let root = Ca::root("mtls-testing root");
        let intermediate = root.intermediate("mtls-testing intermediate");
        let dir = match tempfile::Builder::new().prefix("mtls-testing-").tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("mtls-testing: cannot create a temporary directory: {e}"),
        };
        Self {
            root,
            intermediate,
            dir,
        }
    }

    /// `dir.join(file_name)`.
    #[must_use]
    pub fn path(&self, file_name: &str) -> PathBuf {
        self.dir.path().join(file_name)
    }

    /// Server leaf signed by the intermediate: `CN=<name>`, DNS SANs `name` and `localhost`,
    /// IP SAN `127.0.0.1`, EKU `serverAuth`; writes `<name>.crt` (leaf + intermediate) and
    /// `<name>.key`.
    ///
    /// # Panics
    ///
    /// Panics if `name` is not ASCII, or on rcgen or I/O failure.
    pub fn server(&self, name: &str) -> (Leaf, LeafFiles) {
        let mut builder = self.intermediate.leaf(name).server().dns(name);
        if name != "localhost" {
            builder = builder.dns("localhost");
        }
        let leaf = builder.ip(IpAddr::V4(Ipv4Addr::LOCALHOST)).build();
        let files = leaf.write(self.dir.path(), name);
        (leaf, files)
    }

    /// Client leaf signed by the intermediate: `CN=<name>`, EKU `clientAuth`, no SANs; writes
    /// `<name>.crt` (leaf + intermediate) and `<name>.key`.
    ///
    /// # Panics
    ///
    /// Panics on rcgen or I/O failure.
    pub fn client(&self, name: &str) -> (Leaf, LeafFiles) {
        let leaf = self.intermediate.leaf(name).client().build();
        let files = leaf.write(self.dir.path(), name);
        (leaf, files)
    }

    /// Writes the root certificate to `ca.crt` and returns its path.
    ///
    /// # Panics
    ///
    /// Panics if the file cannot be written.
    pub fn ca_file(&self) -> PathBuf {
        self.root.write_cert(self.dir.path(), "ca.crt")
    }
}

// ---------------------------------------------------------------------------------------------
// Private helpers.

fn ok<T>(result: Result<T, rcgen::Error>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("mtls-testing: rcgen failed {what}: {e}"),
    }
}

fn write_file(path: PathBuf, contents: &str) -> PathBuf {
    if let Err(e) = std::fs::write(&path, contents) {
        panic!("mtls-testing: cannot write {}: {e}", path.display());
    }
    path
}

fn ca_params(common_name: &str) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(3650);
    params.serial_number = Some(SerialNumber::from(random_serial()));
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

/// 16 random bytes, first byte in `0x01..=0x7f` (positive, no leading zero, exactly 16 bytes
/// as a DER INTEGER).
fn random_serial() -> Vec<u8> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut out = Vec::with_capacity(16);
    for half in 0u8..2 {
        // RandomState is randomly keyed per process (and per instance), good enough here.
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(count);
        hasher.write_u128(nanos);
        hasher.write_u8(half);
        out.extend_from_slice(&hasher.finish().to_be_bytes());
    }
    out[0] = out[0] % 0x7f + 1;
    out
}

/// The content bytes of a DER INTEGER encoding the non-negative big-endian number `bytes`.
fn der_integer_content(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let digits = &bytes[start..];
    match digits.first() {
        None => vec![0],
        Some(&b) if b >= 0x80 => {
            let mut v = vec![0];
            v.extend_from_slice(digits);
            v
        }
        Some(_) => digits.to_vec(),
    }
}

/// Last OID arc of the placeholder attribute type for the `i`-th OU (`i >= 1`): 2.5.4.(100+i),
/// which, like 2.5.4.11, encodes in three bytes.
fn placeholder_ou_arc(i: usize) -> u64 {
    100 + i as u64
}

/// Rewrites the placeholder OU attribute types to id-at-organizationalUnitName (2.5.4.11) and
/// re-signs the certificate with `issuer_key`.
fn patch_org_units(cert_der: &[u8], org_units: &[String], issuer_key: &KeyPair) -> Vec<u8> {
    let Some((mut tbs, alg)) = split_certificate(cert_der) else {
        panic!("mtls-testing: cannot parse the certificate rcgen produced");
    };
    for (i, ou) in org_units.iter().enumerate().skip(1) {
        let arc = placeholder_ou_arc(i) as u8;
        let mut needle = vec![0x06, 0x03, 0x55, 0x04, arc];
        needle.extend(tlv(0x0c, ou.as_bytes()));
        let Some(pos) = tbs
            .windows(needle.len())
            .position(|w| w == needle.as_slice())
        else {
            panic!("mtls-testing: OU placeholder not found in the certificate");
        };
        tbs[pos + 4] = 11;
    }
    let signature = match issuer_key.sign(&tbs) {
        Ok(sig) => sig,
        Err(e) => panic!("mtls-testing: re-signing the certificate failed: {e}"),
    };
    let mut bits = vec![0u8];
    bits.extend(signature);
    let mut body = tbs;
    body.extend(alg);
    body.extend(tlv(0x03, &bits));
    tlv(0x30, &body)
}

/// Rewrites a PKCS#8 v2 (RFC 5958 OneAsymmetricKey, as ring makes for Ed25519) private key
/// as PKCS#8 v1 by dropping the optional fields after the private key; v1 keys are returned
/// unchanged.
fn pkcs8_v1(der: &[u8]) -> Vec<u8> {
    fn convert(der: &[u8]) -> Option<Vec<u8>> {
        let (header, total) = read_tlv(der)?;
        let body = der.get(header..total)?;
        let (_, version_len) = read_tlv(body)?;
        if body.get(..version_len)? == [0x02, 0x01, 0x00] {
            return None;
        }
        let rest = body.get(version_len..)?;
        let (_, alg_len) = read_tlv(rest)?;
        let after_alg = rest.get(alg_len..)?;
        let (_, key_len) = read_tlv(after_alg)?;
        let mut v1 = vec![0x02, 0x01, 0x00];
        v1.extend_from_slice(rest.get(..alg_len)?);
        v1.extend_from_slice(after_alg.get(..key_len)?);
        Some(tlv(0x30, &v1))
    }
    convert(der).unwrap_or_else(|| der.to_vec())
}

/// Splits a DER certificate into (tbsCertificate TLV, signatureAlgorithm TLV).
fn split_certificate(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (header, total) = read_tlv(der)?;
    let body = der.get(header..total)?;
    let (_, tbs_len) = read_tlv(body)?;
    let rest = body.get(tbs_len..)?;
    let (_, alg_len) = read_tlv(rest)?;
    Some((body.get(..tbs_len)?.to_vec(), rest.get(..alg_len)?.to_vec()))
}

/// Header length and total length of the (single-byte tag) TLV at the start of `input`.
fn read_tlv(input: &[u8]) -> Option<(usize, usize)> {
    let first = usize::from(*input.get(1)?);
    let (header, len) = if first < 0x80 {
        (2, first)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for byte in input.get(2..2 + n)? {
            len = (len << 8) | usize::from(*byte);
        }
        (2 + n, len)
    };
    let total = header.checked_add(len)?;
    (total <= input.len()).then_some((header, total))
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
