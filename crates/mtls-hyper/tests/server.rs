//! `mtls_hyper::HttpServer` over real TLS on 127.0.0.1: connection info and identity in
//! request extensions for HTTP/1.1 and HTTP/2, custom principals, anonymous clients,
//! graceful shutdown and stalled handshakes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, Version};
use hyper::body::Incoming;
use mtls::identity::ExtractError;
use mtls::{ConnectionInfo, PeerIdentity, TlsListener};
use mtls_hyper::Connector;
use support::*;

#[tokio::test]
async fn identity_in_extensions_over_http1() {
    let fx = Fixture::new();
    let (addr, _task) = serve_whoami(&fx.server()).await;
    let client = http_client(Connector::new(&fx.client("alice")).http1_only());

    let (head, body) = get(&client, url(addr, "/")).await.unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.version, Version::HTTP_11);
    assert!(body.starts_with("alice|"), "{body}");
}

#[tokio::test]
async fn h2_requests_on_one_connection_share_the_identity() {
    let fx = Fixture::new();
    let (addr, _task) = serve_whoami(&fx.server()).await;
    let client = http_client(Connector::new(&fx.client("alice")));

    let mut bodies = Vec::new();
    for _ in 0..3 {
        let (head, body) = get(&client, url(addr, "/")).await.unwrap();
        assert_eq!(head.version, Version::HTTP_2);
        bodies.push(body);
    }
    // And a few at once, multiplexed on the same connection.
    let handles: Vec<_> = (0..5)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { get(&client, url(addr, "/")).await })
        })
        .collect();
    for handle in handles {
        bodies.push(handle.await.unwrap().unwrap().1);
    }
    assert!(bodies[0].starts_with("alice|"), "{}", bodies[0]);
    // Same remote port (one connection) and the same `Arc<PeerIdentity>` every time.
    assert!(bodies.iter().all(|b| b == &bodies[0]), "{bodies:?}");
}

#[derive(Debug, Clone, PartialEq)]
struct Tenant(String);

#[tokio::test]
async fn custom_extractor_principal_in_extensions() {
    let fx = Fixture::new();
    let server = fx.server();
    let extractor = |id: &Arc<PeerIdentity>| -> Result<Tenant, ExtractError> {
        match id.common_name() {
            Some(cn) if cn != "mallory" => Ok(Tenant(format!("tenant-{cn}"))),
            _ => Err(ExtractError::new("no tenant for this client")),
        }
    };
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = TlsListener::new(tcp, server.acceptor_with(extractor)).unwrap();
    let addr = listener.local_addr();
    let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
        let info = req.extensions().get::<ConnectionInfo<Tenant>>();
        let tenant = info.and_then(ConnectionInfo::principal).cloned();
        let has_identity = req.extensions().get::<Arc<PeerIdentity>>().is_some();
        // The principal is in the connection info, not a request extension of its own.
        let bare_tenant = req.extensions().get::<Tenant>().is_some();
        Ok::<_, Infallible>(Response::new(format!(
            "{tenant:?}|{has_identity}|{bare_tenant}"
        )))
    });
    let _task = tokio::spawn(mtls_hyper::HttpServer::new(listener).serve(service));

    let client = http_client(Connector::new(&fx.client("alice")));
    let (_, body) = get(&client, url(addr, "/")).await.unwrap();
    assert_eq!(body, r#"Some(Tenant("tenant-alice"))|true|false"#);

    // The extractor's refusal closes the connection before any request is served.
    let client = http_client(Connector::new(&fx.client("mallory")));
    assert!(get(&client, url(addr, "/")).await.is_err());
}

