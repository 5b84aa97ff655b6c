//! A tonic service served over `TlsIncoming` and called by tonic channels through
//! `ChannelConnector`, over real TLS on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use mtls::Policy;
use mtls_testing::Ca;
use mtls_tonic::{ChannelConnector, MethodPolicyLayer};
use support::{ADMIN, Fixture, ServeOptions, WHOAMI, call, channel, endpoint, serve};
use tonic::Code;

#[tokio::test]
async fn the_handler_sees_the_client_certificate_and_address() {
    let fx = Fixture::new();
    let (addr, _stats, _server) = serve(&fx.server(), ServeOptions::default()).await;
    let alice = fx.client("alice");
    let connector = ChannelConnector::new(&alice);

    let channel = endpoint(addr)
        .connect_with_connector(connector)
        .await
        .unwrap();
    let reply = call(channel, WHOAMI).await.unwrap();
    assert_eq!(reply.common_name, "alice");
    assert!(reply.subject.contains("CN=alice"), "{}", reply.subject);
    assert_eq!(
        reply.fingerprint_sha256.len(),
        64,
        "{}",
        reply.fingerprint_sha256
    );
    assert!(!reply.serial.is_empty());
    // `Request::remote_addr()` works through `TcpConnectInfoLayer`.
    assert!(
        reply.remote_addr.starts_with("127.0.0.1:"),
        "{}",
        reply.remote_addr
    );
}

/// The listener counted a failed handshake and admitted none (it counts a refusal once
/// it has let the refused connection linger, so wait for it).
async fn assert_refused_by_listener(stats: &mtls::ListenerStats) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while stats.handshakes_failed() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        stats.handshakes_failed() >= 1,
        "the listener refused the handshake"
    );
    assert_eq!(stats.handshakes_ok(), 0);
}

#[tokio::test]
async fn a_client_without_certificate_is_refused_at_the_handshake() {
    let fx = Fixture::new();
    let (addr, stats, _server) = serve(&fx.server(), ServeOptions::default()).await;
    let anonymous = fx.client_builder().build().unwrap();
    let status = call(channel(addr, &ChannelConnector::new(&anonymous)), WHOAMI)
        .await
        .unwrap_err();
    assert_ne!(status.code(), Code::Ok);
    assert_ne!(
        status.code(),
        Code::Unauthenticated,
        "refused by TLS, not by the handler"
    );
    assert_refused_by_listener(&stats).await;
}

#[tokio::test]
async fn a_client_of_another_ca_is_refused_at_the_handshake() {
    let fx = Fixture::new();
    let (addr, stats, _server) = serve(&fx.server(), ServeOptions::default()).await;
    let other = Ca::root("other root");
    let files = other
        .leaf("mallory")
        .client()
        .build()
        .write(fx.pki.dir.path(), "mallory");
    // The client trusts our server's CA; its own certificate is from a CA the server does
    // not trust (the client's preflight wants its chain to reach one of its CAs).
    let other_ca = other.write_cert(fx.pki.dir.path(), "other-ca.crt");
    let mallory = fx
        .client_builder()
        .ca(other_ca)
        .identity(files.cert, files.key)
        .build()
        .unwrap();
    let status = call(channel(addr, &ChannelConnector::new(&mallory)), WHOAMI)
        .await
        .unwrap_err();
    assert_ne!(status.code(), Code::Ok);
    assert_ne!(status.code(), Code::Unauthenticated);
    assert_refused_by_listener(&stats).await;
}

#[tokio::test]
async fn the_method_layer_denies_one_method_and_admits_another() {
    let fx = Fixture::new();
    let policy = MethodPolicyLayer::new()
        .rule(ADMIN, Policy::common_name(["admin"]))
        .unwrap();
    let options = ServeOptions {
        policy: Some(policy),
        ..ServeOptions::default()
    };
    let (addr, _stats, _server) = serve(&fx.server(), options).await;

    let alice = channel(addr, &ChannelConnector::new(&fx.client("alice")));
    assert_eq!(
        call(alice.clone(), WHOAMI).await.unwrap().common_name,
        "alice"
    );
    let denied = call(alice, ADMIN).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        !denied.message().contains("cn:"),
        "the rule stays in the server log"
    );

    let admin = channel(addr, &ChannelConnector::new(&fx.client("admin")));
    assert_eq!(call(admin, ADMIN).await.unwrap().common_name, "admin");
}

#[tokio::test]
async fn the_method_layer_answers_unauthenticated_without_a_certificate() {
    let fx = Fixture::new();
    let policy = MethodPolicyLayer::new()
        .rule("/mtls.examples.v1.Identity/*", Policy::any_verified())
        .unwrap();
    let options = ServeOptions {
        policy: Some(policy),
        ..ServeOptions::default()
    };
    let (addr, _stats, _server) = serve(&fx.optional_server(), options).await;
    let anonymous = fx.client_builder().build().unwrap();
    let status = call(channel(addr, &ChannelConnector::new(&anonymous)), WHOAMI)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let alice = channel(addr, &ChannelConnector::new(&fx.client("alice")));
    assert_eq!(call(alice, ADMIN).await.unwrap().common_name, "alice");
}

