//! OCSP for client certificates against a real responder: `openssl ocsp` over an
//! `openssl ca` database made at test time, our server on 127.0.0.1 (feature `fetch`).
//!
//! A good client is admitted; after `openssl ca -revoke` its next connection is refused
//! with reason `revoked` (the cache bypassed with `ocsp_max_age(0)`), on a resumed
//! session too (resumption never skips the check in force); a cached answer
//! outlives the responder; with the responder stopped, hard-fail refuses a client never
//! seen (`ocsp_unavailable`) and soft-fail admits it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use mtls::revocation::{OcspFailure, OcspMode};
use mtls::{Client, Policy, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An `openssl ca` directory: CA, OCSP signer (OCSPSigning EKU), server, clients whose
/// AIA names the responder at `port`.
struct OpensslCa {
    dir: tempfile::TempDir,
    port: u16,
}

impl OpensslCa {
    fn new(clients: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path();
        std::fs::create_dir(d.join("newcerts")).unwrap();
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("serial"), "1000\n").unwrap();
        let cnf = format!(
            "[ca]\ndefault_ca = ca_default\n\
             [ca_default]\ndir = {dir}\ndatabase = $dir/index.txt\nnew_certs_dir = $dir/newcerts\n\
             certificate = $dir/ca.crt\nprivate_key = $dir/ca.key\nserial = $dir/serial\n\
             default_md = sha256\ndefault_days = 30\npolicy = any\nunique_subject = no\n\
             [any]\ncommonName = supplied\n\
             [client_ext]\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
             extendedKeyUsage = clientAuth\nsubjectAltName = DNS:client.test\n\
             authorityInfoAccess = OCSP;URI:http://127.0.0.1:{port}\n\
             [server_ext]\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
             extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost\n\
             authorityInfoAccess = OCSP;URI:http://127.0.0.1:{port}\n\
             [ocsp_ext]\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
             extendedKeyUsage = critical,OCSPSigning\n",
            dir = d.display()
        );
        std::fs::write(d.join("ca.cnf"), cnf).unwrap();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "30",
                "-subj",
                "/CN=OCSP Test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        let issue = |name: &str, ext: &str| {
            openssl(
                d,
                &[
                    "req",
                    "-new",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    &format!("/CN={name}"),
                ],
            );
            openssl(
                d,
                &[
                    "ca",
                    "-batch",
                    "-config",
                    "ca.cnf",
                    "-extensions",
                    ext,
                    "-notext",
                    "-in",
                    &format!("{name}.csr"),
                    "-out",
                    &format!("{name}.crt"),
                ],
            );
        };
        issue("ocsp", "ocsp_ext");
        issue("localhost", "server_ext");
        for c in clients {
            issue(c, "client_ext");
        }
        Self { dir, port }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn revoke(&self, name: &str) {
        openssl(
            self.dir.path(),
            &["ca", "-config", "ca.cnf", "-revoke", &format!("{name}.crt")],
        );
    }

    /// `openssl ocsp` answering on the port the certificates name, signing as `ocsp`.
    async fn responder(&self) -> Child {
        self.responder_signing_as("ocsp").await
    }

    /// `openssl ocsp` signing with `signer`'s certificate and key. Ready when it says
    /// so on stderr: a probe connection would wedge it (it serves one connection at a
    /// time and waits for the probe's request).
    async fn responder_signing_as(&self, signer: &str) -> Child {
        use tokio::io::AsyncBufReadExt;
        let mut child = Command::new("openssl")
            .args([
                "ocsp",
                "-index",
                "index.txt",
                "-port",
                &self.port.to_string(),
                "-CA",
                "ca.crt",
                "-rsigner",
                &format!("{signer}.crt"),
                "-rkey",
                &format!("{signer}.key"),
                "-nmin",
                "5",
            ])
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("waiting for OCSP client connections") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            ready,
            Ok(true),
            "openssl ocsp did not start on {}",
            self.port
        );
        // Keep draining its log so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        child
    }

    fn server(&self, failure: OcspFailure, max_age: Duration) -> Server {
        Server::builder()
            .identity(self.path("localhost.crt"), self.path("localhost.key"))
            .client_ca(self.path("ca.crt"))
            .policy(Policy::any_verified())
            .ocsp(OcspMode::Leaf)
            .ocsp_failure(failure)
            .ocsp_max_age(max_age)
            .build()
            .unwrap()
    }

    fn client(&self, name: &str) -> Client {
        Client::builder()
            .identity(
                self.path(&format!("{name}.crt")),
                self.path(&format!("{name}.key")),
            )
            .ca(self.path("ca.crt"))
            .build()
            .unwrap()
    }
}

