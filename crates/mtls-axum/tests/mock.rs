//! Handler unit tests without TLS, through MockPeerIdentity.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mtls::Policy;
use mtls::rustls::pki_types::CertificateDer;
use mtls_axum::{
    ClientIdentity, IdentityRejection, MockPeerIdentity, Principal, RequirePolicyLayer,
    TlsConnectInfo,
};
use tower::ServiceExt;

fn identity(cn: &str) -> mtls::PeerIdentity {
    let leaf = mtls_testing::Ca::root("mock root")
        .leaf(cn)
        .client()
        .build();
    mtls::PeerIdentity::from_chain(&[CertificateDer::from(leaf.cert_der())]).unwrap()
}

fn app() -> Router {
    Router::new()
        .route(
            "/whoami",
            get(|p: ClientIdentity| async move { p.common_name().unwrap_or("").to_owned() }),
        )
        .route(
            "/admin",
            get(|| async { "admin" })
                .layer(RequirePolicyLayer::new(Policy::common_name(["admin"]))),
        )
        .route(
            "/team",
            get(|Principal(t): Principal<u32>| async move { format!("team {t}") }),
        )
        .route(
            "/info",
            get(
                |ConnectInfo(info): ConnectInfo<TlsConnectInfo>| async move {
                    // No real connection behind a mock: no core connection info.
                    let core = info.connection_info::<Arc<mtls::PeerIdentity>>();
                    format!("{}|{}", info.is_anonymous(), core.is_some())
                },
            ),
        )
}

async fn call(app: Router, path: &str) -> (StatusCode, String, http::Extensions) {
    let resp = app
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        status,
        String::from_utf8(body.to_vec()).unwrap(),
        parts.extensions,
    )
}

#[tokio::test]
async fn mock_identity_reaches_extractors_and_the_policy_layer() {
    let alice = app().layer(MockPeerIdentity::new(identity("alice")));
    let (status, body, _) = call(alice.clone(), "/whoami").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "alice"));

    let (status, _, ext) = call(alice, "/admin").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    match ext.get::<IdentityRejection>() {
        Some(IdentityRejection::Forbidden(denied)) => assert_eq!(denied.rule(), "cn:admin"),
        other => panic!("unexpected rejection {other:?}"),
    }

    let admin = app().layer(MockPeerIdentity::new(identity("admin")));
    assert_eq!(call(admin, "/admin").await.0, StatusCode::OK);
}

#[tokio::test]
async fn mock_anonymous_and_principal() {
    let anon = app().layer(MockPeerIdentity::anonymous());
    assert_eq!(
        call(anon.clone(), "/whoami").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(anon.clone(), "/admin").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(anon.clone(), "/team").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(call(anon, "/info").await.1, "true|false");

    let team = app().layer(MockPeerIdentity::new(identity("bob")).with_principal(7u32));
    let (status, body, _) = call(team, "/team").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "team 7"));
}

#[tokio::test]
async fn without_any_connection_info_the_answer_is_500_with_a_hint() {
    let (status, body, ext) = call(app(), "/whoami").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("into_mtls_service()"), "{body}");
    assert_eq!(
        ext.get::<IdentityRejection>(),
        Some(&IdentityRejection::MissingConnectInfo)
    );
}
