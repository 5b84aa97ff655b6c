//! Test servers: an HTTP server of ours (the core's `TlsListener` + hyper-util's auto
//! builder) that answers with the peer's identity, and third-party peers (`openssl
//! s_server`, nginx) run as child processes.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mtls::{Policy, Server, TlsVersion};
use mtls_testing::TestPki;
use tokio::sync::Notify;

// === our server ===

/// A running HTTPS server. `GET /` answers `CN|connection#|resumed|alpn`; `GET /slow`
/// answers the same after [`HttpServer::release`] is called.
pub struct HttpServer {
    pub addr: SocketAddr,
    pub gate: Arc<Notify>,
    pub slow_started: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpServer {
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    pub fn release(&self) {
        self.gate.notify_waiters();
    }
}

/// A server for `localhost` with the test PKI's CA, any verified client, h2 + http/1.1.
pub fn server(pki: &TestPki) -> Server {
    server_with(pki, &[TlsVersion::Tls13, TlsVersion::Tls12])
}

pub fn server_with(pki: &TestPki, versions: &[TlsVersion]) -> Server {
    let (_, files) = pki.server("localhost");
    Server::builder()
        .identity(&files.cert, &files.key)
        .client_ca(pki.ca_file())
        .policy(Policy::any_verified())
        .tls_versions(versions)
        .alpn(mtls::HTTP_ALPN)
        .build()
        .unwrap()
}

pub async fn serve(server: &Server) -> HttpServer {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut listener = mtls::TlsListener::new(tcp, server.acceptor()).unwrap();
    let addr = listener.local_addr();
    let gate = Arc::new(Notify::new());
    let slow_started = Arc::new(Notify::new());
    let connections = Arc::new(AtomicU64::new(0));
    let (g, s) = (gate.clone(), slow_started.clone());
    let task = tokio::spawn(async move {
        loop {
            let conn = listener.accept().await;
            let n = connections.fetch_add(1, Ordering::SeqCst) + 1;
            let cn = conn
                .peer
                .identity()
                .and_then(|id| id.common_name().map(str::to_owned))
                .unwrap_or_else(|| "anonymous".to_owned());
            let alpn = conn
                .peer
                .alpn()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .unwrap_or_else(|| "none".to_owned());
            let line = format!("{cn}|{n}|{}|{alpn}", conn.peer.resumed());
            let (g, s) = (g.clone(), s.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (line, g, s) = (line.clone(), g.clone(), s.clone());
                    async move {
                        if req.uri().path() == "/slow" {
                            let released = g.notified();
                            s.notify_one();
                            released.await;
                        }
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(line))))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(conn.stream), svc)
                    .await;
            });
        }
    });
    HttpServer {
        addr,
        gate,
        slow_started,
        task,
    }
}

/// The answer of our server, split.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub cn: String,
    pub connection: u64,
    pub resumed: bool,
    pub alpn: String,
}

pub fn parse(body: &str) -> Answer {
    let parts: Vec<&str> = body.split('|').collect();
    assert_eq!(parts.len(), 4, "unexpected body {body:?}");
    Answer {
        cn: parts[0].to_owned(),
        connection: parts[1].parse().unwrap(),
        resumed: parts[2] == "true",
        alpn: parts[3].to_owned(),
    }
}

pub async fn get(client: &reqwest::Client, url: &str) -> Answer {
    let resp = client.get(url).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    parse(&resp.text().await.unwrap())
}

/// Writes `src`'s contents to `dst` by a rename, so a reader never sees half a file.
pub fn replace_file(src: &Path, dst: &Path) {
    let tmp = dst.with_extension("tmp~");
    std::fs::copy(src, &tmp).unwrap();
    std::fs::rename(&tmp, dst).unwrap();
}

/// Waits until `f` returns true, for at most `secs` seconds.
pub async fn eventually(secs: u64, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

// === third-party peers ===

/// Whether a peer program can run; if not, fails under `MTLS_REQUIRE_PEERS=1` and
/// otherwise prints that the test skipped.
pub fn peer_available(program: &str) -> bool {
    let found = Command::new(program)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        if std::env::var("MTLS_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("{program} is required (MTLS_REQUIRE_PEERS=1) but not installed");
        }
        println!("skipped: {program} not installed");
    }
    found
}

/// A child process killed on drop.
pub struct Peer {
    pub port: u16,
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        // nginx's master stops its workers on SIGTERM; SIGKILL would orphan them.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_listening(port: u16, child: &mut Child, what: &str, log: Option<&Path>) {
    let ok = eventually(10, async || {
        matches!(child.try_wait(), Ok(Some(_)))
            || tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
    })
    .await
        && matches!(child.try_wait(), Ok(None));
    if !ok {
        let status = child.try_wait().ok().flatten();
        let log = log
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        panic!("{what} did not listen on 127.0.0.1:{port} (exit: {status:?}) {log}");
    }
}

/// `openssl s_server -Verify 1 -www` with the PKI's `localhost` server certificate,
/// requiring a client certificate from the PKI's CA.
pub async fn openssl_server(pki: &TestPki) -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let (_, files) = pki.server("localhost");
    let chain = pki.intermediate.write_cert(dir.path(), "intermediate.crt");
    let port = free_port();
    let mut child = Command::new("openssl")
        .arg("s_server")
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .arg("-cert")
        .arg(&files.cert)
        .arg("-key")
        .arg(&files.key)
        .arg("-cert_chain")
        .arg(&chain)
        .arg("-CAfile")
        .arg(pki.ca_file())
        .args(["-Verify", "1", "-verify_return_error", "-www", "-quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port, &mut child, "openssl s_server", None).await;
    Peer { port, child, dir }
}

/// nginx with `ssl_verify_client on`, answering 200 and `$ssl_client_s_dn`.
pub async fn nginx(pki: &TestPki) -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, files) = pki.server("localhost");
    let port = free_port();
    let conf = format!(
        r#"
worker_processes 1;
pid {pid};
error_log {err} info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        # `listen ... http2` works on every nginx (1.25.1+ also has `http2 on;`).
        listen 127.0.0.1:{port} ssl http2;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        ssl_verify_depth 3;
        location / {{
            default_type text/plain;
            return 200 "$ssl_client_s_dn";
        }}
    }}
}}
"#,
        pid = d.join("nginx.pid").display(),
        err = d.join("error.log").display(),
        d = d.display(),
        cert = files.cert.display(),
        key = files.key.display(),
        ca = pki.ca_file().display(),
    );
    let conf_path: PathBuf = d.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let stderr = std::fs::File::create(d.join("error.log")).unwrap();
    let mut child = Command::new("nginx")
        .arg("-p")
        .arg(d)
        .arg("-c")
        .arg(&conf_path)
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    wait_listening(port, &mut child, "nginx", Some(&d.join("error.log"))).await;
    Peer { port, child, dir }
}
