//! Handshake floods over real loopback TCP: idle connections that never send a byte must
//! not push a slow but legitimate client out of the handshake cap, connections that stay
//! silent (or stop halfway through their ClientHello) are closed at the ClientHello
//! deadline, and the per-source cap closes what one address opens beyond it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{HelloServer, serve_hello};

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mtls::rustls::pki_types::ServerName;
use mtls::{Client, ListenerOptions, Policy, Server};
use mtls_testing::TestPki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// A listener that answers `hello` on every connection it hands out.
async fn start(pki: &TestPki, hello_timeout: Duration, options: ListenerOptions) -> HelloServer {
    let (_, sf) = pki.server("localhost");
    let server = Server::builder()
        .identity(&sf.cert, &sf.key)
        .client_ca(pki.ca_file())
        .policy(Policy::any_verified())
        .handshake_timeout(Duration::from_secs(10))
        .client_hello_timeout(hello_timeout)
        .build()
        .unwrap();
    serve_hello(server.acceptor(), options).await
}

fn client(pki: &TestPki) -> Client {
    let (_, f) = pki.client("slow");
    Client::builder()
        .identity(f.cert, f.key)
        .ca(pki.ca_file())
        .build()
        .unwrap()
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

/// Forwards one connection to `server`, delaying everything the client sends by `delay`
/// per write: a client on a slow network.
async fn slow_proxy(server: SocketAddr, delay: Duration) -> SocketAddr {
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = front.local_addr().unwrap();
    tokio::spawn(async move {
        let (client, _) = front.accept().await.unwrap();
        let upstream = TcpStream::connect(server).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut ur, mut uw) = upstream.into_split();
        let up = async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n @ 1..) = cr.read(&mut buf).await {
                tokio::time::sleep(delay).await;
                if uw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = uw.shutdown().await;
        };
        let down = async move {
            let _ = tokio::io::copy(&mut ur, &mut cw).await;
            let _ = cw.shutdown().await;
        };
        tokio::join!(up, down);
    });
    addr
}

/// Reads until the peer closes; `Some(bytes)` when it closes within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    tokio::time::timeout(within, s.read_to_end(&mut got))
        .await
        .ok()
        .map(|_| got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_completes_while_idle_connections_flood_the_cap() {
    let pki = TestPki::new();
    // The setting of the report: a cap of 8, a client taking 300 ms per write, 80 idle
    // connects per second.
    let srv = start(
        &pki,
        Duration::from_secs(5),
        ListenerOptions::default().max_handshakes(8),
    )
    .await;
    let proxy = slow_proxy(srv.addr, Duration::from_millis(300)).await;

    let flood_addr = srv.addr;
    let flood = tokio::spawn(async move {
        let mut held = Vec::new();
        // Bounded: at most 6 s of flooding, 480 connections.
        for _ in 0..480 {
            if let Ok(s) = TcpStream::connect(flood_addr).await {
                held.push(s);
            }
            tokio::time::sleep(Duration::from_millis(12)).await;
        }
        held
    });
    // Let the flood fill the cap (its connections start evicting each other) before the
    // slow client starts: waited for, not slept, so a loaded machine cannot start the
    // client early (bounded: 5 s).
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.stats.handshakes_evicted() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = Instant::now();
    let slow = client(&pki);
    let outcome = tokio::time::timeout(Duration::from_secs(8), async {
        let mut tls = slow.connect_to(proxy, localhost()).await?;
        let mut line = String::new();
        tls.read_to_string(&mut line).await?;
        std::io::Result::Ok(line)
    })
    .await;
    flood.abort();
    let line = outcome
        .expect("the slow client did not finish within 8 s")
        .expect("the slow client's handshake failed during the flood");
    assert_eq!(line, "hello\n");
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "the client was not slow ({:?}): the test proves nothing",
        started.elapsed()
    );
    assert!(
        srv.stats.handshakes_evicted() > 0,
        "the flood never reached the cap: the test proves nothing"
    );
}

#[tokio::test]
async fn silent_and_stalled_connections_are_closed_at_the_client_hello_deadline() {
    let pki = TestPki::new();
    let srv = start(&pki, Duration::from_millis(300), ListenerOptions::default()).await;

    // Sends nothing at all.
    let mut silent = TcpStream::connect(srv.addr).await.unwrap();
    // Starts a ClientHello (a handshake record header announcing 200 bytes, and a few of
    // them) and stops.
    let mut stalled = TcpStream::connect(srv.addr).await.unwrap();
    stalled
        .write_all(&[
            0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03,
        ])
        .await
        .unwrap();

    let started = Instant::now();
    for s in [&mut silent, &mut stalled] {
        assert!(
            closed_within(s, Duration::from_secs(3)).await.is_some(),
            "a connection without a whole ClientHello was kept past the deadline"
        );
    }
    // Well before the 10 s handshake timeout.
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(srv.stats.handshakes_timed_out(), 2);

    // A client that does send its ClientHello in time is served as usual.
    let mut tls = client(&pki)
        .connect_to(srv.addr, localhost())
        .await
        .unwrap();
    let mut line = String::new();
    tls.read_to_string(&mut line).await.unwrap();
    assert_eq!(line, "hello\n");
}

#[tokio::test]
async fn the_per_source_cap_closes_what_one_address_opens_beyond_it() {
    let pki = TestPki::new();
    let srv = start(
        &pki,
        Duration::from_secs(5),
        ListenerOptions::default().max_handshakes_per_source(2),
    )
    .await;
    let from = |ip: [u8; 4]| async move {
        let socket = TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::from((ip, 0)))
            .expect("bind a loopback source address");
        socket.connect(srv.addr).await.unwrap()
    };
    let _a = from([127, 0, 0, 1]).await;
    let _b = from([127, 0, 0, 1]).await;
    let mut third = from([127, 0, 0, 1]).await;
    assert!(
        closed_within(&mut third, Duration::from_secs(2))
            .await
            .is_some(),
        "a third handshake from the same address was kept"
    );
    assert_eq!(srv.stats.refused_per_source(), 1);

    // Another address is not affected, and neither is this one once its handshakes end.
    let other = from([127, 0, 0, 2]).await;
    let mut tls = client(&pki).handshake(other, localhost()).await.unwrap();
    let mut line = String::new();
    tls.read_to_string(&mut line).await.unwrap();
    assert_eq!(line, "hello\n");
    drop((_a, _b));
    let mut served = false;
    for _ in 0..50 {
        let again = from([127, 0, 0, 1]).await;
        if let Ok(mut tls) = client(&pki).handshake(again, localhost()).await {
            let mut line = String::new();
            if tls.read_to_string(&mut line).await.is_ok() && line == "hello\n" {
                served = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        served,
        "the address stayed capped after its handshakes ended"
    );
}

#[tokio::test]
async fn connect_times_out_on_a_server_that_accepts_tcp_and_says_nothing() {
    let pki = TestPki::new();
    let mute = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = mute.local_addr().unwrap();
    // Accepts and holds every connection, never writing a byte.
    let _holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = mute.accept().await {
            held.push(s);
        }
    });
    let (_, f) = pki.client("patient");
    let client = Client::builder()
        .identity(f.cert, f.key)
        .ca(pki.ca_file())
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(5), client.connect_to(addr, localhost()))
        .await
        .expect("Client::connect hung past its timeout")
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    let timeout = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<mtls::ConnectTimeout>())
        .expect("the source is a ConnectTimeout");
    assert_eq!(timeout.after, Duration::from_millis(300));
    assert!(err.to_string().contains("connect_timeout"), "{err}");
}
