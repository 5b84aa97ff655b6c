//! Key algorithms ([`KeyAlg`]) and extended key usages ([`Eku`]).

use rcgen::{ExtendedKeyUsagePurpose, KeyPair};

use crate::util::ok;

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

    pub(crate) fn generate(self) -> KeyPair {
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
    pub(crate) fn purposes(&self) -> Vec<ExtendedKeyUsagePurpose> {
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
