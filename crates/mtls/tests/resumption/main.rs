//! Session resumption must never outlive trust: reproductions over real loopback TCP.
//!
//! Each test drives the public API (a [`TlsListener`] over `Server::acceptor()`, the
//! reload handle, [`Client`]) and asserts on what a peer gets: whether a connection is
//! handed out by the listener, with which generation and chain, and whether a client's
//! next connection is refused. Every scenario that depends on resumption first proves, in a
//! control run without the trust change, that resumption really happens there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{ask, provider};
use mtls::rustls;
use mtls::rustls::HandshakeKind;
use mtls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use mtls::{Client, Denied, PeerIdentity, Policy, Server, TlsListener, TlsVersion};
use mtls_testing::{Ca, KeyAlg, Leaf, TestPki};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};

use support::*;

/// Upper bound for any single network step of these tests.
const STEP: Duration = Duration::from_secs(10);
/// How long to wait for the listener to hand out a connection that should not exist.
const QUIET: Duration = Duration::from_millis(400);

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

// === Finding 1: a client that holds back its Finished across a trust change ===

/// What the operator changes while a client's Finished is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TrustChange {
    /// Nothing (the control run).
    None,
    /// `set_policy` to a policy that refuses the client.
    TightenPolicy,
    /// The CA file is replaced by an unrelated CA, then `reload()`.
    RemoveCa,
    /// The (initially empty) CRL is replaced by one revoking the client, then `reload()`.
    RevokeByCrl,
}

/// A policy admitting only `alice`, which signals every time it admits her: the test
/// waits for it to know the server has verified her certificate.
fn alice_probe(verified: Arc<Notify>) -> Policy {
    Policy::custom("alice-probe", move |id: &PeerIdentity| {
        if id.common_name() == Some("alice") {
            verified.notify_one();
            Ok(())
        } else {
            Err(Denied::new("alice-probe", "only alice"))
        }
    })
}

fn apply(
    change: TrustChange,
    server: &Server,
    pki: &TestPki,
    alice: &Leaf,
    cas: &Path,
    crl: &Path,
) {
    let handle = server.handle();
    match change {
        TrustChange::None => {}
        TrustChange::TightenPolicy => {
            handle.set_policy("cn:bob".parse().unwrap()).unwrap();
        }
        TrustChange::RemoveCa => {
            std::fs::write(cas, Ca::root("replacement root").cert_pem()).unwrap();
            handle.reload().unwrap();
        }
        TrustChange::RevokeByCrl => {
            std::fs::write(crl, pki.intermediate.crl(&[alice]).pem()).unwrap();
            handle.reload().unwrap();
        }
    }
}

