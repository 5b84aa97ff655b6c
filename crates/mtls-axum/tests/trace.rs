//! `TraceIdentityLayer` over real TLS: events logged while serving a request carry the
//! client's subject and serial, or say it is anonymous.
//!
//! Its own test binary: one thread-local subscriber, with no other test racing for
//! tracing's callsite cache.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use mtls::{Client, ClientAuth, Policy, Server};
use mtls_axum::{MtlsListener, MtlsRouterExt, TraceIdentityLayer};
use mtls_testing::TestPki;

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn fetch(client: &Client, port: u16) -> String {
    let tls = client.connect(&format!("localhost:{port}")).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[test]
fn events_logged_while_serving_a_request_name_the_client() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pki = TestPki::new();
    let (alice_leaf, alice) = pki.client("alice");
    runtime.block_on(async {
        let (_, files) = pki.server("localhost");
        let server = Server::builder()
            .identity(files.cert, files.key)
            .client_ca(pki.ca_file())
            .client_auth(ClientAuth::Optional)
            .policy(Policy::any_verified())
            .build()
            .unwrap();
        let listener = MtlsListener::bind("127.0.0.1:0", &server).await.unwrap();
        let port = listener.local_addr().port();
        let app = Router::new()
            .route(
                "/",
                get(|| async {
                    tracing::info!("handling the request");
                    "ok"
                }),
            )
            .layer(TraceIdentityLayer::new());
        tokio::spawn(async move { axum::serve(listener, app.into_mtls_service()).await });

        let with_cert = Client::builder()
            .ca(pki.ca_file())
            .identity(&alice.cert, &alice.key)
            .build()
            .unwrap();
        let anonymous = Client::builder().ca(pki.ca_file()).build().unwrap();
        let limit = Duration::from_secs(10);
        assert_eq!(
            tokio::time::timeout(limit, fetch(&with_cert, port))
                .await
                .unwrap(),
            "ok"
        );
        assert_eq!(
            tokio::time::timeout(limit, fetch(&anonymous, port))
                .await
                .unwrap(),
            "ok"
        );
    });
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let serial = mtls::PeerIdentity::from_chain(&[alice_leaf.cert_der().into()])
        .unwrap()
        .serial()
        .to_owned();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("handling the request"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("mtls.peer{peer.subject=CN=alice")
            && lines[0].contains(&format!("peer.serial={serial}")),
        "{text}"
    );
    assert!(
        lines[1].contains("mtls.peer{peer.anonymous=true}"),
        "{text}"
    );
}
