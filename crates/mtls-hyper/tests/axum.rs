//! Interop with the axum adapter over real TLS on 127.0.0.1: the hyper connector against
//! an `mtls_axum` server, and an axum `Router` served by `mtls_hyper::HttpServer` as a tower
//! service: its extractors and policy layer read the core's `ConnectionInfo` there, so
//! anonymous clients under optional client auth get 401 / `None`, not 500.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::routing::get as route_get;
use axum::{Extension, Router};
use http::Version;
use mtls::{ConnectionInfo, Policy};
use mtls_axum::{
    ClientIdentity, MockPeerIdentity, MtlsListener, MtlsRouterExt, Principal, RequirePolicyLayer,
};
use mtls_hyper::{Connector, HttpServer, ServerIdentity};
use support::*;

async fn whoami(peer: ClientIdentity) -> String {
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
    // mtls-axum's extractor reads the `mtls::ConnectionInfo` extension we insert.
    let app = Router::new().route("/whoami", route_get(whoami));
    let _task = tokio::spawn(HttpServer::new(listener).serve_tower(app));

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
    let server = fx.optional_server();
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
            "/maybe",
            route_get(|t: Option<Principal<Tenant>>| async move {
                t.map_or_else(|| "none".to_owned(), |t| t.0.0)
            }),
        )
        .route(
            "/wrong",
            route_get(|Principal(n): Principal<u32>| async move { n.to_string() }),
        )
        // Extractors and layers that do not know `Tenant` read the default info.
        .route(
            "/who",
            route_get(|peer: ClientIdentity| async move { peer.subject().to_owned() }),
        )
        .route(
            "/admin",
            route_get(|| async { "admin" })
                .layer(RequirePolicyLayer::new(Policy::common_name(["admin"]))),
        );
    let _task = tokio::spawn(HttpServer::new(listener).serve_tower(app));

    let client = http_client(Connector::new(&fx.client("alice")));
    let (head, body) = get(&client, url(addr, "/tenant")).await.unwrap();
    assert_eq!((head.status.as_u16(), body.as_str()), (200, "tenant-alice"));
    let (_, body) = get(&client, url(addr, "/maybe")).await.unwrap();
    assert_eq!(body, "tenant-alice");
    // A principal type the server does not insert is a server misconfiguration.
    let (head, _) = get(&client, url(addr, "/wrong")).await.unwrap();
    assert_eq!(head.status, 500);
    let (head, body) = get(&client, url(addr, "/who")).await.unwrap();
    assert_eq!(head.status, 200);
    assert!(body.contains("CN=alice"), "{body}");
    let (head, _) = get(&client, url(addr, "/admin")).await.unwrap();
    assert_eq!(head.status, 403);

    // An anonymous client: the `ConnectionInfo<Tenant>` says so.
    let anonymous = http_client(Connector::new(&fx.client_builder().build().unwrap()));
    let (head, _) = get(&anonymous, url(addr, "/tenant")).await.unwrap();
    assert_eq!(head.status, 401);
    let (head, body) = get(&anonymous, url(addr, "/maybe")).await.unwrap();
    assert_eq!((head.status.as_u16(), body.as_str()), (200, "none"));
    // Not 500: the info with the default principal says the client is anonymous.
    for path in ["/who", "/admin"] {
        let (head, _) = get(&anonymous, url(addr, path)).await.unwrap();
        assert_eq!(head.status, 401, "{path}");
    }
}

/// The routes of the anonymous-client tests: one that requires an identity, one open to
/// anonymous clients, one behind a policy layer, and one reading the core's connection
/// info directly.
fn optional_auth_routes() -> Router {
    Router::new()
        .route("/whoami", route_get(whoami))
        .route(
            "/public",
            route_get(|peer: Option<ClientIdentity>| async move {
                peer.map_or("hello anonymous".to_owned(), |p| {
                    format!("hello {}", p.common_name().unwrap_or("?"))
                })
            }),
        )
        .route(
            "/admin",
            route_get(|| async { "admin area" })
                .layer(RequirePolicyLayer::new(Policy::common_name(["admin"]))),
        )
        .route(
            "/info",
            route_get(|Extension(info): Extension<ConnectionInfo>| async move {
                format!("anonymous={}", info.is_anonymous())
            }),
        )
}

#[tokio::test]
async fn axum_router_under_the_hyper_server_answers_anonymous_clients_under_optional_auth() {
    let fx = Fixture::new();
    let listener = listener(&fx.optional_server()).await;
    let addr = listener.local_addr();
    let _task = tokio::spawn(HttpServer::new(listener).serve_tower(optional_auth_routes()));
    let anonymous = http_client(Connector::new(&fx.client_builder().build().unwrap()));
    let alice = http_client(Connector::new(&fx.client("alice")));
    let admin = http_client(Connector::new(&fx.client("admin")));

    let cases = [
        (&anonymous, "/whoami", 401, "client certificate is required"),
        (&anonymous, "/public", 200, "hello anonymous"),
        (&anonymous, "/admin", 401, "client certificate is required"),
        (&anonymous, "/info", 200, "anonymous=true"),
        (&alice, "/whoami", 200, "alice"),
        (&alice, "/public", 200, "hello alice"),
        (&alice, "/admin", 403, "forbidden"),
        (&alice, "/info", 200, "anonymous=false"),
        (&admin, "/admin", 200, "admin area"),
    ];
    for (client, path, want_status, want_body) in cases {
        let (head, body) = get(client, url(addr, path)).await.unwrap();
        assert_eq!(head.status.as_u16(), want_status, "{path}: {body}");
        assert!(body.contains(want_body), "{path}: {body}");
    }
}

#[tokio::test]
async fn the_hyper_servers_connection_info_takes_precedence_over_the_mock_layer() {
    let fx = Fixture::new();
    let (mallory, _) = fx.pki.client("mallory");
    let chain = [mtls::rustls::pki_types::CertificateDer::from(
        mallory.cert_der(),
    )];
    let mallory = mtls::PeerIdentity::from_chain(&chain).unwrap();
    let listener = listener(&fx.optional_server()).await;
    let addr = listener.local_addr();
    let app = optional_auth_routes().layer(MockPeerIdentity::new(mallory));
    let _task = tokio::spawn(HttpServer::new(listener).serve_tower(app));

    let alice = http_client(Connector::new(&fx.client("alice")));
    let (_, body) = get(&alice, url(addr, "/whoami")).await.unwrap();
    assert_eq!(body, "alice");
    let anonymous = http_client(Connector::new(&fx.client_builder().build().unwrap()));
    let (head, _) = get(&anonymous, url(addr, "/whoami")).await.unwrap();
    assert_eq!(head.status, 401);
}
