//! The reqwest client against an HTTPS server of ours, over real loopback TLS.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use mtls::rustls::AlertDescription;
use mtls::{Policy, TlsVersion};
use mtls_reqwest::{RotatingClient, TlsFailure, classify};
use mtls_testing::{Ca, TestPki};
use support::{eventually, get, replace_file, serve, server, server_with};

const TIMEOUT: Duration = Duration::from_secs(10);

fn mtls_client(pki: &TestPki, name: &str) -> mtls::Client {
    let (_, files) = pki.client(name);
    mtls::Client::builder()
        .identity(files.cert, files.key)
        .ca(pki.ca_file())
        .build()
        .unwrap()
}

/// Writes `to`'s certificate and key over `name`'s files (by rename).
fn rotate_files(pki: &TestPki, name: &str, to: &str) {
    let (_, new) = pki.client(to);
    replace_file(&new.cert, &pki.path(&format!("{name}.crt")));
    replace_file(&new.key, &pki.path(&format!("{name}.key")));
}

#[tokio::test]
async fn server_sees_the_client_certificate_over_h2() {
    let pki = TestPki::new();
    let srv = serve(&server(&pki)).await;
    let http = mtls_reqwest::builder(&mtls_client(&pki, "alice"))
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let resp = http.get(srv.url("/")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let answer = support::parse(&resp.text().await.unwrap());
    assert_eq!(answer.cn, "alice");
    assert_eq!(answer.alpn, "h2");
}

#[tokio::test]
async fn http_alpn_by_default_and_the_core_clients_alpn_when_it_has_one() {
    let pki = TestPki::new();
    let srv = serve(&server(&pki)).await;
    let (_, files) = pki.client("carol");
    let core = mtls::Client::builder()
        .identity(&files.cert, &files.key)
        .ca(pki.ca_file());
    let default = core.clone().build().unwrap();
    assert_eq!(default.handle().generation(), 1);
    let http = mtls_reqwest::builder(&default)
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let answer = get(&http, &srv.url("/")).await;
    assert_eq!((answer.cn.as_str(), answer.alpn.as_str()), ("carol", "h2"));

    let http1 = core.alpn(["http/1.1"]).build().unwrap();
    assert_eq!(
        mtls_reqwest::rustls_config(&http1).alpn_protocols,
        vec![b"http/1.1".to_vec()]
    );
    let http = mtls_reqwest::builder(&http1)
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let resp = http.get(srv.url("/")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(support::parse(&resp.text().await.unwrap()).cn, "carol");
}

#[tokio::test]
async fn rotation_is_seen_by_the_next_connection_of_the_same_client() {
    let pki = TestPki::new();
    let srv = serve(&server(&pki)).await;
    let mtls = mtls_client(&pki, "alice");
    // No idle connections kept: every request opens a new connection.
    let http = mtls_reqwest::builder(&mtls)
        .pool_max_idle_per_host(0)
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let first = get(&http, &srv.url("/")).await;
    assert_eq!(first.cn, "alice");
    let second = get(&http, &srv.url("/")).await;
    assert_eq!(second.cn, "alice");
    assert_ne!(second.connection, first.connection);
    // The config reqwest keeps for its whole life never resumes: a ticket that reached
    // an old connection after a reload would otherwise skip the new trust.
    assert!(
        !second.resumed,
        "the plain reqwest client must not resume sessions"
    );

    rotate_files(&pki, "alice", "bob");
    assert_eq!(mtls.handle().reload().unwrap(), 2);

    let third = get(&http, &srv.url("/")).await;
    assert_eq!(third.cn, "bob");
    assert!(
        !third.resumed,
        "the session made under alice must not be resumed"
    );
}

#[tokio::test]
async fn the_rotating_client_resumes_within_a_generation_and_never_across_one() {
    let pki = TestPki::new();
    let srv = serve(&server(&pki)).await;
    let mtls = mtls_client(&pki, "alice");
    let rotating =
        RotatingClient::new(&mtls, |b| b.pool_max_idle_per_host(0).timeout(TIMEOUT)).unwrap();
    let first = get(&rotating.client(), &srv.url("/")).await;
    let second = get(&rotating.client(), &srv.url("/")).await;
    assert_eq!((first.cn.as_str(), second.cn.as_str()), ("alice", "alice"));
    assert_ne!(second.connection, first.connection);
    assert!(
        second.resumed,
        "a second connection resumes before rotation"
    );

    rotate_files(&pki, "alice", "bob");
    mtls.handle().reload().unwrap();
    let third = get(&rotating.client(), &srv.url("/")).await;
    assert_eq!(third.cn, "bob");
    assert!(
        !third.resumed,
        "the session made under alice must not be resumed"
    );
}

#[tokio::test]
async fn pooled_connections_stay_and_rotating_client_moves_to_a_fresh_pool() {
    let pki = TestPki::new();
    let srv = serve(&server(&pki)).await;
    let mtls = mtls_client(&pki, "alice");
    let plain = mtls_reqwest::builder(&mtls)
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let rotating = RotatingClient::new(&mtls, |b| b.timeout(TIMEOUT)).unwrap();
    assert_eq!(rotating.generation(), 1);

    let a1 = get(&plain, &srv.url("/")).await;
    let r1 = get(&rotating.client(), &srv.url("/")).await;
    assert_eq!((a1.cn.as_str(), r1.cn.as_str()), ("alice", "alice"));

    // A request in flight on the rotating client's old pool while the rotation happens.
    let slow = tokio::spawn(rotating.get(srv.url("/slow")).send());
    tokio::time::timeout(TIMEOUT, srv.slow_started.notified())
        .await
        .unwrap();

    rotate_files(&pki, "alice", "bob");
    mtls.handle().reload().unwrap();

    // The plain client reuses its pooled connection: still alice, same connection.
    let a2 = get(&plain, &srv.url("/")).await;
    assert_eq!((a2.cn.as_str(), a2.connection), ("alice", a1.connection));

    // The rotating client moves to a new pool: a new connection that presents bob.
    let r2 = get(&rotating.client(), &srv.url("/")).await;
    assert_eq!(r2.cn, "bob");
    assert_ne!(r2.connection, r1.connection);
    assert_eq!(rotating.generation(), 2);

    // The request that was in flight on the old connection is not interrupted.
    srv.release();
    let resp = tokio::time::timeout(TIMEOUT, slow)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let old = support::parse(&resp.text().await.unwrap());
    assert_eq!((old.cn.as_str(), old.connection), ("alice", r1.connection));
}

#[tokio::test]
async fn file_watch_rotates_the_client_certificate() {
    let pki = TestPki::new();
    let srv = serve(&server(&pki)).await;
    let mtls = mtls_client(&pki, "alice");
    let _watch = mtls
        .handle()
        .watch_with(mtls::WatchOptions::default().debounce(Duration::from_millis(100)))
        .unwrap();
    let rotating = RotatingClient::new(&mtls, |b| b.timeout(TIMEOUT)).unwrap();
    assert_eq!(get(&rotating.client(), &srv.url("/")).await.cn, "alice");

    rotate_files(&pki, "alice", "dave");
    let seen = eventually(10, async || {
        get(&rotating.client(), &srv.url("/")).await.cn == "dave"
    })
    .await;
    assert!(
        seen,
        "the rotated certificate was not presented within 10 s"
    );
    assert!(mtls.handle().generation() >= 2);
}

#[tokio::test]
async fn server_refused_by_policy_is_server_not_authorized() {
    let pki = TestPki::new();
    // A server whose certificate carries a SPIFFE ID.
    let leaf = pki
        .intermediate
        .leaf("api")
        .server()
        .dns("localhost")
        .uri("spiffe://example.org/ns/prod/sa/api")
        .build();
    let files = leaf.write(pki.dir.path(), "api");
    let srv = serve(
        &mtls::Server::builder()
            .identity(&files.cert, &files.key)
            .client_ca(pki.ca_file())
            .policy(Policy::any_verified())
            .alpn(mtls::HTTP_ALPN)
            .build()
            .unwrap(),
    )
    .await;
    let (_, alice) = pki.client("alice");
    let with_policy = |spec: &str| {
        let mtls = mtls::Client::builder()
            .identity(&alice.cert, &alice.key)
            .ca(pki.ca_file())
            .server_policy(spec.parse().unwrap())
            .build()
            .unwrap();
        mtls_reqwest::builder(&mtls)
            .timeout(TIMEOUT)
            .build()
            .unwrap()
    };

    let ok = with_policy("spiffe:spiffe://example.org/ns/prod/sa/api");
    assert_eq!(get(&ok, &srv.url("/")).await.cn, "alice");

    let wrong = with_policy("spiffe:spiffe://example.org/ns/prod/sa/billing");
    let err = wrong.get(srv.url("/")).send().await.unwrap_err();
    assert_eq!(
        classify(&err),
        Some(TlsFailure::ServerNotAuthorized),
        "{err:?}"
    );
}

#[tokio::test]
async fn unknown_server_ca_is_classified() {
    let pki = TestPki::new();
    let srv = serve(&server(&pki)).await;
    let other = Ca::root("some other root");
    let other_ca = other.write_cert(pki.dir.path(), "other-ca.crt");
    let (_, alice) = pki.client("alice");
    // Trust only the other root; alice's own chain then leads to no configured CA, so
    // the core's identity-chain preflight is turned off through the core builder.
    let core = mtls::Client::builder()
        .identity(&alice.cert, &alice.key)
        .ca(&other_ca)
        .check_identity_chain(false)
        .build()
        .unwrap();
    let http = mtls_reqwest::builder(&core)
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let err = http.get(srv.url("/")).send().await.unwrap_err();
    assert_eq!(classify(&err), Some(TlsFailure::UnknownServerCa), "{err:?}");
}

#[tokio::test]
async fn refusal_by_the_server_is_an_alert_under_tls12() {
    let pki = TestPki::new();
    let srv = serve(&server_with(&pki, &[TlsVersion::Tls12])).await;

    // No client certificate.
    let anonymous =
        mtls_reqwest::builder(&mtls::Client::builder().ca(pki.ca_file()).build().unwrap())
            .timeout(TIMEOUT)
            .build()
            .unwrap();
    let err = anonymous.get(srv.url("/")).send().await.unwrap_err();
    let failure = classify(&err).unwrap_or_else(|| panic!("not classified: {err:?}"));
    assert_eq!(
        failure,
        TlsFailure::RefusedByServer(AlertDescription::CertificateRequired),
        "{err:?}"
    );
    assert!(failure.is_refused_by_server());

    // A client certificate from a CA the server does not trust.
    let other = Ca::root("other root");
    let mallory = other.leaf("mallory").client().build();
    let files = mallory.write(pki.dir.path(), "mallory");
    let core = mtls::Client::builder()
        .identity(&files.cert, &files.key)
        .ca(pki.ca_file())
        .check_identity_chain(false)
        .build()
        .unwrap();
    let http = mtls_reqwest::builder(&core)
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let err = http.get(srv.url("/")).send().await.unwrap_err();
    assert!(
        matches!(classify(&err), Some(TlsFailure::RefusedByServer(_))),
        "{err:?}"
    );
}

#[tokio::test]
async fn refusal_by_the_server_under_tls13_is_an_error() {
    let pki = TestPki::new();
    let srv = serve(&server_with(&pki, &[TlsVersion::Tls13])).await;
    let anonymous =
        mtls_reqwest::builder(&mtls::Client::builder().ca(pki.ca_file()).build().unwrap())
            .timeout(TIMEOUT)
            .build()
            .unwrap();
    let err = anonymous.get(srv.url("/")).send().await.unwrap_err();
    // The alert may be overtaken by the close (see `TlsFailure`); never anything else.
    match classify(&err) {
        None | Some(TlsFailure::RefusedByServer(AlertDescription::CertificateRequired)) => {}
        other => panic!("unexpected {other:?} for {err:?}"),
    }
}

#[tokio::test]
async fn bad_files_are_the_core_builders_typed_errors() {
    // This crate has no builder of its own: files are loaded and checked by the core's.
    let pki = TestPki::new();
    let (_, alice) = pki.client("alice");
    let err = mtls::Client::builder()
        .identity(&alice.cert, pki.path("missing.key"))
        .ca(pki.ca_file())
        .build()
        .unwrap_err();
    assert!(matches!(err, mtls::Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("missing.key"), "{err}");

    let err = mtls::Client::builder()
        .identity(&alice.cert, &alice.key)
        .build()
        .unwrap_err();
    assert!(matches!(err, mtls::Error::MissingCa { .. }), "{err}");
}

#[tokio::test]
async fn preconfigured_backend_is_recognised_by_reqwest() {
    // reqwest matches the config by type; a rustls version mismatch between this crate and
    // reqwest would make `build()` fail with "builder error" and this request fail.
    let pki = TestPki::new();
    let srv = serve(&server(&pki)).await;
    let mtls = mtls_client(&pki, "erin");
    let config = mtls_reqwest::rustls_config(&mtls);
    assert_eq!(
        config.alpn_protocols,
        mtls::HTTP_ALPN.map(|p| p.as_bytes().to_vec()).to_vec()
    );
    assert!(config.client_auth_cert_resolver.has_certs());
    let http = mtls_reqwest::builder(&mtls)
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    assert_eq!(get(&http, &srv.url("/")).await.cn, "erin");
}

#[tokio::test]
async fn failed_reload_keeps_the_old_certificate_and_pool() {
    let pki = TestPki::new();
    let srv = serve(&server(&pki)).await;
    let mtls = mtls_client(&pki, "alice");
    let rotating = RotatingClient::new(&mtls, |b| b.timeout(TIMEOUT)).unwrap();
    let before = get(&rotating.client(), &srv.url("/")).await;

    std::fs::write(pki.path("alice.key"), "not a key").unwrap();
    let err = mtls.handle().reload().unwrap_err();
    assert!(err.to_string().contains("alice.key"), "{err}");
    assert_eq!(mtls.handle().generation(), 1);

    let after = get(&rotating.client(), &srv.url("/")).await;
    assert_eq!(after.cn, "alice");
    assert_eq!(after.connection, before.connection, "the pool was kept");
    assert_eq!(rotating.generation(), 1);
}

/// The mTLS reqwest client never sends an `http://` request in clear: the request fails
/// before a byte reaches the server (a listener that records what it receives). An
/// explicit `https_only(false)` opts out.
#[tokio::test]
async fn plain_http_urls_are_refused_before_anything_is_sent() {
    use tokio::io::AsyncReadExt;

    let pki = TestPki::new();
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = plain.local_addr().unwrap();
    let received = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::<u8>::new()));
    let sink = received.clone();
    let _server = tokio::spawn(async move {
        while let Ok((mut s, _)) = plain.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    sink.lock().await.extend_from_slice(&buf[..n]);
                    // Answer like a plain HTTP server would.
                    let _ = tokio::io::AsyncWriteExt::write_all(
                        &mut s,
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                }
            });
        }
    });
    let url = format!("http://{addr}/path?token=secret");
    let mtls = mtls_client(&pki, "alice");
    let http = mtls_reqwest::builder(&mtls)
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let err = http.get(&url).send().await.unwrap_err();
    assert!(err.is_builder(), "{err:?}");
    let rotating = RotatingClient::new(&mtls, |b| b.timeout(TIMEOUT)).unwrap();
    assert!(rotating.get(&url).send().await.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        received.lock().await.is_empty(),
        "bytes reached the plain server"
    );

    // Opting out is explicit.
    let opted_out = mtls_reqwest::builder(&mtls)
        .https_only(false)
        .timeout(TIMEOUT)
        .build()
        .unwrap();
    let resp = opted_out.get(&url).send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "ok");
    assert!(
        String::from_utf8_lossy(&received.lock().await).contains("token=secret"),
        "the opt-out did not reach the server"
    );
}
