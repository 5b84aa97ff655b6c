//! The gRPC cases (issue 15): the `tonic` and `mtls-tonic` servers and the load client's
//! gRPC loops.
//!
//! Both servers serve the `mtls.examples.v1.Identity` service of `proto/whoami.proto`
//! (mtls-tonic's committed stubs) with the same handler, [`WhoAmI`], and tonic's
//! `Server::builder()` defaults (HTTP/2 only, no limits, no timeouts):
//!
//! * `tonic`, the baseline: plain tonic with its own TLS,
//!   `tls_config(ServerTlsConfig::new().identity(..).client_ca_root(..))` on the same
//!   certificates. tonic builds its rustls config with the process-wide crypto provider,
//!   which this module sets to the other servers' (`mtls::provider::feature_default()`),
//!   so the ciphers and key-exchange groups are the same; ALPN `h2`, rustls' default
//!   session cache (256 sessions) and tickets, no handshake timeout.
//! * `mtls-tonic`: `mtls::Server` (ALPN `h2`, a session cache of 256) +
//!   `mtls::TlsListener` + `mtls_tonic::TlsIncoming` + `serve_with_incoming`.
//!
//! The handler checks that the request carries the client's certificate through each
//! server's own accessor: `Request::peer_certs` for tonic (one extension lookup and an
//! `Arc` clone), `RequestExt::peer_identity` for mtls-tonic (one extension lookup), and
//! fails with `UNAUTHENTICATED` otherwise. It answers a fixed reply: tonic hands the
//! handler the certificate's DER only, so answering the CN would add an X.509 parse per
//! request to the baseline that mtls does once per connection.
//!
//! The client speaks HTTP/2 with the `h2` crate over the tokio-rustls client stream (ALPN
//! `h2`): a `POST /mtls.examples.v1.Identity/WhoAmI` with `content-type:
//! application/grpc` and `te: trailers`, the empty request message framed, and checks
//! `:status` 200, the reply's bytes and `grpc-status: 0` in the trailers.

use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use h2::client::SendRequest;
use http::header::{CONTENT_TYPE, HeaderMap, TE};
use http::{HeaderValue, StatusCode, Uri};
use mtls::TlsListener;
use mtls_tonic::{RequestExt, TlsIncoming};
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity as TlsIdentity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use crate::BoxError;
use crate::load::{self, LoadStats, OP_TIMEOUT};

#[allow(
    clippy::all,
    clippy::pedantic,
    unreachable_pub,
    unused_qualifications,
    elided_lifetimes_in_paths,
    missing_debug_implementations,
    missing_docs
)]
mod pb {
    include!("../../../../crates/mtls-tonic/tests/generated/mtls.examples.v1.rs");
}

use pb::identity_server::{Identity, IdentityServer};
use pb::{WhoAmIReply, WhoAmIRequest};

// === servers ===

/// Serves plain tonic with its own TLS on `tcp` until the future is dropped.
pub(crate) async fn serve_tonic(
    tcp: TcpListener,
    certs: &Path,
    listening: impl FnOnce() -> Result<(), BoxError>,
) -> Result<(), BoxError> {
    let provider =
        mtls::provider::feature_default().ok_or("mtls was built without a crypto provider")?;
    // tonic reads the process default. An error means one is installed already: this one,
    // by an earlier server of the same process (the tests run several).
    let _ = provider.install_default();
    let read =
        |name: &str| std::fs::read(certs.join(name)).map_err(|e| format!("reading {name}: {e}"));
    let tls = ServerTlsConfig::new()
        .identity(TlsIdentity::from_pem(
            read("server.crt")?,
            read("server.key")?,
        ))
        .client_ca_root(Certificate::from_pem(read("ca.crt")?));
    let router = Server::builder()
        .tls_config(tls)?
        .add_service(IdentityServer::new(WhoAmI(Peer::Tonic)));
    // What `Server::serve` does with its own listener (TCP_NODELAY is tonic's default).
    let incoming = TcpIncoming::from(tcp).with_nodelay(Some(true));
    listening()?;
    router.serve_with_incoming(incoming).await?;
    Ok(())
}

