//! `ForwardedIdentity` over real TLS: the trusted proxy's forwarded client replaces the
//! request's identity; anyone else's header is removed and ignored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use mtls::forwarded::{Forwarding, HeaderFormat, TrustedProxy, encode_rfc9440};
use mtls::{PeerIdentity, Policy};
use mtls_hyper::{Connector, ForwardedIdentity, HttpServer};
use support::{Fixture, TIMEOUT, http_client, listener, url};

async fn who(req: Request<Incoming>) -> Result<Response<String>, Infallible> {
    let cn = req
        .extensions()
        .get::<Arc<PeerIdentity>>()
        .and_then(|id| id.common_name().map(str::to_owned))
        .unwrap_or_else(|| "anonymous".to_owned());
    let header = req.headers().contains_key("client-cert");
    Ok(Response::new(format!("{cn}|{header}")))
}

#[tokio::test]
async fn the_proxy_forwards_and_nobody_else_does() {
    let fx = Fixture::new();
    let listener = listener(&fx.optional_server()).await;
    let addr = listener.local_addr();
    let forwarding = Forwarding::new(
        HeaderFormat::Rfc9440,
        TrustedProxy::Policy(Policy::common_name(["edge-proxy"])),
    );
    let service = ForwardedIdentity::new(hyper::service::service_fn(who), forwarding);
    tokio::spawn(HttpServer::new(listener).serve(service));
    let (admin, _) = fx.pki.client("admin");
    let forged = encode_rfc9440(&[admin.cert_der().into()]).0;

    for (client, expected) in [
        (fx.client("edge-proxy"), "admin|false"),
        (fx.client("mallory"), "mallory|false"),
        (fx.client_builder().build().unwrap(), "anonymous|false"),
    ] {
        let http = http_client(Connector::new(&client));
        let req = Request::get(url(addr, "/"))
            .header("client-cert", forged.as_str())
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = tokio::time::timeout(TIMEOUT, http.request(req))
            .await
            .unwrap()
            .unwrap();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(String::from_utf8(body.to_vec()).unwrap(), expected);
    }
}
