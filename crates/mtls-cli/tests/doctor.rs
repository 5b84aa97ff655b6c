//! `mtls doctor` against real misconfigured nginx servers (no `ssl_verify_client`,
//! trusting another CA, a server certificate for another name), our client sending a
//! leaf without its intermediate or an expired certificate, and a correct setup; and
//! the preflight of server configurations. Each names the cause (asserted on the text).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};

use support::{free_port, mtls, mtls_ok, nginx, nginx_server, require};

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A PKI made by `mtls pki` in `dir`.
fn pki(dir: &Path, intermediate: bool) -> impl Fn(&str) -> PathBuf + use<> {
    let d = s(dir);
    if intermediate {
        mtls_ok(&["pki", "init", &d, "--intermediate"]);
    } else {
        mtls_ok(&["pki", "init", &d, "--name", "Other CA"]);
    }
    mtls_ok(&["pki", "issue", &d, "--server", "localhost", "127.0.0.1"]);
    mtls_ok(&["pki", "issue", &d, "--server", "other.example"]);
    mtls_ok(&["pki", "issue", &d, "--client", "alice"]);
    let dir = dir.to_owned();
    move |name: &str| dir.join(name)
}

/// A client certificate for `cn` that expired yesterday, issued by the PKI's issuing CA.
fn expired_client(f: &dyn Fn(&str) -> PathBuf, out: &Path) -> (PathBuf, PathBuf) {
    let ca_pem = std::fs::read_to_string(f("intermediate.crt")).unwrap();
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(f("intermediate.key")).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, &ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["expired".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "expired");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = now - time::Duration::days(1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let (cert_path, key_path) = (out.join("expired.crt"), out.join("expired.key"));
    std::fs::write(&cert_path, cert.pem() + &ca_pem).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

#[test]
fn doctor_names_the_cause_against_real_nginx_setups() {
    if !require("nginx") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let f = pki(&tmp.path().join("pki"), true);
    let other = pki(&tmp.path().join("other"), false);
    let run_dir = tmp.path().join("nginx");
    std::fs::create_dir_all(&run_dir).unwrap();
    let [good, no_verify, other_ca, wrong_name] =
        [free_port(), free_port(), free_port(), free_port()];
    let servers = [
        nginx_server(
            good,
            &f("localhost.crt"),
            &f("localhost.key"),
            Some(&f("ca.crt")),
            Some(&f("crl.pem")),
        ),
        nginx_server(
            no_verify,
            &f("localhost.crt"),
            &f("localhost.key"),
            None,
            None,
        ),
        nginx_server(
            other_ca,
            &f("localhost.crt"),
            &f("localhost.key"),
            Some(&other("ca.crt")),
            None,
        ),
        nginx_server(
            wrong_name,
            &f("other.example.crt"),
            &f("other.example.key"),
            Some(&f("ca.crt")),
            None,
        ),
    ]
    .join("\n");
    let daemon = nginx(&run_dir, &servers, good);
    let url = |port: u16| format!("https://localhost:{port}");
    let doctor = |port: u16, cert: &Path, key: &Path| {
        mtls(&[
            "doctor".to_owned(),
            url(port),
            "--cert".to_owned(),
            s(cert),
            "--key".to_owned(),
            s(key),
            "--ca".to_owned(),
            s(&f("ca.crt")),
        ])
    };

    // A correct setup works.
    let run = doctor(good, &f("alice.crt"), &f("alice.key"));
    assert_eq!(run.code, 0, "{}\n{}", run.text(), daemon.log_text());
    assert!(run.stdout.contains("mutual TLS works"), "{}", run.stdout);

    // nginx without ssl_verify_client.
    let run = doctor(no_verify, &f("alice.crt"), &f("alice.key"));
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.stdout.contains("sent no CertificateRequest"),
        "{}",
        run.stdout
    );

    // nginx trusting another CA.
    let run = doctor(other_ca, &f("alice.crt"), &f("alice.key"));
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.stdout.contains("accepts these CAs: CN=Other CA"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("from another CA"), "{}", run.stdout);

    // Our client sends its leaf without the intermediate.
    let chain = std::fs::read_to_string(f("alice.crt")).unwrap();
    let end = "-----END CERTIFICATE-----\n";
    let leaf_only = &chain[..chain.find(end).unwrap() + end.len()];
    let leaf_path = tmp.path().join("alice-leaf.crt");
    std::fs::write(&leaf_path, leaf_only).unwrap();
    let run = doctor(good, &leaf_path, &f("alice.key"));
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.stdout.contains("our chain misses the intermediate"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("CN=mtls root CA intermediate"),
        "{}",
        run.stdout
    );

    // An expired client certificate: our preflight says so, and nginx refuses it.
    let (cert, key) = expired_client(&f, tmp.path());
    let run = doctor(good, &cert, &key);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(run.stdout.contains("expired"), "{}", run.stdout);
    assert!(
        run.stdout.contains("refused our certificate"),
        "{}",
        run.stdout
    );

    // A server certificate for another name.
    let run = doctor(wrong_name, &f("alice.crt"), &f("alice.key"));
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.stdout
            .contains("does not match the host name localhost")
            && run.stdout.contains("other.example"),
        "{}",
        run.stdout
    );

    // A server from an unknown CA (we trust the other PKI).
    let run = mtls(&[
        "doctor".to_owned(),
        url(good),
        "--cert".to_owned(),
        s(&f("alice.crt")),
        "--key".to_owned(),
        s(&f("alice.key")),
        "--ca".to_owned(),
        s(&other("ca.crt")),
    ]);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(run.stdout.contains("from an unknown CA"), "{}", run.stdout);

    // No client certificate at all.
    let run = mtls(&[
        "doctor".to_owned(),
        url(good),
        "--ca".to_owned(),
        s(&f("ca.crt")),
    ]);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(run.stdout.contains("we have none"), "{}", run.stdout);
    drop(daemon);
}