/// Serves tonic over `mtls_tonic::TlsIncoming` on `tcp` until the future is dropped.
pub(crate) async fn serve_mtls_tonic(
    tcp: TcpListener,
    server: &mtls::Server,
    listening: impl FnOnce() -> Result<(), BoxError>,
) -> Result<(), BoxError> {
    let incoming = TlsIncoming::new(TlsListener::new(tcp, server.acceptor())?);
    let router = Server::builder().add_service(IdentityServer::new(WhoAmI(Peer::Mtls)));
    listening()?;
    router.serve_with_incoming(incoming).await?;
    Ok(())
}

/// How the handler reads the client's certificate.
#[derive(Debug, Clone, Copy)]
enum Peer {
    /// tonic's `Request::peer_certs` (tonic's own TLS).
    Tonic,
    /// mtls-tonic's `RequestExt::peer_identity`.
    Mtls,
}

/// The handler of both servers; see the [module docs](self).
#[derive(Debug)]
struct WhoAmI(Peer);

#[tonic::async_trait]
impl Identity for WhoAmI {
    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIReply>, Status> {
        let has_certificate = match self.0 {
            Peer::Tonic => request.peer_certs().is_some_and(|c| !c.is_empty()),
            Peer::Mtls => request.peer_identity().is_some(),
        };
        if !has_certificate {
            return Err(Status::unauthenticated("no client certificate"));
        }
        Ok(Response::new(reply()))
    }