/// tonic looks at the endpoint URI's scheme after the connector has connected, and this
/// build has tonic's `tls-aws-lc` feature on (the dev-dependency asks for it), as any
/// build does once one crate in it asks: an `https://` endpoint URI is refused with the
/// fix, and `mtls_tonic::endpoint`'s `http://` URI with an `https` origin works, with the
/// server seeing `:scheme` https and the authority it was asked for.
#[tokio::test]
async fn an_https_endpoint_uri_is_refused_with_the_fix_and_endpoint_works() {
    let fx = Fixture::new();
    let (addr, _stats, _server) = serve(&fx.server(), ServeOptions::default()).await;
    let alice = fx.client("alice");
    let url = format!("https://localhost:{}", addr.port());
    let err = tonic::transport::Endpoint::from_shared(url.clone())
        .unwrap()
        .connect_with_connector(ChannelConnector::new(&alice))
        .await
        .unwrap_err();
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(&err);
    let mut typed = None;
    while let Some(e) = source {
        chain.push_str(&format!("{e}; "));
        typed = typed.or_else(|| e.downcast_ref::<mtls_tonic::ConnectError>());
        source = e.source();
    }
    assert!(
        matches!(typed, Some(mtls_tonic::ConnectError::HttpsEndpoint { .. })),
        "{chain}"
    );
    assert!(chain.contains("mtls_tonic::endpoint("), "{chain}");

    let endpoint = mtls_tonic::endpoint(&url).unwrap();
    assert_eq!(
        endpoint.uri().to_string(),
        format!("http://localhost:{}/", addr.port())
    );
    let reply = call(
        endpoint
            .connect_with_connector(ChannelConnector::new(&alice))
            .await
            .unwrap(),
        WHOAMI,
    )
    .await
    .unwrap();
    assert_eq!(reply.common_name, "alice");
    assert_eq!(reply.origin, format!("https://localhost:{}", addr.port()));
}

#[test]
fn endpoint_refuses_what_is_not_an_https_server_url() {
    for (url, why) in [
        ("http://localhost:50051", "scheme is not `https`"),
        ("localhost:50051", "scheme is not `https`"),
        ("https://localhost:50051/v1/x", "path or query"),
        ("https://user@localhost:50051", "user information"),
        ("https://", "not a valid URI"),
    ] {
        let err = mtls_tonic::endpoint(url).unwrap_err().to_string();
        assert!(err.contains(why), "{url}: {err}");
        assert!(err.contains(url), "{url}: {err}");
    }
    let endpoint = mtls_tonic::endpoint("https://[::1]").unwrap();
    assert_eq!(endpoint.uri().to_string(), "http://[::1]:443/");
}

/// Rewrites alice's files with a new certificate `CN=<name>` (write, then rename).
fn rotate(fx: &Fixture, cert: &std::path::Path, key: &std::path::Path, name: &str) {
    let files = fx
        .pki
        .intermediate
        .leaf(name)
        .client()
        .build()
        .write(fx.pki.dir.path(), &format!("{name}.next"));
    std::fs::rename(&files.cert, cert).unwrap();
    std::fs::rename(&files.key, key).unwrap();
}

#[tokio::test]
async fn a_reloaded_client_certificate_reaches_a_new_channel_from_the_same_connector() {
    let fx = Fixture::new();
    let (addr, _stats, _server) = serve(&fx.server(), ServeOptions::default()).await;
    let (_, files) = fx.pki.client("alice");
    let client = fx
        .client_builder()
        .identity(&files.cert, &files.key)
        .build()
        .unwrap();
    let connector = ChannelConnector::new(&client);

    let first = channel(addr, &connector);
    assert_eq!(
        call(first.clone(), WHOAMI).await.unwrap().common_name,
        "alice"
    );

    rotate(&fx, &files.cert, &files.key, "carol");
    client.handle().reload().unwrap();

    // The open connection keeps the certificate it was opened with ...
    assert_eq!(call(first, WHOAMI).await.unwrap().common_name, "alice");
    // ... and a new connection through the same connector presents the new one.
    let second = channel(addr, &connector);
    assert_eq!(call(second, WHOAMI).await.unwrap().common_name, "carol");
}

