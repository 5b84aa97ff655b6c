//! Hostile clients: stalled handshakes beyond the cap, a huge certificate chain, a client
//! that disconnects mid-handshake, garbage instead of a ClientHello. The server keeps
//! serving good clients throughout, and what it holds stays bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{HelloServer, ask, ask_raw, raw_client, serve_hello};
use mtls::{Client, ListenerOptions, Policy, Server, TlsListener};
use mtls_testing::TestPki;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn server(pki: &TestPki) -> Server {
    let (_, sf) = pki.server("localhost");
    Server::builder()
        .identity(&sf.cert, &sf.key)
        .client_ca(pki.ca_file())
        .policy(Policy::any_verified())
        .build()
        .unwrap()
}

async fn start(pki: &TestPki, cap: usize, timeout: Duration) -> HelloServer {
    serve_hello(
        server(pki).acceptor().with_timeout(timeout),
        ListenerOptions::default().max_handshakes(cap),
    )
    .await
}

fn good_client(pki: &TestPki) -> Client {
    let (_, f) = pki.client("good");
    Client::builder()
        .identity(f.cert, f.key)
        .ca(pki.ca_file())
        .build()
        .unwrap()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_beyond_the_cap_do_not_lock_out_a_good_client() {
    let pki = TestPki::new();
    let srv = start(&pki, 16, Duration::from_secs(30)).await;
    let client = good_client(&pki);
    // 64 connections that never send a byte: four times the cap.
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(TcpStream::connect(srv.addr).await.unwrap());
    }
    for round in 0..5 {
        assert_eq!(
            ask(&client, srv.addr).await.unwrap(),
            "hello",
            "round {round}"
        );
        // More stallers keep arriving between the good requests.
        for _ in 0..16 {
            idle.push(TcpStream::connect(srv.addr).await.unwrap());
        }
    }
    assert!(
        srv.stats.handshakes_evicted() > 0,
        "the cap was never reached"
    );
    assert!(srv.stats.handshakes_ok() >= 5);
    drop(idle);
}

#[tokio::test]
async fn stalled_handshakes_time_out() {
    let pki = TestPki::new();
    let srv = start(&pki, 64, Duration::from_millis(300)).await;
    let _idle: Vec<_> = open_idle(3, srv.addr).await;
    assert!(
        common::eventually(5, async || srv.stats.handshakes_timed_out() >= 3).await,
        "{:?}",
        srv.stats
    );
}

async fn open_idle(n: usize, addr: std::net::SocketAddr) -> Vec<TcpStream> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(TcpStream::connect(addr).await.unwrap());
    }
    v
}

#[tokio::test]
async fn a_huge_certificate_chain_is_refused_and_the_server_keeps_serving() {
    let pki = TestPki::new();
    let srv = start(&pki, 64, Duration::from_secs(5)).await;
    let (_, f) = pki.client("huge");
    // The leaf followed by 300 copies of the intermediate: a Certificate message far over
    // what the server accepts.
    let mut chain = mtls::pem::load_certs(&f.cert).unwrap();
    let inter = chain[1].clone();
    chain.extend(std::iter::repeat_n(inter, 300));
    let provider = common::provider();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(mtls::pem::load_certs(pki.ca_file()).unwrap().remove(0))
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, mtls::pem::load_key(&f.key).unwrap())
        .unwrap();
    assert!(ask_raw(Arc::new(cfg), srv.addr).await.is_err());
    assert_eq!(ask(&good_client(&pki), srv.addr).await.unwrap(), "hello");
    assert!(common::eventually(5, async || srv.stats.handshakes_failed() >= 1).await);
}

