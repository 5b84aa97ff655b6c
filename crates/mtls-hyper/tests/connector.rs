//! `mtls_hyper::Connector` in hyper-util's client against `mtls_hyper::HttpServer` over real
//! TLS on 127.0.0.1: identities both ways, server policy, untrusted servers, rotation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Request, Response};
use hyper::body::Incoming;
use mtls::PeerIdentity;
use mtls::rustls::CertificateError;
use mtls::rustls::pki_types::ServerName;
use mtls_hyper::{ConnectError, Connector, ServerIdentity};
use support::*;

#[tokio::test]
async fn connector_against_hyper_server_identities_both_ways() {
    let fx = Fixture::new();
    let (addr, _task) = serve_whoami(&fx.server()).await;
    let client = http_client(Connector::new(&fx.client("alice")));

    let response = tokio::time::timeout(TIMEOUT, client.get(url(addr, "/")))
        .await
        .unwrap()
        .unwrap();
    let server = response
        .extensions()
        .get::<ServerIdentity>()
        .cloned()
        .unwrap();
    assert_eq!(server.common_name(), Some("localhost"));
    let server_leaf = mtls::rustls::pki_types::pem::PemObject::pem_file_iter(&fx.server_cert)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let expected = PeerIdentity::from_chain(&[server_leaf]).unwrap();
    assert_eq!(server.fingerprint_sha256(), expected.fingerprint_sha256());
    // hyper-util's own connection info is kept alongside.
    assert!(
        response
            .extensions()
            .get::<hyper_util::client::legacy::connect::HttpInfo>()
            .is_some()
    );

    // The identity the server saw is alice's certificate.
    let (_, body) = get(&client, url(addr, "/")).await.unwrap();
    assert!(body.starts_with("alice|"), "{body}");
}

