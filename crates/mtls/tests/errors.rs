//! Every preflight error, produced from a real bad file, names that file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use mtls::{Client, Error, Policy, Server};

fn fx(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn server(cert: &str, key: &str) -> Result<Server, Error> {
    Server::builder()
        .identity(fx(cert), fx(key))
        .client_ca(fx("ca.crt"))
        .policy(Policy::any_verified())
        .build()
}

fn client(cert: &str, key: &str) -> Result<Client, Error> {
    Client::builder()
        .identity(fx(cert), fx(key))
        .ca(fx("ca.crt"))
        .build()
}

/// Asserts the message names `file` and contains every `words`.
fn says(err: &Error, file: &str, words: &[&str]) {
    let msg = err.to_string();
    assert!(msg.contains(file), "message does not name {file}: {msg}");
    for w in words {
        assert!(msg.contains(w), "message lacks {w:?}: {msg}");
    }
    assert!(
        err.path().is_some_and(|p| p.ends_with(file)),
        "{:?}",
        err.path()
    );
}

#[test]
fn good_fixtures_build() {
    server("server-chain.crt", "server.key").unwrap();
    server("server.pem", "server.pem").unwrap();
    // A lone client leaf verifies once the intermediate is in the CA file.
    Client::builder()
        .identity(fx("client-ec.crt"), fx("client-ec.key"))
        .ca(fx("ca-bundle.pem"))
        .build()
        .unwrap();
}

#[test]
fn key_does_not_match_certificate() {
    let e = server("server-chain.crt", "mismatch.key").unwrap_err();
    assert!(matches!(e, Error::KeyMismatch { .. }), "{e:?}");
    says(
        &e,
        "mismatch.key",
        &["does not match", "server-chain.crt", "key values mismatch"],
    );
}

#[test]
fn expired_leaf() {
    let e = client("expired.crt", "expired.key").unwrap_err();
    assert!(matches!(e, Error::Expired { .. }), "{e:?}");
    says(
        &e,
        "expired.crt",
        &["expired on 2021-01-01", "issue a new one"],
    );
}

#[test]
fn not_yet_valid_leaf() {
    let e = client("not-yet-valid.crt", "not-yet-valid.key").unwrap_err();
    assert!(matches!(e, Error::NotYetValid { .. }), "{e:?}");
    says(
        &e,
        "not-yet-valid.crt",
        &["not valid until 2090-01-01", "clock"],
    );
}

#[test]
fn ca_certificate_used_as_server_leaf_is_explained() {
    let e = server("v3ca-leaf.crt", "v3ca-leaf.key").unwrap_err();
    assert!(matches!(e, Error::CaCertificateAsLeaf { .. }), "{e:?}");
    says(
        &e,
        "v3ca-leaf.crt",
        &["CA:TRUE", "-extensions v3_ca", "CA:FALSE"],
    );
}

#[test]
fn server_leaf_without_subject_alt_name() {
    let e = server("no-san.crt", "no-san.key").unwrap_err();
    assert!(matches!(e, Error::NoSubjectAltName { .. }), "{e:?}");
    says(
        &e,
        "no-san.crt",
        &["subjectAltName", "never against the CN"],
    );
}

#[test]
fn client_auth_eku_missing_on_client_identity() {
    let e = client("server-eku-only.crt", "server-eku-only.key").unwrap_err();
    assert!(matches!(e, Error::WrongExtendedKeyUsage { .. }), "{e:?}");
    says(
        &e,
        "server-eku-only.crt",
        &["lists serverAuth but not clientAuth"],
    );
}

#[test]
fn server_auth_eku_missing_on_server_identity() {
    let e = server("client-eku-only.crt", "client-eku-only.key").unwrap_err();
    assert!(matches!(e, Error::WrongExtendedKeyUsage { .. }), "{e:?}");
    says(&e, "client-eku-only.crt", &["not serverAuth"]);
}

#[test]
fn missing_intermediate() {
    let e = client("orphan.crt", "orphan.key").unwrap_err();
    assert!(matches!(e, Error::UnknownIssuer { .. }), "{e:?}");
    says(
        &e,
        "orphan.crt",
        &[
            "Fixture Intermediate CA",
            "unable to get local issuer certificate",
            "cat leaf.crt intermediate.crt",
        ],
    );
}

#[test]
fn own_certificate_revoked_by_configured_crl() {
    let e = Client::builder()
        .identity(fx("revoked.crt"), fx("revoked.key"))
        .ca(fx("ca-bundle.pem"))
        .crl(fx("intermediate.crl.pem"))
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Revoked { .. }), "{e:?}");
    says(&e, "revoked.crt", &["revoked", "serial"]);
    // The serial reads as the server log and `openssl x509 -serial` print it.
    let id =
        mtls::PeerIdentity::from_chain(&mtls::pem::load_certs(fx("revoked.crt")).unwrap()).unwrap();
    assert!(
        e.to_string().contains(&format!("serial {}", id.serial())),
        "{e}"
    );
}

#[test]
fn encrypted_keys() {
    for key in ["encrypted.key", "encrypted-legacy.key"] {
        let e = mtls::pem::load_key(fx(key)).unwrap_err();
        assert!(matches!(e, Error::EncryptedKey { .. }), "{key}: {e:?}");
        says(&e, key, &["encrypted", "openssl pkey"]);
    }
}