#[tokio::test]
async fn disconnects_mid_handshake_and_garbage_do_not_hurt() {
    let pki = TestPki::new();
    let srv = start(&pki, 64, Duration::from_secs(5)).await;
    let client = good_client(&pki);
    // A real ClientHello, cut off in the middle.
    let hello = capture_client_hello(&pki).await;
    for cut in [1, 5, hello.len() / 2, hello.len() - 1] {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(&hello[..cut]).await.unwrap();
        drop(s);
    }
    // Garbage instead of a ClientHello, including an HTTP request.
    for junk in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00][..],
        &[0u8; 4096][..],
    ] {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        let _ = s.write_all(junk).await;
        let _ = s.shutdown().await;
    }
    assert_eq!(ask(&client, srv.addr).await.unwrap(), "hello");
    assert!(
        common::eventually(5, async || srv.stats.handshakes_failed() >= 7).await,
        "{:?}",
        srv.stats
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_under_many_hostile_connections() {
    let pki = TestPki::new();
    let srv = start(&pki, 32, Duration::from_millis(500)).await;
    let client = good_client(&pki);
    assert_eq!(ask(&client, srv.addr).await.unwrap(), "hello");
    let before = rss_kib();
    for wave in 0..5 {
        let mut conns = Vec::new();
        for i in 0..200 {
            let mut s = TcpStream::connect(srv.addr).await.unwrap();
            if i % 2 == 0 {
                let _ = s.write_all(&[0x16, 0x03, 0x01, 0x40, 0x00]).await; // promises 16 KiB
            }
            conns.push(s);
        }
        assert_eq!(
            ask(&client, srv.addr).await.unwrap(),
            "hello",
            "wave {wave}"
        );
        drop(conns);
    }
    let grown = rss_kib().saturating_sub(before);
    // 1,000 hostile connections, at most 32 handshakes held at once: growth stays far below
    // what holding them all would cost.
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
    assert!(srv.stats.handshakes_evicted() > 0);
}

/// The first flight of a real client, as bytes.
async fn capture_client_hello(pki: &TestPki) -> Vec<u8> {
    let cfg = raw_client(&pki.ca_file(), None);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

#[tokio::test]
async fn dropping_the_listener_drops_the_handshakes_in_progress() {
    use tokio::io::AsyncReadExt;
    let pki = TestPki::new();
    let srv = start(&pki, 64, Duration::from_secs(60)).await;
    let mut stalled = open_idle(3, srv.addr).await;
    assert!(
        common::eventually(5, async || srv.stats.accepted() >= 3).await,
        "{:?}",
        srv.stats
    );
    // Dropping `Running` aborts the task that owns the listener.
    drop(srv);
    for s in &mut stalled {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the stalled handshake was still held after the listener was dropped");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
}

#[tokio::test]
async fn a_handler_serves_connections_where_they_were_accepted() {
    let pki = TestPki::new();
    let server = server(&pki);
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut listener = TlsListener::new(tcp, server.acceptor()).unwrap();
    let addr = listener.local_addr();
    let stats = listener.stats();
    let client = good_client(&pki);

    // A connection that finishes its handshake before the handler is installed waits in
    // the queue for `accept`.
    let early = tokio::spawn({
        let client = client.clone();
        async move { ask(&client, addr).await }
    });
    assert!(
        common::eventually(5, async || stats.handshakes_ok() >= 1).await,
        "{stats:?}"
    );

    let handled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    listener.handle_with({
        let handled = handled.clone();
        move |mut conn: mtls::Accepted<_>| {
            let handled = handled.clone();
            async move {
                handled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let cn = conn
                    .peer
                    .identity()
                    .and_then(|id| id.common_name())
                    .unwrap_or("?")
                    .to_owned();
                let _ = conn
                    .stream
                    .write_all(format!("handler {cn}\n").as_bytes())
                    .await;
                let _ = conn.stream.shutdown().await;
            }
        }
    });
    for _ in 0..3 {
        assert_eq!(ask(&client, addr).await.unwrap(), "handler good");
    }
    assert_eq!(handled.load(std::sync::atomic::Ordering::SeqCst), 3);

    let mut queued = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("the early connection was not queued");
    queued.stream.write_all(b"queued\n").await.unwrap();
    queued.stream.shutdown().await.unwrap();
    assert_eq!(early.await.unwrap().unwrap(), "queued");

    // Back to queueing.
    listener.clear_handler();
    let late = tokio::spawn(async move { ask(&client, addr).await });
    let mut conn = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("no connection queued after clear_handler");
    conn.stream.write_all(b"queued again\n").await.unwrap();
    conn.stream.shutdown().await.unwrap();
    assert_eq!(late.await.unwrap().unwrap(), "queued again");
    assert_eq!(handled.load(std::sync::atomic::Ordering::SeqCst), 3);
}
