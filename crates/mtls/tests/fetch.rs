//! CRLs fetched over HTTP (feature `fetch`), over real loopback TLS: from the
//! distribution point in the client certificates and in the CA certificates (configured,
//! or sent in a client's chain), refreshed without touching the server, and from the
//! on-disk last good copy when the URL is down at start.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ask, serve};
use mtls::{Client, Policy, Server};
use mtls_testing::{Ca, Crl, Leaf, TestPki};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A one-file HTTP/1.1 server on 127.0.0.1: every GET gets `body`, or 503 when it is
/// `None`. Counts the requests.
struct CrlServer {
    addr: SocketAddr,
    body: Arc<Mutex<Option<Vec<u8>>>>,
    hits: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CrlServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CrlServer {
    async fn start() -> Self {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let body: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let hits: Arc<Mutex<usize>> = Arc::default();
        let (b, h) = (body.clone(), hits.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = tcp.accept().await else {
                    return;
                };
                let (b, h) = (b.clone(), h.clone());
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16384 {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    *h.lock().unwrap() += 1;
                    let body = b.lock().unwrap().clone();
                    let response = match body {
                        Some(body) => {
                            let mut r = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\n\
                                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .into_bytes();
                            r.extend_from_slice(&body);
                            r
                        }
                        None => b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\
                                  Connection: close\r\n\r\n"
                            .to_vec(),
                    };
                    let _ = s.write_all(&response).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        Self {
            addr,
            body,
            hits,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/intermediate.crl", self.addr)
    }

    fn publish(&self, crl: &Crl) {
        *self.body.lock().unwrap() = Some(crl.der());
    }

    fn hits(&self) -> usize {
        *self.hits.lock().unwrap()
    }
}

fn crl(ca: &Ca, revoked: &[&Leaf], number: u64) -> Crl {
    let serials: Vec<Vec<u8>> = revoked.iter().map(|l| l.serial()).collect();
    let serials: Vec<&[u8]> = serials.iter().map(Vec::as_slice).collect();
    let now = OffsetDateTime::now_utc();
    ca.crl_with(
        &serials,
        now - time::Duration::minutes(1) + time::Duration::seconds(number as i64),
        now + time::Duration::days(7),
        number,
    )
}

fn client_of(pki: &TestPki, leaf: &Leaf, name: &str) -> Client {
    let files = leaf.write(pki.dir.path(), name);
    Client::builder()
        .identity(files.cert, files.key)
        .ca(pki.ca_file())
        .build()
        .unwrap()
}

fn server(pki: &TestPki, cache: &Path) -> mtls::ServerBuilder {
    let (_, sf) = pki.server("localhost");
    Server::builder()
        .identity(&sf.cert, &sf.key)
        .client_ca(pki.ca_file())
        .policy(Policy::any_verified())
        .crl_cache_dir(cache)
        .crl_refresh(Duration::from_millis(200), Duration::from_millis(500))
}

/// Waits (bounded) until `server` has `n` CRLs in force.
async fn crls_in_force(server: &Server, n: usize) {
    for _ in 0..100 {
        if server.handle().status().crls.len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no fetched CRL came into force within 5 s");
}

#[tokio::test]
async fn a_revocation_published_at_the_distribution_point_is_enforced_within_a_refresh() {
    let http = CrlServer::start().await;
    let pki = TestPki::new();
    let dp = http.url();
    let alice = pki
        .intermediate
        .leaf("alice")
        .client()
        .crl_distribution_point(&dp)
        .build();
    let bob = pki
        .intermediate
        .leaf("bob")
        .client()
        .crl_distribution_point(&dp)
        .build();
    http.publish(&crl(&pki.intermediate, &[], 1));
    let cache = tempfile::tempdir().unwrap();
    let server = server(&pki, cache.path())
        .crl_from_distribution_points()
        .build()
        .unwrap();
    let srv = serve(&server).await;
    let (alice_c, bob_c) = (
        client_of(&pki, &alice, "alice"),
        client_of(&pki, &bob, "bob"),
    );
    // First sight of a certificate whose distribution point is new: it is fetched.
    assert!(ask(&alice_c, srv.addr).await.unwrap().contains("alice"));
    crls_in_force(&server, 1).await;
    assert!(ask(&bob_c, srv.addr).await.unwrap().contains("bob"));

    // Revoke bob at the URL only; the server is not touched.
    http.publish(&crl(&pki.intermediate, &[&bob], 2));
    let mut refused = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if ask(&bob_c, srv.addr).await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(
        refused,
        "bob still admitted 2 s after his revocation was published"
    );
    assert!(ask(&alice_c, srv.addr).await.unwrap().contains("alice"));
    assert!(http.hits() >= 2);
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn a_server_started_while_the_url_is_down_uses_the_last_good_crl_on_disk() {
    let http = CrlServer::start().await;
    let pki = TestPki::new();
    let alice = pki.intermediate.leaf("alice").client().build();
    let bob = pki.intermediate.leaf("bob").client().build();
    http.publish(&crl(&pki.intermediate, &[&bob], 1));
    let cache = tempfile::tempdir().unwrap();
    let url = http.url();
    {
        let first = server(&pki, cache.path()).crl_url(&url).build().unwrap();
        crls_in_force(&first, 1).await;
    }
    // The URL goes down (503), then the server restarts.
    *http.body.lock().unwrap() = None;
    let second = server(&pki, cache.path()).crl_url(&url).build().unwrap();
    assert_eq!(
        second.handle().status().crls.len(),
        1,
        "the cached CRL is loaded"
    );
    let srv = serve(&second).await;
    let (alice_c, bob_c) = (
        client_of(&pki, &alice, "alice"),
        client_of(&pki, &bob, "bob"),
    );
    assert!(ask(&alice_c, srv.addr).await.unwrap().contains("alice"));
    assert!(
        ask(&bob_c, srv.addr).await.is_err(),
        "bob is revoked by the cached CRL"
    );
    // The failed refreshes change nothing.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(ask(&bob_c, srv.addr).await.is_err());
    assert!(second.handle().status().last_error.is_none());
}

#[tokio::test]
async fn a_fetched_crl_from_an_unknown_issuer_is_refused_and_nothing_is_cached() {
    let http = CrlServer::start().await;
    let pki = TestPki::new();
    let stranger = Ca::root("stranger");
    http.publish(&stranger.crl(&[]));
    let cache = tempfile::tempdir().unwrap();
    let server = server(&pki, cache.path())
        .crl_url(http.url())
        .build()
        .unwrap();
    for _ in 0..100 {
        if http.hits() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(http.hits() >= 2, "the URL was not fetched (again)");
    assert!(server.handle().status().crls.is_empty());
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
}

#[test]
fn crl_urls_need_a_cache_directory_and_a_runtime() {
    let pki = TestPki::new();
    let (_, sf) = pki.server("localhost");
    let base = || {
        Server::builder()
            .identity(&sf.cert, &sf.key)
            .client_ca(pki.ca_file())
            .policy(Policy::any_verified())
            .crl_url("http://127.0.0.1:9/x.crl")
    };
    let e = base().build().unwrap_err().to_string();
    assert!(e.contains("crl_cache_dir"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let e = base()
        .crl_cache_dir(dir.path())
        .build()
        .unwrap_err()
        .to_string();
    assert!(e.contains("tokio runtime"), "{e}");
}

fn root_crl(root: &Ca, revoked: &[&[u8]], number: u64) -> Crl {
    let now = OffsetDateTime::now_utc();
    root.crl_with(
        revoked,
        now - time::Duration::minutes(2) + time::Duration::seconds(number as i64),
        now + time::Duration::days(7),
        number,
    )
}

#[tokio::test]
async fn the_distribution_point_of_a_configured_ca_is_fetched_at_load() {
    let http = CrlServer::start().await;
    let root = Ca::root("dp root");
    // The intermediate names where its issuer's CRL (the root's) is published.
    let intermediate = root.intermediate_with_crl_dp("dp intermediate", &http.url());
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("cas.pem"),
        root.cert_pem() + &intermediate.cert_pem(),
    )
    .unwrap();
    let server_leaf = root
        .leaf("localhost")
        .server()
        .dns("localhost")
        .build()
        .write(d.path(), "server");
    http.publish(&root_crl(&root, &[], 1));
    let cache = tempfile::tempdir().unwrap();
    let server = Server::builder()
        .identity(&server_leaf.cert, &server_leaf.key)
        .client_ca(d.path().join("cas.pem"))
        .policy(Policy::any_verified())
        .crl_from_distribution_points()
        .crl_cache_dir(cache.path())
        .build()
        .unwrap();
    // Before any client: the configured intermediate's distribution point was followed.
    crls_in_force(&server, 1).await;
    assert_eq!(http.hits(), 1);
}

#[tokio::test]
async fn the_distribution_point_of_a_ca_in_a_client_chain_revokes_that_ca() {
    let http = CrlServer::start().await;
    let root = Ca::root("dp root");
    let intermediate = root.intermediate_with_crl_dp("dp intermediate", &http.url());
    let d = tempfile::tempdir().unwrap();
    let server_leaf = root
        .leaf("localhost")
        .server()
        .dns("localhost")
        .build()
        .write(d.path(), "server");
    let alice = intermediate
        .leaf("alice")
        .client()
        .build()
        .write(d.path(), "alice");
    let ca = root.write_cert(d.path(), "root.pem");
    http.publish(&root_crl(&root, &[], 1));
    let cache = tempfile::tempdir().unwrap();
    let server = Server::builder()
        .identity(&server_leaf.cert, &server_leaf.key)
        .client_ca(&ca)
        .policy(Policy::any_verified())
        .revocation_check_whole_chain()
        .allow_unknown_revocation_status()
        .crl_from_distribution_points()
        .crl_cache_dir(cache.path())
        .crl_refresh(Duration::from_millis(200), Duration::from_millis(500))
        .build()
        .unwrap();
    let srv = serve(&server).await;
    let client = Client::builder()
        .identity(alice.cert, alice.key)
        .ca(&ca)
        .build()
        .unwrap();
    // Alice's chain carries the intermediate, whose distribution point is then fetched.
    assert!(ask(&client, srv.addr).await.unwrap().contains("alice"));
    crls_in_force(&server, 1).await;
    // The root revokes the intermediate at that URL: its clients are refused.
    http.publish(&root_crl(&root, &[&intermediate.serial()], 2));
    let mut refused = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if ask(&client, srv.addr).await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(
        refused,
        "alice still admitted after her CA was revoked at its DP"
    );
}
