//! The reqwest client against servers we did not write: `openssl s_server` and nginx, both
//! requiring a client certificate.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use mtls_testing::TestPki;
use support::{nginx, openssl_server, peer_available};

const TIMEOUT: Duration = Duration::from_secs(10);

fn http(pki: &TestPki, name: Option<&str>) -> reqwest::Client {
    let mut b = mtls::Client::builder().ca(pki.ca_file());
    if let Some(name) = name {
        let (_, files) = pki.client(name);
        b = b.identity(files.cert, files.key);
    }
    mtls_reqwest::builder(&b.build().unwrap())
        .timeout(TIMEOUT)
        .build()
        .unwrap()
}

#[tokio::test]
async fn openssl_s_server_accepts_our_client_and_refuses_no_certificate() {
    if !peer_available("openssl") {
        return;
    }
    let pki = TestPki::new();
    let peer = openssl_server(&pki).await;

    let resp = http(&pki, Some("alice"))
        .get(peer.url("/"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let body = resp.text().await.unwrap();
    // `-www` prints the session, including the verified client certificate's subject.
    assert!(
        body.contains("CN=alice") || body.contains("CN = alice"),
        "{body}"
    );

    let err = http(&pki, None)
        .get(peer.url("/"))
        .send()
        .await
        .unwrap_err();
    // The handshake is refused: an alert, or under TLS 1.3 possibly a close that
    // overtakes it (see `TlsFailure`).
    match mtls_reqwest::classify(&err) {
        None | Some(mtls_reqwest::TlsFailure::RefusedByServer(_)) => {}
        other => panic!("unexpected {other:?} for {err:?}"),
    }
}

#[tokio::test]
async fn nginx_accepts_our_client_and_refuses_no_certificate() {
    if !peer_available("nginx") {
        return;
    }
    let pki = TestPki::new();
    let peer = nginx(&pki).await;

    let resp = http(&pki, Some("alice"))
        .get(peer.url("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let body = resp.text().await.unwrap();
    assert!(body.starts_with("CN=alice"), "{body}");

    // nginx completes the handshake without a certificate and answers 400 ("No required
    // SSL certificate was sent").
    let resp = http(&pki, None).get(peer.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::BAD_REQUEST);
    let body = resp.text().await.unwrap();
    assert!(body.contains("No required SSL certificate"), "{body}");
}
