use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::process::Command;

use rcgen::{ExtendedKeyUsagePurpose, KeyPair};
use time::{Duration, OffsetDateTime};

use super::*;
use crate::der::{der_integer_content, pem, read_tlv, tlv};
use crate::util::write_file;

/// Runs `openssl args...`; returns (success, stdout + stderr).
fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be on PATH for these tests");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn cert_text(pki: &TestPki, leaf: &Leaf, name: &str) -> String {
    let path = write_file(pki.path(&format!("{name}.pem")), &leaf.cert_pem());
    let (ok, text) = openssl(&["x509", "-noout", "-text", "-in", s(&path)]);
    assert!(ok, "{text}");
    text
}

#[test]
fn server_and_client_verify_against_root_via_intermediate() {
    let pki = TestPki::new();
    let ca = pki.ca_file();
    let (server, server_files) = pki.server("server.test");
    let (client, client_files) = pki.client("alice");
    assert_eq!(server.common_name(), "server.test");
    assert_eq!(client.common_name(), "alice");
    assert_eq!(server.root_pem(), pki.root.cert_pem());

    for (files, purpose) in [(&server_files, "sslserver"), (&client_files, "sslclient")] {
        // The .crt file holds leaf + intermediate; the first cert is the target.
        let (ok, text) = openssl(&[
            "verify",
            "-purpose",
            purpose,
            "-CAfile",
            s(&ca),
            "-untrusted",
            s(&files.cert),
            s(&files.cert),
        ]);
        assert!(ok && text.contains(": OK"), "{text}");
    }
    // Wrong purpose fails (client cert used as server).
    let (ok, text) = openssl(&[
        "verify",
        "-purpose",
        "sslserver",
        "-CAfile",
        s(&ca),
        "-untrusted",
        s(&client_files.cert),
        s(&client_files.cert),
    ]);
    assert!(!ok, "{text}");

    // Key file matches the certificate.
    let (_, cert_pub) = openssl(&["x509", "-noout", "-pubkey", "-in", s(&server_files.cert)]);
    let (_, key_pub) = openssl(&["pkey", "-pubout", "-in", s(&server_files.key)]);
    assert!(cert_pub.contains("BEGIN PUBLIC KEY"));
    assert_eq!(cert_pub, key_pub);
    assert!(server.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));

    let text = cert_text(&pki, &server, "server-text");
    assert!(
        text.contains("DNS:server.test, DNS:localhost, IP Address:127.0.0.1"),
        "{text}"
    );
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    assert!(!text.contains("TLS Web Client Authentication"), "{text}");
}