#[test]
fn preflight_reports_the_library_errors_of_a_server_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let f = pki(&tmp.path().join("pki"), true);
    let preflight = |cert: &str, key: &str, extra: &[&str]| {
        let mut args = vec![
            "doctor".to_owned(),
            "--cert".to_owned(),
            s(&f(cert)),
            "--key".to_owned(),
            s(&f(key)),
            "--client-ca".to_owned(),
            s(&f("ca.crt")),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        mtls(&args)
    };
    let crl = s(&f("crl.pem"));
    let run = preflight(
        "localhost.crt",
        "localhost.key",
        &["--crl", &crl, "--policy", "cn:alice"],
    );
    assert_eq!(run.code, 0, "{}", run.text());
    assert!(
        run.stdout.starts_with("ok: the configuration builds"),
        "{}",
        run.stdout
    );

    // The key of another certificate: the library's KeyMismatch, with its fix.
    let run = preflight("localhost.crt", "alice.key", &["--policy", "any"]);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(
        run.stdout.contains("does not match the certificate"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("openssl x509"), "{}", run.stdout);
    assert!(!run.stdout.contains("PRIVATE KEY"), "{}", run.stdout);

    // A client certificate as the server's: wrong EKU. Several problems at once: a bad
    // policy string and a missing CRL file too.
    let run = preflight(
        "alice.crt",
        "alice.key",
        &["--policy", "cn:", "--crl", "/nonexistent/crl.pem"],
    );
    assert_eq!(run.code, 1, "{}", run.text());
    let problems = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("problem:"))
        .count();
    assert!(problems >= 3, "{}", run.stdout);
    assert!(
        run.stdout.contains("/nonexistent/crl.pem"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.to_lowercase().contains("extended key usage")
            || run.stdout.contains("serverAuth"),
        "{}",
        run.stdout
    );

    // No policy: said, as the examples require one.
    let run = preflight("localhost.crt", "localhost.key", &[]);
    assert_eq!(run.code, 1, "{}", run.text());
    assert!(run.stdout.contains("no --policy"), "{}", run.stdout);

    // A URL that is not https://HOST:PORT is a usage error.
    let run = mtls(&["doctor", "http://localhost:1"]);
    assert_eq!(run.code, 2, "{}", run.text());
    assert!(run.stderr.contains("Usage:"), "{}", run.stderr);
}