#[tokio::test]
async fn a_long_lived_channel_presents_the_new_certificate_after_max_connection_age() {
    let fx = Fixture::new();
    let options = ServeOptions {
        max_connection_age: Some(Duration::from_millis(300)),
        ..ServeOptions::default()
    };
    let (addr, _stats, _server) = serve(&fx.server(), options).await;
    let (_, files) = fx.pki.client("alice");
    let client = fx
        .client_builder()
        .identity(&files.cert, &files.key)
        .build()
        .unwrap();
    let channel = channel(addr, &ChannelConnector::new(&client));
    assert_eq!(
        call(channel.clone(), WHOAMI).await.unwrap().common_name,
        "alice"
    );

    rotate(&fx, &files.cert, &files.key, "carol");
    client.handle().reload().unwrap();

    // The server closes the connection after its age; the channel reconnects with the
    // certificate in force. A call racing with the GOAWAY may fail: retry a few times.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        match call(channel.clone(), WHOAMI).await {
            Ok(reply) if reply.common_name == "carol" => break,
            Ok(_) | Err(_) if tokio::time::Instant::now() < deadline => {}
            other => panic!("the channel never presented the new certificate: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_server_policy_change_applies_to_new_connections_while_an_open_one_keeps_working() {
    let fx = Fixture::new();
    let server = fx.server();
    let (addr, _stats, _task) = serve(&server, ServeOptions::default()).await;
    let connector = ChannelConnector::new(&fx.client("alice"));
    let open = channel(addr, &connector);
    assert_eq!(
        call(open.clone(), WHOAMI).await.unwrap().common_name,
        "alice"
    );

    server
        .handle()
        .set_policy(Policy::common_name(["admin"]))
        .unwrap();

    // The open HTTP/2 connection keeps the identity it was admitted with ...
    assert_eq!(call(open, WHOAMI).await.unwrap().common_name, "alice");
    // ... and a new connection meets the new policy at its handshake.
    let status = call(channel(addr, &connector), WHOAMI).await.unwrap_err();
    assert_ne!(status.code(), Code::Ok);
}

/// The leaf certificate `client` is shown by the server at `addr` on a new connection.
async fn presented_certificate(client: &mtls::Client, addr: std::net::SocketAddr) -> Vec<u8> {
    let tls = client
        .connect(&format!("localhost:{}", addr.port()))
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn a_server_reload_of_its_certificate_and_trust_reaches_new_connections_while_open_ones_keep_working()
 {
    let fx = Fixture::new();
    // The server trusts the test PKI's root and a partner's root, from one bundle.
    let dir = fx.pki.dir.path();
    let partner_root = Ca::root("Partner Root CA");
    let partner = partner_root
        .leaf("partner")
        .client()
        .build()
        .write(dir, "partner");
    let bundle = dir.join("client-cas.pem");
    std::fs::write(
        &bundle,
        format!(
            "{}{}",
            std::fs::read_to_string(&fx.ca).unwrap(),
            partner_root.cert_pem()
        ),
    )
    .unwrap();
    let server = fx.server_builder().client_ca(&bundle).build().unwrap();
    let (addr, _stats, _task) = serve(&server, ServeOptions::default()).await;

    let alice = fx.client("alice");
    let partner_client = fx
        .client_builder()
        .identity(&partner.cert, &partner.key)
        .check_identity_chain(false)
        .build()
        .unwrap();
    let alice_connector = ChannelConnector::new(&alice);
    let partner_connector = ChannelConnector::new(&partner_client);
    let alice_open = channel(addr, &alice_connector);
    let partner_open = channel(addr, &partner_connector);
    assert_eq!(
        call(alice_open.clone(), WHOAMI).await.unwrap().common_name,
        "alice"
    );
    assert_eq!(
        call(partner_open.clone(), WHOAMI)
            .await
            .unwrap()
            .common_name,
        "partner"
    );
    let old_server_cert = presented_certificate(&alice, addr).await;

    // New server certificate (write, then rename) and the partner's CA removed.
    let next_leaf = fx
        .pki
        .intermediate
        .leaf("localhost")
        .dns("localhost")
        .ip([127, 0, 0, 1].into())
        .server()
        .build();
    let next = next_leaf.write(dir, "server.next");
    std::fs::rename(&next.cert, &fx.server_cert).unwrap();
    std::fs::rename(&next.key, &fx.server_key).unwrap();
    std::fs::copy(&fx.ca, dir.join("client-cas.next")).unwrap();
    std::fs::rename(dir.join("client-cas.next"), &bundle).unwrap();
    server.handle().reload().unwrap();
    assert_ne!(old_server_cert, next_leaf.cert_der());

    // The open HTTP/2 connections keep working, the partner's included: a trust change
    // applies to new connections (max_connection_age bounds how long an old one lives).
    assert_eq!(call(alice_open, WHOAMI).await.unwrap().common_name, "alice");
    assert_eq!(
        call(partner_open, WHOAMI).await.unwrap().common_name,
        "partner"
    );

    // New connections: the new server certificate is presented ...
    assert_eq!(
        presented_certificate(&alice, addr).await,
        next_leaf.cert_der(),
        "a new connection got the old certificate"
    );
    assert_eq!(
        call(channel(addr, &alice_connector), WHOAMI)
            .await
            .unwrap()
            .common_name,
        "alice"
    );
    // ... and the removed CA's client is refused at the handshake.
    let status = call(channel(addr, &partner_connector), WHOAMI)
        .await
        .unwrap_err();
    assert!(format!("{status:?}").contains("UnknownCA"), "{status:?}");
}