/// Alice starts a full handshake, the server verifies her certificate, and she holds back
/// her Finished; the operator applies `change`; she releases Finished, then connects
/// again, which tries to resume the session the first connection made.
async fn finished_held_across(version: TlsVersion, change: TrustChange) {
    let label = format!("{version:?}, {change:?}");
    let pki = TestPki::new();
    let dir = pki.dir.path();
    let cas = dir.join("client-cas.pem");
    std::fs::write(&cas, pki.root.cert_pem()).unwrap();
    let crl = dir.join("client.crl");
    std::fs::write(&crl, pki.intermediate.crl(&[]).pem()).unwrap();
    let (_, sf) = pki.server("localhost");
    let verified = Arc::new(Notify::new());
    let server = Server::builder()
        .identity(&sf.cert, &sf.key)
        .client_ca(&cas)
        .crl(&crl)
        .policy(alice_probe(verified.clone()))
        .build()
        .unwrap();
    let mut rec = Recorder::start(&server).await;

    let alice = pki
        .intermediate
        .leaf("alice")
        .client()
        .key_alg(KeyAlg::Ed25519)
        .build();
    let af = alice.write(dir, "alice");
    let client = Client::builder()
        .identity(&af.cert, &af.key)
        .ca(pki.ca_file())
        .tls_versions(&[version])
        .build()
        .unwrap();
    // The same resumption store as `client`, with Finished in a record of its own.
    let mut config = rustls::ClientConfig::clone(&client.current_config());
    config.max_fragment_size = Some(5 + tls13_finished_offset(&alice.chain_der()));
    let config = Arc::new(config);

    let held = HeldFinished::connect(config.clone(), rec.addr).await;
    if tokio::time::timeout(Duration::from_secs(3), verified.notified())
        .await
        .is_err()
    {
        eprintln!("{label}: the policy did not run before Finished; going on anyway");
    }
    let before = server.handle().generation();
    apply(change, &server, &pki, &alice, &cas, &crl);
    let after = server.handle().generation();
    let released = held.release().await;
    let first = rec.next(QUIET).await;
    eprintln!("{label}: held connection: {released:?}, handed out as {first:?}");

    let second_attempt = attempt(config, rec.addr).await;
    let second = rec.next(QUIET).await;
    eprintln!("{label}: next connection: {second_attempt:?}, handed out as {second:?}");

    if change == TrustChange::None {
        assert!(
            released.answer == "ok" && released.error.is_none(),
            "control: {released:?}"
        );
        let first = first.expect("control: the held connection was not handed out");
        assert_eq!(first.generation, before, "control: {first:?}");
        assert_eq!(
            (first.subject.as_str(), first.chain_len),
            ("CN=alice", 2),
            "control"
        );
        assert!(!first.resumed, "control: {first:?}");
        assert_eq!(second_attempt.answer.as_deref(), Ok("ok"), "control");
        let second = second.expect("control: the next connection was not handed out");
        assert!(
            second.resumed,
            "control ({label}): the next connection did not resume, so this test would prove \
             nothing: {second:?}"
        );
        return;
    }
    assert!(after > before, "{label}: the change was not applied");
    let mut violations = Vec::new();
    if let Some(first) = &first
        && first.generation != before
    {
        violations.push(format!(
            "the connection verified under generation {before} whose Finished was held across \
             the change was handed out as generation {} ({first:?})",
            first.generation
        ));
    }
    if let Some(second) = &second {
        violations.push(format!(
            "the next connection after the change was handed out (resumed: {}, generation {}, \
             client saw {:?})",
            second.resumed, second.generation, second_attempt.handshake
        ));
    }
    assert!(violations.is_empty(), "{label}: {}", violations.join("; "));
}

#[tokio::test]
async fn control_finished_held_without_trust_change_resumes_tls13() {
    finished_held_across(TlsVersion::Tls13, TrustChange::None).await;
}

#[tokio::test]
async fn control_finished_held_without_trust_change_resumes_tls12() {
    finished_held_across(TlsVersion::Tls12, TrustChange::None).await;
}

#[tokio::test]
async fn finished_held_across_policy_tightening_tls13() {
    finished_held_across(TlsVersion::Tls13, TrustChange::TightenPolicy).await;
}

#[tokio::test]
async fn finished_held_across_policy_tightening_tls12() {
    finished_held_across(TlsVersion::Tls12, TrustChange::TightenPolicy).await;
}

#[tokio::test]
async fn finished_held_across_ca_removal_tls13() {
    finished_held_across(TlsVersion::Tls13, TrustChange::RemoveCa).await;
}

#[tokio::test]
async fn finished_held_across_ca_removal_tls12() {
    finished_held_across(TlsVersion::Tls12, TrustChange::RemoveCa).await;
}

#[tokio::test]
async fn finished_held_across_crl_revocation_tls13() {
    finished_held_across(TlsVersion::Tls13, TrustChange::RevokeByCrl).await;
}

#[tokio::test]
async fn finished_held_across_crl_revocation_tls12() {
    finished_held_across(TlsVersion::Tls12, TrustChange::RevokeByCrl).await;
}

// === Finding 2: a TLS 1.3 ticket that reaches the client after its reload ===

