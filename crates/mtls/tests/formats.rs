//! Every file format OpenSSL writes loads, and drives a real handshake; nothing panics on
//! damaged input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::{ask, serve};
use mtls::{Client, Policy, Server};

fn fx(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn keys_in_every_openssl_format_load() {
    for key in [
        "server.key",           // openssl genrsa (PKCS#8)
        "client-rsa-pkcs1.key", // genrsa -traditional (PKCS#1)
        "client-ec.key",        // ecparam -genkey (EC PARAMETERS + SEC1)
        "client-ed25519.key",   // genpkey -algorithm ed25519
        "client-pkcs8.key",     // genpkey EC (PKCS#8)
        "server.key.der",       // DER PKCS#8
        "server.pem",           // combined cert + key
        "server-crlf.pem",      // CRLF line endings
    ] {
        mtls::pem::load_key(fx(key)).unwrap_or_else(|e| panic!("{key}: {e}"));
    }
}

#[test]
fn certificates_bundles_and_crls_load() {
    assert_eq!(mtls::pem::load_certs(fx("ca-bundle.pem")).unwrap().len(), 3);
    assert_eq!(
        mtls::pem::load_certs(fx("server-chain.crt")).unwrap().len(),
        2
    );
    assert_eq!(mtls::pem::load_certs(fx("server.pem")).unwrap().len(), 2);
    assert_eq!(
        mtls::pem::load_certs(fx("server-crlf.pem")).unwrap().len(),
        2
    );
    let der = mtls::pem::load_certs(fx("server.der")).unwrap();
    let pem = mtls::pem::load_certs(fx("server.crt")).unwrap();
    assert_eq!(der, pem);
    let crl_pem = mtls::pem::load_crls(fx("intermediate.crl.pem")).unwrap();
    let crl_der = mtls::pem::load_crls(fx("intermediate.crl.der")).unwrap();
    assert_eq!(crl_pem, crl_der);
}

/// Each client key format authenticates over real TLS against a server built from the
/// combined `server.pem`, with the CRL of the intermediate.
#[tokio::test]
async fn openssl_pki_drives_real_handshakes() {
    let server = Server::builder()
        .identity(fx("server.pem"), fx("server.pem"))
        .client_ca(fx("ca.crt"))
        // The client files hold lone leaves: the server needs the intermediate too.
        .client_ca(fx("intermediate.crt"))
        .crl(fx("intermediate.crl.der"))
        .crl(fx("root.crl.pem"))
        .policy(Policy::any_verified())
        .build()
        .unwrap();
    let srv = serve(&server).await;
    for (cert, key, cn) in [
        ("client-rsa-pkcs1.crt", "client-rsa-pkcs1.key", "client-rsa"),
        ("client-ec.crt", "client-ec.key", "client-ec"),
        ("client-ed25519.crt", "client-ed25519.key", "client-ed25519"),
        ("client-pkcs8.crt", "client-pkcs8.key", "client-pkcs8"),
    ] {
        let client = Client::builder()
            .identity(fx(cert), fx(key))
            .ca(fx("ca-bundle.pem"))
            .build()
            .unwrap_or_else(|e| panic!("{cert}: {e}"));
        let line = ask(&client, srv.addr)
            .await
            .unwrap_or_else(|e| panic!("{cert}: {e}"));
        assert!(line.contains(&format!("CN={cn}")), "{cert}: {line}");
    }
    // The revoked client from the same CA database is refused.
    let cfg = common::raw_client(
        &fx("ca.crt"),
        Some((&fx("revoked.crt"), &fx("revoked.key"))),
    );
    assert!(common::ask_raw(cfg, srv.addr).await.is_err());
}

/// Truncations and random bytes fed to every loader give errors, never panics.
#[test]
fn damaged_input_never_panics() {
    let origin = std::path::Path::new("input");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let samples: Vec<Vec<u8>> = [
        "server.pem",
        "server.der",
        "server.key.der",
        "client-ec.key",
        "intermediate.crl.pem",
        "intermediate.crl.der",
        "ca-bundle.pem",
    ]
    .iter()
    .map(|f| std::fs::read(fx(f)).unwrap())
    .collect();
    let mut inputs = Vec::new();
    for s in &samples {
        for cut in (0..s.len()).step_by(s.len() / 40 + 1) {
            inputs.push(s[..cut].to_vec());
        }
        for _ in 0..30 {
            let mut m = s.clone();
            for _ in 0..4 {
                let i = (next() as usize) % m.len();
                m[i] = next() as u8;
            }
            inputs.push(m);
        }
    }
    for _ in 0..200 {
        let len = (next() % 600) as usize;
        let mut v: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if len > 2 {
            v[0] = 0x30;
        }
        inputs.push(v);
    }
    let mut errors = 0;
    for input in &inputs {
        errors += usize::from(mtls::pem::parse_certs(input, origin).is_err());
        errors += usize::from(mtls::pem::parse_key(input, origin).is_err());
        errors += usize::from(mtls::pem::parse_crls(input, origin).is_err());
        let _ = mtls::PeerIdentity::from_chain(&[rustls::pki_types::CertificateDer::from(
            input.as_slice(),
        )]);
    }
    // Random bytes are overwhelmingly rejected; the point is that none of it panicked.
    assert!(
        errors > inputs.len(),
        "{errors} errors for {} inputs",
        inputs.len()
    );
}
