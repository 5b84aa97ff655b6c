//! Keys that sign outside this process: a cloud KMS, an agent, an HSM.
//!
//! Implement [`KeySigner`] for the service that holds the key, and give it with the
//! certificate chain to [`ServerBuilder::identity_signer`](crate::ServerBuilder::identity_signer)
//! or [`ClientBuilder::identity_signer`](crate::ClientBuilder::identity_signer) (or
//! [`Identity::signer`](crate::Identity::signer) for an SNI name). rustls calls it
//! through its `SigningKey` interface once per full handshake (resumed handshakes sign
//! nothing). With the feature `pkcs11`, `mtls::pkcs11::Pkcs11Key` is one for PKCS#11
//! tokens.
//!
//! At build and at every reload, the key is asked to sign a test message, which is
//! verified with the certificate's public key: a key that does not match the
//! certificate fails with [`Error::SignerKeyMismatch`](crate::Error::SignerKeyMismatch), one that
//! cannot sign with [`Error::SignerFailed`](crate::Error::SignerFailed), before it
//! serves anyone.
//!
//! `sign` runs on the thread that drives the handshake (a tokio worker): a signer that
//! waits on the network should answer within milliseconds, or run the handshakes of a
//! [`TlsListener`](crate::TlsListener) on a runtime sized for it.
//!
//! ```
//! use mtls::rustls::{SignatureAlgorithm, SignatureScheme};
//! use mtls::signer::KeySigner;
//!
//! #[derive(Debug)]
//! struct Kms { key_id: String }
//!
//! impl KeySigner for Kms {
//!     fn algorithm(&self) -> SignatureAlgorithm {
//!         SignatureAlgorithm::ECDSA
//!     }
//!     fn schemes(&self) -> Vec<SignatureScheme> {
//!         vec![SignatureScheme::ECDSA_NISTP256_SHA256]
//!     }
//!     fn sign(&self, _scheme: SignatureScheme, _message: &[u8]) -> Result<Vec<u8>, String> {
//!         Err(format!("call the KMS to sign with {}", self.key_id))
//!     }
//! }
//! ```

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{SignatureAlgorithm, SignatureScheme};

/// A private key that signs elsewhere (see the [module docs](self)).
pub trait KeySigner: Send + Sync + fmt::Debug + 'static {
    /// The key's algorithm: RSA, ECDSA or Ed25519.
    fn algorithm(&self) -> SignatureAlgorithm;

    /// The TLS signature schemes the key can make, most preferred first (for an RSA key
    /// e.g. `RSA_PSS_SHA256`, `RSA_PKCS1_SHA256`; for a P-256 key
    /// `ECDSA_NISTP256_SHA256`). Only schemes the peer offers are used.
    fn schemes(&self) -> Vec<SignatureScheme>;

    /// Signs `message` (the whole message: hashing is part of `scheme`). ECDSA
    /// signatures are DER (`Ecdsa-Sig-Value`), as TLS carries them. An `Err` is logged
    /// and fails the handshake; it must not contain secrets.
    fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>, String>;

    /// What the key is, for error messages (`"KMS key projects/p/keys/api"`); no
    /// secrets. Default: "the external signing key".
    fn describe(&self) -> String {
        "the external signing key".to_owned()
    }
}

/// rustls' view of a [`KeySigner`].
#[derive(Debug)]
pub(crate) struct HookKey(pub(crate) Arc<dyn KeySigner>);

impl rustls::sign::SigningKey for HookKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        let scheme = self.0.schemes().into_iter().find(|s| offered.contains(s))?;
        Some(Box::new(HookSigner {
            key: self.0.clone(),
            scheme,
        }))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.0.algorithm()
    }
}

#[derive(Debug)]
struct HookSigner {
    key: Arc<dyn KeySigner>,
    scheme: SignatureScheme,
}

impl rustls::sign::Signer for HookSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.key.sign(self.scheme, message).map_err(|reason| {
            tracing::warn!(
                target: "mtls::signer",
                scheme = ?self.scheme,
                %reason,
                "the signing key failed; the handshake fails"
            );
            rustls::Error::General(format!("the signing key failed: {reason}"))
        })
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

/// Why the preflight signature failed.
pub(crate) enum CheckError {
    /// The key signed, but the certificate's public key does not verify it.
    Mismatch,
    /// The key did not sign (or offers no scheme the provider verifies).
    Failed(String),
}

/// Signs a test message with `key` and verifies it with `leaf`'s public key, with each
/// scheme the key offers that the provider can verify until one works.
pub(crate) fn check(
    key: &dyn KeySigner,
    leaf: &CertificateDer<'_>,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<(), CheckError> {
    const MESSAGE: &[u8] = b"mtls: does this key match its certificate?";
    let ee = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| CheckError::Failed(format!("the certificate does not parse: {e}")))?;
    let mapping = provider.signature_verification_algorithms.mapping;
    // The first scheme the provider can verify decides.
    let schemes = key.schemes();
    let Some((scheme, algs)) = schemes
        .iter()
        .find_map(|s| mapping.iter().find(|(m, _)| m == s).map(|(m, a)| (*m, *a)))
    else {
        return Err(CheckError::Failed(format!(
            "it offers no signature scheme the crypto provider verifies ({schemes:?})"
        )));
    };
    let sig = key.sign(scheme, MESSAGE).map_err(CheckError::Failed)?;
    if algs
        .iter()
        .any(|alg| ee.verify_signature(*alg, MESSAGE, &sig).is_ok())
    {
        Ok(())
    } else {
        Err(CheckError::Mismatch)
    }
}
