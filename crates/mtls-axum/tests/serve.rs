//! mtls-axum over real TLS on 127.0.0.1 with a hyper client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mtls::rustls::pki_types::CertificateDer;
use mtls::{Client, ClientAuth, Policy, Server};
use mtls_axum::{
    ClientIdentity, MockPeerIdentity, MtlsListener, MtlsRouterExt, Principal, RequirePolicyLayer,
    TlsConnectInfo,
};
use mtls_testing::TestPki;
use tokio::sync::oneshot;

const LIMIT: Duration = Duration::from_secs(10);

// === helpers ===

struct Running {
    addr: SocketAddr,
    stats: Arc<mtls::ListenerStats>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Triggers graceful shutdown and waits (bounded) for `axum::serve` to return.
    async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(LIMIT, &mut self.task)
            .await
            .expect("serve did not stop")
            .expect("serve task panicked")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn server(pki: &TestPki, auth: ClientAuth) -> mtls::ServerBuilder {
    let (_, files) = pki.server("localhost");
    Server::builder()
        .identity(files.cert, files.key)
        .client_ca(pki.ca_file())
        .client_auth(auth)
        .policy(Policy::any_verified())
        .alpn(mtls::HTTP_ALPN)
}

async fn start(listener: MtlsListener<impl mtls::IdentityExtractor>, app: Router) -> Running {
    let addr = listener.local_addr();
    let stats = listener.stats();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app.into_mtls_service())
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Running {
        addr,
        stats,
        shutdown: Some(tx),
        task,
    }
}

async fn serve(server: &Server, app: Router) -> Running {
    let listener = MtlsListener::bind("127.0.0.1:0", server).await.unwrap();
    start(listener, app).await
}

fn client(pki: &TestPki, name: Option<&str>) -> Client {
    let mut b = Client::builder().ca(pki.ca_file());
    if let Some(name) = name {
        let (_, files) = pki.client(name);
        b = b.identity(files.cert, files.key);
    }
    b.build().unwrap()
}

/// One HTTP/1.1 GET on a fresh connection: (status, body).
async fn get1(client: &Client, addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let fut = async {
        let tls = client
            .connect(&format!("localhost:{}", addr.port()))
            .await
            .unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    };
    tokio::time::timeout(LIMIT, fut)
        .await
        .expect("request timed out")
}

fn identity_of(leaf: &mtls_testing::Leaf) -> mtls::PeerIdentity {
    let chain: Vec<CertificateDer<'static>> = leaf
        .chain_der()
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    mtls::PeerIdentity::from_chain(&chain).unwrap()
}

async fn whoami(peer: ClientIdentity) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::to_value(&*peer).unwrap())
}

async fn public(peer: Option<ClientIdentity>) -> String {
    match peer {
        Some(p) => format!("hello {}", p.common_name().unwrap_or("?")),
        None => "hello anonymous".to_owned(),
    }
}

fn routes() -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/public", get(public))
        .route(
            "/admin",
            get(|| async { "admin area" })
                .layer(RequirePolicyLayer::new(Policy::common_name(["admin"]))),
        )
        .route(
            "/alpn",
            get(
                |ConnectInfo(info): ConnectInfo<TlsConnectInfo>| async move {
                    String::from_utf8_lossy(info.alpn().unwrap_or(b"none")).into_owned()
                },
            ),
        )
}

// === tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_json_matches_the_client_certificate() {
    let pki = TestPki::new();
    let server = server(&pki, ClientAuth::Required).build().unwrap();
    let running = serve(&server, routes()).await;

    let (alice_leaf, files) = pki.client("alice");
    let alice = Client::builder()
        .ca(pki.ca_file())
        .identity(files.cert, files.key)
        .build()
        .unwrap();
    let (status, body) = get1(&alice, running.addr, "/whoami").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let expected = identity_of(&alice_leaf);
    assert_eq!(json["common_name"], "alice");
    assert_eq!(json["subject"], expected.subject());
    assert_eq!(json["serial"], expected.serial());
    assert_eq!(json["fingerprint_sha256"], expected.fingerprint_sha256());
    assert_eq!(json["issuer"], "CN=mtls-testing intermediate");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_route_401_403_200_under_optional_client_auth() {
    let pki = TestPki::new();
    let server = server(&pki, ClientAuth::Optional).build().unwrap();
    let running = serve(&server, routes()).await;
    let anonymous = client(&pki, None);
    let alice = client(&pki, Some("alice"));
    let admin = client(&pki, Some("admin"));

    let cases = [
        (&anonymous, "/public", StatusCode::OK, "hello anonymous"),
        (&alice, "/public", StatusCode::OK, "hello alice"),
        (
            &anonymous,
            "/whoami",
            StatusCode::UNAUTHORIZED,
            "client certificate is required",
        ),
        (
            &anonymous,
            "/admin",
            StatusCode::UNAUTHORIZED,
            "client certificate is required",
        ),
        (&alice, "/admin", StatusCode::FORBIDDEN, "forbidden"),
        (&admin, "/admin", StatusCode::OK, "admin area"),
        (&alice, "/nope", StatusCode::NOT_FOUND, ""),
    ];
    for (client, path, want_status, want_body) in cases {
        let (status, body) = get1(client, running.addr, path).await;
        assert_eq!(status, want_status, "{path}: {body}");
        assert!(body.contains(want_body), "{path}: {body}");
        // The denying rule stays in the server log.
        assert!(!body.contains("cn:admin"), "{path}: {body}");
    }
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_serve_without_connect_info_answers_500_saying_what_to_call() {
    let pki = TestPki::new();
    let server = server(&pki, ClientAuth::Optional).build().unwrap();
    let listener = MtlsListener::bind("127.0.0.1:0", &server).await.unwrap();
    let addr = listener.local_addr();
    // The mistake: no `.into_mtls_service()`.
    let task = tokio::spawn(async move { axum::serve(listener, routes()).await });
    let alice = client(&pki, Some("alice"));
    for path in ["/whoami", "/public", "/admin"] {
        let (status, body) = get1(&alice, addr, path).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert!(body.contains("into_mtls_service()"), "{path}: {body}");
    }
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_does_not_block_other_clients_and_failures_are_not_fatal() {
    let pki = TestPki::new();
    let server = server(&pki, ClientAuth::Required)
        .handshake_timeout(Duration::from_secs(4))
        .build()
        .unwrap();
    let running = serve(&server, routes()).await;

    // Connects and sends nothing.
    let _stalled = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    // Sends garbage: the handshake fails.
    {
        use tokio::io::AsyncWriteExt;
        let mut garbage = tokio::net::TcpStream::connect(running.addr).await.unwrap();
        garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    }
    // Without a certificate under Required: refused in the handshake.
    let anonymous = client(&pki, None);
    let refused = tokio::time::timeout(LIMIT, async {
        let tls = anonymous
            .connect(&format!("localhost:{}", running.addr.port()))
            .await?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        let req = http::Request::get("/whoami")
            .body(Empty::<Bytes>::new())
            .map_err(std::io::Error::other)?;
        send.send_request(req).await.map_err(std::io::Error::other)
    })
    .await
    .unwrap();
    assert!(refused.is_err(), "an anonymous client got {refused:?}");

    // Another client is served at once, well before the stalled one times out.
    let started = std::time::Instant::now();
    let alice = client(&pki, Some("alice"));
    let (status, _) = get1(&alice, running.addr, "/public").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // The stalled handshake times out and is counted; the server keeps serving.
    let deadline = tokio::time::Instant::now() + LIMIT;
    while running.stats.handshakes_timed_out() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no timeout counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        running.stats.handshakes_failed() >= 2,
        "{:?}",
        running.stats
    );
    let (status, _) = get1(&alice, running.addr, "/public").await;
    assert_eq!(status, StatusCode::OK);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_an_in_flight_request() {
    let pki = TestPki::new();
    let server = server(&pki, ClientAuth::Required).build().unwrap();
    let (started_tx, started_rx) = tokio::sync::mpsc::channel::<()>(1);
    let app = Router::new().route(
        "/slow",
        get(move |peer: ClientIdentity| {
            let started_tx = started_tx.clone();
            async move {
                let _ = started_tx.send(()).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                format!("done for {}", peer.common_name().unwrap_or("?"))
            }
        }),
    );
    let running = serve(&server, app).await;
    let addr = running.addr;
    let alice = client(&pki, Some("alice"));
    let request = tokio::spawn(async move { get1(&alice, addr, "/slow").await });

    let mut started_rx = started_rx;
    tokio::time::timeout(LIMIT, started_rx.recv())
        .await
        .unwrap()
        .unwrap();
    // Shut down while the handler runs: the request still completes, then serve returns.
    running.stop().await.unwrap();
    let (status, body) = tokio::time::timeout(LIMIT, request).await.unwrap().unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "done for alice");
    // Nothing listens any more.
    let late = client(&pki, Some("alice"));
    let err = late.connect(&format!("localhost:{}", addr.port())).await;
    assert!(err.is_err(), "a new connection was accepted after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_by_alpn_several_requests_on_one_connection_see_the_same_identity() {
    let pki = TestPki::new();
    let server = server(&pki, ClientAuth::Required).build().unwrap();
    let app = routes().route(
        "/h2",
        get(
            |peer: ClientIdentity, ConnectInfo(info): ConnectInfo<TlsConnectInfo>| async move {
                format!(
                    "{}|{}|{}",
                    peer.common_name().unwrap_or("?"),
                    String::from_utf8_lossy(info.alpn().unwrap_or(b"none")),
                    info.remote_addr().port()
                )
            },
        ),
    );
    let running = serve(&server, app).await;
    let (_, files) = pki.client("bob");
    let bob = Client::builder()
        .ca(pki.ca_file())
        .identity(files.cert, files.key)
        .alpn(mtls::HTTP_ALPN)
        .build()
        .unwrap();

    let fut = async {
        let tls = bob
            .connect(&format!("localhost:{}", running.addr.port()))
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let local_port = tls.get_ref().0.local_addr().unwrap().port();
        let (send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut bodies = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let mut send = send.clone();
            tasks.push(tokio::spawn(async move {
                let req = http::Request::get("https://localhost/h2")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let resp = send.send_request(req).await.unwrap();
                assert_eq!(resp.version(), http::Version::HTTP_2);
                assert_eq!(resp.status(), StatusCode::OK);
                resp.into_body().collect().await.unwrap().to_bytes()
            }));
        }
        for t in tasks {
            bodies.push(String::from_utf8(t.await.unwrap().to_vec()).unwrap());
        }
        (bodies, local_port)
    };
    let (bodies, local_port) = tokio::time::timeout(LIMIT, fut).await.unwrap();
    assert_eq!(bodies.len(), 5);
    for body in bodies {
        assert_eq!(body, format!("bob|h2|{local_port}"));
    }
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connect_info_holds_the_core_connection_info() {
    let pki = TestPki::new();
    let server = server(&pki, ClientAuth::Optional).build().unwrap();
    let generation = server.handle().generation();
    let app = Router::new().route(
        "/core",
        get(
            |ConnectInfo(info): ConnectInfo<TlsConnectInfo>| async move {
                let core = info.connection_info::<Arc<mtls::PeerIdentity>>().unwrap();
                // The same value, not a copy: the identity is the one the handshake made.
                let same = core.identity().map(Arc::as_ptr) == info.identity().map(Arc::as_ptr);
                format!(
                    "{same}|{}|{}|{}|{}",
                    core.remote_addr() == Some(info.remote_addr()),
                    core.generation() == info.generation(),
                    info.generation(),
                    info.is_anonymous(),
                )
            },
        ),
    );
    let running = serve(&server, app).await;
    let alice = client(&pki, Some("alice"));
    let (status, body) = get1(&alice, running.addr, "/core").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, format!("true|true|true|{generation}|false"));
    let anonymous = client(&pki, None);
    let (_, body) = get1(&anonymous, running.addr, "/core").await;
    assert_eq!(body, format!("true|true|true|{generation}|true"));
    running.stop().await.unwrap();
}

#[derive(Clone, Debug, PartialEq)]
struct Tenant(String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principal_from_a_custom_identity_extractor() {
    let pki = TestPki::new();
    let server = server(&pki, ClientAuth::Optional).build().unwrap();
    let extractor = |peer: &Arc<mtls::PeerIdentity>| -> Result<Tenant, mtls::ExtractError> {
        peer.common_name()
            .map(|cn| Tenant(format!("tenant-{cn}")))
            .ok_or_else(|| mtls::ExtractError::new("no CN"))
    };
    let listener = MtlsListener::bind_with(
        "127.0.0.1:0",
        server.acceptor_with(extractor),
        mtls::ListenerOptions::default(),
    )
    .await
    .unwrap();
    let app = Router::new()
        .route(
            "/tenant",
            get(|Principal(t): Principal<Tenant>| async move { t.0 }),
        )
        .route(
            "/maybe",
            get(|t: Option<Principal<Tenant>>| async move {
                t.map_or_else(|| "none".to_owned(), |t| t.0.0)
            }),
        )
        .route(
            "/wrong-type",
            get(|Principal(s): Principal<String>| async move { s }),
        );
    let running = start(listener, app).await;
    let alice = client(&pki, Some("alice"));
    let anonymous = client(&pki, None);

    assert_eq!(
        get1(&alice, running.addr, "/tenant").await,
        (StatusCode::OK, "tenant-alice".to_owned())
    );
    assert_eq!(
        get1(&alice, running.addr, "/maybe").await,
        (StatusCode::OK, "tenant-alice".to_owned())
    );
    assert_eq!(
        get1(&anonymous, running.addr, "/maybe").await,
        (StatusCode::OK, "none".to_owned())
    );
    assert_eq!(
        get1(&anonymous, running.addr, "/tenant").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = get1(&alice, running.addr, "/wrong-type").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("Tenant"), "{body}");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_connection_info_takes_precedence_over_the_mock_layer() {
    let pki = TestPki::new();
    let server = server(&pki, ClientAuth::Required).build().unwrap();
    let (mallory_leaf, _) = pki.client("mallory");
    let app = routes().layer(MockPeerIdentity::new(identity_of(&mallory_leaf)));
    let running = serve(&server, app).await;
    let alice = client(&pki, Some("alice"));
    let (status, body) = get1(&alice, running.addr, "/public").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello alice"));
    running.stop().await.unwrap();
}
