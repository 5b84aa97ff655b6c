//! Shared helpers of the integration tests: a line-echo mTLS server on 127.0.0.1 and
//! clients (ours, and raw rustls ones that skip our preflight checks).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mtls::rustls;
use mtls::{Client, Server, TlsListener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running server: answers every connection with one line describing the peer
/// (`subject|generation|resumed`) or `anonymous`, then closes.
pub struct TestServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(server: &Server) -> TestServer {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut listener = TlsListener::new(tcp, server.acceptor()).unwrap();
    let addr = listener.local_addr();
    let task = tokio::spawn(async move {
        loop {
            let mut conn = listener.accept().await;
            tokio::spawn(async move {
                let line = match conn.peer.identity() {
                    Some(id) => format!(
                        "{}|{}|{}\n",
                        id.subject(),
                        id.generation(),
                        conn.peer.resumed()
                    ),
                    None => "anonymous\n".to_owned(),
                };
                let _ = conn.stream.write_all(line.as_bytes()).await;
                let _ = conn.stream.shutdown().await;
            });
        }
    });
    TestServer { addr, task }
}

/// A listener with `options` over `acceptor` that answers `hello` on every connection it
/// hands out, with its counters.
pub struct HelloServer {
    pub addr: SocketAddr,
    pub stats: Arc<mtls::ListenerStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HelloServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve_hello(acceptor: mtls::Acceptor, options: mtls::ListenerOptions) -> HelloServer {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut listener = TlsListener::with_options(tcp, acceptor, options).unwrap();
    let addr = listener.local_addr();
    let stats = listener.stats();
    let task = tokio::spawn(async move {
        loop {
            let mut conn = listener.accept().await;
            tokio::spawn(async move {
                let _ = conn.stream.write_all(b"hello\n").await;
                let _ = conn.stream.shutdown().await;
            });
        }
    });
    HelloServer { addr, stats, task }
}

/// Connects with `client` and returns the server's line, or the error text.
pub async fn ask(client: &Client, addr: SocketAddr) -> Result<String, String> {
    let fut = async {
        let mut tls = client
            .connect(&format!("localhost:{}", addr.port()))
            .await
            .map_err(|e| e.to_string())?;
        read_all(&mut tls).await
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// Connects with a raw rustls config (no preflight checks of ours).
pub async fn ask_raw(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
) -> Result<String, String> {
    let fut = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        read_all(&mut tls).await
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| "timed out".to_owned())?
}

async fn read_all<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Result<String, String> {
    let mut out = String::new();
    s.read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    if out.is_empty() {
        return Err("connection closed without an answer".to_owned());
    }
    Ok(out.trim_end().to_owned())
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(mtls::provider::feature_default().unwrap())
}

/// A rustls client config that trusts `ca_pem` and presents `cert_pem` + `key_pem`
/// (or nothing), built without any of our checks.
pub fn raw_client(ca: &Path, identity: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in mtls::pem::load_certs(ca).unwrap() {
        roots.add(c).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match identity {
        Some((cert, key)) => b
            .with_client_auth_cert(
                mtls::pem::load_certs(cert).unwrap(),
                mtls::pem::load_key(key).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    Arc::new(cfg)
}

/// Everything logged by this test binary (one global subscriber: per-thread subscribers
/// race with tracing's callsite-interest cache when tests run in parallel).
#[derive(Clone, Default)]
pub struct LogBuf(pub Arc<Mutex<Vec<u8>>>);

impl Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log lines written since this view was made.
pub struct LogView {
    buf: LogBuf,
    start: usize,
}

impl LogView {
    pub fn text(&self) -> String {
        let all = self.buf.0.lock().unwrap();
        String::from_utf8_lossy(&all[self.start.min(all.len())..]).into_owned()
    }
}

/// Starts capturing: installs the global subscriber once, and returns a view of what is
/// logged from now on. Assert on strings unique to the test (subjects, serials).
pub fn capture_logs() -> (LogView, ()) {
    static GLOBAL: std::sync::OnceLock<LogBuf> = std::sync::OnceLock::new();
    let buf = GLOBAL
        .get_or_init(|| {
            let buf = LogBuf::default();
            let b2 = buf.clone();
            let sub = tracing_subscriber::fmt()
                .with_writer(move || b2.clone())
                .with_ansi(false)
                .with_max_level(tracing::Level::DEBUG)
                .finish();
            let _ = tracing::subscriber::set_global_default(sub);
            buf
        })
        .clone();
    let start = buf.0.lock().unwrap().len();
    (LogView { buf, start }, ())
}

/// Waits until `f` returns true, for at most `secs` seconds.
pub async fn eventually(secs: u64, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A server that answers every line it reads with the peer line, until the peer closes.
pub async fn serve_lines(server: &Server) -> TestServer {
    use tokio::io::AsyncBufReadExt;
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut listener = TlsListener::new(tcp, server.acceptor()).unwrap();
    let addr = listener.local_addr();
    let task = tokio::spawn(async move {
        loop {
            let conn = listener.accept().await;
            tokio::spawn(async move {
                let peer = match conn.peer.identity() {
                    Some(id) => format!(
                        "{}|{}|{}\n",
                        id.subject(),
                        id.generation(),
                        conn.peer.resumed()
                    ),
                    None => "anonymous\n".to_owned(),
                };
                let (r, mut w) = tokio::io::split(conn.stream);
                let mut lines = tokio::io::BufReader::new(r).lines();
                while let Ok(Some(_)) = lines.next_line().await {
                    if w.write_all(peer.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    TestServer { addr, task }
}

/// One request/answer on an open line connection.
pub async fn roundtrip<S>(s: &mut S) -> Result<String, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let fut = async {
        s.write_all(b"who\n").await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            let n = s.read(&mut byte).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed".to_owned());
            }
            if byte[0] == b'\n' {
                break;
            }
            buf.push(byte[0]);
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// The subject CN of the certificate the server presented on `tls`.
pub fn server_cn(tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
    let certs = tls.get_ref().1.peer_certificates().unwrap();
    let id = mtls::PeerIdentity::from_chain(certs).unwrap();
    id.common_name().unwrap_or_default().to_owned()
}

/// Writes `data` to `path` by writing a temporary file beside it and renaming it over.
pub fn write_atomic(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
