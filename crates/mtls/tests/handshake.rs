//! Handshakes over real loopback TLS: who gets in, who does not, and what the server logs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ask, ask_raw, capture_logs, raw_client, serve};
use mtls::{Client, ClientAuth, Policy, Server};
use mtls_testing::{Ca, TestPki};

fn server(pki: &TestPki, auth: ClientAuth) -> Server {
    let (_, files) = pki.server("localhost");
    Server::builder()
        .identity(&files.cert, &files.key)
        .client_ca(pki.ca_file())
        .client_auth(auth)
        .policy(Policy::any_verified())
        .build()
        .unwrap()
}

fn client(pki: &TestPki, name: Option<&str>) -> Client {
    let mut b = Client::builder().ca(pki.ca_file());
    if let Some(name) = name {
        let (_, files) = pki.client(name);
        b = b.identity(files.cert, files.key);
    }
    b.build().unwrap()
}

#[tokio::test]
async fn trusted_client_is_accepted_and_identified() {
    let pki = TestPki::new();
    let srv = serve(&server(&pki, ClientAuth::Required)).await;
    let line = ask(&client(&pki, Some("alice")), srv.addr).await.unwrap();
    assert!(line.starts_with("CN=alice|1|"), "{line}");
}

#[tokio::test]
async fn no_certificate_is_refused_when_required_and_logged() {
    let (logs, _g) = capture_logs();
    let pki = TestPki::new();
    let srv = serve(&server(&pki, ClientAuth::Required)).await;
    let err = ask(&client(&pki, None), srv.addr).await.unwrap_err();
    assert!(!err.is_empty());
    assert!(
        common::eventually(5, async || logs.text().contains("no_certificate")).await,
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn no_certificate_is_anonymous_when_optional() {
    let pki = TestPki::new();
    let srv = serve(&server(&pki, ClientAuth::Optional)).await;
    assert_eq!(
        ask(&client(&pki, None), srv.addr).await.unwrap(),
        "anonymous"
    );
    // A client that does present a certificate is still verified and identified.
    let line = ask(&client(&pki, Some("bob")), srv.addr).await.unwrap();
    assert!(line.starts_with("CN=bob|"), "{line}");
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused_and_logged() {
    let (logs, _g) = capture_logs();
    let pki = TestPki::new();
    let srv = serve(&server(&pki, ClientAuth::Required)).await;
    let other = Ca::root("other root");
    let leaf = other.leaf("mallory").client().build();
    let files = leaf.write(pki.dir.path(), "mallory");
    let cfg = raw_client(&pki.ca_file(), Some((&files.cert, &files.key)));
    assert!(ask_raw(cfg, srv.addr).await.is_err());
    assert!(
        common::eventually(5, async || {
            let t = logs.text();
            t.contains("unknown_issuer") && t.contains("CN=mallory")
        })
        .await,
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn expired_certificate_is_refused_and_logged_with_its_date() {
    let (logs, _g) = capture_logs();
    let pki = TestPki::new();
    let srv = serve(&server(&pki, ClientAuth::Required)).await;
    let leaf = pki.intermediate.leaf("old").client().expired().build();
    let files = leaf.write(pki.dir.path(), "old");
    let cfg = raw_client(&pki.ca_file(), Some((&files.cert, &files.key)));
    assert!(ask_raw(cfg, srv.addr).await.is_err());
    let year = leaf.not_after().year().to_string();
    assert!(
        common::eventually(5, async || {
            let t = logs.text();
            t.contains("reason=\"expired\"") && t.contains(&format!("expired on {year}"))
        })
        .await,
        "{}",
        logs.text()
    );
}

/// rustls reports this one as `CertificateError::Other`; the log still names it.
#[tokio::test]
async fn ca_certificate_as_client_leaf_is_refused_and_logged_by_name() {
    let (logs, _g) = capture_logs();
    let pki = TestPki::new();
    let srv = serve(&server(&pki, ClientAuth::Required)).await;
    let leaf = pki.intermediate.leaf("v3ca-client").client().ca().build();
    let files = leaf.write(pki.dir.path(), "v3ca-client");
    let cfg = raw_client(&pki.ca_file(), Some((&files.cert, &files.key)));
    assert!(ask_raw(cfg, srv.addr).await.is_err());
    assert!(
        common::eventually(5, async || {
            let t = logs.text();
            t.contains("reason=\"ca_as_leaf\"")
                && t.contains("CN=v3ca-client")
                && t.contains("basicConstraints=CA:FALSE")
        })
        .await,
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn revoked_certificate_is_refused_and_logged_with_its_serial() {
    let (logs, _g) = capture_logs();
    let pki = TestPki::new();
    let (_, sfiles) = pki.server("localhost");
    let (revoked, rfiles) = pki.client("revoked");
    let (_, gfiles) = pki.client("good");
    let crl = pki
        .intermediate
        .crl(&[&revoked])
        .write(pki.dir.path(), "int.crl");
    let server = Server::builder()
        .identity(&sfiles.cert, &sfiles.key)
        .client_ca(pki.ca_file())
        .crl(&crl)
        .allow_unknown_revocation_status()
        .policy(Policy::any_verified())
        .build()
        .unwrap();
    let srv = serve(&server).await;
    let bad = raw_client(&pki.ca_file(), Some((&rfiles.cert, &rfiles.key)));
    assert!(ask_raw(bad, srv.addr).await.is_err());
    let good = raw_client(&pki.ca_file(), Some((&gfiles.cert, &gfiles.key)));
    assert!(
        ask_raw(good, srv.addr)
            .await
            .unwrap()
            .starts_with("CN=good|")
    );
    let serial: String = revoked
        .serial()
        .iter()
        .skip_while(|b| **b == 0)
        .map(|b| format!("{b:02X}"))
        .collect();
    assert!(
        common::eventually(5, async || {
            let t = logs.text();
            t.contains("reason=\"revoked\"") && t.contains(&serial)
        })
        .await,
        "serial {serial}: {}",
        logs.text()
    );
}

#[tokio::test]
async fn two_ca_bundles_are_trusted_at_once() {
    let old = TestPki::new();
    let new = TestPki::new();
    let (_, sfiles) = old.server("localhost");
    let server = Server::builder()
        .identity(&sfiles.cert, &sfiles.key)
        .client_ca(old.ca_file())
        .client_ca(new.ca_file())
        .policy(Policy::any_verified())
        .build()
        .unwrap();
    let srv = serve(&server).await;
    for (pki, name) in [(&old, "from-old"), (&new, "from-new")] {
        let (_, f) = pki.client(name);
        let c = Client::builder()
            .ca(old.ca_file())
            .identity(f.cert, f.key)
            .check_identity_chain(false)
            .build()
            .unwrap();
        let line = ask(&c, srv.addr).await.unwrap();
        assert!(line.starts_with(&format!("CN={name}|")), "{line}");
    }
}

#[tokio::test]
async fn server_chain_with_intermediate_verifies_against_the_root_only() {
    let pki = TestPki::new();
    let srv = serve(&server(&pki, ClientAuth::Required)).await;
    // ca.crt holds the root only; the server sends leaf + intermediate.
    let roots = mtls::pem::load_certs(pki.ca_file()).unwrap();
    assert_eq!(roots.len(), 1);
    let (_, sfiles) = pki.server("localhost");
    assert_eq!(mtls::pem::load_certs(&sfiles.cert).unwrap().len(), 2);
    let line = ask(&client(&pki, Some("carol")), srv.addr).await.unwrap();
    assert!(line.starts_with("CN=carol|"), "{line}");
}

#[tokio::test]
async fn tls12_only_and_alpn_are_negotiated() {
    let pki = TestPki::new();
    let (_, sfiles) = pki.server("localhost");
    let server = Server::builder()
        .identity(&sfiles.cert, &sfiles.key)
        .client_ca(pki.ca_file())
        .policy(Policy::any_verified())
        .tls_versions(&[mtls::TlsVersion::Tls12])
        .alpn(mtls::HTTP_ALPN)
        .build()
        .unwrap();
    let srv = serve(&server).await;
    let (_, f) = pki.client("dave");
    let c = Client::builder()
        .ca(pki.ca_file())
        .identity(f.cert, f.key)
        .alpn(["http/1.1"])
        .build()
        .unwrap();
    let tls = c
        .connect(&format!("localhost:{}", srv.addr.port()))
        .await
        .unwrap();
    let conn = tls.get_ref().1;
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(conn.alpn_protocol(), Some(&b"http/1.1"[..]));
}
