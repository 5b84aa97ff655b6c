//! Leaf certificates: [`Ca::leaf`], [`LeafBuilder`], [`Leaf`] and [`LeafFiles`].

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose,
    SanType, SerialNumber, SigningKey,
};
use time::{Duration, OffsetDateTime};

use crate::ca::Ca;
use crate::der::{der_integer_content, pem, pkcs8_v1, split_certificate, tlv};
use crate::key::{Eku, KeyAlg};
use crate::util::{ok, random_serial, write_file};

impl Ca {
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
            crl_distribution_points: Vec::new(),
        }
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
    crl_distribution_points: Vec<String>,
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
    /// Adds a CRL distribution point (a URI full name, e.g.
    /// `http://127.0.0.1:8080/ca.crl`); may be repeated.
    pub fn crl_distribution_point(mut self, uri: &str) -> Self {
        self.crl_distribution_points.push(uri.to_owned());
        self
    }

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
        params.crl_distribution_points = self
            .crl_distribution_points
            .iter()
            .map(|uri| rcgen::CrlDistributionPoint {
                uris: vec![uri.clone()],
            })
            .collect();

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
    pub(crate) serial: Vec<u8>,
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