#[tokio::test]
async fn connection_info_carries_alpn_generation_and_address() {
    let fx = Fixture::new();
    let server = fx.server();
    let generation = server.handle().generation();
    let listener = listener(&server).await;
    let addr = listener.local_addr();
    let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
        let info = req.extensions().get::<ConnectionInfo>().unwrap();
        let body = format!(
            "{}|{}|{}|{}",
            String::from_utf8_lossy(info.alpn().unwrap_or(b"none")),
            info.generation(),
            info.resumed(),
            info.remote_addr().is_some_and(|a| a.ip().is_loopback()),
        );
        Ok::<_, Infallible>(Response::new(body))
    });
    let _task = tokio::spawn(mtls_hyper::HttpServer::new(listener).serve(service));

    for (connector, alpn) in [
        (Connector::new(&fx.client("alice")), "h2"),
        (Connector::new(&fx.client("bob")).http1_only(), "http/1.1"),
    ] {
        let client = http_client(connector);
        let (_, body) = get(&client, url(addr, "/")).await.unwrap();
        assert_eq!(body, format!("{alpn}|{generation}|false|true"));
    }
}

#[tokio::test]
async fn anonymous_client_has_no_identity_under_optional_auth() {
    let fx = Fixture::new();
    let (addr, _task) = serve_whoami(&fx.optional_server()).await;

    // The request carries the connection info, whose identity is `None`.
    let anonymous = fx.client_builder().build().unwrap();
    let client = http_client(Connector::new(&anonymous));
    let (head, body) = get(&client, url(addr, "/")).await.unwrap();
    assert_eq!(head.status, 200, "{body}");
    assert!(body.starts_with("anonymous|"), "{body}");

    let client = http_client(Connector::new(&fx.client("alice")));
    let (_, body) = get(&client, url(addr, "/")).await.unwrap();
    assert!(body.starts_with("alice|"), "{body}");
}

#[tokio::test]
async fn graceful_shutdown_over_h2_finishes_an_in_flight_request() {
    let fx = Fixture::new();
    let listener = listener(&fx.server()).await;
    let addr = listener.local_addr();
    let (started_tx, mut started_rx) = tokio::sync::mpsc::channel::<()>(1);
    let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
        let started = started_tx.clone();
        async move {
            let _ = started.send(()).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok::<_, Infallible>(Response::new("done".to_owned()))
        }
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mtls_hyper::HttpServer::new(listener).serve_with_shutdown(
        service,
        async {
            let _ = stop_rx.await;
        },
    ));

    let client = http_client(Connector::new(&fx.client("alice")));
    let request = tokio::spawn(async move { get(&client, url(addr, "/slow")).await });
    tokio::time::timeout(TIMEOUT, started_rx.recv())
        .await
        .unwrap()
        .unwrap();
    stop_tx.send(()).unwrap();
    let (head, body) = request.await.unwrap().unwrap();
    assert_eq!(head.version, Version::HTTP_2);
    assert_eq!((head.status.as_u16(), body.as_str()), (200, "done"));
    // serve_with_shutdown returns once the connection has closed.
    tokio::time::timeout(TIMEOUT, server)
        .await
        .expect("server did not finish shutting down")
        .unwrap();
    // And it no longer accepts connections.
    let deadline = Instant::now() + TIMEOUT;
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn graceful_shutdown_over_http1_finishes_an_in_flight_request() {
    let fx = Fixture::new();
    let listener = listener(&fx.server()).await;
    let addr = listener.local_addr();
    let (started_tx, mut started_rx) = tokio::sync::mpsc::channel::<()>(1);
    let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
        let started = started_tx.clone();
        async move {
            let _ = started.send(()).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok::<_, Infallible>(Response::new("done".to_owned()))
        }
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mtls_hyper::HttpServer::new(listener).serve_with_shutdown(
        service,
        async {
            let _ = stop_rx.await;
        },
    ));
    let client = http_client(Connector::new(&fx.client("alice")).http1_only());
    let request = tokio::spawn(async move { get(&client, url(addr, "/slow")).await });
    tokio::time::timeout(TIMEOUT, started_rx.recv())
        .await
        .unwrap()
        .unwrap();
    stop_tx.send(()).unwrap();
    let (head, body) = request.await.unwrap().unwrap();
    assert_eq!(head.version, Version::HTTP_11);
    assert_eq!((head.status.as_u16(), body.as_str()), (200, "done"));
    tokio::time::timeout(TIMEOUT, server)
        .await
        .expect("server did not finish shutting down")
        .unwrap();
}

