//! `ForwardedIdentityLayer` over real TLS: only the trusted proxy's connection may
//! forward a client certificate; from anyone else the header is removed and ignored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use mtls::forwarded::{Forwarding, HeaderFormat, TrustedProxy, encode_rfc9440};
use mtls::{Client, ClientAuth, Policy, Server};
use mtls_axum::{
    ClientIdentity, ForwardedBy, ForwardedIdentityLayer, MtlsListener, MtlsRouterExt,
    RequirePolicyLayer,
};
use mtls_testing::{Ca, TestPki};

async fn request(
    client: &Client,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let fut = async {
        let tls = client
            .connect(&format!("localhost:{}", addr.port()))
            .await
            .unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = http::Request::get(path).header("host", "localhost");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = send
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap()
}

fn client(pki: &TestPki, cn: Option<&str>) -> Client {
    let mut b = Client::builder().ca(pki.ca_file());
    if let Some(cn) = cn {
        let (_, files) = pki.client(cn);
        b = b.identity(files.cert, files.key);
    }
    b.build().unwrap()
}

async fn whoami(peer: ClientIdentity, by: Option<ForwardedBy>) -> String {
    let by = by.map_or("direct".to_owned(), |ForwardedBy(p)| {
        p.subject.unwrap_or_default()
    });
    format!("{}|{by}", peer.common_name().unwrap_or("?"))
}

async fn serve(pki: &TestPki, forwarding: impl FnOnce(&Server) -> Forwarding) -> SocketAddr {
    let (_, files) = pki.server("localhost");
    let server = Server::builder()
        .identity(files.cert, files.key)
        .client_ca(pki.ca_file())
        .client_auth(ClientAuth::Optional)
        .policy(Policy::any_verified())
        .build()
        .unwrap();
    let forwarding = forwarding(&server);
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route(
            "/admin",
            get(|| async { "admin only" })
                .layer(RequirePolicyLayer::new(Policy::common_name(["admin"]))),
        )
        // What the application sees of the forwarded header: nothing, ever.
        .route(
            "/header",
            get(|headers: http::HeaderMap| async move {
                format!("{}", headers.contains_key("client-cert"))
            }),
        )
        .layer(ForwardedIdentityLayer::new(forwarding));
    let listener = MtlsListener::bind("127.0.0.1:0", &server).await.unwrap();
    let addr = listener.local_addr();
    tokio::spawn(async move {
        let _keep = server;
        axum::serve(listener, app.into_mtls_service()).await
    });
    addr
}

fn proxy() -> TrustedProxy {
    TrustedProxy::Policy(Policy::common_name(["edge-proxy"]))
}

#[tokio::test]
async fn only_the_trusted_proxy_may_forward_and_the_header_never_reaches_the_app() {
    let pki = TestPki::new();
    let addr = serve(&pki, |_| Forwarding::new(HeaderFormat::Rfc9440, proxy())).await;
    let (admin_leaf, _) = pki.client("admin");
    let forged = encode_rfc9440(&[admin_leaf.cert_der().into()]).0;
    let header = [("client-cert", forged.as_str())];

    // The proxy forwards admin: the request is admin's, and the policy layer agrees.
    let edge = client(&pki, Some("edge-proxy"));
    let (status, body) = request(&edge, addr, "/whoami", &header).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "admin|CN=edge-proxy")
    );
    assert_eq!(
        request(&edge, addr, "/admin", &header).await.0,
        StatusCode::OK
    );
    // The proxy forwarding no certificate: anonymous, not the proxy.
    assert_eq!(
        request(&edge, addr, "/whoami", &[]).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Anyone else with the same header is itself.
    let mallory = client(&pki, Some("mallory"));
    let (status, body) = request(&mallory, addr, "/whoami", &header).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "mallory|direct"));
    assert_eq!(
        request(&mallory, addr, "/admin", &header).await.0,
        StatusCode::FORBIDDEN
    );
    let anonymous = client(&pki, None);
    assert_eq!(
        request(&anonymous, addr, "/whoami", &header).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        request(&anonymous, addr, "/admin", &header).await.0,
        StatusCode::UNAUTHORIZED
    );

    // The header is removed for everyone.
    for c in [&edge, &mallory, &anonymous] {
        assert_eq!(request(c, addr, "/header", &header).await.1, "false");
    }

    // Two copies through the proxy (the client's and the proxy's): neither wins.
    let (alice_leaf, _) = pki.client("alice");
    let alice = encode_rfc9440(&[alice_leaf.cert_der().into()]).0;
    let both = [
        ("client-cert", alice.as_str()),
        ("client-cert", forged.as_str()),
    ];
    assert_eq!(
        request(&edge, addr, "/whoami", &both).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn reverify_refuses_a_forwarded_certificate_our_cas_do_not_trust() {
    let pki = TestPki::new();
    let addr = serve(&pki, |server| {
        Forwarding::new(HeaderFormat::Rfc9440, proxy()).reverify(server)
    })
    .await;
    let edge = client(&pki, Some("edge-proxy"));
    let other = Ca::root("Other Root").leaf("admin").client().build();
    let forged = encode_rfc9440(&[other.cert_der().into()]).0;
    let (status, _) = request(&edge, addr, "/whoami", &[("client-cert", forged.as_str())]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // One of ours passes our own verification.
    let (alice_leaf, _) = pki.client("alice");
    let chain: Vec<_> = alice_leaf.chain_der().into_iter().map(Into::into).collect();
    let (cert, intermediates) = encode_rfc9440(&chain);
    let mut headers = vec![("client-cert", cert.as_str())];
    if let Some(i) = &intermediates {
        headers.push(("client-cert-chain", i.as_str()));
    }
    let (status, body) = request(&edge, addr, "/whoami", &headers).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "alice|CN=edge-proxy")
    );
}