/// Serves `server` on 127.0.0.1; each connection's verdict is sent to the channel:
/// `Ok(subject)` or `Err(reason class)`.
async fn serve(
    server: &Server,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<Result<String, String>>,
    tokio::task::JoinHandle<()>,
) {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let acceptor = server.acceptor();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            let Ok((io, _)) = tcp.accept().await else {
                return;
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match acceptor.accept(io).await {
                    Ok((mut stream, peer)) => {
                        let who = peer.identity().map(|i| i.subject().to_owned());
                        let kind = if peer.resumed() { "resumed" } else { "full" };
                        let _ = tx.send(Ok(format!("{}|{kind}", who.unwrap_or_default())));
                        let _ = stream.write_all(b"hello\n").await;
                        let _ = stream.shutdown().await;
                    }
                    Err(e) => {
                        eprintln!("refused: {e}");
                        let _ = tx.send(Err(e.result_and_reason().1.to_owned()));
                    }
                }
            });
        }
    });
    (addr, rx, task)
}

/// Connects `client` and returns the server's verdict on the connection.
async fn verdict(
    client: &Client,
    addr: std::net::SocketAddr,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Result<String, String>>,
) -> Result<String, String> {
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        if let Ok(mut tls) = client.connect(&format!("localhost:{}", addr.port())).await {
            let mut out = Vec::new();
            let _ = tls.read_to_end(&mut out).await;
        }
    })
    .await;
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no verdict within 10 s")
        .expect("server loop ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_ocsp_good_then_revoked_then_responder_down() {
    if !support::proc::require("openssl") {
        return;
    }
    let ca = OpensslCa::new(&["alice", "bob", "carol"]);
    let mut responder = ca.responder().await;

    // Hard-fail, cache bypassed: every connection asks the responder.
    let bypass = ca.server(OcspFailure::Hard, Duration::ZERO);
    let (addr, mut rx, _task) = serve(&bypass).await;
    let alice = ca.client("alice");
    assert_eq!(
        verdict(&alice, addr, &mut rx).await,
        Ok("CN=alice|full".to_owned())
    );
    // Alice's client resumes: the revocation below is then seen on a resumed session,
    // which must not skip the OCSP check.
    assert_eq!(
        verdict(&alice, addr, &mut rx).await,
        Ok("CN=alice|resumed".to_owned())
    );

    // Cached (default max age): the answer is reused once the responder is gone.
    let cached = ca.server(OcspFailure::Hard, Duration::from_secs(3600));
    let (caddr, mut crx, _ctask) = serve(&cached).await;
    let carol = ca.client("carol");
    assert_eq!(
        verdict(&carol, caddr, &mut crx).await,
        Ok("CN=carol|full".to_owned())
    );

    ca.revoke("alice");
    // The responder re-reads its index when the file changes; allow it a moment.
    let mut last = Ok(String::new());
    for _ in 0..20 {
        last = verdict(&alice, addr, &mut rx).await;
        if last.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        last,
        Err("revoked".to_owned()),
        "alice after openssl ca -revoke"
    );

    responder.kill().await.unwrap();
    let _ = responder.wait().await;

    // Never-seen bob: hard-fail refuses, soft-fail admits.
    let bob = ca.client("bob");
    assert_eq!(
        verdict(&bob, addr, &mut rx).await,
        Err("ocsp_unavailable".to_owned())
    );
    let soft = ca.server(OcspFailure::Soft, Duration::ZERO);
    let (saddr, mut srx, _stask) = serve(&soft).await;
    assert_eq!(
        verdict(&bob, saddr, &mut srx).await,
        Ok("CN=bob|full".to_owned())
    );
    // Carol's good answer is still cached by the hard-fail server (her client resumes).
    assert_eq!(
        verdict(&carol, caddr, &mut crx).await,
        Ok("CN=carol|resumed".to_owned())
    );
}