/// A TLS 1.3 server (plain rustls, no client auth) with default tickets, answering every
/// line with its name.
struct RawServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawServer {
    async fn start(leaf: &Leaf) -> Self {
        let chain = leaf
            .chain_der()
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der()));
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let name = leaf.common_name().to_owned();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let (io, _) = tcp.accept().await.unwrap();
                let (acceptor, name) = (acceptor.clone(), name.clone());
                tokio::spawn(async move {
                    use tokio::io::AsyncBufReadExt;
                    let Ok(tls) = acceptor.accept(io).await else {
                        return;
                    };
                    let (r, mut w) = tokio::io::split(tls);
                    let mut lines = tokio::io::BufReader::new(r).lines();
                    while let Ok(Some(_)) = lines.next_line().await {
                        if w.write_all(format!("{name}\n").as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { addr, task }
    }
}

/// Reads one whole TLS record.
async fn read_record<R: AsyncRead + Unpin>(r: &mut R) -> Option<Vec<u8>> {
    let mut record = vec![0u8; 5];
    r.read_exact(&mut record).await.ok()?;
    let len = usize::from(u16::from_be_bytes([record[3], record[4]]));
    record.resize(5 + len, 0);
    r.read_exact(&mut record[5..]).await.ok()?;
    Some(record)
}

/// A TCP proxy for one connection that forwards whole TLS records and, from the moment
/// the client sends its first encrypted record (its Finished), holds back everything the
/// server sends (its session tickets) until released.
struct TicketHoldingProxy {
    addr: SocketAddr,
    /// Notified when the first server record is being held.
    holding: Arc<Notify>,
    release: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TicketHoldingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TicketHoldingProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let holding = Arc::new(Notify::new());
        let (release, released) = watch::channel(false);
        let notify = holding.clone();
        let task = tokio::spawn(async move {
            let (client, _) = tcp.accept().await.unwrap();
            let server = TcpStream::connect(upstream).await.unwrap();
            client.set_nodelay(true).unwrap();
            server.set_nodelay(true).unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let hold = Arc::new(AtomicBool::new(false));
            let arm = hold.clone();
            let up = async move {
                while let Some(record) = read_record(&mut cr).await {
                    if record[0] == APPLICATION_DATA {
                        // Before the server can see the client's Finished.
                        arm.store(true, Ordering::SeqCst);
                    }
                    if sw.write_all(&record).await.is_err() {
                        break;
                    }
                }
                let _ = sw.shutdown().await;
            };
            let down = async move {
                let mut released = released;
                while let Some(record) = read_record(&mut sr).await {
                    if hold.load(Ordering::SeqCst) && !*released.borrow() {
                        notify.notify_one();
                        // Everything after this record waits in the socket buffers.
                        let _ = released.wait_for(|r| *r).await;
                    }
                    if cw.write_all(&record).await.is_err() {
                        break;
                    }
                }
                let _ = cw.shutdown().await;
            };
            tokio::join!(up, down);
        });
        Self {
            addr,
            holding,
            release,
            task,
        }
    }

    fn release(&self) {
        self.release.send_replace(true);
    }
}

/// One request/answer line on an open connection.
async fn roundtrip<S>(s: &mut S) -> Result<String, String>
where
    S: AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let fut = async {
        s.write_all(b"who\n").await.map_err(|e| e.to_string())?;
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            if s.read(&mut byte).await.map_err(|e| e.to_string())? == 0 {
                return Err("closed".to_owned());
            }
            if byte[0] == b'\n' {
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            line.push(byte[0]);
        }
    };
    tokio::time::timeout(STEP, fut)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// A client connects to server-a through the proxy, which holds back the server's
/// tickets; the client operator (maybe) changes the server policy to one that refuses
/// server-a; the tickets are released and reach the client on its still-open connection;
/// then the client connects again, straight to the server. Returns that connection's
/// handshake kind, or the error.
async fn late_ticket(deauthorize: bool) -> Result<HandshakeKind, String> {
    let pki = TestPki::new();
    let server_a = pki
        .intermediate
        .leaf("server-a")
        .server()
        .dns("localhost")
        .build();
    let server = RawServer::start(&server_a).await;
    let client = Client::builder()
        .ca(pki.ca_file())
        .server_policy("cn:server-a".parse().unwrap())
        .build()
        .unwrap();
    let proxy = TicketHoldingProxy::start(server.addr).await;

    let mut first = tokio::time::timeout(STEP, client.connect_to(proxy.addr, localhost()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Full)
    );
    tokio::time::timeout(STEP, proxy.holding.notified())
        .await
        .expect("the server sent no ticket");
    if deauthorize {
        client
            .handle()
            .set_policy("cn:server-b".parse().unwrap())
            .unwrap();
    }
    proxy.release();
    // The answer comes after the tickets, so the client has read them when it has it.
    assert_eq!(roundtrip(&mut first).await.unwrap(), "server-a");
    drop(first);

    match tokio::time::timeout(STEP, client.connect_to(server.addr, localhost())).await {
        Err(_) => Err("timed out".to_owned()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(mut tls)) => {
            let kind = tls.get_ref().1.handshake_kind().unwrap();
            let answer = roundtrip(&mut tls).await;
            eprintln!("second connection: {kind:?}, answer {answer:?}");
            Ok(kind)
        }
    }
}

#[tokio::test]
async fn control_late_ticket_without_policy_change_resumes() {
    let second = late_ticket(false).await;
    assert_eq!(
        second,
        Ok(HandshakeKind::Resumed),
        "control: the held-back ticket was not used, so this test would prove nothing"
    );
}

#[tokio::test]
async fn late_ticket_after_client_policy_change_is_not_resumed() {
    let second = late_ticket(true).await;
    assert!(
        second.is_err(),
        "after the client's server policy stopped admitting server-a, the client connected \
         to server-a again ({second:?}), with a ticket that arrived after the reload"
    );
}

// === Finding 3: a custom policy replaced by another of the same name ===

#[tokio::test]
async fn replacing_a_custom_policy_by_one_of_the_same_name_refuses_resumption() {
    let pki = TestPki::new();
    let (_, sf) = pki.server("localhost");
    let admit_alice = |id: &PeerIdentity| {
        if id.common_name() == Some("alice") {
            Ok(())
        } else {
            Err(Denied::new("gate", "only alice"))
        }
    };
    let server = Server::builder()
        .identity(&sf.cert, &sf.key)
        .client_ca(pki.ca_file())
        .policy(Policy::custom("gate", admit_alice))
        .build()
        .unwrap();
    let mut rec = Recorder::start(&server).await;
    let (_, af) = pki.client("alice");
    let client = Client::builder()
        .identity(&af.cert, &af.key)
        .ca(pki.ca_file())
        .build()
        .unwrap();

    let first = attempt(client.current_config(), rec.addr).await;
    let first_seen = rec.next(QUIET).await;
    assert!(
        first_seen.as_ref().is_some_and(|s| !s.resumed),
        "{first:?} {first_seen:?}"
    );
    let second = attempt(client.current_config(), rec.addr).await;
    let second_seen = rec.next(QUIET).await;
    assert!(
        second_seen.as_ref().is_some_and(|s| s.resumed),
        "control: the second connection did not resume, so this test would prove nothing: \
         {second:?} {second_seen:?}"
    );

    let deny_everyone = |_: &PeerIdentity| Err(Denied::new("gate", "closed"));
    server
        .handle()
        .set_policy(Policy::custom("gate", deny_everyone))
        .unwrap();
    let third = attempt(client.current_config(), rec.addr).await;
    let third_seen = rec.next(QUIET).await;
    assert!(
        third_seen.is_none(),
        "the policy now denies everyone, yet the next connection was handed out: {third_seen:?} \
         (client: {third:?})"
    );
}

// === Finding 4: the chain on an identity is the chain its connection sent ===

/// A raw rustls client presenting exactly `chain`, without resumption.
fn presenting(chain: Vec<Vec<u8>>, key: Vec<u8>, ca: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in mtls::pem::load_certs(ca).unwrap() {
        roots.add(c).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            chain.into_iter().map(CertificateDer::from).collect(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .unwrap();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

#[tokio::test]
async fn peer_chain_is_the_chain_this_connection_sent() {
    let pki = TestPki::new();
    let (_, sf) = pki.server("localhost");
    // The root and the intermediate are both trusted, so alice may send her leaf alone,
    // with the intermediate, or with the intermediate and the root.
    let cas = pki.path("root-and-intermediate.pem");
    std::fs::write(
        &cas,
        pki.root.cert_pem() + pki.intermediate.cert_pem().as_str(),
    )
    .unwrap();
    let server = Server::builder()
        .identity(&sf.cert, &sf.key)
        .client_ca(&cas)
        .policy(Policy::any_verified())
        .build()
        .unwrap();
    let mut rec = Recorder::start(&server).await;
    let (alice, _) = pki.client("alice");
    let leaf = alice.cert_der();
    let intermediate = pki.intermediate.cert_der();
    let root = pki.root.cert_der();
    let chains = [
        vec![leaf.clone(), intermediate.clone()],
        vec![leaf.clone()],
        vec![leaf, intermediate, root],
    ];
    let mut got = Vec::new();
    for chain in chains {
        let sent = chain.len();
        let config = presenting(chain, alice.key_der(), &pki.ca_file());
        let outcome = attempt(config, rec.addr).await;
        let seen = rec
            .next(QUIET)
            .await
            .unwrap_or_else(|| panic!("a chain of {sent} was refused: {outcome:?}"));
        assert!(!seen.resumed);
        assert_eq!(seen.subject, "CN=alice");
        got.push((sent, seen.chain_len));
    }
    assert!(
        got.iter().all(|(sent, reported)| sent == reported),
        "(certificates sent, identity().chain().len()) per connection: {got:?}"
    );
}

// === Reloads of trust under load ===

/// The existing `handshakes_under_constant_reloads_never_fail` (tests/reload.rs) swaps
/// only the server's certificate, which leaves the trust epoch alone. Here every reload
/// is a trust change (two policies, both admitting the clients), so sessions keep being
/// refused for resumption while handshakes run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_never_fail_while_the_policy_reloads_every_10ms() {
    const LOOPS: usize = 4;
    const CONNECTIONS: usize = 50;
    let pki = TestPki::new();
    let (_, sf) = pki.server("localhost");
    let server = Server::builder()
        .identity(&sf.cert, &sf.key)
        .client_ca(pki.ca_file())
        .policy(Policy::any_verified())
        .build()
        .unwrap();
    let srv = common::serve(&server).await;
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let resumed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..LOOPS {
        let (_, f) = pki.client(&format!("load-{i}"));
        let client = Client::builder()
            .identity(f.cert, f.key)
            .ca(pki.ca_file())
            .build()
            .unwrap();
        let (ok, failed, resumed) = (ok.clone(), failed.clone(), resumed.clone());
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            for _ in 0..CONNECTIONS {
                match ask(&client, addr).await {
                    Ok(line) => {
                        if line.ends_with("|true") {
                            resumed.fetch_add(1, Ordering::Relaxed);
                        }
                        ok.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => {
                        eprintln!("failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                // Paced, so that the connections span many reloads (a resumed handshake
                // on loopback takes well under a millisecond).
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let admitting_the_clients: Policy = "any(cn:load-0, cn:load-1, cn:load-2, cn:load-3)"
        .parse()
        .unwrap();
    let handle = server.handle();
    let mut reloads = 0usize;
    while tasks.iter().any(|t| !t.is_finished()) {
        let policy = if reloads.is_multiple_of(2) {
            admitting_the_clients.clone()
        } else {
            Policy::any_verified()
        };
        let h = handle.clone();
        tokio::task::spawn_blocking(move || h.set_policy(policy))
            .await
            .unwrap()
            .unwrap();
        reloads += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!(
        "{} handshakes ({} resumed), {reloads} trust reloads",
        ok.load(Ordering::Relaxed),
        resumed.load(Ordering::Relaxed)
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert_eq!(ok.load(Ordering::Relaxed), LOOPS * CONNECTIONS);
    assert!(reloads >= 10, "only {reloads} reloads");
}