#[tokio::test]
async fn grace_period_closes_connections_that_do_not_finish() {
    let fx = Fixture::new();
    let listener = listener(&fx.server()).await;
    let addr = listener.local_addr();
    let (service, mut started_rx) = hanging_service();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        mtls_hyper::HttpServer::new(listener)
            .grace_period(Duration::from_millis(200))
            .serve_with_shutdown(service, async {
                let _ = stop_rx.await;
            }),
    );
    let client = http_client(Connector::new(&fx.client("alice")));
    let request = tokio::spawn(async move { get(&client, url(addr, "/hang")).await });
    tokio::time::timeout(TIMEOUT, started_rx.recv())
        .await
        .unwrap()
        .unwrap();
    let stopped_at = Instant::now();
    stop_tx.send(()).unwrap();
    tokio::time::timeout(TIMEOUT, server)
        .await
        .expect("server did not stop after the grace period")
        .unwrap();
    assert!(stopped_at.elapsed() >= Duration::from_millis(200));
    assert!(
        request.await.unwrap().is_err(),
        "the hung request was not cut off"
    );
}

#[tokio::test]
async fn stalled_handshakes_do_not_block_other_clients() {
    let fx = Fixture::new();
    // A long handshake timeout: the stalled clients stay in their handshakes throughout.
    let server = fx
        .server_builder()
        .handshake_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let listener = listener(&server).await;
    let stats = listener.stats();
    let addr = listener.local_addr();
    let _task = tokio::spawn(
        mtls_hyper::HttpServer::new(listener).serve(hyper::service::service_fn(whoami)),
    );

    // TCP clients that connect and never send a ClientHello.
    let mut stalled = Vec::new();
    for _ in 0..3 {
        stalled.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let deadline = Instant::now() + TIMEOUT;
    while stats.accepted() < 3 {
        assert!(
            Instant::now() < deadline,
            "stalled connections not accepted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let started = Instant::now();
    for (name, connector) in [
        ("alice", Connector::new(&fx.client("alice"))),
        ("bob", Connector::new(&fx.client("bob")).http1_only()),
    ] {
        let client = http_client(connector);
        let (_, body) = get(&client, url(addr, "/")).await.unwrap();
        assert!(body.starts_with(&format!("{name}|")), "{body}");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(stats.handshakes_timed_out(), 0);
    drop(stalled);
}

#[tokio::test]
async fn dropping_the_serve_future_closes_every_connection() {
    let fx = Fixture::new();
    let listener = listener(&fx.server()).await;
    let addr = listener.local_addr();
    let (service, mut started_rx) = hanging_service();
    let server = tokio::spawn(mtls_hyper::HttpServer::new(listener).serve(service));
    let client = http_client(Connector::new(&fx.client("alice")).http1_only());
    let request = tokio::spawn(async move { get(&client, url(addr, "/hang")).await });
    tokio::time::timeout(TIMEOUT, started_rx.recv())
        .await
        .unwrap()
        .unwrap();
    // The connection is served in a task of its own; dropping the serve future must
    // still end it.
    server.abort();
    let outcome = tokio::time::timeout(TIMEOUT, request)
        .await
        .expect("the connection outlived the dropped server")
        .unwrap();
    assert!(outcome.is_err(), "{outcome:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener still accepts"
    );
}

/// A service whose requests never finish; the receiver hears of each request started.
fn hanging_service() -> (
    impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<String>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static,
    tokio::sync::mpsc::Receiver<()>,
) {
    let (started_tx, started_rx) = tokio::sync::mpsc::channel::<()>(1);
    let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
        let started = started_tx.clone();
        async move {
            let _ = started.send(()).await;
            std::future::pending::<()>().await;
            Ok::<_, Infallible>(Response::new(String::new()))
        }
    });
    (service, started_rx)
}