    async fn admin(
        &self,
        _request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIReply>, Status> {
        Err(Status::unimplemented("not benchmarked"))
    }
}

/// The fixed reply of `WhoAmI`.
fn reply() -> WhoAmIReply {
    WhoAmIReply {
        common_name: "bench-client".to_owned(),
        ..WhoAmIReply::default()
    }
}

// === client ===

const WHOAMI_URI: &str = "https://localhost/mtls.examples.v1.Identity/WhoAmI";

/// `WhoAmIRequest {}` as a gRPC message: not compressed, length 0, no bytes.
const REQUEST_MESSAGE: &[u8] = &[0, 0, 0, 0, 0];

/// The reply's bytes as the server frames them (not compressed, 4-byte length).
fn reply_message() -> Vec<u8> {
    let encoded = reply().encode_to_vec();
    let len = u32::try_from(encoded.len()).unwrap_or(u32::MAX);
    let mut message = vec![0];
    message.extend_from_slice(&len.to_be_bytes());
    message.extend_from_slice(&encoded);
    message
}

/// Opens one mTLS connection (ALPN `h2`), starts HTTP/2 on it and spawns its connection
/// task.
async fn open(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> Result<
    (
        SendRequest<Bytes>,
        tokio::task::JoinHandle<Result<(), h2::Error>>,
    ),
    BoxError,
> {
    let tls = load::connect(addr, connector).await?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("the server did not select ALPN h2".into());
    }
    let (client, connection) = h2::client::handshake(tls).await?;
    Ok((client, tokio::spawn(connection)))
}

/// One unary `WhoAmI` call; `buf` receives the reply's bytes.
async fn call(
    client: &mut SendRequest<Bytes>,
    expected: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(), BoxError> {
    std::future::poll_fn(|cx| client.poll_ready(cx)).await?;
    let request = http::Request::post(Uri::from_static(WHOAMI_URI))
        .header(CONTENT_TYPE, HeaderValue::from_static("application/grpc"))
        .header(TE, HeaderValue::from_static("trailers"))
        .body(())?;
    let (response, mut send) = client.send_request(request, false)?;
    send.send_data(Bytes::from_static(REQUEST_MESSAGE), true)?;
    let response = response.await?;
    if response.status() != StatusCode::OK {
        return Err(format!("HTTP status {}", response.status()).into());
    }
    if response.headers().contains_key("grpc-status") {
        // A trailers-only response: an error, since the reply has a message.
        return check_grpc_status(response.headers());
    }
    let mut body = response.into_body();
    buf.clear();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        body.flow_control().release_capacity(chunk.len())?;
        buf.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await?.ok_or("response without trailers")?;
    check_grpc_status(&trailers)?;
    if buf.as_slice() != expected {
        return Err(format!("unexpected reply ({} bytes)", buf.len()).into());
    }
    Ok(())
}

fn check_grpc_status(headers: &HeaderMap) -> Result<(), BoxError> {
    let text = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    match text("grpc-status").as_deref() {
        Some("0") => Ok(()),
        Some(code) => Err(format!(
            "grpc-status {code}: {}",
            text("grpc-message").unwrap_or_default()
        )
        .into()),
        None => Err("no grpc-status in the trailers".into()),
    }
}

/// New TCP connection, full mTLS handshake, HTTP/2 preface and settings, one unary call,
/// then the client closes (GOAWAY, close_notify, FIN); the latency runs from the TCP
/// connect to the call's trailers.
pub(crate) async fn full_loop(
    addr: SocketAddr,
    connector: TlsConnector,
    deadline: Instant,
) -> LoadStats {
    let mut stats = LoadStats::default();
    let expected = reply_message();
    let mut buf = Vec::with_capacity(256);
    while Instant::now() < deadline {
        let t0 = Instant::now();
        let once = async {
            let (mut client, connection) = open(addr, &connector).await?;
            call(&mut client, &expected, &mut buf).await?;
            let latency = t0.elapsed();
            // Without a handle left, the connection closes itself and its task ends.
            drop(client);
            connection.await??;
            Ok::<_, BoxError>(latency)
        };
        match tokio::time::timeout(OP_TIMEOUT, once).await {
            Ok(Ok(latency)) => stats.record(latency),
            Ok(Err(e)) => stats.fail(e),
            Err(_) => stats.fail("timed out"),
        }
    }
    stats
}

/// One HTTP/2 connection, unary calls back to back (one at a time).
pub(crate) async fn keep_alive_loop(
    addr: SocketAddr,
    connector: TlsConnector,
    deadline: Instant,
) -> LoadStats {
    let mut stats = LoadStats::default();
    let expected = reply_message();
    let mut buf = Vec::with_capacity(256);
    let mut conn = None;
    while Instant::now() < deadline {
        if conn.is_none() {
            match tokio::time::timeout(OP_TIMEOUT, open(addr, &connector)).await {
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
        let Some((client, _)) = conn.as_mut() else {
            continue;
        };
        let t0 = Instant::now();
        match tokio::time::timeout(OP_TIMEOUT, call(client, &expected, &mut buf)).await {
            Ok(Ok(())) => stats.record(t0.elapsed()),
            Ok(Err(e)) => {
                stats.fail(e);
                conn = None;
            }
            Err(_) => {
                stats.fail("call timed out");
                conn = None;
            }
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_the_reply() {
        let message = reply_message();
        assert_eq!(message[0], 0);
        let len = u32::from_be_bytes(message[1..5].try_into().unwrap()) as usize;
        assert_eq!(len, message.len() - 5);
        assert_eq!(WhoAmIReply::decode(&message[5..]).unwrap(), reply());
    }

    #[test]
    fn reads_grpc_status() {
        let mut headers = HeaderMap::new();
        assert!(check_grpc_status(&headers).is_err());
        headers.insert("grpc-status", HeaderValue::from_static("0"));
        assert!(check_grpc_status(&headers).is_ok());
        headers.insert("grpc-status", HeaderValue::from_static("16"));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("no client certificate"),
        );
        let e = check_grpc_status(&headers).unwrap_err().to_string();
        assert_eq!(e, "grpc-status 16: no client certificate");
    }
}
