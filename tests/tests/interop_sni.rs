//! Several server identities on one listener, chosen by SNI, against `openssl
//! s_client -servername` (with a client certificate: the handshakes are mutual TLS):
//! each name gets its own certificate, a client without SNI or with an unknown name
//! gets the default, a `*.` entry serves its subdomains; reloading one identity leaves
//! the others in force; a certificate not valid for its name is refused at build.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use mtls::{Error, Identity, Password, Policy, Server};
use mtls_testing::TestPki;
use support::ours::{self, Kind};
use support::proc::{CLIENT_TIMEOUT, require, run};
use tokio::process::Command;

fn leaf(pki: &TestPki, cn: &str, names: &[&str], dir: &Path) -> mtls_testing::LeafFiles {
    let mut b = pki.intermediate.leaf(cn).server();
    for n in names {
        b = b.dns(n);
    }
    b.build().write(dir, cn)
}

/// The subject CN of the certificate `openssl s_client` got for `servername` (None:
/// no SNI).
async fn served_cn(
    port: u16,
    servername: Option<&str>,
    pki: &TestPki,
    alice: &mtls_testing::LeafFiles,
) -> String {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client")
        .args(["-connect", &format!("127.0.0.1:{port}")])
        .arg("-CAfile")
        .arg(pki.ca_file())
        .arg("-cert")
        .arg(&alice.cert)
        .arg("-key")
        .arg(&alice.key)
        .args(["-verify_return_error", "-brief"]);
    match servername {
        Some(n) => cmd.args(["-servername", n, "-verify_hostname", n]),
        None => cmd.arg("-noservername"),
    };
    let out = run(&mut cmd, Some(b"Q\n"), CLIENT_TIMEOUT).await;
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("Verification: OK") || text.contains("Verify return code: 0"),
        "s_client {servername:?} did not verify the server: {text}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("Peer certificate:"))
        .unwrap_or_else(|| panic!("no peer certificate line: {text}"));
    let cn = line.rsplit("CN = ").next().unwrap_or_default();
    cn.split(',').next().unwrap_or_default().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_name_its_certificate_unknown_gets_the_default_reload_one_keeps_the_other() {
    if !require("openssl") {
        return;
    }
    let pki = TestPki::new();
    let dir = pki.dir.path().join("sni");
    std::fs::create_dir_all(&dir).unwrap();
    let default = leaf(&pki, "default", &["localhost"], &dir);
    let api = leaf(&pki, "api", &["api.example.test"], &dir);
    let admin = leaf(&pki, "admin", &["*.admin.example.test"], &dir);
    // The admin identity as a .p12, to show any source works per name.
    let p12 = dir.join("admin.p12");
    let out = std::process::Command::new("openssl")
        .args(["pkcs12", "-export", "-passout", "pass:"])
        .arg("-in")
        .arg(&admin.cert)
        .arg("-inkey")
        .arg(&admin.key)
        .arg("-out")
        .arg(&p12)
        .env("OPENSSL_CONF", "/dev/null")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (_, alice) = pki.client("alice");

    let server = Server::builder()
        .identity(&default.cert, &default.key)
        .sni_identity("API.example.test", Identity::pem(&api.cert, &api.key))
        .sni_identity(
            "*.admin.example.test",
            Identity::pkcs12(&p12, Password::none()),
        )
        .client_ca(pki.ca_file())
        .policy(Policy::any_verified())
        .alpn(mtls::HTTP_ALPN)
        .build()
        .unwrap();
    let handle = server.handle();
    let running = ours::serve(Kind::Axum, server).await;
    let port = running.port();

    let seen = |name: Option<&'static str>| served_cn(port, name, &pki, &alice);
    assert_eq!(seen(Some("api.example.test")).await, "api");
    assert_eq!(seen(Some("ops.admin.example.test")).await, "admin");
    assert_eq!(seen(Some("localhost")).await, "default");
    // s_client without SNI, and with a name nobody configured: the default (for the
    // unknown name s_client cannot verify the host, so only the CN is checked).
    assert_eq!(seen(None).await, "default");
    let mut unknown = Command::new("openssl");
    unknown
        .arg("s_client")
        .args(["-connect", &format!("127.0.0.1:{port}"), "-brief"])
        .args(["-servername", "unknown.example.test"])
        .arg("-CAfile")
        .arg(pki.ca_file())
        .arg("-cert")
        .arg(&alice.cert)
        .arg("-key")
        .arg(&alice.key);
    let out = run(&mut unknown, Some(b"Q\n"), CLIENT_TIMEOUT).await;
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("CN = default"), "unknown name: {text}");
    println!(
        "MATRIX | openssl s_client -servername | api / *.admin / localhost / none / unknown | api, admin, default, default, default"
    );

    // Reload one: api gets a new certificate; admin and the default stay.
    let api2 = leaf(&pki, "api-v2", &["api.example.test"], &dir);
    std::fs::copy(&api2.cert, &api.cert).unwrap();
    std::fs::copy(&api2.key, &api.key).unwrap();
    handle.reload().unwrap();
    assert_eq!(seen(Some("api.example.test")).await, "api-v2");
    assert_eq!(seen(Some("ops.admin.example.test")).await, "admin");
    assert_eq!(seen(None).await, "default");

    // A broken file in one entry refuses the whole reload; everything in force stays.
    std::fs::write(&api.key, "garbage").unwrap();
    assert!(handle.reload().is_err());
    assert_eq!(seen(Some("api.example.test")).await, "api-v2");
    assert_eq!(seen(Some("ops.admin.example.test")).await, "admin");
}

