//! `mtls inspect` on files made by the `openssl` CLI: every key form the core loads,
//! bundles, a DER certificate, a CRL, a CSR and a `.p12`; the subject, serial,
//! fingerprint and dates agree with `openssl x509` field by field, and no key material
//! is printed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{mtls, mtls_ok, require};

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `notBefore=Mar  3 14:09:56 2027 GMT` → RFC 3339.
fn openssl_date(text: &str) -> String {
    let format = time::macros::format_description!(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT"
    );
    let t = time::PrimitiveDateTime::parse(text.trim(), &format)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .assume_utc();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// What `openssl x509 -noout -subject -serial -fingerprint -sha256 -dates` says, as
/// the JSON fields of `mtls inspect`.
fn openssl_fields(dir: &Path, cert: &str, extra: &[&str]) -> Vec<(&'static str, String)> {
    let mut args = vec![
        "x509",
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
        "-serial",
        "-fingerprint",
        "-sha256",
        "-dates",
        "-in",
        cert,
    ];
    args.extend_from_slice(extra);
    let out = openssl(dir, &args);
    let mut fields = Vec::new();
    for line in out.lines() {
        let (key, value) = line.split_once('=').unwrap();
        match key {
            "subject" => fields.push(("subject", value.trim().to_owned())),
            "serial" => fields.push(("serial", value.to_owned())),
            k if k.ends_with("Fingerprint") => {
                fields.push((
                    "fingerprint_sha256",
                    value.replace(':', "").to_ascii_lowercase(),
                ));
            }
            "notBefore" => fields.push(("not_before", openssl_date(value))),
            "notAfter" => fields.push(("not_after", openssl_date(value))),
            other => panic!("unexpected openssl line {other}"),
        }
    }
    assert_eq!(fields.len(), 5, "{out}");
    fields
}

fn inspect_json(dir: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["inspect".to_owned(), "--json".to_owned()];
    all.extend(args.iter().map(|a| dir.join(a).display().to_string()));
    let run = mtls(&all);
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(
        !run.stdout.contains("PRIVATE KEY"),
        "key material printed: {}",
        run.stdout
    );
    serde_json::from_str::<Vec<Value>>(&run.stdout).unwrap()
}

#[test]
fn inspect_agrees_with_openssl_on_openssl_made_files() {
    if !require("openssl") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let o = |args: &[&str]| openssl(dir, args);
    // A CA, with a multi-valued subject (RFC 4514 order and escaping).
    o(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "30",
        "-subj",
        "/C=DE/O=Example, Inc./OU=ops/CN=Example Root",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    // Keys in every form the core loads.
    o(&["genrsa", "-traditional", "-out", "rsa1.key", "2048"]);
    o(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "rsa8.key",
    ]);
    o(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "sec1.key",
    ]);
    o(&["genpkey", "-algorithm", "ED25519", "-out", "ed.key"]);
    o(&[
        "pkcs8",
        "-topk8",
        "-in",
        "rsa8.key",
        "-v2",
        "aes-256-cbc",
        "-passout",
        "pass:secret",
        "-out",
        "enc8.key",
    ]);
    o(&[
        "ec",
        "-in",
        "sec1.key",
        "-aes256",
        "-passout",
        "pass:secret",
        "-out",
        "legacy.key",
    ]);
    std::fs::write(dir.join("pass.txt"), "secret\n").unwrap();
    o(&[
        "pkey", "-in", "sec1.key", "-outform", "DER", "-out", "sec1.der",
    ]);
    // Leaves for each key, signed by the CA.
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:svc.example,IP:10.1.2.3,URI:spiffe://example.org/svc,email:ops@example.org\nextendedKeyUsage=clientAuth,serverAuth\n").unwrap();
    for (i, key) in ["rsa1.key", "sec1.key", "ed.key"].iter().enumerate() {
        let csr = format!("leaf{i}.csr");
        let crt = format!("leaf{i}.crt");
        o(&[
            "req",
            "-new",
            "-key",
            key,
            "-subj",
            &format!("/O=Example/CN=leaf {i}+UID=u{i}"),
            "-out",
            &csr,
        ]);
        o(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-days",
            "7",
            "-extfile",
            "ext.cnf",
            "-out",
            &crt,
            "-set_serial",
            &format!("0x{:x}", 0x00ff_0000_u64 + i as u64),
        ]);
    }
    o(&[
        "x509",
        "-in",
        "leaf0.crt",
        "-outform",
        "DER",
        "-out",
        "leaf0.der",
    ]);
    // A bundle (leaf then CA) and a bundle in the wrong order.
    let text = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    std::fs::write(dir.join("bundle.pem"), text("leaf1.crt") + &text("ca.crt")).unwrap();
    std::fs::write(
        dir.join("reversed.pem"),
        text("ca.crt") + &text("leaf1.crt"),
    )
    .unwrap();
    // A CRL revoking leaf2, made by `openssl ca`.
    std::fs::create_dir_all(dir.join("db")).unwrap();
    std::fs::write(dir.join("db/index.txt"), "").unwrap();
    std::fs::write(dir.join("db/crlnumber"), "1000\n").unwrap();
    std::fs::write(dir.join("ca.cnf"), "[ca]\ndefault_ca=d\n[d]\ndatabase=db/index.txt\ncrlnumber=db/crlnumber\ndefault_md=sha256\ndefault_crl_days=7\ncertificate=ca.crt\nprivate_key=ca.key\n").unwrap();
    o(&["ca", "-config", "ca.cnf", "-revoke", "leaf2.crt"]);
    o(&["ca", "-config", "ca.cnf", "-gencrl", "-out", "ca.crl"]);
    // A .p12 of leaf1 with its CA.
    o(&[
        "pkcs12",
        "-export",
        "-in",
        "leaf1.crt",
        "-inkey",
        "sec1.key",
        "-certfile",
        "ca.crt",
        "-passout",
        "pass:secret",
        "-out",
        "leaf1.p12",
    ]);

    // Certificates: field by field with openssl.
    for (file, extra) in [
        ("ca.crt", &[][..]),
        ("leaf0.crt", &[]),
        ("leaf1.crt", &[]),
        ("leaf2.crt", &[]),
        ("leaf0.der", &["-inform", "DER"][..]),
    ] {
        let items = inspect_json(dir, &[file]);
        assert_eq!(items.len(), 1, "{file}: {items:?}");
        let item = &items[0];
        assert_eq!(item["kind"], "certificate", "{file}");
        for (key, want) in openssl_fields(dir, file, extra) {
            assert_eq!(item[key].as_str().unwrap(), want, "{file}: {key}");
        }
        for key in [
            "issuer",
            "dns",
            "ip",
            "uri",
            "email",
            "spiffe_id",
            "eku",
            "is_ca",
            "version",
            "days_left",
        ] {
            assert!(item.get(key).is_some(), "{file}: no {key}");
        }
    }
    let leaf = &inspect_json(dir, &["leaf0.crt"])[0];
    assert_eq!(
        leaf["issuer"],
        "CN=Example Root,OU=ops,O=Example\\, Inc.,C=DE"
    );
    assert_eq!(leaf["dns"][0], "svc.example");
    assert_eq!(leaf["ip"][0], "10.1.2.3");
    assert_eq!(leaf["email"][0], "ops@example.org");
    assert_eq!(leaf["spiffe_id"], "spiffe://example.org/svc");
    assert_eq!(leaf["eku"], serde_json::json!(["serverAuth", "clientAuth"]));
    assert_eq!(leaf["is_ca"], false);
    assert_eq!(leaf["version"], 3);
    assert!(
        leaf["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "spiffe:spiffe://example.org/svc"),
        "{leaf}"
    );
    let ca = &inspect_json(dir, &["ca.crt"])[0];
    assert_eq!(ca["is_ca"], true);
    assert_eq!(ca["self_signed"], true);

    // Keys: each form, its algorithm, the certificate it belongs to; never the key.
    let run = mtls_ok(&[
        "inspect".to_owned(),
        "--json".to_owned(),
        "--password-file".to_owned(),
        dir.join("pass.txt").display().to_string(),
        dir.join("leaf0.crt").display().to_string(),
        dir.join("leaf1.crt").display().to_string(),
        dir.join("leaf2.crt").display().to_string(),
        dir.join("rsa1.key").display().to_string(),
        dir.join("rsa8.key").display().to_string(),
        dir.join("sec1.key").display().to_string(),
        dir.join("sec1.der").display().to_string(),
        dir.join("ed.key").display().to_string(),
        dir.join("enc8.key").display().to_string(),
        dir.join("legacy.key").display().to_string(),
    ]);
    assert!(
        !run.stdout.contains("PRIVATE KEY") && !run.stdout.contains("secret"),
        "{}",
        run.stdout
    );
    let items: Vec<Value> = serde_json::from_str(&run.stdout).unwrap();
    let key = |name: &str| {
        items
            .iter()
            .find(|i| i["file"].as_str().unwrap().ends_with(name))
            .unwrap()
            .clone()
    };
    for (file, form, algorithm, encrypted) in [
        ("rsa1.key", "PKCS#1", "RSA 2048", false),
        ("rsa8.key", "PKCS#8", "RSA 2048", false),
        ("sec1.key", "SEC1", "ECDSA P-256", false),
        ("sec1.der", "DER", "ECDSA P-256", false),
        ("ed.key", "PKCS#8", "Ed25519", false),
        ("enc8.key", "encrypted PKCS#8", "RSA 2048", true),
        ("legacy.key", "SEC1", "ECDSA P-256", true),
    ] {
        let k = key(file);
        assert_eq!(k["kind"], "private_key", "{file}: {k}");
        assert_eq!(k["form"], form, "{file}");
        assert_eq!(k["key_algorithm"], algorithm, "{file}: {k}");
        assert_eq!(k["encrypted"], encrypted, "{file}");
    }
    assert_eq!(
        key("leaf0.crt")["matching_key"].as_str().unwrap(),
        dir.join("rsa1.key").display().to_string()
    );
    assert_eq!(
        key("leaf2.crt")["matching_key"].as_str().unwrap(),
        dir.join("ed.key").display().to_string()
    );
    let leaf1_subject = openssl_fields(dir, "leaf1.crt", &[])[0].1.clone();
    assert_eq!(
        key("legacy.key")["matching_certificates"][0]
            .as_str()
            .unwrap(),
        leaf1_subject
    );
    // An encrypted key without the password: described, and the problem named.
    let run = mtls(&[
        "inspect".to_owned(),
        dir.join("enc8.key").display().to_string(),
    ]);
    assert!(
        run.stdout.contains("encrypted") && run.stdout.contains("password"),
        "{}",
        run.stdout
    );

    // Bundles and chain order.
    let bundle = inspect_json(dir, &["bundle.pem"]);
    assert_eq!(bundle.len(), 2);
    assert!(
        bundle.iter().all(|i| i.get("problems").is_none()),
        "{bundle:?}"
    );
    let reversed = inspect_json(dir, &["reversed.pem"]);
    assert!(
        reversed[0]["problems"][0]
            .as_str()
            .unwrap()
            .contains("root belongs last"),
        "{reversed:?}"
    );

    // The CRL.
    let crl = &inspect_json(dir, &["ca.crl"])[0];
    assert_eq!(crl["kind"], "crl");
    assert_eq!(crl["crl_number"], "4096");
    assert_eq!(crl["revoked"], serde_json::json!(["FF0002"]));
    // The CSR.
    let csr = &inspect_json(dir, &["leaf0.csr"])[0];
    assert_eq!(csr["kind"], "csr");
    assert_eq!(csr["signature_valid"], true);
    // The .p12: summary, certificates compared with openssl, the key.
    let run = mtls_ok(&[
        "inspect".to_owned(),
        "--json".to_owned(),
        "--password-file".to_owned(),
        dir.join("pass.txt").display().to_string(),
        dir.join("leaf1.p12").display().to_string(),
    ]);
    let p12: Vec<Value> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(p12[0]["kind"], "pkcs12");
    assert_eq!(p12[0]["has_key"], true);
    let leaf1 = p12
        .iter()
        .find(|i| i["kind"] == "certificate" && i["is_ca"] == false)
        .unwrap();
    for (key, want) in openssl_fields(dir, "leaf1.crt", &[]) {
        assert_eq!(leaf1[key].as_str().unwrap(), want, "p12: {key}");
    }
    assert!(
        p12.iter()
            .any(|i| i["kind"] == "private_key" && i["key_algorithm"] == "ECDSA P-256")
    );
    assert!(!run.stdout.contains("PRIVATE KEY"));
    // Without the password: exit 1 and the library's message.
    let run = mtls(&[
        "inspect".to_owned(),
        dir.join("leaf1.p12").display().to_string(),
    ]);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(run.stdout.contains("password"), "{}", run.stdout);
}