#[test]
fn chain_pem_and_root_pem() {
    let root = Ca::root("r");
    let int1 = root.intermediate("i1");
    let int2 = int1.intermediate("i2");
    assert!(root.is_root() && !int1.is_root());
    assert_eq!(root.chain_pem(), "");
    assert_eq!(int1.chain_pem(), int1.cert_pem());
    assert_eq!(
        int2.chain_pem(),
        format!("{}{}", int2.cert_pem(), int1.cert_pem())
    );
    assert_eq!(int2.root_pem(), root.cert_pem());
    assert_eq!(root.root_pem(), root.cert_pem());
    assert_eq!(int2.common_name(), "i2");

    let leaf = int2.leaf("deep").build();
    assert_eq!(leaf.chain_pem().matches("BEGIN CERTIFICATE").count(), 3);
    assert_eq!(leaf.chain_der().len(), 3);
    assert_eq!(leaf.root_pem(), root.cert_pem());

    let dir = tempfile::tempdir().unwrap();
    let root_file = root.write_cert(dir.path(), "root.pem");
    let files = leaf.write(dir.path(), "deep");
    assert!(files.cert.ends_with("deep.crt") && files.key.ends_with("deep.key"));
    let (ok, text) = openssl(&[
        "verify",
        "-CAfile",
        s(&root_file),
        "-untrusted",
        s(&files.cert),
        s(&files.cert),
    ]);
    assert!(ok && text.contains(": OK"), "{text}");

    // Root and intermediate certificate contents.
    let (ok, text) = openssl(&["x509", "-noout", "-text", "-in", s(&root_file)]);
    assert!(ok, "{text}");
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    assert!(root.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
}

#[test]
fn expired_and_not_yet_valid_are_rejected() {
    let pki = TestPki::new();
    let ca = pki.ca_file();
    let cases = [
        (
            pki.intermediate.leaf("old").expired().build(),
            "certificate has expired",
        ),
        (
            pki.intermediate.leaf("future").not_yet_valid().build(),
            "certificate is not yet valid",
        ),
    ];
    for (leaf, expected) in cases {
        let now = OffsetDateTime::now_utc();
        assert!(leaf.not_before() < leaf.not_after());
        assert!(leaf.not_after() < now || leaf.not_before() > now);
        let files = leaf.write(pki.dir.path(), leaf.common_name());
        let (ok, text) = openssl(&[
            "verify",
            "-CAfile",
            s(&ca),
            "-untrusted",
            s(&files.cert),
            s(&files.cert),
        ]);
        assert!(!ok && text.contains(expected), "{text}");
    }
}

#[test]
fn subject_sans_eku_and_basic_constraints() {
    let pki = TestPki::new();
    let leaf = pki
        .intermediate
        .leaf("svc")
        .dns("a.example")
        .dns("*.b.example")
        .ip("10.0.0.1".parse().unwrap())
        .ip(IpAddr::V6(Ipv6Addr::LOCALHOST))
        .uri("spiffe://example.org/ns/default/sa/svc")
        .email("svc@example.org")
        .organization("Example Corp")
        .org_unit("eng")
        .org_unit("payments")
        .org_unit("team-3")
        .client()
        .build();
    let text = cert_text(&pki, &leaf, "svc");
    assert!(
        text.contains("Subject: CN = svc, O = Example Corp, OU = eng, OU = payments, OU = team-3"),
        "{text}"
    );
    for needle in [
        "DNS:a.example",
        "DNS:*.b.example",
        "IP Address:10.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
        "URI:spiffe://example.org/ns/default/sa/svc",
        "email:svc@example.org",
        "CA:FALSE",
        "Digital Signature",
        "TLS Web Client Authentication",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
    ] {
        assert!(text.contains(needle), "missing {needle}: {text}");
    }
    assert!(!text.contains("TLS Web Server Authentication"), "{text}");

    // The re-signed multi-OU certificate still verifies.
    let files = leaf.write(pki.dir.path(), "svc");
    let ca = pki.ca_file();
    let (ok, text) = openssl(&[
        "verify",
        "-CAfile",
        s(&ca),
        "-untrusted",
        s(&files.cert),
        s(&files.cert),
    ]);
    assert!(ok && text.contains(": OK"), "{text}");

    // Defaults: both EKUs, no SAN; no_san removes SANs; Eku::None has no EKU extension.
    let plain = pki
        .intermediate
        .leaf("plain")
        .dns("x.example")
        .no_san()
        .build();
    let text = cert_text(&pki, &plain, "plain");
    assert!(text.contains("TLS Web Server Authentication, TLS Web Client Authentication"));
    assert!(!text.contains("Subject Alternative Name"), "{text}");
    assert!(text.contains("Subject: CN = plain\n"), "{text}");

    let no_eku = pki.intermediate.leaf("no-eku").eku(Eku::None).build();
    let text = cert_text(&pki, &no_eku, "no-eku");
    assert!(!text.contains("Extended Key Usage"), "{text}");

    let custom = pki
        .intermediate
        .leaf("custom")
        .eku(Eku::Custom(vec![ExtendedKeyUsagePurpose::CodeSigning]))
        .build();
    let text = cert_text(&pki, &custom, "custom");
    assert!(text.contains("Code Signing"), "{text}");

    // CA-as-leaf.
    let ca_leaf = pki.intermediate.leaf("oops").ca().build();
    let text = cert_text(&pki, &ca_leaf, "oops");
    assert!(
        text.contains("CA:TRUE") && !text.contains("CA:FALSE"),
        "{text}"
    );
}

#[test]
fn serials_and_key_algorithms() {
    let pki = TestPki::new();

    let fixed = pki.intermediate.leaf("fixed").serial(0x80).build();
    assert_eq!(fixed.serial(), vec![0x00, 0x80]);
    let text = cert_text(&pki, &fixed, "fixed");
    assert!(text.contains("Serial Number: 128 (0x80)"), "{text}");

    let a = pki.intermediate.leaf("a").build();
    let b = pki.intermediate.leaf("b").build();
    assert_eq!(a.serial().len(), 16);
    assert!(a.serial()[0] != 0 && a.serial()[0] < 0x80);
    assert_ne!(a.serial(), b.serial());
    let path = write_file(pki.path("a.pem"), &a.cert_pem());
    let (_, text) = openssl(&["x509", "-noout", "-serial", "-in", s(&path)]);
    assert_eq!(text.trim(), format!("serial={}", hex(&a.serial())));

    let ca = pki.ca_file();
    for (alg, needle) in [
        (KeyAlg::EcdsaP384, "NIST CURVE: P-384"),
        (KeyAlg::Ed25519, "ED25519"),
        (KeyAlg::EcdsaP256, "NIST CURVE: P-256"),
    ] {
        // A CA of that algorithm issuing a leaf of that algorithm.
        let int = pki.root.intermediate_with_alg("alg-int", alg);
        let leaf = int.leaf("alg").key_alg(alg).build();
        let text = cert_text(&pki, &leaf, "alg");
        assert!(text.contains(needle), "{text}");
        let files = leaf.write(pki.dir.path(), "alg");
        let (ok, text) = openssl(&[
            "verify",
            "-CAfile",
            s(&ca),
            "-untrusted",
            s(&files.cert),
            s(&files.cert),
        ]);
        assert!(ok && text.contains(": OK"), "{alg:?}: {text}");
        let (ok, text) = openssl(&["pkey", "-noout", "-in", s(&files.key)]);
        assert!(ok, "{alg:?}: {text}");
        // The key round-trips through rcgen (ring accepts the PKCS#8 v1 form).
        let parsed = KeyPair::from_pem(&leaf.key_pem()).unwrap();
        assert_eq!(parsed.public_key_raw(), leaf.key_pair().public_key_raw());
        let (_, cert_pub) = openssl(&["x509", "-noout", "-pubkey", "-in", s(&files.cert)]);
        let (_, key_pub) = openssl(&["pkey", "-pubout", "-in", s(&files.key)]);
        assert_eq!(cert_pub, key_pub, "{alg:?}");
    }
    let ed_root = Ca::root_with_alg("ed root", KeyAlg::Ed25519);
    assert!(!ed_root.key_der().is_empty());
}

#[test]
fn crl_revokes_and_verifies() {
    let pki = TestPki::new();
    let ca = pki.ca_file();
    let revoked = pki.intermediate.leaf("revoked").build();
    let good = pki.intermediate.leaf("good").build();
    let crl = pki.intermediate.crl(&[&revoked]);
    assert!(crl.pem().starts_with("-----BEGIN X509 CRL-----\n"));
    assert!(!crl.der().is_empty());
    let crl_file = crl.write(pki.dir.path(), "int.crl");
    let int_file = pki.intermediate.write_cert(pki.dir.path(), "int.crt");

    let (ok, text) = openssl(&[
        "crl",
        "-noout",
        "-text",
        "-CAfile",
        s(&int_file),
        "-in",
        s(&crl_file),
    ]);
    assert!(ok && text.contains("verify OK"), "{text}");
    assert!(
        text.contains(&format!("Serial Number: {}", hex(&revoked.serial()))),
        "{text}"
    );
    assert!(!text.contains(&hex(&good.serial())), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(
        text.contains("X509v3 CRL Number:") && text.contains("X509v3 Authority Key Identifier")
    );

    // Full chain check with CRLs: root CRL (empty) + intermediate CRL.
    let root_crl = pki.root.crl(&[]).write(pki.dir.path(), "root.crl");
    for (leaf, expect_ok) in [(&revoked, false), (&good, true)] {
        let files = leaf.write(pki.dir.path(), leaf.common_name());
        let (ok, text) = openssl(&[
            "verify",
            "-crl_check_all",
            "-CAfile",
            s(&ca),
            "-CRLfile",
            s(&crl_file),
            "-CRLfile",
            s(&root_crl),
            "-untrusted",
            s(&files.cert),
            s(&files.cert),
        ]);
        assert_eq!(ok, expect_ok, "{text}");
        if !expect_ok {
            assert!(text.contains("certificate revoked"), "{text}");
        }
    }

    // crl_with: explicit times and number; next_update in the past gives a stale CRL.
    let now = OffsetDateTime::now_utc();
    let serial = revoked.serial();
    let stale = pki.intermediate.crl_with(
        &[serial.as_slice(), &[0x01, 0x02]],
        now - Duration::days(10),
        now - Duration::days(3),
        42,
    );
    let stale_file = stale.write(pki.dir.path(), "stale.crl");
    let (ok, text) = openssl(&["crl", "-noout", "-text", "-in", s(&stale_file)]);
    assert!(ok, "{text}");
    assert!(text.contains("Serial Number: 0102"), "{text}");
    assert!(text.contains("42"), "{text}");
}

#[test]
fn helpers() {
    assert_eq!(der_integer_content(&[0, 0, 1]), vec![1]);
    assert_eq!(der_integer_content(&[0, 0x80]), vec![0, 0x80]);
    assert_eq!(der_integer_content(&[0xff]), vec![0, 0xff]);
    assert_eq!(der_integer_content(&[0, 0]), vec![0]);
    assert_eq!(der_integer_content(&[]), vec![0]);
    assert_eq!(tlv(4, &[1, 2]), vec![4, 2, 1, 2]);
    assert_eq!(&tlv(4, &[0; 300])[..4], &[4, 0x82, 0x01, 0x2c]);
    assert_eq!(read_tlv(&[0x30, 0x82, 0x01, 0x2c]), None);
    let long = tlv(0x30, &[7; 300]);
    assert_eq!(read_tlv(&long), Some((4, 304)));
    let p = pem("X", b"hello!?");
    assert_eq!(p, "-----BEGIN X-----\naGVsbG8hPw==\n-----END X-----\n");
    assert_eq!(
        pem("X", b"ab"),
        "-----BEGIN X-----\nYWI=\n-----END X-----\n"
    );
}
