//! Interop with the axum adapter over real TLS on 127.0.0.1: the hyper connector against
//! an `mtls_axum` server, and an axum `Router` served by `mtls_hyper::HttpServer` as a tower
//! service.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::Router;
use axum::routing::get as route_get;
use http::Version;
use mtls_axum::{MtlsListener, MtlsRouterExt, PeerIdentity, Principal};
use mtls_hyper::{Connector, ServerIdentity};
use support::*;

async fn whoami(peer: PeerIdentity) -> String {
    peer.common_name().unwrap_or("?").to_owned()
}

#[tokio::test]
async fn connector_against_the_axum_server() {
    let fx = Fixture::new();
    let server = fx.server();
    let listener = MtlsListener::bind("127.0.0.1:0", &server).await.unwrap();
    let addr = listener.local_addr();
    let app = Router::new().route("/whoami", route_get(whoami));
    let _task = tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_mtls_service()).await;
    });

    let client = http_client(Connector::new(&fx.client("alice")));
    let response = tokio::time::timeout(TIMEOUT, client.get(url(addr, "/whoami")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    let server_id = response.extensions().get::<ServerIdentity>().unwrap();
    assert_eq!(server_id.common_name(), Some("localhost"));

    let (head, body) = get(&client, url(addr, "/whoami")).await.unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(body, "alice");
}

#[tokio::test]
async fn axum_router_served_as_a_tower_service() {
    let fx = Fixture::new();
    let listener = listener(&fx.server()).await;
    let addr = listener.local_addr();
    // mtls-axum's extractor reads the `Arc<mtls::PeerIdentity>` extension we insert.
    let app = Router::new().route("/whoami", route_get(whoami));
    let _task = tokio::spawn(mtls_hyper::HttpServer::new(listener).serve_tower(app));

    for (name, version, connector) in [
        (
            "alice",
            Version::HTTP_2,
            Connector::new(&fx.client("alice")),
        ),
        (
            "bob",
            Version::HTTP_11,
            Connector::new(&fx.client("bob")).http1_only(),
        ),
    ] {
        let client = http_client(connector);
        let (head, body) = get(&client, url(addr, "/whoami")).await.unwrap();
        assert_eq!(head.status, 200, "{body}");
        assert_eq!(head.version, version);
        assert_eq!(body, name);
    }
}

#[derive(Debug, Clone)]
struct Tenant(String);

#[tokio::test]
async fn axum_principal_extractor_under_the_hyper_server() {
    let fx = Fixture::new();
    let server = fx.server();
    let extractor = |id: &std::sync::Arc<mtls::PeerIdentity>| {
        Ok::<_, mtls::identity::ExtractError>(Tenant(format!(
            "tenant-{}",
            id.common_name().unwrap_or("?")
        )))
    };
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = mtls::TlsListener::new(tcp, server.acceptor_with(extractor)).unwrap();
    let addr = listener.local_addr();
    let app = Router::new()
        .route(
            "/tenant",
            route_get(|Principal(t): Principal<Tenant>| async move { t.0 }),
        )
        .route(
            "/wrong",
            route_get(|Principal(n): Principal<u32>| async move { n.to_string() }),
        );
    let _task = tokio::spawn(mtls_hyper::HttpServer::new(listener).serve_tower(app));

    let client = http_client(Connector::new(&fx.client("alice")));
    let (head, body) = get(&client, url(addr, "/tenant")).await.unwrap();
    assert_eq!((head.status.as_u16(), body.as_str()), (200, "tenant-alice"));
    // A principal type the server does not insert is a server misconfiguration.
    let (head, _) = get(&client, url(addr, "/wrong")).await.unwrap();
    assert_eq!(head.status, 500);
}