#[test]
fn empty_garbage_and_truncated_files() {
    let e = mtls::pem::load_certs(fx("empty.pem")).unwrap_err();
    assert!(matches!(e, Error::Empty { .. }), "{e:?}");
    says(&e, "empty.pem", &["empty"]);

    let e = mtls::pem::load_certs(fx("garbage.pem")).unwrap_err();
    assert!(matches!(e, Error::NotPem { .. }), "{e:?}");
    says(&e, "garbage.pem", &["not PEM or DER"]);

    let e = mtls::pem::load_key(fx("garbage.pem")).unwrap_err();
    assert!(matches!(e, Error::NotPem { .. }), "{e:?}");

    let e = mtls::pem::load_certs(fx("truncated.crt")).unwrap_err();
    assert!(matches!(e, Error::BadPem { .. }), "{e:?}");
    says(&e, "truncated.crt", &["END CERTIFICATE", "truncated"]);
}

#[test]
fn key_where_certificate_expected_and_vice_versa() {
    let e = mtls::pem::load_certs(fx("server.key")).unwrap_err();
    assert!(matches!(e, Error::NoCertificate { .. }), "{e:?}");
    says(&e, "server.key", &["holds no certificate", "private key"]);

    let e = mtls::pem::load_key(fx("server.crt")).unwrap_err();
    assert!(matches!(e, Error::NoPrivateKey { .. }), "{e:?}");
    says(
        &e,
        "server.crt",
        &["holds no private key", "cat server.crt server.key"],
    );

    let e = mtls::pem::load_key(fx("server.der")).unwrap_err();
    assert!(matches!(e, Error::NoPrivateKey { .. }), "{e:?}");
}

#[test]
fn leaf_given_as_ca() {
    let e = Server::builder()
        .identity(fx("server-chain.crt"), fx("server.key"))
        .client_ca(fx("client-ec.crt"))
        .policy(Policy::any_verified())
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::NotACa { .. }), "{e:?}");
    says(&e, "client-ec.crt", &["not a CA certificate"]);
}

#[test]
fn missing_file() {
    let e = server("nope.crt", "nope.key").unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    says(&e, "nope.crt", &["cannot read"]);
}

#[test]
fn missing_pieces_are_named_with_the_call_that_adds_them() {
    let e = Server::builder()
        .client_ca(fx("ca.crt"))
        .policy(Policy::any_verified())
        .build()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::MissingIdentity {
                role: mtls::Role::Server
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains(".identity(cert, key)"), "{e}");

    let e = Server::builder()
        .identity(fx("server-chain.crt"), fx("server.key"))
        .policy(Policy::any_verified())
        .build()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::MissingCa {
                role: mtls::Role::Server
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains(".client_ca(path)"), "{e}");

    let e = Client::builder()
        .identity(fx("client-ec.crt"), fx("client-ec.key"))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::MissingCa {
                role: mtls::Role::Client
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains(".ca(path)"), "{e}");
}

#[test]
fn invalid_server_name_is_quoted() {
    let e = Client::builder()
        .ca(fx("ca.crt"))
        .server_name("https://localhost:8443/")
        .build()
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidServerName { name } if name == "https://localhost:8443/"),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("\"https://localhost:8443/\" is not a valid DNS name"),
        "{e}"
    );
}

#[test]
fn server_without_policy_is_refused() {
    let e = Server::builder()
        .identity(fx("server-chain.crt"), fx("server.key"))
        .client_ca(fx("ca.crt"))
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::MissingPolicy), "{e:?}");
    assert!(e.to_string().contains("Policy::any_verified()"));
}

#[test]
fn crl_that_is_not_a_crl() {
    let e = Server::builder()
        .identity(fx("server-chain.crt"), fx("server.key"))
        .client_ca(fx("ca.crt"))
        .crl(fx("ca.crt"))
        .policy(Policy::any_verified())
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::BadCrl { .. }), "{e:?}");
    says(&e, "ca.crt", &["X509 CRL"]);
}

#[test]
fn two_keys_in_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let both = dir.path().join("two-keys.pem");
    let mut data = std::fs::read(fx("server.key")).unwrap();
    data.extend(std::fs::read(fx("mismatch.key")).unwrap());
    std::fs::write(&both, data).unwrap();
    let e = mtls::pem::load_key(&both).unwrap_err();
    assert!(matches!(e, Error::MultipleKeys { count: 2, .. }), "{e:?}");
    says(&e, "two-keys.pem", &["2 private keys", "keep only the key"]);
}

#[test]
fn crl_not_signed_by_the_ca_it_names() {
    let pki = mtls_testing::TestPki::new();
    let (_, sf) = pki.server("localhost");
    // Another root with the very same name: its CRL claims to come from our root.
    let impostor = mtls_testing::Ca::root("mtls-testing root");
    let forged = impostor.crl(&[]).write(pki.dir.path(), "forged.crl");
    let genuine = pki.root.crl(&[]).write(pki.dir.path(), "genuine.crl");
    let build = |crl: &std::path::Path| {
        Server::builder()
            .identity(&sf.cert, &sf.key)
            .client_ca(pki.ca_file())
            .crl(crl)
            .policy(Policy::any_verified())
            .build()
    };
    build(&genuine).unwrap();
    let e = build(&forged).unwrap_err();
    assert!(matches!(e, Error::BadCrl { .. }), "{e:?}");
    says(
        &e,
        "forged.crl",
        &["signature does not verify", "mtls-testing root"],
    );
}
