//! Certificate authorities: roots and intermediates ([`Ca`]).
//!
//! [`Ca::leaf`] is in the `leaf` module and [`Ca::crl`] / [`Ca::crl_with`] are in the `crl`
//! module, next to the types they build.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::der::{pem, pkcs8_v1};
use crate::key::KeyAlg;
use crate::util::{ok, random_serial, write_file};

/// A certificate authority (root or intermediate) that can sign leaves, intermediates and CRLs.
///
/// CA certificates have `basicConstraints` `CA:TRUE` (critical, no path length limit),
/// key usages `keyCertSign`, `cRLSign` and `digitalSignature`, a subject key identifier, an
/// authority key identifier, a random serial, and are valid from one day ago until ten years
/// from now.
#[derive(Debug)]
pub struct Ca {
    common_name: String,
    pub(crate) params: CertificateParams,
    pub(crate) key: KeyPair,
    cert_der: Vec<u8>,
    /// This CA's certificate followed by its issuers, excluding the root (empty for a root).
    pub(crate) chain_der: Vec<Vec<u8>>,
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

    /// Like [`Ca::intermediate`], with a CRL distribution point (a URI full name) in the
    /// intermediate's certificate: where the CRL that covers *it* (its issuer's) is.
    ///
    /// # Panics
    ///
    /// Panics if rcgen fails to generate the key or certificate.
    #[must_use]
    pub fn intermediate_with_crl_dp(&self, common_name: &str, uri: &str) -> Self {
        let mut params = ca_params(common_name);
        params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec![uri.to_owned()],
        }];
        let key = KeyAlg::default().generate();
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

    /// This CA certificate's serial number (the DER INTEGER content bytes), for revoking
    /// it in its issuer's CRL ([`Ca::crl_with`]).
    #[must_use]
    pub fn serial(&self) -> Vec<u8> {
        let raw = self
            .params
            .serial_number
            .as_ref()
            .map(|s| s.to_bytes())
            .unwrap_or_default();
        crate::der::der_integer_content(&raw)
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