#[tokio::test]
async fn ip_address_uri_is_verified_against_the_ip_san() {
    let fx = Fixture::new();
    let (addr, _task) = serve_whoami(&fx.server()).await;
    let client = http_client(Connector::new(&fx.client("alice")));
    let uri = format!("https://127.0.0.1:{}/", addr.port())
        .parse()
        .unwrap();
    let (_, body) = get(&client, uri).await.unwrap();
    assert!(body.starts_with("alice|"), "{body}");

    // A fixed name that the certificate does not cover is refused.
    let connector = Connector::new(&fx.client("alice"))
        .server_name(ServerName::try_from("other.example").unwrap());
    let err = get(&http_client(connector), url(addr, "/"))
        .await
        .unwrap_err();
    let connect = connect_error(&err).unwrap_or_else(|| panic!("{}", chain(&err)));
    assert!(
        matches!(
            connect.certificate_error(),
            Some(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{}",
        chain(&err)
    );
    assert!(!connect.is_policy_denied());
}

#[tokio::test]
async fn server_refused_by_client_policy() {
    let fx = Fixture::new();
    let server = fx.server();
    let listener = listener(&server).await;
    let addr = listener.local_addr();
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
        counter.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, Infallible>(Response::new(String::new())) }
    });
    let _task = tokio::spawn(mtls_hyper::HttpServer::new(listener).serve(service));

    let (_, alice) = fx.pki.client("alice");
    let picky = fx
        .client_builder()
        .identity(alice.cert, alice.key)
        .server_policy("cn:payments".parse().unwrap())
        .build()
        .unwrap();
    let client = http_client(Connector::new(&picky));
    let err = get(&client, url(addr, "/")).await.unwrap_err();
    assert!(err.is_connect(), "{}", chain(&err));
    let connect = connect_error(&err).unwrap_or_else(|| panic!("{}", chain(&err)));
    assert!(connect.is_policy_denied(), "{}", chain(&err));
    let text = chain(&err);
    assert!(
        text.contains("server policy") && text.contains("invalid peer certificate"),
        "{text}"
    );
    // The underlying rustls error is in the chain too.
    let mut source = std::error::Error::source(connect);
    let mut found = false;
    while let Some(e) = source {
        found |= matches!(
            e.downcast_ref::<mtls::rustls::Error>(),
            Some(mtls::rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure
            ))
        );
        source = e.source();
    }
    assert!(found, "{text}");
    assert_eq!(served.load(Ordering::Relaxed), 0);

    // The same client with a policy the server meets gets through.
    let (_, bob) = fx.pki.client("bob");
    let happy = fx
        .client_builder()
        .identity(bob.cert, bob.key)
        .server_policy("cn:localhost".parse().unwrap())
        .build()
        .unwrap();
    let client = http_client(Connector::new(&happy));
    get(&client, url(addr, "/")).await.unwrap();
    assert_eq!(served.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn server_from_another_pki_is_untrusted() {
    let fx = Fixture::new();
    // Same host name, but issued by a CA the client does not trust.
    let other_ca = mtls_testing::Ca::root("some other root");
    let files = other_ca
        .leaf("localhost")
        .server()
        .dns("localhost")
        .build()
        .write(fx.pki.dir.path(), "other-localhost");
    let other_ca_file = other_ca.write_cert(fx.pki.dir.path(), "other-ca.crt");
    let server = mtls::Server::builder()
        .identity(files.cert, files.key)
        .client_ca(&fx.ca)
        .client_ca(other_ca_file)
        .policy(mtls::Policy::any_verified())
        .build()
        .unwrap();
    let (addr, _task) = serve_whoami(&server).await;
    let client = http_client(Connector::new(&fx.client("alice")));
    let err = get(&client, url(addr, "/")).await.unwrap_err();
    let connect = connect_error(&err).unwrap_or_else(|| panic!("{}", chain(&err)));
    assert_eq!(
        connect.certificate_error(),
        Some(&CertificateError::UnknownIssuer),
        "{}",
        chain(&err)
    );
}

#[tokio::test]
async fn plain_http_uri_is_refused() {
    let fx = Fixture::new();
    let client = http_client(Connector::new(&fx.client("alice")));
    let err = get(&client, "http://localhost:1/".parse().unwrap())
        .await
        .unwrap_err();
    let connect = connect_error(&err).unwrap_or_else(|| panic!("{}", chain(&err)));
    assert!(
        matches!(connect, ConnectError::NotHttps { .. }),
        "{connect:?}"
    );
    assert!(
        connect.to_string().contains("not an https URI"),
        "{connect}"
    );
}

#[tokio::test]
async fn rotated_client_certificate_is_used_by_new_connections() {
    let fx = Fixture::new();
    let (addr, _task) = serve_whoami(&fx.server()).await;
    let (_, alice) = fx.pki.client("alice");
    let (_, bob) = fx.pki.client("bob");
    let cert = fx.pki.path("current.crt");
    let key = fx.pki.path("current.key");
    let install = |from: &mtls_testing::LeafFiles| {
        for (src, dst) in [(&from.cert, &cert), (&from.key, &key)] {
            let tmp = dst.with_extension("tmp");
            std::fs::copy(src, &tmp).unwrap();
            std::fs::rename(&tmp, dst).unwrap();
        }
    };
    install(&alice);
    let mtls_client = fx.client_builder().identity(&cert, &key).build().unwrap();
    let connector = Connector::new(&mtls_client);

    let (_, body) = get(&http_client(connector.clone()), url(addr, "/"))
        .await
        .unwrap();
    assert!(body.starts_with("alice|"), "{body}");

    install(&bob);
    mtls_client.handle().reload().unwrap();
    // A new pool, hence a new connection, through the connector built before the reload.
    let (_, body) = get(&http_client(connector), url(addr, "/")).await.unwrap();
    assert!(body.starts_with("bob|"), "{body}");
}

#[tokio::test]
async fn server_identity_is_on_every_response_of_a_pooled_connection() {
    let fx = Fixture::new();
    let (addr, _task) = serve_whoami(&fx.server()).await;
    for connector in [
        Connector::new(&fx.client("alice")),
        Connector::new(&fx.client("alice")).http1_only(),
    ] {
        let client = http_client(connector);
        for _ in 0..3 {
            let response = tokio::time::timeout(TIMEOUT, client.get(url(addr, "/")))
                .await
                .unwrap()
                .unwrap();
            let server = response.extensions().get::<ServerIdentity>().unwrap();
            assert_eq!(server.dns_names(), ["localhost"]);
        }
    }
}

#[test]
fn connect_error_messages_name_the_problem() {
    let e = ConnectError::InvalidServerName {
        host: "bad host".into(),
    };
    assert_eq!(
        e.to_string(),
        "`bad host` is not a valid server name (DNS name or IP address)"
    );
    let e = ConnectError::HandshakeTimeout {
        server: "api.example.org".into(),
        timeout: std::time::Duration::from_secs(3),
    };
    assert_eq!(
        e.to_string(),
        "TLS handshake with `api.example.org` did not finish within 3s"
    );
    assert!(e.certificate_error().is_none() && !e.is_policy_denied());
}

/// The connector resumes sessions within one generation of the client's material, and
/// never across a reload: the session made under alice is not offered once bob is in
/// force.
#[tokio::test]
async fn connector_resumes_within_a_generation_and_never_across_a_reload() {
    let fx = Fixture::new();
    let mut listener = listener(&fx.server()).await;
    let addr = listener.local_addr();
    // Each connection: (client CN, resumed), then served over HTTP.
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let _server = tokio::spawn(async move {
        loop {
            let conn = listener.accept().await;
            let cn = conn
                .peer
                .identity()
                .and_then(|i| i.common_name().map(str::to_owned));
            let _ = seen_tx.send((cn.unwrap_or_default(), conn.peer.resumed()));
            tokio::spawn(
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(conn.stream),
                        hyper::service::service_fn(|_req| async {
                            Ok::<_, Infallible>(Response::new(String::from("ok")))
                        }),
                    )
                    .into_owned(),
            );
        }
    });
    let (_, alice) = fx.pki.client("alice");
    let (_, bob) = fx.pki.client("bob");
    let (cert, key) = (fx.pki.path("now.crt"), fx.pki.path("now.key"));
    let install = |from: &mtls_testing::LeafFiles| {
        std::fs::copy(&from.cert, &cert).unwrap();
        std::fs::copy(&from.key, &key).unwrap();
    };
    install(&alice);
    let mtls_client = fx.client_builder().identity(&cert, &key).build().unwrap();
    // No pooling: every request opens a new connection through the same connector.
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build::<_, http_body_util::Empty<bytes::Bytes>>(Connector::new(&mtls_client));
    let mut request = async || {
        let response = http.get(url(addr, "/")).await.unwrap();
        assert!(response.status().is_success());
        let _ = http_body_util::BodyExt::collect(response.into_body()).await;
        seen.recv().await.unwrap()
    };
    assert_eq!(request().await, ("alice".to_owned(), false));
    assert_eq!(
        request().await,
        ("alice".to_owned(), true),
        "the second connection resumes the first one's session"
    );

    install(&bob);
    mtls_client.handle().reload().unwrap();
    assert_eq!(
        request().await,
        ("bob".to_owned(), false),
        "after the reload to bob, a new connection presents bob in a full handshake"
    );
}
