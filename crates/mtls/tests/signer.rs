//! The signer hook: a key that signs "elsewhere" (here a software key behind the
//! `KeySigner` trait, standing in for a KMS) as server and client identity over real
//! loopback mTLS; a signer for another key, or one that fails, is refused at build.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{ask, serve};
use mtls::rustls::{SignatureAlgorithm, SignatureScheme};
use mtls::signer::KeySigner;
use mtls::{Client, Error, Policy, Server};
use mtls_testing::TestPki;

/// A "KMS" holding a key in memory, counting its signatures.
#[derive(Debug)]
struct SoftKms {
    key: Arc<dyn rustls::sign::SigningKey>,
    signatures: Arc<AtomicUsize>,
    fail: bool,
}

impl SoftKms {
    fn new(key_file: &std::path::Path, fail: bool) -> (Self, Arc<AtomicUsize>) {
        let der = mtls::pem::load_key(key_file).unwrap();
        let key = common::provider()
            .key_provider
            .load_private_key(der)
            .unwrap();
        let n = Arc::new(AtomicUsize::new(0));
        (
            Self {
                key,
                signatures: n.clone(),
                fail,
            },
            n,
        )
    }
}

impl KeySigner for SoftKms {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.key.algorithm()
    }
    fn schemes(&self) -> Vec<SignatureScheme> {
        [
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::ECDSA_NISTP384_SHA384,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PKCS1_SHA256,
            SignatureScheme::ED25519,
        ]
        .into_iter()
        .filter(|s| self.key.choose_scheme(&[*s]).is_some())
        .collect()
    }
    fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>, String> {
        if self.fail {
            return Err("the KMS is unreachable".to_owned());
        }
        self.signatures.fetch_add(1, Ordering::SeqCst);
        let signer = self.key.choose_scheme(&[scheme]).ok_or("scheme")?;
        signer.sign(message).map_err(|e| e.to_string())
    }
}

#[tokio::test]
async fn signer_hook_serves_and_connects_over_mtls() {
    let pki = TestPki::new();
    let (_, server_files) = pki.server("localhost");
    let (_, alice) = pki.client("alice");
    let (server_kms, server_sigs) = SoftKms::new(&server_files.key, false);
    let server = Server::builder()
        .identity_signer(&server_files.cert, server_kms)
        .client_ca(pki.ca_file())
        .policy(Policy::any_verified())
        .build()
        .unwrap();
    assert_eq!(
        server_sigs.load(Ordering::SeqCst),
        1,
        "the preflight signature"
    );
    let srv = serve(&server).await;
    let (client_kms, client_sigs) = SoftKms::new(&alice.key, false);
    let client = Client::builder()
        .identity_signer(&alice.cert, client_kms)
        .ca(pki.ca_file())
        .session_cache(0)
        .build()
        .unwrap();
    for _ in 0..3 {
        let answer = ask(&client, srv.addr).await.unwrap();
        assert!(answer.starts_with("CN=alice"), "{answer}");
    }
    // One signature per full handshake on each side (resumption is off here).
    assert_eq!(server_sigs.load(Ordering::SeqCst), 1 + 3);
    assert_eq!(client_sigs.load(Ordering::SeqCst), 1 + 3);
}

#[test]
fn a_signer_for_another_key_or_one_that_fails_is_refused_at_build() {
    let pki = TestPki::new();
    let (_, server_files) = pki.server("localhost");
    let (_, other) = pki.server("other");
    let (kms, _) = SoftKms::new(&other.key, false);
    let e = Server::builder()
        .identity_signer(&server_files.cert, kms)
        .client_ca(pki.ca_file())
        .policy(Policy::any_verified())
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::SignerKeyMismatch { .. }), "{e:?}");
    let (kms, _) = SoftKms::new(&server_files.key, true);
    let e = Server::builder()
        .identity_signer(&server_files.cert, kms)
        .client_ca(pki.ca_file())
        .policy(Policy::any_verified())
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::SignerFailed { .. }), "{e:?}");
    assert!(e.to_string().contains("the KMS is unreachable"), "{e}");
}
