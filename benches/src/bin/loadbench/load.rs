//! The load client: tokio-rustls connections driven from one current-thread runtime.
//!
//! * [`Mode::Full`] / [`Mode::Resumed`]: every iteration opens a TCP connection,
//!   completes the mTLS handshake (full, or resumed from a ticket of the connection
//!   before: each client connection loop has its own session cache), sends one
//!   `GET / HTTP/1.1` with `Connection: close`, reads the response and waits for the
//!   server to close (so TIME_WAIT stays on the server side).
//! * [`Mode::KeepAlive`]: each connection is opened once, then sends GETs back to back.
//! * [`Mode::GrpcFull`] / [`Mode::GrpcKeepAlive`]: the same over HTTP/2 (ALPN `h2`, hyper's
//!   HTTP/2 client) with one unary gRPC call, `mtls.examples.v1.Identity/WhoAmI`, in
//!   place of the GET: a new connection (full handshake) per call, or calls back to back
//!   on one connection per loop. A call counts when the reply frame and `grpc-status: 0`
//!   arrived.
//!
//! The client checks the server's handshake signature against the certificate it
//! presents (so a certificate and key that do not match, e.g. a torn reload, fail the
//! handshake) but, by default, does not validate the server's chain: that keeps the
//! client's CPU per handshake below the server's, so the server (pinned to its own core)
//! is the bottleneck. `--client-verify` turns full validation on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mtls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use mtls::rustls::client::{Resumption, WebPkiServerVerifier};
use mtls::rustls::crypto::{
    WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use mtls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use mtls::rustls::{self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::BoxError;

/// What each connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// New connection, full handshake, one GET, close.
    Full,
    /// New connection, handshake resumed from the loop's session cache, one GET, close.
    Resumed,
    /// One connection, GETs back to back.
    KeepAlive,
    /// New connection, full handshake, one unary gRPC call, close.
    GrpcFull,
    /// One HTTP/2 connection, unary gRPC calls back to back.
    GrpcKeepAlive,
}

impl Mode {
    fn is_grpc(self) -> bool {
        matches!(self, Self::GrpcFull | Self::GrpcKeepAlive)
    }
}

/// How long one handshake or request may take before it counts as failed.
const OP_TIMEOUT: Duration = Duration::from_secs(10);

const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
const GET_KEEP: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// The client's rustls config: the bench client certificate, ALPN `http/1.1`, the same
/// provider (and key-exchange groups) as the servers; [`run`] sets the resumption.
pub(crate) fn client_config(certs: &Path, full_verify: bool) -> Result<ClientConfig, BoxError> {
    let provider = Arc::new(
        mtls::provider::feature_default().ok_or("mtls was built without a crypto provider")?,
    );
    let verifier: Arc<dyn ServerCertVerifier> = if full_verify {
        let mut roots = RootCertStore::empty();
        for ca in mtls::pem::load_certs(certs.join("ca.crt"))? {
            roots.add(ca)?;
        }
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?
    } else {
        Arc::new(SignatureOnly(provider.signature_verification_algorithms))
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(
            mtls::pem::load_certs(certs.join("client.crt"))?,
            mtls::pem::load_key(certs.join("client.key"))?,
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Checks the handshake signature against the presented leaf; accepts any chain.
#[derive(Debug)]
struct SignatureOnly(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for SignatureOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// What a load run measured.
#[derive(Debug, Default)]
pub(crate) struct LoadStats {
    /// Completed operations (handshake + request, or request).
    pub(crate) ok: u64,
    /// Failed operations.
    pub(crate) failed: u64,
    /// Handshakes the server resumed.
    pub(crate) resumed: u64,
    /// Latency of each completed operation's handshake (handshake mode) or request
    /// (keep-alive mode), in microseconds.
    pub(crate) latencies_us: Vec<u32>,
    /// Failure messages and their counts.
    pub(crate) errors: BTreeMap<String, u64>,
    /// Wall time of the run.
    pub(crate) elapsed: Duration,
}

impl LoadStats {
    fn merge(&mut self, other: Self) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.resumed += other.resumed;
        self.latencies_us.extend(other.latencies_us);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }

    fn fail(&mut self, e: impl ToString) {
        self.failed += 1;
        let mut msg = e.to_string();
        msg.truncate(120);
        *self.errors.entry(msg).or_default() += 1;
    }

    /// Operations per second.
    pub(crate) fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile of the latencies, in milliseconds.
    pub(crate) fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

/// Runs `conns` connection loops against `addr` for `duration`.
pub(crate) async fn run(
    addr: SocketAddr,
    config: &ClientConfig,
    mode: Mode,
    conns: usize,
    duration: Duration,
) -> LoadStats {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    let mut config = config.clone();
    if mode.is_grpc() {
        config.alpn_protocols = vec![b"h2".to_vec()];
    }
    for _ in 0..conns {
        let connector = connector(&config, mode == Mode::Resumed);
        tasks.spawn(async move {
            match mode {
                Mode::Full | Mode::Resumed => handshake_loop(addr, connector, deadline).await,
                Mode::KeepAlive => keep_alive_loop(addr, connector, deadline).await,
                Mode::GrpcFull => grpc_full_loop(addr, connector, deadline).await,
                Mode::GrpcKeepAlive => grpc_keep_alive_loop(addr, connector, deadline).await,
            }
        });
    }
    let mut stats = LoadStats::default();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(s) => stats.merge(s),
            Err(e) => stats.fail(format!("load task failed: {e}")),
        }
    }
    stats.elapsed = start.elapsed();
    stats
}

/// A connector of `config` with its own session cache when `resume`, else none.
pub(crate) fn connector(config: &ClientConfig, resume: bool) -> TlsConnector {
    let mut config = config.clone();
    config.resumption = if resume {
        Resumption::in_memory_sessions(4)
    } else {
        Resumption::disabled()
    };
    TlsConnector::from(Arc::new(config))
}

/// Opens one TCP connection and completes the mTLS handshake.
pub(crate) async fn connect(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> Result<TlsStream<TcpStream>, BoxError> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost")?;
    Ok(connector.connect(name, tcp).await?)
}

async fn handshake_loop(addr: SocketAddr, connector: TlsConnector, deadline: Instant) -> LoadStats {
    let mut stats = LoadStats::default();
    let mut buf = Vec::with_capacity(4096);
    while Instant::now() < deadline {
        let t0 = Instant::now();
        let once = async {
            let mut tls = connect(addr, &connector).await?;
            let handshake = t0.elapsed();
            let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            tls.write_all(GET_CLOSE).await?;
            read_response(&mut tls, &mut buf).await?;
            // Wait for the server to close; an unclean close after a full response is fine.
            let mut rest = [0u8; 256];
            while matches!(tls.read(&mut rest).await, Ok(n) if n > 0) {}
            Ok::<_, BoxError>((handshake, resumed))
        };
        match tokio::time::timeout(OP_TIMEOUT, once).await {
            Ok(Ok((handshake, resumed))) => {
                stats.ok += 1;
                stats.resumed += u64::from(resumed);
                stats.latencies_us.push(micros(handshake));
            }
            Ok(Err(e)) => stats.fail(e),
            Err(_) => stats.fail("timed out"),
        }
    }
    stats
}

async fn keep_alive_loop(
    addr: SocketAddr,
    connector: TlsConnector,
    deadline: Instant,
) -> LoadStats {
    let mut stats = LoadStats::default();
    let mut buf = Vec::with_capacity(4096);
    let mut conn = None;
    while Instant::now() < deadline {
        if conn.is_none() {
            match tokio::time::timeout(OP_TIMEOUT, connect(addr, &connector)).await {
                Ok(Ok(c)) => conn = Some(c),
                Ok(Err(e)) => {
                    stats.fail(e);
                    continue;
                }
                Err(_) => {
                    stats.fail("connect timed out");
                    continue;
                }
            }
        }
        let Some(tls) = conn.as_mut() else { continue };
        let t0 = Instant::now();
        let once = async {
            tls.write_all(GET_KEEP).await?;
            read_response(tls, &mut buf).await
        };
        match tokio::time::timeout(OP_TIMEOUT, once).await {
            Ok(Ok(())) => {
                stats.ok += 1;
                stats.latencies_us.push(micros(t0.elapsed()));
            }
            Ok(Err(e)) => {
                stats.fail(e);
                conn = None;
            }
            Err(_) => {
                stats.fail("request timed out");
                conn = None;
            }
        }
    }
    stats
}

// === gRPC over HTTP/2 ===

type GrpcSender = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

/// The empty `WhoAmIRequest` in a gRPC frame: not compressed, length 0.
const GRPC_EMPTY_FRAME: &[u8] = &[0, 0, 0, 0, 0];

/// Connects, completes the mTLS handshake (which must pick `h2`) and the HTTP/2
/// handshake; the connection is driven by a task of its own, which ends when the
/// connection closes.
async fn grpc_connect(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> Result<(GrpcSender, tokio::task::JoinHandle<()>), BoxError> {
    let tls = connect(addr, connector).await?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("the server did not pick ALPN h2".into());
    }
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((sender, driver))
}

/// One unary call of `mtls.examples.v1.Identity/WhoAmI`; checks the reply frame and
/// `grpc-status: 0`.
async fn grpc_call(sender: &mut GrpcSender) -> Result<(), BoxError> {
    let request = http::Request::post("https://localhost/mtls.examples.v1.Identity/WhoAmI")
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(Full::new(Bytes::from_static(GRPC_EMPTY_FRAME)))?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    if response.status() != http::StatusCode::OK {
        return Err(format!("gRPC call answered HTTP {}", response.status()).into());
    }
    // A trailers-only response carries grpc-status in the headers.
    let head_status = response.headers().get("grpc-status").cloned();
    let body = response.into_body().collect().await?;
    let status = body
        .trailers()
        .and_then(|t| t.get("grpc-status").cloned())
        .or(head_status);
    if status.as_ref().map(http::HeaderValue::as_bytes) != Some(b"0") {
        return Err(format!("gRPC call failed: grpc-status {status:?}").into());
    }
    if body.to_bytes().len() < GRPC_EMPTY_FRAME.len() {
        return Err("gRPC reply without a message".into());
    }
    Ok(())
}

async fn grpc_full_loop(addr: SocketAddr, connector: TlsConnector, deadline: Instant) -> LoadStats {
    let mut stats = LoadStats::default();
    while Instant::now() < deadline {
        let t0 = Instant::now();
        let once = async {
            let (mut sender, driver) = grpc_connect(addr, &connector).await?;
            let handshake = t0.elapsed();
            grpc_call(&mut sender).await?;
            // Dropping the last sender closes the connection; wait until it has.
            drop(sender);
            let _ = driver.await;
            Ok::<_, BoxError>(handshake)
        };
        match tokio::time::timeout(OP_TIMEOUT, once).await {
            Ok(Ok(handshake)) => {
                stats.ok += 1;
                stats.latencies_us.push(micros(handshake));
            }
            Ok(Err(e)) => stats.fail(e),
            Err(_) => stats.fail("timed out"),
        }
    }
    stats
}

async fn grpc_keep_alive_loop(
    addr: SocketAddr,
    connector: TlsConnector,
    deadline: Instant,
) -> LoadStats {
    let mut stats = LoadStats::default();
    let mut conn: Option<GrpcSender> = None;
    while Instant::now() < deadline {
        if conn.is_none() {
            match tokio::time::timeout(OP_TIMEOUT, grpc_connect(addr, &connector)).await {
                Ok(Ok((sender, _driver))) => conn = Some(sender),
                Ok(Err(e)) => {
                    stats.fail(e);
                    continue;
                }
                Err(_) => {
                    stats.fail("connect timed out");
                    continue;
                }
            }
        }
        let Some(sender) = conn.as_mut() else {
            continue;
        };
        let t0 = Instant::now();
        match tokio::time::timeout(OP_TIMEOUT, grpc_call(sender)).await {
            Ok(Ok(())) => {
                stats.ok += 1;
                stats.latencies_us.push(micros(t0.elapsed()));
            }
            Ok(Err(e)) => {
                stats.fail(e);
                conn = None;
            }
            Err(_) => {
                stats.fail("request timed out");
                conn = None;
            }
        }
    }
    stats
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Reads one HTTP/1.1 response with a `Content-Length` and checks that it is a 200.
pub(crate) async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Result<(), BoxError> {
    buf.clear();
    let (head_end, body_len) = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break (end + 4, parse_head(&buf[..end])?);
        }
        if buf.len() > 64 * 1024 {
            return Err("response head over 64 KiB".into());
        }
        if stream.read_buf(buf).await? == 0 {
            return Err("connection closed before the response head".into());
        }
    };
    while buf.len() < head_end + body_len {
        if stream.read_buf(buf).await? == 0 {
            return Err("connection closed in the response body".into());
        }
    }
    Ok(())
}

/// Checks the status line and returns the Content-Length.
fn parse_head(head: &[u8]) -> Result<usize, BoxError> {
    let head = std::str::from_utf8(head).map_err(|_| "response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("unexpected status line {status:?}").into());
    }
    lines
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .ok_or_else(|| "response without a valid Content-Length".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads() {
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nContent-Length: 3")
                .unwrap(),
            3
        );
        assert!(parse_head(b"HTTP/1.1 500 Oops\r\ncontent-length: 3").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked").is_err());
    }

    #[tokio::test]
    async fn reads_a_response_split_in_pieces() {
        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::spawn(async move {
            for part in [
                &b"HTTP/1.1 200 OK\r\nContent-"[..],
                b"Length: 3\r\n\r\no",
                b"k\n",
            ] {
                a.write_all(part).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let mut buf = Vec::new();
        read_response(&mut b, &mut buf).await.unwrap();
        assert!(buf.ends_with(b"ok\n"));
    }
}