/// `openssl s_client -status` against our server; its "Cert Status" line, if any.
async fn s_client_status(ca: &OpensslCa, port: u16) -> Option<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-servername",
                "localhost",
                "-status",
                "-CAfile",
                "ca.crt",
                "-cert",
                "alice.crt",
                "-key",
                "alice.key",
            ])
            .current_dir(ca.dir.path())
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("openssl s_client hung")
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.trim_start().starts_with("Cert Status:"))
        .map(|l| l.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_sees_our_stapled_response_good_then_revoked() {
    if !support::proc::require("openssl") {
        return;
    }
    let ca = OpensslCa::new(&["alice"]);
    let _responder = ca.responder().await;
    let server = Server::builder()
        .identity(ca.path("localhost.crt"), ca.path("localhost.key"))
        .client_ca(ca.path("ca.crt"))
        .policy(Policy::any_verified())
        .staple_ocsp(None)
        .staple_refresh(Duration::from_millis(200), Duration::from_millis(500))
        .build()
        .unwrap();
    let (addr, _rx, _task) = serve(&server).await;
    let mut status = None;
    for _ in 0..20 {
        status = s_client_status(&ca, addr.port()).await;
        if status.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status.as_deref(), Some("Cert Status: good"));
    // Our client with must-staple accepts the good staple…
    let must = Client::builder()
        .identity(ca.path("alice.crt"), ca.path("alice.key"))
        .ca(ca.path("ca.crt"))
        .require_ocsp_staple()
        .build()
        .unwrap();
    assert!(client_reads_hello(&must, addr).await);
    // … and refuses a server that staples nothing.
    let plain = Server::builder()
        .identity(ca.path("localhost.crt"), ca.path("localhost.key"))
        .client_ca(ca.path("ca.crt"))
        .policy(Policy::any_verified())
        .build()
        .unwrap();
    let (plain_addr, _prx, _ptask) = serve(&plain).await;
    assert!(!client_reads_hello(&must, plain_addr).await);

    ca.revoke("localhost");
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        status = s_client_status(&ca, addr.port()).await;
        if status.as_deref() == Some("Cert Status: revoked") {
            break;
        }
    }
    assert_eq!(status.as_deref(), Some("Cert Status: revoked"));
    assert!(
        !client_reads_hello(&must, addr).await,
        "must-staple client accepted a revoked staple"
    );
}

/// Whether `client` completes a handshake with the server at `addr` and reads its hello.
async fn client_reads_hello(client: &Client, addr: std::net::SocketAddr) -> bool {
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        let mut tls = client
            .connect(&format!("localhost:{}", addr.port()))
            .await
            .ok()?;
        let mut out = String::new();
        tls.read_to_string(&mut out).await.ok()?;
        Some(out)
    })
    .await;
    matches!(got, Ok(Some(out)) if out == "hello\n")
}

/// A response signed by a certificate the CA issued without the OCSP-signing EKU (here
/// a client certificate) is not believed: hard-fail refuses, whatever it says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_signed_without_the_ocsp_signing_eku_is_refused() {
    if !support::proc::require("openssl") {
        return;
    }
    let ca = OpensslCa::new(&["alice", "mallory"]);
    let _responder = ca.responder_signing_as("mallory").await;
    let server = ca.server(OcspFailure::Hard, Duration::ZERO);
    let (addr, mut rx, _task) = serve(&server).await;
    assert_eq!(
        verdict(&ca.client("alice"), addr, &mut rx).await,
        Err("ocsp_unavailable".to_owned())
    );
}