#[test]
fn the_first_sni_identity_to_expire_is_the_one_reported() {
    let pki = TestPki::new();
    let dir = pki.dir.path().join("sni");
    std::fs::create_dir_all(&dir).unwrap();
    let default = leaf(&pki, "default", &["localhost"], &dir);
    let now = time::OffsetDateTime::now_utc();
    let soon = pki
        .intermediate
        .leaf("soon")
        .server()
        .dns("soon.example.test")
        .validity(now - time::Duration::days(1), now + time::Duration::days(3))
        .build()
        .write(&dir, "soon");
    let server = Server::builder()
        .identity(&default.cert, &default.key)
        .sni_identity("soon.example.test", Identity::pem(&soon.cert, &soon.key))
        .client_ca(pki.ca_file())
        .policy(Policy::any_verified())
        .build()
        .unwrap();
    let (subject, _) = server.handle().status().identity.unwrap();
    assert_eq!(subject, "CN=soon");
}

#[test]
fn certificate_not_valid_for_its_name_is_refused_at_build() {
    let pki = TestPki::new();
    let dir = pki.dir.path().join("sni");
    std::fs::create_dir_all(&dir).unwrap();
    let default = leaf(&pki, "default", &["localhost"], &dir);
    let api = leaf(&pki, "api", &["api.example.test"], &dir);
    let build = |name: &str| {
        Server::builder()
            .identity(&default.cert, &default.key)
            .sni_identity(name, Identity::pem(&api.cert, &api.key))
            .client_ca(pki.ca_file())
            .policy(Policy::any_verified())
            .build()
    };
    let e = build("www.example.test").unwrap_err();
    assert!(matches!(e, Error::SniNameMismatch { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("www.example.test") && text.contains("api.example.test"),
        "{text}"
    );
    // A wildcard entry needs a wildcard certificate.
    let e = build("*.example.test").unwrap_err();
    assert!(matches!(e, Error::SniNameMismatch { .. }), "{e:?}");
    for bad in ["not a name", "a.*.example.test", "127.0.0.1"] {
        let e = build(bad).unwrap_err();
        assert!(matches!(e, Error::InvalidSniName { .. }), "{bad}: {e:?}");
    }
    let e = Server::builder()
        .identity(&default.cert, &default.key)
        .sni_identity("api.example.test", Identity::pem(&api.cert, &api.key))
        .sni_identity("API.example.test.", Identity::pem(&api.cert, &api.key))
        .client_ca(pki.ca_file())
        .policy(Policy::any_verified())
        .build()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidSniName {
                reason: "is given twice",
                ..
            }
        ),
        "{e:?}"
    );
}
